import Foundation
import JobRouter
import JobRouterPostgres
import JobRouterRedis
import Logging
import Synchronization
import Testing

/// The ledger while PostgreSQL is paused (SIGSTOP) and then really stopped, in the middle of a
/// drain: jobs go on, records wait in Redis, and every attempt reaches the table exactly once.
/// Also `sql` jobs across a restart of that server. Uses the second PostgreSQL that scripts/test.sh
/// starts for these tests alone; they take turns with it.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct LedgerOutageTests {
    /// The outage server: its URL, data directory and binaries.
    struct Server {
        let url: String
        let data: String
        let bin: String
        let port: String

        init() throws {
            let environment = ProcessInfo.processInfo.environment
            guard let url = environment["JOBROUTER_TEST_POSTGRES_OUTAGE_URL"], let data = environment["JOBROUTER_TEST_POSTGRES_OUTAGE_DATA"],
                  let bin = environment["JOBROUTER_TEST_POSTGRES_BIN"] else {
                throw TestPostgres.SetupError(description: "JOBROUTER_TEST_POSTGRES_OUTAGE_* is not set: run the suite with scripts/test.sh")
            }
            self.url = url
            self.data = data
            self.bin = bin
            port = url.split(separator: ":").last.map { String($0.prefix(while: \.isNumber)) } ?? ""
        }

        /// The postmaster and every process it forked (the backends).
        func processes() throws -> [pid_t] {
            let text = try String(contentsOfFile: data + "/postmaster.pid", encoding: .utf8)
            guard let master = text.split(separator: "\n").first.flatMap({ pid_t($0) }) else { return [] }
            var found = [master]
            for name in try FileManager.default.contentsOfDirectory(atPath: "/proc") {
                guard let pid = pid_t(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                      let close = stat.lastIndex(of: ")") else { continue }
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                if fields.count > 1, pid_t(fields[1]) == master { found.append(pid) }
            }
            return found
        }

        func signal(_ number: Int32) throws {
            for pid in try processes() { kill(pid, number) }
        }

        /// Runs pg_ctl (as the `postgres` user when the suite runs as root: it refuses root) and
        /// waits for it with waitpid (Foundation's Process can miss the exit of a child whose own
        /// child, the server, lives on).
        func pgctl(_ arguments: [String]) throws {
            let argv = (getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--"] : []) + [bin + "/pg_ctl"] + arguments
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
            var pointers = argv.map { strdup($0) } + [nil]
            defer { for pointer in pointers { free(pointer) } }
            var pid: pid_t = 0
            guard posix_spawn(&pid, argv[0], &actions, nil, &pointers, environ) == 0 else {
                throw TestPostgres.SetupError(description: "cannot run \(argv[0])")
            }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            guard status == 0 else { throw TestPostgres.SetupError(description: "pg_ctl \(arguments.last ?? "") failed (\(status))") }
        }

        func stop() throws { try pgctl(["-D", data, "-m", "fast", "-w", "stop"]) }

        func start() throws {
            let socketDirectory = URL(fileURLWithPath: data).deletingLastPathComponent().path
            try pgctl(["-D", data, "-l", socketDirectory + "/postgres.log", "-w", "-t", "30", "-o",
                       "-c listen_addresses=127.0.0.1 -p \(port) -k \(socketDirectory) -c fsync=off", "start"])
        }
    }

    @Test func pausedThenStoppedMidDrainEveryAttemptIsStoredExactlyOnce() async throws {
        let server = try Server()
        let setup = try LedgerTests.Setup(postgresURL: server.url)
        let pool = try await setup.migrated()
        let configuration = try setup.configuration("[types.work]\nhandler = \"swift\"", concurrency: 4)
        let driver = try RedisQueueDriver(configuration: configuration, environment: [:])
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let runs = Mutex(0)
        var registry = HandlerRegistry()
        registry.register(type: "work") { _, _ in
            runs.withLock { $0 += 1 }
            try await Task.sleep(for: .milliseconds(2))
        }
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: registry, logger: LedgerTests.quietLogger)
        let shipper = LedgerShipper(log: RedisAttemptLog(driver: driver), pool: PostgresPool(url: server.url, size: 1),
                                    settings: try #require(configuration.postgres), consumer: worker.workerID,
                                    logger: LedgerTests.quietLogger)
        func stored() async -> Int {
            (try? await setup.rows(pool, "SELECT count(*) FROM {schema}.attempts").first?.first).flatMap { $0.flatMap { Int($0) } } ?? -1
        }
        func drained() async -> Bool {
            guard let queue = try? await driver.statistics(queues: [setup.queue]).queues.first else { return false }
            return queue.depth == 0 && queue.inFlight == 0
        }
        func enqueue(_ count: Int) async throws {
            _ = try await client.enqueue((0..<count).map { _ in JobRequest(type: "work") })
        }

        try await enqueue(2000)
        let running = Task { await worker.run() }
        let shipping = Task { await shipper.run() }
        defer { try? server.signal(SIGCONT) }
        #expect(await LedgerTests.eventually { await stored() >= 100 })

        // Paused: the shipper's insert hangs, jobs go on, records wait in Redis.
        try server.signal(SIGSTOP)
        try await enqueue(1000)
        #expect(await LedgerTests.eventually(timeout: .seconds(90)) { await drained() })
        #expect(runs.withLock { $0 } == 3000)
        #expect(try await RedisAttemptLog(driver: driver).backlog().waiting > 0)
        try await Task.sleep(for: .seconds(2))
        try server.signal(SIGCONT)
        #expect(await LedgerTests.eventually(timeout: .seconds(90)) { await stored() == 3000 })

        // Stopped for real: inserts fail, the shipper backs off and says so, then catches up.
        try server.stop()
        try await enqueue(1000)
        #expect(await LedgerTests.eventually(timeout: .seconds(90)) { await drained() })
        #expect(await LedgerTests.eventually { !shipper.state.postgresReachable })
        try await Task.sleep(for: .seconds(2))
        try server.start()
        #expect(await LedgerTests.eventually(timeout: .seconds(90)) { await stored() == 4000 })
        #expect(shipper.state.postgresReachable)

        worker.shutdown()
        await running.value
        shipper.finish()
        await shipping.value
        let counts = try await setup.rows(pool, """
            SELECT count(*), count(DISTINCT job_id), count(*) FILTER (WHERE outcome = 'succeeded') FROM {schema}.attempts
            """)
        #expect(counts.first == ["4000", "4000", "4000"])
        #expect(runs.withLock { $0 } == 4000)
        #expect(try await RedisAttemptLog(driver: driver).backlog() == AttemptLogBacklog(waiting: 0, dropped: 0))
        await setup.drop(pool)
    }

    @Test func sqlJobsAcrossAPostgresRestartAreRetriedAndNoneIsDead() async throws {
        let server = try Server()
        let redisURL = try #require(ProcessInfo.processInfo.environment["JOBROUTER_TEST_REDIS_URL"], "run with scripts/test.sh")
        let prefix = "sqlr-\(UUID().uuidString.prefix(8).lowercased())"
        let table = "restart_\(UUID().uuidString.prefix(8).lowercased())"
        let admin = PostgresPool(url: server.url, size: 1)
        _ = try await admin.withConnection { try $0.query("CREATE TABLE \(table) (n integer PRIMARY KEY)") }
        let toml = """
            default_queue = "\(prefix):default"
            [redis]
            url = "\(redisURL)"
            namespace = "\(prefix)-jr"
            [postgres]
            url = "postgres://nobody@127.0.0.1:1/unused"
            ledger = false
            pool = 4
            [types.insert]
            handler = "sql"
            sql = "INSERT INTO \(table) (n) SELECT ($1::jsonb->>'n')::integer FROM pg_sleep(0.02) ON CONFLICT DO NOTHING"
            max_attempts = 25
            backoff = { base = "100ms", max = "500ms" }
            [groups.g]
            queues = ["\(prefix):default"]
            concurrency = 4
            """
        var registry = HandlerRegistry()
        registry.add(SQLHandlerProvider(environment: ["JOBROUTER_POSTGRES_URL": server.url]))
        let configuration = try RouterConfiguration.parse(toml: toml, providers: registry.providers)
        let driver = try RedisQueueDriver(configuration: configuration, environment: [:])
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let jobs = 800
        _ = try await client.enqueue((0..<jobs).map { JobRequest(type: "insert", payload: .object(["n": .integer(Int64($0))])) })
        let outcomes = SQLHandlerTests.Outcomes()
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: registry,
                                         logger: LedgerTests.quietLogger, recorders: [outcomes])
        let running = Task { await worker.run() }
        // Mid-drain: a real restart (fast shutdown ends the running statements with 57P01, then
        // connections are refused until it is back).
        #expect(await SQLHandlerTests.eventually { outcomes.succeeded >= 50 })
        try server.stop()
        try await Task.sleep(for: .milliseconds(500))
        try server.start()
        #expect(await SQLHandlerTests.eventually(timeout: .seconds(60)) { outcomes.succeeded == jobs })
        worker.shutdown()
        await running.value
        #expect(outcomes.dead.isEmpty, "\(outcomes.dead.map(\.reason))")
        #expect(!outcomes.retried.isEmpty, "the restart was not seen by any job")
        // A new pool: the first one's connection went with the restart.
        let after = PostgresPool(url: server.url, size: 1)
        let rows = try await after.withConnection { try $0.query("SELECT count(*) AS n FROM \(table)") }
        #expect(rows.int("n") == jobs)
        _ = try await after.withConnection { try $0.query("DROP TABLE \(table)") }
        await LedgerTests().cleanUp(driver, prefix: prefix)
    }
}
