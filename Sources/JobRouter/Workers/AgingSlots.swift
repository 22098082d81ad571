import FoundationEssentials
import Logging
import Synchronization

/// A group's starvation bounds (`max_wait = { "emails:low" = "5m" }`, `aging_slots = 1`).
///
/// Strict priority leaves a later queue's jobs waiting as long as earlier queues have work. With a
/// bound, a watcher looks at the heads of the bounded queues (one `LINDEX` each) every
/// ``lookInterval``: a queue whose oldest job is about to wait past its bound is *overdue*, and the
/// group's next claim takes one job from it first, in at most `aging_slots` slots at a time (the
/// rest keep strict order). A group without bounds has no watcher and no extra step per claim.
final class AgingSlots: Sendable {
    /// Bounded queues in the group's order, with their bounds.
    let bounds: [(queue: String, bound: Duration)]
    let slots: Int
    /// How often the heads are looked at: a tenth of the shortest bound, at most every second.
    let lookInterval: Duration
    private let state = Mutex<(overdue: [String], busy: Int, jumped: Int)>(([], 0, 0))

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
            return state.overdue.removeFirst()
        }
    }

    /// An aging slot is free again (its job's handler returned, or the claim found nothing).
    func end() {
        state.withLock { $0.busy = max(0, $0.busy - 1) }
    }

    /// Jobs taken ahead of strict order so far.
    var jumped: Int { state.withLock { $0.jumped } }

    /// Looks at the bounded queues' heads until `running` turns false.
    func watch(driver: any JobQueueDriver, while running: @Sendable () -> Bool, sleep: @Sendable (Duration) async -> Void,
               logger: Logger) async {
        // A job is taken once it is within two looks of its bound, so it starts before the bound
        // unless every aging slot is busy (then within one run of that slot's job).
        let margin = (lookInterval * 2).inSeconds
        var reported: Set<String> = []
        while running() {
            if let heads = try? await driver.headWaits(of: bounds.map(\.queue)) {
                let now = Date()
                let overdue = bounds.filter { queue, bound in
                    guard let since = heads[queue] else { return false }
                    return now.timeIntervalSince(since) >= bound.inSeconds - margin
                }.map(\.queue)
                state.withLock { $0.overdue = overdue }
                for queue in overdue where !reported.contains(queue) {
                    logger.notice("queue \(LogEscaping.escape(queue)): its oldest job is near its max_wait; taking its jobs ahead of strict priority in at most \(slots) slot(s)")
                }
                reported = Set(overdue)
            }
            await sleep(lookInterval)
        }
    }
}
