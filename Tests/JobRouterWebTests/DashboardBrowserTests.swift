import Foundation
import JobRouter
import JobRouterRedis
@testable import JobRouterWeb
import Logging
import Synchronization
import Testing

/// The dashboard in headless Chromium (Tests/browser/dashboard.py, Selenium), against the real
/// Redis: pages render, hostile text stays inert, a dead job retried by a click is back in its
/// queue and runs, and the overview's numbers move during a drain without a reload.
/// `JOBROUTER_SCREENSHOTS=DIR` keeps a screenshot of each page there.
@Suite(.timeLimit(.minutes(2)))
struct DashboardBrowserTests {
    @Test func clickedThroughInChromium() async throws {
        let setup = try DashboardTests.Setup(handler: "swift")
        let client = JobRouterClient(configuration: setup.configuration, driver: setup.driver)
        _ = try await client.enqueue((0..<1000).map { JobRequest(type: "mail", payload: .integer(Int64($0))) })
        let dead = JobEnvelope(type: "mail", priority: "low", queue: "\(setup.prefix):low", payload: .string("<script>alert(3)</script>"))
        _ = try await setup.driver.deadLetter(
            DeadLetter(id: dead.id, queue: dead.queue, type: "\"><img src=x onerror=alert(2)>", attempt: 1, reason: "smtp 550", raw: Data(dead.jsonText.utf8)),
            claim: nil, maxDead: 1000, attempt: nil)

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("browser-\(setup.prefix)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let signal = directory.appendingPathComponent("drain")
        let screenshots = ProcessInfo.processInfo.environment["JOBROUTER_SCREENSHOTS"] ?? directory.path
        let ran = Observations<String>()
        var handlers = HandlerRegistry()
        handlers.register(type: "mail") { job, _ in
            ran.append(job.id.rawValue)
            try await Task.sleep(for: .milliseconds(2))
        }
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let worker = try JobRouterWorker(configuration: setup.configuration, driver: setup.driver, handlers: handlers, logger: logger, recorders: [])

        try await setup.withServer { base in
            // The drain starts when the browser says it watches the overview.
            let drain = Task {
                while !FileManager.default.fileExists(atPath: signal.path) { try await Task.sleep(for: .milliseconds(50)) }
                await worker.run()
            }
            defer { worker.shutdown(); drain.cancel() }
            let log = directory.appendingPathComponent("browser.log")
            let status = try await Self.run("/usr/bin/python3", [Self.script, base, dead.id.rawValue, signal.path, screenshots], log: log)
            let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            #expect(status == 0, "\(output)")
            // The job retried by the click ran.
            let retriedRan = await Self.eventually(timeout: .seconds(30)) { ran.all.contains(dead.id.rawValue) }
            #expect(retriedRan, "the retried job did not run")
        }
    }

    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("browser/dashboard.py").path
    }

    /// Runs a process to its end without blocking a thread of the cooperative pool.
    static func run(_ executable: String, _ arguments: [String], log: URL) async throws -> Int32 {
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let output = try FileHandle(forWritingTo: log)
        defer { try? output.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = output
        return await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch { continuation.resume(returning: -1) }
        }
    }

    static func eventually(timeout: Duration = .seconds(15), _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return await condition()
    }
}

/// Values noted from handlers.
final class Observations<Value: Sendable>: Sendable {
    private let values = Mutex<[Value]>([])
    func append(_ value: Value) { values.withLock { $0.append(value) } }
    var all: [Value] { values.withLock { $0 } }
}
