import Dispatch
import FoundationEssentials
import Logging
import Metrics
import Synchronization

/// Runs one worker group in this process: claim loops (two, each on its own connection; one for a
/// rate-limited group) claiming jobs in strict priority order whenever a slot is free, at most
/// `concurrency` jobs at once, and the group's part of shutdown.
///
/// Every job it claims ends in exactly one of: completed, scheduled for a retry, dead-lettered, or
/// put back at the head of its queue. If the process dies first, the claim's lease expires and
/// another worker process recovers the job.
///
/// A class, not a struct: every job's task refers to its runner, and copying a struct this large
/// (the configuration, the handlers, the driver…) per job showed in profiles as value-witness
/// copies and releases.
final class WorkerGroupRunner: Sendable {
    let group: WorkerGroupConfiguration
    let configuration: RouterConfiguration
    let handlers: [String: any JobHandler]
    /// Resources for handlers' contexts.
    let services: HandlerServices
    let unavailable: [String: String]
    let driver: any JobQueueDriver
    let workerID: String
    let shutdown: ShutdownController
    let health: ConnectionHealth
    let events: JobEventFanout
    let logger: Logger
    /// Shared rates each claim waits for a permit of (the group's `rate_limit`, `[smtp]` for mail groups).
    let gates: [RateGate]
    /// The group's starvation bounds (`max_wait`); `nil` when it has none (strict order, always).
    let aging: AgingSlots?
    /// Makes the attempt records settles carry when the ledger is on; `nil` when it is off.
    let attempts: AttemptRecorder?
    /// Told of every job this group puts on the schedule, so the scheduler moves it when due.
    let scheduled: ScheduleAlarm
    /// Claims this group holds now, for lease renewal.
    let claims = ClaimRegistry()
    /// Handlers abandoned after their timeout that still run.
    let stuck = StuckHandlers()
    /// The timeouts of the handlers running now.
    let deadlines = HandlerDeadlines()
    /// Queues of this group that cannot be read now, with why (for heartbeats and `status`).
    let brokenQueues = BrokenQueues()
    /// The group's job slots: how many jobs it may run at once now (autoscaled groups resize it).
    let slots: SlotPool
    /// Acks sent without a task waiting for them; shutdown waits for them.
    let settles = PendingSettles()
    /// The tasks running jobs; shutdown waits for them.
    let jobTasks = JobTasks()
    /// Numbers the jobs claimed, so jobs stopped by shutdown go back in the order they came.
    private let sequence = Atomic<Int>(0)

    init(group: WorkerGroupConfiguration, configuration: RouterConfiguration, handlers: [String: any JobHandler], services: HandlerServices,
         unavailable: [String: String], driver: any JobQueueDriver, workerID: String, shutdown: ShutdownController,
         health: ConnectionHealth, events: JobEventFanout, logger: Logger, gates: [RateGate], aging: AgingSlots?,
         attempts: AttemptRecorder?, scheduled: ScheduleAlarm) {
        self.group = group
        self.configuration = configuration
        self.handlers = handlers
        self.services = services
        self.unavailable = unavailable
        self.driver = driver
        self.workerID = workerID
        self.shutdown = shutdown
        self.health = health
        self.events = events
        self.logger = logger
        self.gates = gates
        self.aging = aging
        self.attempts = attempts
        self.scheduled = scheduled
        self.slots = SlotPool(capacity: group.initialConcurrency)
    }
    /// `jobrouter_rate_limit_wait_seconds_total{group}`: time this group's claim loop waited for a permit.
    var rateLimitWait: FloatingPointCounter {
        FloatingPointCounter(label: "jobrouter_rate_limit_wait_seconds_total", dimensions: [("group", group.name)])
    }

    /// How many claims the group may hold (running, or waiting to be settled) before its claim
    /// loops wait: four times its concurrency now.
    private var heldClaimsCap: Int { 4 * max(slots.capacity, 1) }

