import FoundationEssentials
import JobRouter
import Synchronization

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
    /// How many records each entry handed out and not yet acknowledged holds, so acknowledging
    /// need not read the entries back.
    private let held = Mutex<[String: Int]>([:])

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
        let read = try await thread.run { connection throws(RedisError) -> Entries in
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
                  let parts = try first.array(for: "XREADGROUP"), parts.count == 2 else { return Entries() }
            return try Self.entries(parts[1], command: "XREADGROUP")
        }
        return taken(read)
    }

    public func reclaim(consumer: String, idle: Duration, max: Int) async throws -> [LoggedAttempt] {
        let command = ["XAUTOCLAIM", key, Self.group, consumer, String(idle.inMilliseconds), "0-0", "COUNT", String(max)]
        let (key, group) = (self.key, Self.group)
        let reclaimed = try await thread.run { connection throws(RedisError) -> Entries in
            let reply: RedisReply
            do throws(RedisError) {
                reply = try connection.command(command)
            } catch where error.code == .server && error.message.hasPrefix("NOGROUP") {
                try Self.createGroup(connection, key: key, group: group)
                return Entries()
            }
            // [next cursor, [[id, fields], …], [deleted ids]]
            guard let parts = try reply.array(for: "XAUTOCLAIM"), parts.count >= 2 else { return Entries() }
            return try Self.entries(parts[1], command: "XAUTOCLAIM")
        }
        return taken(reclaimed)
    }

    public func acknowledge(_ ids: [String]) async throws {
        // Records of one entry share its id: each entry once.
        var seen = Set<String>()
        let entries = ids.filter { seen.insert($0).inserted }
        guard !entries.isEmpty else { return }
        let keys = [key, recordsKey]
        // Each entry with its record count (-1: not known here, the script reads it).
        let counts = held.withLock { held in entries.map { held[$0] ?? -1 } }
        var arguments: [[UInt8]] = []
        arguments.reserveCapacity(entries.count * 2)
        for (entry, count) in zip(entries, counts) {
            arguments.append(Array(entry.utf8))
            arguments.append(Array(String(count).utf8))
        }
        _ = try await thread.run { [arguments] connection throws(RedisError) in
            try connection.evaluate(RedisScripts.acknowledgeAttempts, keys: keys, arguments: arguments)
        }
        held.withLock { held in for entry in entries { held[entry] = nil } }
    }

    /// What one read gave: the records, and each entry's record count.
    private struct Entries: Sendable {
        var attempts: [LoggedAttempt] = []
        var counts: [(id: String, records: Int)] = []
    }

    /// Notes the counts of the entries handed out; returns their records.
    private func taken(_ entries: Entries) -> [LoggedAttempt] {
        if !entries.counts.isEmpty {
            held.withLock { held in
                // Bounded: entries never acknowledged (their shipper gave up) are read again later.
                if held.count > 100_000 { held.removeAll() }
                for (id, records) in entries.counts { held[id] = records }
            }
        }
        return entries.attempts
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
    private static func entries(_ reply: RedisReply, command: String) throws(RedisError) -> Entries {
        var out = Entries()
        for item in try reply.array(for: command) ?? [] {
            guard let pair = try item.array(for: command), pair.count == 2 else { continue }
            let id = try pair[0].text(for: command)
            let fields = try pair[1].array(for: command) ?? []
            var records: [Data] = []
            var lengths: [UInt8] = []
            var count: Int?
            var index = 0
            while index + 1 < fields.count {
                switch try fields[index].text(for: command) {
                case "r": records.append(Data(try fields[index + 1].bytes(for: command)))
                case "L": lengths = try fields[index + 1].bytes(for: command)
                case "R": records += split(try fields[index + 1].bytes(for: command), lengths: lengths)
                case "n": count = Int(try fields[index + 1].text(for: command))
                default: break
                }
                index += 2
            }
            // What the script counted when it wrote the entry (entries from before field n: one
            // per field).
            out.counts.append((id, count ?? fields.count / 2))
            if records.isEmpty { records = [Data()] }
            for record in records { out.attempts.append(LoggedAttempt(id: id, record: record)) }
        }
        return out
    }

    /// Records sent back to back, cut at `lengths` (decimal, comma-separated): slices of one
    /// copy of `joined` (no allocation per record). Lengths that do not add up give the whole as
    /// one record, which the ledger then keeps as malformed rather than lose.
    static func split(_ joined: [UInt8], lengths: [UInt8]) -> [Data] {
        let whole = Data(joined)
        var records: [Data] = []
        var start = 0
        for length in lengths.split(separator: UInt8(ascii: ",")) {
            var count = 0
            for byte in length {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), count < Int32.max else { return [whole] }
                count = count * 10 + Int(byte - UInt8(ascii: "0"))
            }
            guard count > 0, start + count <= joined.count else { return [whole] }
            records.append(whole[start..<(start + count)])
            start += count
        }
        guard start == joined.count else { return [whole] }
        return records
    }
}
