import Synchronization

/// Tells this process's scheduler when a job the process just put on the schedule (a retry, a
/// job deferred by its rate limit) falls due, so the scheduler moves it to its queue at that time
/// rather than at its next look (up to its poll interval later). Jobs scheduled by other
/// processes are still found at the next look.
final class ScheduleAlarm: Sendable {
    private struct State {
        /// The earliest due time said since the scheduler last began a wait.
        var announced: ContinuousClock.Instant?
        /// The waiting scheduler: until when, and how to wake it early.
        var sleeper: (until: ContinuousClock.Instant, continuation: CheckedContinuation<Void, Never>)?
    }

    private let state = Mutex(State())

    /// Says a job falls due `delay` from now.
    func due(in delay: Duration) {
        let at = ContinuousClock.now + max(delay, .zero)
        let woken = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.announced = min(state.announced ?? at, at)
            guard let sleeper = state.sleeper, at < sleeper.until else { return nil }
            state.sleeper = nil
            return sleeper.continuation
        }
        woken?.resume()
    }

    /// Waits until `deadline`, or until the earliest due time said before then (by ``due(in:)``,
    /// also while this was not waiting) but not before `notBefore`, or until `done` reaches
    /// `phase`, whichever is first. `notBefore` spaces the scheduler's looks: retries falling due
    /// one after another in a burst of failures are moved a few at a time, not one call each.
    func wait(until deadline: ContinuousClock.Instant, notBefore: ContinuousClock.Instant,
              unless done: ShutdownController, reaches phase: ShutdownController.Phase) async {
        var deadline = deadline
        while done.phase < phase {
            let announced = state.withLock { state -> ContinuousClock.Instant? in
                defer { state.announced = nil }
                return state.announced
            }
            if let announced, announced < deadline { deadline = max(announced, notBefore) }
            guard deadline > .now else { return }
            // The time coming, or shutdown, ends the wait (the shutdown controller's own sleep);
            // so does an earlier due time, which wakes the waiter to wait for it (said through
            // `announced`). A wait already at `notBefore` cannot end sooner: nothing wakes it.
            let time = ContinuousClock.now.duration(to: deadline)
            guard deadline > notBefore else {
                await done.sleep(for: time, unless: phase)
                return
            }
            let alarmed = await withTaskGroup(of: Bool.self) { group in
                group.addTask {
                    await done.sleep(for: time, unless: phase)
                    return false
                }
                group.addTask { [deadline] in
                    await self.alarm(before: deadline)
                    return !Task.isCancelled
                }
                let first = await group.next() ?? false
                group.cancelAll()
                return first
            }
            if !alarmed { return }
        }
    }

    /// Returns once ``due(in:)`` says a time before `deadline` (which it keeps in `announced` for
    /// the next wait), or when cancelled.
    private func alarm(before deadline: ContinuousClock.Instant) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    // Cancelled before this ran (the handler then found no sleeper to wake), or
                    // told of an earlier time since the wait began: no sleep.
                    if Task.isCancelled { return true }
                    if let announced = state.announced, announced < deadline { return true }
                    state.sleeper = (deadline, continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { state.sleeper = nil }
                return state.sleeper?.continuation
            }
            continuation?.resume()
        }
    }
}
