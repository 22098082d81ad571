import Logging
import Synchronization

/// Remembers whether the queue server is reachable, so a lost connection is logged once (not once
/// per retry) and its return once; and computes the capped backoff between attempts.
package final class ConnectionHealth: Sendable {
    private let state = Mutex<(down: Bool, failures: Int)>((false, 0))
    private let fatalError = Mutex<String?>(nil)
    private let logger: Logger

    /// Logs to `logger`.
    package init(logger: Logger) {
        self.logger = logger
    }

    /// Notes a failed call; returns how long to wait before the next one (100 ms doubling to 5 s).
    package func failed(_ error: Error) -> Duration {
        let (firstFailure, failures) = state.withLock { state -> (Bool, Int) in
            defer { state.down = true; state.failures += 1 }
            return (!state.down, state.failures + 1)
        }
        if firstFailure {
            logger.error("queue server unreachable: \(error); retrying with backoff until it is back")
        }
        return Self.backoff(afterFailures: failures)
    }

    /// Notes a call that worked.
    package func succeeded() {
        let wasDown = state.withLock { state -> Bool in
            defer { state = (false, 0) }
            return state.down
        }
        if wasDown { logger.notice("queue server reachable again") }
    }

    /// Whether retrying `error` cannot help (a ``QueueServerError`` that says so).
    package static func isPermanent(_ error: Error) -> Bool {
        (error as? any QueueServerError)?.isPermanent ?? false
    }

    /// Notes a failure that retrying cannot fix; the worker stops and reports it.
    package func fatal(_ error: Error, group: String) {
        let first = fatalError.withLock { current -> Bool in
            guard current == nil else { return false }
            current = "\(error)"
            return true
        }
        if first { logger.critical("group \(group): \(error); this will not fix itself, stopping the worker") }
    }

    /// The failure that stopped the worker, if one did.
    package var fatalFailure: String? { fatalError.withLock { $0 } }

    /// 100 ms after the first failure, doubling, at most 5 s.
    package static func backoff(afterFailures failures: Int) -> Duration {
        let exponent = min(max(failures - 1, 0), 6)
        return .milliseconds(min(100 * (1 << exponent), 5000))
    }
}

/// An error from a queue server that can say whether retrying may help. Outages (connection
/// refused, timeouts) are not permanent; bad credentials or missing rights are.
public protocol QueueServerError: Error {
    /// `true` when the same call will fail again until an operator changes something.
    var isPermanent: Bool { get }
}
