import Foundation
import JobRouter
import Synchronization

/// `handler = "sql"`: a job that is one statement.
///
/// ```toml
/// [types.touch_login]
/// handler = "sql"
/// sql = "UPDATE users SET last_login = now() WHERE id = ($1::jsonb->>'user_id')::bigint"
/// ```
/// `$1` is the payload as JSON text (cast it with `::jsonb`), `$2` the job id: parameters only,
/// never spliced into the SQL. Prepared once per connection; bounded by the type's `timeout`
/// (`statement_timeout`, a tenth or at most 1 s shorter, so the server's cancel comes first). The SQLSTATE decides the outcome (see ``PostgresError/jobFailure``).
/// The connections come from one pool per worker, sized by `[postgres] pool`.
public final class SQLHandlerProvider: HandlerProvider {
    private let environment: [String: String]?
    private let shared = Mutex<PostgresPool?>(nil)

    /// Reads `JOBROUTER_POSTGRES_URL` from `environment` (default: the process's) when it opens the pool.
    public init(environment: [String: String]? = nil) {
        self.environment = environment
    }

    public var kind: HandlerKind { "sql" }
    public var optionKeys: Set<String> { ["sql"] }

    public func validate(_ type: JobTypeConfiguration, in configuration: RouterConfiguration) -> HandlerOptionProblem? {
        guard case .string(let sql)? = type.options["sql"], !sql.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            return HandlerOptionProblem(key: "sql", "handler \"sql\" needs a statement: sql = \"UPDATE … WHERE id = ($1::jsonb->>'id')::bigint\"")
        }
        if configuration.postgres == nil { return HandlerOptionProblem(key: "handler", "\"sql\" needs a [postgres] table (url)") }
        return nil
    }

    public func makeHandler(for type: JobTypeConfiguration, context: HandlerContext) throws -> any JobHandler {
        guard case .string(let sql)? = type.options["sql"] else {
            throw HandlerResolutionError(type: type.name, message: "handler \"sql\" needs a statement")
        }
        guard let settings = context.configuration.postgres else {
            throw HandlerResolutionError(type: type.name, message: "handler \"sql\" needs a [postgres] table")
        }
        let pool = shared.withLock { pool -> PostgresPool in
            if let pool { return pool }
            let made = PostgresPool(settings: settings, applicationName: "jobrouter sql",
                                    environment: environment ?? ProcessInfo.processInfo.environment)
            pool = made
            return made
        }
        // The server cancels the statement (57014, retried) just before the type's timeout would,
        // so the job ends with PostgreSQL's own reason and the connection is free again.
        let margin = min(type.timeout / 10, .seconds(1))
        return SQLJobHandler(statement: sql, name: "jobrouter_sql_\(type.name)", pool: pool, timeout: type.timeout - margin)
    }
}

extension SQLHandlerProvider {
    /// Prepares every `sql` type's statement against the database (without running it) and
    /// returns one error per statement the server refuses, named `types.NAME.sql` with its line.
    /// `jobrouter check` runs this when `[postgres]` is configured.
    public static func checkStatements(in configuration: RouterConfiguration, pool: PostgresPool) async throws -> [ConfigurationError] {
        var problems: [ConfigurationError] = []
        for name in configuration.types.keys.sorted() {
            guard let type = configuration.types[name], type.handler == "sql", case .string(let sql)? = type.options["sql"] else { continue }
            do {
                try await pool.withConnection { try $0.check(sql, parameterCount: 2) }
            } catch let error as PostgresError where error.code == .query {
                let state = error.sqlState.map { "SQLSTATE \($0): " } ?? ""
                problems.append(configuration.problem(at: ["types", name, "sql"], "\(state)\(error.message)"))
            }
        }
        return problems
    }
}

/// Runs one prepared statement per job.
struct SQLJobHandler: JobHandler {
    let statement: String
    let name: String
    let pool: PostgresPool
    let timeout: Duration

    func handle(_ job: JobEnvelope, context: JobContext) async throws {
        let (statement, name, timeout) = (self.statement, self.name, self.timeout)
        let parameters: [String?] = [job.payload.jsonText, job.id.rawValue]
        do {
            _ = try await pool.withConnection { connection in
                try connection.execute(prepared: name, statement, parameters, timeout: timeout)
            }
        } catch let error as PostgresError {
            throw error.jobFailure
        }
    }
}

extension PostgresError {
    /// What a job that hit this error should do, for the `sql` handler and for Swift handlers that
    /// rethrow it: retry (with backoff) on connection trouble (class 08), serialization failures
    /// and deadlocks (40), insufficient resources (53), operator intervention such as a cancelled
    /// statement or a shutting-down server (57) and lock-not-available (55P03); dead at once, with
    /// the SQLSTATE and message, on bad data (22), constraint violations (23) and syntax or
    /// undefined objects (42); retry anything else.
    public var jobFailure: JobFailure {
        let text = sqlState.map { "SQLSTATE \($0): \(message)" } ?? message
        if isTransient { return JobFailure(text, permanent: false) }
        let permanent = sqlState.map { ["22", "23", "42"].contains(String($0.prefix(2))) } ?? false
        return JobFailure(text, permanent: permanent)
    }
}
