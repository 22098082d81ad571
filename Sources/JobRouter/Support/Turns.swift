import Synchronization

/// Lets work prepared at the same time (chunks of a batch enqueue) go on one at a time, in order:
/// turn `n` begins once turn `n - 1` ended well. Once a turn failed, no later one begins: each
/// throws that turn's error, so whichever of them a caller hears of first, it hears the cause.
package final class Turns: Sendable {
    private struct State {
        var next = 0
        var failure: (any Error)?
        var waiting: [Int: CheckedContinuation<(any Error)?, Never>] = [:]
    }
    private let state = Mutex(State())

    /// Turns from 0, none taken yet.
    package init() {}

    /// Waits for turn `turn` (every earlier turn ended well); throws the error of a turn that failed.
    package func begin(_ turn: Int) async throws {
        let failure = await withCheckedContinuation { (continuation: CheckedContinuation<(any Error)?, Never>) in
            let ready = state.withLock { state -> (any Error)?? in
                if let failure = state.failure { return .some(failure) }
                if state.next == turn { return .some(nil) }
                state.waiting[turn] = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
        if let failure { throw failure }
    }

    /// Ends turn `turn` (whether or not it began): well (`failure` nil), or failed, which stops
    /// every later turn with `failure`.
    package func end(_ turn: Int, failure: (any Error)? = nil) {
        let wake = state.withLock { state -> [(CheckedContinuation<(any Error)?, Never>, (any Error)?)] in
            if let failure, state.failure == nil { state.failure = failure }
            if let stop = state.failure {
                defer { state.waiting = [:] }
                return state.waiting.values.map { ($0, stop) }
            }
            state.next = turn + 1
            return state.waiting.removeValue(forKey: turn + 1).map { [($0, nil)] } ?? []
        }
        for (continuation, failure) in wake { continuation.resume(returning: failure) }
    }
}
