import FoundationEssentials
import JobRouter
import Synchronization

/// The Redis backend: queues are Redis lists, pushed at the tail and claimed from the head.
///
/// Every change that must not be torn is one Lua script (see ``RedisScripts`` for the keys kept
/// under the namespace). Commands run on dedicated threads, never on Swift's cooperative pool: one
/// for this driver's own calls, one per fetcher, and one for heartbeats (lease renewal) and
/// interrupting fetchers, so those never wait behind a flood of acks. Needs Redis 6.2 or later.
/// With a Redis Cluster endpoint it routes each call to the shard of its queue's hash tag (see
/// ``JobRouter/ClusterLayout`` and `RedisQueueDriver+Cluster.swift`).
public final class RedisQueueDriver: JobQueueDriver {
    /// The server, without credentials.
    public let endpoint: RedisEndpoint
    /// The prefix of JobRouter's own keys.
    public let namespace: String
    /// Most attempt records kept for the ledger before the oldest are dropped (and counted).
    public let ledgerBuffer: Int
    private let timeout: Duration
    let commands: RedisConnectionThread
    /// Heartbeats, lease renewal and `CLIENT UNBLOCK`: latency-sensitive, never behind bulk work.
    let control: RedisConnectionThread
    private let completions: CompletionBatcher

    /// The shards of a cluster (``RedisEndpoint/cluster`` without a slot); `nil` otherwise.
    let cluster: ClusterShards?
    private let replicationState: SharedReplication

    /// Connects lazily to `endpoint`; `timeout` bounds connecting and each command.
    ///
    /// With a cluster endpoint, this driver keeps the keys no queue owns under `NAMESPACE:{global}`
    /// and reaches each queue's keys through the shard of its hash tag (made for `clusterTags` now,
    /// for other tags on first use).
    public convenience init(endpoint: RedisEndpoint, namespace: String = "jobrouter", timeout: Duration = .seconds(10),
                            ledgerBuffer: Int = 1_000_000, clusterTags: [String] = []) {
        self.init(endpoint: endpoint, namespace: namespace, timeout: timeout, ledgerBuffer: ledgerBuffer, clusterTags: clusterTags,
                  replication: SharedReplication())
    }

    private init(endpoint: RedisEndpoint, namespace: String, timeout: Duration, ledgerBuffer: Int, clusterTags: [String],
                 replication: SharedReplication) {
        var endpoint = endpoint
        var namespace = namespace
        if let target = endpoint.cluster, target.slot == nil {
            let base = namespace
            let seeds = endpoint
            cluster = ClusterShards(tags: clusterTags.filter { $0 != ClusterLayout.globalTag }) { tag in
                var pinned = seeds
                pinned.cluster?.slot = ClusterLayout.slot(of: "{\(tag)}")
                return RedisQueueDriver(endpoint: pinned, namespace: ClusterLayout.namespace(base, tag: tag), timeout: timeout,
                                        ledgerBuffer: ledgerBuffer, clusterTags: [], replication: replication)
            }
            endpoint.cluster?.slot = ClusterLayout.slot(of: "{\(ClusterLayout.globalTag)}")
            namespace = ClusterLayout.namespace(base, tag: ClusterLayout.globalTag)
        } else {
            cluster = nil
        }
        self.endpoint = endpoint
        self.namespace = namespace
        self.timeout = timeout
        self.ledgerBuffer = max(ledgerBuffer, 1)
        self.replicationState = replication
        let commands = RedisConnectionThread(endpoint: endpoint, timeout: timeout, name: "jobrouter-redis")
        self.commands = commands
        self.control = RedisConnectionThread(endpoint: endpoint, timeout: timeout, name: "jobrouter-redis-control")
        self.completions = CompletionBatcher(thread: commands, namespace: namespace, ledgerBuffer: max(ledgerBuffer, 1))
    }

    /// Uses `configuration.redis`, with `JOBROUTER_REDIS_URL` from `environment` in place of the URL
    /// (and of `sentinels`) when set.
    public convenience init(configuration: RouterConfiguration, environment: [String: String] = ProcessInfo.processInfo.environment) throws(RedisError) {
        let endpoint = try Self.endpoint(configuration.redis, environment: environment)
        if endpoint.cluster != nil, configuration.redis.cluster.isEmpty, let problem = configuration.clusterLayoutProblem(forced: true) {
            throw RedisError(code: .connection, message: "JOBROUTER_REDIS_URL names a Redis Cluster, but \(problem)")
        }
        self.init(endpoint: endpoint, namespace: configuration.redis.namespace,
                  ledgerBuffer: configuration.postgres?.ledgerBuffer ?? 1_000_000, clusterTags: configuration.clusterTags(forced: endpoint.cluster != nil))
        if configuration.redis.waitReplicas > 0 {
            replication = Replication(replicas: configuration.redis.waitReplicas, timeout: configuration.redis.waitTimeout)
        }
    }