    /// How long a cancelled handler gets to end before it is abandoned (see ``HandlerRun``): longer
    /// than an `exec` child's SIGTERM-to-SIGKILL grace, so only a handler that really ignores
    /// cancellation is ever abandoned.
    static let cancelGrace: Duration = .seconds(5)

    /// How long one fetch may wait on the server before looking again. Shutdown interrupts the wait;
    /// entries pushed by other Redis clients (which push no wake-up token) are noticed within this.
    static let fetchWait: Duration = .seconds(1)

    /// How a run ended.
    private enum Outcome {
        case completed
        case interrupted
        case failed(String, permanent: Bool)
    }

    func run() async {
        let terms = LeaseTerms(lease: group.lease, maxRecoveries: group.maxRecoveries,
                               maxPayload: configuration.maxPayload, maxDead: configuration.maxDead,
                               ledger: configuration.ledgerTerms)
        // Two claim loops, each on its own connection, so one claims while the other's claim is
        // on the wire: a claim's round trip no longer bounds a small group's rate. A paced group
        // (rate limits) claims through one, a permit per claim.
        let loops = gates.isEmpty && (group.scaling?.max ?? group.concurrency) >= 2 ? 2 : 1
        let fetchers = (0..<loops).map { index in
            driver.makeFetcher(queues: group.queues, label: index == 0 ? group.name : "\(group.name)-\(index + 1)", worker: workerID, terms: terms)
        }
        let slots = self.slots
        let putBack = InterruptedJobs()
        let slotsText = group.scaling.map { "concurrency \($0.min)..\($0.max) (autoscaled, target_wait \(DurationParser.format($0.targetWait)))" }
            ?? "concurrency \(group.concurrency)"
        logger.info("group \(group.name) reading \(group.queues.joined(separator: " > ")) with \(slotsText)")

        await withDiscardingTaskGroup { tasks in
            tasks.addTask { [self] in
                // Stop fetching at once when shutdown starts: wake the fetch loops wherever they wait.
                await shutdown.wait(for: .draining)
                slots.close()
                for fetcher in fetchers { fetcher.interrupt() }
            }
            if let aging {
                tasks.addTask { [self] in
                    await aging.watch(driver: driver, while: { shutdown.phase == .running }, sleep: { [shutdown] in await shutdown.sleep(for: $0) }, logger: logger)
                }
            }
            if let scaling = group.scaling {
                tasks.addTask { [self] in
                    await ConcurrencyScaler(group: group.name, queues: group.queues, terms: scaling, slots: slots,
                                            claims: claims, driver: driver, logger: logger)
                        .run(while: { shutdown.phase == .running }, sleep: { await shutdown.sleep(for: $0) })
                }
            }
            for (index, fetcher) in fetchers.enumerated() {
                tasks.addTask(executorPreference: fetcher.taskExecutor) { [self] in
                    await claimLoop(fetcher, primary: index == 0, putBack: putBack)
                }
            }
            // The loops end when shutdown starts (or the worker must stop).
            await shutdown.wait(for: .draining)

            // Draining: running jobs get until shutdown_timeout (or a second signal) to finish.
            let finished = await withTaskGroup(of: Bool.self) { race in
                race.addTask {
                    await slots.waitUntilIdle()
                    return true
                }
                race.addTask { [self] in
                    await shutdown.sleep(for: group.shutdownTimeout, unless: .aborting)
                    return false
                }
                let first = await race.next() ?? false
                race.cancelAll()
                return first
            }
            if !finished {
                // Running jobs are the job tasks (a `noop` job ends where it was claimed): the
                // slots in use also count those a claim holds while it waits for work.
                let running = jobTasks.count
                if running > 0 { logger.notice("group \(group.name): stopping \(running) running job(s) and putting them back") }
                tasks.cancelAll()
            }
            // Jobs run in tasks of their own (``JobTasks``), which cancelling this group's tasks
            // does not reach: stopped here, also when the worker's task was cancelled (the wait
            // above then ends at once, as finished).
            if !finished || shutdown.phase == .aborting { jobTasks.cancelAll() }
        }
        // Every job's task has written its outcome (an abandoned handler's by the task that took
        // its place), or put it in `putBack`.
        await jobTasks.waitUntilNone()

        // Every finished job's outcome is written before the group says it stopped.
        await settles.waitUntilNone()
        let interrupted = putBack.inFetchOrder
        if !interrupted.isEmpty {
            let records = attempts.map { recorder in
                interrupted.map {
                    recorder.record($0.job, claim: $0.claim, group: group.name, outcome: .requeued,
                                    error: "stopped by shutdown; back at the head of its queue", startedAt: $0.startedAt)
                }
            } ?? []
            await requeue(interrupted.map(\.claim), as: interrupted.map { Data($0.job.jsonText.utf8) }, attempts: records)
            for item in interrupted { events.record(.requeued(item.job, group: group.name, reason: "shutdown")) }
        }
        for fetcher in fetchers { await fetcher.close() }
        logger.info("group \(group.name) stopped")
    }

