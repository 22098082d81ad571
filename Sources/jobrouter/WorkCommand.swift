import ArgumentParser
import Foundation
import JobRouter
import JobRouterPostgres
import JobRouterRedis
import JobRouterSMTP
import Logging
import Synchronization
import UnixSignals

/// `jobrouter work`: runs worker groups until SIGTERM or SIGINT.
struct WorkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "work",
        abstract: "Run worker groups (all of them when no --group is given).",
        discussion: """
            One log line per job: group, job id, type, queue, attempt, wait time, run time, outcome.
            SIGTERM or SIGINT stops fetching at once and lets running jobs finish within the group's
            shutdown_timeout; jobs still running then go back to the head of their queue. A second
            signal puts them back at once.
            """)

    @OptionGroup var options: CommonOptions

    @Option(name: .long, help: "A group to run; repeat for several.")
    var group: [String] = []

    func run() async throws {
        try await CommandFailure.reporting {
            let configuration = try options.loadConfiguration()
            let logger = try options.makeLogger()
            let driver = try options.makeDriver(configuration)
            let worker: JobRouterWorker
            do {
                // The SMTP provider opens one connection per worker slot that can receive mail.
                worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: options.handlers,
                                             groups: group, logger: logger, rateLimiter: RedisRateLimiter(driver: driver))
            } catch {
                throw CommandFailure("\(configuration.file ?? "configuration"): \(error)")
            }
            let queues = Set(worker.groupNames.compactMap { configuration.groups[$0] }.flatMap(\.queues)).sorted()
            do {
                try await driver.preflight(queues: queues)
            } catch let error as RedisError where error.isPermanent {
                throw CommandFailure("\(error)")
            } catch {
                // Unreachable for now: the workers wait for the server and say so once.
                logger.warning("cannot check redis before starting (\(error)); starting anyway")
            }
            let shipper = try await ledgerShipper(configuration, driver: driver, worker: worker, logger: logger)
            logger.info("worker starting: groups \(worker.groupNames.joined(separator: ", ")), redis \(driver.endpoint)\(shipper == nil ? "" : ", ledger on")")
            let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
            await withTaskGroup(of: Void.self) { tasks in
                tasks.addTask {
                    let shipping = shipper.map { shipper in Task { await shipper.run() } }
                    await worker.run()
                    guard let shipper, let shipping else { return }
                    // The groups' last settles are in the log now: store them, then stop. A call
                    // stuck on an unresponsive PostgreSQL does not hold the exit: what is not
                    // stored stays in Redis for the next shipper.
                    shipper.finish()
                    await Self.wait(for: shipping, atMost: LedgerShipper.finishGrace + .seconds(2))
                }
                tasks.addTask {
                    var received = 0
                    for await signal in signals {
                        received += 1
                        if received == 1 {
                            logger.notice("\(signal): stopping; running jobs may finish (send again to put them back now)")
                            worker.shutdown()
                        } else {
                            logger.notice("\(signal) again: putting running jobs back now")
                            worker.shutdown(immediately: true)
                        }
                    }
                }
                await tasks.next()
                tasks.cancelAll()
            }
            if let failure = worker.fatalFailure { throw CommandFailure(failure) }
            logger.info("worker stopped")
        }
    }

    /// The ledger's shipper when `[postgres] ledger` is on. Refuses to start when PostgreSQL is
    /// reachable and the schema is behind; starts anyway (saying so) when it is unreachable.
    private func ledgerShipper(_ configuration: RouterConfiguration, driver: RedisQueueDriver, worker: JobRouterWorker,
                               logger: Logger) async throws -> LedgerShipper? {
        guard let settings = configuration.postgres, settings.ledger else { return nil }
        let pool = PostgresPool(settings: settings, applicationName: "jobrouter ledger \(worker.workerID)", size: 1)
        do {
            let status = try await PostgresMigrator(schema: settings.schema).status(pool)
            if let behind = status.pending.first {
                let at = status.applied.map(\.version).max() ?? 0
                throw CommandFailure("postgres \(pool.server): schema \(settings.schema) is at version \(at), this JobRouter needs \(PostgresMigrator.latestVersion) (pending: \(behind.version) \(behind.name)); run `jobrouter migrate`")
            }
        } catch let error as CommandFailure {
            throw error
        } catch let error as PostgresError where error.isPermanent {
            throw CommandFailure("\(error)")
        } catch {
            logger.warning("ledger: postgres unreachable (\(error)); starting anyway: attempt records wait in redis until it is back")
        }
        return LedgerShipper(log: RedisAttemptLog(driver: driver), pool: pool, settings: settings, consumer: worker.workerID,
                             logger: logger, reclaimIdle: Self.reclaimIdle)
    }

    /// Returns when `task` ends or `limit` passes, whichever is first (a task blocked in a C call
    /// cannot be cancelled, and awaiting it in a task group would wait for it anyway).
    static func wait(for task: Task<Void, Never>, atMost limit: Duration) async {
        let resumed = Mutex(false)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeOnce = { @Sendable in
                if resumed.withLock({ done in defer { done = true }; return !done }) { continuation.resume() }
            }
            Task { await task.value; resumeOnce() }
            Task { try? await Task.sleep(for: limit); resumeOnce() }
        }
    }

    /// How long records taken by a shipper that died wait before another takes them
    /// (`JOBROUTER_LEDGER_RECLAIM`, seconds, for tests; default 60).
    static var reclaimIdle: Duration {
        let text = ProcessInfo.processInfo.environment["JOBROUTER_LEDGER_RECLAIM"] ?? ""
        return Double(text).map { .milliseconds(Int64($0 * 1000)) } ?? .seconds(60)
    }
}