    /// The server `settings` name: `JOBROUTER_REDIS_URL` when set, else the sentinels (with
    /// `JOBROUTER_REDIS_PASSWORD` and the sentinels' password from `sentinel_password_env`), else `url`.
    public static func endpoint(_ settings: RedisSettings, environment: [String: String]) throws(RedisError) -> RedisEndpoint {
        func nonEmpty(_ name: String?) -> String? { name.flatMap { environment[$0] }.flatMap { $0.isEmpty ? nil : $0 } }
        var endpoint: RedisEndpoint
        if let url = nonEmpty("JOBROUTER_REDIS_URL") {
            endpoint = try RedisEndpoint(url: url)
        } else if !settings.cluster.isEmpty {
            let seeds = settings.cluster.compactMap { SentinelTarget.Address($0, defaultPort: 6379) }
            guard let first = seeds.first else { throw RedisError(code: .connection, message: "redis.cluster: no usable host:port") }
            endpoint = RedisEndpoint(host: first.host, port: first.port, cluster: ClusterTarget(seeds: seeds))
        } else if !settings.sentinels.isEmpty, let master = settings.master {
            let addresses = settings.sentinels.compactMap { SentinelTarget.Address($0, defaultPort: 26379) }
            guard let first = addresses.first else {
                throw RedisError(code: .connection, message: "redis.sentinels: no usable host:port")
            }
            endpoint = RedisEndpoint(host: first.host, port: first.port, database: settings.database,
                                     sentinel: SentinelTarget(sentinels: addresses, master: master))
        } else {
            endpoint = try RedisEndpoint(url: settings.url)
        }
        if endpoint.password == nil, let password = nonEmpty("JOBROUTER_REDIS_PASSWORD") { endpoint.password = password }
        if endpoint.sentinel != nil, let password = nonEmpty(settings.sentinelPasswordEnvironment) { endpoint.sentinel?.password = password }
        return endpoint
    }

    /// `[redis] wait_replicas`: enqueues are confirmed by this many replicas (`WAIT`) or fail.
    public struct Replication: Sendable, Equatable {
        /// Replicas that must confirm.
        public var replicas: Int
        /// How long to wait for them.
        public var timeout: Duration

        /// Makes terms.
        public init(replicas: Int, timeout: Duration) {
            self.replicas = replicas
            self.timeout = timeout
        }
    }

    /// When set, every enqueue (push, scheduled, unique, relayed) is followed by `WAIT` on the same
    /// connection and throws when fewer replicas confirmed it in time.
    /// In a cluster, the shards share it.
    public var replication: Replication? {
        get { replicationState.value.withLock { $0 } }
        set { replicationState.value.withLock { $0 = newValue } }
    }

    /// ``replication``, shared by a cluster driver and its shards.
    final class SharedReplication: Sendable {
        let value = Mutex<Replication?>(nil)
    }

    /// Waits for the replicas of ``replication`` on `connection` (after an enqueue's writes).
    func confirmReplicated(_ connection: RedisConnection) throws(RedisError) {
        guard let replication else { return }
        let confirmed = try connection.command(["WAIT", String(replication.replicas), String(max(replication.timeout.inMilliseconds, 1))])
            .integer(for: "WAIT")
        if confirmed < replication.replicas {
            throw RedisError(code: .server, message: "only \(confirmed) of \(replication.replicas) replica(s) confirmed the enqueue within \(replication.timeout.inMilliseconds) ms (wait_replicas): the primary has it, but a failover now could lose it; enqueue again to be sure (it may then exist twice)",
                             command: "WAIT", server: connection.endpoint.description)
        }
    }

    deinit {
        commands.stop()
        control.stop()
    }

    /// Most entries sent in one script call or command.
    static let entriesPerCommand = 1000

    private var ns: [UInt8] { Array(namespace.utf8) }

    /// The ledger bound and record arguments of a settle script: bound 0 and no record without one.
    private func ledgerArguments(_ attempt: AttemptRecord?) -> [[UInt8]] {
        guard let attempt else { return [Array("0".utf8), []] }
        return [Array(String(ledgerBuffer).utf8), attempt.jsonBytes]
    }

    /// How long a batch's progress marker is kept.
    static let batchProgressTTL: Duration = .seconds(7 * 24 * 3600)

