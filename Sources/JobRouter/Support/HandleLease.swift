import Synchronization

/// Lends out the indices of a fixed set of handles (one per dedicated thread: SMTP handles,
/// PostgreSQL connections), one caller at a time each; callers beyond the set wait their turn in
/// arrival order, without blocking a thread.
package final class HandleLease: Sendable {
    private let state: Mutex<(free: [Int], waiters: [CheckedContinuation<Int, Never>])>

    /// Lends `0..<count`.
    package init(count: Int) {
        state = Mutex((Array(0..<count), []))
    }

    /// A free index, waiting for one when all are out.
    package func borrow() async -> Int {
        await withCheckedContinuation { continuation in
            let index = state.withLock { state -> Int? in
                if let index = state.free.popLast() { return index }
                state.waiters.append(continuation)
                return nil
            }
            if let index { continuation.resume(returning: index) }
        }
    }

    /// Returns `index`, handing it straight to the longest waiter if there is one.
    package func giveBack(_ index: Int) {
        let waiter = state.withLock { state -> CheckedContinuation<Int, Never>? in
            if state.waiters.isEmpty {
                state.free.append(index)
                return nil
            }
            return state.waiters.removeFirst()
        }
        waiter?.resume(returning: index)
    }
}
