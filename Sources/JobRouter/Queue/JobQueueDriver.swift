import Foundation

/// An entry exactly as it was taken from a queue.
public struct FetchedEntry: Sendable, Equatable {
    /// The queue (Redis list) it came from.
    public var queue: String
    /// Its bytes, which may not be a valid job at all.
    public var raw: Data

    /// Makes an entry.
    public init(queue: String, raw: Data) {
        self.queue = queue
        self.raw = raw
    }
}

/// A job, or an entry, that cannot run: kept with its reason instead of being dropped.
public struct DeadLetter: Sendable, Equatable {
    /// The job id, or a new one for an entry that had none.
    public var id: JobID
    /// The queue it was taken from.
    public var queue: String
    /// The job type, when the entry named one.
    public var type: String?
    /// Which run failed, when known.
    public var attempt: Int?
    /// Why it cannot run (one line, never a secret).
    public var reason: String
    /// The entry as it was stored, so it can be inspected and put back.
    public var raw: String
    /// When it was dead-lettered.
    public var failedAt: Date

    /// Makes a record.
    public init(id: JobID, queue: String, type: String?, attempt: Int?, reason: String, raw: String, failedAt: Date = Date()) {
        self.id = id
        self.queue = queue
        self.type = type
        self.attempt = attempt
        self.reason = reason
        self.raw = raw
        self.failedAt = failedAt
    }

    /// The JSON kept in the dead-letter store.
    public var jsonText: String {
        var fields: [String: JSONValue] = [
            "id": .string(id.rawValue), "queue": .string(queue), "reason": .string(reason),
            "raw": .string(raw), "failed_at": .string(Timestamp.format(failedAt)),
        ]
        if let type { fields["type"] = .string(type) }
        if let attempt { fields["attempt"] = .integer(Int64(attempt)) }
        return JSONValue.object(fields).jsonText
    }
}

/// The one place that talks to the queue server. Everything the router and the workers do to
/// stored jobs goes through here, so a backend is one type (``JobRouterRedis/RedisQueueDriver``).
///
/// Each call either happens completely or throws; none blocks Swift's cooperative thread pool.
public protocol JobQueueDriver: Sendable {
    /// Appends each job to the tail of its queue, in order, in as few round trips as possible.
    func push(_ jobs: [JobEnvelope]) async throws

    /// Puts entries back at the head of their queues so they are taken next; the first entry of
    /// `entries` that belongs to a queue ends up at that queue's head.
    func requeueAtHead(_ entries: [FetchedEntry]) async throws

    /// Keeps an entry that cannot run, with its reason.
    func deadLetter(_ record: DeadLetter) async throws

    /// A fetcher for one worker group: it owns its own connection, because waiting for work blocks it.
    func makeFetcher(queues: [String], label: String) -> any JobFetcher

    /// How many entries wait in each queue.
    func depths(of queues: [String]) async throws -> [String: Int]

    /// How many records the dead-letter store holds.
    func deadLetterCount() async throws -> Int
}

/// Takes entries from a group's queues in strict priority order.
public protocol JobFetcher: Sendable {
    /// Takes up to `max` entries, always from the earliest non-empty queue first. When every queue is
    /// empty, waits on the server up to `wait` for one to arrive (no polling), and then returns it,
    /// or returns nothing.
    func fetch(max: Int, wait: Duration) async throws -> [FetchedEntry]

    /// Makes a waiting ``fetch(max:wait:)`` return soon (with anything it already took).
    func interrupt()

    /// Releases the connection.
    func close() async
}
