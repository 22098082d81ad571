import FoundationEssentials
import Logging
import Synchronization

/// A group's starvation bounds (`max_wait = { "emails:low" = "5m" }`, `aging_slots = 1`).
///
/// Strict priority leaves a later queue's jobs waiting as long as earlier queues have work. With a
/// bound, a watcher looks at the heads of the bounded queues (one `LINDEX` each) every
/// ``lookInterval``: a queue whose oldest job is about to wait past its bound is *overdue*, and the
/// group's next claim takes one job from it first, in at most `aging_slots` slots at a time (the
/// rest keep strict order). Once that claim returned, the watcher looks again at once, so a queue
/// with many overdue jobs gives one per round trip (or per run of its aging slots), not one per
/// look. A group without bounds has no watcher and no extra step per claim.
final class AgingSlots: Sendable {
    /// Bounded queues in the group's order, with their bounds.
    let bounds: [(queue: String, bound: Duration)]
    let slots: Int
    /// How often the heads are looked at: a tenth of the shortest bound, at most every second.
    let lookInterval: Duration
    private struct State {
        var overdue: [String] = []
        var busy = 0
        var jumped = 0
        /// Moves on at every overdue claim's start and end: a look begun before either may have
        /// seen a head that is claimed now, so what it found is not kept.
        var generation = 0
        /// An overdue claim returned: the watcher looks again without waiting for its interval.
        var lookNow = false
        var watcher: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    init(group: WorkerGroupConfiguration) {
        bounds = group.queues.compactMap { queue in group.maxWait[queue].map { (queue, $0) } }
        slots = max(1, min(group.agingSlots, group.concurrency))
        let shortest = bounds.map(\.bound).min() ?? .seconds(10)
        lookInterval = min(.seconds(1), shortest / 10)
    }

    /// The first overdue queue, taking an aging slot for its job; `nil` when none is overdue or
    /// every aging slot is busy. The queue stays overdue only if the next look finds it so again.
    func takeOverdue() -> String? {
        state.withLock { state in
            guard state.busy < slots, !state.overdue.isEmpty else { return nil }
            state.busy += 1
            state.jumped += 1
            state.generation += 1
            return state.overdue.removeFirst()
        }
    }

    /// The claim of an overdue queue's job returned (with the job or without): its head has
    /// changed, so the watcher looks again now.
    func claimed() {
        let watcher = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.generation += 1
            state.lookNow = true
            defer { state.watcher = nil }
            return state.watcher
        }
        watcher?.resume()
    }

    /// An aging slot is free again (its job's handler returned, or the claim found nothing).
    func end() {
        state.withLock { $0.busy = max(0, $0.busy - 1) }
    }

    /// Jobs taken ahead of strict order so far.
    var jumped: Int { state.withLock { $0.jumped } }

    /// Looks at the bounded queues' heads until `running` turns false.
    func watch(driver: any JobQueueDriver, while running: @Sendable () -> Bool, sleep: @escaping @Sendable (Duration) async -> Void,
               logger: Logger) async {
        // A job is taken once it is within two looks of its bound, so it starts before the bound
        // unless every aging slot is busy (then within one run of that slot's job).
        let margin = (lookInterval * 2).inSeconds
        var reported: Set<String> = []
        while running() {
            let generation = state.withLock { state in
                state.lookNow = false
                return state.generation
            }
            if let heads = try? await driver.headWaits(of: bounds.map(\.queue)) {
                let now = Date()
                let overdue = bounds.filter { queue, bound in
                    guard let since = heads[queue] else { return false }
                    return now.timeIntervalSince(since) >= bound.inSeconds - margin
                }.map(\.queue)
                let current = state.withLock { state in
                    guard state.generation == generation else { return false }
                    state.overdue = overdue
                    return true
                }
                if current {
                    for queue in overdue where !reported.contains(queue) {
                        logger.notice("queue \(LogEscaping.escape(queue)): its oldest job is near its max_wait; taking its jobs ahead of strict priority in at most \(slots) slot(s)")
                    }
                    reported = Set(overdue)
                }
            }
            let interval = lookInterval
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await sleep(interval) }
                group.addTask { await self.untilClaimed() }
                await group.next()
                group.cancelAll()
            }
        }
    }

    /// Returns once an overdue claim returned since the last look began, or the task is cancelled.
    private func untilClaimed() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.lookNow || Task.isCancelled { return true }
                    state.watcher = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let watcher = state.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { state.watcher = nil }
                return state.watcher
            }
            watcher?.resume()
        }
    }
}
