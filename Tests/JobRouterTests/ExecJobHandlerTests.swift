import Foundation
import Logging
import Testing
@testable import JobRouter

/// The exec handler starts real processes; no server is involved.
@Suite struct ExecJobHandlerTests {
    let job = JobEnvelope(type: "report", priority: "high", queue: "reports:high", payload: .object(["n": .integer(7)]), attempt: 3)
    let context = JobContext(logger: Logger(label: "test"), group: "g", timeout: .seconds(5))

    func temporaryFile() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("jobrouter-\(UUID().uuidString)").path
    }

    @Test func passesTheJobOnStdinAndInTheEnvironment() async throws {
        let out = temporaryFile()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let script = "cat > \(out).json; printf '%s|%s|%s|%s|%s' \"$JOB_ID\" \"$JOB_TYPE\" \"$JOB_PRIORITY\" \"$JOB_QUEUE\" \"$JOB_ATTEMPT\" > \(out)"
        try await ExecJobHandler(command: ["/bin/sh", "-c", script]).handle(job, context: context)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "\(job.id)|report|high|reports:high|3")
        let stdin = try Data(contentsOf: URL(fileURLWithPath: out + ".json"))
        #expect(try JobEnvelope.decode(stdin, queue: "reports:high").payload == job.payload)
        try? FileManager.default.removeItem(atPath: out + ".json")
    }

    @Test func nonZeroExitFailsWithTheTailOfStderr() async {
        await #expect {
            try await ExecJobHandler(command: ["/bin/sh", "-c", "echo one >&2; echo 'disk full' >&2; exit 3"]).handle(job, context: context)
        } throws: { error in
            let failure = error as? JobFailure
            return failure?.message == "/bin/sh failed: exit status 3: one | disk full" && failure?.permanent == false
        }
    }

    @Test func missingProgramIsAPermanentFailure() async {
        await #expect {
            try await ExecJobHandler(command: ["./no-such-program"]).handle(job, context: context)
        } throws: { error in
            (error as? JobFailure)?.permanent == true && "\(error)".contains("No such file")
        }
    }

    @Test func largeInputThatIsNeverReadDoesNotHang() async throws {
        let big = JobEnvelope(type: "report", priority: nil, queue: "q", payload: .string(String(repeating: "x", count: 1_000_000)))
        try await ExecJobHandler(command: ["/bin/true"]).handle(big, context: context)
    }

    @Test func cancellationKillsTheWholeProcessGroup() async throws {
        let pidFile = temporaryFile()
        defer { try? FileManager.default.removeItem(atPath: pidFile) }
        // The child starts a grandchild that writes its pid, then sleeps.
        let script = "sh -c 'echo $$ > \(pidFile); exec sleep 30' & sleep 30"
        let clock = ContinuousClock()
        let start = clock.now
        let task = Task {
            try await ExecJobHandler(command: ["/bin/sh", "-c", script]).handle(job, context: context)
        }
        // Cancelled once the grandchild runs (a fixed wait here once outlasted a grandchild's
        // timer on a loaded machine, which then looked like a survivor).
        var grandchild: Int32?
        while grandchild == nil, start.duration(to: clock.now) < .seconds(20) {
            grandchild = (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            try await Task.sleep(for: .milliseconds(10))
        }
        let pid = try #require(grandchild)
        #expect(Self.alive(pid))
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        // Far below the sleeps' 30 s: SIGTERM ended them.
        #expect(start.duration(to: clock.now) < .seconds(20))
        #expect(!Self.alive(pid), "a grandchild survived")
    }

    /// Whether `pid` still runs (a zombie waiting for whoever inherited it does not count).
    static func alive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else {
            return false
        }
        return stat[stat.index(after: close)...].split(separator: " ").first != "Z"
    }
}
