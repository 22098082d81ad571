import Foundation
import JobRouter
import JobRouterRedis
import Synchronization
import Testing

/// A `jobrouter work` (or `relay`) process that tests can SIGKILL.
final class WorkerProcess: @unchecked Sendable {
    let process = Process()

    init(config: String, log: URL, environment: [String: String] = [:], arguments: [String] = [], command: String = "work") throws {
        process.executableURL = URL(fileURLWithPath: try TestRedis.binary)
        process.arguments = [command, "--config", config] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        waitForExit(process)
    }

    func terminate() {
        process.terminate()
        waitForExit(process)
    }

    /// Sends `signal` and waits for the process to end on a thread of its own, not on the
    /// cooperative pool (a graceful stop can take a second, and the pool has two threads).
    func stop(_ signal: Int32 = SIGTERM) async {
        let process = self.process
        kill(process.processIdentifier, signal)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread {
                waitForExit(process)
                continuation.resume()
            }.start()
        }
    }
}

/// Workers killed with SIGKILL lose nothing: their jobs run elsewhere once their leases expire.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct CrashRecoveryTests {
    func writeConfig(_ keys: TestKeys, redisURL: String, lease: String, concurrency: Int, command: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(keys.prefix)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("queues.toml").path
        try """
            default_queue = "\(keys.queue("default"))"
            [redis]
            url = "\(redisURL)"
            namespace = "\(keys.namespace)"
            [types.record]
            handler = "exec"
            command = ["/bin/sh", "-c", \(JSONValue.string(command).jsonText)]
            max_attempts = 100
            backoff = { base = "10ms", max = "100ms" }
            [groups.chaos]
            queues = ["\(keys.queue("default"))"]
            concurrency = \(concurrency)
            lease = "\(lease)"
            max_recoveries = 100
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func jobsOfAKilledWorkerRunElsewhereWithinTheLease() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(keys.prefix)
        let runs = directory.appendingPathComponent("runs.txt")
        // Each run records "<job id> <worker pid>", then works for as long as the delay file says
        // when it starts: the first worker's runs a minute (so they are surely running when it is
        // killed, however late a loaded machine lets this test look), the second's half a second.
        let delay = directory.appendingPathComponent("delay")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try "60".write(to: delay, atomically: true, encoding: .utf8)
        let config = try writeConfig(keys, redisURL: try TestRedis.url, lease: "3s", concurrency: 2,
                                     command: "echo \"$JOB_ID $PPID\" >> \(runs.path); sleep $(cat \(delay.path))")
        let client = JobRouterClient(configuration: try RouterConfiguration.load(path: config), driver: driver)
        let jobs = try await client.enqueue((0..<2).map { _ in JobRequest(type: "record") })

        let first = try WorkerProcess(config: config, log: directory.appendingPathComponent("first.log"))
        #expect(await eventually { ((try? String(contentsOf: runs, encoding: .utf8)) ?? "").split(separator: "\n").count == 2 })
        first.kill9()
        let killedAt = ContinuousClock.now
        try "0.5".write(to: delay, atomically: true, encoding: .utf8)
        let second = try WorkerProcess(config: config, log: directory.appendingPathComponent("second.log"))
        defer { second.terminate() }
        let recovered = await eventually(timeout: .seconds(20)) {
            let lines = ((try? String(contentsOf: runs, encoding: .utf8)) ?? "").split(separator: "\n")
            return lines.filter { $0.hasSuffix(" \(second.pid)") }.count == 2
        }
        #expect(recovered)
        let took = killedAt.duration(to: .now)
        // The lease (3 s) and one recovery pass, with room for a process start on a loaded machine.
        #expect(took < .seconds(10), "recovered after \(took); lease is 3s")
        let lines = try String(contentsOf: runs, encoding: .utf8).split(separator: "\n")
        let rerun = Set(lines.filter { $0.hasSuffix(" \(second.pid)") }.map { String($0.prefix(26)) })
        #expect(rerun == Set(jobs.map(\.id.rawValue)))
        #expect(await eventually { (try? await driver.command(["HLEN", "\(keys.namespace):inflight"])) == .integer(0) })
    }

    /// The chaos run: 3 worker processes over the same group, 5000 jobs that record every run,
    /// a random worker SIGKILLed about every 2 s and restarted, and one Redis restart (append-only
    /// file on) half way. Every job must have run at least once; duplicates are counted.
    @Test func chaosKillLoopLosesNothing() async throws {
        let redis = try PrivateRedis(appendOnly: true)
        try await redis.start()
        let keys = TestKeys()
        let driver = RedisQueueDriver(endpoint: try RedisEndpoint(url: redis.url), namespace: keys.namespace)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(keys.prefix)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let runs = directory.appendingPathComponent("runs.txt")
        let concurrency = 4
        let config = try writeConfig(keys, redisURL: redis.url, lease: "2s", concurrency: concurrency,
                                     command: "echo \"$JOB_ID\" >> \(runs.path); sleep 0.05")
        let client = JobRouterClient(configuration: try RouterConfiguration.load(path: config), driver: driver)
        let total = 5000
        let jobs = try await client.enqueue((0..<total).map { JobRequest(type: "record", payload: .integer(Int64($0))) })

        var workers = try (0..<3).map { try WorkerProcess(config: config, log: directory.appendingPathComponent("w\($0).log")) }
        let clock = ContinuousClock()
        let start = clock.now
        var kills = 0
        var restartedRedis = false
        func remaining() async -> Int? {
            guard case .integer(let depth)? = try? await driver.command(["LLEN", keys.queue("default")]),
                  case .integer(let inFlight)? = try? await driver.command(["HLEN", "\(keys.namespace):inflight"]),
                  case .integer(let scheduled)? = try? await driver.command(["ZCARD", "\(keys.namespace):scheduled"])
            else { return nil }
            return Int(depth + inFlight + scheduled)
        }
        while clock.now - start < .seconds(150) {
            try await Task.sleep(for: .milliseconds(Int.random(in: 1500...2500)))
            if let left = await remaining(), left == 0 { break }
            if kills == 1 && !restartedRedis {
                await redis.stop()
                try await Task.sleep(for: .milliseconds(500))
                try await redis.start()
                restartedRedis = true
                continue
            }
            let victim = Int.random(in: 0..<workers.count)
            workers[victim].kill9()
            kills += 1
            workers[victim] = try WorkerProcess(config: config, log: directory.appendingPathComponent("w\(victim).log"))
        }
        let drained = await eventually(timeout: .seconds(30)) { await remaining() == 0 }
        let elapsed = start.duration(to: clock.now)
        for worker in workers { worker.terminate() }
        await redis.stop()

        let lines = try String(contentsOf: runs, encoding: .utf8).split(separator: "\n").map(String.init)
        var counts: [String: Int] = [:]
        for line in lines { counts[line, default: 0] += 1 }
        let lost = jobs.filter { counts[$0.id.rawValue] == nil }.count
        let duplicates = lines.count - counts.count
        print("chaos: jobs \(total), runs \(lines.count), kills \(kills), redis restarts \(restartedRedis ? 1 : 0), lost \(lost), duplicates \(duplicates), took \(elapsed)")
        #expect(drained)
        #expect(kills >= 3)
        #expect(restartedRedis)
        #expect(lost == 0)
        #expect(counts.count == total)
        // A kill can repeat at most the jobs that worker was running (plus those whose end it was
        // recording); the Redis restart can repeat the jobs running at that moment.
        #expect(duplicates <= (kills + 3) * concurrency, "duplicates \(duplicates)")
    }
}