    /// Claims and starts jobs (in ``jobTasks``) while slots are free, until shutdown starts.
    /// `primary`: the loop that also takes overdue jobs (starvation bounds) and reports
    /// unreadable queues.
    private func claimLoop(_ fetcher: any JobFetcher, primary: Bool, putBack: InterruptedJobs) async {
        // Whether any type this configuration declares has a rate limit (most have none: then no
        // job pays even the lookup).
        let rateLimited = configuration.types.values.contains { $0.rateLimit != nil }
        let aging = primary ? self.aging : nil
        let slots = self.slots
        var broken: [String: String] = [:]
        while shutdown.phase == .running, !Task.isCancelled {
            // Slots are free before their jobs' acks are written: while the server refuses
            // the acks (a failover), claims would pile up. Claim again only once the claims
            // held (running, or waiting to be settled) are under four times the concurrency
            // (in a steady drain the acks on the wire add at most about one concurrency, but
            // a connection thread kept off the cores for a few milliseconds adds more): woken
            // by the settle that brings them under, looking at shutdown every 20 ms.
            while claims.count >= heldClaimsCap, shutdown.phase == .running {
                await claims.waitUntilFewer(than: heldClaimsCap, atMost: .milliseconds(20))
            }
            var free = await slots.acquireAll()
            guard free > 0 else { break }
            if gates.isEmpty, free < (slots.capacity + 1) / 2 {
                // Slots come back one job at a time (each as its handler returns): let what
                // is queued where this loop runs go first (on the global executor, handlers'
                // tasks; on its connection's thread, little), so one claim call takes the
                // slots they free. Only while most slots are busy: an idle group claims at once.
                await Task.yield()
                free += slots.takeFree()
            }
            if !gates.isEmpty {
                // Paced: one permit of each rate, then one claim, so the job sent next is the
                // best one waiting now.
                slots.release(free - 1)
                free = 1
                // Waits sleep on the shutdown controller, so a signal ends them at once.
                var admitted = false
                do {
                    admitted = try await takePermits()
                } catch {
                    slots.release(1)
                    await shutdown.sleep(for: health.failed(error))
                    continue
                }
                guard admitted else {
                    slots.release(1)
                    break
                }
            }
            var entries: [ClaimedEntry]
            // Starvation bounds: an overdue job of a bounded queue goes first, on its own, in
            // at most `aging_slots` slots at once.
            var agedTokens: Set<String> = []
            do {
                if let aging, let queue = aging.takeOverdue() {
                    defer { aging.claimed() }
                    do {
                        entries = try await fetcher.claim(max: 1, from: [queue])
                    } catch {
                        aging.end()
                        throw error
                    }
                    if entries.isEmpty { aging.end() } else { agedTokens = Set(entries.map(\.token)) }
                } else {
                    entries = []
                }
                if entries.isEmpty { entries = try await fetcher.fetch(max: free, wait: Self.fetchWait) }
                health.succeeded()
            } catch let error where ConnectionHealth.isPermanent(error) {
                // Retrying cannot help (bad credentials, missing rights): stop the worker, saying why.
                slots.release(free)
                health.fatal(error, group: group.name)
                shutdown.advance(to: .draining)
                break
            } catch {
                slots.release(free)
                await refundPermits()
                await shutdown.sleep(for: health.failed(error))
                continue
            }
            if primary { reportBroken(fetcher.brokenQueues, known: &broken) }
            // Entries the claim kept aside itself (too big to fetch) are dead letters already.
            let keptAside = entries.filter { $0.keptAside != nil }
            if !keptAside.isEmpty {
                entries.removeAll { $0.keptAside != nil }
                for entry in keptAside {
                    if agedTokens.contains(entry.token) { aging?.end() }
                    events.record(.deadLettered(DeadLetter(id: entry.jobID, queue: entry.queue, type: nil, attempt: nil,
                                                           reason: entry.keptAside ?? "", raw: Data()), group: group.name))
                }
            }
            if entries.isEmpty { await refundPermits() }
            slots.release(free - entries.count)
            let claimedAt = Date()
            for entry in entries { claims.add(entry.token, at: claimedAt) }
            if shutdown.phase != .running {
                // Claimed after the signal: back to the head, untouched.
                await requeue(entries, as: entries.map(\.raw))
                slots.release(entries.count)
                break
            }
            for entry in entries {
                let jobSequence = sequence.add(1, ordering: .relaxed).newValue
                guard let (job, handler) = await admit(entry) else {
                    slots.release(1)
                    if agedTokens.contains(entry.token) { aging?.end() }
                    continue
                }
                let aged = !agedTokens.isEmpty && agedTokens.contains(entry.token)
                if finishesInline(job, handler: handler, rateLimited: rateLimited) {
                    events.record(.started(job, group: group.name))
                    if aged { aging?.end() }
                    slots.release(1)
                    // Started and finished microseconds after the claim: its time serves (a
                    // clock read costs ~0.1 µs here, a noticeable share of such a job).
                    let wait = Duration.saturating(seconds: max(0, claimedAt.timeIntervalSince(job.waitingSince)))
                    acknowledge(job, claim: entry, startedAt: claimedAt, wait: wait, run: .zero)
                    continue
                }
                let interrupted: @Sendable (Date) -> Void = { startedAt in
                    putBack.add(job, claim: entry, sequence: jobSequence, startedAt: startedAt)
                }
                jobTasks.start { [self] task in
                    // A job over its type's rate limit is deferred, holding no slot.
                    if rateLimited, await !admitUnderRateLimit(job, claim: entry) {
                        if aged { aging?.end() }
                        slots.release(1)
                        return
                    }
                    // The slot is free once the handler returned: the job's ack (or retry, or
                    // dead letter) is written behind it, and the claim is held (its lease kept
                    // alive) until that is done, so at-least-once is unchanged.
                    let handlerReturned: @Sendable () -> Void = { [aging] in
                        if aged { aging?.end() }
                        slots.release(1)
                    }
                    await execute(job, claim: entry, handler: handler, task: task, handlerReturned: handlerReturned,
                                  interrupted: interrupted)
                }
            }
        }
    }

