import Foundation
import JobRouter
import Synchronization

/// Claims a group's entries with the claim script. When every queue is empty it blocks in `BLPOP`
/// on the queues' wake-up lists (which every JobRouter push fills in the same atomic step as the
/// job), then claims again; entries pushed by other Redis clients, which push no token, are
/// claimed when that wait times out.
final class RedisJobFetcher: JobFetcher {
    private let queues: [String]
    private let wakeKeys: [String]
    private let arguments: [[UInt8]]
    private let thread: RedisConnectionThread
    private let control: RedisConnectionThread
    private let state = FetchState()

    init(queues: [String], namespace: String, worker: String, terms: LeaseTerms, endpoint: RedisEndpoint,
         timeout: Duration, label: String, control: RedisConnectionThread) {
        self.queues = queues
        self.wakeKeys = queues.map { "\(namespace):wake:\($0)" }
        self.arguments = [Array(namespace.utf8), [], Array(worker.utf8), Array(String(terms.maxRecoveries).utf8),
                          Array(String(terms.lease.inMilliseconds).utf8)]
        self.control = control
        // The socket timeout must outlast the longest BLPOP wait, or hiredis drops the connection.
        self.thread = RedisConnectionThread(endpoint: endpoint, timeout: timeout + .seconds(5), name: "jobrouter-fetch-\(label)")
    }

    func fetch(max: Int, wait: Duration) async throws -> [ClaimedEntry] {
        let (queues, wakeKeys, state) = (self.queues, self.wakeKeys, self.state)
        var arguments = self.arguments
        arguments[1] = Array(String(max).utf8)
        let waitSeconds = String(format: "%.3f", wait.inSeconds)
        return try await thread.run { [arguments] connection throws(RedisError) in
            let claimed = try Self.claim(connection, queues: queues, arguments: arguments)
            if !claimed.isEmpty { return claimed }
            let id = try connection.clientID()
            guard state.beginWait(client: id) else { return [] }
            defer { state.endWait() }
            _ = try connection.command(["BLPOP"] + wakeKeys + [waitSeconds])
            return try Self.claim(connection, queues: queues, arguments: arguments)
        }
    }

    private static func claim(_ connection: RedisConnection, queues: [String], arguments: [[UInt8]]) throws(RedisError) -> [ClaimedEntry] {
        let flat = try connection.evaluate(RedisScripts.claim, keys: queues, arguments: arguments).array(for: "claim") ?? []
        var entries: [ClaimedEntry] = []
        entries.reserveCapacity(flat.count / 3)
        var index = 0
        while index + 2 < flat.count {
            entries.append(ClaimedEntry(
                token: String(decoding: try flat[index].bytes(for: "claim"), as: UTF8.self),
                queue: String(decoding: try flat[index + 1].bytes(for: "claim"), as: UTF8.self),
                raw: Data(try flat[index + 2].bytes(for: "claim"))))
            index += 3
        }
        return entries
    }

    func interrupt() {
        guard let client = state.interrupt() else { return }
        // From another connection: CLIENT UNBLOCK makes the waiting BLPOP return nil at once.
        control.submit { session in
            _ = try? session.connection().command(["CLIENT", "UNBLOCK", String(client)])
        }
    }

    func close() async {
        thread.stop()
    }
}

/// Whether a fetcher waits in BLPOP (and as which client), and whether it was told to stop waiting.
private final class FetchState: Sendable {
    private let state = Mutex<(blockedClient: Int64?, interrupted: Bool)>((nil, false))

    /// Records that `client` is about to wait; `false` when it must not, having been interrupted.
    func beginWait(client: Int64) -> Bool {
        state.withLock { state in
            guard !state.interrupted else { return false }
            state.blockedClient = client
            return true
        }
    }

    func endWait() {
        state.withLock { $0.blockedClient = nil }
    }

    /// Marks the fetcher interrupted; returns the client to unblock if it is waiting now.
    func interrupt() -> Int64? {
        state.withLock { state in
            state.interrupted = true
            return state.blockedClient
        }
    }
}
