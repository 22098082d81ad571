import Foundation
import JobRouter
import Synchronization

/// The Redis backend: queues are Redis lists, pushed at the tail and taken from the head.
///
/// JobRouter's own keys live under the configured namespace (`jobrouter:` by default):
/// `NS:dead` (sorted set of dead job ids by time) and `NS:dead:jobs` (hash id → record JSON).
///
/// Commands run on dedicated threads (one for this driver's own calls, one per fetcher), never on
/// Swift's cooperative pool.
public final class RedisQueueDriver: JobQueueDriver {
    /// The server, without credentials.
    public let endpoint: RedisEndpoint
    /// The prefix of JobRouter's own keys.
    public let namespace: String
    private let timeout: Duration
    private let commands: RedisConnectionThread

    /// Connects lazily to `endpoint`; `timeout` bounds connecting and each command.
    public init(endpoint: RedisEndpoint, namespace: String = "jobrouter", timeout: Duration = .seconds(10)) {
        self.endpoint = endpoint
        self.namespace = namespace
        self.timeout = timeout
        self.commands = RedisConnectionThread(endpoint: endpoint, timeout: timeout, name: "jobrouter-redis")
    }

    /// Uses `configuration.redis`, with `JOBROUTER_REDIS_URL` from `environment` in place of the URL when set.
    public convenience init(configuration: RouterConfiguration, environment: [String: String] = ProcessInfo.processInfo.environment) throws(RedisError) {
        let url = environment["JOBROUTER_REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? configuration.redis.url
        self.init(endpoint: try RedisEndpoint(url: url), namespace: configuration.redis.namespace)
    }

    deinit {
        commands.stop()
    }

    var deadIndexKey: String { "\(namespace):dead" }
    var deadRecordsKey: String { "\(namespace):dead:jobs" }

    /// Most entries sent in one RPUSH/LPUSH.
    static let entriesPerCommand = 1000

    public func push(_ jobs: [JobEnvelope]) async throws {
        guard !jobs.isEmpty else { return }
        let commands = Self.pushCommands("RPUSH", jobs.map { ($0.queue, Array($0.jsonText.utf8)) })
        try await self.commands.run { connection throws(RedisError) in
            try Self.checkReplies(try connection.pipeline(commands), "RPUSH")
        }
    }

    public func requeueAtHead(_ entries: [FetchedEntry]) async throws {
        guard !entries.isEmpty else { return }
        // LPUSH puts each argument at the head in turn, so the last one pushed ends up first:
        // pushing in reverse leaves `entries` in their own order at the head.
        let commands = Self.pushCommands("LPUSH", entries.reversed().map { ($0.queue, [UInt8]($0.raw)) })
        try await self.commands.run { connection throws(RedisError) in
            try Self.checkReplies(try connection.pipeline(commands), "LPUSH")
        }
    }

    public func deadLetter(_ record: DeadLetter) async throws {
        let keys = [deadIndexKey, deadRecordsKey]
        let arguments = [Array(record.id.rawValue.utf8), Array(String(Int64(record.failedAt.timeIntervalSince1970 * 1000)).utf8),
                         Array(record.jsonText.utf8)]
        _ = try await commands.run { connection throws(RedisError) in
            try connection.evaluate(RedisScripts.deadLetter, keys: keys, arguments: arguments)
        }
    }

    public func makeFetcher(queues: [String], label: String) -> any JobFetcher {
        RedisJobFetcher(queues: queues, endpoint: endpoint, timeout: timeout, label: label, control: commands)
    }

    public func depths(of queues: [String]) async throws -> [String: Int] {
        let commands = queues.map { [Array("LLEN".utf8), Array($0.utf8)] }
        let replies = try await self.commands.run { connection throws(RedisError) in try connection.pipeline(commands) }
        var depths: [String: Int] = [:]
        for (queue, reply) in zip(queues, replies) {
            depths[queue] = Int(try reply.integer(for: "LLEN"))
        }
        return depths
    }

    public func deadLetterCount() async throws -> Int {
        let key = deadIndexKey
        return try await commands.run { connection throws(RedisError) in
            Int(try connection.command(["ZCARD", key]).integer(for: "ZCARD"))
        }
    }

    /// The dead-letter records, newest first (at most `limit`).
    public func deadLetters(limit: Int = 100) async throws -> [String] {
        let (index, records) = (deadIndexKey, deadRecordsKey)
        return try await commands.run { connection throws(RedisError) in
            let ids = try connection.command(["ZREVRANGE", index, "0", String(max(limit, 1) - 1)]).array(for: "ZREVRANGE") ?? []
            guard !ids.isEmpty else { return [] }
            var arguments = [Array("HMGET".utf8), Array(records.utf8)]
            for id in ids { arguments.append(try id.bytes(for: "ZREVRANGE")) }
            let values = try connection.command(bytes: arguments)
            return (try values.array(for: "HMGET") ?? []).compactMap { reply in
                if case .string(let bytes) = reply { return String(decoding: bytes, as: UTF8.self) }
                return nil
            }
        }
    }

    /// Runs any command on the driver's connection (for tools and tests).
    public func command(_ arguments: [String]) async throws -> RedisReply {
        try await commands.run { connection throws(RedisError) in try connection.command(arguments) }
    }

    /// Groups consecutive entries for the same queue into commands of at most ``entriesPerCommand``.
    static func pushCommands(_ verb: String, _ entries: [(queue: String, bytes: [UInt8])]) -> [[[UInt8]]] {
        var commands: [[[UInt8]]] = []
        var current: [[UInt8]] = []
        var currentQueue: String?
        for entry in entries {
            if entry.queue != currentQueue || current.count > entriesPerCommand {
                if !current.isEmpty { commands.append(current) }
                current = [Array(verb.utf8), Array(entry.queue.utf8)]
                currentQueue = entry.queue
            }
            current.append(entry.bytes)
        }
        if !current.isEmpty { commands.append(current) }
        return commands
    }

    static func checkReplies(_ replies: [RedisReply], _ command: String) throws(RedisError) {
        for reply in replies {
            if case .error(let message) = reply { throw RedisError(code: .server, message: message, command: command) }
        }
    }
}

/// Takes a group's entries with the claim script, and waits with `BLPOP` when every queue is empty.
final class RedisJobFetcher: JobFetcher {
    private let queues: [String]
    private let thread: RedisConnectionThread
    private let control: RedisConnectionThread
    /// The fetch connection's id while it waits in BLPOP; whether `interrupt()` was called.
    private let state = FetchState()

