import Synchronization

/// The timeouts of a group's running handlers, watched by one task for all of them (instead of a
/// timer task per job): it wakes at the earliest deadline, at least every ``tick``, and stops the
/// runs past theirs. A timeout is therefore enforced up to one tick late. The task runs only
/// while some handler runs.
final class HandlerDeadlines: Sendable {
    private struct State {
        var runs: [ObjectIdentifier: (deadline: ContinuousClock.Instant, run: HandlerRun)] = [:]
        var watching = false
    }

    /// The longest the watcher sleeps before it looks again.
    static let tick: Duration = .milliseconds(50)

    private let state = Mutex(State())

    /// Watches `run` until ``remove(_:)``; past `deadline` it is stopped as timed out.
    func add(_ run: HandlerRun, deadline: ContinuousClock.Instant) {
        let start = state.withLock { state -> Bool in
            state.runs[ObjectIdentifier(run)] = (deadline, run)
            if state.watching { return false }
            state.watching = true
            return true
        }
        if start { Task { await watch() } }
    }

    /// How many runs are watched now.
    var watched: Int { state.withLock { $0.runs.count } }

    /// Stops watching `run` (it ended).
    func remove(_ run: HandlerRun) {
        _ = state.withLock { $0.runs.removeValue(forKey: ObjectIdentifier(run)) }
    }

    private func watch() async {
        let clock = ContinuousClock()
        while true {
            let now = clock.now
            let (expired, next) = state.withLock { state -> ([HandlerRun], ContinuousClock.Instant?) in
                var expired: [HandlerRun] = []
                var next: ContinuousClock.Instant?
                for (key, entry) in state.runs {
                    if entry.deadline <= now {
                        expired.append(entry.run)
                        state.runs[key] = nil
                    } else {
                        next = min(next ?? entry.deadline, entry.deadline)
                    }
                }
                if next == nil { state.watching = false }
                return (expired, next)
            }
            for run in expired { run.timedOut() }
            guard let next else { return }
            try? await Task.sleep(until: min(next, now + Self.tick), clock: clock)
        }
    }
}