    public func push(_ jobs: [JobEnvelope], progress: BatchProgress?, batch: String?) async throws {
        if let cluster { return try await clusterPush(cluster, jobs, progress: progress, batch: batch) }
        try await push(jobs, entries: jobs.map(\.jsonBytes), progress: progress, batch: batch)
    }

    public func push(_ jobs: [JobEnvelope], entries: [[UInt8]], progress: BatchProgress?, batch: String?) async throws {
        try await push(jobs[...], entries: entries, progress: progress, batch: batch)
    }

    public func push(_ jobs: ArraySlice<JobEnvelope>, entries: [[UInt8]], progress: BatchProgress?, batch: String?) async throws {
        if let cluster { return try await clusterPush(cluster, Array(jobs), progress: progress, batch: batch) }
        guard !jobs.isEmpty else { return }
        // Entries that are not one per job (a caller's mistake) are made again from the jobs.
        let entries = entries.count == jobs.count ? entries : jobs.map(\.jsonBytes)
        // One `push` script call per chunk of up to `entriesPerCommand` jobs, whichever queues they
        // go to: each job goes in with its wake-up token (and the batch's progress, the chunk's last
        // line), atomically; the calls are pipelined.
        let lines = progress?.lines ?? []
        // The progress key comes before a callback batch's hash in KEYS, so it is named whenever
        // there is a batch (nothing is written to it without progress lines).
        let progressKey = progress.map { "\(namespace):batch:\($0.batchID)" } ?? batch.map { "\(namespace):batch:\($0)" }
        let batchKeys = batch.map { [batchKey($0)] } ?? []
        let ttl = Array(String(Self.batchProgressTTL.inMilliseconds).utf8)
        var calls: [(keys: [String], arguments: [[UInt8]])] = []
        var offset = 0
        // By index: zipping would copy each job (a retain per field) to read its queue.
        for chunk in Self.chunks(zip(jobs.indices, entries.indices).map { (jobs[$0].queue, entries[$1]) }) {
            offset += chunk.count
            let line = lines.count >= offset ? Array(String(lines[offset - 1]).utf8) : []
            var arguments = [ns, line, ttl, Array(String(chunk.queues.count).utf8)]
            arguments += chunk.queues.map { Array(String($0.entries.count).utf8) }
            arguments.reserveCapacity(arguments.count + chunk.count)
            for queue in chunk.queues { arguments += queue.entries }
            calls.append((keys: chunk.queues.map(\.queue) + (progressKey.map { [$0] } ?? []) + batchKeys, arguments: arguments))
        }
        try await commands.run { [calls] connection throws(RedisError) in
            try connection.evaluatePipelined(RedisScripts.push, calls)
            try self.confirmReplicated(connection)
        }
    }

    public func batchProgress(_ id: String) async throws -> Int? {
        if let cluster { return try await clusterBatchProgress(cluster, id) }
        let key = "\(namespace):batch:\(id)"
        return try await commands.run { connection throws(RedisError) -> Int? in
            guard case .string(let bytes) = try connection.command(["GET", key]) else { return nil }
            return Int(String(decoding: bytes, as: UTF8.self))
        }
    }

    public func schedule(_ jobs: [JobEnvelope], at date: Date) async throws {
        if cluster != nil { return try await clusterSchedule(jobs, at: date, after: nil) }
        try await schedule(jobs, mode: "at", milliseconds: Self.milliseconds(since1970: date))
    }

    public func schedule(_ jobs: [JobEnvelope], after delay: Duration) async throws {
        if cluster != nil { return try await clusterSchedule(jobs, at: nil, after: delay) }
        try await schedule(jobs, mode: "in", milliseconds: delay.inMilliseconds)
    }

    private func schedule(_ jobs: [JobEnvelope], mode: String, milliseconds: Int64) async throws {
        guard !jobs.isEmpty else { return }
        var calls: [(keys: [String], arguments: [[UInt8]])] = []
        for start in stride(from: 0, to: jobs.count, by: Self.entriesPerCommand) {
            var arguments = [ns, Array(mode.utf8), Array(String(milliseconds).utf8)]
            for job in jobs[start..<min(start + Self.entriesPerCommand, jobs.count)] {
                arguments.append(Array(job.queue.utf8))
                arguments.append(job.jsonBytes)
            }
            calls.append(([], arguments))
        }
        try await commands.run { [calls] connection throws(RedisError) in
            try connection.evaluatePipelined(RedisScripts.schedule, calls)
            try self.confirmReplicated(connection)
        }
    }

