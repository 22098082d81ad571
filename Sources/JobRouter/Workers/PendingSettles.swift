import Synchronization

/// Counts the settles (acks) a group has sent without waiting for them, so its shutdown can wait
/// until every finished job's outcome is written (or given up on: its lease then brings it back).
final class PendingSettles: Sendable {
    private struct State {
        var count = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// How many are on their way.
    var count: Int { state.withLock { $0.count } }

    /// One more on its way.
    func begin() {
        state.withLock { $0.count += 1 }
    }

    /// One arrived (or was given up on).
    func end() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.count -= 1
            guard state.count == 0 else { return [] }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once none is on its way.
    func waitUntilNone() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.count == 0 { return true }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
}
