import Foundation
import JobRouter
import JobRouterRedis
import Testing

/// The `jobrouter` binary as a user runs it: signals, exit codes, one-line errors.
@Suite(.timeLimit(.minutes(2)))
struct ProcessTests {
    /// Writes a queues.toml for this test and returns its path.
    func writeConfig(_ keys: TestKeys, _ body: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(keys.prefix)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("queues.toml").path
        try body.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func sleeperConfig(_ keys: TestKeys, shutdownTimeout: String) -> String {
        """
        default_queue = "\(keys.queue("default"))"
        [redis]
        url = "\(try! TestRedis.url)"
        namespace = "\(keys.namespace)"
        [types.sleep]
        handler = "exec"
        command = ["/bin/sh", "-c", "sleep $(cat | sed -n 's/.*\\"seconds\\":\\\\([0-9.]*\\\\).*/\\\\1/p')"]
        [groups.sleepers]
        queues = ["\(keys.queue("default"))"]
        concurrency = 2
        shutdown_timeout = "\(shutdownTimeout)"
        """
    }

    /// One group `main` of `concurrency` slots reading the default queue, whose `ping` jobs are `noop`.
    func pingConfig(_ keys: TestKeys, concurrency: Int) throws -> String {
        """
        default_queue = "\(keys.queue("default"))"
        [redis]
        url = "\(try TestRedis.url)"
        namespace = "\(keys.namespace)"
        [types.ping]
        handler = "noop"
        [groups.main]
        queues = ["\(keys.queue("default"))"]
        concurrency = \(concurrency)

        """
    }

    @Test func sigtermExitsInTimeAndPutsUnfinishedJobsBack() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let path = try writeConfig(keys, sleeperConfig(keys, shutdownTimeout: "1s"))
        let queue = keys.queue("default")
        // Two short jobs finish; then two long ones run when SIGTERM arrives; one waits.
        var ids: [String] = []
        for seconds in ["0.1", "0.1", "30", "30", "0"] {
            let result = try await runCLI(["enqueue", "sleep", "--config", path, "--payload", #"{"seconds":\#(seconds)}"#])
            #expect(result.status == 0, "\(result.err)")
            let fields = result.out.split(separator: " ")
            #expect(fields.count == 2 && fields[1] == "\(queue)\n")
            ids.append(String(fields[0]))
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try TestRedis.binary)
        process.arguments = ["work", "--config", path]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Both long jobs are running once only the last job is left waiting.
        #expect(try await eventually { try await driver.depths(of: [queue])[queue] == 1 })
        try await Task.sleep(for: .milliseconds(300))
        let clock = ContinuousClock()
        let signalled = clock.now
        process.terminate() // SIGTERM
        #expect(await eventually(timeout: .seconds(15)) { !process.isRunning })
        let took = signalled.duration(to: clock.now)
        // The 1 s shutdown_timeout, not the 30 s jobs (room for a loaded machine).
        #expect(took < .seconds(10), "exit took \(took); shutdown_timeout is 1s")
        #expect(process.terminationStatus == 0)
        #expect(process.terminationReason == .exit)

        let remaining = try await listContents(driver, queue).map { try JobEnvelope.decode(Data($0.utf8), queue: queue) }
        #expect(remaining.map(\.id.rawValue) == [ids[2], ids[3], ids[4]])
        #expect(remaining.map(\.attempt) == [1, 1, 1])
        // Nothing is left claimed, and the stopped worker is no longer listed as live.
        #expect(try await driver.command(["HLEN", "\(keys.namespace):inflight"]) == .integer(0))
        #expect(try await driver.command(["ZCARD", "\(keys.namespace):workers"]) == .integer(0))
        let log = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(log.contains("job=\(ids[0])") && log.contains("outcome=ok"))
        #expect(log.contains("outcome=requeued"))
    }

    /// SIGTERM in the middle of a fast drain of `noop` jobs (acked from the claim loops, their
    /// acks written behind them): the process exits only once every ack it sent is written, so
    /// nothing is left claimed (to be run again after its lease) and every job is done or queued.
    @Test func sigtermMidDrainLeavesNoClaimBehind() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let queue = keys.queue("default")
        let path = try writeConfig(keys, pingConfig(keys, concurrency: 64))
        let configuration = try RouterConfiguration.load(path: path)
        // Enough that the drain is still going when the signal comes, however fast it runs.
        let total = 40_000
        _ = try await JobRouterClient(configuration: configuration, driver: driver).enqueue((0..<total).map { _ in JobRequest(type: "ping") })
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try TestRedis.binary)
        process.arguments = ["work", "--config", path, "--log-level", "warning"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Signalled once well into the drain: the claims it holds (under four times the
        // concurrency) go back to the queue at SIGTERM, so a signal right at 1,000 taken could
        // leave more than `total - 1_000` (a fresh CI run saw 39,046 after crossing 39,000).
        #expect(try await eventually { try await driver.depths(of: [queue])[queue] ?? 0 < total - 5_000 })
        process.terminate()
        #expect(await eventually(timeout: .seconds(10)) { !process.isRunning })
        #expect(process.terminationStatus == 0)
        #expect(try await driver.command(["HLEN", "\(keys.namespace):inflight"]) == .integer(0))
        let left = try await driver.depths(of: [queue])[queue] ?? -1
        #expect(left > 0 && left < total - 1_000, "the stop came mid-drain: \(left) left")
    }

    /// `jobrouter work` runs a configuration the core alone runs in the lean executable (no
    /// libcurl, libpq, SwiftNIO, full Foundation or ICU mapped), and hands one with mail,
    /// PostgreSQL or HTTP (or any option only the full CLI knows) to `jobrouter-cli`, in the same
    /// process. Either way the jobs run and SIGTERM stops it cleanly.
    // One case at a time: each starts an executable (three the full CLI), a burst the rest of the
    // suite's timing-sensitive tests should not share.
    @Test(.serialized, arguments: [
        (extra: "", arguments: ["work"], environment: [:], lean: true),
        (extra: "", arguments: ["--log-level", "info", "work", "--group=main"], environment: [:], lean: true),
        // A schedule in a named time zone: the lean worker resolves it itself, loading
        // FoundationInternationalization (ICU) then, and only then (FoundationEssentials alone
        // knows only GMT; a configuration that does not load goes to the full CLI).
        (extra: "[schedules.nightly]\ncron = \"0 3 * * *\"\ntimezone = \"Europe/Berlin\"\ntype = \"ping\"\n", arguments: ["work"], environment: [:], lean: true),
        // UTC by name needs no ICU.
        (extra: "[schedules.nightly]\ncron = \"0 3 * * *\"\ntimezone = \"Etc/UTC\"\ntype = \"ping\"\n", arguments: ["work"], environment: [:], lean: true),
        (extra: "", arguments: ["work"], environment: ["JOBROUTER_LEAN_WORKER": "0"], lean: false),
        (extra: "", arguments: ["work", "--http", "127.0.0.1:0"], environment: [:], lean: false),
        (extra: "[types.mail]\nhandler = \"smtp\"\n[smtp]\nurl = \"smtp://127.0.0.1:1\"\nfrom = \"a@example.org\"\n", arguments: ["work"], environment: [:], lean: false),
    ])
    func workRunsLeanWhenTheCoreAloneRunsTheConfiguration(extra: String, arguments: [String], environment: [String: String], lean: Bool) async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let queue = keys.queue("default")
        let base = try pingConfig(keys, concurrency: 2)
        let path = try writeConfig(keys, base + extra)
        let configuration = try RouterConfiguration.parse(toml: base)
        _ = try await JobRouterClient(configuration: configuration, driver: driver).enqueue((0..<5).map { _ in JobRequest(type: "ping") })
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try TestRedis.binary)
        process.arguments = arguments + ["--config", path]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        #expect(try await eventually { try await driver.depths(of: [queue])[queue] == 0 })
        let pid = process.processIdentifier
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
        // /proc files say they are empty: read to the end rather than by size.
        let maps = String(decoding: FileHandle(forReadingAtPath: "/proc/\(pid)/maps")?.readDataToEndOfFile() ?? Data(), as: UTF8.self)
        process.terminate()
        #expect(await eventually(timeout: .seconds(10)) { !process.isRunning })
        #expect(process.terminationStatus == 0, "\(String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))")
        #expect(URL(fileURLWithPath: executable).lastPathComponent == (lean ? "jobrouter" : "jobrouter-cli"))
        #expect(maps.contains("libhiredis"))
        #expect(maps.contains("libcurl") == !lean && maps.contains("libpq") == !lean)
        // Nor full Foundation: the core reads its TOML itself (FoundationEssentials is another file).
        #expect(maps.contains("/libFoundation.so") == !lean)
        // Nor ICU, unless a schedule names a time zone other than UTC (the full CLI has it through
        // Foundation).
        #expect(maps.contains("/libFoundationInternationalization.so") == (!lean || extra.contains("Europe/Berlin")))
        #expect(maps.contains("/lib_FoundationICU.so") == (!lean || extra.contains("Europe/Berlin")))
        #expect(try await driver.command(["HLEN", "\(keys.namespace):inflight"]) == .integer(0))
    }

