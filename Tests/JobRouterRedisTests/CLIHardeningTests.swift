import Foundation
import JobRouter
import JobRouterRedis
import Testing

/// Issue #14 through the `jobrouter` binary: processes left behind, secrets in a child's
/// environment, batches that fail part-way, dead jobs re-routed, permanent Redis errors.
@Suite(.timeLimit(.minutes(3)))
struct CLIHardeningTests {
    func writeConfig(_ keys: TestKeys, _ body: String, name: String = "queues.toml") throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(keys.prefix)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent(name).path
        try body.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func header(_ keys: TestKeys, url: String? = nil) throws -> String {
        """
        default_queue = "\(keys.queue("default"))"
        [redis]
        url = "\(try url ?? TestRedis.url)"
        namespace = "\(keys.namespace)"
        """
    }

    func startWorker(_ path: String, environment: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try TestRedis.binary)
        process.arguments = ["work", "--config", path]
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        process.environment = env
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Whether `pid` still runs: a zombie (killed, waiting to be reaped by whoever inherited it,
    /// which in a container can be slow) has stopped running and does not count.
    static func alive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else {
            return false
        }
        return stat[stat.index(after: close)...].split(separator: " ").first != "Z"
    }

    static func readPID(_ path: String) -> Int32? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// A job whose shell starts a grandchild that ignores SIGTERM and writes its pid to `pidFile`.
    func stubbornConfig(_ keys: TestKeys, pidFile: String, timeout: String) throws -> String {
        let script = #"sh -c 'trap "" TERM; echo $$ > \#(pidFile); while true; do sleep 0.1; done' & wait"#
        return try header(keys) + """

            [types.stubborn]
            handler = "exec"
            command = ["/bin/sh", "-c", "\(script.replacingOccurrences(of: "\"", with: "\\\""))"]
            timeout = "\(timeout)"
            max_attempts = 1
            [groups.g]
            queues = ["\(keys.queue("default"))"]
            lease = "2s"
            """
    }

