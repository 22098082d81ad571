import FoundationEssentials
import JobRouter
import Synchronization

/// The shards of a Redis Cluster driver: one ``RedisQueueDriver`` per hash tag, each keeping its
/// keys under `NAMESPACE:{TAG}` and talking only to the primary that serves that tag's slot
/// (see ``JobRouter/ClusterLayout``). Made on first use, for any tag.
final class ClusterShards: Sendable {
    private let make: @Sendable (String) -> RedisQueueDriver
    private let made = Mutex<[String: RedisQueueDriver]>([:])
    /// Batch id → tag, for batches opened by this process.
    let batchTags = Mutex<[String: String]>([:])

    init(tags: [String], make: @escaping @Sendable (String) -> RedisQueueDriver) {
        self.make = make
        made.withLock { made in
            for tag in tags { made[tag] = make(tag) }
        }
    }

    /// The shard of `tag`.
    func shard(tag: some StringProtocol) -> RedisQueueDriver {
        made.withLock { made in
            if let shard = made[String(tag)] { return shard }
            let shard = make(String(tag))
            made[String(tag)] = shard
            return shard
        }
    }

    /// Every shard made so far (the configuration's tags at least), by tag.
    var all: [RedisQueueDriver] {
        made.withLock { made in made.keys.sorted().compactMap { made[$0] } }
    }
}

/// Redis Cluster: every call goes to the shard of the queue it is about; views add up every shard.
///
/// Steps that are one script on a single Redis stay one script when their keys share a tag. A few
/// cross tags and are then two steps, ordered so a crash between them runs a job twice rather than
/// never: a retry routed to a queue of another tag (scheduled there, then the claim released here),
/// a chain whose next job is in another tag (pushed there first), and a dead job retried into a
/// queue of another tag (pushed there, then the record deleted).
extension RedisQueueDriver {
    /// The driver that owns `queue`'s keys: its tag's shard in a cluster, else this driver.
    func shard(forQueue queue: String) throws(RedisError) -> RedisQueueDriver {
        guard let cluster else { return self }
        guard let tag = ClusterLayout.hashTag(of: queue) else {
            throw RedisError(code: .server, message: "queue '\(queue)' has no hash tag; in a Redis Cluster every queue name needs one ({tag}name)",
                             server: serverDescription)
        }
        return cluster.shard(tag: tag)
    }

    /// The server for messages and `status`: the endpoint, or `cluster SEEDS (N shards)`; no credentials.
    public var serverDescription: String {
        guard let cluster, let seeds = endpoint.cluster?.seeds else { return endpoint.description }
        return "cluster \(seeds.map(\.description).joined(separator: ",")) (\(cluster.all.count) shards by hash tag)"
    }

    /// Every driver that keeps keys: the shards in a cluster, else this one.
    public var shards: [RedisQueueDriver] { cluster?.all ?? [self] }

    /// The driver that owns a key (its hash tag's shard; this driver's home shard when it has none).
    func shard(forKey key: String?) -> RedisQueueDriver {
        guard let cluster, let key, let tag = ClusterLayout.hashTag(of: key), tag != ClusterLayout.globalTag else { return self }
        return cluster.shard(tag: tag)
    }

    /// `items` grouped by their queue's shard, keeping their order within each group.
    func byShard<Item>(_ items: [Item], queue: (Item) -> String) throws(RedisError) -> [(shard: RedisQueueDriver, items: [Item], indices: [Int])] {
        var groups: [(shard: RedisQueueDriver, items: [Item], indices: [Int])] = []
        var position: [ObjectIdentifier: Int] = [:]
        for (index, item) in items.enumerated() {
            let shard = try shard(forQueue: queue(item))
            let key = ObjectIdentifier(shard)
            if let at = position[key] {
                groups[at].items.append(item)
                groups[at].indices.append(index)
            } else {
                position[key] = groups.count
                groups.append((shard, [item], [index]))
            }
        }
        return groups
    }

    // MARK: enqueue