    public func pushRelayed(_ jobs: [RelayedJob], window: Duration) async throws -> [Bool] {
        if cluster != nil { return try await clusterPushRelayed(jobs, window: window) }
        guard !jobs.isEmpty else { return [] }
        var calls: [(keys: [String], arguments: [[UInt8]])] = []
        for start in stride(from: 0, to: jobs.count, by: Self.entriesPerCommand) {
            var arguments = [ns, Array(String(window.inMilliseconds).utf8)]
            for relayed in jobs[start..<min(start + Self.entriesPerCommand, jobs.count)] {
                arguments.append(Array(relayed.key.utf8))
                arguments.append(Array(relayed.job.queue.utf8))
                arguments.append(Array(relayed.job.jsonText.utf8))
                arguments.append(relayed.job.dueAt.map { Array(String(Self.milliseconds(since1970: $0)).utf8) } ?? [])
                arguments.append(Array(relayed.job.id.rawValue.utf8))
                arguments.append(Array((uniqueKey(relayed.job) ?? "").utf8))
                arguments.append(Array(String(relayed.job.unique?.lifetimeMilliseconds ?? 0).utf8))
            }
            calls.append(([], arguments))
        }
        let replies = try await commands.run { [calls] connection throws(RedisError) in
            let replies = try calls.map { call throws(RedisError) in try connection.evaluate(RedisScripts.pushRelayed, keys: call.keys, arguments: call.arguments) }
            try self.confirmReplicated(connection)
            return replies
        }
        var pushed: [Bool] = []
        pushed.reserveCapacity(jobs.count)
        for reply in replies {
            for flag in try reply.array(for: "push-relayed") ?? [] { pushed.append(try flag.integer(for: "push-relayed") == 1) }
        }
        guard pushed.count == jobs.count else {
            throw RedisError(code: .unexpectedReply, message: "push-relayed answered for \(pushed.count) of \(jobs.count) jobs", command: "push-relayed")
        }
        return pushed
    }

    public func confirmRelayed(_ keys: [String]) async throws {
        if let cluster {
            for shard in cluster.all { try await shard.confirmRelayed(keys) }
            return
        }
        guard !keys.isEmpty else { return }
        let key = "\(namespace):relayed"
        let commands = stride(from: 0, to: keys.count, by: Self.entriesPerCommand).map { start in
            [Array("ZREM".utf8), Array(key.utf8)] + keys[start..<min(start + Self.entriesPerCommand, keys.count)].map { Array($0.utf8) }
        }
        _ = try await self.commands.run { connection throws(RedisError) in try connection.pipeline(commands) }
    }

    public func makeFetcher(queues: [String], label: String, worker: String, terms: LeaseTerms) -> any JobFetcher {
        makeFetcher(queues: queues, label: label, worker: worker, terms: terms, ownerLifetime: nil)
    }

    /// A fetcher whose lease owners last `ownerLifetime` (``RedisJobFetcher/ownerLifetime(lease:)``
    /// when `nil`).
    func makeFetcher(queues: [String], label: String, worker: String, terms: LeaseTerms, ownerLifetime: Duration?) -> RedisJobFetcher {
        if cluster != nil, let first = queues.first, let shard = try? shard(forQueue: first), shard !== self {
            return shard.makeFetcher(queues: queues, label: label, worker: worker, terms: terms, ownerLifetime: ownerLifetime)
        }
        return RedisJobFetcher(queues: queues, namespace: namespace, worker: worker, terms: terms, endpoint: endpoint,
                               timeout: timeout, label: label, control: control, ledgerBuffer: ledgerBuffer,
                               ownerLifetime: ownerLifetime)
    }

    public func complete(_ claim: ClaimedEntry, attempt: AttemptRecord?) async throws -> SettleResult {
        if cluster != nil { return try await shard(forQueue: claim.queue).complete(claim, attempt: attempt) }
        return try await completions.complete(token: claim.token, queue: claim.queue,
                                       record: attempt?.jsonBytes ?? [])
    }

    public func complete(_ claim: ClaimedEntry, attempt: AttemptRecord?,
                         settled: @escaping @Sendable (Result<SettleResult, any Error>) -> Void) {
        if cluster != nil {
            do {
                return try shard(forQueue: claim.queue).complete(claim, attempt: attempt, settled: settled)
            } catch {
                return settled(.failure(error))
            }
        }
        completions.complete(token: claim.token, queue: claim.queue,
                             record: attempt?.jsonBytes ?? []) { settled($0.mapError { $0 }) }
    }

