import FoundationEssentials
import Logging

/// The per-process loops that keep claims safe and schedules moving, started by every worker
/// process (whichever runs first does the work; each step is one atomic script, so running it in
/// many processes at once is harmless):
/// - heartbeat: says the process is alive and extends the leases of the jobs it runs;
/// - recovery: puts back the jobs of processes that stopped heartbeating;
/// - scheduler: moves due retries and delayed jobs to their queues;
/// - cron: fires the tick of each `[schedules.NAME]` (``CronTicker``).
struct WorkerMaintenance: Sendable {
    let workerID: String
    let runners: [WorkerGroupRunner]
    let configuration: RouterConfiguration
    let driver: any JobQueueDriver
    let shutdown: ShutdownController
    let events: JobEventFanout
    let throughput: ThroughputRecorder
    let logger: Logger
    /// Wakes the scheduler for jobs this process put on the schedule (see ``ScheduleAlarm``).
    let scheduled: ScheduleAlarm
    let startedAt = Date()

    /// How often this process adds its throughput counts to the cluster's.
    static let throughputFlush: Duration = .seconds(2)

    /// Beats a third of the shortest lease (at most every 5 s), so two beats can be missed.
    var heartbeatInterval: Duration {
        let shortest = runners.map(\.group.lease).min() ?? .seconds(30)
        return min(max(shortest / 3, .milliseconds(200)), .seconds(5))
    }

    /// Runs until `done` reaches `.aborting` (every group has stopped).
    func run(until done: ShutdownController) async {
        await withDiscardingTaskGroup { tasks in
            for runner in runners {
                tasks.addTask { await loop(every: heartbeatInterval, until: done) { try await beat(runner) } }
            }
            tasks.addTask { await loop(every: .milliseconds(500), until: done) { try await recover() } }
            tasks.addTask { await scheduler(until: done) }
            tasks.addTask {
                let ticker = CronTicker(schedules: configuration.schedules.keys.sorted().compactMap { configuration.schedules[$0] },
                                        client: JobRouterClient(configuration: configuration, driver: driver), driver: driver, logger: logger)
                await ticker.run(while: { shutdown.phase == .running && done.phase < .aborting }) { wait in
                    await shutdown.sleep(for: wait)
                }
            }
            tasks.addTask { await loop(every: Self.throughputFlush, until: done) { try await throughput.flush(to: driver) } }
        }
        // The last counts (jobs settled while the groups stopped).
        try? await throughput.flush(to: driver)
        // Gone, holding nothing: it is no longer a live worker.
        try? await driver.workerStopped(workerID)
    }

    private func description(inFlight: Int) -> WorkerDescription {
        var description = WorkerDescription(id: workerID, groups: runners.map(\.group.name), inFlight: inFlight, startedAt: startedAt)
        description.stuckHandlers = runners.map(\.stuck.current).reduce(0, +)
        var broken: [String: String] = [:]
        for runner in runners { broken.merge(runner.brokenQueues.current) { first, _ in first } }
        description.brokenQueues = broken
        description.busy = Dictionary(runners.map { ($0.group.name, $0.claims.count) }) { first, _ in first }
        description.concurrency = Dictionary(runners.map { ($0.group.name, $0.slots.capacity) }) { first, _ in first }
        for runner in runners { description.claimedAt.merge(runner.claims.claimedAt) { first, _ in first } }
        return description
    }

    /// Says the process is alive and renews `runner`'s leases, through the group's own driver.
    /// Each group beats in a loop of its own: in a Redis Cluster a shard that is failing over
    /// must not hold back the other groups' leases.
    private func beat(_ runner: WorkerGroupRunner) async throws {
        let total = runners.map(\.claims.count).reduce(0, +)
        try await runner.driver.heartbeat(description(inFlight: total), renewing: runner.claims.all, lease: runner.group.lease)
    }

    private func recover() async throws {
        // Stop taking over other workers' jobs once this process is shutting down.
        guard shutdown.phase == .running else { return }
        let report = try await driver.recoverExpiredLeases(limit: 200, maxDead: configuration.maxDead, ledger: configuration.ledgerTerms)
        if report.recovered + report.poisoned > 0 { events.record(.recovered(report)) }
    }

    /// The least time from one look at the schedule to the next (unless a look found more due
    /// jobs than it moves at once): jobs falling due one after another are moved a few at a time.
    static let scheduleLookGap: Duration = .milliseconds(10)

    private func scheduler(until done: ShutdownController) async {
        while done.phase < .aborting, shutdown.phase == .running {
            let looked = ContinuousClock.now
            var wait = configuration.schedulePoll
            var gap = Self.scheduleLookGap
            do {
                let (moved, nextDue) = try await driver.moveDueJobs(limit: 1000)
                if moved >= 1000 { wait = .zero } else if let nextDue { wait = min(max(nextDue, gap), wait) }
            } catch {
                // Redis away: look again in a second, whatever falls due meanwhile.
                wait = .seconds(1)
                gap = wait
            }
            if wait > .zero {
                await scheduled.wait(until: .now + wait, notBefore: looked + gap, unless: done, reaches: .aborting)
            }
        }
    }

    private func loop(every interval: Duration, until done: ShutdownController, _ step: @Sendable () async throws -> Void) async {
        var failing = false
        while done.phase < .aborting {
            do {
                try await step()
                failing = false
            } catch {
                if !failing { logger.debug("maintenance step failed (retrying): \(error)") }
                failing = true
            }
            await done.sleep(for: interval, unless: .aborting)
        }
    }
}
