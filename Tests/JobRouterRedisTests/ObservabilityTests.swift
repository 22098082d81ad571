import Foundation
import JobRouter
import JobRouterRedis
import Testing

/// `work --http` (metrics, health, readiness), the cluster's throughput in `status`, `status --watch`
/// in a real terminal (tmux) and the systemd unit (systemd-analyze), through the binary.
@Suite(.timeLimit(.minutes(3)))
struct ObservabilityTests {
    /// Parses a text exposition with the reference parser (Python's prometheus_client) and prints
    /// `{name: {"type": t, "samples": [[sample name, labels, value], …]}}` (counters under their `_total` name).
    static let parser = #"""
        import json, sys
        from prometheus_client.parser import text_string_to_metric_families
        out = {}
        for family in text_string_to_metric_families(sys.stdin.read()):
            name = family.name + "_total" if family.type == "counter" and not family.name.endswith("_total") else family.name
            out[name] = {"type": family.type, "samples": [[s.name, s.labels, s.value] for s in family.samples]}
        print(json.dumps(out))
        """#

    struct Family: Decodable {
        let type: String
        let samples: [Sample]
    }

    struct Sample: Decodable {
        let name: String
        let labels: [String: String]
        let value: Double

        init(from decoder: any Decoder) throws {
            var container = try decoder.unkeyedContainer()
            name = try container.decode(String.self)
            labels = try container.decode([String: String].self)
            value = try container.decode(Double.self)
        }
    }

    static func get(_ url: String) async throws -> (status: Int, body: String) {
        let result = try await runProgram("/usr/bin/curl", ["-s", "-m", "5", "-w", "\n%{http_code}", url])
        let lines = result.out.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    static func families(_ text: String) async throws -> [String: Family] {
        let parsed = try await runProgram("/usr/bin/python3", ["-c", parser], stdin: text)
        #expect(parsed.status == 0, "prometheus_client refused the exposition: \(parsed.err)")
        return try JSONDecoder().decode([String: Family].self, from: Data(parsed.out.utf8))
    }

    /// The port `work` logged it serves HTTP on.
    static func port(inLog log: URL) async -> Int? {
        var port: Int?
        _ = await eventually(timeout: .seconds(20)) {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            guard let range = text.range(of: #"/readyz on http://127\.0\.0\.1:\d+"#, options: .regularExpression) else { return false }
            port = Int(text[range].split(separator: ":").last ?? "")
            return port != nil
        }
        return port
    }

    /// A private directory with a queues.toml: one `ok` (noop) type and one group `g` reading the
    /// default queue, on the suite's Redis; `extra` TOML goes before the group.
    static func setUp(_ keys: TestKeys, extra: String = "", group: String = "") throws -> (directory: URL, config: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("jobrouter-obs-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let config = directory.appendingPathComponent("queues.toml").path
        try """
            default_queue = "\(keys.queue("default"))"
            [redis]
            url = "\(try TestRedis.url)"
            namespace = "\(keys.namespace)"
            \(extra)
            [types.ok]
            handler = "noop"
            [groups.g]
            queues = ["\(keys.queue("default"))"]
            \(group)
            """.write(toFile: config, atomically: true, encoding: .utf8)
        return (directory, config)
    }

    @Test func metricsCountTheJobsRunAndReadinessFollowsRedis() async throws {
        // Its data survives the restart below (the throughput counts are read after it).
        let redis = try PrivateRedis(appendOnly: true)
        try await redis.start()
        let keys = TestKeys()
        let smtp = try #require(ProcessInfo.processInfo.environment["JOBROUTER_TEST_SMTP_URL"], "run with scripts/test.sh")
        let postgres = try #require(ProcessInfo.processInfo.environment["JOBROUTER_TEST_POSTGRES_URL"], "run with scripts/test.sh")
        let schema = "obs_\(UUID().uuidString.prefix(8).lowercased())"
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("jobrouter-obs-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let config = directory.appendingPathComponent("queues.toml").path
        try """
            default_queue = "\(keys.queue("default"))"
            [redis]
            url = "\(redis.url)"
            namespace = "\(keys.namespace)"
            [http]
            listen = "127.0.0.1:0"
            [postgres]
            url = "\(postgres)"
            schema = "\(schema)"
            [smtp]
            url = "\(smtp)"
            from = "jobs@example.org"
            rate_limit = "1000/s"
            [types.ok]
            handler = "noop"
            [types.bad]
            handler = "exec"
            command = ["false"]
            max_attempts = 1
            [types.email]
            handler = "smtp"
            priorities = { high = "\(keys.queue("mail"))" }
            [groups.g]
            queues = ["\(keys.queue("default"))"]
            concurrency = 4
            [groups.mail]
            queues = ["\(keys.queue("mail"))"]
            concurrency = 2
            """.write(toFile: config, atomically: true, encoding: .utf8)
        #expect(try await runCLI(["migrate", "--config", config]).status == 0)

        let log = directory.appendingPathComponent("work.log")
        let worker = try WorkerProcess(config: config, log: log)
        defer { worker.kill9() }
        let port = try #require(await Self.port(inLog: log), "work did not log its HTTP port")
        let base = "http://127.0.0.1:\(port)"

        let configuration = try RouterConfiguration.load(path: config)
        let driver = RedisQueueDriver(endpoint: try RedisEndpoint(url: redis.url), namespace: keys.namespace)
        let client = JobRouterClient(configuration: configuration, driver: driver)
        for _ in 0..<20 { _ = try await client.enqueue(type: "ok") }
        for _ in 0..<2 { _ = try await client.enqueue(type: "bad") }
        for index in 0..<3 {
            _ = try await client.enqueue(type: "email", priority: "high", payload: .object([
                "to": .string("r\(index)@example.org"), "subject": .string("s"), "text": .string("t")]))
        }
        // Garbage from another producer: it must never become a label value.
        _ = try await driver.command(["RPUSH", keys.queue("default"), "{not json", #"{"type":"garbage-\#(UUID().uuidString)"}"#])

        var text = ""
        let counted = await eventually(timeout: .seconds(20)) {
            text = (try? await Self.get(base + "/metrics").body) ?? ""
            return text.contains(#"outcome="succeeded"} 20"#) && text.contains(#"jobrouter_smtp_messages_total{outcome="sent"} 3"#)
                && text.contains("jobrouter_dead_jobs 4.0")
        }
        #expect(counted, "\(text)")
        let families = try await Self.families(text)
        let expected: [String: String] = [
            "jobrouter_jobs_total": "counter", "jobrouter_job_duration_seconds": "histogram", "jobrouter_job_wait_seconds": "histogram",
            "jobrouter_jobs_inflight": "gauge", "jobrouter_group_concurrency": "gauge", "jobrouter_queue_depth": "gauge",
            "jobrouter_queue_oldest_job_age_seconds": "gauge", "jobrouter_scheduled_jobs": "gauge", "jobrouter_dead_jobs": "gauge",
            "jobrouter_smtp_messages_total": "counter", "jobrouter_smtp_connections_opened_total": "counter",
            "jobrouter_rate_limit_wait_seconds_total": "counter", "jobrouter_redis_errors_total": "counter",
            "jobrouter_postgres_errors_total": "counter", "jobrouter_ledger_backlog": "gauge",
            "process_resident_memory_bytes": "gauge", "process_cpu_seconds_total": "counter", "process_start_time_seconds": "gauge",
        ]
        for (name, type) in expected {
            #expect(families[name]?.type == type, "\(name): \(families[name]?.type ?? "missing")")
        }
        func value(_ family: String, _ labels: [String: String], sample: String? = nil) -> Double? {
            families[family]?.samples.first { $0.labels == labels && (sample == nil || $0.name == sample) }?.value
        }
        let jobs = "jobrouter_jobs_total"
        let queue = keys.queue("default")
        #expect(value(jobs, ["group": "g", "type": "ok", "queue": queue, "outcome": "succeeded"]) == 20)
        #expect(value(jobs, ["group": "g", "type": "bad", "queue": queue, "outcome": "dead"]) == 2)
        #expect(value(jobs, ["group": "g", "type": "unknown", "queue": queue, "outcome": "malformed"]) == 1)
        #expect(value(jobs, ["group": "g", "type": "unknown", "queue": queue, "outcome": "dead"]) == 1)
        #expect(value(jobs, ["group": "mail", "type": "email", "queue": keys.queue("mail"), "outcome": "succeeded"]) == 3)
        #expect(!text.contains("garbage"))
        #expect(value("jobrouter_job_duration_seconds", ["group": "g", "type": "ok"], sample: "jobrouter_job_duration_seconds_count") == 20)
        let buckets = families["jobrouter_job_wait_seconds"]?.samples.compactMap { $0.labels["le"] } ?? []
        #expect(buckets.contains("0.0001") && buckets.contains("300.0"), "\(buckets)")
        #expect(value("jobrouter_group_concurrency", ["group": "g"]) == 4)
        #expect(value("jobrouter_queue_depth", ["queue": queue]) == 0)
        #expect(value("jobrouter_smtp_connections_opened_total", [:]).map { $0 >= 1 && $0 <= 2 } == true)
        #expect((value("process_resident_memory_bytes", [:]) ?? 0) > 1_000_000)

        // Readiness follows Redis: 503 naming it soon after a stop (probes every 1 s, stale after
        // 3 s; room for a loaded machine), 200 again once it is back.
        #expect(try await Self.get(base + "/healthz").status == 200)
        #expect(try await Self.get(base + "/readyz").status == 200)
        await redis.stop()
        let stopped = ContinuousClock.now
        var notReady = (status: 0, body: "")
        #expect(await eventually(timeout: .seconds(15)) {
            notReady = (try? await Self.get(base + "/readyz")) ?? (0, "")
            return notReady.status == 503
        })
        #expect(ContinuousClock.now - stopped < .seconds(15))
        #expect(notReady.body.contains(#""redis":"#), "\(notReady.body)")
        #expect(try await Self.get(base + "/healthz").status == 200)
        try await redis.start()
        #expect(await eventually(timeout: .seconds(10)) { (try? await Self.get(base + "/readyz"))?.status == 200 })

        // The cluster's throughput outlives the process: status reads it from Redis.
        worker.terminate()
        let status = try await runCLI(["status", "--config", config, "--json", "--minutes", "5"])
        let report = try JSONValue.parse(status.out)
        let series = report["throughput"]?["queues"]?[queue]
        guard case .array(let minutes)? = series else { Issue.record("no series for \(queue): \(status.out)"); return }
        #expect(minutes.count == 5)
        #expect(minutes.compactMap { $0["processed"]?.intValue }.reduce(0, +) == 24)
        #expect(minutes.compactMap { $0["failed"]?.intValue }.reduce(0, +) == 4)
        let table = try await runCLI(["status", "--config", config])
        #expect(table.out.contains("PROCESSED/MIN"))
        try? FileManager.default.removeItem(at: directory)
    }

    @Test func aPortInUseStopsWorkWithOneLine() async throws {
        let keys = TestKeys()
        let (directory, config) = try Self.setUp(keys)
        let log = directory.appendingPathComponent("work.log")
        let first = try WorkerProcess(config: config, log: log, arguments: ["--http", "127.0.0.1:0"])
        defer { first.kill9() }
        let port = try #require(await Self.port(inLog: log))
        let second = try await runCLI(["work", "--config", config, "--http", "127.0.0.1:\(port)"])
        #expect(second.status == 1)
        #expect(second.err.contains("jobrouter: http: cannot serve on 127.0.0.1:\(port)"), "\(second.err)")
        let bad = try await runCLI(["work", "--config", config, "--http", "localhost:http"])
        #expect(bad.status == 1 && bad.err.contains("--http: 'localhost:http' is not host:port"), "\(bad.err)")
        first.terminate()
        try? FileManager.default.removeItem(at: directory)
    }

    @Test func statusWatchRedrawsInPlaceAndQuitsOnQ() async throws {
        let keys = TestKeys()
        let (directory, config) = try Self.setUp(keys)
        let session = "jr-\(UUID().uuidString.prefix(8))"
        let marker = directory.appendingPathComponent("exited").path
        let command = "'\(try TestRedis.binary)' status --watch --interval 200ms --config '\(config)'; echo $? > '\(marker)'; sleep 30"
        // Started without pipes: the tmux server it forks would hold them open.
        let tmux = Process()
        tmux.executableURL = URL(fileURLWithPath: "/usr/bin/tmux")
        tmux.arguments = ["new-session", "-d", "-s", session, "-x", "150", "-y", "40", command]
        tmux.standardOutput = FileHandle.nullDevice
        tmux.standardError = FileHandle.nullDevice
        tmux.standardInput = FileHandle.nullDevice
        try tmux.run()
        #expect(await eventually { (try? await runProgram("/usr/bin/tmux", ["has-session", "-t", session]).status) == 0 })
        defer { _ = try? Process.run(URL(fileURLWithPath: "/usr/bin/tmux"), arguments: ["kill-session", "-t", session]) }
        func screen() async -> String { (try? await runProgram("/usr/bin/tmux", ["capture-pane", "-p", "-t", session]).out) ?? "" }
        func depthShown(_ depth: Int) async -> Bool {
            await screen().split(separator: "\n").contains { $0.hasPrefix(keys.queue("default")) && $0.split(separator: " ").dropFirst().first == "\(depth)" }
        }
        let idle = await eventually { await depthShown(0) }
        let first = await screen()
        #expect(idle, "\(first)")
        let configuration = try RouterConfiguration.load(path: config)
        let client = JobRouterClient(configuration: configuration, driver: try TestRedis.driver(namespace: keys.namespace))
        for _ in 0..<7 { _ = try await client.enqueue(type: "ok") }
        // The live number moves, on the same screen (no scrolling: the header stays on line 1).
        let moved = await eventually { await depthShown(7) }
        let second = await screen()
        #expect(moved, "\(second)")
        #expect(second.split(separator: "\n").first?.hasPrefix("redis ") == true)
        _ = try await runProgram("/usr/bin/tmux", ["send-keys", "-t", session, "q"])
        #expect(await eventually { FileManager.default.fileExists(atPath: marker) })
        #expect((try? String(contentsOfFile: marker, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
        // The normal screen is back: the view is gone from it.
        let restored = await eventually { await !screen().contains("q: quit") }
        #expect(restored)
        try? FileManager.default.removeItem(at: directory)
    }

    @Test func systemdUnitPassesSystemdAnalyzeVerify() async throws {
        let keys = TestKeys()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("jobrouter-unit-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let config = directory.appendingPathComponent("queues.toml").path
        try """
            default_queue = "\(keys.queue("default"))"
            [types.ok]
            handler = "noop"
            [groups.mail]
            queues = ["\(keys.queue("default"))"]
            shutdown_timeout = "40s"
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let printed = try await runCLI(["systemd", "--config", config, "--group", "mail"])
        #expect(printed.status == 0, "\(printed.err)")
        #expect(printed.out.contains("TimeoutStopSec=70") && printed.out.contains("KillSignal=SIGTERM") && printed.out.contains("EnvironmentFile="))
        #expect(printed.out.contains("--group mail") && printed.out.contains("Restart=on-failure"))
        // The unit runs `jobrouter` (which runs a lean worker when it can), not the full CLI it
        // handed `systemd` to.
        let binary = try TestRedis.binary
        #expect(printed.out.contains("ExecStart=\(binary) work"), "\(printed.out)")
        let unit = directory.appendingPathComponent("jobrouter-mail@.service").path
        try printed.out.write(toFile: unit, atomically: true, encoding: .utf8)
        let verified = try await runProgram("/usr/bin/systemd-analyze", ["verify", unit])
        #expect(verified.status == 0, "\(verified.err)")
        #expect(!verified.err.contains("jobrouter-mail@"), "systemd-analyze: \(verified.err)")
        let unknown = try await runCLI(["systemd", "--config", config, "--group", "nope"])
        #expect(unknown.status == 1 && unknown.err.contains("unknown group 'nope'"))
        try? FileManager.default.removeItem(at: directory)
    }

    @Test func aRealPrometheusScrapesTheWorkerAndEveryDashboardQueryRuns() async throws {
        let keys = TestKeys()
        let (directory, config) = try Self.setUp(keys, extra: "[http]\nlisten = \"127.0.0.1:0\"", group: "concurrency = 2")
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("work.log")
        let worker = try WorkerProcess(config: config, log: log)
        defer { worker.kill9() }
        let port = try #require(await Self.port(inLog: log))
        let configuration = try RouterConfiguration.load(path: config)
        let client = JobRouterClient(configuration: configuration, driver: try TestRedis.driver(namespace: keys.namespace))
        for _ in 0..<10 { _ = try await client.enqueue(type: "ok") }

        try """
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: jobrouter
                static_configs:
                  - targets: ["127.0.0.1:\(port)"]
            """.write(to: directory.appendingPathComponent("prometheus.yml"), atomically: true, encoding: .utf8)
        let webPort = PrivateRedis.freePort()
        let prometheus = Process()
        prometheus.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus")
        prometheus.arguments = ["--config.file=\(directory.path)/prometheus.yml", "--storage.tsdb.path=\(directory.path)/tsdb",
                                "--web.listen-address=127.0.0.1:\(webPort)"]
        prometheus.standardOutput = FileHandle.nullDevice
        prometheus.standardError = FileHandle.nullDevice
        try prometheus.run()
        defer { prometheus.terminate(); waitForExit(prometheus) }

        func query(_ expression: String) async -> JSONValue? {
            let encoded = expression.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
            guard let answer = try? await Self.get("http://127.0.0.1:\(webPort)/api/v1/query?query=\(encoded)"), answer.status == 200 else { return nil }
            return try? JSONValue.parse(answer.body)
        }
        let series = "jobrouter_jobs_total{outcome=\"succeeded\",queue=\"\(keys.queue("default"))\"}"
        var scraped: JSONValue?
        let seen = await eventually(timeout: .seconds(30)) {
            scraped = await query(series)
            guard case .array(let results)? = scraped?["data"]?["result"], case .array(let value)? = results.first?["value"] else { return false }
            return value.last?.stringValue == "10"
        }
        #expect(seen, "\(scraped.map(\.jsonText) ?? "no answer")")

        // Every query of contrib/grafana-dashboard.json is valid PromQL that Prometheus evaluates.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let dashboard = try JSONValue.parse(Data(contentsOf: root.appendingPathComponent("contrib/grafana-dashboard.json")))
        guard case .array(let panels)? = dashboard["panels"] else { Issue.record("no panels"); return }
        var expressions: [String] = []
        for panel in panels {
            guard case .array(let targets)? = panel["targets"] else { continue }
            expressions += targets.compactMap { $0["expr"]?.stringValue }
        }
        #expect(expressions.count >= 12)
        for expression in expressions {
            let concrete = expression.replacingOccurrences(of: "$__rate_interval", with: "1m")
                .replacingOccurrences(of: "$group", with: ".*").replacingOccurrences(of: "$job", with: ".*")
            let answer = await query(concrete)
            #expect(answer?["status"]?.stringValue == "success", "\(concrete): \(answer.map(\.jsonText) ?? "no answer")")
        }
        worker.terminate()
    }
}