    public func retry(_ claim: ClaimedEntry, as job: JobEnvelope, after delay: Duration, attempt: AttemptRecord?) async throws -> SettleResult {
        if cluster != nil { return try await clusterRetry(claim, as: job, after: delay, attempt: attempt) }
        let arguments = [ns, Array(claim.token.utf8), Array(claim.queue.utf8), Array(String(delay.inMilliseconds).utf8),
                         Array(job.queue.utf8), Array(job.jsonText.utf8)] + ledgerArguments(attempt)
        return try await commands.run { connection throws(RedisError) in
            Self.settleResult(try connection.evaluate(RedisScripts.retry, keys: [], arguments: arguments).integer(for: "retry"))
        }
    }

    /// Reads a settle script's answer: 1 applied, 0 lost, 2 already settled.
    static func settleResult(_ code: Int64) -> SettleResult {
        switch code {
        case 1: return .applied
        case 0: return .lost
        default: return .alreadySettled
        }
    }

    public func requeueAtHead(_ claims: [ClaimedEntry], as entries: [Data], attempts: [AttemptRecord]) async throws -> Int {
        if cluster != nil { return try await clusterRequeue(claims, as: entries, attempts: attempts) }
        guard !claims.isEmpty else { return 0 }
        var arguments = [ns, Array(String(attempts.isEmpty ? 0 : ledgerBuffer).utf8)]
        for (index, (claim, entry)) in zip(claims, entries).enumerated() {
            let record = index < attempts.count ? attempts[index].jsonBytes : []
            arguments += [Array(claim.token.utf8), Array(claim.queue.utf8), [UInt8](entry), record]
        }
        return try await commands.run { [arguments] connection throws(RedisError) in
            Int(try connection.evaluate(RedisScripts.requeue, keys: [], arguments: arguments).integer(for: "requeue"))
        }
    }

    public func deadLetter(_ record: DeadLetter, claim: ClaimedEntry?, maxDead: Int, attempt: AttemptRecord?) async throws -> SettleResult {
        try await deadLetter(record, claim: claim, maxDead: maxDead, attempt: attempt, holding: nil)
    }

    public func deadLetter(_ record: DeadLetter, claim: ClaimedEntry?, maxDead: Int, attempt: AttemptRecord?,
                           holding job: JobEnvelope?) async throws -> SettleResult {
        if cluster != nil {
            return try await shard(forQueue: claim?.queue ?? record.queue).deadLetter(record, claim: claim, maxDead: maxDead, attempt: attempt, holding: job)
        }
        let lock = job.flatMap { $0.unique?.until == .done ? uniqueKey($0) : nil } ?? ""
        let arguments = [ns, Array((claim?.token ?? "").utf8), Array(record.queue.utf8), Array(record.id.rawValue.utf8),
                         Array((record.type ?? "").utf8), Array(record.jsonText.utf8), [UInt8](record.raw),
                         Array(String(maxDead).utf8)] + ledgerArguments(attempt) + [Array(lock.utf8), Array((job?.batch ?? "").utf8)]
        return try await commands.run { connection throws(RedisError) in
            let reply = try connection.evaluate(RedisScripts.deadLetter, keys: [], arguments: arguments).array(for: "dead-letter") ?? []
            guard let first = reply.first else {
                throw RedisError(code: .unexpectedReply, message: "expected a result", command: "dead-letter")
            }
            return Self.settleResult(try first.integer(for: "dead-letter"))
        }
    }

    public func heartbeat(_ worker: WorkerDescription, renewing tokens: [String], lease: Duration) async throws {
        if let cluster {
            // Claim tokens are numbered per shard: each group renews its own through its shard
            // (``shard(forQueues:)``); here the process is only said to be alive, everywhere.
            for shard in cluster.all { try await shard.heartbeat(worker, renewing: [], lease: lease) }
            return
        }
        let ttl = max(lease.inMilliseconds * 3, 3000)
        let arguments = [ns, Array(worker.id.utf8), Array(worker.jsonText.utf8), Array(String(ttl).utf8),
                         Array(String(lease.inMilliseconds).utf8)] + tokens.map { Array($0.utf8) }
        _ = try await control.run { connection throws(RedisError) in
            try connection.evaluate(RedisScripts.heartbeat, keys: [], arguments: arguments)
        }
    }

    public func workerStopped(_ id: String) async throws {
        if let cluster {
            for shard in cluster.all { try await shard.workerStopped(id) }
            return
        }
        let arguments = [ns, Array(id.utf8)]
        _ = try await control.run { connection throws(RedisError) in
            try connection.evaluate(RedisScripts.workerStopped, keys: [], arguments: arguments)
        }
    }

