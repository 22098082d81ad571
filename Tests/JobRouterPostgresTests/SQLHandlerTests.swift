import Foundation
import JobRouter
import JobRouterPostgres
import JobRouterRedis
import Logging
import Synchronization
import Testing

/// `handler = "sql"` against a real PostgreSQL and Redis: the SQLSTATE decides retry or dead.
@Suite(.timeLimit(.minutes(2)))
struct SQLHandlerTests {
    final class Outcomes: JobEventRecorder, Sendable {
        private let events = Mutex<[JobEvent]>([])
        func record(_ event: JobEvent) { events.withLock { $0.append(event) } }
        var succeeded: Int { events.withLock { $0 }.filter { if case .succeeded = $0 { true } else { false } }.count }
        var retried: [String] { events.withLock { $0 }.compactMap { if case .failed(_, _, _, _, let error, _) = $0 { error } else { nil } } }
        var dead: [DeadLetter] { events.withLock { $0 }.compactMap { if case .deadLettered(let record, _) = $0 { record } else { nil } } }
    }

    static func eventually(timeout: Duration = .seconds(15), _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }

    @Test func statementsRunAndTheirSQLStateDecidesTheOutcome() async throws {
        let redisURL = try #require(ProcessInfo.processInfo.environment["JOBROUTER_TEST_REDIS_URL"], "run with scripts/test.sh")
        let postgresURL = try TestPostgres.url
        let schema = TestPostgres.schema()
        let prefix = "sql-\(UUID().uuidString.prefix(8).lowercased())"
        let admin = PostgresPool(url: postgresURL, size: 1)
        _ = try await admin.withConnection { connection in
            try connection.query("CREATE SCHEMA \(schema)")
            return try connection.query("CREATE TABLE \(schema).users (email text PRIMARY KEY, job text)")
        }
        let toml = """
            default_queue = "\(prefix):default"
            [redis]
            url = "\(redisURL)"
            namespace = "\(prefix)-jr"
            [postgres]
            url = "postgres://nobody@127.0.0.1:1/unused"
            pool = 2
            [types.signup]
            handler = "sql"
            sql = "INSERT INTO \(schema).users (email, job) VALUES ($1::jsonb->>'email', $2)"
            max_attempts = 1
            [types.slow]
            handler = "sql"
            sql = "SELECT pg_sleep(($1::jsonb->>'seconds')::float)"
            timeout = "1s"
            max_attempts = 2
            backoff = { base = "10ms", max = "20ms" }
            [types.broken]
            handler = "sql"
            sql = "SELEKT 1 WHERE $1::text IS NOT NULL AND $2::text IS NOT NULL"
            [groups.g]
            queues = ["\(prefix):default"]
            concurrency = 2
            """
        var registry = HandlerRegistry()
        registry.add(SQLHandlerProvider(environment: ["JOBROUTER_POSTGRES_URL": postgresURL]))
        let configuration = try RouterConfiguration.parse(toml: toml, providers: registry.providers)
        let driver = try RedisQueueDriver(configuration: configuration, environment: [:])
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let first = try await client.enqueue(type: "signup", payload: .object(["email": .string("a@example.org")]))
        let second = try await client.enqueue(type: "signup", payload: .object(["email": .string("a@example.org")]))
        _ = try await client.enqueue(type: "slow", payload: .object(["seconds": .number(2)]))
        _ = try await client.enqueue(type: "broken")
        let outcomes = Outcomes()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: registry, logger: logger, recorders: [outcomes])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await worker.run() }
            #expect(await Self.eventually { outcomes.succeeded == 1 && outcomes.dead.count == 3 })
            worker.shutdown()
            try await group.waitForAll()
        }
        // One row went in (whichever ran first), with its job id as $2.
        let stored = try await admin.withConnection { try $0.query("SELECT email, job FROM \(schema).users") }
        #expect(stored.rows.count == 1 && stored.rows.first?.first == "a@example.org")
        #expect([first.id.rawValue, second.id.rawValue].contains(stored.rows.first?[1] ?? ""))
        let reasons = outcomes.dead.map(\.reason)
        // A unique violation is dead at once, with its SQLSTATE (attempt 1 of max_attempts 1 either way).
        #expect(reasons.contains { $0.hasPrefix("SQLSTATE 23505: duplicate key value") })
        // A syntax error is dead at once too: permanent, whatever max_attempts says.
        #expect(reasons.contains { $0.hasPrefix("SQLSTATE 42601: syntax error") })
        // A statement past its timeout is retried, not dead at once: PostgreSQL cancels it first
        // (57014, statement_timeout is 100 ms under the type's 1 s); on a loaded machine JobRouter's
        // own timer may still win that race, which is a retry too.
        let slow = { (text: String) in text.contains("SQLSTATE 57014") || text.contains("timed out after 1s") }
        #expect(outcomes.retried.contains(where: slow), "\(outcomes.retried)")
        #expect(reasons.contains { $0.hasPrefix("failed 2 time(s), the last: ") && slow($0) }, "\(reasons)")
        _ = try await admin.withConnection { try $0.query("DROP SCHEMA \(schema) CASCADE") }
    }

    @Test func swiftHandlersGetThePoolThroughTheirContext() async throws {
        let redisURL = try #require(ProcessInfo.processInfo.environment["JOBROUTER_TEST_REDIS_URL"], "run with scripts/test.sh")
        let prefix = "ctx-\(UUID().uuidString.prefix(8).lowercased())"
        var configuration = RouterConfiguration(defaultQueue: "\(prefix):default")
        configuration.redis = RedisSettings(url: redisURL, namespace: "\(prefix)-jr")
        configuration.types["lookup"] = JobTypeConfiguration(name: "lookup", handler: .swift)
        configuration.groups["g"] = WorkerGroupConfiguration(name: "g", queues: ["\(prefix):default"])
        try configuration.validate()
        let seen = Mutex<[Int]>([])
        var registry = HandlerRegistry()
        registry.usePostgres(PostgresPool(url: try TestPostgres.url, size: 2))
        registry.register(type: "lookup") { job, context in
            guard let pool = context.postgres else { throw JobFailure("no pool", permanent: true) }
            let n = job.payload["n"]?.intValue ?? 0
            let rows = try await pool.withConnection { try $0.query("SELECT $1::int * 2 AS doubled, true AS ok", [String(n)]) }
            if rows.bool("ok") == true, let doubled = rows.int("doubled") { seen.withLock { $0.append(doubled) } }
        }
        let driver = try RedisQueueDriver(configuration: configuration, environment: [:])
        _ = try await JobRouterClient(configuration: configuration, driver: driver).enqueue(type: "lookup", payload: .object(["n": .integer(21)]))
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: registry, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await worker.run() }
            #expect(await Self.eventually { seen.withLock { $0 } == [42] })
            worker.shutdown()
            try await group.waitForAll()
        }
    }

    @Test func classification() {
        func failure(_ state: String) -> JobFailure {
            PostgresError(code: .query, sqlState: state, message: "m").jobFailure
        }
        for state in ["08006", "40001", "40P01", "53300", "57014", "57P01", "55P03"] { #expect(!failure(state).permanent, "\(state)") }
        for state in ["22P02", "23505", "23503", "42601", "42703"] { #expect(failure(state).permanent, "\(state)") }
        #expect(PostgresError(code: .connection, message: "gone").jobFailure.permanent == false)
    }
}
