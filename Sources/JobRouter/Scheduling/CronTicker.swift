import FoundationEssentials
import Logging

/// Fires the cron schedules of `queues.toml` from a worker process.
///
/// About once a second (sooner when a tick is due) it finds, per schedule, the latest tick since it
/// last looked and asks the queue server to make that tick's job; the server makes it only if no
/// process did (``JobQueueDriver/fireCronTick(_:tick:job:)``). A tick is looked for only from when
/// this process started (or `catch_up` before now, when set), so a process that starts after a
/// missed tick does not fire it unless asked to; a tick missed while Redis was away is fired when
/// it is back (the latest one, once).
struct CronTicker: Sendable {
    let schedules: [CronSchedule]
    let client: JobRouterClient
    let driver: any JobQueueDriver
    let logger: Logger

    /// The longest sleep between looks.
    static let interval: Duration = .seconds(1)

    func run(while running: @Sendable () -> Bool, sleep: @Sendable (Duration) async -> Void) async {
        guard !schedules.isEmpty else { return }
        let started = Date()
        // Per schedule: ticks after this instant are still to be fired by this process.
        var from: [String: Date] = [:]
        for schedule in schedules {
            var start = started.addingTimeInterval(-0.001)
            if let catchUp = schedule.catchUp { start = min(start, started.addingTimeInterval(-catchUp.inSeconds)) }
            from[schedule.name] = start
        }
        let names = schedules.map { $0.name + ($0.catchUp.map { " (catch_up \(DurationParser.format($0)))" } ?? "") }
        logger.info("cron: firing the ticks of \(names.joined(separator: ", ")) from \(Timestamp.format(started)) on")
        // Schedules whose last try failed: said once per outage, not every second.
        var failing: Set<String> = []
        while running() {
            let now = Date()
            for schedule in schedules {
                guard let after = from[schedule.name],
                      let tick = schedule.cron.latestFire(after: after, through: now, in: schedule.timeZone) else { continue }
                do {
                    try await fire(schedule, tick: tick)
                    from[schedule.name] = tick
                    if failing.remove(schedule.name) != nil { logger.notice("schedule \(schedule.name): firing again") }
                } catch {
                    if failing.insert(schedule.name).inserted {
                        logger.warning("schedule \(schedule.name): could not fire the tick of \(Timestamp.format(tick)); trying every second, and the latest tick missed meanwhile fires once it works: \(error)")
                    }
                }
            }
            // Sleep until the next tick of any schedule, at most `interval`.
            let next = schedules.compactMap { $0.cron.nextFire(after: now, in: $0.timeZone) }.min()
            let wait = next.map { Duration.saturating(seconds: max(0.005, $0.timeIntervalSince(Date()) + 0.002)) } ?? Self.interval
            await sleep(min(wait, Self.interval))
        }
    }

    private func fire(_ schedule: CronSchedule, tick: Date) async throws {
        var job: JobEnvelope
        do {
            job = try client.makeJob(JobRequest(type: schedule.type, priority: schedule.priority, payload: schedule.payload))
            // Due at its tick: its wait is measured from there, and the entry says which tick made it.
            job.dueAt = tick
        } catch {
            // Checked at load; only a configuration changed under a running process gets here.
            logger.error("schedule \(schedule.name): cannot make its job: \(error); tick of \(Timestamp.format(tick)) skipped")
            return
        }
        switch try await driver.fireCronTick(schedule.name, tick: tick, job: job) {
        case .fired(let id):
            logger.info("schedule \(schedule.name): tick \(Timestamp.format(tick)) enqueued job \(id) to \(job.queue)")
        case .duplicate(let id):
            logger.notice("schedule \(schedule.name): tick \(Timestamp.format(tick)) skipped: unique job \(id) still holds the lock")
        case .taken:
            break
        }
    }
}