    init(queues: [String], endpoint: RedisEndpoint, timeout: Duration, label: String, control: RedisConnectionThread) {
        self.queues = queues
        self.control = control
        // The socket timeout must outlast the longest BLPOP wait, or hiredis drops the connection.
        self.thread = RedisConnectionThread(endpoint: endpoint, timeout: timeout + .seconds(5), name: "jobrouter-fetch-\(label)")
    }

    func fetch(max: Int, wait: Duration) async throws -> [FetchedEntry] {
        let queues = self.queues
        let waitSeconds = String(format: "%.3f", wait.inSeconds)
        return try await thread.run { [state] connection throws(RedisError) in
            let reply = try connection.evaluate(RedisScripts.claim, keys: queues, arguments: [Array(String(max).utf8)])
            let flat = try reply.array(for: "claim") ?? []
            var entries: [FetchedEntry] = []
            entries.reserveCapacity(flat.count / 2)
            var index = 0
            while index + 1 < flat.count {
                entries.append(FetchedEntry(queue: String(decoding: try flat[index].bytes(for: "claim"), as: UTF8.self),
                                            raw: Data(try flat[index + 1].bytes(for: "claim"))))
                index += 2
            }
            if !entries.isEmpty { return entries }

            let id = try connection.clientID()
            guard state.beginWait(client: id) else { return [] }
            defer { state.endWait() }
            let popped = try connection.command(["BLPOP"] + queues + [waitSeconds]).array(for: "BLPOP")
            guard let popped, popped.count == 2 else { return [] }
            return [FetchedEntry(queue: String(decoding: try popped[0].bytes(for: "BLPOP"), as: UTF8.self),
                                 raw: Data(try popped[1].bytes(for: "BLPOP")))]
        }
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
