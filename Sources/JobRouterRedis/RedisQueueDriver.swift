import Foundation
import JobRouter
import Synchronization

/// The Redis backend: queues are Redis lists, pushed at the tail and claimed from the head.
///
/// Every change that must not be torn is one Lua script (see ``RedisScripts`` for the keys kept
/// under the namespace). Commands run on dedicated threads (one for this driver's own calls, one per
/// fetcher), never on Swift's cooperative pool. Needs Redis 6.2 or later, not Redis Cluster.
public final class RedisQueueDriver: JobQueueDriver {
    /// The server, without credentials.
    public let endpoint: RedisEndpoint
    /// The prefix of JobRouter's own keys.
    public let namespace: String
    private let timeout: Duration
    let commands: RedisConnectionThread
    private let completions: CompletionBatcher

    /// Connects lazily to `endpoint`; `timeout` bounds connecting and each command.
    public init(endpoint: RedisEndpoint, namespace: String = "jobrouter", timeout: Duration = .seconds(10)) {
        self.endpoint = endpoint
        self.namespace = namespace
        self.timeout = timeout
        let commands = RedisConnectionThread(endpoint: endpoint, timeout: timeout, name: "jobrouter-redis")
        self.commands = commands
        self.completions = CompletionBatcher(thread: commands, namespace: namespace)
    }

    /// Uses `configuration.redis`, with `JOBROUTER_REDIS_URL` from `environment` in place of the URL when set.
    public convenience init(configuration: RouterConfiguration, environment: [String: String] = ProcessInfo.processInfo.environment) throws(RedisError) {
        let url = environment["JOBROUTER_REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? configuration.redis.url
        self.init(endpoint: try RedisEndpoint(url: url), namespace: configuration.redis.namespace)
    }

    deinit {
        commands.stop()
    }

    /// Most entries sent in one script call or command.
    static let entriesPerCommand = 1000

    private var ns: [UInt8] { Array(namespace.utf8) }

    public func push(_ jobs: [JobEnvelope]) async throws {
        guard !jobs.isEmpty else { return }
        // One `push` script call per run of jobs for the same queue: each job goes in with its
        // wake-up token, atomically; the calls are pipelined.
        let calls = Self.chunks(jobs.map { ($0.queue, Array($0.jsonText.utf8)) }).map { queue, entries in
            (keys: [queue], arguments: [ns] + entries)
        }
        try await commands.run { connection throws(RedisError) in
            try connection.evaluatePipelined(RedisScripts.push, calls)
        }
    }

    public func schedule(_ jobs: [JobEnvelope], at date: Date) async throws {
        try await schedule(jobs, mode: "at", milliseconds: Int64(date.timeIntervalSince1970 * 1000))
    }

    public func schedule(_ jobs: [JobEnvelope], after delay: Duration) async throws {
        try await schedule(jobs, mode: "in", milliseconds: delay.inMilliseconds)
    }

    private func schedule(_ jobs: [JobEnvelope], mode: String, milliseconds: Int64) async throws {
        guard !jobs.isEmpty else { return }
        var calls: [(keys: [String], arguments: [[UInt8]])] = []
        for start in stride(from: 0, to: jobs.count, by: Self.entriesPerCommand) {
            var arguments = [ns, Array(mode.utf8), Array(String(milliseconds).utf8)]
            for job in jobs[start..<min(start + Self.entriesPerCommand, jobs.count)] {
                arguments.append(Array(job.queue.utf8))
                arguments.append(Array(job.jsonText.utf8))
            }
            calls.append(([], arguments))
        }
        try await commands.run { [calls] connection throws(RedisError) in
            try connection.evaluatePipelined(RedisScripts.schedule, calls)
        }
    }

    public func makeFetcher(queues: [String], label: String, worker: String, terms: LeaseTerms) -> any JobFetcher {
        RedisJobFetcher(queues: queues, namespace: namespace, worker: worker, terms: terms, endpoint: endpoint,
                        timeout: timeout, label: label, control: commands)
    }

    public func complete(_ claim: ClaimedEntry, jobID: JobID) async throws -> Bool {
        try await completions.complete(token: claim.token, jobID: jobID.rawValue)
    }

    public func retry(_ claim: ClaimedEntry, as job: JobEnvelope, after delay: Duration) async throws -> Bool {
        let arguments = [ns, Array(claim.token.utf8), Array(String(delay.inMilliseconds).utf8), Array(job.queue.utf8),
                         Array(job.jsonText.utf8)]
        return try await commands.run { connection throws(RedisError) in
            try connection.evaluate(RedisScripts.retry, keys: [], arguments: arguments).integer(for: "retry") == 1
        }
    }

    public func requeueAtHead(_ claims: [ClaimedEntry], as entries: [Data]) async throws -> Int {
        guard !claims.isEmpty else { return 0 }
        var arguments = [ns]
        for (claim, entry) in zip(claims, entries) {
            arguments += [Array(claim.token.utf8), Array(claim.queue.utf8), [UInt8](entry)]
        }
        return try await commands.run { [arguments] connection throws(RedisError) in
            Int(try connection.evaluate(RedisScripts.requeue, keys: [], arguments: arguments).integer(for: "requeue"))
        }
    }

    public func deadLetter(_ record: DeadLetter, claim: ClaimedEntry?, maxDead: Int) async throws -> Bool {
        let arguments = [ns, Array((claim?.token ?? "").utf8), Array(record.id.rawValue.utf8), Array(record.jsonText.utf8),
                         Array(String(maxDead).utf8)]
        return try await commands.run { connection throws(RedisError) in
            try connection.evaluate(RedisScripts.deadLetter, keys: [], arguments: arguments).integer(for: "dead-letter") == 1
        }
    }

    public func heartbeat(_ worker: WorkerDescription, renewing tokens: [String], lease: Duration) async throws {
        let ttl = max(lease.inMilliseconds * 3, 3000)
        let arguments = [ns, Array(worker.id.utf8), Array(worker.jsonText.utf8), Array(String(ttl).utf8),
                         Array(String(lease.inMilliseconds).utf8)] + tokens.map { Array($0.utf8) }
        _ = try await commands.run { connection throws(RedisError) in
            try connection.evaluate(RedisScripts.heartbeat, keys: [], arguments: arguments)
        }
    }

    public func workerStopped(_ id: String) async throws {
        let commands = [["ZREM", "\(namespace):workers", id], ["DEL", "\(namespace):worker:\(id)"]].map { $0.map { Array($0.utf8) } }
        _ = try await self.commands.run { connection throws(RedisError) in try connection.pipeline(commands) }
    }

    public func recoverExpiredLeases(limit: Int, maxDead: Int) async throws -> RecoveryReport {
        let arguments = [ns, Array(String(limit).utf8), Array(String(maxDead).utf8)]
        return try await commands.run { connection throws(RedisError) in
            let reply = try connection.evaluate(RedisScripts.recover, keys: [], arguments: arguments).array(for: "recover") ?? []
            guard reply.count == 2 else { throw RedisError(code: .unexpectedReply, message: "expected two counts", command: "recover") }
            return RecoveryReport(recovered: Int(try reply[0].integer(for: "recover")), poisoned: Int(try reply[1].integer(for: "recover")))
        }
    }

    public func moveDueJobs(limit: Int) async throws -> (moved: Int, nextDue: Duration?) {
        let arguments = [ns, Array(String(limit).utf8)]
        return try await commands.run { connection throws(RedisError) in
            let reply = try connection.evaluate(RedisScripts.moveDue, keys: [], arguments: arguments).array(for: "move-due") ?? []
            guard reply.count == 2 else { throw RedisError(code: .unexpectedReply, message: "expected two numbers", command: "move-due") }
            let wait = try reply[1].integer(for: "move-due")
            return (Int(try reply[0].integer(for: "move-due")), wait < 0 ? nil : .milliseconds(wait))
        }
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
        let key = "\(namespace):dead"
        return try await commands.run { connection throws(RedisError) in
            Int(try connection.command(["ZCARD", key]).integer(for: "ZCARD"))
        }
    }

    /// Runs any command on the driver's connection (for tools and tests).
    public func command(_ arguments: [String]) async throws -> RedisReply {
        try await commands.run { connection throws(RedisError) in try connection.command(arguments) }
    }

    /// Splits entries into runs of the same queue of at most ``entriesPerCommand``.
    static func chunks(_ entries: [(queue: String, bytes: [UInt8])]) -> [(queue: String, entries: [[UInt8]])] {
        var chunks: [(queue: String, entries: [[UInt8]])] = []
        for entry in entries {
            if let last = chunks.last, last.queue == entry.queue, last.entries.count < entriesPerCommand {
                chunks[chunks.count - 1].entries.append(entry.bytes)
            } else {
                chunks.append((entry.queue, [entry.bytes]))
            }
        }
        return chunks
    }
}

/// Gathers completions from many jobs into one `complete` script call: while one call is on the
/// wire, the next ones queue up and go together.
final class CompletionBatcher: Sendable {
    private typealias Waiter = (token: String, jobID: String, continuation: CheckedContinuation<Bool, Error>)
    private let state = Mutex<(pending: [Waiter], flushing: Bool)>(([], false))
    private let thread: RedisConnectionThread
    private let namespace: [UInt8]

