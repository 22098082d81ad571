import CLibpq
import Foundation
import JobRouter

/// One libpq connection (`PGconn`), opened on the thread that uses it and closed in `deinit`.
/// Blocking and not `Sendable`: it lives on one dedicated thread of a ``PostgresPool``.
///
/// Statements take their values as parameters (`$1`, `$2`, … in text form), never spliced into
/// the SQL.
public final class PostgresConnection {
    private let connection: OpaquePointer
    /// The server, without credentials.
    public let server: String

    /// Connects to `url` (libpq reads `PGPASSWORD` and `~/.pgpass` for a password the URL lacks),
    /// naming itself `applicationName` in `pg_stat_activity`. Throws with libpq's message.
    public init(url: String, applicationName: String, connectTimeout: Duration = .seconds(10)) throws(PostgresError) {
        server = Self.describe(url)
        // `dbname` holding a URL is expanded (the last argument), and later keys override it.
        let keys = ["dbname", "application_name", "connect_timeout"]
        let values = [url, applicationName, String(max(1, connectTimeout.inMilliseconds / 1000))]
        let opened: OpaquePointer? = Self.withCStrings(keys) { keyPointers in
            Self.withCStrings(values) { valuePointers in
                PQconnectdbParams(keyPointers, valuePointers, 1)
            }
        }
        guard let opened else {
            throw PostgresError(code: .connection, message: "libpq could not allocate a connection", server: server)
        }
        guard PQstatus(opened) == CONNECTION_OK else {
            let message = Self.message(PQerrorMessage(opened))
            PQfinish(opened)
            throw PostgresError(code: .connection, sqlState: Self.sqlState(inConnectionMessage: message), message: message, server: server)
        }
        connection = opened
        // libpq prints server notices ("schema already exists, skipping") to stderr by default;
        // they are not errors and must not mix into the CLI's output.
        PQsetNoticeProcessor(opened, { _, _ in }, nil)
    }

    deinit {
        PQfinish(connection)
    }

    /// Statements prepared on this connection, by name.
    private var prepared: Set<String> = []
    /// The `statement_timeout` last set on this connection, in milliseconds.
    private var statementTimeout: Int64?

    /// Runs the statement prepared as `name` (preparing `sql` under that name on first use on this
    /// connection) with text parameters, bounded by `timeout` (the session's `statement_timeout`).
    @discardableResult
    public func execute(prepared name: String, _ sql: String, _ parameters: [String?], timeout: Duration? = nil) throws(PostgresError) -> PostgresRows {
        if let timeout, timeout.inMilliseconds != statementTimeout {
            try query("SELECT set_config('statement_timeout', $1, false)", [String(timeout.inMilliseconds)])
            statementTimeout = timeout.inMilliseconds
        }
        if !prepared.contains(name) {
            // Every parameter is declared text, so a statement may leave one unused ($2, the job id).
            let types = [Oid](repeating: 25, count: parameters.count)
            let result = types.withUnsafeBufferPointer { PQprepare(connection, name, sql, Int32(parameters.count), $0.baseAddress) }
            try check(result)
            prepared.insert(name)
        }
        let result: OpaquePointer? = Self.withOptionalCStrings(parameters) { values in
            PQexecPrepared(connection, name, Int32(parameters.count), values, nil, nil, 0)
        }
        return try check(result)
    }

