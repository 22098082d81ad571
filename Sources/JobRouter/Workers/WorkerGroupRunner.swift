import Foundation
import Logging
import Synchronization

/// Runs one worker group in this process: one fetch loop taking jobs in strict priority order
/// whenever a slot is free, at most `concurrency` jobs at once, and the group's part of shutdown.
struct WorkerGroupRunner: Sendable {
    let group: WorkerGroupConfiguration
    let configuration: RouterConfiguration
    let handlers: [String: any JobHandler]
    let unavailable: [String: String]
    let driver: any JobQueueDriver
    let shutdown: ShutdownController
    let health: ConnectionHealth
    let events: JobEventFanout
    let logger: Logger

    /// How long one fetch may wait on the server before looking at shutdown again. Shutdown also
    /// interrupts the wait, so this is only a backstop.
    static let fetchWait: Duration = .seconds(2)

    private struct TimedOut: Error {}

    func run() async {
        let fetcher = driver.makeFetcher(queues: group.queues, label: group.name)
        let slots = SlotPool(capacity: group.concurrency)
        let putBack = InterruptedJobs()
        logger.info("group \(group.name) reading \(group.queues.joined(separator: " > ")) with concurrency \(group.concurrency)")

        await withDiscardingTaskGroup { tasks in
            tasks.addTask {
                // Stop fetching at once when shutdown starts: wake the fetch loop wherever it waits.
                await shutdown.wait(for: .draining)
                slots.close()
                fetcher.interrupt()
            }
            var sequence = 0
            while shutdown.phase == .running, !Task.isCancelled {
                let free = await slots.acquireAll()
                guard free > 0 else { break }
                let entries: [FetchedEntry]
                do {
                    entries = try await fetcher.fetch(max: free, wait: Self.fetchWait)
                    health.succeeded()
                } catch {
                    slots.release(free)
                    await shutdown.sleep(for: health.failed(error))
                    continue
                }
                slots.release(free - entries.count)
                if shutdown.phase != .running {
                    // Taken after the signal: back to the head, untouched.
                    if await !persist("put back \(entries.count) entries taken during shutdown", {
                        try await driver.requeueAtHead(entries)
                    }) {
                        logLastResort(entries)
                    }
                    slots.release(entries.count)
                    break
                }
                for entry in entries {
                    sequence += 1
                    guard let (job, handler) = await admit(entry) else {
                        slots.release(1)
                        continue
                    }
                    let jobSequence = sequence
                    tasks.addTask {
                        if await execute(job, handler: handler) {
                            putBack.add(job, sequence: jobSequence)
                        }
                        slots.release(1)
                    }
                }
            }

            // Draining: running jobs get until shutdown_timeout (or a second signal) to finish.
            let finished = await withTaskGroup(of: Bool.self) { race in
                race.addTask {
                    await slots.waitUntilIdle()
                    return true
                }
                race.addTask {
                    await shutdown.sleep(for: group.shutdownTimeout, unless: .aborting)
                    return false
                }
                let first = await race.next() ?? false
                race.cancelAll()
                return first
            }
            if !finished {
                logger.notice("group \(group.name): stopping \(slots.inUse) running job(s) and putting them back")
                tasks.cancelAll()
            }
        }

        let jobs = putBack.inFetchOrder
        if !jobs.isEmpty {
            let entries = jobs.map { FetchedEntry(queue: $0.queue, raw: Data($0.jsonText.utf8)) }
            if await !persist("put back \(jobs.count) interrupted job(s)", { try await driver.requeueAtHead(entries) }) {
                logLastResort(entries)
            }
            for job in jobs { events.record(.requeued(job, group: group.name, reason: "shutdown")) }
        }
        await fetcher.close()
        logger.info("group \(group.name) stopped")
    }

    /// Turns an entry into a runnable job, or keeps it aside with its reason.
    private func admit(_ entry: FetchedEntry) async -> (JobEnvelope, any JobHandler)? {
        let job: JobEnvelope
        do {
            job = try JobEnvelope.decode(entry.raw, queue: entry.queue)
        } catch {
            await deadLetter(entry, id: .make(), type: nil, attempt: nil, reason: "not a job: \(error)")
            return nil
        }
        guard configuration.types[job.type] != nil else {
            let known = configuration.types.keys.sorted().joined(separator: ", ")
            await deadLetter(entry, id: job.id, type: job.type, attempt: job.attempt,
                             reason: "unknown job type '\(job.type)'; known types: \(known)")
            return nil
        }
        guard let handler = handlers[job.type] else {
            await deadLetter(entry, id: job.id, type: job.type, attempt: job.attempt,
                             reason: unavailable[job.type] ?? "no handler for type '\(job.type)' in this worker")
            return nil
        }
        return (job, handler)
    }

