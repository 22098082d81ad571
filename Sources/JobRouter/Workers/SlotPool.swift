import Synchronization

/// Counts a group's free job slots so it never runs more than `concurrency` jobs, and lets its
/// fetch loops wait (without polling, first come first served) until at least one slot is free.
final class SlotPool: Sendable {
    private struct State {
        var limit: Int
        var free: Int
        var closed = false
        var acquirers: [CheckedContinuation<Int, Never>] = []
        var nextWaiter = 0
        var idleWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }

    private let state: Mutex<State>

    init(capacity: Int) {
        self.state = Mutex(State(limit: capacity, free: capacity))
    }

    /// How many jobs may run at once now.
    var capacity: Int { state.withLock { $0.limit } }

    /// How many slots are in use.
    var inUse: Int { state.withLock { $0.limit - $0.free } }

    /// Changes how many jobs may run at once. Shrinking never stops a running job: slots given
    /// back while over the new limit are kept until the count is under it.
    func resize(to limit: Int) {
        let (acquirer, taken) = state.withLock { state -> (CheckedContinuation<Int, Never>?, Int) in
            state.free += limit - state.limit
            state.limit = limit
            return Self.handOut(&state)
        }
        acquirer?.resume(returning: taken)
    }

    /// The first waiting acquirer and every free slot for it, if both.
    private static func handOut(_ state: inout State) -> (CheckedContinuation<Int, Never>?, Int) {
        guard state.free > 0, !state.acquirers.isEmpty, !state.closed else { return (nil, 0) }
        defer { state.free = 0 }
        return (state.acquirers.removeFirst(), state.free)
    }

    /// Waits until a slot is free and takes every free slot; returns how many (0 once closed).
    func acquireAll() async -> Int {
        await withCheckedContinuation { (continuation: CheckedContinuation<Int, Never>) in
            let taken = state.withLock { state -> Int? in
                if state.closed { return 0 }
                if state.free > 0 {
                    defer { state.free = 0 }
                    return state.free
                }
                state.acquirers.append(continuation)
                return nil
            }
            if let taken { continuation.resume(returning: taken) }
        }
    }

    /// Takes every slot free now without waiting; returns how many (0 once closed).
    func takeFree() -> Int {
        state.withLock { state -> Int in
            guard !state.closed, state.free > 0 else { return 0 }
            defer { state.free = 0 }
            return state.free
        }
    }

    /// Gives back `count` slots.
    func release(_ count: Int) {
        guard count > 0 else { return }
        let (acquirer, taken, drained) = state.withLock { state -> (CheckedContinuation<Int, Never>?, Int, [CheckedContinuation<Void, Never>]) in
            state.free += count
            var drained: [CheckedContinuation<Void, Never>] = []
            if state.free == state.limit {
                drained = Array(state.idleWaiters.values)
                state.idleWaiters = [:]
            }
            let (acquirer, taken) = Self.handOut(&state)
            return (acquirer, taken, drained)
        }
        acquirer?.resume(returning: taken)
        for waiter in drained { waiter.resume() }
    }

    /// Stops handing out slots: waiting ``acquireAll()`` calls return 0, and so do later ones.
    func close() {
        let acquirers = state.withLock { state -> [CheckedContinuation<Int, Never>] in
            state.closed = true
            defer { state.acquirers = [] }
            return state.acquirers
        }
        for acquirer in acquirers { acquirer.resume(returning: 0) }
    }

    /// Returns once every slot is free (no job running), or the calling task is cancelled.
    func waitUntilIdle() async {
        let id = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.free == state.limit || Task.isCancelled { return true }
                    state.idleWaiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let continuation = state.withLock { $0.idleWaiters.removeValue(forKey: id) }
            continuation?.resume()
        }
    }
}