    /// Runs `sql`, a `COPY … FROM STDIN`, sending `data` as its input (already in the format the
    /// statement names); returns how many rows it stored. On any failure nothing is stored (the
    /// statement is one transaction unless a transaction is open) and the connection is left
    /// ready for the next statement.
    @discardableResult
    public func copy(_ sql: String, data: [UInt8]) throws(PostgresError) -> Int {
        guard let started = PQexec(connection, sql) else {
            throw PostgresError(code: isHealthy ? .query : .connection, message: Self.message(PQerrorMessage(connection)), server: server)
        }
        guard PQresultStatus(started) == PGRES_COPY_IN else {
            try check(started)
            throw PostgresError(code: .unexpected, message: "the server did not start a copy for: \(sql.prefix(60))", server: server)
        }
        PQclear(started)
        // Sent in pieces so libpq never holds the whole batch twice.
        var sent = true
        data.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            var offset = 0
            while offset < buffer.count, sent {
                let count = min(1 << 16, buffer.count - offset)
                let pointer = UnsafeRawPointer(base + offset).assumingMemoryBound(to: CChar.self)
                sent = PQputCopyData(connection, pointer, Int32(count)) == 1
                offset += count
            }
        }
        let ended = sent ? PQputCopyEnd(connection, nil) : PQputCopyEnd(connection, "the client could not send the data")
        let failure = Self.message(PQerrorMessage(connection))
        // Every result is read (the copy's own, then the end), so the connection is idle again.
        var outcome: Result<Int, PostgresError> = .failure(PostgresError(
            code: isHealthy ? .query : .connection, message: failure, server: server))
        var first = true
        while let result = PQgetResult(connection) {
            if first {
                first = false
                do throws(PostgresError) {
                    let rows = try check(result)
                    outcome = ended == 1 && sent ? .success(rows.affected ?? 0) : outcome
                } catch {
                    outcome = .failure(error)
                }
            } else {
                PQclear(result)
            }
        }
        return try outcome.get()
    }

    /// Asks the server to parse and plan `sql` with `parameterCount` text parameters, without
    /// running it: a syntax error or an unknown table or column throws here. Nothing is kept.
    public func check(_ sql: String, parameterCount: Int) throws(PostgresError) {
        let name = "jobrouter_check"
        let types = [Oid](repeating: 25, count: parameterCount)
        let result = types.withUnsafeBufferPointer { PQprepare(connection, name, sql, Int32(parameterCount), $0.baseAddress) }
        try check(result)
        try query("DEALLOCATE jobrouter_check")
    }

    /// Turns a result into rows, or its error into a ``PostgresError``; frees it.
    @discardableResult
    private func check(_ result: OpaquePointer?) throws(PostgresError) -> PostgresRows {
        guard let result else {
            throw PostgresError(code: isHealthy ? .query : .connection, message: Self.message(PQerrorMessage(connection)), server: server)
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK:
            return PostgresRows(result)
        default:
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let primary = PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) }
            let message = primary ?? Self.message(PQresultErrorMessage(result))
            let broken = !isHealthy || state?.hasPrefix("08") == true
            throw PostgresError(code: broken ? .connection : .query, sqlState: state, message: message, server: server)
        }
    }

    /// Whether the connection still works as far as libpq knows.
    public var isHealthy: Bool { PQstatus(connection) == CONNECTION_OK }

    /// Runs one statement with text parameters (`nil` is SQL NULL) and returns its rows as text.
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) throws(PostgresError) -> PostgresRows {
        let result: OpaquePointer? = Self.withOptionalCStrings(parameters) { values in
            PQexecParams(connection, sql, Int32(parameters.count), nil, values, nil, nil, 0)
        }
        return try check(result)
    }

    /// What a long-lived user of this connection (the outbox relay) holds on it, such as a session
    /// lock: gone with the connection, so a reconnect starts without it.
    public var sessionMarks: Set<String> = []

    /// Waits up to `timeout` for a notification on a channel this session `LISTEN`s to; returns
    /// the channels that were notified (empty on timeout). Blocking: call it on the connection's thread.
    public func waitForNotifications(timeout: Duration) throws(PostgresError) -> Set<String> {
        var channels = takeNotifications()
        if !channels.isEmpty { return channels }
        let socket = PQsocket(connection)
        guard socket >= 0 else { throw PostgresError(code: .connection, message: "the connection has no socket", server: server) }
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, Int32(clamping: timeout.inMilliseconds))
        if ready < 0 && errno != EINTR {
            throw PostgresError(code: .connection, message: "poll failed: \(String(cString: strerror(errno)))", server: server)
        }
        if ready > 0 {
            guard PQconsumeInput(connection) == 1 else {
                throw PostgresError(code: .connection, message: Self.message(PQerrorMessage(connection)), server: server)
            }
            channels = takeNotifications()
        }
        return channels
    }

    private func takeNotifications() -> Set<String> {
        var channels: Set<String> = []
        while let notification = PQnotifies(connection) {
            if let name = notification.pointee.relname { channels.insert(String(cString: name)) }
            PQfreemem(notification)
        }
        return channels
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    public func transaction<Result>(_ body: (PostgresConnection) throws -> Result) throws -> Result {
        try query("BEGIN")
        do {
            let result = try body(self)
            try query("COMMIT")
            return result
        } catch {
            _ = try? query("ROLLBACK")
            throw error
        }
    }

    // MARK: C strings

    private static func message(_ pointer: UnsafePointer<CChar>?) -> String {
        guard let pointer else { return "unknown error" }
        return String(cString: pointer).split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: "; ")
    }

    /// libpq reports a failed login only in text; map the common ones to their SQLSTATE.
    private static func sqlState(inConnectionMessage message: String) -> String? {
        if message.contains("password authentication failed") { return "28P01" }
        if message.contains("does not exist") && message.contains("database") { return "3D000" }
        if message.contains("role") && message.contains("does not exist") { return "28000" }
        return nil
    }

    /// `host:port/db` of a URL, without the user or password.
    static func describe(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return "(connection string)" }
        var rest = url[scheme.upperBound...]
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        if let query = rest.firstIndex(of: "?") { rest = rest[..<query] }
        return String(rest)
    }

    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        let copies = strings.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } } + [nil]
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    private static func withOptionalCStrings<R>(_ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
        let copies = strings.map { $0.map { strdup($0) } ?? nil }
        defer { copies.forEach { free($0) } }
        let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress) }
    }
}

@available(*, unavailable)
extension PostgresConnection: Sendable {}

/// The rows of a result, every value as text (`nil` for NULL), copied out of libpq's result.
public struct PostgresRows: Sendable, Equatable {
    /// The column names, in order.
    public var columns: [String]
    /// Each row's values, in column order.
    public var rows: [[String?]]
    /// How many rows a command changed (`UPDATE`, `DELETE`, `INSERT`), when it says.
    public var affected: Int?

    init(_ result: OpaquePointer) {
        let columnCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        rows = (0..<rowCount).map { row in
            (0..<columnCount).map { column in
                PQgetisnull(result, Int32(row), Int32(column)) == 1 ? nil : String(cString: PQgetvalue(result, Int32(row), Int32(column)))
            }
        }
        affected = Int(String(cString: PQcmdTuples(result)))
    }

    /// The value in `column` of row `row` (the first by default) as PostgreSQL wrote it, or `nil`
    /// for NULL, a missing column or a missing row.
    public func value(_ column: String, row: Int = 0) -> String? {
        guard let index = columns.firstIndex(of: column), row < rows.count else { return nil }
        return rows[row][index]
    }

    /// The value as an integer (`int2`/`int4`/`int8`/`numeric` without fraction).
    public func int(_ column: String, row: Int = 0) -> Int? { value(column, row: row).flatMap { Int($0) } }

    /// The value as a boolean (`t`/`f`).
    public func bool(_ column: String, row: Int = 0) -> Bool? {
        switch value(column, row: row) {
        case "t"?: return true
        case "f"?: return false
        default: return nil
        }
    }

    /// The value as a floating-point number.
    public func double(_ column: String, row: Int = 0) -> Double? { value(column, row: row).flatMap { Double($0) } }
}
