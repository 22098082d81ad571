import Foundation
import JobRouter
@testable import JobRouterPostgres
@testable import JobRouterRedis
import Logging
import Synchronization
import Testing

/// The outbox against a real PostgreSQL and Redis: a job exists exactly when the transaction that
/// enqueued it committed, is pushed once however the relay dies, and a row that cannot be routed
/// is kept with its reason.
@Suite(.timeLimit(.minutes(3)))
struct OutboxTests {
    typealias Setup = LedgerTests.Setup

    static let types = """
        [types.mail]
        handler = "noop"
        priorities = { high = "QUEUE:high", low = "QUEUE:low" }
        default_priority = "low"
        """

    func relay(_ setup: Setup, _ configuration: RouterConfiguration, driver: RedisQueueDriver,
               poll: Duration = .seconds(1)) throws -> OutboxRelay {
        var settings = OutboxRelay.Settings()
        settings.poll = poll
        return try OutboxRelay(configuration: configuration, driver: driver, logger: LedgerTests.quietLogger, settings: settings,
                               environment: ["JOBROUTER_POSTGRES_URL": setup.postgresURL])
    }

    func configuration(_ setup: Setup) throws -> RouterConfiguration {
        try setup.configuration(Self.types.replacingOccurrences(of: "QUEUE", with: setup.prefix))
    }

    func entries(_ driver: RedisQueueDriver, _ queue: String) async throws -> [JSONValue] {
        let replies = try await driver.command(["LRANGE", queue, "0", "-1"])
        return try (replies.array(for: "LRANGE") ?? []).map { try JSONValue.parse(Data(try $0.bytes(for: "LRANGE"))) }
    }

    @Test func rolledBackEnqueuesNothingAndCommittedOnesArePushedOnceRouted() async throws {
        let setup = try Setup()
        let pool = try await setup.migrated()
        defer { Task { await setup.drop(pool) } }
        let configuration = try configuration(setup)
        let driver = try RedisQueueDriver(configuration: configuration)
        let schema = setup.schema
        let ids = try await pool.withConnection { connection -> [String] in
            try connection.query("BEGIN")
            try connection.query("SELECT \(schema).enqueue('mail', '{\"n\":0}', 'high')")
            try connection.query("ROLLBACK")
            try connection.query("BEGIN")
            let sqlID = try connection.query("SELECT \(schema).enqueue('mail', '{\"n\":1}', 'high') AS id").value("id") ?? ""
            let later = try connection.query("SELECT \(schema).enqueue('mail', '{\"n\":2}', NULL, now() + interval '1 hour') AS id").value("id") ?? ""
            try connection.query("COMMIT")
            let swiftID = try connection.transaction { connection in
                try connection.enqueue(type: "mail", payload: .object(["n": .integer(3)]), id: "given-id", schema: schema)
            }
            return [sqlID, later, swiftID]
        }
        // JobRouter's id layout: the first 10 characters are the millisecond, so ids sort by time
        // (two made in the same millisecond in SQL are in random order).
        let alphabet = Set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
        #expect(ids[0].count == 26 && ids[1].count == 26 && ids[0].prefix(10) <= ids[1].prefix(10), "\(ids)")
        #expect(ids[0].allSatisfy(alphabet.contains) && ids[0] != ids[1], "\(ids)")
        #expect(ids[2] == "given-id")

        let report = try await relay(setup, configuration, driver: driver).drain()
        #expect(report.pushed == 3 && report.alreadyPushed == 0 && report.failed == 0, "\(report)")

        let high = try await entries(driver, "\(setup.prefix):high")
        let low = try await entries(driver, "\(setup.prefix):low")
        #expect(high.count == 1 && high.first?["id"]?.stringValue == ids[0] && high.first?["payload"]?["n"]?.intValue == 1)
        #expect(low.count == 1 && low.first?["id"]?.stringValue == "given-id" && low.first?["priority"]?.stringValue == "low")
        let scheduled = try await driver.command(["ZRANGE", "\(setup.prefix)-jr:scheduled", "0", "-1"]).array(for: "ZRANGE") ?? []
        #expect(scheduled.count == 1)
        let member = String(decoding: try scheduled.first?.bytes(for: "ZRANGE") ?? [], as: UTF8.self)
        #expect(member.hasPrefix("\(setup.prefix):low\n") && member.contains(ids[1]), "\(member)")
        #expect(try await setup.rows(pool, "SELECT count(*) FROM {schema}.outbox").first?.first == "0")
        // Confirmed rows are forgotten in Redis.
        #expect(try await driver.command(["ZCARD", "\(setup.prefix)-jr:relayed"]).integer(for: "ZCARD") == 0)
    }