    /// Takes a permit of every gate in turn, sleeping while one says wait; `false` once shutdown began.
    private func takePermits() async throws -> Bool {
        for gate in gates {
            while true {
                guard shutdown.phase == .running else { return false }
                let wait = try await gate.limiter.reserve(gate.key, rate: gate.rate, burst: gate.burst)
                if wait <= .zero { break }
                rateLimitWait.increment(by: wait.inSeconds)
                await shutdown.sleep(for: wait)
            }
        }
        return true
    }

    /// Gives back the permits of a claim that found nothing.
    private func refundPermits() async {
        for gate in gates { try? await gate.limiter.refund(gate.key, rate: gate.rate) }
    }

    /// Asks the job's limiter (its type's `rate_limit`) for a permit; `false` when the job was
    /// deferred (or its claim was lost, or the server stayed away: its lease then brings it back).
    private func admitUnderRateLimit(_ job: JobEnvelope, claim: ClaimedEntry) async -> Bool {
        guard !job.ratePermit, let limit = configuration.types[job.type]?.rateLimit,
              let limiter = LimiterChoice(type: job.type, payload: job.payload, limit: limit) else { return true }
        let admission = await persist("ask the rate limiter for job \(job.id)") { try await driver.admit(claim, job: job, limiter: limiter) }
        switch admission {
        case .run?:
            return true
        case .deferred(let delay)?:
            claims.remove(claim.token)
            scheduled.due(in: delay)
            events.record(.deferred(job, group: group.name, by: delay, limiter: limiter.name))
        case .lost?:
            claims.remove(claim.token)
            events.record(.leaseLost(job, group: group.name, run: .zero))
        case nil:
            claims.remove(claim.token)
        }
        return false
    }

