import Synchronization

/// Runs one handler call in a task of its own, raced against the type's timeout (watched by the
/// group's ``HandlerDeadlines``), so that a handler which ignores cancellation cannot hold its
/// worker slot forever.
///
/// On timeout (or when the worker must stop at once) the handler's task is cancelled and given
/// `grace` to end. One that is still running then is *abandoned*: the job's outcome is decided
/// without it (timed out, or interrupted), the slot is given back so the group keeps its
/// capacity, and the handler is counted in ``StuckHandlers`` until it does return (Swift cannot
/// stop a task that does not check for cancellation).
final class HandlerRun: Sendable {
    /// How a call ended.
    enum Outcome: Sendable {
        case completed
        case failed(any Error)
        case timedOut
        case interrupted
    }

    private struct State {
        var continuation: CheckedContinuation<Outcome, Never>?
        var handler: Task<Void, Never>?
        /// Why the handler was cancelled, once it was.
        var stopReason: Outcome?
        var decided = false
        var abandoned = false
    }

    private let state = Mutex(State())
    private let grace: Duration
    private let stuck: StuckHandlers
    private let deadlines: HandlerDeadlines

    private init(grace: Duration, stuck: StuckHandlers, deadlines: HandlerDeadlines) {
        self.grace = grace
        self.stuck = stuck
        self.deadlines = deadlines
    }

    /// Runs `body` until it returns, `timeout` passes (as `deadlines` watches it), or the calling
    /// task is cancelled.
    static func run(timeout: Duration, grace: Duration, stuck: StuckHandlers, deadlines: HandlerDeadlines,
                    _ body: @escaping @Sendable () async throws -> Void) async -> Outcome {
        let run = HandlerRun(grace: grace, stuck: stuck, deadlines: deadlines)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                run.start(continuation, timeout: timeout, body)
            }
        } onCancel: {
            run.stop(.interrupted)
        }
    }

    private func start(_ continuation: CheckedContinuation<Outcome, Never>, timeout: Duration,
                       _ body: @escaping @Sendable () async throws -> Void) {
        // The continuation first: the handler may finish before the tasks below are stored.
        state.withLock { $0.continuation = continuation }
        let handler = Task {
            let result: Outcome
            do {
                try await body()
                result = .completed
            } catch {
                result = .failed(error)
            }
            self.finish(result)
        }
        deadlines.add(self, deadline: .now + timeout)
        let (stopEarly, finished) = state.withLock { state -> (Bool, Bool) in
            state.handler = handler
            return (state.stopReason != nil, state.decided)
        }
        if finished { deadlines.remove(self) }
        if stopEarly { handler.cancel() }
    }

    /// The handler ran past its timeout.
    func timedOut() {
        stop(.timedOut)
    }

    /// Cancels the handler for `reason` and gives it `grace` to end.
    private func stop(_ reason: Outcome) {
        let handler = state.withLock { state -> Task<Void, Never>?? in
            guard !state.decided, state.stopReason == nil else { return nil }
            state.stopReason = reason
            return .some(state.handler)
        }
        guard let handler else { return }
        handler?.cancel()
        let grace = self.grace
        Task {
            try? await Task.sleep(for: grace)
            self.abandon()
        }
    }

    private func abandon() {
        let decision = state.withLock { state -> (CheckedContinuation<Outcome, Never>, Outcome)? in
            guard !state.decided, let continuation = state.continuation, let reason = state.stopReason else { return nil }
            state.decided = true
            state.abandoned = true
            state.continuation = nil
            return (continuation, reason)
        }
        guard let (continuation, reason) = decision else { return }
        stuck.add()
        continuation.resume(returning: reason)
    }

    private func finish(_ result: Outcome) {
        let decision = state.withLock { state -> (CheckedContinuation<Outcome, Never>?, Outcome, Bool) in
            if state.decided { return (nil, result, state.abandoned) }
            state.decided = true
            let continuation = state.continuation
            state.continuation = nil
            // A handler that ends by throwing after it was cancelled ended because of the cancel.
            if let reason = state.stopReason, case .failed = result { return (continuation, reason, false) }
            return (continuation, result, false)
        }
        let (continuation, outcome, wasAbandoned) = decision
        deadlines.remove(self)
        if wasAbandoned { stuck.remove() }
        continuation?.resume(returning: outcome)
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