    func clusterPush(_ cluster: ClusterShards, _ jobs: [JobEnvelope], progress: BatchProgress?, batch: String?) async throws {
        if let batch {
            let shard = try await batchShard(cluster, batch)
            for job in jobs where try self.shard(forQueue: job.queue) !== shard {
                throw RedisError(code: .server, message: "batch \(batch): job \(job.id) goes to '\(job.queue)', but the batch's callback is in '\(shard.namespace)'; in a Redis Cluster a batch's jobs and its callback share one hash tag",
                                 server: serverDescription)
            }
            try await shard.push(jobs, progress: progress, batch: batch)
            return
        }
        guard let progress else {
            // Each shard's jobs in their order (jobs of different tags are in different queues).
            for group in try byShard(jobs, queue: \.queue) { try await group.shard.push(group.items, progress: nil, batch: nil) }
            return
        }
        // Runs of consecutive jobs of one tag, one after the other: each run's progress line is
        // written with its jobs, so the highest line found in any shard was reached by every run.
        var start = 0
        while start < jobs.count {
            let shard = try shard(forQueue: jobs[start].queue)
            var end = start + 1
            while end < jobs.count, try self.shard(forQueue: jobs[end].queue) === shard { end += 1 }
            let part = BatchProgress(batchID: progress.batchID, lines: Array(progress.lines[min(start, progress.lines.count)..<min(end, progress.lines.count)]))
            try await shard.push(Array(jobs[start..<end]), progress: part, batch: nil)
            start = end
        }
    }

    func batchShard(_ cluster: ClusterShards, _ batch: String) async throws -> RedisQueueDriver {
        if let tag = cluster.batchTags.withLock({ $0[batch] }) { return cluster.shard(tag: tag) }
        for shard in cluster.all {
            if case .integer(1) = try await shard.command(["EXISTS", shard.batchKey(batch)]) { return shard }
        }
        throw RedisError(code: .server, message: "batch \(batch) is not open in any shard of the cluster", server: serverDescription)
    }

    func clusterBatchProgress(_ cluster: ClusterShards, _ id: String) async throws -> Int? {
        var best: Int?
        for shard in cluster.all {
            if let line = try await shard.batchProgress(id) { best = max(best ?? line, line) }
        }
        return best
    }

    func clusterSchedule(_ jobs: [JobEnvelope], at date: Date?, after delay: Duration?) async throws {
        for group in try byShard(jobs, queue: \.queue) {
            if let date { try await group.shard.schedule(group.items, at: date) } else { try await group.shard.schedule(group.items, after: delay ?? .zero) }
        }
    }

    func clusterPushRelayed(_ jobs: [RelayedJob], window: Duration) async throws -> [Bool] {
        var pushed = [Bool](repeating: false, count: jobs.count)
        for group in try byShard(jobs, queue: \.job.queue) {
            for (index, flag) in zip(group.indices, try await group.shard.pushRelayed(group.items, window: window)) { pushed[index] = flag }
        }
        return pushed
    }

    // MARK: settling

    func clusterRetry(_ claim: ClaimedEntry, as job: JobEnvelope, after delay: Duration, attempt: AttemptRecord?) async throws -> SettleResult {
        let from = try shard(forQueue: claim.queue)
        let to = try shard(forQueue: job.queue)
        if from === to { return try await from.retry(claim, as: job, after: delay, attempt: attempt) }
        // Re-routed to another tag: scheduled there first, then the claim released here.
        try await to.schedule([job], after: delay)
        return try await from.complete(claim, attempt: attempt)
    }

    func clusterRequeue(_ claims: [ClaimedEntry], as entries: [Data], attempts: [AttemptRecord]) async throws -> Int {
        var total = 0
        for group in try byShard(claims, queue: \.queue) {
            let records = attempts.isEmpty ? [] : group.indices.compactMap { $0 < attempts.count ? attempts[$0] : nil }
            total += try await group.shard.requeueAtHead(group.items, as: group.indices.map { entries[$0] }, attempts: records)
        }
        return total
    }

    func clusterCompleteFlow(_ cluster: ClusterShards, _ claim: ClaimedEntry, attempt: AttemptRecord?, finishing job: JobEnvelope) async throws -> SettleResult {
        let shard = try shard(forQueue: claim.queue)
        var local = job
        var elsewhere: [JobEnvelope] = []
        let now = Date()
        local.then = []
        for step in job.then {
            if try self.shard(forQueue: step.queue) === shard { local.then.append(step) } else { elsewhere.append(step.envelope(now: now)) }
        }
        // The next jobs in other tags go first: a crash before the completion re-runs this job
        // (and pushes them again), it never loses them.
        if !elsewhere.isEmpty { try await clusterPush(cluster, elsewhere, progress: nil, batch: nil) }
        return try await shard.complete(claim, attempt: attempt, finishing: local)
    }

