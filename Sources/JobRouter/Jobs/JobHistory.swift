import FoundationEssentials

/// The durable history of jobs (the PostgreSQL ledger, `JobRouterPostgres.Ledger`), read by
/// tools that must not link libpq themselves (the web dashboard).
public protocol JobHistory: Sendable {
    /// Every attempt of job `id`, oldest first (empty when the history never saw it).
    func attempts(of id: String) async throws -> [JobAttempt]
    /// Attempts matching `filter`, newest first.
    func history(_ filter: JobAttemptFilter) async throws -> [JobAttempt]
    /// Per type, over attempts that ended in the last `since`.
    func stats(since: Duration) async throws -> [JobTypeStats]
}

/// One attempt of a job, as the ledger keeps it.
public struct JobAttempt: Sendable, Equatable {
    public var id: String
    public var type: String?
    public var priority: String?
    public var queue: String
    public var group: String?
    public var attempt: Int?
    public var outcome: String
    public var error: String?
    public var worker: String
    /// Times as ISO 8601 UTC text with milliseconds.
    public var enqueuedAt: String?
    /// When the attempt became due, for a job that waited for a time (see ``AttemptRecord/dueAt``).
    public var dueAt: String?
    public var startedAt: String?
    public var finishedAt: String
    /// Seconds from enqueue (or from ``dueAt``, when set) to start, and from start to end, when both
    /// ends are known.
    public var wait: Double?
    public var run: Double?

    /// Makes one.
    public init(id: String, type: String? = nil, priority: String? = nil, queue: String, group: String? = nil, attempt: Int? = nil,
                outcome: String, error: String? = nil, worker: String, enqueuedAt: String? = nil, dueAt: String? = nil, startedAt: String? = nil,
                finishedAt: String, wait: Double? = nil, run: Double? = nil) {
        self.id = id
        self.type = type
        self.priority = priority
        self.queue = queue
        self.group = group
        self.attempt = attempt
        self.outcome = outcome
        self.error = error
        self.worker = worker
        self.enqueuedAt = enqueuedAt
        self.dueAt = dueAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.wait = wait
        self.run = run
    }

    /// The attempt as a JSON object with the documented field names.
    public var json: JSONValue {
        func text(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }
        return .object([
            "id": .string(id), "type": text(type), "priority": text(priority), "queue": .string(queue),
            "group": text(group), "attempt": attempt.map { .integer(Int64($0)) } ?? .null, "outcome": .string(outcome),
            "error": text(error), "worker": .string(worker), "enqueued_at": text(enqueuedAt),
            "due_at": text(dueAt), "started_at": text(startedAt), "finished_at": .string(finishedAt),
        ])
    }
}

/// Which attempts ``JobHistory/history(_:)`` lists.
public struct JobAttemptFilter: Sendable, Equatable {
    public var type: String?
    public var outcome: String?
    public var queue: String?
    /// Only attempts that ended this recently.
    public var since: Duration?
    /// At most this many (newest first).
    public var limit = 50

    /// A filter that takes everything (the newest 50).
    public init(type: String? = nil, outcome: String? = nil, queue: String? = nil, since: Duration? = nil, limit: Int = 50) {
        self.type = type
        self.outcome = outcome
        self.queue = queue
        self.since = since
        self.limit = limit
    }
}

/// Figures for one job type over a period.
public struct JobTypeStats: Sendable, Equatable {
    public var type: String
    public var attempts: Int
    public var succeeded: Int
    /// Attempts that failed and were retried.
    public var retried: Int
    /// Attempts that ended dead (including malformed entries of this type).
    public var dead: Int
    /// p50, p95, p99 of wait (enqueued → started) and run time, in seconds (`nil` without data).
    public var wait: [Double?]
    public var run: [Double?]

    /// Makes one.
    public init(type: String, attempts: Int, succeeded: Int, retried: Int, dead: Int, wait: [Double?], run: [Double?]) {
        self.type = type
        self.attempts = attempts
        self.succeeded = succeeded
        self.retried = retried
        self.dead = dead
        self.wait = wait
        self.run = run
    }

    /// The figures as a JSON object.
    public var json: JSONValue {
        func list(_ values: [Double?]) -> JSONValue {
            .object(zip(["p50", "p95", "p99"], values).reduce(into: [:]) { $0[$1.0] = $1.1.map(JSONValue.number) ?? .null })
        }
        return .object([
            "type": .string(type), "attempts": .integer(Int64(attempts)), "succeeded": .integer(Int64(succeeded)),
            "retried": .integer(Int64(retried)), "dead": .integer(Int64(dead)), "wait_seconds": list(wait),
            "run_seconds": list(run),
        ])
    }
}