    @Test func aGrandchildIgnoringSIGTERMIsKilledAfterTheTimeout() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let pidFile = FileManager.default.temporaryDirectory.appendingPathComponent("\(keys.prefix)-timeout.pid").path
        let path = try writeConfig(keys, try stubbornConfig(keys, pidFile: pidFile, timeout: "500ms"))
        #expect(try await runCLI(["enqueue", "stubborn", "--config", path]).status == 0)
        let worker = try startWorker(path)
        defer { worker.terminate() }
        #expect(await eventually { Self.readPID(pidFile) != nil })
        let grandchild = try #require(Self.readPID(pidFile))
        // 500 ms timeout, then SIGTERM (ignored), then SIGKILL after the 2 s grace.
        #expect(await eventually(timeout: .seconds(8)) { !Self.alive(grandchild) })
        #expect(await eventually { (try? await driver.deadLetterCount()) == 1 })
    }

    @Test func aSIGKILLedWorkersChildrenDieWithIt() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let pidFile = FileManager.default.temporaryDirectory.appendingPathComponent("\(keys.prefix)-kill.pid").path
        let path = try writeConfig(keys, try stubbornConfig(keys, pidFile: pidFile, timeout: "5m"))
        #expect(try await runCLI(["enqueue", "stubborn", "--config", path]).status == 0)
        let worker = try startWorker(path)
        #expect(await eventually { Self.readPID(pidFile) != nil })
        let grandchild = try #require(Self.readPID(pidFile))
        // The kernel closes a killed process's pipes at once (no need to wait for its exit status,
        // and a blocking wait here would hold one of the cooperative pool's two threads).
        kill(worker.processIdentifier, SIGKILL)
        #expect(await eventually(timeout: .seconds(15)) { !Self.alive(grandchild) })
    }

    @Test func execChildrenGetNoSecretsOnlyWhatTheTypeLists() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let dump = FileManager.default.temporaryDirectory.appendingPathComponent("\(keys.prefix)-env.txt").path
        let path = try writeConfig(keys, try header(keys) + """

            [types.dump]
            handler = "exec"
            command = ["/bin/sh", "-c", "env > \(dump)"]
            env = ["API_TOKEN"]
            [groups.g]
            queues = ["\(keys.queue("default"))"]
            [smtp]
            url = "smtp://127.0.0.1:1"
            from = "a@example.org"
            password_env = "MY_SMTP_PASSWORD"
            """)
        #expect(try await runCLI(["enqueue", "dump", "--config", path]).status == 0)
        let worker = try startWorker(path, environment: [
            "JOBROUTER_REDIS_URL": try TestRedis.url, "MY_SMTP_PASSWORD": "hunter2", "API_TOKEN": "tok", "OTHER_SECRET": "s",
        ])
        defer { worker.terminate() }
        #expect(await eventually { (try? String(contentsOfFile: dump, encoding: .utf8))?.contains("JOB_ID=") == true })
        let environment = try String(contentsOfFile: dump, encoding: .utf8)
        #expect(!environment.contains("hunter2") && !environment.contains("JOBROUTER_REDIS_URL") && !environment.contains("OTHER_SECRET"))
        #expect(environment.contains("API_TOKEN=tok") && environment.contains("JOB_TYPE=dump") && environment.contains("PATH="))
        // Listing one of JobRouter's own secrets is refused when the file is read.
        let refused = try writeConfig(keys, try header(keys) + """

            [types.dump]
            handler = "exec"
            command = ["env"]
            env = ["JOBROUTER_REDIS_URL"]
            [groups.g]
            queues = ["\(keys.queue("default"))"]
            """, name: "refused.toml")
        let check = try await runCLI(["check", "--config", refused])
        #expect(check.status == 1)
        #expect(check.err.contains("types.dump.env: 'JOBROUTER_REDIS_URL' holds one of JobRouter's own secrets"))
    }

    @Test func aBatchThatFailsPartWayResumesExactlyWithItsBatchID() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let (first, second) = (keys.queue("first"), keys.queue("second"))
        let path = try writeConfig(keys, try header(keys) + """

            [types.a]
            handler = "noop"
            priorities = { p = "\(first)" }
            default_priority = "p"
            [types.b]
            handler = "noop"
            priorities = { p = "\(second)" }
            default_priority = "p"
            """)
        // 6000 lines to the first queue, then 1000 to the second, whose key is not a list: the
        // push fails part-way through the second chunk of 5000 lines.
        let input = (0..<6000).map { #"{"type":"a","payload":\#($0)}"# } + (0..<1000).map { #"{"type":"b","payload":\#($0)}"# }
        _ = try await driver.command(["SET", second, "in the way"])
        let failed = try await runCLI(["enqueue", "--batch", "-", "--batch-id", "nightly", "--config", path],
                                      stdin: input.joined(separator: "\n"))
        #expect(failed.status == 1)
        #expect(failed.err.contains("5000 job(s) confirmed enqueued, input lines 1 to 5000"))
        #expect(failed.err.contains("lines 5001 to 7000 were being sent and may or may not be in Redis"))
        #expect(failed.err.contains("--batch-id nightly"))
        _ = try await driver.command(["DEL", second])
        let resumed = try await runCLI(["enqueue", "--batch", "-", "--batch-id", "nightly", "--config", path],
                                       stdin: input.joined(separator: "\n"))
        #expect(resumed.status == 0, "\(resumed.err)")
        #expect(resumed.err.contains("continuing at line 6001"))
        // Exactly once each: the first 6000 were in (progress recorded with them), the rest came now.
        let depths = try await driver.depths(of: [first, second])
        #expect(depths[first] == 6000 && depths[second] == 1000)
    }

    /// Chunks are made and encoded side by side but pushed one at a time, in input order: each
    /// queue holds its lines in the order of the file, across chunk boundaries.
    @Test func batchEnqueueKeepsInputOrderAcrossChunks() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let (high, low) = (keys.queue("high"), keys.queue("low"))
        let path = try writeConfig(keys, try header(keys) + """

            [types.ping]
            handler = "noop"
            priorities = { high = "\(high)", low = "\(low)" }
            default_priority = "low"
            """)
        let count = 23_000  // five chunks, the last one short
        let input = (0..<count).map { #"{"type":"ping","priority":"\#($0 % 3 == 0 ? "high" : "low")","payload":\#($0)}"# }
        let result = try await runCLI(["enqueue", "--batch", "-", "--config", path], stdin: input.joined(separator: "\n"))
        #expect(result.status == 0, "\(result.err)")
        func payloads(_ queue: String) async throws -> [Int] {
            try await listContents(driver, queue).map { entry in
                guard case .integer(let n) = try JobEnvelope.decode(Data(entry.utf8), queue: queue).payload else { return -1 }
                return Int(n)
            }
        }
        #expect(try await payloads(high) == Array(stride(from: 0, to: count, by: 3)))
        #expect(try await payloads(low) == (0..<count).filter { $0 % 3 != 0 })
    }

    @Test func deadRetryRoutesByTheCurrentFile() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let (old, new) = (keys.queue("old"), keys.queue("new"))
        func config(_ queue: String, type: String = "report") throws -> String {
            try writeConfig(keys, try header(keys) + """

                [types.\(type)]
                handler = "noop"
                priorities = { normal = "\(queue)" }
                default_priority = "normal"
                """, name: "\(type)-\(queue.suffix(3)).toml")
        }
        let job = JobEnvelope(type: "report", priority: "normal", queue: old, payload: .null)
        let record = DeadLetter(id: job.id, queue: old, type: "report", attempt: 5, reason: "failed", raw: Data(job.jsonText.utf8))
        _ = try await driver.deadLetter(record, claim: nil, maxDead: 100)
        // The type is gone from the file: refused, named, kept.
        let gone = try await runCLI(["dead", "retry", job.id.rawValue, "--config", try config(new, type: "other")])
        #expect(gone.status == 1)
        #expect(gone.err.contains("dead job \(job.id): unknown job type 'report'"))
        #expect(try await driver.deadLetterCount() == 1)
        // Re-routed: it goes where queues.toml sends report jobs now, not where it died.
        let moved = try await runCLI(["--config", try config(new), "dead", "retry", job.id.rawValue])
        #expect(moved.status == 0, "\(moved.err)")
        #expect(moved.out == "\(job.id) \(new)\n")
        let depths = try await driver.depths(of: [old, new])
        #expect(depths[old] == 0 && depths[new] == 1)
    }

    @Test func wrongCredentialsOrAWrongTypeQueueStopWorkAtOnce() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let user = "jr-\(keys.prefix.suffix(8))"
        _ = try await driver.command(["ACL", "SETUSER", user, "on", ">right", "~*", "&*", "+@all"])
        defer { Task { _ = try? await driver.command(["ACL", "DELUSER", user]) } }
        let base = try TestRedis.url
        let hostPart = try #require(base.range(of: "redis://")).upperBound
        let wrongURL = "redis://\(user):wrong@" + base[hostPart...]
        let group = """

            [types.t]
            handler = "noop"
            [groups.g]
            queues = ["\(keys.queue("default"))"]
            """
        let path = try writeConfig(keys, try header(keys, url: wrongURL) + group)
        let wrong = try await runCLI(["work", "--config", path])
        #expect(wrong.status == 1)
        #expect(wrong.err.contains("WRONGPASS"))
        #expect(!wrong.err.contains("wrong@") && !wrong.err.contains(":wrong"))

        let typed = try writeConfig(keys, try header(keys) + group, name: "typed.toml")
        _ = try await driver.command(["HSET", keys.queue("default"), "f", "v"])
        let wrongType = try await runCLI(["work", "--config", typed])
        #expect(wrongType.status == 1)
        #expect(wrongType.err.contains("WRONGTYPE queue key '\(keys.queue("default"))' holds a hash"))
        let status = try await runCLI(["status", "--config", typed])
        #expect(status.status == 0)
        #expect(status.out.contains("is broken: the key holds a hash"))
    }

    @Test func migrateTwiceThenStatus() async throws {
        guard let url = ProcessInfo.processInfo.environment["JOBROUTER_TEST_POSTGRES_URL"], !url.isEmpty else {
            throw TestSetupError("JOBROUTER_TEST_POSTGRES_URL is not set: run the suite with scripts/test.sh")
        }
        let keys = TestKeys()
        let schema = "t_cli_" + UUID().uuidString.prefix(8).lowercased()
        let body = try header(keys) + """

            [types.t]
            handler = "noop"
            [groups.g]
            queues = ["\(keys.queue("default"))"]
            """
        let path = try writeConfig(keys, body + "\n[postgres]\nurl = \"postgres://nobody@127.0.0.1:1/x\"\nschema = \"\(schema)\"\n")
        let environment = ["JOBROUTER_POSTGRES_URL": url]
        let first = try await runCLI(["migrate", "--config", path], environment: environment)
        #expect(first.status == 0, "\(first.err)")
        #expect(first.out.contains("applied 1:") && first.out.contains("migrated"))
        let second = try await runCLI(["migrate", "--config", path], environment: environment)
        #expect(second.out == "schema \(schema) is up to date\n")
        let status = try await runCLI(["migrate", "--status", "--config", path], environment: environment)
        #expect(status.out.hasPrefix("applied  1  ") && status.out.contains("is up to date"))
        // check prepares each sql statement against the database and names the one it refuses.
        let sqlConfig = try writeConfig(keys, body + """

            [types.bad]
            handler = "sql"
            sql = "SELECT missing FROM nowhere WHERE $1::jsonb IS NOT NULL"
            [postgres]
            url = "postgres://nobody@127.0.0.1:1/x"
            """, name: "sql.toml")
        let checked = try await runCLI(["check", "--config", sqlConfig], environment: environment)
        #expect(checked.status == 1)
        #expect(checked.err == "jobrouter: \(sqlConfig):11: types.bad.sql: SQLSTATE 42P01: relation \"nowhere\" does not exist\n", "\(checked.err)")
        let without = try writeConfig(keys, body, name: "nopg.toml")
        let refused = try await runCLI(["migrate", "--config", without])
        #expect(refused.status == 1 && refused.err.contains("migrate needs a [postgres] table"))
    }

    @Test func sharedFlagsMayComeBeforeTheSubcommand() async throws {
        let keys = TestKeys()
        let path = try writeConfig(keys, try header(keys) + """

            [types.t]
            handler = "noop"
            [groups.g]
            queues = ["\(keys.queue("default"))"]
            """)
        let before = try await runCLI(["--config", path, "check"])
        let after = try await runCLI(["check", "--config", path])
        #expect(before.status == 0 && after.status == 0, "\(before.err)")
        #expect(before.out == after.out)
        let equals = try await runCLI(["--config=\(path)", "--log-level", "error", "check"])
        #expect(equals.status == 0, "\(equals.err)")
    }
}

