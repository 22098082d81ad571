import Dispatch
import FoundationEssentials
import Synchronization

/// A dedicated thread that owns some non-`Sendable` state (a C library handle) and runs work on it
/// one item at a time, so blocking C calls never occupy Swift's cooperative thread pool.
///
/// The state is made on the thread by `makeState` and never leaves it: work items receive it as a
/// parameter. Call ``stop()`` to end the thread once queued work is done; the state is released on
/// the thread.
///
/// It is also a `TaskExecutor`: a task that prefers it (a claim loop on its fetch connection's
/// thread) runs here between its calls, so a call it makes on this thread is no hop from one
/// thread to another and back, only the wait for the server.
package final class ConfinedThread<State: AnyObject>: TaskExecutor, Sendable {
    /// One unit of work, run on the thread with its state.
    package typealias WorkItem = @Sendable (State) -> Void

    private let work = Mutex<(items: [WorkItem], stopping: Bool)>(([], false))
    private let wakeUp = DispatchSemaphore(value: 0)

    /// Starts the thread, named `name`; `makeState` runs on it first.
    package init(name: String, makeState: @escaping @Sendable () -> State) {
        // The thread keeps `self` alive until `stop()` ends its loop.
        OSThread.start(name: name) { self.loop(makeState) }
    }

    private func loop(_ makeState: @Sendable () -> State) {
        let state = makeState()
        while true {
            wakeUp.wait()
            let (item, stop) = work.withLock { work -> (WorkItem?, Bool) in
                if work.items.isEmpty { return (nil, work.stopping) }
                return (work.items.removeFirst(), false)
            }
            if let item { item(state) }
            if stop { break }
        }
        _ = state
    }

    /// Queues `item` without waiting for it. Returns `false` (and drops `item`, unrun) once the
    /// thread is stopping.
    @discardableResult
    package func submit(_ item: @escaping WorkItem) -> Bool {
        let accepted = work.withLock { work -> Bool in
            guard !work.stopping else { return false }
            work.items.append(item)
            return true
        }
        if accepted { wakeUp.signal() }
        return accepted
    }

    /// Runs `body` on the thread and returns its result to the awaiting task. Once the thread is
    /// stopping, throws `stopped()` at once instead of waiting forever.
    package func run<Result: Sendable, Failure: Error>(
        _ body: @escaping @Sendable (State) throws(Failure) -> Result,
        ifStopped stopped: @Sendable () -> Failure
    ) async throws(Failure) -> Result {
        let result: Swift.Result<Result, Failure> = await withCheckedContinuation { continuation in
            let accepted = submit { state in
                do throws(Failure) {
                    continuation.resume(returning: .success(try body(state)))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
            if !accepted { continuation.resume(returning: .failure(stopped())) }
        }
        return try result.get()
    }

    /// Runs a task's job on the thread, in turn with the work items. Once the thread is stopping,
    /// on the global executor instead: a task is never left unrun.
    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = UnownedTaskExecutor(ordinary: self)
        if !submit({ _ in job.runSynchronously(on: executor) }) {
            globalConcurrentExecutor.enqueue(ExecutorJob(job))
        }
    }

    /// Lets queued work finish, then ends the thread.
    package func stop() {
        work.withLock { $0.stopping = true }
        wakeUp.signal()
    }
}
