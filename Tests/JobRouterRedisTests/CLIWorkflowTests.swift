import Foundation
import JobRouter
import JobRouterRedis
import Testing

/// Cron schedules across worker processes, chains across a SIGKILL, and the workflow commands,
/// through the `jobrouter` binary against a real Redis.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct CLIWorkflowTests {
    func directory(_ keys: TestKeys) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(keys.prefix)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    func writeConfig(_ keys: TestKeys, _ extra: String, name: String = "queues.toml") throws -> String {
        let path = try directory(keys).appendingPathComponent(name).path
        try """
            default_queue = "\(keys.queue("default"))"
            [redis]
            url = "\(try TestRedis.url)"
            namespace = "\(keys.namespace)"
            [types.tick]
            handler = "noop"
            priorities = { default = "\(keys.queue("ticks"))" }
            default_priority = "default"
            [groups.general]
            queues = ["\(keys.queue("default"))"]
            concurrency = 2
            lease = "1s"
            \(extra)
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The ticks of the jobs a schedule made (their `due_at`), in seconds since the epoch.
    func ticks(_ driver: RedisQueueDriver, _ keys: TestKeys) async throws -> [Int] {
        try await listContents(driver, keys.queue("ticks")).map { entry in
            let job = try JobEnvelope.decode(Data(entry.utf8), queue: keys.queue("ticks"))
            return Int(try #require(job.dueAt).timeIntervalSince1970.rounded())
        }
    }

    /// Three worker processes on a schedule that ticks every second, one of them SIGKILLed and
    /// restarted: one job per tick, none missing, none twice.
    @Test func threeProcessesMakeExactlyOneJobPerTickThroughAKill() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let config = try writeConfig(keys, """
            [schedules.every_second]
            cron = "* * * * * *"
            type = "tick"
            """)
        let logs = try directory(keys)
        var workers = try (0..<3).map { try WorkerProcess(config: config, log: logs.appendingPathComponent("w\($0).log")) }
        try await Task.sleep(for: .seconds(3))
        workers[1].kill9()
        try await Task.sleep(for: .seconds(1))
        workers[1] = try WorkerProcess(config: config, log: logs.appendingPathComponent("w1b.log"))
        try await Task.sleep(for: .seconds(3))
        for worker in workers { await worker.stop() }
        let made = try await ticks(driver, keys).sorted()
        #expect(made.count >= 5, "\(made)")
        #expect(Set(made).count == made.count, "a tick made two jobs: \(made)")
        if let first = made.first, let last = made.last {
            #expect(made == Array(first...last), "a tick was missed while processes ran: \(made)")
        }
        let schedules = try await runCLI(["schedules", "--config", config])
        #expect(schedules.status == 0)
        #expect(schedules.out.contains("every_second  * * * * * *  UTC"), "\(schedules.out)")
        #expect(schedules.out.contains("  next: "))
        // Fire times in the schedule's zone, named as configured (Foundation calls UTC `GMT`).
        #expect(schedules.out.contains(" UTC, ") && !schedules.out.contains("GMT"), "\(schedules.out)")
        let lastID = try await listContents(driver, keys.queue("ticks")).last.map { try JobEnvelope.decode(Data($0.utf8), queue: "").id.rawValue }
        #expect(schedules.out.contains("last: job \(lastID ?? "?")"), "\(schedules.out)")
    }

    /// A process down over ticks: with catch_up the process that starts next makes one job for the
    /// latest missed tick; without it, none.
    @Test(arguments: [true, false])
    func aMissedTickRunsOnceWithCatchUpAndNeverWithout(catchUp: Bool) async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let config = try writeConfig(keys, """
            [schedules.often]
            cron = "*/2 * * * * *"
            type = "tick"
            \(catchUp ? "catch_up = \"1m\"" : "")
            """)
        let logs = try directory(keys)
        let first = try WorkerProcess(config: config, log: logs.appendingPathComponent("first.log"))
        #expect(await eventually { ((try? await ticks(driver, keys)) ?? []).count >= 1 })
        await first.stop()
        let downAt = Int(Date().timeIntervalSince1970)
        try await Task.sleep(for: .seconds(5))   // two or three ticks pass with no process up
        let secondLog = logs.appendingPathComponent("second.log")
        let second = try WorkerProcess(config: config, log: secondLog)
        // When the new process's ticker started (a loaded machine can take a while to start it).
        let startedText = await eventually {
            ((try? String(contentsOf: secondLog, encoding: .utf8)) ?? "").contains("cron: firing the ticks of")
        }
        #expect(startedText)
        try await Task.sleep(for: .seconds(2))
        await second.stop()
        let log = try String(contentsOf: secondLog, encoding: .utf8)
        let line = try #require(log.split(separator: "\n").first { $0.contains("cron: firing the ticks of") })
        let stamp = try #require(line.split(separator: " ").dropLast(1).last.map(String.init))
        let upAt = try #require(Timestamp.parse(stamp)).timeIntervalSince1970
        let missed = try await ticks(driver, keys).filter { $0 > downAt && Double($0) < upAt }
        #expect(missed.count == (catchUp ? 1 : 0), "jobs for ticks missed while down (up at \(upAt)): \(missed)")
        if catchUp, let tick = missed.first { #expect(upAt - Double(tick) <= 2.001, "the latest missed tick, not an older one") }
    }

    /// A chain's worker SIGKILLed right after its handlers returned: after recovery, each next job
    /// exists exactly once.
    @Test func aChainSurvivesAKillAfterTheHandlerReturned() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let logs = try directory(keys)
        let firsts = logs.appendingPathComponent("first.txt")
        let seconds = logs.appendingPathComponent("second.txt")
        let config = try writeConfig(keys, """
            [types.first]
            handler = "exec"
            command = ["/bin/sh", "-c", "echo $JOB_ID >> \(firsts.path)"]
            priorities = { default = "\(keys.queue("chain"))" }
            default_priority = "default"
            [types.second]
            handler = "exec"
            command = ["/bin/sh", "-c", "echo $JOB_ID >> \(seconds.path)"]
            priorities = { default = "\(keys.queue("chain"))" }
            default_priority = "default"
            [groups.chain]
            queues = ["\(keys.queue("chain"))"]
            concurrency = 8
            lease = "1s"
            """)
        let lines = (0..<8).map { #"{"type": "first", "payload": \#($0), "then": {"type": "second", "payload": \#($0)}}"# }
        let enqueued = try await runCLI(["enqueue", "--config", config, "--batch", "-"], stdin: lines.joined(separator: "\n") + "\n")
        #expect(enqueued.status == 0, "\(enqueued.err)")
        let worker = try WorkerProcess(config: config, log: logs.appendingPathComponent("killed.log"))
        #expect(await eventually { ((try? String(contentsOf: firsts, encoding: .utf8)) ?? "").split(separator: "\n").count >= 8 })
        worker.kill9()
        let rescuer = try WorkerProcess(config: config, log: logs.appendingPathComponent("rescuer.log"))
        #expect(await eventually(timeout: .seconds(20)) { ((try? String(contentsOf: seconds, encoding: .utf8)) ?? "").split(separator: "\n").count >= 8 })
        try await Task.sleep(for: .seconds(2))   // longer than a lease: anything left would have run by now
        await rescuer.stop()
        let second = try String(contentsOf: seconds, encoding: .utf8).split(separator: "\n")
        // A next job killed while it ran runs again (at-least-once); what must hold is that each
        // chain made exactly one next job: 8 distinct ids.
        #expect(Set(second).count == 8, "next jobs made: \(Set(second).count), runs: \(second.count)")
    }

    @Test func workflowCommands() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let config = try writeConfig(keys, """
            [types.sync]
            handler = "noop"
            priorities = { default = "\(keys.queue("sync"))" }
            default_priority = "default"
            unique = { key = ["user_id"], for = "10m" }
            [schedules.nightly]
            cron = "0 3 * * *"
            timezone = "Europe/Berlin"
            type = "tick"
            """)
        // Unique: the second enqueue names the first job, exit 0.
        let first = try await runCLI(["enqueue", "--config", config, "sync", "--payload", #"{"user_id": 1}"#])
        let second = try await runCLI(["enqueue", "--config", config, "sync", "--payload", #"{"user_id": 1}"#])
        #expect(first.status == 0 && second.status == 0, "\(first.err)\(second.err)")
        let id = try #require(first.out.split(separator: " ").first)
        #expect(second.out == "\(id) \(keys.queue("sync")) duplicate\n")
        let missing = try await runCLI(["enqueue", "--config", config, "sync", "--payload", #"{"name": 1}"#])
        #expect(missing.status == 1)
        #expect(missing.err.contains("type 'sync' is unique by user_id, and the payload has no 'user_id'"), "\(missing.err)")

        // Schedules: next fire times in the schedule's zone.
        let schedules = try await runCLI(["schedules", "--config", config])
        #expect(schedules.out.contains("nightly  0 3 * * *  Europe/Berlin  → tick"), "\(schedules.out)")
        #expect(schedules.out.contains("03:00:00 CET") || schedules.out.contains("03:00:00 GMT+1") || schedules.out.contains("03:00:00 CEST"), "\(schedules.out)")
        #expect(schedules.out.contains("last: never fired"))

        // Pause and resume.
        #expect(try await runCLI(["pause", "--config", config, keys.queue("sync")]).status == 0)
        let status = try await runCLI(["status", "--config", config])
        #expect(status.out.contains("PAUSED"), "\(status.out)")
        let json = try await runCLI(["status", "--config", config, "--json"])
        #expect(json.out.contains(#""paused":true"#))
        #expect(try await runCLI(["resume", "--config", config, keys.queue("sync")]).status == 0)
        #expect(try await driver.pausedQueues().isEmpty)
        let typo = try await runCLI(["pause", "--config", config, "nope"])
        #expect(typo.status == 1 && typo.err.contains("no type routes to queue 'nope'"))

        // A batch with a callback, and `batches` while nothing runs it.
        let batch = try await runCLI(["enqueue", "--config", config, "--batch", "-", "--on-complete", "tick", "--on-complete-payload", #"{"r": 1}"#],
                                     stdin: #"{"type": "tick"}"# + "\n" + #"{"type": "tick"}"# + "\n")
        #expect(batch.status == 0, "\(batch.err)")
        #expect(batch.out.hasPrefix("batch b-"), "\(batch.out)")
        let open = try await runCLI(["batches", "--config", config])
        #expect(open.out.contains("0/2 finished (0%): 0 succeeded, 0 dead, 2 pending  → tick"), "\(open.out)")
        #expect(!open.out.contains("still being enqueued"), "sealed once every line was in")
        // A rejected line: the good ones go in, exit 1, and the batch is still sealed (complete).
        let partial = try await runCLI(["enqueue", "--config", config, "--batch", "-", "--on-complete", "tick"],
                                       stdin: #"{"type": "tick"}"# + "\n" + #"{"type": "nope"}"# + "\n")
        #expect(partial.status == 1 && partial.err.contains("-:2:") == false && partial.err.contains("stdin:2: unknown job type 'nope'"), "\(partial.err)")
        #expect(partial.out.hasPrefix("batch b-"), "\(partial.out)")
        let afterPartial = try await runCLI(["batches", "--config", config])
        #expect(afterPartial.out.contains("0/1 finished") && !afterPartial.out.contains("still being enqueued"), "\(afterPartial.out)")
        let badCallback = try await runCLI(["enqueue", "--config", config, "--batch", "-", "--on-complete", "nope"], stdin: #"{"type": "tick"}"# + "\n")
        #expect(badCallback.status == 1 && badCallback.err.contains("unknown job type 'nope'") && badCallback.err.split(separator: "\n").count == 1,
                "\(badCallback.err)")

        // A bad cron expression, by line.
        let bad = try writeConfig(keys, """
            [schedules.broken]
            cron = "0 3 * * 8"
            type = "tick"
            """, name: "bad.toml")
        let check = try await runCLI(["check", "--config", bad])
        #expect(check.status == 1)
        #expect(check.err.contains("bad.toml:14: schedules.broken.cron: day-of-week: 8 is out of range 0-7"), "\(check.err)")
    }
}
