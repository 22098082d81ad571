import Foundation
import JobRouter
import JobRouterRedis
import Synchronization
import Testing

/// The Redis driver and its scripts against the real server, including under concurrency.
@Suite(.timeLimit(.minutes(2)))
struct RedisDriverTests {
    @Test func concurrentFetchersTakeEveryEntryExactlyOnceInPriorityOrder() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let (high, low) = (keys.queue("high"), keys.queue("low"))
        let jobs = (0..<3000).map { index in
            JobEnvelope(type: "t", priority: nil, queue: index < 1000 ? high : low, payload: .integer(Int64(index)))
        }
        try await driver.push(jobs)

        let terms = LeaseTerms(lease: .seconds(30), maxRecoveries: 3)
        let fetchers = (0..<6).map { driver.makeFetcher(queues: [high, low], label: "f\($0)", worker: "w\($0)", terms: terms) }
        let taken = try await withThrowingTaskGroup(of: [ClaimedEntry].self) { group in
            for fetcher in fetchers {
                group.addTask {
                    var mine: [ClaimedEntry] = []
                    while true {
                        let batch = try await fetcher.fetch(max: 7, wait: .milliseconds(50))
                        if batch.isEmpty { return mine }
                        // Within one atomic claim, a high entry never follows a low one.
                        let queues = batch.map(\.queue)
                        #expect(queues == queues.sorted { $0 == high && $1 == low })
                        mine += batch
                    }
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        for fetcher in fetchers { await fetcher.close() }
        #expect(Set(taken.map(\.token)).count == 3000)
        // Every claim is recorded in flight, and completing them all leaves nothing behind.
        #expect(try await driver.command(["HLEN", "\(keys.namespace):inflight"]) == .integer(3000))
        let completed = try await withThrowingTaskGroup(of: Bool.self) { group in
            for entry in taken {
                group.addTask { try await driver.complete(entry) == .applied }
            }
            return try await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
        }
        #expect(completed == 3000)
        #expect(try await driver.command(["HLEN", "\(keys.namespace):inflight"]) == .integer(0))
        // One lease per claim loop (its owner, which starts each of its tokens), none per claim.
        let owners = Set(taken.compactMap { $0.token.split(separator: "/").first.map(String.init) })
        #expect(owners.count >= 1 && owners.count <= 6)
        #expect(try await driver.command(["ZCARD", "\(keys.namespace):owners"]) == .integer(Int64(owners.count)))
        #expect(try await driver.command(["EXISTS", "\(keys.namespace):leases"]) == .integer(0))
        let indices = try taken.map { try JobEnvelope.decode($0.raw, queue: $0.queue).payload.intValue ?? -1 }
        #expect(indices.count == 3000)
        #expect(Set(indices) == Set(0..<3000))
        #expect(taken.allSatisfy { entry in
            let index = (try? JobEnvelope.decode(entry.raw, queue: entry.queue).payload.intValue) ?? -1
            return entry.queue == (index < 1000 ? high : low)
        })
    }

