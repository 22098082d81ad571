import Synchronization

/// Tells every part of a worker how far shutdown has gone, and wakes whoever waits for it.
///
/// `running` → `draining` (stop fetching, let running jobs finish within `shutdown_timeout`)
/// → `aborting` (stop running jobs now and put them back). Phases only move forward.
public final class ShutdownController: Sendable {
    /// How far shutdown has gone.
    public enum Phase: Int, Sendable, Comparable {
        /// Fetching and running jobs.
        case running
        /// No new jobs are fetched; running ones may finish.
        case draining
        /// Running jobs are stopped and put back.
        case aborting

        public static func < (lhs: Phase, rhs: Phase) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    private struct State {
        var phase: Phase = .running
        var nextWaiter = 0
        var waiters: [Int: (target: Phase, continuation: CheckedContinuation<Void, Never>)] = [:]
    }

    private let state = Mutex(State())

    /// Makes a controller in the `running` phase.
    public init() {}

    /// The current phase.
    public var phase: Phase { state.withLock { $0.phase } }

    /// Moves to `phase` if it is further than the current one.
    public func advance(to phase: Phase) {
        let woken = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard phase > state.phase else { return [] }
            state.phase = phase
            let ready = state.waiters.filter { $0.value.target <= phase }
            for key in ready.keys { state.waiters[key] = nil }
            return ready.values.map(\.continuation)
        }
        for continuation in woken { continuation.resume() }
    }

    /// Returns once the phase is at least `target`, or the calling task is cancelled.
    public func wait(for target: Phase) async {
        let id = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.phase >= target || Task.isCancelled { return true }
                    state.waiters[id] = (target, continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let continuation = state.withLock { $0.waiters.removeValue(forKey: id)?.continuation }
            continuation?.resume()
        }
    }

    /// Sleeps for `duration`, returning early when the phase reaches `target` or the task is cancelled.
    /// Returns `true` when the full time passed.
    @discardableResult
    public func sleep(for duration: Duration, unless target: Phase = .draining) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                do {
                    try await Task.sleep(for: duration)
                    return true
                } catch {
                    return false
                }
            }
            group.addTask {
                await self.wait(for: target)
                return false
            }
            let result = await group.next() ?? false
            group.cancelAll()
            return result
        }
    }
}
