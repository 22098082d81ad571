import JobRouter

/// A failed PostgreSQL call, with libpq's or the server's own message and, for errors the server
/// reported, its SQLSTATE. Never carries a password: connection strings are not included.
public struct PostgresError: Error, CustomStringConvertible, Sendable, Equatable, QueueServerError {
    /// What kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// Could not connect or authenticate; or the connection broke (it is opened again next time).
        public static let connection = Code(name: "connection")
        /// The server refused or failed a statement (see ``PostgresError/sqlState``).
        public static let query = Code(name: "query")
        /// A reply of a shape the caller did not expect.
        public static let unexpected = Code(name: "unexpected")
        public var description: String { name }
    }

    /// What kind of failure.
    public var code: Code
    /// The five-character SQLSTATE (`23505` unique violation, `40001` serialization failure), when known.
    public var sqlState: String?
    /// The library's or the server's message (one line).
    public var message: String
    /// The server, without credentials: `127.0.0.1:5432/app`.
    public var server: String?

    /// Makes an error.
    public init(code: Code, sqlState: String? = nil, message: String, server: String? = nil) {
        self.code = code
        self.sqlState = sqlState
        self.message = message
        self.server = server
    }

    /// `true` when the connection must be opened again.
    public var closesConnection: Bool { code == .connection }

    /// Whether running the same statement again may succeed: connection trouble (class 08), a
    /// serialization failure or deadlock (40), insufficient resources (53), an operator
    /// intervention such as a cancel or shutdown (57), or a lock not available (55P03).
    public var isTransient: Bool {
        if code == .connection { return true }
        guard let sqlState else { return false }
        return ["08", "40", "53", "57"].contains(String(sqlState.prefix(2))) || sqlState == "55P03"
    }

    /// Bad credentials or a missing database: retrying cannot help.
    public var isPermanent: Bool {
        guard let sqlState else { return false }
        return ["28P01", "28000", "3D000", "42501"].contains(sqlState)
    }

    public var description: String {
        var text = "postgres"
        if let server { text += " \(server)" }
        if let sqlState { text += " SQLSTATE \(sqlState)" }
        return text + ": " + message
    }
}