    public func recoverExpiredLeases(limit: Int, maxDead: Int, ledger: LedgerTerms?) async throws -> RecoveryReport {
        if let cluster {
            var report = RecoveryReport(recovered: [], poisoned: [])
            try await eachShard(cluster) { shard in
                let part = try await shard.recoverExpiredLeases(limit: limit, maxDead: maxDead, ledger: ledger)
                report.recoveredJobs += part.recoveredJobs
                report.poisonedJobs += part.poisonedJobs
            }
            return report
        }
        let arguments = [ns, Array(String(limit).utf8), Array(String(maxDead).utf8),
                         Array(String(ledger == nil ? 0 : ledgerBuffer).utf8), Array((ledger?.storePayload == true ? "1" : "0").utf8)]
        return try await commands.run { connection throws(RedisError) in
            let reply = try connection.evaluate(RedisScripts.recover, keys: [], arguments: arguments).array(for: "recover") ?? []
            guard reply.count == 2 else { throw RedisError(code: .unexpectedReply, message: "expected two lists", command: "recover") }
            func jobs(_ list: RedisReply) throws(RedisError) -> [RecoveryReport.Job] {
                let flat = try list.array(for: "recover") ?? []
                var jobs: [RecoveryReport.Job] = []
                var index = 0
                while index + 1 < flat.count {
                    jobs.append(RecoveryReport.Job(id: JobID(rawValue: try flat[index].text(for: "recover")),
                                                   queue: try flat[index + 1].text(for: "recover")))
                    index += 2
                }
                return jobs
            }
            return RecoveryReport(recovered: try jobs(reply[0]), poisoned: try jobs(reply[1]))
        }
    }

    public func moveDueJobs(limit: Int) async throws -> (moved: Int, nextDue: Duration?) {
        if let cluster {
            var moved = 0
            var next: Duration?
            try await eachShard(cluster) { shard in
                let part = try await shard.moveDueJobs(limit: limit)
                moved = max(moved, part.moved)
                if let due = part.nextDue { next = min(next ?? due, due) }
            }
            return (moved, next)
        }
        let arguments = [ns, Array(String(limit).utf8)]
        return try await commands.run { connection throws(RedisError) in
            let reply = try connection.evaluate(RedisScripts.moveDue, keys: [], arguments: arguments).array(for: "move-due") ?? []
            guard reply.count == 2 else { throw RedisError(code: .unexpectedReply, message: "expected two numbers", command: "move-due") }
            let wait = try reply[1].integer(for: "move-due")
            return (Int(try reply[0].integer(for: "move-due")), wait < 0 ? nil : .milliseconds(wait))
        }
    }

    public func depths(of queues: [String]) async throws -> [String: Int] {
        if cluster != nil { return try await perQueueShard(queues) { try await $0.depths(of: $1) } }
        let commands = queues.map { [Array("LLEN".utf8), Array($0.utf8)] }
        let replies = try await self.commands.run { connection throws(RedisError) in try connection.pipeline(commands) }
        var depths: [String: Int] = [:]
        for (queue, reply) in zip(queues, replies) {
            depths[queue] = Int(try reply.integer(for: "LLEN"))
        }
        return depths
    }

    public func deadLetterCount() async throws -> Int {
        if let cluster {
            var total = 0
            for shard in cluster.all { total += try await shard.deadLetterCount() }
            return total
        }
        let key = "\(namespace):dead"
        return try await commands.run { connection throws(RedisError) in
            Int(try connection.command(["ZCARD", key]).integer(for: "ZCARD"))
        }
    }

    /// How long a minute's throughput counts are kept after that minute.
    static let throughputRetention = 25 * 3600

    public func addThroughput(_ counts: [ThroughputCount]) async throws {
        let byMinute = Dictionary(grouping: counts, by: \.key.minute)
        let minutes = byMinute.keys.sorted()
        var arguments: [[UInt8]] = [Array(namespace.utf8), Array(String(Self.throughputRetention + 60).utf8)]
        for minute in minutes {
            let entries = byMinute[minute] ?? []
            arguments.append(Array(String(entries.count).utf8))
            for entry in entries {
                arguments.append(Array(entry.key.field.utf8))
                arguments.append(Array(String(entry.count).utf8))
            }
        }
        let keys = minutes.map { "\(namespace):throughput:\($0)" }
        try await commands.run { [arguments] connection throws(RedisError) in
            _ = try connection.evaluate(RedisScripts.addThroughput, keys: keys, arguments: arguments)
        }
    }

