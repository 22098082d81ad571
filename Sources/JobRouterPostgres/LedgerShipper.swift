import Foundation
import JobRouter
import Logging
import ServiceLifecycle
import Synchronization

/// Moves attempt records from the queue server's ``AttemptLog`` into the ledger table, in batches
/// (one binary `COPY` per round trip, see ``LedgerCopy``; a batch the copy does not take goes
/// through one multi-row `INSERT … ON CONFLICT DO NOTHING`), acknowledging them only after the
/// rows committed. Every `work` process runs one; they share the log's
/// consumer group, so each record is stored by one of them.
///
/// - A record stored twice (acknowledged late, reclaimed from a shipper that died after its
///   commit) is stored once: `(job_id, claim)` is the table's key.
/// - PostgreSQL away: records wait in the log (bounded by `[postgres] ledger_buffer`), jobs go on,
///   and the shipper retries with backoff, saying so once; it catches up when the server is back.
/// - A shipper that died holding records: another takes them over after ``reclaimIdle``.
/// - A record PostgreSQL refuses (bad data in a payload) is stored without its payload, saying why.
///
/// Also prunes rows older than `[postgres] retain`, in small batches, one process at a time.
public final class LedgerShipper: Service, Sendable {
    /// What the shipper has seen, for readiness and `status`.
    public struct State: Sendable, Equatable {
        /// Whether the last write to PostgreSQL worked (`true` until one failed).
        public var postgresReachable = true
        /// The last failure, while writes fail.
        public var lastError: String?
        /// Records stored by this shipper since it started.
        public var stored = 0
    }

    private let log: any AttemptLog
    private let pool: PostgresPool
    private let settings: PostgresSettings
    private let consumer: String
    private let logger: Logger
    private let batchSize: Int
    /// How long a record may sit unacknowledged with another consumer before this one takes it.
    public let reclaimIdle: Duration
    private let status = Mutex(State())
    /// Set once the schema was found up to date; cleared by any failure, so it is checked again.
    private let schemaChecked = Mutex(false)

    /// About the most records one insert takes: how many log entries are read at once is sized
    /// from the records per entry of the last read (a busy worker's settle calls carry dozens each),
    /// so a batch and its copies (the reply, the records, the `COPY` stream, libpq's buffer) stay
    /// a few MB; at 200 entries of ~60 records they held ~15 MB more of the process's memory.
    public static let recordsPerBatch = 4000

    /// How many log entries to read next, after a read of `records` records in `entries` entries:
    /// about ``recordsPerBatch`` records, at least one entry, at most `limit`.
    static func entriesToRead(afterReading records: Int, in entries: Int, limit: Int) -> Int {
        guard entries > 0, records > 0 else { return limit }
        let perEntry = max(1, records / entries)
        return min(limit, max(1, recordsPerBatch / perEntry))
    }

    /// How long the shipper lets records gather after a batch smaller than its limit: fewer,
    /// larger inserts cost PostgreSQL (on the same cores as the workers) far less per record.
    public static let gatherWindow: Duration = .milliseconds(250)
    private let finishing = Mutex<ContinuousClock.Instant?>(nil)

    /// How long, once asked to finish, the shipper keeps storing what is left before it stops
    /// (what it could not store stays in the log for the next shipper).
    public static let finishGrace: Duration = .seconds(10)

    /// A shipper reading `log` as `consumer` (the worker's id) and writing through `pool`, up to
    /// `batchSize` log entries (each the records of one settle call) and about
    /// ``recordsPerBatch`` records per insert.
    public init(log: any AttemptLog, pool: PostgresPool, settings: PostgresSettings, consumer: String, logger: Logger,
                batchSize: Int = 200, reclaimIdle: Duration = .seconds(60)) {
        self.log = log
        self.pool = pool
        self.settings = settings
        self.consumer = consumer
        self.logger = logger
        self.batchSize = max(batchSize, 1)
        self.reclaimIdle = reclaimIdle
    }

    /// What it has seen so far.
    public var state: State { status.withLock { $0 } }

