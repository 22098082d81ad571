import Dispatch
import FoundationEssentials
import Synchronization

/// The tokens of the claims a group holds, whose leases its heartbeats extend, with when each
/// was taken. A claim loop over its cap of held claims waits here for settles to bring them under.
final class ClaimRegistry: Sendable {
    private struct Waiter {
        let id: Int
        let limit: Int
        let continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var tokens: [String: Date] = [:]
        var waiters: [Waiter] = []
        var nextWaiter = 0
    }

    private let state = Mutex(State())

    func add(_ token: String, at date: Date = Date()) { state.withLock { $0.tokens[token] = date } }

    func remove(_ token: String) {
        let ready = state.withLock { state -> [Waiter] in
            guard state.tokens.removeValue(forKey: token) != nil, !state.waiters.isEmpty else { return [] }
            let count = state.tokens.count
            let ready = state.waiters.filter { count < $0.limit }
            if !ready.isEmpty { state.waiters.removeAll { count < $0.limit } }
            return ready
        }
        for waiter in ready { waiter.continuation.resume() }
    }

    var all: [String] { state.withLock { Array($0.tokens.keys) } }
    var count: Int { state.withLock { $0.tokens.count } }
    var claimedAt: [String: Date] { state.withLock { $0.tokens } }

    /// Returns once fewer than `limit` claims are held (at once if they are now), or after
    /// `timeout` at the latest, whichever comes first.
    func waitUntilFewer(than limit: Int, atMost timeout: Duration) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let id = state.withLock { state -> Int? in
                guard state.tokens.count >= limit else { return nil }
                state.nextWaiter += 1
                state.waiters.append(Waiter(id: state.nextWaiter, limit: limit, continuation: continuation))
                return state.nextWaiter
            }
            guard let id else { return continuation.resume() }
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout.inSeconds) { [self] in
                let waiter = state.withLock { state -> Waiter? in
                    guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                    return state.waiters.remove(at: index)
                }
                waiter?.continuation.resume()
            }
        }
    }
}