    public func throughput(minutes count: Int, now: Date = Date()) async throws -> ThroughputSeries {
        let last = ThroughputCount.minute(of: now)
        let minutes = Array((last - max(count, 1) + 1)...last)
        let keys = minutes.map { "\(namespace):throughput:\($0)" }
        return try await commands.run { connection throws(RedisError) in
            let reply = try connection.evaluate(RedisScripts.readThroughput, keys: keys, arguments: []).array(for: "throughput") ?? []
            var series = ThroughputSeries(minutes: minutes)
            for (minute, hash) in zip(minutes, reply) {
                let flat = try hash.array(for: "throughput") ?? []
                var fields: [(String, Int)] = []
                var index = 0
                while index + 1 < flat.count {
                    fields.append((try flat[index].text(for: "throughput"), Int(try flat[index + 1].text(for: "throughput")) ?? 0))
                    index += 2
                }
                series.add(minute: minute, fields: fields)
            }
            return series
        }
    }

    /// The shard that owns `queues` (one hash tag; checked by the configuration) in a cluster.
    public func shard(forQueues queues: [String]) -> any JobQueueDriver {
        guard cluster != nil, let first = queues.first, let shard = try? shard(forQueue: first) else { return self }
        return shard
    }

    /// Runs any command on the driver's connection (for tools and tests; in a cluster, on the
    /// shard of its first key's hash tag).
    public func command(_ arguments: [String]) async throws -> RedisReply {
        if cluster != nil, arguments.count > 1, case let shard = shard(forKey: arguments[1]), shard !== self { return try await shard.command(arguments) }
        return try await commands.run { connection throws(RedisError) in try connection.command(arguments) }
    }

    /// Runs any command given as raw bytes (binary-safe arguments) on the driver's connection.
    public func command(bytes arguments: [[UInt8]]) async throws -> RedisReply {
        try await commands.run { connection throws(RedisError) in try connection.command(bytes: arguments) }
    }

    /// Splits entries into runs of the same queue of at most ``entriesPerCommand``.
    /// Splits entries into chunks of at most ``entriesPerCommand`` in input order, and groups each
    /// chunk's entries by queue (queues in order of first appearance, entries in input order).
    static func chunks(_ entries: [(queue: String, bytes: [UInt8])]) -> [(queues: [(queue: String, entries: [[UInt8]])], count: Int)] {
        var chunks: [(queues: [(queue: String, entries: [[UInt8]])], count: Int)] = []
        for start in stride(from: 0, to: entries.count, by: entriesPerCommand) {
            var queues: [(queue: String, entries: [[UInt8]])] = []
            var index: [String: Int] = [:]
            let end = min(start + entriesPerCommand, entries.count)
            for entry in entries[start..<end] {
                if let at = index[entry.queue] {
                    queues[at].entries.append(entry.bytes)
                } else {
                    index[entry.queue] = queues.count
                    queues.append((entry.queue, [entry.bytes]))
                }
            }
            chunks.append((queues, end - start))
        }
        return chunks
    }
}

/// Gathers completions (acks) from many jobs into one `complete` script call: while one call is
/// on the wire, the next ones queue up and go together. Each ack's outcome goes to its callback,
/// so no task has to wait for it.
final class CompletionBatcher: Sendable {
    /// What becomes of an ack: the script's answer, or why it could not be sent.
    typealias Settled = @Sendable (Result<SettleResult, RedisError>) -> Void

    private struct Ack {
        let token: String
        let queue: String
        /// The attempt's ledger record; empty for none.
        let record: [UInt8]
        let settled: Settled
    }

    private let state = Mutex<(pending: [Ack], flushing: Bool)>(([], false))
    private let thread: RedisConnectionThread
    private let namespace: [UInt8]
    private let ledgerBound: [UInt8]

    init(thread: RedisConnectionThread, namespace: String, ledgerBuffer: Int) {
        self.thread = thread
        self.namespace = Array(namespace.utf8)
        self.ledgerBound = Array(String(ledgerBuffer).utf8)
    }

    /// Queues one ack; `record` (empty for none) is the attempt's ledger record. `settled` is
    /// called once, on the driver's thread, with the outcome.
    func complete(token: String, queue: String, record: [UInt8], settled: @escaping Settled) {
        let startFlush = state.withLock { state -> Bool in
            state.pending.append(Ack(token: token, queue: queue, record: record, settled: settled))
            if state.flushing { return false }
            state.flushing = true
            return true
        }
        if startFlush { scheduleFlush() }
    }

