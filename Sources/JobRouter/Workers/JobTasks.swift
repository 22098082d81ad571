import Synchronization

/// The tasks running a group's jobs (each job's handler, in its own task, then its settle).
///
/// Unstructured, so that a handler that never returns cannot hold the group's shutdown: once
/// such a run is abandoned (see ``HandlerRun``), the task writing its outcome takes its place
/// here (``replace(_:with:)``) and the stuck task is no longer waited for. Shutdown waits for
/// the rest (``waitUntilNone()``) and, when running jobs must stop, cancels them together
/// (``cancelAll()``).
final class JobTasks: Sendable {
    /// Names one task while it is counted.
    typealias ID = Int

    private struct State {
        var tasks: [ID: Task<Void, Never>] = [:]
        /// Tasks that ended before they were put in `tasks`.
        var endedEarly: Set<ID> = []
        /// Tasks replaced (their handler abandoned) that have not ended.
        var replaced: Set<ID> = []
        var cancelled = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())
    private let nextID = Atomic<ID>(0)

    /// How many are counted now.
    var count: Int { state.withLock { $0.tasks.count } }

    /// Runs `body` in a task of its own on the global executor (never on a claim loop's thread,
    /// where it would hold up the next claim), counted until it returns; `body` gets its id.
    func start(_ body: @escaping @Sendable (ID) async -> Void) {
        let id = nextID.add(1, ordering: .relaxed).newValue
        add(id) { await body(id) }
    }

    /// Counts a task running `body` in place of `id` (whose task is then no longer waited for).
    /// The new one is counted before `id` is not, so the count never passes through zero.
    func replace(_ id: ID, with body: @escaping @Sendable () async -> Void) {
        add(nextID.add(1, ordering: .relaxed).newValue, body)
        let waiters = state.withLock { state in
            state.replaced.insert(id)
            return state.tasks.removeValue(forKey: id) == nil ? [] : waitersIfNone(&state)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// The task is made outside the lock (making one may wake a thread): one that ends before it
    /// is put in is noted in `endedEarly` and not put in.
    private func add(_ id: ID, _ body: @escaping @Sendable () async -> Void) {
        let task = Task(executorPreference: globalConcurrentExecutor) {
            await body()
            self.ended(id)
        }
        let cancel = state.withLock { state -> Bool in
            if state.endedEarly.remove(id) != nil || state.replaced.contains(id) { return false }
            state.tasks[id] = task
            return state.cancelled
        }
        if cancel { task.cancel() }
    }

    /// Cancels the task of `id`, if it is still counted.
    func cancel(_ id: ID) {
        state.withLock { $0.tasks[id] }?.cancel()
    }

    /// Cancels every task counted now, and every one started from now on.
    func cancelAll() {
        let tasks = state.withLock { state in
            state.cancelled = true
            return Array(state.tasks.values)
        }
        for task in tasks { task.cancel() }
    }

    private func ended(_ id: ID) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            if state.tasks.removeValue(forKey: id) != nil { return waitersIfNone(&state) }
            if state.replaced.remove(id) == nil { state.endedEarly.insert(id) }
            return []
        }
        for waiter in waiters { waiter.resume() }
    }

    /// The waiters to resume when no task is counted any more.
    private func waitersIfNone(_ state: inout State) -> [CheckedContinuation<Void, Never>] {
        guard state.tasks.isEmpty else { return [] }
        defer { state.waiters = [] }
        return state.waiters
    }

    /// Returns once no task is counted.
    func waitUntilNone() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.tasks.isEmpty { return true }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
}
