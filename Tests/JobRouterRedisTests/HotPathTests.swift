import Foundation
import JobRouter
@testable import JobRouterRedis
import Testing

/// The drain's fast path against a real Redis: noop jobs acked from the claim loops, acks written
/// without a task waiting for them, and one lease per claim loop rather than one per claim.
@Suite(.timeLimit(.minutes(2)))
struct HotPathTests {
    func configuration(_ keys: TestKeys) throws -> RouterConfiguration {
        var configuration = RouterConfiguration(defaultQueue: keys.queue("default"))
        configuration.redis.namespace = keys.namespace
        configuration.types["ping"] = JobTypeConfiguration(name: "ping", handler: .noop)
        configuration.groups["main"] = WorkerGroupConfiguration(name: "main", queues: [keys.queue("default")], concurrency: 16)
        try configuration.validate()
        return configuration
    }

    /// A stop in the middle of a fast drain: every job is either reported done (its ack written)
    /// or still in its queue; none is left claimed, and none is reported done without its ack.
    @Test func aNoopDrainStoppedMidwayLeavesEveryJobDoneOrQueued() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let configuration = try configuration(keys)
        let total = 6_000
        let client = JobRouterClient(configuration: configuration, driver: driver)
        _ = try await client.enqueue((0..<total).map { _ in JobRequest(type: "ping") })
        let events = EventLog()
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: HandlerRegistry(),
                                         groups: ["main"], logger: testLogger, recorders: [events])
        let queue = keys.queue("default")
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await worker.run() }
            #expect(await eventually { events.succeeded.count >= 500 })
            worker.shutdown()
            try await group.waitForAll()
        }
        // Read right after run() returned: the group waited for its acks.
        let done = Set(events.succeeded.map(\.id))
        let left = try await driver.depths(of: [queue])[queue] ?? -1
        #expect(try await driver.command(["HLEN", "\(keys.namespace):inflight"]) == .integer(0))
        // Its claim loops' leases end with it (the next look at them removes them).
        let owners = try (await driver.command(["ZRANGE", "\(keys.namespace):owners", "0", "-1", "WITHSCORES"]).array(for: "ZRANGE") ?? [])
            .map { try $0.text(for: "ZRANGE") }
        #expect(owners.count == 4 && owners[1] == "0" && owners[3] == "0", "\(owners)")
        #expect(try await driver.recoverExpiredLeases(limit: 10, maxDead: 100).recovered == 0)
        #expect(try await driver.command(["EXISTS", "\(keys.namespace):owners"]) == .integer(0))
        #expect(done.count == events.succeeded.count, "a job reported done twice")
        #expect(done.count > 0 && done.count < total, "the stop came mid-drain: \(done.count) done")
        #expect(done.count + left == total, "done \(done.count) + queued \(left) != \(total)")
    }

    /// A claim call holds its claims under one lease, its claim loop's (`NS:owners`), which runs
    /// `lease` from the call; settling them writes no lease at all. When the lease runs out, every
    /// claim still held under it is recovered, and the lease goes with the last of them.
    @Test func aClaimCallHoldsItsClaimsUnderItsClaimLoopsLease() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let before = try await serverMilliseconds(driver)
        let (claimed, owner) = try await claimPings(20, driver, keys)
        #expect(owner.hasPrefix("w#") && claimed.allSatisfy { $0.token.hasPrefix(owner + "/") })
        let lease = try await driver.command(["ZRANGE", "\(keys.namespace):owners", "0", "-1", "WITHSCORES"]).array(for: "ZRANGE") ?? []
        #expect(lease.count == 2)
        #expect(try lease.first?.text(for: "ZRANGE") == owner)
        let deadline = try #require(Int64(try lease[1].text(for: "ZRANGE")))
        #expect(deadline >= before + 30_000 && deadline <= before + 40_000, "deadline \(deadline), claimed after \(before)")
        #expect(try await driver.command(["EXISTS", "\(keys.namespace):leases"]) == .integer(0))
        for claim in claimed.prefix(15) { #expect(try await driver.complete(claim) == .applied) }
        // Five still held when the lease runs out: those five come back, and the lease goes.
        _ = try await driver.command(["ZADD", "\(keys.namespace):owners", "0", owner])
        let report = try await driver.recoverExpiredLeases(limit: 10, maxDead: 100)
        #expect(Set(report.recoveredJobs.map(\.id)) == Set(claimed.suffix(5).map(\.jobID)))
        #expect(try await driver.command(["EXISTS", "\(keys.namespace):owners"]) == .integer(0))
        #expect(try await driver.depths(of: [keys.queue("default")])[keys.queue("default")] == 5)
    }

    /// Recovery takes an expired owner's claims by their tokens' prefix: an owner whose name holds
    /// glob characters takes only its own, not those of an owner its name would match as a pattern.
    @Test func recoveryTakesOnlyTheExpiredOwnersClaims() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let queue = keys.queue("default")
        let ns = keys.namespace
        func record(_ id: String) -> String { inflightRecord(id, queue: queue) }
        // "h*[1]#1" expired; "hx1#1" (which "h*[1]#1/*" matches as a pattern) and "h*[1]#10" alive.
        for (token, id) in [("h*[1]#1/5.1", "dead-1"), ("h*[1]#1/5.2", "dead-2"), ("hx1#1/6.1", "alive-1"), ("h*[1]#10/7.1", "alive-2")] {
            _ = try await driver.command(["HSET", "\(ns):inflight", token, record(id)])
        }
        _ = try await driver.command(["HSET", "\(ns):count:inflight", queue, "4"])
        _ = try await driver.command(["ZADD", "\(ns):owners", "0", "h*[1]#1", "99999999999999", "hx1#1", "99999999999999", "h*[1]#10"])
        let report = try await driver.recoverExpiredLeases(limit: 10, maxDead: 100)
        #expect(Set(report.recoveredJobs.map(\.id.rawValue)) == ["dead-1", "dead-2"])
        let left = try (await driver.command(["HKEYS", "\(ns):inflight"]).array(for: "HKEYS") ?? []).map { try $0.text(for: "HKEYS") }
        #expect(Set(left) == ["hx1#1/6.1", "h*[1]#10/7.1"])
        #expect(try await driver.command(["ZSCORE", "\(ns):owners", "h*[1]#1"]) == .null)
        #expect(try await driver.command(["HGET", "\(ns):count:inflight", queue]) == .string(Array("2".utf8)))
    }

    /// An owner with more claims than one look takes: the rest come at the next look, and the
    /// lease stays until then.
    @Test func anOwnersClaimsComeBackOverSeveralLooksWhenManyAreHeld() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let (_, owner) = try await claimPings(25, driver, keys)
        _ = try await driver.command(["ZADD", "\(keys.namespace):owners", "0", owner])
        #expect(try await driver.recoverExpiredLeases(limit: 10, maxDead: 100).recovered == 10)
        #expect(try await driver.command(["ZSCORE", "\(keys.namespace):owners", owner]) == .string(Array("0".utf8)))
        #expect(try await driver.recoverExpiredLeases(limit: 10, maxDead: 100).recovered == 10)
        #expect(try await driver.recoverExpiredLeases(limit: 10, maxDead: 100).recovered == 5)
        #expect(try await driver.command(["EXISTS", "\(keys.namespace):owners"]) == .integer(0))
        #expect(try await driver.command(["HLEN", "\(keys.namespace):inflight"]) == .integer(0))
    }

    /// A look scans a bounded part of the in-flight table (here one page of ~1,000 records): with
    /// thousands of other jobs in flight, a stopped owner's claims come back over several looks,
    /// each taken once, and its lease goes after the pass that found the last of them.
    @Test func aLookScansABoundedPartOfTheInFlightTable() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let ns = keys.namespace
        try await fillInflight(driver, keys, alive: 6_000, gone: 5)
        let (looks, recovered) = try await recoverGone(driver, ns, limit: 200, pages: 1)
        #expect(looks > 2, "one page per look over ~6,000 records: \(looks) looks")
        #expect(recovered.sorted() == (1...5).map { "gone-\($0)" })
        #expect(try await driver.command(["HLEN", "\(ns):inflight"]) == .integer(6000))
        #expect(try await driver.command(["EXISTS", "\(ns):owners:scan"]) == .integer(0))
    }

    /// A pass carried over from another server starts over: a cursor is a place in one server's
    /// hash table, whose layout a failover or a restart changes, so carrying on would skip
    /// records. Every record of the stopped owner comes back. So it does from a place saved before
    /// places named their server (`deadline cursor`).
    @Test(arguments: [true, false]) func aPassSavedOnAnotherServerStartsOver(named: Bool) async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let ns = keys.namespace
        try await fillInflight(driver, keys, alive: 6_000, gone: 300)
        // Where a pass stood after three pages of 1,000, as a failover would leave it.
        var cursor = "0"
        for _ in 0..<3 {
            let page = try await driver.command(["HSCAN", "\(ns):inflight", cursor, "COUNT", "1000"]).array(for: "HSCAN") ?? []
            cursor = try #require(page.first).text(for: "HSCAN")
        }
        #expect(cursor != "0")
        _ = try await driver.command(["HSET", "\(ns):owners:scan", "gone#1", named ? "0@0123abcdef \(cursor)" : "0 \(cursor)"])
        let (_, recovered) = try await recoverGone(driver, ns, limit: 1_000, pages: 5)
        #expect(Set(recovered) == Set((1...300).map { "gone-\($0)" }), "\(recovered.count) of 300 recovered")
        #expect(try await driver.command(["HLEN", "\(ns):inflight"]) == .integer(6000))
    }

    /// Writes `alive` in-flight records of a live owner (`alive#1`, its lease far off) and `gone`
    /// of a stopped one (`gone#1`, its lease run out; jobs `gone-1`, `gone-2`, …), in one script call.
    func fillInflight(_ driver: RedisQueueDriver, _ keys: TestKeys, alive: Int, gone: Int) async throws {
        let ns = keys.namespace
        let fill = """
            for i = 1, tonumber(ARGV[4]) do redis.call('HSET', KEYS[1], 'alive#1/1.' .. i, ARGV[1]) end
            for i = 1, tonumber(ARGV[5]) do redis.call('HSET', KEYS[1], 'gone#1/2.' .. i, ARGV[2] .. i .. ARGV[3]) end
            """
        let parts = inflightRecord("gone-X", queue: keys.queue("default")).components(separatedBy: "X")
        _ = try await driver.command(["EVAL", fill, "1", "\(ns):inflight", inflightRecord("alive", queue: keys.queue("default")),
                                      parts[0], parts[1], String(alive), String(gone)])
        _ = try await driver.command(["ZADD", "\(ns):owners", "0", "gone#1", "99999999999999", "alive#1"])
    }

    /// Looks at the leases (the recover script, `pages` pages of the in-flight table each) until
    /// `gone#1`'s lease is gone, 50 at most: how many looks, and the jobs they took back.
    func recoverGone(_ driver: RedisQueueDriver, _ ns: String, limit: Int, pages: Int) async throws -> (looks: Int, recovered: [String]) {
        var looks = 0
        var recovered: [String] = []
        while try await driver.command(["ZSCORE", "\(ns):owners", "gone#1"]) != .null, looks < 50 {
            looks += 1
            let reply = try await driver.command(["EVAL", RedisScripts.recover.source, "0", ns, String(limit), "100", "0", "0", String(pages)])
            let lists = try reply.array(for: "recover") ?? []
            let ids = try (lists.first?.array(for: "recover") ?? []).map { try $0.text(for: "recover") }
            recovered += stride(from: 0, to: ids.count, by: 2).map { ids[$0] }
        }
        return (looks, recovered)
    }

    /// A claim the worker never learned of (its call's answer lost with the connection) is held by
    /// no one. After a failed call the fetcher claims under a new owner, so the old owner's lease
    /// runs out while the fetcher goes on claiming, and recovery takes the stray.
    @Test func aFailedCallMovesTheFetcherToANewOwnerSoItsStrayClaimsComeBack() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let queue = keys.queue("default")
        let client = JobRouterClient(configuration: try configuration(keys), driver: driver)
        let fetcher = driver.makeFetcher(queues: [queue], label: "test", worker: "w", terms: LeaseTerms(lease: .seconds(1), maxRecoveries: 3),
                                         ownerLifetime: nil)
        func owner(_ claim: ClaimedEntry) -> String { claim.token.split(separator: "/").first.map(String.init) ?? "" }
        _ = try await client.enqueue([JobRequest(type: "ping")])
        let first = try #require(try await fetcher.fetch(max: 1, wait: .milliseconds(100)).first)
        let old = owner(first)
        // A stray under that owner, as a claim call whose answer was lost leaves one.
        _ = try await driver.command(["HSET", "\(keys.namespace):inflight", "\(old)/999999.1", inflightRecord("stray", queue: queue)])
        _ = try await driver.command(["HINCRBY", "\(keys.namespace):count:inflight", queue, "1"])
        #expect(try await driver.complete(first) == .applied)
        // The fetcher's connection fails while it waits for jobs.
        let waiting = Task { try await fetcher.fetch(max: 1, wait: .seconds(5)) }
        #expect(await eventually { fetcher.waitingClient != nil })
        _ = try await driver.command(["CLIENT", "KILL", "ID", String(try #require(fetcher.waitingClient))])
        #expect(await (try? waiting.value) == nil, "the wait failed")
        // It goes on claiming, for longer than the old owner's lease, under a new owner.
        var owners: Set<String> = []
        let until = ContinuousClock.now + .milliseconds(1_500)
        while ContinuousClock.now < until {
            _ = try await client.enqueue([JobRequest(type: "ping")])
            for claim in try await fetcher.fetch(max: 1, wait: .milliseconds(100)) {
                owners.insert(owner(claim))
                #expect(try await driver.complete(claim) == .applied)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        await fetcher.close()
        #expect(owners == [old + ".1"])
        let report = try await driver.recoverExpiredLeases(limit: 10, maxDead: 100)
        #expect(report.recoveredJobs.map(\.id.rawValue) == ["stray"])
        #expect(try await driver.command(["HLEN", "\(keys.namespace):inflight"]) == .integer(0))
    }

    /// A fetcher moves to a new owner once its owner is `ownerLifetime` old, failure or not: a
    /// stray no failed call revealed comes back then too.
    @Test func aFetcherMovesToANewOwnerOnceItsOwnerIsOld() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let client = JobRouterClient(configuration: try configuration(keys), driver: driver)
        _ = try await client.enqueue((0..<3).map { _ in JobRequest(type: "ping") })
        let lifetime = Duration.milliseconds(500)
        let start = ContinuousClock.now
        let fetcher = driver.makeFetcher(queues: [keys.queue("default")], label: "test", worker: "w",
                                         terms: LeaseTerms(lease: .seconds(30), maxRecoveries: 3), ownerLifetime: lifetime)
        func owner() async throws -> String {
            let token = try #require(try await fetcher.fetch(max: 1, wait: .milliseconds(100)).first?.token)
            return token.split(separator: "/").first.map(String.init) ?? ""
        }
        let first = try await owner()
        let second = try await owner()
        // Only when this machine was quick enough to claim twice within the lifetime.
        let quick = ContinuousClock.now - start < lifetime
        try await Task.sleep(for: lifetime + .milliseconds(100))
        let third = try await owner()
        await fetcher.close()
        #expect(!quick || second == first, "\(first), \(second)")
        #expect(third != second && third.hasPrefix(first.split(separator: ".").first.map { $0 + "." } ?? "?"), "\(first), \(second), \(third)")
        #expect(RedisJobFetcher.ownerLifetime(lease: .seconds(30)) == .seconds(300))
    }

    /// Enqueues `count` pings and claims them all in one call of a fetcher of worker `w` (30 s
    /// lease): the claims, and their owner (what starts each token, before its slash).
    func claimPings(_ count: Int, _ driver: RedisQueueDriver, _ keys: TestKeys) async throws -> (claims: [ClaimedEntry], owner: String) {
        let client = JobRouterClient(configuration: try configuration(keys), driver: driver)
        _ = try await client.enqueue((0..<count).map { _ in JobRequest(type: "ping") })
        let fetcher = driver.makeFetcher(queues: [keys.queue("default")], label: "test", worker: "w",
                                         terms: LeaseTerms(lease: .seconds(30), maxRecoveries: 3, maxPayload: 1 << 20, maxDead: 100, ledger: nil))
        let claimed = try await fetcher.fetch(max: count, wait: .milliseconds(100))
        await fetcher.close()
        #expect(claimed.count == count)
        let owner = try #require(claimed.first?.token.split(separator: "/").first.map(String.init))
        return (claimed, owner)
    }

    /// An in-flight record as the claim script writes it (queue, worker `w`, max_recoveries 3, id,
    /// entry) for a `ping` job `id`.
    func inflightRecord(_ id: String, queue: String) -> String {
        "\t\(queue)\nw\n3\n\(id)\n{\"id\":\"\(id)\",\"type\":\"ping\"}"
    }

    /// The server's clock, in milliseconds since the epoch (what leases are measured against).
    func serverMilliseconds(_ driver: RedisQueueDriver) async throws -> Int64 {
        let time = try await driver.command(["TIME"]).array(for: "TIME") ?? []
        let first = try #require(time.first)
        let seconds = try #require(Int64(try first.text(for: "TIME")))
        let micros = try #require(Int64(try time[1].text(for: "TIME")))
        return seconds * 1000 + micros / 1000
    }
}
