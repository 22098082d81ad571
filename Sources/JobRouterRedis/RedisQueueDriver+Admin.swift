import FoundationEssentials
import JobRouter
import Logging

/// A dead-letter record as stored, with the time it was kept.
public struct StoredDeadLetter: Sendable, Equatable {
    /// The record's key in the store: the job id, or `id~N` when an earlier record had that id.
    public var id: String
    /// When it was dead-lettered.
    public var failedAt: Date
    /// The record's fields: `id`, `queue`, `type`, `attempt`, `reason`.
    public var record: JSONValue
    /// The entry's exact bytes as stored in its queue.
    public var rawBytes: Data?

    /// The job id (which several records may share).
    public var jobID: String { record["id"]?.stringValue ?? id }

    /// The queue it came from.
    public var queue: String? { record["queue"]?.stringValue }
    /// Its job type, when known.
    public var type: String? { record["type"]?.stringValue }
    /// Why it was dead-lettered.
    public var reason: String? { record["reason"]?.stringValue }
    /// The entry as text, when its bytes are valid UTF-8.
    public var raw: String? { rawBytes.flatMap { String(validating: $0, as: UTF8.self) } }

    /// The record with `key`, `failed_at` and the entry added (as `raw`, or as `raw_base64` when its
    /// bytes are not UTF-8), as `dead list --json` prints it.
    public var jsonText: String {
        guard case .object(var fields) = record else { return record.jsonText }
        fields["key"] = .string(id)
        fields["failed_at"] = .string(Timestamp.format(failedAt))
        if let raw {
            fields["raw"] = .string(raw)
        } else if let rawBytes {
            fields["raw_base64"] = .string(rawBytes.base64EncodedString())
        }
        return JSONValue.object(fields).jsonText
    }
}

/// A job waiting in the schedule (delayed, or a retry waiting for its backoff).
public struct ScheduledJob: Sendable, Equatable {
    /// The queue it goes to when due.
    public var queue: String
    /// The entry as stored.
    public var entry: String
    /// When it is due, in milliseconds since the epoch.
    public var dueMilliseconds: Int64
}

/// A job found waiting: in a queue at `position` from the head, or scheduled (`dueMilliseconds`).
public struct WaitingJob: Sendable, Equatable {
    public var queue: String
    public var position: Int?
    public var dueMilliseconds: Int64?
    /// The entry as stored.
    public var entry: String
}

/// A job a worker runs now.
public struct RunningJob: Sendable, Equatable {
    /// Its claim.
    public var token: String
    public var queue: String
    /// The worker process running it.
    public var worker: String
    public var id: String
    /// The entry as stored.
    public var entry: String
}

/// Figures for `jobrouter status`.
public struct QueueStatistics: Sendable {
    /// One queue's figures.
    public struct Queue: Sendable {
        public var name: String
        public var depth: Int
        /// How long the job at the head has waited, when there is one and it says when it was enqueued.
        public var oldestAge: Duration?
        public var inFlight: Int
        public var scheduled: Int
        public var dead: Int
        /// Set when the queue's key cannot be read as a queue (it holds another type): why.
        public var broken: String?
    }

    /// One worker process seen through its heartbeats.
    public struct Worker: Sendable {
        public var id: String
        public var lastHeartbeat: Date
        /// Its own description (groups, in_flight, pid, started_at); `nil` once it has lapsed.
        public var description: JSONValue?
    }

    public var queues: [Queue]
    public var workers: [Worker]
    /// Dead records trimmed because `max_dead` was reached.
    public var trimmedDead: Int
    /// Dead records per job type (entries with no readable type are counted per queue only).
    public var deadByType: [String: Int] = [:]
}

