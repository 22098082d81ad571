import Foundation
import JobRouter

/// A dead-letter record as stored, with the time it was kept.
public struct StoredDeadLetter: Sendable, Equatable {
    /// The job id.
    public var id: String
    /// When it was dead-lettered.
    public var failedAt: Date
    /// The record's fields: `id`, `queue`, `type`, `attempt`, `reason`, `raw`.
    public var record: JSONValue

    /// The queue it came from.
    public var queue: String? { record["queue"]?.stringValue }
    /// Its job type, when known.
    public var type: String? { record["type"]?.stringValue }
    /// Why it was dead-lettered.
    public var reason: String? { record["reason"]?.stringValue }
    /// The entry as it was stored in its queue.
    public var raw: String? { record["raw"]?.stringValue }

    /// The record with `failed_at` added, as `dead list --json` prints it.
    public var jsonText: String {
        guard case .object(var fields) = record else { return record.jsonText }
        fields["failed_at"] = .string(Timestamp.format(failedAt))
        return JSONValue.object(fields).jsonText
    }
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
}

extension RedisQueueDriver {
    /// Dead records, newest first, optionally of one type, at most `limit`.
    public func deadLetters(type: String? = nil, limit: Int = 100) async throws -> [StoredDeadLetter] {
        let (index, records) = ("\(namespace):dead", "\(namespace):dead:jobs")
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
            let values = try connection.command(bytes: [Array("HMGET".utf8), Array(records.utf8)] + ids).array(for: "HMGET") ?? []
            var result: [StoredDeadLetter] = []
            for (offset, value) in values.enumerated() {
                guard case .string(let bytes) = value, let record = try? JSONValue.parse(Data(bytes)) else { continue }
                result.append(StoredDeadLetter(id: String(decoding: ids[offset], as: UTF8.self),
                                               failedAt: Date(timeIntervalSince1970: scores[offset] / 1000), record: record))
            }
            return result
        }
        return Array(found.filter { type == nil || $0.type == type }.prefix(limit))
    }

    /// One dead record, or `nil` when there is none with that id.
    public func deadLetter(id: String) async throws -> StoredDeadLetter? {
        let (index, records) = ("\(namespace):dead", "\(namespace):dead:jobs")
        return try await commands.run { connection throws(RedisError) in
            guard case .string(let bytes) = try connection.command(["HGET", records, id]),
                  let record = try? JSONValue.parse(Data(bytes)) else { return nil }
            var failedAt = Date(timeIntervalSince1970: 0)
            if case .string(let score) = try connection.command(["ZSCORE", index, id]),
               let millis = Double(String(decoding: score, as: UTF8.self)) {
                failedAt = Date(timeIntervalSince1970: millis / 1000)
            }
            return StoredDeadLetter(id: id, failedAt: failedAt, record: record)
        }
    }

    /// Sends a dead job back to the tail of its queue with its attempts reset. Returns `false` when
    /// there is no such record (or another process retried it first).
    public func retryDeadLetter(_ dead: StoredDeadLetter) async throws -> Bool {
        guard let queue = dead.queue, let raw = dead.raw else { return false }
        var entry = Data(raw.utf8)
        if var job = try? JobEnvelope.decode(entry, queue: queue) {
            job.attempt = 1
            job.lastError = nil
            entry = Data(job.jsonText.utf8)
        }
        let arguments = [Array(namespace.utf8), Array(dead.id.utf8), Array(queue.utf8), [UInt8](entry)]
        return try await commands.run { connection throws(RedisError) in
            try connection.evaluate(RedisScripts.resurrect, keys: [], arguments: arguments).integer(for: "resurrect") == 1
        }
    }

    /// Deletes dead records kept before `date`; returns how many.
    public func purgeDeadLetters(before date: Date) async throws -> Int {
        let arguments = [Array(namespace.utf8), Array(String(Int64(date.timeIntervalSince1970 * 1000)).utf8)]
        return try await commands.run { connection throws(RedisError) in
            Int(try connection.evaluate(RedisScripts.purgeDead, keys: [], arguments: arguments).integer(for: "purge-dead"))
        }
    }

    /// Per-queue and per-worker figures, read in one atomic script.
    public func statistics(queues: [String]) async throws -> QueueStatistics {
        let arguments = [Array(namespace.utf8)]
        return try await commands.run { connection throws(RedisError) in
            let reply = try connection.evaluate(RedisScripts.stats, keys: queues, arguments: arguments).array(for: "stats") ?? []
            guard reply.count == 4 else { throw RedisError(code: .unexpectedReply, message: "expected four parts", command: "stats") }
            let now = Date(timeIntervalSince1970: Double(try reply[2].integer(for: "stats")) / 1000)
            var result = QueueStatistics(queues: [], workers: [], trimmedDead: Int(try reply[3].integer(for: "stats")))
            for row in try reply[0].array(for: "stats") ?? [] {
                guard let fields = try row.array(for: "stats"), fields.count == 6 else { continue }
                var age: Duration?
                if case .string(let head) = fields[2], let job = try? JSONValue.parse(Data(head)),
                   let text = job["enqueued_at"]?.stringValue, let enqueued = Timestamp.parse(text) {
                    age = .milliseconds(Int64(max(0, now.timeIntervalSince(enqueued)) * 1000))
                }
                result.queues.append(QueueStatistics.Queue(
                    name: String(decoding: try fields[0].bytes(for: "stats"), as: UTF8.self),
                    depth: Int(try fields[1].integer(for: "stats")), oldestAge: age,
                    inFlight: Int(try fields[3].integer(for: "stats")), scheduled: Int(try fields[4].integer(for: "stats")),
                    dead: Int(try fields[5].integer(for: "stats"))))
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
}
