import Foundation
import JobRouter
import Logging
import Synchronization

/// Moves jobs enqueued in PostgreSQL (`{schema}.enqueue(...)`, or
/// ``PostgresConnection/enqueue(type:priority:payload:runAt:id:schema:)``) to Redis, so a job
/// exists exactly when the transaction that enqueued it committed.
///
/// One relay is active at a time across every process: the one holding a session advisory lock
/// (one per schema; another takes over within ``Settings/poll`` of its session ending). The active relay wakes on
/// `LISTEN {schema}_outbox` (the function notifies) or every ``Settings/poll``; takes committed
/// rows in order, `FOR UPDATE SKIP LOCKED`, up to ``Settings/batchSize`` at a time; routes each
/// through queues.toml exactly like `jobrouter enqueue`; pushes them (or schedules those with a
/// later `run_at`); and deletes the rows in the same transaction only after Redis confirmed.
///
/// - No double push: the push is idempotent by row (`NS:relayed`, see ``JobQueueDriver/pushRelayed(_:window:)``).
///   A relay that dies after the push and before its commit leaves the rows; the next relay
///   re-reads them, pushes nothing again, and deletes them. The rows' keys are forgotten once the
///   deletion commits, or after ``Settings/window`` (24 h): a relay kept from committing for
///   longer than that (PostgreSQL unreachable for a day in that exact window) would push again.
/// - No silent drop: a row that cannot be routed (unknown type or priority, over `max_payload`,
///   a payload that is not JSON) is not pushed; it stays in the table with `failed_at` and its
///   reason, and the ledger (when on) gets a `dead` attempt row for it.
/// - Redis or PostgreSQL down: rows wait; the relay logs once and retries with capped backoff.
public final class OutboxRelay: Sendable {
    /// How the relay works.
    public struct Settings: Sendable {
        /// Most rows per transaction.
        public var batchSize = 1000
        /// How often an idle relay looks without a notification, and a standby tries the lock.
        public var poll: Duration = .seconds(1)
        /// How long pushed-but-unconfirmed rows are remembered in Redis.
        public var window: Duration = .seconds(86_400)

        /// The defaults.
        public init() {}
    }

    /// What one pass moved.
    public struct Report: Sendable, Equatable {
        /// Rows pushed to Redis now.
        public var pushed = 0
        /// Rows found already pushed (by a relay that died before deleting them), deleted now.
        public var alreadyPushed = 0
        /// Rows kept with a reason instead of pushed.
        public var failed = 0

        /// Rows the pass handled.
        public var rows: Int { pushed + alreadyPushed + failed }
        /// The highest sequence number it read.
        var lastSeq: Int64 = 0

        /// Nothing moved.
        public init() {}
    }

    private let pool: PostgresPool
    private let driver: any JobQueueDriver
    private let router: Router
    private let maxPayload: Int
    /// The `unique` terms of the types that have them: relayed jobs take their locks too.
    private let uniqueTerms: [String: UniqueTerms]
    private let schema: String
    private let ledger: Bool
    private let settings: Settings
    private let logger: Logger
    private let name: String
    private let stopping = Atomic<Bool>(false)

    /// A relay for `configuration` (which must have `[postgres]`), pushing through `driver`. It
    /// owns one PostgreSQL connection (its session holds the lock and listens).
    public init(configuration: RouterConfiguration, driver: any JobQueueDriver, logger: Logger,
                settings: Settings = Settings(), environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard let postgres = configuration.postgres else {
            throw OutboxError(message: "the outbox needs a [postgres] table in the configuration")
        }
        self.name = "relay \(WorkerDescription.makeID())"
        self.pool = PostgresPool(settings: postgres, applicationName: "jobrouter \(name)", size: 1, environment: environment)
        self.driver = driver
        self.router = Router(configuration: configuration)
        self.maxPayload = configuration.maxPayload
        self.uniqueTerms = configuration.types.compactMapValues(\.unique)
        self.schema = postgres.schema
        self.ledger = postgres.ledger
        self.settings = settings
        self.logger = logger
    }