    /// Asks the shipper to store what is left in the log (for up to ``finishGrace``) and stop.
    /// Call it once the workers of this process have stopped, so their last records are in.
    public func finish() {
        finishing.withLock { if $0 == nil { $0 = .now + Self.finishGrace } }
    }

    private var finishDeadline: ContinuousClock.Instant? { finishing.withLock { $0 } }

    /// Ships until ``finish()`` (or graceful shutdown, or cancellation).
    public func run() async {
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await loop()
            } onCancel: {
                self.finishing.withLock { $0 = .now }
            }
        } onGracefulShutdown: {
            self.finish()
        }
    }

    private func loop() async {
        let clock = ContinuousClock()
        var lastReclaim = clock.now - .seconds(3600)
        var nextPrune = clock.now + .seconds(5)
        var redisFailing = false
        var entriesToRead = batchSize
        while true {
            if let deadline = finishDeadline, clock.now >= deadline { return }
            var batch: [LoggedAttempt] = []
            do {
                if clock.now - lastReclaim >= reclaimIdle / 2 {
                    lastReclaim = clock.now
                    batch = try await log.reclaim(consumer: consumer, idle: reclaimIdle, max: entriesToRead)
                }
                if batch.isEmpty {
                    batch = try await log.read(consumer: consumer, max: entriesToRead,
                                               wait: finishDeadline == nil ? .seconds(1) : .milliseconds(50))
                }
                if redisFailing { logger.notice("ledger: reading attempt records from redis again") }
                redisFailing = false
            } catch {
                if !redisFailing { logger.warning("ledger: cannot read attempt records from redis (retrying): \(error)") }
                redisFailing = true
                if finishDeadline != nil { return }
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            if batch.isEmpty {
                if finishDeadline != nil { return }
                if clock.now >= nextPrune {
                    nextPrune = clock.now + (await prune() ? .seconds(600) : .seconds(30))
                }
                continue
            }
            guard await storeWithRetry(batch) else { return }
            await acknowledge(batch)
            let entries = Set(batch.map(\.id)).count
            let full = entries >= entriesToRead
            entriesToRead = Self.entriesToRead(afterReading: batch.count, in: entries, limit: batchSize)
            if !full, finishDeadline == nil {
                try? await Task.sleep(for: Self.gatherWindow)
            }
        }
    }

    /// Stores `batch`, retrying with backoff while PostgreSQL is away. `false`: gave up (finishing);
    /// the records stay in the log, unacknowledged, for the next shipper.
    private func storeWithRetry(_ batch: [LoggedAttempt]) async -> Bool {
        var delay: Duration = .milliseconds(500)
        while true {
            do {
                let stored = try await store(batch)
                let wasDown = status.withLock { state -> Bool in
                    defer { state.postgresReachable = true; state.lastError = nil; state.stored += stored }
                    return !state.postgresReachable
                }
                if wasDown { logger.notice("ledger: postgres \(pool.server) is back; storing attempt records again") }
                return true
            } catch {
                schemaChecked.withLock { $0 = false }
                let message = "\(error)"
                let first = status.withLock { state -> Bool in
                    defer { state.postgresReachable = false; state.lastError = message }
                    return state.postgresReachable
                }
                if first {
                    logger.error("ledger: cannot store attempt records (jobs go on; records wait in redis and are stored when this works again): \(message)")
                }
                if let deadline = finishDeadline, ContinuousClock.now + delay >= deadline { return false }
                try? await Task.sleep(for: delay)
                if Task.isCancelled { return false }
                delay = min(delay * 2, .seconds(15))
            }
        }
    }

    private func acknowledge(_ batch: [LoggedAttempt]) async {
        // Stored already: a failed acknowledgement only means these are delivered (and ignored) again.
        for _ in 0..<5 {
            do {
                try await log.acknowledge(batch.map(\.id))
                return
            } catch {
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        logger.warning("ledger: could not acknowledge \(batch.count) stored record(s); they will be delivered again and ignored")
    }

    /// Inserts the batch; returns how many records it held.
    private func store(_ batch: [LoggedAttempt]) async throws -> Int {
        let records = batch.map(\.record).filter { !$0.isEmpty }
        guard !records.isEmpty else { return 0 }
        let insert = LedgerSQL.insert(schema: settings.schema)
        let versionCheck = LedgerSQL.versionCheck(schema: settings.schema)
        let schema = settings.schema
        let ids = batch.filter { !$0.record.isEmpty }.map(\.id)
        let checkSchema = !schemaChecked.withLock { $0 }
        let copyStatement = LedgerCopy.statement(schema: schema)
        try await pool.withConnection { connection in
            // Until it was found up to date (and again after any failure): the table must exist (the schema may be behind if PostgreSQL was
            // away when `work` started and checked it).
            let version = checkSchema
                ? try connection.execute(prepared: "jobrouter_ledger_version", versionCheck, []).int("version") ?? 0
                : PostgresMigrator.latestVersion
            if version < PostgresMigrator.latestVersion {
                throw LedgerError(message: "the schema \(schema) is at version \(version), this JobRouter needs \(PostgresMigrator.latestVersion): run `jobrouter migrate`")
            }
            // The fast path (most batches): one binary COPY. A batch it does not take, or that
            // holds a record stored already (a unique violation), goes through the INSERT.
            // Encoded here, on the connection's own thread: a batch of a few thousand records
            // takes milliseconds of CPU, which Swift handlers on the cooperative pool should not
            // wait behind.
            if let stream = LedgerCopy.encode(records) {
                do {
                    try connection.copy(copyStatement, data: stream)
                    return
                } catch let error as PostgresError where error.refusesData || error.sqlState?.hasPrefix("23") == true {
                    // Class 23 (a key stored already) or 22 (data refused): the INSERT decides.
                }
            }
            do {
                try connection.execute(prepared: "jobrouter_ledger_insert", insert, [LedgerSQL.array(records)])
            } catch let error as PostgresError where error.refusesData {
                // One record PostgreSQL will not take must not hold back the rest: one by one, and
                // the ones refused again without what it refused.
                for (record, id) in zip(records, ids) {
                    do {
                        try connection.execute(prepared: "jobrouter_ledger_insert", insert, [LedgerSQL.array([record])])
                    } catch let error as PostgresError where error.refusesData {
                        let fallback = LedgerSQL.sanitized(record, streamID: id, refusal: error.message)
                        try connection.execute(prepared: "jobrouter_ledger_insert", insert, [LedgerSQL.array([fallback])])
                    }
                }
            }
        }
        schemaChecked.withLock { $0 = true }
        return records.count
    }

    /// Deletes rows older than `retain`, a few thousand at a time, if no other process is at it.
    /// Returns `true` when done (nothing older is left), `false` to come back soon.
    private func prune() async -> Bool {
        let schema = settings.schema
        let seconds = String(settings.retain.inMilliseconds / 1000)
        do {
            return try await pool.withConnection { connection in
                let key = "jobrouter-retain:\(schema)"
                guard try connection.query("SELECT pg_try_advisory_lock(hashtext($1)) AS locked", [key]).bool("locked") == true else {
                    return true
                }
                defer { _ = try? connection.query("SELECT pg_advisory_unlock(hashtext($1))", [key]) }
                for _ in 0..<50 {
                    let deleted = try connection.execute(prepared: "jobrouter_ledger_prune", LedgerSQL.prune(schema: schema), [seconds])
                    if (deleted.affected ?? 0) < LedgerSQL.pruneBatch { return true }
                }
                return false
            }
        } catch {
            logger.debug("ledger: pruning skipped: \(error)")
            return true
        }
    }
}

/// Why the ledger cannot be written.
public struct LedgerError: Error, CustomStringConvertible, Sendable {
    /// What is wrong, in one line.
    public var message: String
    public var description: String { message }
}

extension PostgresError {
    /// The server refused the values (class 22: bad JSON, a value out of range, a NUL in text).
    var refusesData: Bool { sqlState?.hasPrefix("22") == true }
}