    /// Logs queues the fetcher set aside as unreadable (and when they are readable again).
    private func reportBroken(_ now: [String: String], known: inout [String: String]) {
        guard now != known else { return }
        for queue in now.keys.sorted() where known[queue] == nil {
            logger.error("group \(group.name): queue \(LogEscaping.escape(queue)) \(now[queue] ?? "") (WRONGTYPE); skipping it, the group's other queues go on; it is looked at again every few seconds")
        }
        for queue in known.keys.sorted() where now[queue] == nil {
            logger.notice("group \(group.name): queue \(LogEscaping.escape(queue)) is readable again")
        }
        known = now
        brokenQueues.set(now)
    }

    /// Turns an entry into a runnable job, or keeps it aside with its reason.
    private func admit(_ entry: ClaimedEntry) async -> (JobEnvelope, any JobHandler)? {
        var job: JobEnvelope
        do {
            job = try JobEnvelope.decode(entry.raw, queue: entry.queue)
        } catch {
            let reason = "not a job: \(error)"
            await deadLetter(entry, id: entry.jobID, type: nil, attempt: nil, reason: reason,
                             ledger: attempts?.malformed(entry, group: group.name, reason: reason))
            return nil
        }
        // The id fixed by the claim (the entry's own, or the one it was given when first claimed).
        job.id = entry.jobID
        guard configuration.types[job.type] != nil else {
            let known = configuration.types.keys.sorted().joined(separator: ", ")
            let reason = "unknown job type '\(job.type)'; known types: \(known)"
            await deadLetter(entry, id: job.id, type: job.type, attempt: job.attempt, reason: reason,
                             ledger: attempts?.record(job, claim: entry, group: group.name, outcome: .dead, error: reason, startedAt: nil),
                             holding: job)
            return nil
        }
        guard let handler = handlers[job.type] else {
            let reason = unavailable[job.type] ?? "no handler for type '\(job.type)' in this worker"
            await deadLetter(entry, id: job.id, type: job.type, attempt: job.attempt, reason: reason,
                             ledger: attempts?.record(job, claim: entry, group: group.name, outcome: .dead, error: reason, startedAt: nil),
                             holding: job)
            return nil
        }
        return (job, handler)
    }

    /// Runs one job to its end and settles it, in its task `task` of ``jobTasks``. `handlerReturned`
    /// is called once the handler has returned (or was abandoned) and before the outcome is
    /// written; a run interrupted by shutdown goes to `interrupted` with its start time instead
    /// (the group puts it back), then gives its slot back too.
    private func execute(_ job: JobEnvelope, claim: ClaimedEntry, handler: any JobHandler, task: JobTasks.ID,
                         handlerReturned: @escaping @Sendable () -> Void, interrupted: @escaping @Sendable (Date) -> Void) async {
        events.record(.started(job, group: group.name))
        let startedAt = Date()
        if let unique = job.unique, unique.until != .done {
            // Not atomic with the claim: a crash in between leaves the lock to the job's next run
            // (or to its `for`), never locked for longer.
            do {
                try await driver.uniqueStarted(job)
            } catch {
                logger.warning("job \(job.id): could not release its unique lock at start (it expires after its 'for'): \(error)")
            }
        }
        let wait = Duration.saturating(seconds: max(0, Date().timeIntervalSince(job.waitingSince)))
        let timeout = configuration.types[job.type]?.timeout ?? .seconds(300)
        let start = ContinuousClock.now
        let conclude: @Sendable (Outcome) async -> Void = { [self] outcome in
            await settle(job, claim: claim, outcome: outcome, startedAt: startedAt, wait: wait, run: start.duration(to: .now),
                         handlerReturned: handlerReturned, interrupted: interrupted)
        }
        // Abandoned (its handler ignored cancellation past the grace): the outcome is written by
        // a task taking this one's place, while this one waits for the handler.
        let outcome = await run(job, handler: handler, timeout: timeout, task: task) { [self] outcome in
            jobTasks.replace(task) { await conclude(self.outcome(outcome, timeout: timeout)) }
        }
        if let outcome { await conclude(outcome) }
    }

