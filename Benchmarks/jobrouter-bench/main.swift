// Library-level figures for scripts/bench-library.sh: bulk enqueue through `JobRouterClient`
// (one call for everything, first in the process; calls of 10,000; one call again, the process
// warm: connection, scripts and heap), drains through `JobRouterWorker` with a
// registered Swift handler (the path an app embedding JobRouter runs, timeout race included), and
// pickup latency from idle.
// Prints figures; not a test.
//   jobrouter-bench REDIS_URL [N]      (BENCH_ENQUEUE_ONLY=1: the enqueue figures alone)
//   jobrouter-bench records            (no server: the time to build one ledger record's JSON)
import Foundation
import JobRouter
import JobRouterRedis
import Logging
import Synchronization

@main
struct Bench {
    static func main() async throws {
        let arguments = CommandLine.arguments
        if arguments.count == 2, arguments[1] == "records" { return records() }
        guard arguments.count >= 2 else {
            FileHandle.standardError.write(Data("usage: jobrouter-bench REDIS_URL [N]\n".utf8))
            exit(2)
        }
        let n = arguments.count > 2 ? Int(arguments[2]) ?? 100_000 : 100_000
        let prefix = "bench-\(UInt32.random(in: 0...UInt32.max))"
        let namespace = prefix + "-jr"
        var logger = Logger(label: "bench")
        logger.logLevel = .warning

        func configuration(concurrency: Int) throws -> RouterConfiguration {
            try RouterConfiguration.parse(toml: """
                default_queue = "\(prefix):low"
                [redis]
                url = "\(arguments[1])"
                namespace = "\(namespace)"
                [types.ping]
                handler = "swift"
                priorities = { high = "\(prefix):high", low = "\(prefix):low" }
                default_priority = "low"
                [groups.bench]
                queues = ["\(prefix):high", "\(prefix):low"]
                concurrency = \(concurrency)
                """, providers: HandlerRegistry().providers)
        }
        let base = try configuration(concurrency: 10)
        let driver = try RedisQueueDriver(configuration: base)
        let client = JobRouterClient(configuration: base, driver: driver)
        let requests = (0..<n).map { JobRequest(type: "ping", priority: $0 % 4 == 0 ? "high" : "low", payload: .object(["n": .integer(Int64($0))])) }

        func depth() async throws -> Int {
            var total = 0
            for queue in ["\(prefix):high", "\(prefix):low"] {
                if case .integer(let count) = try await driver.command(["LLEN", queue]) { total += Int(count) }
            }
            return total
        }
        func clear() async throws {
            _ = try await driver.command(["DEL", "\(prefix):high", "\(prefix):low", "\(namespace):wake:\(prefix):high", "\(namespace):wake:\(prefix):low"])
        }
        func rate(_ start: ContinuousClock.Instant) -> String {
            let seconds = (ContinuousClock.now - start).inSeconds
            return "\(Int(Double(n) / seconds)) jobs/s (\(String(format: "%.2f", seconds)) s)"
        }

        var start = ContinuousClock.now
        _ = try await client.enqueue(requests)
        print("library enqueue, one call of \(n)           \(rate(start))")
        let queued = try await depth()
        guard queued == n else { fatalError("expected \(n) queued jobs, found \(queued)") }
        try await clear()

        start = ContinuousClock.now
        for chunk in stride(from: 0, to: n, by: 10_000) {
            _ = try await client.enqueue(Array(requests[chunk..<min(chunk + 10_000, n)]))
        }
        print("library enqueue, calls of 10,000          \(rate(start))")
        try await clear()
        start = ContinuousClock.now
        _ = try await client.enqueue(requests)
        print("library enqueue, one call again (warm)    \(rate(start))")
        if ProcessInfo.processInfo.environment["BENCH_ENQUEUE_ONLY"] != nil { return }

        for concurrency in [10, 64] {
            if try await depth() == 0 { _ = try await client.enqueue(requests) }
            var handlers = HandlerRegistry()
            handlers.register(type: "ping") { _, _ in }
            let worker = try JobRouterWorker(configuration: try configuration(concurrency: concurrency), driver: driver,
                                             handlers: handlers, logger: logger, recorders: [])
            start = ContinuousClock.now
            let running = Task { await worker.run() }
            while try await depth() > 0 { try await Task.sleep(for: .milliseconds(5)) }
            print("drain, Swift handler, concurrency \(concurrency)      \(rate(start))")
            worker.shutdown()
            await running.value
        }
        // Pickup from idle: one job at a time, 20 ms apart, into an idle worker; the handler notes
        // enqueued_at -> start (the client and the worker share this process's clock). Only these
        // jobs (an integer payload) count: the drain's shutdown may have put a few of its claimed
        // jobs back, which this worker runs first, seconds after they were enqueued.
        let waits = Waits()
        var handlers = HandlerRegistry()
        handlers.register(type: "ping") { job, _ in
            if case .integer = job.payload { waits.add(Date().timeIntervalSince(job.enqueuedAt)) }
        }
        let idle = try JobRouterWorker(configuration: try configuration(concurrency: 10), driver: driver, handlers: handlers,
                                       logger: logger, recorders: [])
        let running = Task { await idle.run() }
        try await Task.sleep(for: .milliseconds(500))
        for index in 0..<300 {
            _ = try await client.enqueue(type: "ping", payload: .integer(Int64(index)))
            try await Task.sleep(for: .milliseconds(20))
        }
        try await Task.sleep(for: .milliseconds(200))
        idle.shutdown()
        await running.value
        let sorted = waits.all.sorted()
        if !sorted.isEmpty {
            func percentile(_ q: Double) -> String { String(format: "%.2f ms", sorted[min(sorted.count - 1, Int(q * Double(sorted.count)))] * 1000) }
            print("pickup from idle (\(sorted.count) jobs)         p50 \(percentile(0.5)), p99 \(percentile(0.99)), max \(percentile(1))")
        }

        // This run's keys only (the namespace is its own).
        _ = try await driver.command(["EVAL", "for _, key in ipairs(redis.call('KEYS', ARGV[1] .. '*')) do redis.call('DEL', key) end", "0", prefix])
    }

    /// The worker builds one ledger record per job when a ledger is on: five rounds of a million.
    static func records() {
        let entry = Data(#"{"id":"01JEXAMPLE0000000000000000","type":"ping","priority":"normal","enqueued_at":1733200000.123,"attempt":1,"payload":{"n":12345}}"#.utf8)
        let record = AttemptRecord(jobID: JobID(rawValue: "01JEXAMPLE0000000000000000"), claim: "host-1:12345:abcdef/123456.17",
                                   type: "ping", priority: "normal", queue: "bench:default", group: "bench", attempt: 1,
                                   outcome: .succeeded, error: nil, worker: "host-1:12345:abcdef",
                                   enqueuedAt: Date(), startedAt: Date(), finishedAt: Date(), entry: entry)
        var bytes = 0
        for round in 1...5 {
            let start = ContinuousClock.now
            for _ in 0..<1_000_000 { bytes &+= record.jsonBytes.count }
            let seconds = (ContinuousClock.now - start) / .seconds(1)
            print("ledger record JSON, round \(round): \(String(format: "%.0f", seconds * 1000)) ns per record (\(bytes / round / 1_000_000) bytes)")
        }
    }
}

/// Pickup times noted by the handler.
final class Waits: Sendable {
    private let values = Mutex<[Double]>([])
    func add(_ value: Double) { values.withLock { $0.append(value) } }
    var all: [Double] { values.withLock { $0 } }
}