extension RedisQueueDriver {
    /// Dead records, newest first, optionally of one type, at most `limit`; with `withEntries`
    /// false the entries' bytes (up to `max_payload` each) are not read.
    public func deadLetters(type: String? = nil, limit: Int = 100, withEntries: Bool = true) async throws -> [StoredDeadLetter] {
        if let cluster { return try await clusterDeadLetters(cluster, type: type, limit: limit, withEntries: withEntries) }
        let (index, records, raws) = ("\(namespace):dead", "\(namespace):dead:jobs", "\(namespace):dead:raw")
        // Without a type filter only `limit` ids are read; with one, all of them (max_dead bounds it).
        let stop = type == nil ? String(max(limit, 1) - 1) : "-1"
        let found: [StoredDeadLetter] = try await commands.run { connection throws(RedisError) in
            let listed = try connection.command(["ZREVRANGE", index, "0", stop, "WITHSCORES"]).array(for: "ZREVRANGE") ?? []
            guard !listed.isEmpty else { return [] }
            var ids: [[UInt8]] = []
            var scores: [Double] = []
            var position = 0
            while position + 1 < listed.count {
                ids.append(try listed[position].bytes(for: "ZREVRANGE"))
                scores.append(Double(String(decoding: try listed[position + 1].bytes(for: "ZREVRANGE"), as: UTF8.self)) ?? 0)
                position += 2
            }
            var commands = [[Array("HMGET".utf8), Array(records.utf8)] + ids]
            if withEntries { commands.append([Array("HMGET".utf8), Array(raws.utf8)] + ids) }
            let replies = try connection.pipeline(commands)
            let values = try replies[0].array(for: "HMGET") ?? []
            let rawValues = withEntries ? try replies[1].array(for: "HMGET") ?? [] : []
            var result: [StoredDeadLetter] = []
            for (offset, value) in values.enumerated() {
                guard case .string(let bytes) = value, let record = try? JSONValue.parse(Data(bytes)) else { continue }
                var raw: Data?
                if offset < rawValues.count, case .string(let rawBytes) = rawValues[offset] { raw = Data(rawBytes) }
                result.append(StoredDeadLetter(id: String(decoding: ids[offset], as: UTF8.self),
                                               failedAt: Date(timeIntervalSince1970: scores[offset] / 1000), record: record,
                                               rawBytes: raw ?? (withEntries ? Self.legacyRaw(record) : nil)))
            }
            return result
        }
        return Array(found.filter { type == nil || $0.type == type }.prefix(limit))
    }

    /// Records kept before the raw bytes moved beside them had the entry inside, as `raw`.
    private static func legacyRaw(_ record: JSONValue) -> Data? {
        record["raw"]?.stringValue.map { Data($0.utf8) }
    }

    /// One dead record by its key, or `nil` when there is none.
    public func deadLetter(id: String) async throws -> StoredDeadLetter? {
        if let cluster {
            for shard in cluster.all { if let dead = try await shard.deadLetter(id: id) { return dead } }
            return nil
        }
        let (index, records, raws) = ("\(namespace):dead", "\(namespace):dead:jobs", "\(namespace):dead:raw")
        return try await commands.run { connection throws(RedisError) in
            let replies = try connection.pipeline([["HGET", records, id], ["HGET", raws, id], ["ZSCORE", index, id]].map { $0.map { Array($0.utf8) } })
            guard case .string(let bytes) = replies[0], let record = try? JSONValue.parse(Data(bytes)) else { return nil }
            var failedAt = Date(timeIntervalSince1970: 0)
            if case .string(let score) = replies[2], let millis = Double(String(decoding: score, as: UTF8.self)) {
                failedAt = Date(timeIntervalSince1970: millis / 1000)
            }
            var raw = Self.legacyRaw(record)
            if case .string(let rawBytes) = replies[1] { raw = Data(rawBytes) }
            return StoredDeadLetter(id: id, failedAt: failedAt, record: record, rawBytes: raw)
        }
    }

    /// The job a dead record goes back as: routed again, its attempts reset, due now (its wait counts
    /// from being sent back; `enqueued_at` stays the job's own).
    func resurrection(of dead: StoredDeadLetter, router: Router) throws -> JobEnvelope {
        guard let raw = dead.rawBytes else {
            throw DeadLetterRetryError(key: dead.id, message: "the record keeps no entry to retry")
        }
        let job: JobEnvelope
        do {
            job = try JobEnvelope.decode(raw, queue: dead.queue ?? "")
        } catch {
            throw DeadLetterRetryError(key: dead.id, message: "the entry is not a job (\(error)); fix it with your own client")
        }
        var next = job
        do {
            let route = try router.route(type: job.type, priority: job.priority)
            next.queue = route.queue
            next.priority = route.priority
        } catch {
            throw DeadLetterRetryError(key: dead.id, message: "\(error)")
        }
        next.id = JobID(rawValue: dead.jobID)
        next.attempt = 1
        next.lastError = nil
        next.ratePermit = false
        next.dueAt = Date()
        return next
    }