    /// Writes how a run ended: acked, retried or dead-lettered (after `handlerReturned`), or, when
    /// interrupted by shutdown, handed to `interrupted` to be put back.
    private func settle(_ job: JobEnvelope, claim: ClaimedEntry, outcome: Outcome, startedAt: Date, wait: Duration, run: Duration,
                        handlerReturned: @Sendable () -> Void, interrupted: @Sendable (Date) -> Void) async {
        let type = configuration.types[job.type]
        switch outcome {
        case .interrupted:
            interrupted(startedAt)
            handlerReturned()
        case .completed:
            handlerReturned()
            if job.hasCompletionEffects {
                // More to do on success (a unique lock held until done, `then` jobs, a batch):
                // finished by its own script.
                let attempt = attempts?.record(job, claim: claim, group: group.name, outcome: .succeeded, error: nil, startedAt: startedAt)
                let result = await persist("complete job \(job.id)") { try await driver.complete(claim, attempt: attempt, finishing: job) }
                claims.remove(claim.token)
                settled(result, job: job, run: run) { events.record(.succeeded(job, group: group.name, wait: wait, run: run)) }
            } else {
                acknowledge(job, claim: claim, startedAt: startedAt, wait: wait, run: run)
            }
        case .failed(let message, let permanent):
            handlerReturned()
            let maxAttempts = type?.maxAttempts ?? 1
            if permanent || job.attempt >= maxAttempts {
                let reason = permanent ? message : "failed \(job.attempt) time(s), the last: \(message)"
                await deadLetter(claim, id: job.id, type: job.type, attempt: job.attempt, reason: reason,
                                 ledger: attempts?.record(job, claim: claim, group: group.name, outcome: .dead, error: message, startedAt: startedAt),
                                 raw: Data(job.jsonText.utf8), job: job, run: run)
            } else {
                var nextAttempt = job
                nextAttempt.attempt += 1
                nextAttempt.ratePermit = false
                nextAttempt.lastError = message
                let delay = (type?.backoff ?? RetryBackoff()).delay(afterFailures: job.attempt)
                nextAttempt.dueAt = Date().addingTimeInterval(delay.inSeconds)
                let next = nextAttempt
                let attempt = attempts?.record(job, claim: claim, group: group.name, outcome: .failed, error: message, startedAt: startedAt)
                let result = await persist("schedule a retry of job \(job.id)") {
                    try await driver.retry(claim, as: next, after: delay, attempt: attempt)
                }
                claims.remove(claim.token)
                if result == .applied || result == .alreadySettled { scheduled.due(in: delay) }
                settled(result, job: job, run: run) {
                    events.record(.failed(job, group: group.name, wait: wait, run: run, error: message, retryIn: delay))
                }
            }
        }
    }

