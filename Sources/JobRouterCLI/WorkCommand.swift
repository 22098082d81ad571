import ArgumentParser
import CMalloc
import Foundation
import JobRouter
import JobRouterHTTP
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

    @Option(name: .long, help: ArgumentHelp("Serve /metrics, /healthz and /readyz at HOST:PORT (a bare port listens on 127.0.0.1); overrides [http] listen.", valueName: "host:port"))
    var http: String?

    /// Buffers of 128 KiB and more (a ledger batch's reply, records and `COPY` stream) get pages
    /// of their own, returned when freed. glibc's default raises that bound to the largest buffer
    /// freed so far, after which such buffers come from the heap, whose pages the process keeps:
    /// a ledger worker's RSS after a 1M-job drain was 56 MB, 44-45 with this, and the drains did
    /// not move (docs/benchmarks.md). Only for `work`: a batch enqueue, whose large buffers come
    /// and go by the hundred, ran ~10 % slower with it. `MALLOC_MMAP_THRESHOLD_`, if set, still wins.
    static func keepLargeBuffersOutOfTheHeap() {
        if ProcessInfo.processInfo.environment["MALLOC_MMAP_THRESHOLD_"] == nil { _ = mallopt(M_MMAP_THRESHOLD, 128 * 1024) }
    }

    func run() async throws {
        Self.keepLargeBuffersOutOfTheHeap()
        try await CommandFailure.reporting {
            let configuration = try options.loadConfiguration()
            let logger = try options.makeLogger()
            let driver = try options.makeDriver(configuration)
            var listen = configuration.httpListen
            if let http {
                do { listen = try HTTPListenAddress(parsing: http) } catch { throw CommandFailure("\(error)") }
            }
            // Before anything makes a metric: Prometheus becomes the process's metrics backend.
            let operations = try listen.map { try OperationsEndpoint(listen: $0, configuration: configuration, options: options, logger: logger) }
            var recorders: [any JobEventRecorder] = [LoggingJobEventRecorder(logger: logger)]
            if operations != nil { recorders.append(MetricsJobEventRecorder(configuration: configuration)) }
            let worker: JobRouterWorker
            do {
                // The SMTP provider opens one connection per worker slot that can receive mail.
                worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: options.handlers,
                                             groups: group, logger: logger, recorders: recorders,
                                             rateLimiter: RedisRateLimiter(driver: driver))
            } catch {
                throw CommandFailure("\(configuration.file ?? "configuration"): \(error)")
            }
            do {
                try await driver.preflightBeforeStart(queues: worker.queues, logger: logger)
            } catch {
                throw CommandFailure("\(error)")
            }
            let shippers = try await ledgerShippers(configuration, driver: driver, worker: worker, logger: logger)
            let relay = try configuration.postgres.flatMap { settings in
                settings.outbox ? try OutboxRelay(configuration: configuration, driver: driver, logger: logger) : nil
            }
            logger.info("worker starting: groups \(worker.groupNames.joined(separator: ", ")), redis \(driver.serverDescription)\(shippers.isEmpty ? "" : ", ledger on")\(relay == nil ? "" : ", outbox relay on")")
            if let operations {
                operations.exporter.reportLoad { worker.load }
                operations.exporter.exportRateLimitWaits(groups: worker.groupNames.filter { name in
                    configuration.groups[name].map(configuration.receivesMail) ?? false
                })
            }
            let operationsGroup = operations?.serviceGroup(logger: logger)
            let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
            // Each task says which it was: the workers' end ends the command.
            let httpFailure = await withTaskGroup(of: TaskEnd.self) { tasks -> String? in
                if let operationsGroup, let listen {
                    tasks.addTask {
                        do {
                            try await operationsGroup.run()
                        } catch {
                            // No endpoint (the port is taken): stop rather than run unobserved.
                            worker.shutdown(immediately: true)
                            return .http(failure: "http: cannot serve on \(listen): \(error)")
                        }
                        return .http(failure: nil)
                    }
                }
                tasks.addTask {
                    let shipping = shippers.map { shipper in Task { await shipper.run() } }
                    let relaying = relay.map { relay in Task { await relay.run() } }
                    await worker.run()
                    if let relay, let relaying {
                        relay.finish()
                        await Self.wait(for: relaying, atMost: .seconds(3))
                    }
                    // The groups' last settles are in the log now: store them, then stop. A call
                    // stuck on an unresponsive PostgreSQL does not hold the exit: what is not
                    // stored stays in Redis for the next shipper.
                    for shipper in shippers { shipper.finish() }
                    for task in shipping { await Self.wait(for: task, atMost: LedgerShipper.finishGrace + .seconds(2)) }
                    // The HTTP side stops after the workers, so the last scrape sees their end.
                    await operationsGroup?.triggerGracefulShutdown()
                    return .workers
                }
                tasks.addTask {
                    await worker.stopOnSignals(signals, logger: logger) { operations?.health.markStopping() }
                    return .signals
                }
                // Done when the workers are, and the HTTP side (told to stop after them) has stopped.
                var failure: String?
                var workersDone = false
                var httpDone = operationsGroup == nil
                while !(workersDone && httpDone), let end = await tasks.next() {
                    switch end {
                    case .workers: workersDone = true
                    case .http(let message): httpDone = true; failure = failure ?? message
                    case .signals: break
                    }
                }
                tasks.cancelAll()
                return failure
            }
            if let failure = worker.fatalFailure ?? httpFailure { throw CommandFailure(failure) }
            logger.info("worker stopped")
        }
    }

    /// Which of `run`'s tasks ended.
    private enum TaskEnd: Sendable {
        case workers, signals
        case http(failure: String?)
    }

    /// The ledger's shippers when `[postgres] ledger` is on: one per shard's attempt log (one on a
    /// single Redis). With the ledger or the outbox on, refuses to start when PostgreSQL is
    /// reachable and the schema is behind; starts anyway (saying so) when it is unreachable.
    private func ledgerShippers(_ configuration: RouterConfiguration, driver: RedisQueueDriver, worker: JobRouterWorker,
                                logger: Logger) async throws -> [LedgerShipper] {
        guard let settings = configuration.postgres, settings.ledger || settings.outbox else { return [] }
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
            logger.warning("postgres unreachable (\(error)); starting anyway: attempt records wait in redis, outbox rows in postgres, until it is back")
        }
        guard settings.ledger else { return [] }
        return driver.shards.map { shard in
            LedgerShipper(log: RedisAttemptLog(driver: shard), pool: pool, settings: settings, consumer: worker.workerID,
                          logger: logger, reclaimIdle: Self.reclaimIdle)
        }
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