/// The README's recipe for managed Redis over TLS: a local stunnel client in front of a TLS
/// endpoint (scripts/test.sh starts both ends, with a private CA and a certificate check).
@Suite(.timeLimit(.minutes(2)))
struct RedisTLSTunnelTests {
    @Test func jobsFlowThroughTheTLSTunnel() async throws {
        guard let url = ProcessInfo.processInfo.environment["JOBROUTER_TEST_REDIS_TUNNEL_URL"], !url.isEmpty else {
            throw TestSetupError("JOBROUTER_TEST_REDIS_TUNNEL_URL is not set: run the suite with scripts/test.sh")
        }
        let keys = TestKeys()
        let driver = RedisQueueDriver(endpoint: try RedisEndpoint(url: url), namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        var configuration = RouterConfiguration(defaultQueue: keys.queue("default"))
        configuration.redis.namespace = keys.namespace
        configuration.types["t"] = JobTypeConfiguration(name: "t", handler: .swift)
        configuration.groups["g"] = WorkerGroupConfiguration(name: "g", queues: [keys.queue("default")])
        try configuration.validate()
        let ran = Observations<JobID>()
        var handlers = HandlerRegistry()
        handlers.register(type: "t") { job, _ in ran.append(job.id) }
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: handlers, logger: testLogger)
        let job = try await JobRouterClient(configuration: configuration, driver: driver).enqueue(type: "t")
        try await withWorker(worker) {
            #expect(await eventually { ran.all == [job.id] })
        }
        // The same data is on the server behind the tunnel.
        let direct = try TestRedis.driver(namespace: keys.namespace)
        #expect(try await direct.command(["EXISTS", "\(keys.namespace):seq"]) == .integer(1))
        #expect(throws: RedisError.self) { try RedisEndpoint(url: "rediss://127.0.0.1:6380") }
    }
}