    /// Acks a job that succeeded, without waiting: acks are written in batches, and the outcome is
    /// reported once its ack is written (a failed ack is tried again, in a task of its own). The
    /// claim is held (its lease renewed) until then, and shutdown waits for it (``settles``).
    private func acknowledge(_ job: JobEnvelope, claim: ClaimedEntry, startedAt: Date, wait: Duration, run: Duration) {
        let attempt = attempts?.record(job, claim: claim, group: group.name, outcome: .succeeded, error: nil, startedAt: startedAt)
        let succeeded: @Sendable (SettleResult?) -> Void = { [self] result in
            claims.remove(claim.token)
            settled(result, job: job, run: run) { events.record(.succeeded(job, group: group.name, wait: wait, run: run)) }
            settles.end()
        }
        settles.begin()
        driver.complete(claim, attempt: attempt) { [self] first in
            if case .success(let result) = first { return succeeded(result) }
            Task { succeeded(await persist("complete job \(job.id)") { try await driver.complete(claim, attempt: attempt) }) }
        }
    }

    /// Whether `job` can be finished where it was claimed, with no task of its own: the built-in
    /// `noop` handler runs nothing, so nothing can time out, fail or be interrupted; only jobs with
    /// no other step before or after the run (rate limit, unique lock, completion effects).
    private func finishesInline(_ job: JobEnvelope, handler: any JobHandler, rateLimited: Bool) -> Bool {
        handler is NoopJobHandler && !rateLimited && job.unique == nil && !job.hasCompletionEffects
    }

    /// Reports what settling a claim found: the outcome once it is durable, the lost lease when
    /// recovery took the job, and for a settle that was already applied (an earlier try of the same
    /// call whose reply was lost) the outcome too, since it is durable all the same.
    private func settled(_ result: SettleResult?, job: JobEnvelope, run: Duration, outcome: () -> Void) {
        switch result {
        case .applied?:
            outcome()
        case .alreadySettled?:
            logger.notice("job \(job.id): an earlier try of this update was applied although its reply was lost; the outcome stands")
            outcome()
        case .lost?:
            events.record(.leaseLost(job, group: group.name, run: run))
        case nil:
            break
        }
    }

    /// Runs the handler in this task (``HandlerRun``); `nil` when it was abandoned, its outcome
    /// handed to `abandoned` (which must only pass it on: it is called under the run's lock).
    private func run(_ job: JobEnvelope, handler: any JobHandler, timeout: Duration, task: JobTasks.ID,
                     abandoned: @escaping @Sendable (HandlerRun.Outcome) -> Void) async -> Outcome? {
        if handler is NoopJobHandler { return .completed }
        // Both keys in one assignment: a handler may redo work on each change (swift-log's
        // StreamLogHandler formats all its metadata again), and this runs for every job.
        var jobLogger = logger
        var metadata = jobLogger.handler.metadata
        metadata["job"] = .string(job.id.rawValue)
        metadata["type"] = .string(job.type)
        jobLogger.handler.metadata = metadata
        let context = JobContext(logger: jobLogger, group: group.name, timeout: timeout, services: services)
        let outcome = await HandlerRun.run(timeout: timeout, grace: Self.cancelGrace, stuck: stuck, deadlines: deadlines,
                                           cancelTask: { [jobTasks] in jobTasks.cancel(task) },
                                           onAbandon: abandoned) {
            try await handler.handle(job, context: context)
        }
        return outcome.map { self.outcome($0, timeout: timeout) }
    }

    /// A handler run's end, as the group settles it.
    private func outcome(_ outcome: HandlerRun.Outcome, timeout: Duration) -> Outcome {
        switch outcome {
        case .completed:
            return .completed
        case .interrupted:
            return .interrupted
        case .failed(let error as JobFailure):
            return .failed(error.message, permanent: error.permanent)
        case .failed(let error):
            return .failed(String(describing: error), permanent: false)
        case .timedOut:
            let abandoned = stuck.current
            if abandoned > 0 {
                logger.warning("group \(group.name): \(abandoned) handler(s) ignored cancellation after their timeout and still run detached; their slots were given back")
            }
            return .failed("timed out after \(DurationParser.format(timeout))", permanent: false)
        }
    }