    // MARK: views

    func clusterStatistics(_ cluster: ClusterShards, queues: [String]) async throws -> QueueStatistics {
        var result = QueueStatistics(queues: [], workers: [], trimmedDead: 0)
        var rows: [String: QueueStatistics.Queue] = [:]
        var workers: [String: QueueStatistics.Worker] = [:]
        let groups = try byShard(queues) { $0 }
        var shards = groups.map(\.shard)
        for shard in cluster.all where !shards.contains(where: { $0 === shard }) { shards.append(shard) }
        for shard in shards {
            let part = try await shard.statistics(queues: groups.first { $0.shard === shard }?.items ?? [])
            for row in part.queues { rows[row.name] = row }
            for worker in part.workers where (workers[worker.id]?.lastHeartbeat ?? .distantPast) < worker.lastHeartbeat { workers[worker.id] = worker }
            result.trimmedDead += part.trimmedDead
            result.deadByType.merge(part.deadByType, uniquingKeysWith: +)
        }
        result.queues = queues.compactMap { rows[$0] }
        result.workers = workers.values.sorted { $0.id < $1.id }
        return result
    }

    func clusterDeadLetters(_ cluster: ClusterShards, type: String?, limit: Int, withEntries: Bool) async throws -> [StoredDeadLetter] {
        var all: [StoredDeadLetter] = []
        for shard in cluster.all { all += try await shard.deadLetters(type: type, limit: limit, withEntries: withEntries) }
        return Array(all.sorted { $0.failedAt > $1.failedAt }.prefix(limit))
    }

    func clusterRetryDeadLetter(_ dead: StoredDeadLetter, router: Router) async throws -> Bool {
        let home = try shard(forQueue: dead.queue ?? "")
        let next = try resurrection(of: dead, router: router)
        let target = try shard(forQueue: next.queue)
        if home === target { return try await home.retryDeadLetter(dead, router: router) }
        // Another tag: pushed there, then the record deleted here.
        try await target.push([next])
        return try await home.deleteDeadLetter(id: dead.id)
    }

    func clusterScheduled(_ cluster: ClusterShards, offset: Int, limit: Int) async throws -> (total: Int, jobs: [ScheduledJob]) {
        var total = 0
        var jobs: [ScheduledJob] = []
        for shard in cluster.all {
            let part = try await shard.scheduledJobs(offset: 0, limit: offset + limit)
            total += part.total
            jobs += part.jobs
        }
        return (total, Array(jobs.sorted { $0.dueMilliseconds < $1.dueMilliseconds }.dropFirst(offset).prefix(limit)))
    }

    /// `body` on every shard, each whatever the others did (a shard failing over does not hold
    /// back maintenance on the rest); throws the first failure once all have run.
    func eachShard(_ cluster: ClusterShards, _ body: (RedisQueueDriver) async throws -> Void) async throws {
        var failure: (any Error)?
        for shard in cluster.all {
            do { try await body(shard) } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }

    /// The first `true` of `body` over the shards, in order.
    func anyShard(_ cluster: ClusterShards, _ body: (RedisQueueDriver) async throws -> Bool) async throws -> Bool {
        for shard in cluster.all where try await body(shard) { return true }
        return false
    }

    /// `body`'s dictionaries over every shard, merged.
    func everyShard<Value>(_ cluster: ClusterShards, _ body: (RedisQueueDriver) async throws -> [String: Value],
                           merge: (Value, Value) -> Value) async throws -> [String: Value] {
        var out: [String: Value] = [:]
        for shard in cluster.all { out.merge(try await body(shard), uniquingKeysWith: merge) }
        return out
    }

    /// `body` over the shards of `queues`, merged.
    func perQueueShard<Value>(_ queues: [String], _ body: (RedisQueueDriver, [String]) async throws -> [String: Value]) async throws -> [String: Value] {
        var out: [String: Value] = [:]
        for group in try byShard(queues, queue: { $0 }) { out.merge(try await body(group.shard, group.items)) { first, _ in first } }
        return out
    }
}