    @Test func unroutableRowsAreKeptWithTheirReasonAndLedgeredAsDead() async throws {
        let setup = try Setup()
        let pool = try await setup.migrated()
        defer { Task { await setup.drop(pool) } }
        let configuration = try configuration(setup)
        let driver = try RedisQueueDriver(configuration: configuration)
        try await pool.withConnection { [schema = setup.schema] connection in
            try connection.query("SELECT \(schema).enqueue('nope', '{}')")
            try connection.query("SELECT \(schema).enqueue('mail', '{}', 'urgent')")
            try connection.query("SELECT \(schema).enqueue('mail', '{\"ok\":true}')")
        }
        let report = try await relay(setup, configuration, driver: driver).drain()
        #expect(report.pushed == 1 && report.failed == 2, "\(report)")
        let kept = try await setup.rows(pool, "SELECT type, error FROM {schema}.outbox WHERE failed_at IS NOT NULL ORDER BY seq")
        #expect(kept.count == 2)
        #expect(kept.first?[1]?.contains("unknown job type 'nope'") == true, "\(kept)")
        #expect(kept.last?[1]?.contains("urgent") == true, "\(kept)")
        let dead = try await setup.rows(pool, "SELECT type, outcome, error FROM {schema}.attempts ORDER BY type")
        #expect(dead.map { $0[1] } == ["dead", "dead"], "\(dead)")
        // A second pass leaves them be: kept, not retried, not deleted.
        let again = try await relay(setup, configuration, driver: driver).drain()
        #expect(again.rows == 0)
        #expect(try await setup.rows(pool, "SELECT count(*) FROM {schema}.outbox").first?.first == "2")
        #expect(try await entries(driver, "\(setup.prefix):low").count == 1)
    }

    /// A unique type through the outbox takes its lock like an enqueue: a second row with the same
    /// key while the first job holds it is not pushed; a row without the key is kept with why.
    @Test func uniqueTypesTakeTheirLockThroughTheOutbox() async throws {
        let setup = try Setup()
        let pool = try await setup.migrated()
        defer { Task { await setup.drop(pool) } }
        let configuration = try setup.configuration(Self.types.replacingOccurrences(of: "QUEUE", with: setup.prefix) + """

            [types.sync]
            handler = "noop"
            priorities = { default = "\(setup.prefix):sync" }
            default_priority = "default"
            unique = { key = ["user_id"], for = "10m" }
            """)
        let driver = try RedisQueueDriver(configuration: configuration)
        try await pool.withConnection { [schema = setup.schema] connection in
            try connection.query("SELECT \(schema).enqueue('sync', '{\"user_id\":1}')")
            try connection.query("SELECT \(schema).enqueue('sync', '{\"user_id\":1}')")
            try connection.query("SELECT \(schema).enqueue('sync', '{\"user_id\":2}')")
            try connection.query("SELECT \(schema).enqueue('sync', '{\"name\":\"x\"}')")
        }
        let report = try await relay(setup, configuration, driver: driver).drain()
        #expect(report.pushed == 2 && report.failed == 1, "\(report)")
        let queued = try await entries(driver, "\(setup.prefix):sync")
        #expect(queued.compactMap { $0["payload"]?["user_id"]?.intValue }.sorted() == [1, 2])
        let kept = try await setup.rows(pool, "SELECT error FROM {schema}.outbox WHERE failed_at IS NOT NULL")
        #expect(kept.first?.first??.contains("unique by user_id") == true, "\(kept)")
        // An enqueue from Swift now finds the lock the relayed job took.
        let client = JobRouterClient(configuration: configuration, driver: driver)
        #expect(try await client.submit([JobRequest(type: "sync", payload: .object(["user_id": .integer(1)]))])[0].isDuplicate)
    }

