import Logging
import ServiceLifecycle

/// Runs worker groups from a configuration in this process.
///
/// A `Service`: run it in a `ServiceGroup` beside your HTTP server, or call ``run()`` directly.
/// Graceful shutdown stops fetching at once and lets running jobs finish within each group's
/// `shutdown_timeout`; jobs still running then, or when the task is cancelled (or
/// ``shutdown(immediately:)`` is called with `true`), are put back at the head of their queue
/// with their attempt unchanged.
public struct JobRouterWorker: Service {
    private let runners: [WorkerGroupRunner]
    private let controller: ShutdownController
    private let maintenance: WorkerMaintenance
    private let health: ConnectionHealth

    /// Prepares the groups named in `groups` (every group when empty). Groups that receive `smtp`
    /// jobs claim at most at `[smtp] rate_limit` through `rateLimiter`, across every process.
    ///
    /// Throws when a group is unknown, when a type whose jobs those groups read has no usable
    /// handler (a kind with no provider in `handlers`, such as `smtp` without JobRouterSMTP's
    /// `SMTPHandlerProvider`, or a `swift` type not registered in `handlers`), or when a mail group needs a rate limit and no `rateLimiter` is given.
    public init(
        configuration: RouterConfiguration,
        driver: any JobQueueDriver,
        handlers registry: HandlerRegistry = HandlerRegistry(),
        groups names: [String] = [],
        logger: Logger,
        recorders: [any JobEventRecorder]? = nil,
        rateLimiter: (any RateLimiter)? = nil
    ) throws {
        let known = configuration.groups.keys.sorted()
        for name in names where configuration.groups[name] == nil {
            throw WorkerError(message: "unknown group '\(name)'; groups: \(known.joined(separator: ", "))")
        }
        let selected = (names.isEmpty ? known : names).compactMap { configuration.groups[$0] }
        if selected.isEmpty { throw WorkerError(message: "the configuration declares no worker groups") }

        // Types whose jobs these groups will take must be runnable; others resolve when they can.
        let queues = Set(selected.flatMap(\.queues))
        let needed = Set(queues.flatMap { configuration.types(routingTo: $0) })
        var handlers: [String: any JobHandler] = [:]
        var unavailable: [String: String] = [:]
        for name in configuration.types.keys.sorted() {
            do {
                handlers.merge(try registry.resolve([name], in: configuration, groups: selected)) { $1 }
            } catch {
                if needed.contains(name) { throw WorkerError(message: error.description) }
                unavailable[name] = error.message
            }
        }

        let controller = ShutdownController()
        let health = ConnectionHealth(logger: logger)
        self.health = health
        // Cluster-wide throughput is always counted: `status` shows it whoever runs the workers.
        let throughput = ThroughputRecorder(configuration: configuration)
        let events = JobEventFanout(recorders: (recorders ?? [LoggingJobEventRecorder(logger: logger)]) + [throughput])
        let workerID = WorkerDescription.makeID()
        let scheduled = ScheduleAlarm()
        self.controller = controller
        self.runners = try selected.map { group in
            // A group with its own rate_limit, and a group that receives mail ([smtp] rate_limit),
            // are paced by rates shared by every process: a permit of each before each claim.
            var gates: [RateGate] = []
            if let rate = group.rateLimit {
                guard let rateLimiter else {
                    throw WorkerError(message: "groups.\(group.name).rate_limit is \(rate), but no rateLimiter was given (pass RedisRateLimiter(driver:))")
                }
                gates.append(RateGate(limiter: rateLimiter, key: "group:\(group.name)", rate: rate, burst: group.burst))
            }
            if configuration.receivesMail(group), let smtp = configuration.smtp, let rate = smtp.rateLimit {
                guard let rateLimiter else {
                    throw WorkerError(message: "groups.\(group.name) receives mail and smtp.rate_limit is \(rate), but no rateLimiter was given (pass RedisRateLimiter(driver:))")
                }
                gates.append(RateGate(limiter: rateLimiter, key: "smtp", rate: rate, burst: smtp.burst))
            }
            return WorkerGroupRunner(
                group: group, configuration: configuration, handlers: handlers, services: registry.services, unavailable: unavailable,
                driver: driver.shard(forQueues: group.queues), workerID: workerID, shutdown: controller, health: health, events: events, logger: logger,
                gates: gates, aging: group.maxWait.isEmpty ? nil : AgingSlots(group: group), attempts: configuration.ledgerTerms.map { AttemptRecorder(worker: workerID, storePayload: $0.storePayload) },
                scheduled: scheduled)
        }
        self.maintenance = WorkerMaintenance(
            workerID: workerID, runners: runners, configuration: configuration, driver: driver,
            shutdown: controller, events: events, throughput: throughput, logger: logger, scheduled: scheduled)
    }

    /// This process's id in heartbeats and claim tokens.
    public var workerID: String { maintenance.workerID }

    /// Set when the worker stopped because of a failure that retrying cannot fix (e.g. the server
    /// refused the credentials): what it was. `jobrouter work` exits 1 with it.
    public var fatalFailure: String? { health.fatalFailure }

    /// The names of the groups this worker runs.
    public var groupNames: [String] { runners.map(\.group.name) }

    /// The queues its groups read, each once, sorted.
    public var queues: [String] { Set(runners.flatMap(\.group.queues)).sorted() }

    /// Each group's jobs running now (claims held) and its concurrency, for metrics.
    public var load: [GroupLoad] {
        runners.map { GroupLoad(group: $0.group.name, busy: $0.claims.count, concurrency: $0.slots.capacity) }
    }

    /// Runs every group until shutdown; returns once each has stopped and put back what it must.
    public func run() async {
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await withDiscardingTaskGroup { tasks in
                    // Heartbeats, lease recovery and the scheduler stop once every group has stopped
                    // (a last heartbeat keeps the leases of jobs being put back).
                    let groupsDone = ShutdownController()
                    tasks.addTask { await maintenance.run(until: groupsDone) }
                    await withDiscardingTaskGroup { groups in
                        for runner in runners {
                            groups.addTask { await runner.run() }
                        }
                    }
                    groupsDone.advance(to: .aborting)
                }
            } onCancel: {
                controller.advance(to: .aborting)
            }
        } onGracefulShutdown: {
            controller.advance(to: .draining)
        }
    }

    /// Starts shutdown: graceful (running jobs may finish within `shutdown_timeout`), or immediate
    /// (running jobs are stopped and put back now). A graceful shutdown already under way can be
    /// made immediate by calling again with `true`.
    public func shutdown(immediately: Bool = false) {
        controller.advance(to: immediately ? .aborting : .draining)
    }
}

/// How busy one worker group of this process is.
public struct GroupLoad: Sendable, Equatable {
    /// The group's name.
    public var group: String
    /// Jobs it holds claims on now (running, or being settled).
    public var busy: Int
    /// Its `concurrency` now (for an autoscaled group, the current number of slots).
    public var concurrency: Int

    /// Makes one.
    public init(group: String, busy: Int, concurrency: Int) {
        self.group = group
        self.busy = busy
        self.concurrency = concurrency
    }
}

/// A worker that cannot start.
public struct WorkerError: Error, CustomStringConvertible, Sendable {
    /// What is wrong.
    public var message: String
    public var description: String { message }
}