    /// Sends a dead job back to the tail of the queue the current routing gives its type and
    /// priority (not necessarily the one it died in: `queues.toml` may have changed since), with
    /// its attempts reset. Returns `false` when the record is gone (another process retried it).
    /// Throws a ``DeadLetterRetryError`` when it cannot be routed: not a job, or a type or priority
    /// the configuration no longer has.
    public func retryDeadLetter(_ dead: StoredDeadLetter, router: Router) async throws -> Bool {
        if cluster != nil { return try await clusterRetryDeadLetter(dead, router: router) }
        let next = try resurrection(of: dead, router: router)
        // A unique job takes its lock again when it is free.
        let lock = uniqueKey(next).map { [Array($0.utf8), Array(next.id.rawValue.utf8), Array(String(next.unique?.lifetimeMilliseconds ?? 1).utf8)] } ?? []
        let arguments = [Array(namespace.utf8), Array(dead.id.utf8), Array(next.queue.utf8), Array(next.jsonText.utf8)] + lock
        return try await commands.run { connection throws(RedisError) in
            try connection.evaluate(RedisScripts.resurrect, keys: [], arguments: arguments).integer(for: "resurrect") == 1
        }
    }

    /// Deletes one dead record by its key; `false` when there was none (retried or deleted meanwhile).
    public func deleteDeadLetter(id: String) async throws -> Bool {
        if let cluster { return try await anyShard(cluster) { try await $0.deleteDeadLetter(id: id) } }
        let arguments = [Array(namespace.utf8), Array(id.utf8)]
        return try await commands.run { connection throws(RedisError) in
            try connection.evaluate(RedisScripts.forgetDead, keys: [], arguments: arguments).integer(for: "forget-dead") == 1
        }
    }

    /// Scheduled jobs (delayed and retries), soonest first: `limit` from `offset`, and how many there are.
    public func scheduledJobs(offset: Int, limit: Int) async throws -> (total: Int, jobs: [ScheduledJob]) {
        if let cluster { return try await clusterScheduled(cluster, offset: offset, limit: limit) }
        let key = "\(namespace):scheduled"
        let replies = try await pipeline([["ZCARD", key], ["ZRANGE", key, String(offset), String(offset + limit - 1), "WITHSCORES"]])
        let flat = replies.count > 1 ? replies[1].textValues : []
        var jobs: [ScheduledJob] = []
        var index = 0
        while index + 1 < flat.count {
            let member = flat[index]
            let due = Double(flat[index + 1]) ?? 0
            if let cut = member.firstIndex(of: "\n") {
                jobs.append(ScheduledJob(queue: String(member[..<cut]), entry: String(member[member.index(after: cut)...]), dueMilliseconds: Int64(due)))
            }
            index += 2
        }
        return (replies.first?.integerValue ?? 0, jobs)
    }

    /// Runs the scheduled job `id` due at `dueMilliseconds` now (`run`), or deletes it; `false`
    /// when it is no longer scheduled then (it became due, or someone else acted first).
    public func actOnScheduled(id: String, dueMilliseconds: Int64, run: Bool) async throws -> Bool {
        if let cluster { return try await anyShard(cluster) { try await $0.actOnScheduled(id: id, dueMilliseconds: dueMilliseconds, run: run) } }
        let arguments = [Array(namespace.utf8), Array(String(dueMilliseconds).utf8), Array(id.utf8), Array((run ? "run" : "delete").utf8)]
        return try await commands.run { connection throws(RedisError) in
            try connection.evaluate(RedisScripts.scheduledAction, keys: [], arguments: arguments).integer(for: "scheduled-action") == 1
        }
    }

    /// Jobs running now (at most `limit`, read with one `HSCAN`): claim token, worker, queue, entry.
    public func runningJobs(limit: Int) async throws -> [RunningJob] {
        if let cluster {
            var all: [RunningJob] = []
            for shard in cluster.all { all += try await shard.runningJobs(limit: limit) }
            return Array(all.prefix(limit))
        }
        let reply = try await command(["HSCAN", "\(namespace):inflight", "0", "COUNT", String(limit)])
        guard case .array(let parts) = reply, parts.count == 2 else { return [] }
        let flat = parts[1].textValues
        var jobs: [RunningJob] = []
        var index = 0
        while index + 1 < flat.count, jobs.count < limit {
            // `\t queue \n worker \n max_recoveries \n id \n entry` (the tab marks the layout).
            let fields = flat[index + 1].split(separator: "\n", maxSplits: 4, omittingEmptySubsequences: false)
            if flat[index + 1].hasPrefix("\t"), fields.count == 5 {
                jobs.append(RunningJob(token: flat[index], queue: String(fields[0].dropFirst()), worker: String(fields[1]),
                                       id: String(fields[3]), entry: String(fields[4])))
            }
            index += 2
        }
        return jobs
    }

