import JobRouter
import Metrics

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
            let connection = try RedisConnection.open(endpoint, timeout: timeout)
            current = connection
            return connection
        }

        func drop() {
            current = nil
        }
    }

    private let thread: ConfinedThread<Session>
    private let endpoint: RedisEndpoint

    /// Starts the thread. `timeout` bounds connecting and every read or write.
    init(endpoint: RedisEndpoint, timeout: Duration, name: String) {
        self.endpoint = endpoint
        thread = ConfinedThread(name: name) { Session(endpoint: endpoint, timeout: timeout) }
    }

    /// Runs `body` on the thread with its connection and returns its result. A failure that closes
    /// the connection drops it, so the next call connects again.
    func run<Result: Sendable>(_ body: @escaping @Sendable (RedisConnection) throws(RedisError) -> Result) async throws(RedisError) -> Result {
        try await thread.run { (session: Session) throws(RedisError) -> Result in
            do throws(RedisError) {
                do throws(RedisError) {
                    return try body(try session.connection())
                } catch where error.isRedirect {
                    // A cluster moved the slot: the refused command did not run. Once more, on
                    // the slot's primary now (a call's commands all go to one slot, so a MOVED
                    // comes on its first command).
                    session.drop()
                    return try body(try session.connection())
                }
            } catch {
                if error.closesConnection { session.drop() }
                Counter(label: "jobrouter_redis_errors_total").increment()
                throw error
            }
        } ifStopped: {
            RedisError(code: .connection, message: "the connection's thread is stopped", server: endpoint.description)
        }
    }

    /// The thread as an executor for tasks: a task that prefers it makes its calls here without
    /// a hop to another thread.
    var taskExecutor: any TaskExecutor { thread }

    /// Queues `item` without waiting for it; `false` (the item dropped, unrun) once stopped.
    @discardableResult
    func submit(_ item: @escaping @Sendable (Session) -> Void) -> Bool {
        thread.submit(item)
    }

    /// Lets queued calls finish, then closes the connection and ends the thread.
    func stop() {
        thread.stop()
    }
}
