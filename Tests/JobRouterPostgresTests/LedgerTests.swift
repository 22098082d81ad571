import Foundation
import JobRouter
import JobRouterPostgres
import JobRouterRedis
import Logging
import Synchronization
import Testing

/// The ledger against a real Redis and PostgreSQL: every attempt's record is written by the
/// script that settled it, shipped in batches, and stored exactly once.
@Suite(.timeLimit(.minutes(3)))
struct LedgerTests {
    /// A namespace, a schema, and the configuration text around them.
    struct Setup {
        let prefix = "ledger-\(UUID().uuidString.prefix(8).lowercased())"
        let schema = TestPostgres.schema()
        let redisURL: String
        let postgresURL: String

        init(postgresURL: String? = nil) throws {
            redisURL = try #require(ProcessInfo.processInfo.environment["JOBROUTER_TEST_REDIS_URL"], "run with scripts/test.sh")
            self.postgresURL = try postgresURL ?? TestPostgres.url
        }

        var queue: String { "\(prefix):default" }

        func configuration(_ types: String, concurrency: Int = 4, lease: String = "30s") throws -> RouterConfiguration {
            let toml = """
                default_queue = "\(queue)"
                [redis]
                url = "\(redisURL)"
                namespace = "\(prefix)-jr"
                [postgres]
                url = "postgres://nobody@127.0.0.1:1/unused"
                schema = "\(schema)"
                \(types)
                [groups.g]
                queues = ["\(queue)"]
                concurrency = \(concurrency)
                lease = "\(lease)"
                max_recoveries = 3
                """
            return try RouterConfiguration.parse(toml: toml, providers: HandlerRegistry().providers)
        }

        func migrated() async throws -> PostgresPool {
            let pool = PostgresPool(url: postgresURL, size: 1)
            _ = try await PostgresMigrator(schema: schema).migrate(pool)
            return pool
        }

        func rows(_ pool: PostgresPool, _ sql: String) async throws -> [[String?]] {
            try await pool.withConnection { try $0.query(sql.replacingOccurrences(of: "{schema}", with: schema)).rows }
        }

        func drop(_ pool: PostgresPool) async {
            _ = try? await pool.withConnection { try $0.query("DROP SCHEMA \(schema) CASCADE") }
        }
    }