    /// Where a waiting job is: in one of `queues` (at which position from the head) or in the
    /// schedule (due when), looking at most at the first `limit` entries of each; `nil` when not
    /// found there.
    public func locateWaiting(id: String, queues: [String], limit: Int = 10_000) async throws -> WaitingJob? {
        if let cluster {
            for group in try byShard(queues, queue: { $0 }) {
                if let found = try await group.shard.locateWaiting(id: id, queues: group.items, limit: limit) { return found }
            }
            for shard in cluster.all { if let found = try await shard.locateWaiting(id: id, queues: [], limit: limit) { return found } }
            return nil
        }
        let arguments = [Array(namespace.utf8), Array(id.utf8), Array(String(limit).utf8)]
        let reply = try await commands.run { connection throws(RedisError) in
            try connection.evaluate(RedisScripts.locate, keys: queues, arguments: arguments)
        }
        let parts = reply.textValues
        guard parts.count == 4, let number = Int64(parts[2].split(separator: ".").first ?? "") else { return nil }
        return parts[0] == "queue" ? WaitingJob(queue: parts[1], position: Int(number), dueMilliseconds: nil, entry: parts[3])
            : WaitingJob(queue: parts[1], position: nil, dueMilliseconds: number, entry: parts[3])
    }

    /// Runs commands in one round trip on the driver's connection (for read-only views).
    public func pipeline(_ commands: [[String]]) async throws -> [RedisReply] {
        if cluster != nil, let key = commands.first?.dropFirst().first, case let shard = shard(forKey: key), shard !== self {
            return try await shard.pipeline(commands)
        }
        let bytes = commands.map { $0.map { Array($0.utf8) } }
        return try await self.commands.run { connection throws(RedisError) in try connection.pipeline(bytes) }
    }

    /// Deletes dead records kept before `date`, a bounded number per script call; returns how many.
    public func purgeDeadLetters(before date: Date) async throws -> Int {
        if let cluster {
            var total = 0
            for shard in cluster.all { total += try await shard.purgeDeadLetters(before: date) }
            return total
        }
        let arguments = [Array(namespace.utf8), Array(String(Self.milliseconds(since1970: date)).utf8), Array("500".utf8)]
        var total = 0
        while true {
            let purged = try await commands.run { connection throws(RedisError) in
                Int(try connection.evaluate(RedisScripts.purgeDead, keys: [], arguments: arguments).integer(for: "purge-dead"))
            }
            total += purged
            if purged < 500 { return total }
        }
    }

    /// Milliseconds since the epoch, clamped to what Redis scores and Int64 can hold.
    static func milliseconds(since1970 date: Date) -> Int64 {
        let millis = date.timeIntervalSince1970 * 1000
        guard millis.isFinite else { return millis > 0 ? 1 << 52 : 0 }
        return Int64(min(max(millis, 0), Double(1 << 52)))
    }

    /// ``preflight(queues:)`` as a worker starts it: what retrying cannot fix throws; a server
    /// that cannot be reached now is only logged (the workers wait for it and say so once).
    public func preflightBeforeStart(queues: [String], logger: Logger) async throws(RedisError) {
        do {
            try await preflight(queues: queues)
        } catch let error as RedisError where error.isPermanent {
            throw error
        } catch {
            logger.warning("cannot check redis before starting (\(error)); starting anyway")
        }
    }

