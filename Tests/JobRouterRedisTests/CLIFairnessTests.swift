import Foundation
import JobRouter
import JobRouterRedis
import Testing

/// Deferred jobs through the binary: three worker processes, one SIGKILLed while most jobs wait
/// deferred in the schedule.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct CLIFairnessTests {
    @Test func deferredJobsAreNeitherLostNorDoubledThroughAKill() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(keys.prefix)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let runs = directory.appendingPathComponent("runs.txt")
        let config = directory.appendingPathComponent("queues.toml").path
        try """
            default_queue = "\(keys.queue("default"))"
            [redis]
            url = "\(try TestRedis.url)"
            namespace = "\(keys.namespace)"
            [types.hook]
            handler = "exec"
            command = ["/bin/sh", "-c", "echo $JOB_ID >> \(runs.path)"]
            priorities = { normal = "\(keys.queue("hooks"))" }
            default_priority = "normal"
            rate_limit = { key = "tenant_id", limit = "25/s", burst = 2 }
            [groups.hooks]
            queues = ["\(keys.queue("hooks"))"]
            concurrency = 4
            lease = "1s"
            """.write(toFile: config, atomically: true, encoding: .utf8)
        var lines: [String] = []
        for n in 0..<100 {
            lines.append(#"{"type": "hook", "payload": {"tenant_id": "a", "n": \#(n)}}"#)
            lines.append(#"{"type": "hook", "payload": {"tenant_id": "b", "n": \#(n)}}"#)
            if n % 2 == 0 { lines.append(#"{"type": "hook", "payload": {"n": \#(n)}}"#) }
        }
        let enqueued = try await runCLI(["enqueue", "--config", config, "--batch", "-"], stdin: lines.joined(separator: "\n") + "\n")
        #expect(enqueued.status == 0, "\(enqueued.err)")
        var workers = try (0..<3).map { try WorkerProcess(config: config, log: directory.appendingPathComponent("w\($0).log")) }
        func ran() -> [Substring] { ((try? String(contentsOf: runs, encoding: .utf8)) ?? "").split(separator: "\n") }
        #expect(await eventually { ran().count >= 40 })
        workers[0].kill9()
        workers[0] = try WorkerProcess(config: config, log: directory.appendingPathComponent("w0b.log"))
        let status = try await runCLI(["status", "--config", config])
        #expect(status.out.contains("type:hook"), "\(status.out)")
        #expect(await eventually(timeout: .seconds(30)) { Set(ran()).count >= 250 })
        try await Task.sleep(for: .seconds(1.5))   // past a lease: a job run twice would show by now
        for worker in workers { await worker.stop() }
        let all = ran()
        #expect(Set(all).count == 250, "every job ran")
        // Only jobs running at the kill (at most its 4 slots) may run again.
        #expect(all.count - Set(all).count <= 4, "\(all.count - Set(all).count) repeated runs")
        let json = try await runCLI(["status", "--config", config, "--json"])
        #expect(json.out.contains(#""name":"type:hook""#))
        let figures = try await driver.limiterStatistics(["type:hook"], now: Date())["type:hook"]
        #expect((figures?.deferred ?? 0) > 100, "most tenant jobs were deferred: \(String(describing: figures))")
    }
}