    static var quietLogger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }

    /// Runs `body` while a worker and a ledger shipper run, then stops both as `work` does: the
    /// worker at once (running jobs put back), then the shipper, once it stored what is left.
    static func withWorkerAndShipper(_ configuration: RouterConfiguration, driver: RedisQueueDriver, handlers: HandlerRegistry,
                                     pool: PostgresPool, _ body: () async throws -> Void) async throws {
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: handlers, logger: quietLogger)
        let shipper = LedgerShipper(log: RedisAttemptLog(driver: driver), pool: pool, settings: try #require(configuration.postgres),
                                    consumer: worker.workerID, logger: quietLogger)
        let running = Task { await worker.run() }
        let shipping = Task { await shipper.run() }
        var failure: (any Error)?
        do { try await body() } catch { failure = error }
        worker.shutdown(immediately: true)
        await running.value
        shipper.finish()
        await shipping.value
        if let failure { throw failure }
    }

    static func eventually(timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return try await condition()
    }

    @Test func everyOutcomeIsOneRowWithItsFacts() async throws {
        let setup = try Setup()
        let pool = try await setup.migrated()
        let configuration = try setup.configuration("""
            [types.ok]
            handler = "swift"
            [types.flaky]
            handler = "swift"
            max_attempts = 3
            backoff = { base = "10ms", max = "20ms" }
            [types.bad]
            handler = "swift"
            [types.slow]
            handler = "swift"
            priorities = { high = "\(setup.queue)" }
            """)
        let driver = try RedisQueueDriver(configuration: configuration, environment: [:])
        let runs = Mutex<[String: Int]>([:])
        var registry = HandlerRegistry()
        registry.register(type: "ok") { _, _ in }
        registry.register(type: "flaky") { job, _ in
            let run = runs.withLock { $0[job.id.rawValue, default: 0] += 1; return $0[job.id.rawValue] ?? 0 }
            if run == 1 { throw JobFailure("first run fails") }
        }
        registry.register(type: "bad") { _, _ in throw JobFailure("refused for good", permanent: true) }
        let slowStarted = Mutex(false)
        registry.register(type: "slow") { _, _ in
            slowStarted.withLock { $0 = true }
            try await Task.sleep(for: .seconds(60))
        }
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let ok = try await client.enqueue(type: "ok", payload: .object(["to": .string("a@example.org")]))
        let flaky = try await client.enqueue(type: "flaky")
        let bad = try await client.enqueue(type: "bad")
        // Not a job, and a type nobody declared: kept as dead letters, and recorded.
        _ = try await driver.command(["RPUSH", setup.queue, "{not json", #"{"id":"stranger","type":"nope"}"#])
        // A claim by a worker that vanished at once: recovered when its lease runs out, then run here.
        let ghost = driver.makeFetcher(queues: [setup.queue], label: "ghost", worker: "ghost-worker",
                                       terms: LeaseTerms(lease: .milliseconds(300), maxRecoveries: 3, ledger: configuration.ledgerTerms))
        let orphan = try await client.enqueue(type: "ok")
        try await driver.command(["LMOVE", setup.queue, setup.queue, "RIGHT", "LEFT"]).ignore()
        let ghostClaim = try await ghost.fetch(max: 1, wait: .milliseconds(100))
        #expect(ghostClaim.map(\.jobID) == [orphan.id])
        await ghost.close()

        var slowID: JobID?
        try await Self.withWorkerAndShipper(configuration, driver: driver, handlers: registry, pool: pool) {
            let stored = try await Self.eventually {
                try await setup.rows(pool, "SELECT count(*) FROM {schema}.attempts WHERE outcome <> 'requeued'").first?.first == "8"
            }
            #expect(stored)
            // One still running at shutdown: put back, recorded as requeued.
            slowID = try await client.enqueue(type: "slow", priority: "high").id
            // Its handler must have started: a job claimed but not yet started when the signal comes is
            // put back untouched, and no attempt is recorded for it (none ran).
            #expect(await Self.eventually { slowStarted.withLock { $0 } })
        }
        let slow = try #require(slowID)

        let table = try await setup.rows(pool, """
            SELECT job_id, outcome, coalesce(attempt::text, '-'), coalesce(error, ''), coalesce(type, '-'),
                   coalesce(payload::text, '-'), coalesce(worker_group, '-'), worker, started_at IS NOT NULL, priority
            FROM {schema}.attempts ORDER BY finished_at
            """)
        func outcomes(_ id: String) -> [String] { table.filter { $0[0] == id }.compactMap { $0[1] } }
        #expect(outcomes(ok.id.rawValue) == ["succeeded"])
        #expect(table.first { $0[0] == ok.id.rawValue }?[5] == #"{"to": "a@example.org"}"#)
        #expect(outcomes(flaky.id.rawValue) == ["failed", "succeeded"])
        #expect(table.filter { $0[0] == flaky.id.rawValue }.map { $0[2] } == ["1", "2"])
        #expect(outcomes(bad.id.rawValue) == ["dead"])
        #expect(table.first { $0[0] == bad.id.rawValue }?[3] == "refused for good")
        #expect(outcomes("stranger") == ["dead"])
        #expect(table.first { $0[0] == "stranger" }?[3].map { $0.hasPrefix("unknown job type 'nope'") } == true)
        let malformed = table.filter { $0[1] == "malformed" }
        #expect(malformed.count == 1 && malformed.first?[3]?.hasPrefix("not a job: not valid JSON") == true)
        // The ghost's attempt is its own, recorded by recovery (no group known), then the real run.
        #expect(outcomes(orphan.id.rawValue) == ["recovered", "succeeded"])
        let recovered = try #require(table.first { $0[0] == orphan.id.rawValue && $0[1] == "recovered" })
        #expect(recovered[7] == "ghost-worker" && recovered[6] == "-" && recovered[4] == "ok")
        #expect(outcomes(slow.rawValue) == ["requeued"])
        #expect(table.first { $0[0] == slow.rawValue }?[9] == "high")
        #expect(table.filter { $0[1] != "recovered" && $0[1] != "malformed" && $0[1] != "dead" }.allSatisfy { $0[6] == "g" && $0[8] == "t" })
        // Everything shipped was deleted from the stream.
        #expect(try await RedisAttemptLog(driver: driver).backlog() == AttemptLogBacklog(waiting: 0, dropped: 0))
        await setup.drop(pool)
        await cleanUp(driver, prefix: setup.prefix)
    }

    /// An attempt's wait, in `history` and `stats`, counts from when it became due (a delay, a
    /// retry's backoff), as the worker's log line and the wait histogram do, not from the job's
    /// first enqueue; the ledger keeps both times.
    @Test func anAttemptsWaitCountsFromWhenItBecameDue() async throws {
        let setup = try Setup()
        let pool = try await setup.migrated()
        let configuration = try setup.configuration("""
            [types.later]
            handler = "swift"
            [types.flaky]
            handler = "swift"
            backoff = { base = "1500ms", max = "1500ms" }
            """)
        let driver = try RedisQueueDriver(configuration: configuration, environment: [:])
        let runs = Mutex(0)
        var registry = HandlerRegistry()
        registry.register(type: "later") { _, _ in }
        registry.register(type: "flaky") { _, _ in
            if runs.withLock({ $0 += 1; return $0 }) == 1 { throw JobFailure("first run fails") }
        }
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let later = try #require(try await client.enqueue([JobRequest(type: "later")], after: .milliseconds(1500)).first)
        let flaky = try await client.enqueue(type: "flaky")
        try await Self.withWorkerAndShipper(configuration, driver: driver, handlers: registry, pool: pool) {
            let stored = try await Self.eventually {
                try await setup.rows(pool, "SELECT count(*) FROM {schema}.attempts").first?.first == "3"
            }
            #expect(stored)
        }

        let ledger = Ledger(pool: pool, schema: setup.schema)
        // Each attempt's own spans, as stored: due - enqueued, started - due.
        func spans(_ id: JobID) async throws -> [(delay: Double?, sinceDue: Double?)] {
            try await setup.rows(pool, """
                SELECT extract(epoch FROM due_at - enqueued_at), extract(epoch FROM started_at - due_at)
                FROM {schema}.attempts WHERE job_id = '\(id.rawValue)' ORDER BY finished_at
                """).map { row in (row[0].flatMap { Double($0) }, row[1].flatMap { Double($0) }) }
        }
        // Enqueued 1.5 s before it was due: its wait is what came after.
        let delayed = try #require(try await ledger.attempts(of: later.id.rawValue).first)
        let delayedSpans = try #require(try await spans(later.id).first)
        #expect(delayed.dueAt != nil && delayed.enqueuedAt != nil)
        #expect((delayedSpans.delay ?? 0) >= 1.4, "\(delayedSpans)")
        let delayedWait = try #require(delayed.wait)
        let sinceDue = try #require(delayedSpans.sinceDue)
        #expect(abs(delayedWait - sinceDue) < 0.001, "wait \(delayedWait) s, started \(sinceDue) s after it was due")
        // The retry: the first attempt had no due time; the second waited from its backoff's end.
        let retried = try await ledger.attempts(of: flaky.id.rawValue)
        let retriedSpans = try await spans(flaky.id)
        #expect(retried.map(\.outcome) == ["failed", "succeeded"])
        #expect(retried.first?.dueAt == nil && retried.last?.dueAt != nil)
        let retryWait = try #require(retried.last?.wait)
        let retrySinceDue = try #require(retriedSpans.last?.sinceDue)
        #expect(abs(retryWait - retrySinceDue) < 0.001, "wait \(retryWait) s, started \(retrySinceDue) s after its backoff")
        // stats counts the same wait (one attempt of `later`: its median is that attempt's).
        let stats = try await ledger.stats(since: .seconds(600))
        let laterMedian = try #require(stats.first { $0.type == "later" }?.wait.first ?? nil)
        #expect(abs(laterMedian - delayedWait) < 0.001, "\(stats)")
        await setup.drop(pool)
        await cleanUp(driver, prefix: setup.prefix)
    }

    @Test func aRecordDeliveredTwiceIsStoredOnceAndOnePostgresRefusesIsKeptWithoutItsPayload() async throws {
        let setup = try Setup()
        let pool = try await setup.migrated()
        let configuration = try setup.configuration("[types.ok]\nhandler = \"noop\"")
        let driver = try RedisQueueDriver(configuration: configuration, environment: [:])
        let key = "\(setup.prefix)-jr:events"
        let good = #"{"id":"j1","claim":"w/1.1","outcome":"succeeded","queue":"q","worker":"w","finished_at":1764662400.5,"entry":{"payload":{"n":1}}}"#
        // jsonb refuses \u0000; the record must still be kept, without its payload.
        let nul = #"{"id":"j2","claim":"w/1.2","outcome":"failed","queue":"q","worker":"w","error":"boom","finished_at":1764662401,"entry":{"payload":"a\u0000b"}}"#
        for record in [good, good, nul, "not json at all"] {
            _ = try await driver.command(["XADD", key, "*", "r", record])
        }
        _ = try await driver.command(["INCRBY", key + ":records", "4"])
        let shipper = LedgerShipper(log: RedisAttemptLog(driver: driver), pool: pool, settings: try #require(configuration.postgres),
                                    consumer: "c1", logger: Self.quietLogger)
        let shipping = Task { await shipper.run() }
        #expect(try await Self.eventually { try await RedisAttemptLog(driver: driver).backlog().waiting == 0 })
        shipper.finish()
        await shipping.value
        let rows = try await setup.rows(pool, "SELECT job_id, outcome, coalesce(payload::text, '-'), coalesce(error, '') FROM {schema}.attempts ORDER BY job_id")
        #expect(rows.count == 3, "\(rows)")
        #expect(rows.first { $0[0] == "j1" }?[2] == #"{"n": 1}"#)
        let refused = try #require(rows.first { $0[0] == "j2" })
        #expect(refused[1] == "failed" && refused[2] == "-" && refused[3]?.hasPrefix("boom; ledger record not storable as sent") == true)
        let unreadable = try #require(rows.first { $0[0]?.hasPrefix("unreadable-") == true })
        #expect(unreadable[1] == "malformed")
        #expect(shipper.state.stored == 4)
        await setup.drop(pool)
        await cleanUp(driver, prefix: setup.prefix)
    }

    @Test func theBoundDropsTheOldestRecordsAndCountsThem() async throws {
        let setup = try Setup()
        let configuration = try setup.configuration("[types.ok]\nhandler = \"noop\"")
        let driver = RedisQueueDriver(endpoint: try RedisEndpoint(url: setup.redisURL), namespace: "\(setup.prefix)-jr", ledgerBuffer: 5)
        let client = JobRouterClient(configuration: configuration, driver: driver)
        for _ in 0..<8 { _ = try await client.enqueue(type: "ok") }
        let fetcher = driver.makeFetcher(queues: [setup.queue], label: "t", worker: "w", terms: LeaseTerms(lease: .seconds(30), maxRecoveries: 1))
        let claims = try await fetcher.fetch(max: 8, wait: .milliseconds(100))
        #expect(claims.count == 8)
        for claim in claims {
            let record = AttemptRecord(jobID: claim.jobID, claim: claim.token, type: "ok", priority: nil, queue: claim.queue,
                                       group: "g", attempt: 1, outcome: .succeeded, error: nil, worker: "w",
                                       enqueuedAt: nil, startedAt: nil, entry: nil)
            #expect(try await driver.complete(claim, attempt: record) == .applied)
        }
        #expect(try await RedisAttemptLog(driver: driver).backlog() == AttemptLogBacklog(waiting: 5, dropped: 3))
        // A settle that finds its claim gone writes nothing: only durable outcomes are recorded.
        #expect(try await driver.complete(claims[0], attempt: AttemptRecord(
            jobID: claims[0].jobID, claim: claims[0].token, type: "ok", priority: nil, queue: setup.queue, group: "g", attempt: 1,
            outcome: .succeeded, error: nil, worker: "w", enqueuedAt: nil, startedAt: nil, entry: nil)) == .alreadySettled)
        #expect(try await RedisAttemptLog(driver: driver).backlog() == AttemptLogBacklog(waiting: 5, dropped: 3))
        await fetcher.close()
        await cleanUp(driver, prefix: setup.prefix)
    }

    @Test func manyConcurrentSettlesEachWriteExactlyOneRecord() async throws {
        let setup = try Setup()
        let configuration = try setup.configuration("[types.ok]\nhandler = \"noop\"")
        let driver = try RedisQueueDriver(configuration: configuration, environment: [:])
        let client = JobRouterClient(configuration: configuration, driver: driver)
        _ = try await client.enqueue((0..<400).map { _ in JobRequest(type: "ok") })
        let fetcher = driver.makeFetcher(queues: [setup.queue], label: "t", worker: "w", terms: LeaseTerms(lease: .seconds(30), maxRecoveries: 1))
        let claims = try await fetcher.fetch(max: 400, wait: .milliseconds(100))
        #expect(claims.count == 400)
        // Each claim settled twice at once (a retried call racing the first): one record per claim.
        let applied = try await withThrowingTaskGroup(of: SettleResult.self) { group in
            for claim in claims + claims {
                let record = AttemptRecord(jobID: claim.jobID, claim: claim.token, type: "ok", priority: nil, queue: claim.queue,
                                           group: "g", attempt: 1, outcome: .succeeded, error: nil, worker: "w",
                                           enqueuedAt: nil, startedAt: nil, entry: nil)
                group.addTask { try await driver.complete(claim, attempt: record) }
            }
            return try await group.reduce(into: [SettleResult]()) { $0.append($1) }
        }
        #expect(applied.filter { $0 == .applied }.count == 400)
        #expect(try await RedisAttemptLog(driver: driver).backlog().waiting == 400)
        await fetcher.close()
        await cleanUp(driver, prefix: setup.prefix)
    }

    @Test func rowsOlderThanRetainArePrunedInBatches() async throws {
        let setup = try Setup()
        let pool = try await setup.migrated()
        var configuration = try setup.configuration("[types.ok]\nhandler = \"noop\"")
        configuration.postgres?.retain = .seconds(30 * 86_400)
        let driver = try RedisQueueDriver(configuration: configuration, environment: [:])
        // 12,000 rows from 40 days ago (more than two pruning statements) and one from today.
        _ = try await setup.rows(pool, """
            INSERT INTO {schema}.attempts (job_id, claim, queue, outcome, worker, finished_at)
            SELECT 'old' || n, 'c', 'q', 'succeeded', 'w', now() - interval '40 days' FROM generate_series(1, 12000) AS n
            RETURNING 1
            """)
        _ = try await setup.rows(pool, "INSERT INTO {schema}.attempts (job_id, claim, queue, outcome, worker, finished_at) VALUES ('new', 'c', 'q', 'succeeded', 'w', now()) RETURNING 1")
        let shipper = LedgerShipper(log: RedisAttemptLog(driver: driver), pool: PostgresPool(url: setup.postgresURL, size: 1),
                                    settings: try #require(configuration.postgres), consumer: "c1", logger: Self.quietLogger)
        let shipping = Task { await shipper.run() }
        let pruned = try await Self.eventually(timeout: .seconds(30)) {
            try await setup.rows(pool, "SELECT count(*) FROM {schema}.attempts").first?.first == "1"
        }
        shipper.finish()
        await shipping.value
        #expect(pruned)
        #expect(try await setup.rows(pool, "SELECT job_id FROM {schema}.attempts") == [["new"]])
        await setup.drop(pool)
        await cleanUp(driver, prefix: setup.prefix)
    }

    func cleanUp(_ driver: RedisQueueDriver, prefix: String) async {
        for pattern in ["\(prefix):*", "\(prefix)-jr:*"] {
            if case .array(let found)? = try? await driver.command(["KEYS", pattern]) {
                for case .string(let key) in found { _ = try? await driver.command(["DEL", String(decoding: key, as: UTF8.self)]) }
            }
        }
    }
}

extension RedisReply {
    func ignore() {}
}