    /// The PostgreSQL server, without credentials.
    public var server: String { pool.server }

    private static let leaderMark = "outbox-relay"

    /// Relays until ``finish()``: waits for the lock, then moves rows as they commit.
    public func run() async {
        var failures = 0
        var activeSaid = false
        while !stopping.load(ordering: .relaxed) {
            do {
                guard try await lead() else {
                    activeSaid = false
                    try await pause(settings.poll)
                    continue
                }
                if !activeSaid {
                    logger.info("outbox: this process relays \(schema).outbox to redis")
                    activeSaid = true
                }
                var after: Int64 = 0
                while !stopping.load(ordering: .relaxed) {
                    let report = try await relayBatch(after: after)
                    after = report.lastSeq
                    if report.rows < settings.batchSize { break }
                }
                if failures > 0 {
                    logger.notice("outbox: relaying again after \(failures) failed attempt(s)")
                    failures = 0
                }
                // Until a commit notifies, or the poll is due; in slices, so finish() takes effect soon.
                let due = ContinuousClock.now + settings.poll
                while !stopping.load(ordering: .relaxed), ContinuousClock.now < due {
                    let slice = min(Self.slice, due - ContinuousClock.now)
                    let notified = try await pool.withConnection { connection in try connection.waitForNotifications(timeout: slice) }
                    if !notified.isEmpty { break }
                }
            } catch {
                failures += 1
                if failures == 1 { logger.warning("outbox: cannot relay (\(error)); rows wait in postgres, retrying") }
                try? await pause(min(Duration.seconds(10), .milliseconds(250) * (1 << min(failures - 1, 6))))
            }
        }
        let lockName = self.lockName
        try? await pool.withConnection { connection in
            if connection.sessionMarks.contains(Self.leaderMark) {
                try connection.query("SELECT pg_advisory_unlock(hashtextextended($1, 0))", [lockName])
                connection.sessionMarks.remove(Self.leaderMark)
            }
        }
    }

    /// Ends ``run()`` within about a quarter of a second.
    public func finish() {
        stopping.store(true, ordering: .relaxed)
    }

    /// How long ``run()`` waits at a time before it looks whether it should stop.
    static let slice: Duration = .milliseconds(250)

    /// Sleeps `duration` in slices, returning early once ``finish()`` was called.
    private func pause(_ duration: Duration) async throws {
        let end = ContinuousClock.now + duration
        while !stopping.load(ordering: .relaxed), ContinuousClock.now < end {
            try await Task.sleep(for: min(Self.slice, end - ContinuousClock.now))
        }
    }

