import Foundation
import JobRouter
@testable import JobRouterRedis
import Synchronization
import Testing

/// Claims, leases, recovery, retries and schedules against a real Redis, including under concurrency.
@Suite(.timeLimit(.minutes(2)))
struct ReliabilityTests {
    func envelope(_ queue: String, _ n: Int) -> JobEnvelope {
        JobEnvelope(type: "job", priority: nil, queue: queue, payload: .integer(Int64(n)))
    }

    @Test func staleClaimCannotBeSettledAfterItsLeaseWasRecovered() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let queue = keys.queue("q")
        try await driver.push([envelope(queue, 1)])
        let lease = Duration.seconds(3)
        let fetcher = driver.makeFetcher(queues: [queue], label: "stale", worker: "w1", terms: LeaseTerms(lease: lease, maxRecoveries: 3))
        let claims = try await fetcher.fetch(max: 1, wait: .zero)
        // The lease runs out by then at the latest (it started before the claim returned); a
        // loaded machine (the whole suite on 2 cores) has taken over a second to get this far.
        let expired = ContinuousClock.now + lease + .milliseconds(100)
        await fetcher.close()
        #expect(claims.count == 1)
        #expect(try await driver.recoverExpiredLeases(limit: 10, maxDead: 100).recovered == 0)
        try await Task.sleep(until: expired)
        #expect(try await driver.recoverExpiredLeases(limit: 10, maxDead: 100).recoveredJobs.map(\.id) == [claims[0].jobID])
        #expect(try await driver.depths(of: [queue])[queue] == 1)
        // The first worker wakes up late: none of its settlements may touch the recovered job.
        let claim = claims[0]
        #expect(try await driver.complete(claim) == .lost)
        #expect(try await driver.retry(claim, as: envelope(queue, 1), after: .zero) == .lost)
        #expect(try await driver.requeueAtHead([claim], as: [claim.raw]) == 0)
        let record = DeadLetter(id: JobID(rawValue: "x"), queue: queue, type: nil, attempt: nil, reason: "r", raw: Data())
        #expect(try await driver.deadLetter(record, claim: claim, maxDead: 10) == .lost)
        #expect(try await driver.depths(of: [queue])[queue] == 1)
        #expect(try await driver.deadLetterCount() == 0)
    }

    /// One settle call over many claims (what the completion batcher sends) answers each claim on
    /// its own: finished (1), taken away by recovery (0), named twice (2), and a claim settled
    /// before, sent alone (how a settle is tried again), 2; it removes the in-flight records of the
    /// ones it finished only, and counts exactly what it removed.
    @Test func oneSettleCallAnswersEachClaimAndTouchesOnlyTheOnesItFinished() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let queue = keys.queue("q")
        try await driver.push((0..<6).map { envelope(queue, $0) })
        let held = driver.makeFetcher(queues: [queue], label: "held", worker: "w1", terms: LeaseTerms(lease: .seconds(60), maxRecoveries: 3))
        let a = try await held.fetch(max: 5, wait: .zero)
        await held.close()
        let short = driver.makeFetcher(queues: [queue], label: "short", worker: "w2", terms: LeaseTerms(lease: .milliseconds(300), maxRecoveries: 3))
        let b = try await short.fetch(max: 1, wait: .zero)
        await short.close()
        #expect(a.count == 5 && b.count == 1)
        #expect(try await driver.complete(a[3]) == .applied)
        #expect(await eventually { (try? await driver.recoverExpiredLeases(limit: 10, maxDead: 100).recovered) == 1 })

        func settle(_ claims: [ClaimedEntry]) async throws -> [Int64] {
            let arguments = [keys.namespace, "0", "", "", "1", queue, String(claims.count)] + claims.map(\.token)
            let reply = try await driver.command(["EVAL", RedisScripts.complete.source, "0"] + arguments)
            // Every claim held (the usual call): their number.
            if case .integer(let count) = reply, count == claims.count { return Array(repeating: 1, count: claims.count) }
            return try (reply.array(for: "complete") ?? []).map { try $0.integer(for: "complete") }
        }
        func inflight() async throws -> Set<String> {
            try Set((await driver.command(["HKEYS", "\(keys.namespace):inflight"]).array(for: "HKEYS") ?? []).map { try $0.text(for: "HKEYS") })
        }
        func count() async throws -> RedisReply { try await driver.command(["HGET", "\(keys.namespace):count:inflight", queue]) }
        #expect(try await settle([a[0], b[0], a[0], a[1], b[0]]) == [1, 0, 2, 1, 0])
        #expect(try await inflight() == [a[2].token, a[4].token])
        #expect(try await count() == .string(Array("2".utf8)))
        // Settled before (an earlier try whose reply was lost), alone: already settled.
        #expect(try await settle([a[3]]) == [2])
        // Every claim held (the usual call), one named twice.
        #expect(try await settle([a[2], a[2]]) == [1, 2])
        #expect(try await count() == .string(Array("1".utf8)))
        // One settled before sent with one still held, which JobRouter never sends (a retried
        // settle goes alone): which of the two was held is not known once the records are gone,
        // so both are answered 1 (a record of the earlier one would reach the ledger again, which
        // keeps one per job and claim); what is in flight, and its count, stay exact.
        #expect(try await settle([a[4], a[3]]) == [1, 1])
        #expect(try await inflight().isEmpty)
        #expect(try await count() == .null)
        // No claim has a lease of its own: a lease is its claim loop's.
        #expect(try await driver.command(["EXISTS", "\(keys.namespace):leases"]) == .integer(0))
        // The recovered job, claimed again and finished: its recovery count (kept by job id, which
        // the settle reads from the in-flight record) goes with it.
        let again = driver.makeFetcher(queues: [queue], label: "again", worker: "w3", terms: LeaseTerms(lease: .seconds(60), maxRecoveries: 3))
        let c = try #require(try await again.fetch(max: 1, wait: .zero).first)
        await again.close()
        #expect(c.jobID == b[0].jobID)
        #expect(try await driver.command(["HGET", "\(keys.namespace):recoveries", c.jobID.rawValue]) == .string(Array("1".utf8)))
        #expect(try await driver.complete(c) == .applied)
        #expect(try await driver.command(["HEXISTS", "\(keys.namespace):recoveries", c.jobID.rawValue]) == .integer(0))
    }

    /// A settle tried again (its first try applied, its reply lost) goes in a call of its own, so
    /// it is told "already applied" even while other claims' settles are being sent together.
    @Test func aSettleTriedAgainIsToldItWasAppliedAmidOtherSettles() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let queue = keys.queue("q")
        try await driver.push((0..<200).map { envelope(queue, $0) })
        let fetcher = driver.makeFetcher(queues: [queue], label: "again", worker: "w1", terms: LeaseTerms(lease: .seconds(60), maxRecoveries: 3))
        let claims = try await fetcher.fetch(max: 200, wait: .zero)
        await fetcher.close()
        #expect(claims.count == 200)
        #expect(try await driver.complete(claims[0]) == .applied)
        // The other 199 queue up in the batcher, and the retried one is asked while they go.
        let results = Mutex<[SettleResult]>([])
        let done = AsyncStream<Void>.makeStream()
        for claim in claims.dropFirst() {
            driver.complete(claim, attempt: nil) { result in
                let count = results.withLock { all -> Int in
                    if case .success(let settled) = result { all.append(settled) }
                    return all.count
                }
                if count == 199 { done.continuation.finish() }
            }
        }
        #expect(try await driver.complete(claims[0]) == .alreadySettled)
        for await _ in done.stream {}
        #expect(results.withLock { $0 } == Array(repeating: .applied, count: 199))
        #expect(try await driver.command(["HLEN", "\(keys.namespace):inflight"]) == .integer(0))
    }

    /// The usual settle call, every claim held and each named once, answers with their number and
    /// finishes them all (in-flight records and counts) with no answer per claim; the same
    /// call again finds each settled already and answers each on its own.
    @Test func aSettleCallOfHeldClaimsAnswersWithTheirNumber() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let queues = [keys.queue("a"), keys.queue("b")]
        try await driver.push((0..<3).map { envelope(queues[0], $0) } + (0..<2).map { envelope(queues[1], $0) })
        let fetcher = driver.makeFetcher(queues: queues, label: "held", worker: "w1", terms: LeaseTerms(lease: .seconds(60), maxRecoveries: 3))
        let claims = try await fetcher.fetch(max: 5, wait: .zero)
        await fetcher.close()
        #expect(claims.count == 5)
        var arguments = [keys.namespace, "0", "", "", "1"]
        for queue in queues {
            let mine = claims.filter { $0.queue == queue }
            arguments += [queue, String(mine.count)] + mine.map(\.token)
        }
        let settle = ["EVAL", RedisScripts.complete.source, "0"] + arguments
        #expect(try await driver.command(settle) == .integer(5))
        #expect(try await driver.command(["HLEN", "\(keys.namespace):inflight"]) == .integer(0))
        #expect(try await driver.command(["EXISTS", "\(keys.namespace):leases"]) == .integer(0))
        #expect(try await driver.command(["EXISTS", "\(keys.namespace):count:inflight"]) == .integer(0))
        #expect(try await driver.command(settle) == .array(Array(repeating: .integer(2), count: 5)))
    }

    /// A claim's tokens are the worker, the call's number and each job's place in the call, in
    /// decimal (written by the script without Lua's number formatting: checked past 9 and 99).
    @Test func aClaimNumbersItsJobsInDecimal() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let queue = keys.queue("q")
        try await driver.push((0..<120).map { envelope(queue, $0) })
        let fetcher = driver.makeFetcher(queues: [queue], label: "many", worker: "w1", terms: LeaseTerms(lease: .seconds(60), maxRecoveries: 3))
        let claims = try await fetcher.fetch(max: 120, wait: .zero)
        await fetcher.close()
        let prefix = try #require(claims.first?.token.split(separator: ".").first)
        // The claim loop's lease owner (`worker#n`), then the call's number.
        #expect(prefix.hasPrefix("w1#") && prefix.contains("/"))
        #expect(claims.map(\.token) == (1...120).map { "\(prefix).\($0)" })
    }

    @Test func heartbeatsKeepALeaseAlive() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let queue = keys.queue("q")
        try await driver.push([envelope(queue, 1)])
        let fetcher = driver.makeFetcher(queues: [queue], label: "beat", worker: "w1", terms: LeaseTerms(lease: .seconds(3), maxRecoveries: 3))
        let claims = try await fetcher.fetch(max: 1, wait: .zero)
        await fetcher.close()
        let worker = WorkerDescription(id: "w1", groups: ["g"], inFlight: 1, startedAt: Date())
        // Beats every 100 ms for 6 s, twice the lease: only the heartbeats keep the claim (a 3 s
        // lease leaves room for a loaded machine's stalls between two beats).
        for _ in 0..<60 {
            try await Task.sleep(for: .milliseconds(100))
            try await driver.heartbeat(worker, renewing: claims.map(\.token), lease: .seconds(3))
            #expect(try await driver.recoverExpiredLeases(limit: 10, maxDead: 100).recovered == 0)
        }
        #expect(try await driver.complete(claims[0]) == .applied)
        // A second try of the same ack (its first reply lost) is told it was applied, not "lost".
        #expect(try await driver.complete(claims[0]) == .alreadySettled)
    }

    @Test func aJobRecoveredTooOftenIsPoison() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let queue = keys.queue("q")
        let job = envelope(queue, 1)
        try await driver.push([job])
        let fetcher = driver.makeFetcher(queues: [queue], label: "poison", worker: "w", terms: LeaseTerms(lease: .milliseconds(100), maxRecoveries: 1))
        defer { Task { await fetcher.close() } }
        var reports: [RecoveryReport] = []
        for _ in 0..<2 {
            #expect(try await fetcher.fetch(max: 1, wait: .zero).count == 1)
            try await Task.sleep(for: .milliseconds(200))
            reports.append(try await driver.recoverExpiredLeases(limit: 10, maxDead: 100))
        }
        #expect(reports.map(\.recovered) == [1, 0] && reports.map(\.poisoned) == [0, 1])
        #expect(reports[1].poisonedJobs == [RecoveryReport.Job(id: job.id, queue: queue)])
        let dead = try #require(try await driver.deadLetter(id: job.id.rawValue))
        #expect(dead.reason?.hasPrefix("poison: its worker stopped while running it 2 times") == true)
        #expect(dead.raw == job.jsonText)
        #expect(dead.type == "job")
        #expect(try await driver.depths(of: [queue])[queue] == 0)
    }

    @Test func concurrentRecoveryPutsEachExpiredJobBackOnce() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let queue = keys.queue("q")
        try await driver.push((0..<500).map { envelope(queue, $0) })
        let fetcher = driver.makeFetcher(queues: [queue], label: "r", worker: "w", terms: LeaseTerms(lease: .milliseconds(100), maxRecoveries: 3))
        #expect(try await fetcher.fetch(max: 500, wait: .zero).count == 500)
        await fetcher.close()
        try await Task.sleep(for: .milliseconds(200))
        let recovered = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var total = 0
                    while true {
                        let report = try await driver.recoverExpiredLeases(limit: 37, maxDead: 100)
                        if report.recovered == 0 { return total }
                        total += report.recovered
                    }
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(recovered == 500)
        let entries = try await listContents(driver, queue)
        #expect(entries.count == 500)
        #expect(Set(entries).count == 500)
    }

    @Test func dueJobsMoveExactlyOnceHoweverManySchedulersRun() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let queue = keys.queue("q")
        try await driver.schedule((0..<600).map { envelope(queue, $0) }, after: .seconds(3600))
        #expect(try await driver.moveDueJobs(limit: 1000).moved == 0)
        // The hour passes: every due time becomes 0 (a wait on the clock failed here once, when a
        // loaded run took longer than the wait to make its first check).
        let scheduled = keys.namespace + ":scheduled"
        _ = try await driver.command(["ZUNIONSTORE", scheduled, "1", scheduled, "WEIGHTS", "0"])
        let moved = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var total = 0
                    while true {
                        let (count, _) = try await driver.moveDueJobs(limit: 25)
                        if count == 0 { return total }
                        total += count
                    }
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(moved == 600)
        let entries = try await listContents(driver, queue)
        #expect(entries.count == 600 && Set(entries).count == 600)
        #expect(try await driver.moveDueJobs(limit: 10).nextDue == nil)
    }

    @Test func deadStoreIsBoundedAndCountsWhatItTrims() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        for index in 0..<12 {
            let record = DeadLetter(id: JobID(rawValue: "job\(index)"), queue: "q", type: "t", attempt: 1, reason: "r\(index)", raw: Data("{}".utf8))
            #expect(try await driver.deadLetter(record, claim: nil, maxDead: 10) == .applied)
        }
        #expect(try await driver.deadLetterCount() == 10)
        #expect(try await driver.deadLetter(id: "job0") == nil)
        #expect(try await driver.deadLetter(id: "job11")?.reason == "r11")
        #expect(try await driver.command(["GET", "\(keys.namespace):dead:trimmed"]) == .string(Array("2".utf8)))
        #expect(try await driver.purgeDeadLetters(before: Date().addingTimeInterval(60)) == 10)
        #expect(try await driver.deadLetterCount() == 0)
    }

    /// A worker configuration with one exec or Swift type.
    func configuration(_ keys: TestKeys, handler: HandlerKind, command: [String] = [], maxAttempts: Int = 5,
                       backoff: RetryBackoff = RetryBackoff()) throws -> RouterConfiguration {
        var configuration = RouterConfiguration(defaultQueue: keys.queue("default"))
        configuration.redis.namespace = keys.namespace
        configuration.types["job"] = JobTypeConfiguration(name: "job", handler: handler, command: command,
                                                          maxAttempts: maxAttempts, backoff: backoff)
        configuration.groups["g"] = WorkerGroupConfiguration(name: "g", queues: [keys.queue("default")], concurrency: 2)
        try configuration.validate()
        return configuration
    }

    @Test func failingExecJobIsRetriedWithBackoffUntilItSucceeds() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let script = #"[ "$JOB_ATTEMPT" -ge 3 ] || { echo "not yet ($JOB_ATTEMPT)" >&2; exit 1; }"#
        let configuration = try configuration(keys, handler: .exec, command: ["/bin/sh", "-c", script],
                                              backoff: RetryBackoff(base: .milliseconds(100), max: .seconds(1)))
        let events = EventLog()
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, logger: testLogger, recorders: [events])
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let job = try await client.enqueue(type: "job")
        try await withWorker(worker) {
            #expect(await eventually { !events.succeeded.isEmpty })
        }
        let done = try #require(events.succeeded.first)
        #expect(done.id == job.id)
        #expect(done.attempt == 3)
        #expect(done.lastError == "/bin/sh failed: exit status 1: not yet (2)")
        let delays = events.all.compactMap { event -> Duration? in
            if case .failed(_, _, _, _, _, let delay) = event { return delay }
            return nil
        }
        #expect(delays.count == 2)
        // Full jitter: each wait is drawn below a ceiling that doubles (100 ms, then 200 ms).
        #expect(delays[0] <= .milliseconds(100) && delays[1] <= .milliseconds(200))
        #expect(try await driver.deadLetterCount() == 0)
    }

    /// A retry runs when it falls due, not at the scheduler's next look: the process that scheduled
    /// it wakes its scheduler for it. Looks a minute apart make the difference plain on a loaded
    /// machine (the first retry would wait for the next look, up to a minute).
    @Test func aRetryStartsWhenItFallsDue() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let failures = 10
        var configuration = try configuration(keys, handler: .swift, maxAttempts: failures + 1,
                                              backoff: RetryBackoff(base: .milliseconds(20), max: .milliseconds(20)))
        configuration.schedulePoll = .seconds(60)
        // How late each retry started after its due time.
        let lateness = Observations<Duration>()
        struct NotYet: Error {}
        var handlers = HandlerRegistry()
        handlers.register(type: "job") { job, _ in
            if let due = job.dueAt { lateness.append(.saturating(seconds: Date().timeIntervalSince(due))) }
            if job.attempt <= failures { throw NotYet() }
        }
        let events = EventLog()
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: handlers,
                                         logger: testLogger, recorders: [events])
        let client = JobRouterClient(configuration: configuration, driver: driver)
        _ = try await client.enqueue(type: "job")
        try await withWorker(worker) {
            #expect(await eventually(timeout: .seconds(30)) { events.succeeded.count == 1 })
        }
        let late = lateness.all
        #expect(late.count == failures)
        // Woken for, a few ms each here (a whole suite on two cores has made it ~350 ms).
        #expect(late.allSatisfy { $0 < .seconds(5) }, "retries started \(late) after they fell due")
    }

    @Test func lastAttemptGoesToTheDeadStoreAndCanBeRetriedFromTheCLI() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let configuration = try configuration(keys, handler: .exec, command: ["/bin/sh", "-c", "echo 'smtp said no' >&2; exit 2"],
                                              maxAttempts: 2, backoff: RetryBackoff(base: .milliseconds(50), max: .milliseconds(50)))
        let events = EventLog()
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let job = try await client.enqueue(type: "job", payload: .object(["to": .string("a@x.org")]))
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, logger: testLogger, recorders: [events])
        try await withWorker(worker) {
            #expect(await eventually { events.deadLettered.count == 1 })
        }

        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(keys.prefix).toml").path
        try """
            default_queue = "\(keys.queue("default"))"
            [redis]
            url = "\(try TestRedis.url)"
            namespace = "\(keys.namespace)"
            [types.job]
            handler = "noop"
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let listed = try await runCLI(["dead", "list", "--json", "--config", path])
        #expect(listed.status == 0, "\(listed.err)")
        let record = try JSONValue.parse(listed.out.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(record["id"]?.stringValue == job.id.rawValue)
        #expect(record["attempt"] == .integer(2))
        #expect(record["reason"]?.stringValue == "failed 2 time(s), the last: /bin/sh failed: exit status 2: smtp said no")
        #expect(record["failed_at"]?.stringValue != nil)

        let shown = try await runCLI(["dead", "show", job.id.rawValue, "--config", path])
        #expect(shown.status == 0 && shown.out.contains(job.id.rawValue))
        let missing = try await runCLI(["dead", "show", "nope", "--config", path])
        #expect(missing.status == 1 && missing.err == "jobrouter: no dead job with id nope\n")

        let retried = try await runCLI(["dead", "retry", job.id.rawValue, "--config", path])
        #expect(retried.status == 0, "\(retried.err)")
        let queued = try await listContents(driver, keys.queue("default"))
        #expect(queued.count == 1)
        let again = try JobEnvelope.decode(Data(queued[0].utf8), queue: keys.queue("default"))
        #expect(again.id == job.id && again.attempt == 1 && again.lastError == nil)
        #expect(try await driver.deadLetterCount() == 0)
    }

    @Test func delayedJobDoesNotStartEarlyAndStartsSoonAfter() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let configuration = try configuration(keys, handler: .swift)
        let started = Observations<ContinuousClock.Instant>()
        var handlers = HandlerRegistry()
        handlers.register(type: "job") { _, _ in started.append(.now) }
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: handlers,
                                         logger: testLogger, recorders: [])
        let client = JobRouterClient(configuration: configuration, driver: driver)
        try await withWorker(worker) {
            let enqueued = ContinuousClock.now
            _ = try await client.enqueue([JobRequest(type: "job")], after: .seconds(2))
            #expect(await eventually(timeout: .seconds(15)) { started.count == 1 })
            let waited = enqueued.duration(to: try #require(started.all.first))
            // Not early; late by the scheduler's look (250 ms) and a loaded machine's delays (the whole
            // suite on 2 cores has delayed it by 2 s, and by over 3 s with two busy loops beside it).
            #expect(waited >= .milliseconds(1950) && waited < .seconds(10), "started after \(waited)")
        }
    }
}