    /// Checks, before a worker starts, what retrying would never fix: the server accepts the
    /// credentials, lets this user run JobRouter's scripts, and every queue key is a list (or
    /// absent). Throws a one-line ``RedisError`` naming the problem; an unreachable server is
    /// not checked here (workers wait for it).
    public func preflight(queues: [String]) async throws {
        if let cluster {
            for shard in cluster.all { try await shard.preflight(queues: try byShard(queues, queue: { $0 }).first { $0.shard === shard }?.items ?? []) }
            return
        }
        let namespace = self.namespace
        try await commands.run { connection throws(RedisError) in
            _ = try connection.command(["PING"])
            // Runs the cheapest script end to end: needs the rights to load and run scripts.
            _ = try connection.evaluate(RedisScripts.stats, keys: [], arguments: [Array(namespace.utf8)])
            let replies = try connection.pipeline(queues.map { [Array("TYPE".utf8), Array($0.utf8)] })
            for (queue, reply) in zip(queues, replies) {
                if case .status(let kind) = reply, kind != "list", kind != "none" {
                    throw RedisError(code: .server, message: "WRONGTYPE queue key '\(queue)' holds a \(kind), not a list; rename or delete it",
                                     command: "TYPE", server: connection.endpoint.description)
                }
            }
        }
    }

    /// Per-queue and per-worker figures, read in one atomic script.
    public func statistics(queues: [String]) async throws -> QueueStatistics {
        if let cluster { return try await clusterStatistics(cluster, queues: queues) }
        let arguments = [Array(namespace.utf8)]
        return try await commands.run { connection throws(RedisError) in
            let reply = try connection.evaluate(RedisScripts.stats, keys: queues, arguments: arguments).array(for: "stats") ?? []
            guard reply.count == 5 else { throw RedisError(code: .unexpectedReply, message: "expected five parts", command: "stats") }
            let now = Date(timeIntervalSince1970: Double(try reply[2].integer(for: "stats")) / 1000)
            var result = QueueStatistics(queues: [], workers: [], trimmedDead: Int(try reply[3].integer(for: "stats")))
            for row in try reply[0].array(for: "stats") ?? [] {
                guard let fields = try row.array(for: "stats"), fields.count == 7 else { continue }
                let depth = Int(try fields[1].integer(for: "stats"))
                var age: Duration?
                var broken: String?
                if case .string(let head) = fields[2], depth < 0 {
                    broken = "the key holds a \(String(decoding: head, as: UTF8.self)), not a list"
                } else if let since = Self.waitingSince(due: fields[6], enqueued: fields[2]) {
                    age = Duration.saturating(seconds: max(0, now.timeIntervalSince(since)))
                }
                result.queues.append(QueueStatistics.Queue(
                    name: try fields[0].text(for: "stats"), depth: max(depth, 0), oldestAge: age,
                    inFlight: Int(try fields[3].integer(for: "stats")), scheduled: Int(try fields[4].integer(for: "stats")),
                    dead: Int(try fields[5].integer(for: "stats")), broken: broken))
            }
            let byType = try reply[4].array(for: "stats") ?? []
            var index = 0
            while index + 1 < byType.count {
                result.deadByType[try byType[index].text(for: "stats")] = Int(try byType[index + 1].text(for: "stats")) ?? 0
                index += 2
            }
            for row in try reply[1].array(for: "stats") ?? [] {
                guard let fields = try row.array(for: "stats"), fields.count >= 2 else { continue }
                let millis = Double(String(decoding: try fields[1].bytes(for: "stats"), as: UTF8.self)) ?? 0
                var description: JSONValue?
                if fields.count > 2, case .string(let text) = fields[2] { description = try? JSONValue.parse(Data(text)) }
                result.workers.append(QueueStatistics.Worker(
                    id: String(decoding: try fields[0].bytes(for: "stats"), as: UTF8.self),
                    lastHeartbeat: Date(timeIntervalSince1970: millis / 1000), description: description))
            }
            return result
        }
    }

    /// Since when a queue's head has waited, from its members as the stats script found them: its
    /// `due_at` (a delayed job, a retry, a cron tick), else its `enqueued_at`, as
    /// ``JobEnvelope/waitingSince`` reads them; `nil` when it says neither.
    static func waitingSince(due: RedisReply, enqueued: RedisReply) -> Date? {
        if case .string(let text) = due, let date = JobEnvelope.dueTime(String(decoding: text, as: UTF8.self)) { return date }
        guard case .string(let bytes) = enqueued else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        return Timestamp.parse(text) ?? Double(text).map(Date.init(timeIntervalSince1970:))
    }
}

/// A dead record that `dead retry` cannot send back.
public struct DeadLetterRetryError: Error, CustomStringConvertible, Sendable {
    /// The record's key.
    public var key: String
    /// Why.
    public var message: String
    public var description: String { "dead job \(key): \(message)" }
}