    @Test func interleavedQueuesArePushedInInputOrderEachWithItsWakeUpToken() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let queues = [keys.queue("a"), keys.queue("b"), keys.queue("c")]
        // 2,500 jobs over three queues, interleaved: three chunks, each one call for all queues.
        let jobs = (0..<2500).map { index in
            JobEnvelope(type: "t", priority: nil, queue: queues[(index * 7 + index / 3) % 3], payload: .integer(Int64(index)))
        }
        try await driver.push(jobs, progress: BatchProgress(batchID: "b1", lines: Array(1...2500)))
        for queue in queues {
            let stored = try await listContents(driver, queue).map { try JobEnvelope.decode(Data($0.utf8), queue: queue).payload }
            #expect(stored == jobs.filter { $0.queue == queue }.map(\.payload))
            let tokens = try await driver.command(["LLEN", "\(keys.namespace):wake:\(queue)"])
            #expect(tokens == .integer(Int64(stored.count)))
        }
        #expect(try await driver.batchProgress("b1") == 2500)
    }

    /// A large `enqueue` is encoded chunk by chunk while the chunk before is pushed: each queue
    /// still holds its jobs in call order, and a request that cannot be routed, however late in
    /// the call, stops it before anything is pushed.
    @Test func aLargeEnqueueKeepsCallOrderAndRoutesEverythingFirst() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let (high, low) = (keys.queue("high"), keys.queue("low"))
        var configuration = RouterConfiguration(defaultQueue: keys.queue("default"))
        configuration.redis.namespace = keys.namespace
        var type = JobTypeConfiguration(name: "t", handler: .swift)
        type.priorities = ["high": high, "low": low]
        type.defaultPriority = "low"
        configuration.types["t"] = type
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let count = 9_500  // over four chunks of `overlapChunk`
        let requests = (0..<count).map { JobRequest(type: "t", priority: $0 % 4 == 0 ? "high" : "low", payload: .integer(Int64($0))) }
        let jobs = try await client.enqueue(requests)
        #expect(jobs.map(\.payload) == requests.map(\.payload))
        for (queue, kept) in [(high, { (n: Int) in n % 4 == 0 }), (low, { (n: Int) in n % 4 != 0 })] {
            let stored = try await listContents(driver, queue).map { try JobEnvelope.decode(Data($0.utf8), queue: queue).payload }
            #expect(stored == (0..<count).filter(kept).map { JSONValue.integer(Int64($0)) })
        }
        // The last request names a priority the type does not have: nothing of this call is pushed.
        await #expect(throws: RoutingError.self) {
            try await client.enqueue(requests + [JobRequest(type: "t", priority: "urgent")])
        }
        #expect(try await driver.depths(of: [high, low]) == [high: count / 4, low: count - count / 4])
    }

    @Test func idleFetchBlocksAndWakesWithinMilliseconds() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let queue = keys.queue("q")
        let fetcher = driver.makeFetcher(queues: [queue], label: "idle", worker: "w", terms: LeaseTerms(lease: .seconds(30), maxRecoveries: 3))
        let clock = ContinuousClock()
        let pushedAt = Mutex<ContinuousClock.Instant?>(nil)
        async let fetched = fetcher.fetch(max: 1, wait: .seconds(60))
        try await Task.sleep(for: .milliseconds(200))
        pushedAt.withLock { $0 = clock.now }
        try await driver.push([JobEnvelope(type: "t", priority: nil, queue: queue, payload: .null)])
        let entries = try await fetched
        let latency = try #require(pushedAt.withLock { $0 }).duration(to: clock.now)
        #expect(entries.count == 1)
        // Woken by the push, not by the 60 s wait running out (a loaded machine may take a while).
        #expect(latency < .seconds(15), "woke after \(latency)")
        await fetcher.close()
    }

    @Test func interruptWakesABlockedFetchAtOnce() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        let fetcher = driver.makeFetcher(queues: [keys.queue("q")], label: "interrupt", worker: "w", terms: LeaseTerms(lease: .seconds(30), maxRecoveries: 3))
        let clock = ContinuousClock()
        let start = clock.now
        async let fetched = fetcher.fetch(max: 1, wait: .seconds(60))
        try await Task.sleep(for: .milliseconds(200))
        fetcher.interrupt()
        #expect(try await fetched.isEmpty)
        // Far below the 60 s wait, with room for a loaded machine (the suite runs kill loops beside it).
        #expect(start.duration(to: clock.now) < .seconds(15))
        await fetcher.close()
    }

    @Test func requeueAtHeadKeepsTheGivenOrder() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let queue = keys.queue("q")
        _ = try await driver.command(["RPUSH", queue, "a", "b", "c", "later"])
        let fetcher = driver.makeFetcher(queues: [queue], label: "r", worker: "w", terms: LeaseTerms(lease: .seconds(30), maxRecoveries: 3))
        let claims = try await fetcher.fetch(max: 3, wait: .zero)
        await fetcher.close()
        #expect(try await listContents(driver, queue) == ["later"])
        #expect(try await driver.requeueAtHead(claims, as: claims.map(\.raw)) == 3)
        #expect(try await listContents(driver, queue) == ["a", "b", "c", "later"])
        // A claim can be settled once: a second requeue (or a stale worker) changes nothing.
        #expect(try await driver.requeueAtHead(claims, as: claims.map(\.raw)) == 0)
        #expect(try await listContents(driver, queue) == ["a", "b", "c", "later"])
    }

    /// `redis://` URLs are read without Foundation's URL parser (it maps ICU for the host).
    @Test func redisURLsAreRead() throws {
        let cases: [(String, String, Int, Int, String?, String?)] = [
            ("redis://127.0.0.1:6379/0", "127.0.0.1", 6379, 0, nil, nil),
            ("redis://localhost", "localhost", 6379, 0, nil, nil),
            ("redis://cache.internal:7000/3", "cache.internal", 7000, 3, nil, nil),
            ("redis://:p%40ss@h:1/", "h", 1, 0, nil, "p@ss"),
            ("redis://app:pw@h/2", "h", 6379, 2, "app", "pw"),
            ("redis://[::1]:6380/1", "::1", 6380, 1, nil, nil),
            ("redis://u:a:b@h", "h", 6379, 0, "u", "a:b"),
        ]
        for (url, host, port, database, user, password) in cases {
            let endpoint = try RedisEndpoint(url: url)
            #expect(endpoint.host == host && endpoint.port == port && endpoint.database == database, "\(url)")
            #expect(endpoint.username == user && endpoint.password == password, "\(url)")
        }
        for (url, why) in [("http://h", "the scheme must be redis://"), ("redis://", "no host"), ("redis://h:0", "bad port"),
                           ("redis://h:70000", "bad port"), ("redis://h/x", "database number"), ("rediss://h", "not supported"),
                           ("redis://:s3cret%4@h", "the password has a bad %-escape"), ("redis://u%zz:pw@h", "the user name has a bad %-escape"),
                           ("redis+sentinel://:s3cret%@h:26379/jobs", "the password has a bad %-escape")] {
            // Named, and never shown: the URL in the message has its credentials replaced.
            #expect { _ = try RedisEndpoint(url: url) } throws: { "\($0)".contains(why) && !"\($0)".contains("s3cret") }
        }
    }

    @Test func errorsNeverShowThePassword() async throws {
        let endpoint = try RedisEndpoint(url: "redis://user:s3cret-pw@127.0.0.1:1/0")
        #expect(endpoint.description == "127.0.0.1:1/0")
        let driver = RedisQueueDriver(endpoint: endpoint, namespace: "x")
        await #expect {
            _ = try await driver.depths(of: ["q"])
        } throws: { error in
            let text = "\(error)"
            return text.contains("127.0.0.1:1") && !text.contains("s3cret")
        }
        #expect {
            _ = try RedisEndpoint(url: "redis://:s3cret-pw@host:notaport")
        } throws: { error in
            !"\(error)".contains("s3cret")
        }
    }

    @Test func wrongPasswordIsAConnectionErrorWithTheServersMessage() async throws {
        var endpoint = try RedisEndpoint(url: try TestRedis.url)
        endpoint.password = "wrong-secret"
        let driver = RedisQueueDriver(endpoint: endpoint, namespace: "x")
        await #expect {
            _ = try await driver.depths(of: ["q"])
        } throws: { error in
            guard let error = error as? RedisError else { return false }
            return error.code == .connection && error.command == "AUTH" && !"\(error)".contains("wrong-secret")
        }
    }
}