    @Test func aRelayThatDiesBetweenPushAndCommitPushesNothingTwice() async throws {
        let setup = try Setup()
        let pool = try await setup.migrated()
        defer { Task { await setup.drop(pool) } }
        let configuration = try configuration(setup)
        let driver = try RedisQueueDriver(configuration: configuration)
        _ = try await pool.withConnection { [schema = setup.schema] connection in
            try connection.query("SELECT \(schema).enqueue('mail', to_jsonb(n)) FROM generate_series(1, 50) AS n")
        }
        struct Died: Error {}
        let first = try relay(setup, configuration, driver: driver)
        _ = try await first.drain(timeout: .seconds(5))  // takes the lock (nothing else to do: rows exist, so it relays them)
        // Put the rows back as a relay that died before its commit would have left them.
        _ = try await pool.withConnection { [schema = setup.schema] connection in
            try connection.query("SELECT \(schema).enqueue('mail', to_jsonb(n)) FROM generate_series(51, 100) AS n")
        }
        await #expect(throws: Died.self) { try await first.relayBatch(beforeCommit: { throw Died() }) }
        #expect(try await setup.rows(pool, "SELECT count(*) FROM {schema}.outbox").first?.first == "50")
        #expect(try await entries(driver, "\(setup.prefix):low").count == 100)

        let report = try await first.drain()
        #expect(report.pushed == 0 && report.alreadyPushed == 50, "\(report)")
        let queued = try await entries(driver, "\(setup.prefix):low")
        #expect(queued.count == 100)
        #expect(Set(queued.compactMap { $0["payload"]?.intValue }) == Set(1...100))
        #expect(try await setup.rows(pool, "SELECT count(*) FROM {schema}.outbox").first?.first == "0")
    }

    @Test func oneRelayAtATimeAndAnotherTakesOverWhenItsSessionEnds() async throws {
        let setup = try Setup()
        let pool = try await setup.migrated()
        defer { Task { await setup.drop(pool) } }
        let configuration = try configuration(setup)
        let driver = try RedisQueueDriver(configuration: configuration)
        var first: OutboxRelay? = try relay(setup, configuration, driver: driver)
        _ = try await first?.drain()
        let second = try relay(setup, configuration, driver: driver)
        await #expect(throws: OutboxError.self) { try await second.drain(timeout: .milliseconds(600)) }
        first = nil  // its connection closes, and with it the session lock
        _ = try await pool.withConnection { [schema = setup.schema] connection in try connection.query("SELECT \(schema).enqueue('mail', '1')") }
        let report = try await second.drain(timeout: .seconds(10))
        #expect(report.pushed == 1)
        _ = first
    }

    @Test func aCommitWakesTheRelayWithoutWaitingForThePoll() async throws {
        let setup = try Setup()
        let pool = try await setup.migrated()
        defer { Task { await setup.drop(pool) } }
        let configuration = try configuration(setup)
        let driver = try RedisQueueDriver(configuration: configuration)
        // A poll of 30 s: only the notification can bring the rows in time.
        let relay = try relay(setup, configuration, driver: driver, poll: .seconds(30))
        let running = Task { await relay.run() }
        defer { relay.finish(); running.cancel() }
        try await Task.sleep(for: .milliseconds(500))  // it takes the lock and listens
        var latencies: [Duration] = []
        for n in 1...5 {
            let committed = ContinuousClock.now
            _ = try await pool.withConnection { [schema = setup.schema] connection in
                try connection.query("SELECT \(schema).enqueue('mail', to_jsonb($1::int))", [String(n)])
            }
            let arrived = await LedgerTests.eventually(timeout: .seconds(20)) {
                (try? await entries(driver, "\(setup.prefix):low").count) == n
            }
            #expect(arrived, "job \(n) did not arrive within 20 s")
            latencies.append(ContinuousClock.now - committed)
        }
        // Each commit comes just after the relay's last wake-up, so the poll alone would bring it
        // ~30 s later; alone this takes milliseconds, the suite's first seconds on CI took 2 s.
        #expect(latencies.allSatisfy { $0 < .seconds(10) }, "\(latencies)")
    }
}
