import Foundation
import JobRouter

/// The attempt records the settle scripts append to `NS:events`, read through the consumer group
/// `ledger`: each record goes to one consumer; acknowledging deletes it (so the stream holds only
/// what is not stored yet, and its length is the ledger's backlog). A record a consumer took and
/// never acknowledged (its process died) is taken over with `XAUTOCLAIM` once idle long enough.
///
/// Reads block on the server (`XREADGROUP … BLOCK`), so the log has its own connection thread.
public final class RedisAttemptLog: AttemptLog {
    /// The stream's key.
    public let key: String
    /// The consumer group every ledger shipper reads through.
    public static let group = "ledger"
    private let droppedKey: String
    private let recordsKey: String
    private let thread: RedisConnectionThread

    /// A log on the server and namespace of `driver`, with a connection of its own.
    public init(driver: RedisQueueDriver, timeout: Duration = .seconds(10)) {
        key = "\(driver.namespace):events"
        droppedKey = "\(driver.namespace):events:dropped"
        recordsKey = "\(driver.namespace):events:records"
        // The socket timeout must outlast the longest blocking read.
        thread = RedisConnectionThread(endpoint: driver.endpoint, timeout: timeout + .seconds(5), name: "jobrouter-attempt-log")
    }

    deinit {
        thread.stop()
    }

    public func read(consumer: String, max: Int, wait: Duration) async throws -> [LoggedAttempt] {
        let command = ["XREADGROUP", "GROUP", Self.group, consumer, "COUNT", String(max), "BLOCK",
                       String(Swift.max(wait.inMilliseconds, 1)), "STREAMS", key, ">"]
        let (key, group) = (self.key, Self.group)
        return try await thread.run { connection throws(RedisError) -> [LoggedAttempt] in
            let reply: RedisReply
            do throws(RedisError) {
                reply = try connection.command(command)
            } catch where error.code == .server && error.message.hasPrefix("NOGROUP") {
                // First use (or the stream was deleted): make the group, reading from the start.
                try Self.createGroup(connection, key: key, group: group)
                reply = try connection.command(command)
            }
            // [[key, [[id, [field, value, …]], …]]] or nil when the wait ended empty.
            guard let streams = try reply.array(for: "XREADGROUP"), let first = streams.first,
                  let parts = try first.array(for: "XREADGROUP"), parts.count == 2 else { return [] }
            return try Self.entries(parts[1], command: "XREADGROUP")
        }
    }

    public func reclaim(consumer: String, idle: Duration, max: Int) async throws -> [LoggedAttempt] {
        let command = ["XAUTOCLAIM", key, Self.group, consumer, String(idle.inMilliseconds), "0-0", "COUNT", String(max)]
        let (key, group) = (self.key, Self.group)
        return try await thread.run { connection throws(RedisError) -> [LoggedAttempt] in
            let reply: RedisReply
            do throws(RedisError) {
                reply = try connection.command(command)
            } catch where error.code == .server && error.message.hasPrefix("NOGROUP") {
                try Self.createGroup(connection, key: key, group: group)
                return []
            }
            // [next cursor, [[id, fields], …], [deleted ids]]
            guard let parts = try reply.array(for: "XAUTOCLAIM"), parts.count >= 2 else { return [] }
            return try Self.entries(parts[1], command: "XAUTOCLAIM")
        }
    }

    public func acknowledge(_ ids: [String]) async throws {
        // Records of one entry share its id: each entry once.
        var seen = Set<String>()
        let entries = ids.filter { seen.insert($0).inserted }
        guard !entries.isEmpty else { return }
        let keys = [key, recordsKey]
        _ = try await thread.run { connection throws(RedisError) in
            try connection.evaluate(RedisScripts.acknowledgeAttempts, keys: keys, arguments: entries.map { Array($0.utf8) })
        }
    }

    public func backlog() async throws -> AttemptLogBacklog {
        let commands = [["GET", recordsKey], ["GET", droppedKey]].map { $0.map { Array($0.utf8) } }
        return try await thread.run { connection throws(RedisError) -> AttemptLogBacklog in
            let replies = try connection.pipeline(commands)
            func number(_ index: Int) -> Int {
                guard index < replies.count, case .string(let bytes) = replies[index] else { return 0 }
                return Int(String(decoding: bytes, as: UTF8.self)) ?? 0
            }
            return AttemptLogBacklog(waiting: number(0), dropped: number(1))
        }
    }

    /// The backlog of the logs of `drivers` (a cluster's shards), added up, read on their own
    /// connections (no log connection is opened).
    public static func backlog(over drivers: [RedisQueueDriver]) async throws -> AttemptLogBacklog {
        var total = AttemptLogBacklog(waiting: 0, dropped: 0)
        for driver in drivers {
            let replies = try await driver.pipeline([["GET", "\(driver.namespace):events:records"], ["GET", "\(driver.namespace):events:dropped"]])
            func number(_ index: Int) -> Int {
                guard index < replies.count, case .string(let bytes) = replies[index] else { return 0 }
                return Int(String(decoding: bytes, as: UTF8.self)) ?? 0
            }
            total.waiting += number(0)
            total.dropped += number(1)
        }
        return total
    }

    private static func createGroup(_ connection: RedisConnection, key: String, group: String) throws(RedisError) {
        do throws(RedisError) {
            _ = try connection.command(["XGROUP", "CREATE", key, group, "0", "MKSTREAM"])
        } catch where error.code == .server && error.message.hasPrefix("BUSYGROUP") {
            // Another process made it first.
        }
    }

    /// Reads `[[id, [field, value, …]], …]`: one ``LoggedAttempt`` per record (records of one
    /// entry share its id); an entry without records comes as one empty record (only to acknowledge).
    private static func entries(_ reply: RedisReply, command: String) throws(RedisError) -> [LoggedAttempt] {
        var out: [LoggedAttempt] = []
        for item in try reply.array(for: command) ?? [] {
            guard let pair = try item.array(for: command), pair.count == 2 else { continue }
            let id = try pair[0].text(for: command)
            let fields = try pair[1].array(for: command) ?? []
            var records: [Data] = []
            var index = 0
            while index + 1 < fields.count {
                if try fields[index].text(for: command) == "r" { records.append(Data(try fields[index + 1].bytes(for: command))) }
                index += 2
            }
            if records.isEmpty { records = [Data()] }
            for record in records { out.append(LoggedAttempt(id: id, record: record)) }
        }
        return out
    }
}
