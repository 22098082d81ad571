#if canImport(Glibc)
import Glibc
#endif
import JobRouter
import JobRouterRedis
import Logging
import UnixSignals

/// `jobrouter work` for a configuration the core alone runs (see ``RouterConfiguration/beyondCore``),
/// in this executable: it links only JobRouter, JobRouterRedis and what they need (no libcurl,
/// libpq, SwiftNIO or ArgumentParser), so a worker maps about two thirds of the memory the full
/// CLI does.
enum LeanWorker {
    /// Runs the worker groups until SIGTERM or SIGINT, as `jobrouter work` does.
    static func run(_ arguments: WorkArguments, configuration: RouterConfiguration) async throws {
        let logger = try LineLogHandler.logger(level: arguments.logLevel)
        let driver = try RedisQueueDriver(configuration: configuration)
        let worker: JobRouterWorker
        do {
            worker = try JobRouterWorker(configuration: configuration, driver: driver, groups: arguments.groups, logger: logger,
                                         recorders: [LoggingJobEventRecorder(logger: logger)],
                                         rateLimiter: RedisRateLimiter(driver: driver))
        } catch {
            throw LeanWorkerError("\(configuration.file ?? "configuration"): \(error)")
        }
        try await driver.preflightBeforeStart(queues: worker.queues, logger: logger)
        logger.info("worker starting: groups \(worker.groupNames.joined(separator: ", ")), redis \(driver.serverDescription)")
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await worker.stopOnSignals(signals, logger: logger) }
            await worker.run()
            tasks.cancelAll()
        }
        if let failure = worker.fatalFailure { throw LeanWorkerError(failure) }
        logger.info("worker stopped")
    }

    /// Says `message` on stderr as `jobrouter: …` (as the CLI does) and exits.
    static func fail(_ message: String, status: Int32) -> Never {
        let line = Array("jobrouter: \(message)\n".utf8)
        _ = line.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
        exit(status)
    }
}

/// A failure already said in one line.
struct LeanWorkerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