    /// Settles one claim in a call of its own, and waits for its outcome. This is how a settle is
    /// tried again after an error (its first try may have been applied, its reply lost): never
    /// sent with other claims, it is answered exactly (see ``RedisScripts/complete``).
    func complete(token: String, queue: String, record: [UInt8]) async throws -> SettleResult {
        let (sent, arguments) = call(for: [Ack(token: token, queue: queue, record: record, settled: { _ in })])
        return try await thread.run { connection throws(RedisError) in
            let reply = try connection.evaluate(RedisScripts.complete, keys: [], arguments: arguments)
            return try Self.results(reply, count: sent.count)[0]
        }
    }

    /// Queues one flush behind whatever the thread has queued already, so a steady stream of
    /// completions takes turns with other calls instead of holding the thread.
    private func scheduleFlush() {
        let accepted = thread.submit { [self] session in flush(session) }
        if !accepted {
            let acks = state.withLock { state -> [Ack] in
                defer { state.pending.removeAll(); state.flushing = false }
                return state.pending
            }
            let error = RedisError(code: .connection, message: "the driver is stopped", command: "complete")
            for ack in acks { ack.settled(.failure(error)) }
        }
    }

    private func flush(_ session: RedisConnectionThread.Session) {
        let batch = state.withLock { state -> [Ack] in
            let batch = Array(state.pending.prefix(RedisQueueDriver.entriesPerCommand))
            state.pending.removeFirst(batch.count)
            if batch.isEmpty { state.flushing = false }
            return batch
        }
        if batch.isEmpty { return }
        let (sent, arguments) = call(for: batch)
        do throws(RedisError) {
            let reply = try session.connection().evaluate(RedisScripts.complete, keys: [], arguments: arguments)
            for (ack, result) in zip(sent, try Self.results(reply, count: sent.count)) { ack.settled(.success(result)) }
        } catch {
            if error.closesConnection { session.drop() }
            for ack in batch { ack.settled(.failure(error)) }
        }
        // More arrived meanwhile: go again, after the calls queued behind this one.
        let more = state.withLock { state -> Bool in
            if state.pending.isEmpty { state.flushing = false }
            return state.flushing
        }
        if more { scheduleFlush() }
    }

    /// One `complete` call for `acks`: the claims grouped by queue (in that order, as returned),
    /// each as its token alone (and its record's length when any has a record): every argument is
    /// a string Redis and the script make and free. The records go as one argument (and their
    /// lengths as another), not one each.
    private func call(for acks: [Ack]) -> (sent: [Ack], arguments: [[UInt8]]) {
        var groups: [String: [Ack]] = [:]
        var order: [String] = []
        for ack in acks {
            if groups[ack.queue] == nil { order.append(ack.queue) }
            groups[ack.queue, default: []].append(ack)
        }
        let sent = order.flatMap { groups[$0] ?? [] }
        let withLengths = sent.contains { !$0.record.isEmpty }
        var lengths: [UInt8] = []
        var records: [UInt8] = []
        records.reserveCapacity(sent.reduce(0) { $0 + $1.record.count })
        var arguments = [namespace, ledgerBound, [], [], withLengths ? Array("2".utf8) : Array("1".utf8)]
        arguments.reserveCapacity(5 + order.count * 2 + sent.count * (withLengths ? 2 : 1))
        for queue in order {
            let acks = groups[queue] ?? []
            arguments.append(Array(queue.utf8))
            arguments.append(Array(String(acks.count).utf8))
            for ack in acks {
                arguments.append(Array(ack.token.utf8))
                guard withLengths else { continue }
                var length: [UInt8] = []
                AttemptRecord.appendDigits(UInt64(ack.record.count), to: &length)
                arguments.append(length)
                if !ack.record.isEmpty {
                    if !lengths.isEmpty { lengths.append(UInt8(ascii: ",")) }
                    lengths.append(contentsOf: length)
                    records.append(contentsOf: ack.record)
                }
            }
        }
        arguments[2] = lengths
        arguments[3] = records
        return (sent, arguments)
    }

    /// The script's answer for `count` claims: their number when every one was held (the usual
    /// call: all finished), otherwise a code each.
    private static func results(_ reply: RedisReply, count: Int) throws(RedisError) -> [SettleResult] {
        if case .integer(let finished) = reply, finished == count { return Array(repeating: .applied, count: count) }
        let codes = try reply.array(for: "complete") ?? []
        return (0..<count).map { index in
            guard index < codes.count, case .integer(let code) = codes[index] else { return .alreadySettled }
            return RedisQueueDriver.settleResult(code)
        }
    }
}
