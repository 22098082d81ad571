import Dispatch
import Foundation
import Synchronization

/// A dedicated thread that owns one ``RedisConnection`` and runs calls on it one at a time, so that
/// blocking hiredis calls (including `BLPOP`) never occupy Swift's cooperative thread pool.
///
/// The connection is opened on the thread, lazily, and opened again on the next call after a call
/// failed in a way that closes it.
final class RedisConnectionThread: Sendable {
    /// What a call gets: the thread's connection, opened on demand.
    final class Session {
        let endpoint: RedisEndpoint
        let timeout: Duration
        private var current: RedisConnection?

        init(endpoint: RedisEndpoint, timeout: Duration) {
            self.endpoint = endpoint
            self.timeout = timeout
        }

        func connection() throws(RedisError) -> RedisConnection {
            if let current { return current }
            let connection = try RedisConnection(endpoint: endpoint, timeout: timeout)
            current = connection
            return connection
        }

        func drop() {
            current = nil
        }
    }

    typealias WorkItem = @Sendable (Session) -> Void

    private let work = Mutex<(items: [WorkItem], stopping: Bool)>(([], false))
    private let wakeUp = DispatchSemaphore(value: 0)

    /// Starts the thread. `timeout` bounds connecting and every read or write.
    init(endpoint: RedisEndpoint, timeout: Duration, name: String) {
        // The thread keeps `self` alive until `stop()` ends its loop.
        let thread = Thread { self.loop(endpoint: endpoint, timeout: timeout) }
        thread.name = name
        thread.start()
    }

    private func loop(endpoint: RedisEndpoint, timeout: Duration) {
        let session = Session(endpoint: endpoint, timeout: timeout)
        while true {
            wakeUp.wait()
            let (item, stop) = work.withLock { state -> (WorkItem?, Bool) in
                if state.items.isEmpty { return (nil, state.stopping) }
                return (state.items.removeFirst(), false)
            }
            if let item { item(session) }
            if stop { break }
        }
        session.drop()
    }

    /// Runs `body` on the thread with its connection and returns its result. A failure that closes
    /// the connection drops it, so the next call connects again.
    func run<Result: Sendable>(_ body: @escaping @Sendable (RedisConnection) throws(RedisError) -> Result) async throws(RedisError) -> Result {
        let result: Swift.Result<Result, RedisError> = await withCheckedContinuation { continuation in
            submit { session in
                do throws(RedisError) {
                    continuation.resume(returning: .success(try body(try session.connection())))
                } catch {
                    if error.closesConnection { session.drop() }
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try result.get()
    }

    /// Queues `item` without waiting for it.
    func submit(_ item: @escaping WorkItem) {
        let accepted = work.withLock { state -> Bool in
            guard !state.stopping else { return false }
            state.items.append(item)
            return true
        }
        if accepted { wakeUp.signal() }
    }

    /// Lets queued calls finish, then closes the connection and ends the thread.
    func stop() {
        work.withLock { $0.stopping = true }
        wakeUp.signal()
    }
}
