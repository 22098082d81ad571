import Foundation
import JobRouter
import JobRouterPostgres
import JobRouterRedis
import Testing

/// The ledger through the `jobrouter` binary: schema checks, history and stats, and a kill -9
/// loop over three worker processes against a real Redis and PostgreSQL.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct CLILedgerTests {
    var postgresURL: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["JOBROUTER_TEST_POSTGRES_URL"], !url.isEmpty else {
                throw TestSetupError("JOBROUTER_TEST_POSTGRES_URL is not set: run the suite with scripts/test.sh")
            }
            return url
        }
    }

    func writeConfig(_ keys: TestKeys, schema: String, body: String, postgres: Bool = true) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(keys.prefix)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent(postgres ? "queues.toml" : "plain.toml").path
        let table = postgres ? "[postgres]\nurl = \"\(try postgresURL)\"\nschema = \"\(schema)\"\n" : ""
        try """
            default_queue = "\(keys.queue("default"))"
            [redis]
            url = "\(try TestRedis.url)"
            namespace = "\(keys.namespace)"
            \(table)
            \(body)
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func schema() -> String { "t_cli_" + UUID().uuidString.prefix(8).lowercased() }

    @Test func schemaChecksHistoryAndStats() async throws {
        let keys = TestKeys()
        let schema = Self.schema()
        let body = """
            [types.ping]
            handler = "noop"
            [groups.g]
            queues = ["\(keys.queue("default"))"]
            """
        let config = try writeConfig(keys, schema: schema, body: body)
        // The ledger on and the schema never migrated: work refuses, in one line, saying what to run.
        let refused = try await runCLI(["work", "--config", config])
        #expect(refused.status == 1)
        #expect(refused.err.contains("schema \(schema) is at version 0") && refused.err.contains("run `jobrouter migrate`"), "\(refused.err)")
        #expect(refused.err.split(separator: "\n").count == 1)
        // Two migrations at once: both succeed, each version applied once.
        async let first = runCLI(["migrate", "--config", config])
        async let second = runCLI(["migrate", "--config", config])
        let (a, b) = try await (first, second)
        #expect(a.status == 0 && b.status == 0, "\(a.err) \(b.err)")
        #expect((a.out + b.out).components(separatedBy: "applied 2:").count == 2)
        #expect(try await runCLI(["migrate", "--config", config, "--status"]).out.contains("is up to date"))

        let enqueued = try await runCLI(["enqueue", "ping", "--config", config, "--payload", #"{"user":7}"#])
        let id = try #require(enqueued.out.split(separator: " ").first.map(String.init))
        let worker = try WorkerProcess(config: config, log: FileManager.default.temporaryDirectory.appendingPathComponent("\(keys.prefix)/w.log"))
        let pool = PostgresPool(url: try postgresURL, size: 1)
        let stored = await eventually(timeout: .seconds(20)) {
            (try? await pool.withConnection { try $0.query("SELECT count(*) AS n FROM \(schema).attempts") })?.value("n") == "1"
        }
        worker.terminate()
        #expect(stored)
        let history = try await runCLI(["history", id, "--config", config])
        #expect(history.status == 0)
        #expect(history.out.contains("succeeded") && history.out.contains("ATTEMPT"), "\(history.out)")
        let json = try await runCLI(["history", "--config", config, "--type", "ping", "--json"])
        guard case .array(let rows) = try JSONValue.parse(Data(json.out.utf8)) else { Issue.record("not an array: \(json.out)"); return }
        #expect(rows.count == 1)
        let fields = ["id", "type", "priority", "queue", "group", "attempt", "outcome", "error", "worker", "enqueued_at", "due_at", "started_at", "finished_at"]
        #expect(rows.first.map { row in fields.allSatisfy { row[$0] != nil } } == true)
        #expect(rows.first?["id"]?.stringValue == id && rows.first?["outcome"]?.stringValue == "succeeded")
        let stats = try await runCLI(["stats", "--config", config, "--since", "1h", "--json"])
        #expect(stats.out.contains(#""attempts":1"#) && stats.out.contains(#""type":"ping""#), "\(stats.out)")
        let unknown = try await runCLI(["history", "no-such-job", "--config", config])
        #expect(unknown.status == 1 && unknown.err == "jobrouter: no attempt of job no-such-job in the ledger\n")
        let badOutcome = try await runCLI(["history", "--config", config, "--outcome", "fine"])
        #expect(badOutcome.status == 1 && badOutcome.err.contains("--outcome: 'fine' is not one of"))
        // Without [postgres], one line saying what they need.
        let plain = try writeConfig(keys, schema: schema, body: body, postgres: false)
        for command in ["history", "stats"] {
            let result = try await runCLI([command, "--config", plain])
            #expect(result.status == 1 && result.err.contains("needs a [postgres] table") && result.err.split(separator: "\n").count == 1)
        }
        // A schema a version behind (an older JobRouter migrated it), then one never migrated: the
        // readers say what to run.
        _ = try await pool.withConnection { connection in
            try connection.query("ALTER TABLE \(schema).attempts DROP COLUMN due_at")
            try connection.query("DELETE FROM \(schema).schema_migrations WHERE version = 4")
        }
        for command in [["history", id], ["history"], ["stats"]] {
            let result = try await runCLI(command + ["--config", config])
            #expect(result.status == 1 && result.err.contains("schema \(schema) is at version 3, this JobRouter needs")
                    && result.err.contains("run `jobrouter migrate`") && result.err.split(separator: "\n").count == 1, "\(result.err)")
        }
        let fresh = try writeConfig(keys, schema: Self.schema(), body: body)
        let never = try await runCLI(["history", "--config", fresh])
        #expect(never.status == 1 && never.err.contains("is at version 0") && never.err.contains("run `jobrouter migrate`"), "\(never.err)")
        _ = try await pool.withConnection { try $0.query("DROP SCHEMA \(schema) CASCADE") }
    }

    @Test func killLoopOverThreeWorkersEveryRunIsInTheLedger() async throws {
        let keys = TestKeys()
        let schema = Self.schema()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(keys.prefix)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let runs = directory.appendingPathComponent("runs.txt")
        let command = "echo \"$JOB_ID\" >> \(runs.path); sleep 0.1"
        let config = try writeConfig(keys, schema: schema, body: """
            [types.record]
            handler = "exec"
            command = ["/bin/sh", "-c", \(JSONValue.string(command).jsonText)]
            [groups.chaos]
            queues = ["\(keys.queue("default"))"]
            concurrency = 2
            lease = "1s"
            max_recoveries = 100
            """)
        #expect(try await runCLI(["migrate", "--config", config]).status == 0)
        let driver = try TestRedis.driver(namespace: keys.namespace)
        let client = JobRouterClient(configuration: try RouterConfiguration.load(path: config), driver: driver)
        let total = 300
        let jobs = try await client.enqueue((0..<total).map { JobRequest(type: "record", payload: .integer(Int64($0))) })
        let environment = ["JOBROUTER_LEDGER_RECLAIM": "2"]
        func start(_ index: Int) throws -> WorkerProcess {
            try WorkerProcess(config: config, log: directory.appendingPathComponent("w\(index).log"), environment: environment)
        }
        var workers = try (0..<3).map(start)
        func remaining() async -> Int {
            let statistics = try? await driver.statistics(queues: [keys.queue("default")])
            return statistics?.queues.first.map { $0.depth + $0.inFlight + $0.scheduled } ?? -1
        }
        var kills = 0
        while kills < 6, await remaining() != 0 {
            try await Task.sleep(for: .milliseconds(Int.random(in: 700...1300)))
            let victim = Int.random(in: 0..<workers.count)
            workers[victim].kill9()
            kills += 1
            workers[victim] = try start(victim)
        }
        let drained = await eventually(timeout: .seconds(60)) { await remaining() == 0 }
        // Records a killed worker's shipper held are taken over by a live one (after 2 s here).
        let shipped = await eventually(timeout: .seconds(30)) { ((try? await RedisAttemptLog(driver: driver).backlog())?.waiting ?? -1) == 0 }
        for worker in workers { worker.terminate() }
        #expect(drained && shipped)

        let lines = try String(contentsOf: runs, encoding: .utf8).split(separator: "\n").map(String.init)
        var ran: [String: Int] = [:]
        for line in lines { ran[line, default: 0] += 1 }
        let pool = PostgresPool(url: try postgresURL, size: 1)
        let rows = try await pool.withConnection {
            try $0.query("SELECT job_id, outcome, count(*) FROM \(schema).attempts GROUP BY job_id, outcome").rows
        }
        var attempts: [String: Int] = [:]
        var succeeded: [String: Int] = [:]
        for row in rows {
            guard let id = row[0], let count = row[2].flatMap({ Int($0) }) else { continue }
            attempts[id, default: 0] += count
            if row[1] == "succeeded" { succeeded[id, default: 0] += count }
        }
        let extra = attempts.values.reduce(0, +) - lines.count
        print("ledger chaos: jobs \(total), kills \(kills), runs \(lines.count), ledger rows \(attempts.values.reduce(0, +))")
        // Every job ended exactly once, and every run that began is an attempt in the ledger. An
        // attempt may have no run line when its worker was killed before the command wrote it.
        #expect(jobs.allSatisfy { succeeded[$0.id.rawValue] == 1 })
        #expect(jobs.allSatisfy { (attempts[$0.id.rawValue] ?? 0) >= (ran[$0.id.rawValue] ?? 0) })
        #expect(extra >= 0 && extra <= kills * 2, "ledger rows beyond runs: \(extra)")
        #expect(kills >= 3)
        _ = try await pool.withConnection { try $0.query("DROP SCHEMA \(schema) CASCADE") }
        await cleanUp(driver, keys)
    }
}