    /// Runs one job to its end. Returns `true` when it was interrupted by shutdown and must be put back.
    private func execute(_ job: JobEnvelope, handler: any JobHandler) async -> Bool {
        events.record(.started(job, group: group.name))
        let wait = Duration.milliseconds(Int64(Date().timeIntervalSince(job.enqueuedAt) * 1000))
        let timeout = configuration.types[job.type]?.timeout ?? .seconds(300)
        let clock = ContinuousClock()
        let start = clock.now
        let result: Result<Void, Error>
        if handler is NoopJobHandler {
            result = .success(())
        } else {
            var jobLogger = logger
            jobLogger[metadataKey: "job"] = "\(job.id)"
            jobLogger[metadataKey: "type"] = "\(job.type)"
            let context = JobContext(logger: jobLogger, group: group.name, timeout: timeout)
            result = await withTaskGroup(of: Result<Void, Error>?.self) { race in
                race.addTask {
                    do {
                        try await handler.handle(job, context: context)
                        return .success(())
                    } catch {
                        return .failure(error)
                    }
                }
                race.addTask {
                    do {
                        try await Task.sleep(for: timeout)
                        return .failure(TimedOut())
                    } catch {
                        return nil
                    }
                }
                for await outcome in race {
                    if let outcome {
                        race.cancelAll()
                        return outcome
                    }
                }
                return .failure(CancellationError())
            }
        }
        let run = start.duration(to: clock.now)
        switch result {
        case .success:
            events.record(.succeeded(job, group: group.name, wait: wait, run: run))
            return false
        case .failure where Task.isCancelled:
            return true
        case .failure(let error):
            let message: String
            switch error {
            case is TimedOut: message = "timed out after \(DurationParser.format(timeout))"
            case let failure as JobFailure: message = failure.message
            default: message = String(describing: error)
            }
            events.record(.failed(job, group: group.name, wait: wait, run: run, error: message))
            // Retries with backoff come with the at-least-once work; until then a failed job is kept
            // in the dead-letter store with its reason, never dropped.
            let entry = FetchedEntry(queue: job.queue, raw: Data(job.jsonText.utf8))
            await deadLetter(entry, id: job.id, type: job.type, attempt: job.attempt, reason: message)
            return false
        }
    }

    private func deadLetter(_ entry: FetchedEntry, id: JobID, type: String?, attempt: Int?, reason: String) async {
        let record = DeadLetter(id: id, queue: entry.queue, type: type, attempt: attempt, reason: reason,
                                raw: String(decoding: entry.raw, as: UTF8.self))
        let kept = await persist("dead-letter job \(id)") { try await driver.deadLetter(record) }
        if kept {
            events.record(.deadLettered(record, group: group.name))
        } else {
            logLastResort([entry])
        }
    }

    /// The server stayed away through shutdown: the log is the last place these entries can be kept.
    private func logLastResort(_ entries: [FetchedEntry]) {
        for entry in entries {
            logger.critical("unsaved entry for queue \(entry.queue), push it back by hand: \(String(decoding: entry.raw, as: UTF8.self))")
        }
    }

    /// Runs `operation` until it succeeds, backing off while the server is away. Gives up only when
    /// shutdown is aborting and the server is still away; then the entry is written to the log in full,
    /// the last place it can be kept.
    @discardableResult
    private func persist(_ what: String, _ operation: @Sendable () async throws -> Void) async -> Bool {
        var attempts = 0
        while true {
            do {
                try await operation()
                health.succeeded()
                return true
            } catch {
                attempts += 1
                if shutdown.phase == .aborting && attempts >= 5 || attempts >= 50 {
                    logger.critical("could not \(what): \(error)")
                    return false
                }
                let delay = health.failed(error)
                try? await Task.sleep(for: delay)
            }
        }
    }
}

/// Sends each event to every recorder.
struct JobEventFanout: Sendable {
    let recorders: [any JobEventRecorder]

    func record(_ event: JobEvent) {
        for recorder in recorders { recorder.record(event) }
    }
}

/// Jobs stopped by shutdown, to be put back in the order they were fetched.
private final class InterruptedJobs: Sendable {
    private let jobs = Mutex<[(sequence: Int, job: JobEnvelope)]>([])

    func add(_ job: JobEnvelope, sequence: Int) {
        jobs.withLock { $0.append((sequence, job)) }
    }

    var inFetchOrder: [JobEnvelope] {
        jobs.withLock { $0 }.sorted { $0.sequence < $1.sequence }.map(\.job)
    }
}
