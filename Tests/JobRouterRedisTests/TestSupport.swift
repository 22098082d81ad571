import Foundation
import JobRouter
import JobRouterRedis
import Logging
import Synchronization
import Testing

/// The Redis server the suite runs against: `JOBROUTER_TEST_REDIS_URL`, set by `scripts/test.sh`.
/// A missing server is a failure, never a skip.
enum TestRedis {
    static var url: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["JOBROUTER_TEST_REDIS_URL"], !url.isEmpty else {
                throw TestSetupError("JOBROUTER_TEST_REDIS_URL is not set: run the suite with scripts/test.sh")
            }
            return url
        }
    }

    /// A driver on the test server.
    static func driver(namespace: String) throws -> RedisQueueDriver {
        RedisQueueDriver(endpoint: try RedisEndpoint(url: try url), namespace: namespace)
    }

    /// The built `jobrouter` executable.
    static var binary: String {
        get throws {
            if let path = ProcessInfo.processInfo.environment["JOBROUTER_BINARY"], !path.isEmpty { return path }
            // Beside the test bundle: .build/debug/JobRouterPackageTests.xctest → .build/debug/jobrouter
            let candidate = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("jobrouter").path
            guard FileManager.default.isExecutableFile(atPath: candidate) else {
                throw TestSetupError("cannot find the jobrouter binary; set JOBROUTER_BINARY or run scripts/test.sh")
            }
            return candidate
        }
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Names unique to one test, so tests can share one server and run in parallel.
struct TestKeys {
    let prefix: String

    init(_ name: String = #function) {
        let clean = name.prefix(while: { $0 != "(" })
        prefix = "t-\(clean)-\(UUID().uuidString.prefix(8))"
    }

    func queue(_ name: String) -> String { "\(prefix):\(name)" }
    var namespace: String { "\(prefix)-jr" }
}

/// A logger that writes nothing unless `JOBROUTER_TEST_LOG` is set.
let testLogger: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = ProcessInfo.processInfo.environment["JOBROUTER_TEST_LOG"] == nil ? .critical : .debug
    return logger
}()

/// Collects events so tests can assert on what really happened.
final class EventLog: JobEventRecorder, Sendable {
    private let events = Mutex<[JobEvent]>([])

    func record(_ event: JobEvent) {
        events.withLock { $0.append(event) }
    }

    var all: [JobEvent] { events.withLock { $0 } }

    var succeeded: [JobEnvelope] {
        all.compactMap { if case .succeeded(let job, _, _, _) = $0 { return job } else { return nil } }
    }

    var deadLettered: [DeadLetter] {
        all.compactMap { if case .deadLettered(let record, _) = $0 { return record } else { return nil } }
    }
}

/// A thread-safe list of observations made inside handlers.
final class Observations<Value: Sendable>: Sendable {
    private let values = Mutex<[Value]>([])
    func append(_ value: Value) { values.withLock { $0.append(value) } }
    var all: [Value] { values.withLock { $0 } }
    var count: Int { values.withLock { $0.count } }
}

/// Tracks how many handlers run at once, and the most ever seen.
final class ConcurrencyGauge: Sendable {
    private let state = Mutex<(current: Int, peak: Int)>((0, 0))

    func enter() { state.withLock { $0.current += 1; $0.peak = max($0.peak, $0.current) } }
    func leave() { state.withLock { $0.current -= 1 } }
    var peak: Int { state.withLock { $0.peak } }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}

/// Reads a list's entries as text.
func listContents(_ driver: RedisQueueDriver, _ key: String) async throws -> [String] {
    let reply = try await driver.command(["LRANGE", key, "0", "-1"])
    guard case .array(let items) = reply else { return [] }
    return items.compactMap { if case .string(let bytes) = $0 { return String(decoding: bytes, as: UTF8.self) } else { return nil } }
}

/// Deletes a test's keys.
func cleanUp(_ driver: RedisQueueDriver, _ keys: TestKeys) async {
    for pattern in ["\(keys.prefix):*", "\(keys.namespace):*"] {
        if case .array(let found)? = try? await driver.command(["KEYS", pattern]) {
            for case .string(let key) in found {
                _ = try? await driver.command(["DEL", String(decoding: key, as: UTF8.self)])
            }
        }
    }
}

/// Runs a worker in a child task for the duration of `body`, then shuts it down gracefully and waits.
func withWorker(
    _ worker: JobRouterWorker, _ body: () async throws -> Void
) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await worker.run() }
        do {
            try await body()
        } catch {
            worker.shutdown(immediately: true)
            throw error
        }
        worker.shutdown()
        try await group.waitForAll()
    }
}

/// Runs the `jobrouter` binary to its end and returns its exit status, stdout and stderr.
/// Waiting happens on a thread of its own, off the cooperative pool.
func runCLI(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]) async throws -> (status: Int32, out: String, err: String) {
    let binary = try TestRedis.binary
    return try await withCheckedThrowingContinuation { continuation in
        Thread {
            continuation.resume(with: Result { try runBlocking(binary, arguments, stdin: stdin, environment: environment) })
        }.start()
    }
}

/// Runs any program to its end (off the cooperative pool) and returns its exit status, stdout and stderr.
func runProgram(_ path: String, _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]) async throws -> (status: Int32, out: String, err: String) {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            continuation.resume(with: Result { try runBlocking(path, arguments, stdin: stdin, environment: environment) })
        }.start()
    }
}

private func runBlocking(_ binary: String, _ arguments: [String], stdin: String?, environment: [String: String]) throws -> (status: Int32, out: String, err: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env.merge(environment) { $1 }
    process.environment = env
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    let status = waitForExit(process) ?? -1
    return (status, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

/// How a child process ended: its exit status, or 128 + the signal that ended it; `nil` when it
/// had not ended within `limit`. Foundation's own wait (`waitUntilExit`) can miss a child's end:
/// once in some thirty chaos runs a SIGKILLed worker stayed a zombie that nothing reaped, and the
/// wait spun a core for good, past the suite's time limit (a wait that never suspends cannot be
/// cancelled). This one reaps the child itself when Foundation has not, and gives up at `limit`.
@discardableResult
func waitForExit(_ process: Process, limit: Duration = .seconds(60)) -> Int32? {
    let pid = process.processIdentifier
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if !process.isRunning {
            return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            let signal = status & 0x7f
            return signal == 0 ? (status >> 8) & 0xff : 128 + signal
        }
        usleep(5_000)
    }
    return nil
}