    init(thread: RedisConnectionThread, namespace: String) {
        self.thread = thread
        self.namespace = Array(namespace.utf8)
    }

    func complete(token: String, jobID: String) async throws -> Bool {
        try await withCheckedThrowingContinuation { continuation in
            let startFlush = state.withLock { state -> Bool in
                state.pending.append((token, jobID, continuation))
                if state.flushing { return false }
                state.flushing = true
                return true
            }
            if startFlush { thread.submit { [self] session in flush(session) } }
        }
    }

    private func flush(_ session: RedisConnectionThread.Session) {
        while true {
            let batch = state.withLock { state -> [Waiter] in
                let batch = Array(state.pending.prefix(RedisQueueDriver.entriesPerCommand))
                state.pending.removeFirst(batch.count)
                if batch.isEmpty { state.flushing = false }
                return batch
            }
            if batch.isEmpty { return }
            var arguments = [namespace]
            for waiter in batch {
                arguments.append(Array(waiter.token.utf8))
                arguments.append(Array(waiter.jobID.utf8))
            }
            do throws(RedisError) {
                let reply = try session.connection().evaluate(RedisScripts.complete, keys: [], arguments: arguments)
                let flags = try reply.array(for: "complete") ?? []
                for (index, waiter) in batch.enumerated() {
                    waiter.continuation.resume(returning: index < flags.count && flags[index] == .integer(1))
                }
            } catch {
                if error.closesConnection { session.drop() }
                for waiter in batch { waiter.continuation.resume(throwing: error) }
            }
        }
    }
}
