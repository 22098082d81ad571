import Foundation
import JobRouter

/// Reads the ledger: every attempt of every job, kept in PostgreSQL after Redis has forgotten it.
public struct Ledger: JobHistory {
    /// One attempt, as the ledger keeps it.
    public typealias Attempt = JobAttempt
    /// Which attempts ``history(_:)`` lists.
    public typealias Filter = JobAttemptFilter
    /// Figures for one job type over a period.
    public typealias TypeStats = JobTypeStats

    private let pool: PostgresPool
    private let schema: String

    /// Reads the ledger in `schema` through `pool`.
    public init(pool: PostgresPool, schema: String = "jobrouter") {
        self.pool = pool
        self.schema = schema
    }

    private var columns: String {
        """
        job_id, type, priority, queue, worker_group, attempt, outcome, error, worker,
        \(Self.iso("enqueued_at")), \(Self.iso("started_at")), \(Self.iso("finished_at")),
        extract(epoch FROM started_at - \(Self.waitingSince)), extract(epoch FROM finished_at - started_at), \(Self.iso("due_at"))
        """
    }

    /// Since when an attempt waited to start: when it became due (a delay, a retry's backoff, a
    /// cron tick, a dead job sent back), else when its job was enqueued; as the worker's log line
    /// and the wait histogram count it.
    private static var waitingSince: String {
        "coalesce(due_at, enqueued_at)"
    }

    private static func iso(_ column: String) -> String {
        "to_char(\(column) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    }

    /// Every attempt of job `id`, oldest first (empty when the ledger never saw it).
    public func attempts(of id: String) async throws -> [Attempt] {
        let sql = "SELECT \(columns) FROM \(schema).attempts WHERE job_id = $1 ORDER BY finished_at, claim"
        let rows = try await reading { try $0.query(sql, [id]).rows }
        return rows.compactMap(Self.attempt)
    }

    /// Attempts matching `filter`, newest first.
    public func history(_ filter: Filter) async throws -> [Attempt] {
        var conditions: [String] = []
        var parameters: [String?] = []
        func add(_ column: String, _ value: String?) {
            guard let value else { return }
            parameters.append(value)
            conditions.append("\(column) = $\(parameters.count)")
        }
        add("type", filter.type)
        add("outcome", filter.outcome)
        add("queue", filter.queue)
        if let since = filter.since {
            parameters.append(String(since.inMilliseconds / 1000))
            conditions.append("finished_at >= now() - make_interval(secs => $\(parameters.count)::double precision)")
        }
        let condition = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let sql = "SELECT \(columns) FROM \(schema).attempts \(condition) ORDER BY finished_at DESC, claim DESC LIMIT \(max(1, filter.limit))"
        let rows = try await reading { [parameters] in try $0.query(sql, parameters).rows }
        return rows.compactMap(Self.attempt)
    }

    /// Per type, over attempts that ended in the last `since`: counts, and percentiles computed by PostgreSQL.
    public func stats(since: Duration) async throws -> [TypeStats] {
        let sql = """
            SELECT coalesce(type, '(unknown)'), count(*),
                   count(*) FILTER (WHERE outcome = 'succeeded'),
                   count(*) FILTER (WHERE outcome = 'failed'),
                   count(*) FILTER (WHERE outcome IN ('dead', 'malformed')),
                   percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - \(Self.waitingSince))),
                   percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
            FROM \(schema).attempts
            WHERE finished_at >= now() - make_interval(secs => $1::double precision)
            GROUP BY 1 ORDER BY 1
            """
        let rows = try await reading { try $0.query(sql, [String(since.inMilliseconds / 1000)]).rows }
        return rows.map { row in
            func int(_ index: Int) -> Int { row[index].flatMap { Int($0) } ?? 0 }
            return TypeStats(type: row[0] ?? "", attempts: int(1), succeeded: int(2), retried: int(3), dead: int(4),
                             wait: Self.doubles(row[5]), run: Self.doubles(row[6]))
        }
    }

    /// Runs a read. One PostgreSQL refuses for a column or table it does not have is reported as
    /// the schema being behind this JobRouter, when it is (a reader needs no `migrate` to start).
    private func reading<Result: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> Result) async throws -> Result {
        do {
            return try await pool.withConnection(body)
        } catch let error as PostgresError where error.sqlState == "42703" || error.sqlState == "42P01" {
            let sql = LedgerSQL.versionCheck(schema: schema)
            let version: Int?
            do {
                version = try await pool.withConnection { try $0.query(sql).int("version") }
            } catch let failure as PostgresError where failure.sqlState == "42P01" {
                version = 0  // never migrated: no bookkeeping table either
            } catch {
                version = nil
            }
            guard let version, version < PostgresMigrator.latestVersion else { throw error }
            throw LedgerError(message: "postgres \(pool.server): the schema \(schema) is at version \(version), this JobRouter needs \(PostgresMigrator.latestVersion): run `jobrouter migrate`")
        }
    }

    /// `{0.1,0.2,NULL}` → three values.
    static func doubles(_ text: String?) -> [Double?] {
        guard let text, text.hasPrefix("{") else { return [nil, nil, nil] }
        let values = text.dropFirst().dropLast().split(separator: ",").map { Double($0) }
        return values.count == 3 ? values : [nil, nil, nil]
    }

    private static func attempt(_ row: [String?]) -> Attempt? {
        guard row.count >= 15, let id = row[0], let queue = row[3], let outcome = row[6], let worker = row[8],
              let finished = row[11] else { return nil }
        return Attempt(id: id, type: row[1], priority: row[2], queue: queue, group: row[4], attempt: row[5].flatMap { Int($0) },
                       outcome: outcome, error: row[7], worker: worker, enqueuedAt: row[9], dueAt: row[14], startedAt: row[10],
                       finishedAt: finished, wait: row[12].flatMap { Double($0) }, run: row[13].flatMap { Double($0) })
    }
}
