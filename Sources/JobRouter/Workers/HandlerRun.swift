import Synchronization

/// Runs one handler call in its job's task, raced against the type's timeout (watched by the
/// group's ``HandlerDeadlines``), so that a handler which ignores cancellation cannot hold its
/// worker slot forever.
///
/// On timeout (or when the worker must stop at once) the job's task is cancelled and the handler
/// given `grace` to end. One that is still running then is *abandoned*: the job's outcome is
/// decided without it (timed out, or interrupted) and handed to `onAbandon`, which writes it from
/// another task (see ``JobTasks/replace(_:with:)``), so the slot is given back and the group
/// keeps its capacity even when the handler blocks its thread without ever suspending. It is
/// counted in ``StuckHandlers`` until it does return (Swift cannot stop a task that does not check
/// for cancellation).
///
/// The handler runs inline, not in a task of its own: a handler that finishes at once then costs
/// no thread hop and no task.
final class HandlerRun: Sendable {
    /// How a call ended.
    enum Outcome: Sendable {
        case completed
        case failed(any Error)
        case timedOut
        case interrupted
    }

    private struct State {
        /// Why the handler was cancelled, once it was.
        var stopReason: Outcome?
        var decided = false
    }

    private let state = Mutex(State())
    private let grace: Duration
    private let stuck: StuckHandlers
    private let cancelTask: @Sendable () -> Void
    private let onAbandon: @Sendable (Outcome) -> Void

    private init(grace: Duration, stuck: StuckHandlers, cancelTask: @escaping @Sendable () -> Void,
                 onAbandon: @escaping @Sendable (Outcome) -> Void) {
        self.grace = grace
        self.stuck = stuck
        self.cancelTask = cancelTask
        self.onAbandon = onAbandon
    }

    /// Runs `body` in the calling task until it returns, `timeout` passes (as `deadlines` watches
    /// it), or the calling task is cancelled. `cancelTask` cancels the calling task (a timeout
    /// does). Returns how it ended, or `nil` when it was abandoned: `onAbandon` had the outcome
    /// then (called once, under this run's lock: it must only hand the outcome on), and this
    /// returns only when `body` finally does.
    static func run(timeout: Duration, grace: Duration, stuck: StuckHandlers, deadlines: HandlerDeadlines,
                    cancelTask: @escaping @Sendable () -> Void, onAbandon: @escaping @Sendable (Outcome) -> Void,
                    _ body: () async throws -> Void) async -> Outcome? {
        let run = HandlerRun(grace: grace, stuck: stuck, cancelTask: cancelTask, onAbandon: onAbandon)
        deadlines.add(run, deadline: .now + timeout)
        let result: Outcome = await withTaskCancellationHandler {
            do {
                try await body()
                return .completed
            } catch {
                return .failed(error)
            }
        } onCancel: {
            run.stop(.interrupted)
        }
        deadlines.remove(run)
        return run.finish(result)
    }

    /// The handler ran past its timeout.
    func timedOut() {
        stop(.timedOut)
    }

    /// Cancels the handler for `reason` and gives it `grace` to end.
    private func stop(_ reason: Outcome) {
        let first = state.withLock { state -> Bool in
            guard !state.decided, state.stopReason == nil else { return false }
            state.stopReason = reason
            return true
        }
        guard first else { return }
        // Outside the lock: cancelling runs the task's cancellation handler, which calls stop again.
        cancelTask()
        let grace = self.grace
        Task {
            try? await Task.sleep(for: grace)
            self.abandon()
        }
    }

    private func abandon() {
        state.withLock { state in
            guard !state.decided, let reason = state.stopReason else { return }
            state.decided = true
            stuck.add()
            // Inside the lock: the task that writes the outcome is counted (``JobTasks/replace(_:with:)``)
            // before `finish` can return and this run's own task end, and stop being counted.
            onAbandon(reason)
        }
    }

    /// The outcome of a handler that returned with `result`, or `nil` when it had been abandoned.
    private func finish(_ result: Outcome) -> Outcome? {
        let outcome = state.withLock { state -> Outcome? in
            if state.decided { return nil }
            state.decided = true
            // A handler that ends by throwing after it was cancelled ended because of the cancel.
            if let reason = state.stopReason, case .failed = result { return reason }
            return result
        }
        if outcome == nil { stuck.remove() }
        return outcome
    }
}

/// Handlers abandoned after their timeout that are still running (see ``HandlerRun``).
final class StuckHandlers: Sendable {
    private let count = Mutex(0)

    /// How many are running now.
    var current: Int { count.withLock { $0 } }

    func add() { count.withLock { $0 += 1 } }
    func remove() { count.withLock { $0 = max(0, $0 - 1) } }
}
