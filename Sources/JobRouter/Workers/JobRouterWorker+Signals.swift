import Logging
import UnixSignals

extension JobRouterWorker {
    /// Stops the worker on SIGTERM or SIGINT, as `jobrouter work` does: the first stops fetching
    /// and lets running jobs finish within their group's shutdown timeout; a second puts them
    /// back at once. `onSignal` runs first on each (to say "stopping" on a health endpoint).
    /// Returns when the task is cancelled. Make `signals` (trapping `.sigterm, .sigint`) before
    /// ``run()`` starts, so none is missed.
    public func stopOnSignals(_ signals: UnixSignalsSequence, logger: Logger, onSignal: @escaping @Sendable () -> Void = {}) async {
        var received = 0
        for await signal in signals {
            received += 1
            onSignal()
            if received == 1 {
                logger.notice("\(signal): stopping; running jobs may finish (send again to put them back now)")
                shutdown()
            } else {
                logger.notice("\(signal) again: putting running jobs back now")
                shutdown(immediately: true)
            }
        }
    }
}