    /// A word that names no log level gets the same one line and exit status from the lean
    /// worker and from the full CLI (both take the message from the library), with the
    /// configuration found through `JOBROUTER_CONFIG`.
    @Test(arguments: [["JOBROUTER_LEAN_WORKER": "1"], ["JOBROUTER_LEAN_WORKER": "0"]])
    func aBadLogLevelIsOneLineFromEitherExecutable(environment: [String: String]) async throws {
        let keys = TestKeys()
        let path = try writeConfig(keys, try pingConfig(keys, concurrency: 2))
        let outcome = try await runCLI(["work", "--log-level", "loud"], environment: environment.merging(["JOBROUTER_CONFIG": path]) { $1 })
        #expect(outcome.status == 1)
        #expect(outcome.err == Self.badLogLevelLine)
    }

    /// Commands that log nothing refuse a bad `--log-level` with the same line too, and do nothing:
    /// `enqueue` pushes no job.
    @Test(arguments: [["status"], ["enqueue", "ping", "--payload", "{}"]])
    func aBadLogLevelIsRefusedByCommandsThatLogNothing(command: [String]) async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let path = try writeConfig(keys, try pingConfig(keys, concurrency: 2))
        let outcome = try await runCLI(command + ["--config", path, "--log-level", "loud"])
        #expect(outcome.status == 1)
        #expect(outcome.err == Self.badLogLevelLine)
        #expect(try await driver.command(["LLEN", keys.queue("default")]) == .integer(0))
    }

    static let badLogLevelLine = "jobrouter: --log-level: 'loud' is not one of trace, debug, info, notice, warning, error, critical\n"

    /// Every line the worker writes is `TIME LEVEL MESSAGE`, stamped in UTC with milliseconds as
    /// it is written (times in order, close to the clock), one event a line.
    @Test func logLinesAreStampedOneEventALine() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let queue = keys.queue("default")
        let toml = try pingConfig(keys, concurrency: 2)
        let path = try writeConfig(keys, toml)
        _ = try await JobRouterClient(configuration: try RouterConfiguration.parse(toml: toml), driver: driver)
            .enqueue((0..<20).map { _ in JobRequest(type: "ping") })
        let started = Date()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try TestRedis.binary)
        process.arguments = ["work", "--config", path, "--log-level", "info"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        #expect(try await eventually { try await driver.depths(of: [queue])[queue] == 0 })
        try await Task.sleep(for: .milliseconds(300))
        process.terminate()
        let lines = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n")
        #expect(waitForExit(process) == 0)
        let stamp = #/^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z) (trace|debug|info|notice|warning|error|critical) \S/#
        var times: [Date] = []
        for line in lines {
            let match = try #require(try stamp.prefixMatch(in: line), "\(line)")
            times.append(try #require(Timestamp.parse(String(match.output.1))))
        }
        #expect(lines.filter { $0.contains(" info group=main job=") && $0.hasSuffix("outcome=ok") }.count == 20)
        #expect(lines.first?.contains("worker starting") == true && lines.last?.contains("worker stopped") == true)
        #expect(times == times.sorted())
        #expect(times.allSatisfy { abs($0.timeIntervalSince(started)) < 60 })
    }

    @Test func brokenConfigurationIsOneClearLine() async throws {
        let keys = TestKeys()
        let path = try writeConfig(keys, """
            [types.email]
            handler = "noop"
            [groups.mail]
            queues = ["default"]
            concurency = 3
            """)
        for command in [["check"], ["work"], ["status"], ["enqueue", "email"]] {
            let result = try await runCLI(command + ["--config", path])
            #expect(result.status != 0)
            #expect(result.err == "jobrouter: \(path):5: groups.mail.concurency: unknown key (did you mean 'concurrency'?)\n")
        }
        let missing = try await runCLI(["check", "--config", "/nonexistent.toml"])
        #expect(missing.status == 1)
        #expect(missing.err.hasPrefix("jobrouter: /nonexistent.toml: cannot read the file"))
    }

    @Test func enqueueRejectsBadInputInOneLine() async throws {
        let keys = TestKeys()
        let path = try writeConfig(keys, sleeperConfig(keys, shutdownTimeout: "1s"))
        let unknownType = try await runCLI(["enqueue", "nope", "--config", path])
        #expect(unknownType.status == 1)
        #expect(unknownType.err == "jobrouter: unknown job type 'nope'; known types: sleep\n")
        let badPayload = try await runCLI(["enqueue", "sleep", "--config", path, "--payload", "{oops"])
        #expect(badPayload.status == 1)
        #expect(badPayload.err == "jobrouter: --payload: the payload is not valid JSON: expected a field name at byte 2\n")
        let cutShort = try await runCLI(["enqueue", "sleep", "--config", path, "--payload", #"{"a":"#])
        #expect(cutShort.err == "jobrouter: --payload: the payload is not valid JSON: unexpected end after 5 bytes\n")
    }

    @Test func batchEnqueueKeepsGoodLinesAndNamesBadOnes() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let path = try writeConfig(keys, sleeperConfig(keys, shutdownTimeout: "1s"))
        let input = """
            {"type":"sleep","payload":{"seconds":1}}
            {"type":"nope"}

            not json
            {"type":"sleep","priority":"high"}
            {"type":"sleep","payload":[2]}
            """
        let result = try await runCLI(["enqueue", "--batch", "-", "--config", path], stdin: input)
        #expect(result.status == 1)
        let lines = result.err.split(separator: "\n").map(String.init)
        #expect(lines.contains("jobrouter: stdin:2: unknown job type 'nope'; known types: sleep"))
        #expect(lines.contains("jobrouter: stdin:4: not valid JSON: unexpected character at byte 1"))
        #expect(lines.contains { $0.hasPrefix("jobrouter: stdin:5: type 'sleep' has no priorities") })
        #expect(lines.last?.hasPrefix("enqueued 2 job(s)") == true)
        #expect(lines.last?.hasSuffix("; 3 line(s) rejected") == true)
        let stored = try await listContents(driver, keys.queue("default"))
        #expect(try stored.map { try JobEnvelope.decode(Data($0.utf8), queue: "q").payload }
                == [.object(["seconds": .integer(1)]), .array([.integer(2)])])
    }

    @Test func statusShowsDepthsAndGroups() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let path = try writeConfig(keys, sleeperConfig(keys, shutdownTimeout: "1s"))
        for _ in 0..<3 { _ = try await runCLI(["enqueue", "sleep", "--config", path]) }
        let result = try await runCLI(["status", "--json", "--config", path])
        #expect(result.status == 0, "\(result.err)")
        let status = try JSONValue.parse(result.out)
        guard case .array(let queues)? = status["queues"] else {
            Issue.record("no queues in \(result.out)")
            return
        }
        #expect(queues.first?["depth"] == .integer(3))
        #expect(queues.first?["groups"] == .array([.string("sleepers")]))
        #expect(queues.first?["dead"] == .integer(0))
        #expect(queues.first?["in_flight"] == .integer(0))
        #expect(!result.out.contains("password"))
    }
}