    /// `job` (when decoded) is the job settled, whose events are reported; `holding` one whose unique
    /// lock and batch the dead letter must release and count.
    private func deadLetter(_ claim: ClaimedEntry, id: JobID, type: String?, attempt: Int?, reason: String,
                            ledger record: AttemptRecord?, raw: Data? = nil, job: JobEnvelope? = nil, run: Duration = .zero,
                            holding: JobEnvelope? = nil) async {
        let job = job
        let holding = holding ?? job
        let dead = DeadLetter(id: id, queue: claim.queue, type: type, attempt: attempt, reason: reason, raw: raw ?? claim.raw)
        let result = await persist("dead-letter job \(id)") {
            try await driver.deadLetter(dead, claim: claim, maxDead: configuration.maxDead, attempt: record, holding: holding)
        }
        claims.remove(claim.token)
        if let job {
            settled(result, job: job, run: run) { events.record(.deadLettered(dead, group: group.name)) }
        } else if result == .applied || result == .alreadySettled {
            events.record(.deadLettered(dead, group: group.name))
        } else if result == .lost {
            logger.warning("entry \(id): its lease expired and another worker owns it now; not dead-lettered here")
        }
    }

    private func requeue(_ claimed: [ClaimedEntry], as entries: [Data], attempts: [AttemptRecord] = []) async {
        guard !claimed.isEmpty else { return }
        let done = await persist("put back \(claimed.count) job(s)") {
            try await driver.requeueAtHead(claimed, as: entries, attempts: attempts)
        }
        for claim in claimed { claims.remove(claim.token) }
        if done == nil {
            // The server stayed away: the claims' leases will expire and another worker recovers them.
            logger.error("could not put back \(claimed.count) job(s); they return to their queues when their lease expires")
        }
    }

    /// Runs `operation` until it succeeds, backing off while the server is away; gives up (returning
    /// `nil`) after many tries, or a few once shutdown is aborting. A claim that cannot be settled is
    /// not lost: its lease expires and another worker recovers the job.
    private func persist<Result: Sendable>(_ what: String, _ operation: @Sendable () async throws -> Result) async -> Result? {
        var attempts = 0
        while true {
            do {
                let result = try await operation()
                health.succeeded()
                return result
            } catch {
                attempts += 1
                if shutdown.phase == .aborting && attempts >= 5 || attempts >= 50 {
                    logger.error("could not \(what): \(error)")
                    return nil
                }
                // Not cancellable: a task cancelled by shutdown must still back off, not spin.
                await Self.sleepIgnoringCancellation(health.failed(error))
            }
        }
    }
}

extension WorkerGroupRunner {
    /// Sleeps for `duration` even in a cancelled task (`Task.sleep` would return at once).
    static func sleepIgnoringCancellation(_ duration: Duration) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().asyncAfter(deadline: .now() + duration.inSeconds) { continuation.resume() }
        }
    }
}

/// Queues a group cannot read now, with why.
final class BrokenQueues: Sendable {
    private let queues = Mutex<[String: String]>([:])

    var current: [String: String] { queues.withLock { $0 } }
    func set(_ value: [String: String]) { queues.withLock { $0 = value } }
}

/// Jobs stopped by shutdown, to be put back in the order they were fetched.
private final class InterruptedJobs: Sendable {
    private let jobs = Mutex<[(sequence: Int, job: JobEnvelope, claim: ClaimedEntry, startedAt: Date)]>([])

    func add(_ job: JobEnvelope, claim: ClaimedEntry, sequence: Int, startedAt: Date) {
        jobs.withLock { $0.append((sequence, job, claim, startedAt)) }
    }

    /// In the server's claim order (``ClaimedEntry/order``: the group's claim loops may see their
    /// claims' answers in another order), then in the order this process took them.
    var inFetchOrder: [(job: JobEnvelope, claim: ClaimedEntry, startedAt: Date)] {
        jobs.withLock { $0 }.sorted { ($0.claim.order, $0.sequence) < ($1.claim.order, $1.sequence) }
            .map { ($0.job, $0.claim, $0.startedAt) }
    }
}

/// Sends each event to every recorder.
struct JobEventFanout: Sendable {
    let recorders: [any JobEventRecorder]

    func record(_ event: JobEvent) {
        for recorder in recorders { recorder.record(event) }
    }
}