    /// Waits for the lock (up to `timeout`), then relays until the table holds no pending row;
    /// returns what it moved. For `jobrouter relay --once` and tests.
    public func drain(timeout: Duration = .seconds(30)) async throws -> Report {
        let deadline = ContinuousClock.now + timeout
        while try await !lead() {
            guard ContinuousClock.now < deadline else {
                throw OutboxError(message: "another relay holds the outbox lock on \(pool.server); it relays these rows")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        var total = Report()
        var after: Int64 = 0
        while true {
            let report = try await relayBatch(after: after)
            after = report.lastSeq
            total.pushed += report.pushed
            total.alreadyPushed += report.alreadyPushed
            total.failed += report.failed
            if report.rows < settings.batchSize { return total }
        }
    }

    /// The advisory lock's name (hashed to its key): one per outbox, so per schema.
    private var lockName: String { "jobrouter outbox relay: \(schema)" }

    /// Whether this relay is the active one: takes the session lock (and starts listening) if free.
    private func lead() async throws -> Bool {
        let (channel, lockName) = ("\(schema)_outbox", self.lockName)
        return try await pool.withConnection { connection in
            if connection.sessionMarks.contains(Self.leaderMark) { return true }
            let got = try connection.query("SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS got", [lockName]).bool("got") ?? false
            guard got else { return false }
            try connection.query("LISTEN \"\(channel)\"")
            // The outbox fills in bursts and autovacuum may not have analyzed it yet: without
            // statistics PostgreSQL reads the whole table and sorts it for every batch (measured
            // 100,000 rows: 5.6 s instead of 1.7 s). This session only runs the relay's few
            // statements, all of which the primary key serves.
            try connection.query("SET enable_seqscan = off")
            try connection.query("SET enable_sort = off")
            connection.sessionMarks.insert(Self.leaderMark)
            return true
        }
    }

    /// One transaction: takes up to `batchSize` rows with a sequence number above `after`, pushes
    /// what routes, keeps the rest with their reasons, deletes what Redis confirmed, commits.
    ///
    /// Within one drain each batch starts after the last one (`after`): deleted rows leave dead
    /// index entries at the head of the table until vacuum, and scanning them again every batch
    /// made a long drain quadratic. Every wake-up starts again from the beginning, so a row whose
    /// transaction took its number early and committed late is relayed then (its commit notifies).
    func relayBatch(after: Int64 = 0, beforeCommit: (@Sendable () throws -> Void)? = nil) async throws -> Report {
        let (schema, limit, after) = (self.schema, settings.batchSize, after)
        let rows = try await pool.withConnection { connection -> [[String?]] in
            guard connection.sessionMarks.contains(Self.leaderMark) else { throw OutboxError(message: "the relay's session ended; taking the lock again") }
            try connection.query("BEGIN")
            do {
                return try connection.query("""
                    SELECT seq, id, type, priority, payload::text, extract(epoch FROM created_at)::text,
                           extract(epoch FROM run_at)::text
                    FROM \(schema).outbox WHERE seq > $2 AND failed_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED
                    """, [String(limit), String(after)]).rows
            } catch {
                _ = try? connection.query("ROLLBACK")
                throw error
            }
        }
        var relayed: [RelayedJob] = []
        var failed: [(seq: String, reason: String)] = []
        for row in rows {
            switch route(row) {
            case .success(let job): relayed.append(job)
            case .failure(let failure): failed.append((failure.seq, failure.reason))
            }
        }
        let pushed: [Bool]
        do {
            pushed = try await driver.pushRelayed(relayed, window: settings.window)
        } catch {
            _ = try? await pool.withConnection { connection in try connection.query("ROLLBACK") }
            throw error
        }
        let done = relayed.map(\.key)
        let (ledger, worker, kept) = (self.ledger, name, failed)
        try await pool.withConnection { connection in
            guard connection.sessionMarks.contains(Self.leaderMark) else {
                throw OutboxError(message: "the relay's session ended before its commit; the rows will be read again (and not pushed twice)")
            }
            do {
                try beforeCommit?()
                if !done.isEmpty {
                    try connection.query("DELETE FROM \(schema).outbox WHERE seq = ANY($1::bigint[])", ["{\(done.joined(separator: ","))}"])
                }
                if !kept.isEmpty {
                    let seqs = "{\(kept.map(\.seq).joined(separator: ","))}"
                    let reasons = Self.textArray(kept.map(\.reason))
                    try connection.query("""
                        UPDATE \(schema).outbox o SET failed_at = now(), error = f.error
                        FROM unnest($1::bigint[], $2::text[]) AS f(seq, error) WHERE o.seq = f.seq
                        """, [seqs, reasons])
                    if ledger {
                        try connection.query("""
                            INSERT INTO \(schema).attempts (job_id, claim, type, priority, queue, outcome, error, worker,
                                                           enqueued_at, finished_at, payload)
                            SELECT o.id, 'outbox:' || o.seq, o.type, o.priority, '', 'dead', o.error, $2, o.created_at, now(), o.payload
                            FROM \(schema).outbox o WHERE o.seq = ANY($1::bigint[])
                            ON CONFLICT DO NOTHING
                            """, [seqs, worker])
                    }
                }
                try connection.query("COMMIT")
            } catch {
                _ = try? connection.query("ROLLBACK")
                throw error
            }
        }
        // The rows are gone: their keys need not be remembered (if this fails, they expire).
        try? await driver.confirmRelayed(done)
        for (seq, reason) in failed {
            logger.error("outbox: row \(seq) kept, not relayed: \(LogEscaping.escape(reason))")
        }
        var report = Report()
        report.pushed = pushed.filter { $0 }.count
        report.alreadyPushed = pushed.count - report.pushed
        report.failed = failed.count
        report.lastSeq = rows.last.flatMap { $0[0] }.flatMap { Int64($0) } ?? after
        return report
    }

    /// The job a row stands for, or why it cannot be one. Columns: seq, id, type, priority,
    /// payload, created_at (epoch s), run_at (epoch s or NULL).
    private func route(_ row: [String?]) -> Result<RelayedJob, RowFailure> {
        let seq = row[0] ?? "?"
        let id = row[1] ?? ""
        let type = row[2] ?? ""
        func failure(_ reason: String) -> Result<RelayedJob, RowFailure> {
            .failure(RowFailure(seq: seq, reason: "job \(id): \(reason)"))
        }
        let route: Route
        do {
            route = try router.route(type: type, priority: row[3])
        } catch {
            return failure("\(error)")
        }
        let payload: JSONValue
        do {
            payload = try JSONValue.parse(Data((row[4] ?? "null").utf8))
        } catch {
            return failure("payload is not JSON this relay can read (\(error))")
        }
        let created = Date(timeIntervalSince1970: row[5].flatMap(Double.init) ?? Date().timeIntervalSince1970)
        var job = JobEnvelope(id: JobID(rawValue: id), type: type, priority: route.priority, queue: route.queue,
                              payload: payload, enqueuedAt: created)
        if let runAt = row[6].flatMap(Double.init) {
            let due = Date(timeIntervalSince1970: runAt)
            if due > created { job.dueAt = due }
        }
        if let terms = uniqueTerms[type] {
            do {
                job.unique = UniqueMark(key: try terms.key(for: payload, type: type), until: terms.until,
                                        lifetimeMilliseconds: max(terms.lifetime.inMilliseconds, 1))
            } catch {
                return failure(error.message)
            }
        }
        let size = job.jsonText.utf8.count
        if size > maxPayload {
            return failure("\(size) bytes as an entry, over max_payload (\(maxPayload) bytes)")
        }
        return .success(RelayedJob(key: seq, job: job))
    }

    private struct RowFailure: Error {
        var seq: String
        var reason: String
    }

    /// A PostgreSQL text[] literal: every element quoted, `"` and `\` escaped.
    static func textArray(_ values: [String]) -> String {
        "{" + values.map { value in
            "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }.joined(separator: ",") + "}"
    }
}

/// Something the outbox cannot do, said in one line.
public struct OutboxError: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    public var message: String
    public var description: String { message }
}

extension PostgresConnection {
    /// Enqueues a job through the outbox on this connection, inside the caller's transaction
    /// (`pool.withTransaction { try $0.enqueue(type: "email", payload: ["to": "a@x.org"]) }`):
    /// the job runs only if that transaction commits. The same row as `{schema}.enqueue(...)` in
    /// SQL. Returns the job's id (a new one in JobRouter's format unless `id` is given).
    @discardableResult
    public func enqueue(type: String, priority: String? = nil, payload: JSONValue = .null, runAt: Date? = nil,
                        id: String? = nil, schema: String = "jobrouter") throws -> String {
        let rows = try query("SELECT \(schema).enqueue($1, $2::jsonb, $3, to_timestamp($4::double precision), $5) AS id", [
            type, payload.jsonText, priority, runAt.map { String($0.timeIntervalSince1970) }, id,
        ])
        guard let jobID = rows.value("id") else {
            throw PostgresError(code: .unexpected, message: "\(schema).enqueue returned no id", server: server)
        }
        return jobID
    }
}
