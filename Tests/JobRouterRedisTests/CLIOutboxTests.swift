import Foundation
import JobRouter
import JobRouterPostgres
import JobRouterRedis
import Logging
import Testing

/// The outbox through the `jobrouter` binary against a real Redis and PostgreSQL: `status`,
/// `relay --once`, `work` relaying, and a kill -9 loop over relay processes while clients commit.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct CLIOutboxTests {
    let ledger = CLILedgerTests()

    func setUp() async throws -> (keys: TestKeys, schema: String, config: String, pool: PostgresPool) {
        let keys = TestKeys()
        let schema = CLILedgerTests.schema()
        let body = """
            [types.ping]
            handler = "noop"
            priorities = { high = "\(keys.queue("high"))", low = "\(keys.queue("low"))" }
            default_priority = "low"
            [groups.g]
            queues = ["\(keys.queue("high"))", "\(keys.queue("low"))"]
            """
        let config = try ledger.writeConfig(keys, schema: schema, body: body)
        try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: "schema = \"\(schema)\"", with: "schema = \"\(schema)\"\noutbox = true")
            .write(toFile: config, atomically: true, encoding: .utf8)
        #expect(try await runCLI(["migrate", "--config", config]).status == 0)
        return (keys, schema, config, PostgresPool(url: try ledger.postgresURL, size: 2))
    }

    @Test func statusRelayOnceAndWorkRelaying() async throws {
        let (keys, schema, config, pool) = try await setUp()
        _ = try await pool.withConnection { connection in
            try connection.query("SELECT \(schema).enqueue('ping', '{\"n\":1}', 'high')")
            try connection.query("SELECT \(schema).enqueue('ping', '{\"n\":2}')")
            try connection.query("SELECT \(schema).enqueue('nope', '{}')")
        }
        let before = try await runCLI(["status", "--config", config])
        #expect(before.out.contains("outbox: 3 row(s) waiting for the relay, oldest"), "\(before.out)")
        let once = try await runCLI(["relay", "--once", "--config", config])
        #expect(once.status == 0 && once.out.contains("relayed 2, already pushed 0, kept as failed 1"), "\(once.out) \(once.err)")
        #expect(once.out.contains("unknown job type 'nope'"), "the kept row is logged with its reason: \(once.out)")
        let after = try await runCLI(["status", "--config", config, "--json"])
        let outbox = try JSONValue.parse(Data(after.out.utf8))["outbox"]
        #expect(outbox?["waiting"]?.intValue == 0 && outbox?["failed"]?.intValue == 1, "\(after.out)")
        #expect(try await runCLI(["status", "--config", config]).out.contains("1 FAILED"))

        // `work` with outbox = true relays a row committed while it runs, and runs the job.
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("\(keys.prefix)/work.log")
        let worker = try WorkerProcess(config: config, log: log)
        _ = try await pool.withConnection { connection in try connection.query("SELECT \(schema).enqueue('ping', '{\"n\":3}', 'high')") }
        let ran = await eventually(timeout: .seconds(20)) {
            (try? await pool.withConnection {
                try $0.query("SELECT count(*) AS n FROM \(schema).attempts WHERE outcome = 'succeeded' AND payload->>'n' = '3'")
            })?.value("n") == "1"
        }
        await worker.stop()
        #expect(ran, "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
    }

    @Test func killLoopOverRelaysPushesEveryCommittedRowOnce() async throws {
        let (keys, schema, config, pool) = try await setUp()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(keys.prefix)
        // Two clients commit 3,000 rows, 25 per transaction, while relays are SIGKILLed.
        let finished = Observations<Int>()
        let clients = (0..<2).map { client in
            Task {
                defer { finished.append(client) }
                for batch in 0..<60 {
                    _ = try await pool.withTransaction { connection in
                        try connection.query("""
                            SELECT count(\(schema).enqueue('ping', jsonb_build_object('c', \(client), 'n', n)))
                            FROM generate_series(\(batch * 25), \(batch * 25 + 24)) AS n
                            """)
                    }
                    try await Task.sleep(for: .milliseconds(60))
                }
            }
        }
        var kills = 0
        while finished.all.count < clients.count {
            kills += 1
            let relay = try WorkerProcess(config: config, log: directory.appendingPathComponent("relay\(kills).log"), command: "relay")
            try await Task.sleep(for: .milliseconds(Int.random(in: 300...800)))
            await relay.stop(SIGKILL)
        }
        for client in clients { try await client.value }
        let last = try await runCLI(["relay", "--once", "--config", config])
        #expect(last.status == 0, "\(last.err)")
        let driver = try TestRedis.driver(namespace: keys.namespace)
        let ids = try await listContents(driver, keys.queue("low")).compactMap { try? JSONValue.parse(Data($0.utf8))["id"]?.stringValue }
        print("outbox kill loop: rows 3000, relays killed \(kills), in redis \(ids.count), distinct \(Set(ids).count), last pass: \(last.out)")
        #expect(ids.count == 3000 && Set(ids).count == 3000)
        #expect(kills >= 3)
        let left = try await pool.withConnection { try $0.query("SELECT count(*) AS n FROM \(schema).outbox").value("n") }
        #expect(left == "0")
        await cleanUp(driver, keys)
    }

    @Test func rowsWaitInPostgresWhileRedisIsDownThenFlow() async throws {
        let redis = try PrivateRedis()
        try await redis.start()
        let keys = TestKeys()
        let schema = CLILedgerTests.schema()
        let postgresURL = try ledger.postgresURL
        let configuration = try RouterConfiguration.parse(toml: """
            default_queue = "\(keys.queue("default"))"
            [redis]
            url = "\(redis.url)"
            namespace = "\(keys.namespace)"
            [postgres]
            url = "\(postgresURL)"
            schema = "\(schema)"
            outbox = true
            [types.ping]
            handler = "noop"
            [groups.g]
            queues = ["\(keys.queue("default"))"]
            """, providers: HandlerRegistry().providers)
        let pool = PostgresPool(url: postgresURL, size: 1)
        _ = try await PostgresMigrator(schema: schema).migrate(pool)
        let driver = RedisQueueDriver(endpoint: try RedisEndpoint(url: redis.url), namespace: keys.namespace)
        var settings = OutboxRelay.Settings()
        settings.poll = .milliseconds(200)
        let lines = Observations<String>()
        var logger = Logger(label: "test") { _ in CapturingLogHandler(lines: lines) }
        logger.logLevel = .info
        let relay = try OutboxRelay(configuration: configuration, driver: driver, logger: logger, settings: settings)
        let running = Task { await relay.run() }
        defer { relay.finish(); running.cancel() }
        func waiting() async throws -> String? {
            try await pool.withConnection { try $0.query("SELECT count(*) AS n FROM \(schema).outbox").value("n") }
        }
        await redis.stop()
        _ = try await pool.withConnection { connection in
            try connection.query("SELECT count(\(schema).enqueue('ping', to_jsonb(n))) FROM generate_series(1, 100) AS n")
        }
        try await Task.sleep(for: .seconds(2))
        #expect(try await waiting() == "100", "rows wait in PostgreSQL while Redis is down")
        try await redis.start()
        let flowed = await eventually(timeout: .seconds(20)) {
            let left = try? await waiting()
            let queued = try? await listContents(driver, keys.queue("default")).count
            return left == "0" && queued == 100
        }
        let queued = try await listContents(driver, keys.queue("default")).count
        let left = try await waiting() ?? "?"
        #expect(flowed, "outbox \(left) rows, queue \(queued)")
        // The outage is logged once, and its end once; the relay said once that it relays.
        let logged = lines.all
        #expect(logged.filter { $0.contains("cannot relay") }.count == 1, "\(logged)")
        #expect(logged.filter { $0.contains("relaying again") }.count == 1, "\(logged)")
        #expect(logged.filter { $0.contains("this process relays") }.count == 1, "\(logged)")
        await redis.stop()
    }
}

/// Keeps every log message, for tests that check what was said (and how often).
struct CapturingLogHandler: LogHandler {
    let lines: Observations<String>
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lines.append("\(event.level) \(event.message)")
    }
}
