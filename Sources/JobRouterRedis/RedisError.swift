import JobRouter

/// A failed Redis call, with hiredis's or the server's own message. Never carries a password.
public struct RedisError: Error, CustomStringConvertible, Sendable, Equatable, QueueServerError {
    /// What kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// Could not connect, or authenticate, or select the database.
        public static let connection = Code(name: "connection")
        /// Reading or writing the socket failed, or timed out; the connection is closed.
        public static let io = Code(name: "io")
        /// The server sent something hiredis could not read; the connection is closed.
        public static let `protocol` = Code(name: "protocol")
        /// The server answered with an error reply (`ERR …`, `WRONGTYPE …`); the connection is fine.
        public static let server = Code(name: "server")
        /// The server answered with a reply of a shape the caller did not expect.
        public static let unexpectedReply = Code(name: "unexpected reply")
        public var description: String { name }
    }

    /// What kind of failure.
    public var code: Code
    /// The library's or the server's message.
    public var message: String
    /// The command that failed (its name only: arguments may hold payloads).
    public var command: String?
    /// The server, without credentials: `127.0.0.1:6379/0`.
    public var server: String?

    /// Makes an error.
    public init(code: Code, message: String, command: String? = nil, server: String? = nil) {
        self.code = code
        self.message = message
        self.command = command
        self.server = server
    }

    /// `true` when retrying cannot help: the server refused the credentials (`WRONGPASS`,
    /// `NOAUTH`) or the user's rights (`NOPERM`), or JobRouter's own keys hold the wrong type.
    public var isPermanent: Bool {
        let text = message.uppercased()
        return ["WRONGPASS", "NOAUTH", "NOPERM", "INVALID PASSWORD", "WRONGTYPE"].contains { text.contains($0) }
    }

    /// `true` when the connection cannot be used any more and must be opened again.
    /// A server that has become a replica (`READONLY`) or is loading its data (`LOADING`) counts as
    /// one too: with Sentinel, the next connection finds the primary again. So do a cluster's
    /// `MOVED` (the slot is served elsewhere now) and `CLUSTERDOWN` (a failover is under way).
    public var closesConnection: Bool {
        code == .connection || code == .io || code == .protocol
            || code == .server && (message.hasPrefix("READONLY") || message.hasPrefix("LOADING") || message.hasPrefix("MASTERDOWN")
                                   || isRedirect || message.hasPrefix("CLUSTERDOWN"))
    }

    /// A cluster's `-MOVED`, or a script stopped at its first key because this node no longer
    /// serves the slot (scripts name their keys from the namespace, so the node cannot redirect
    /// before running them; every key of a call is of one slot, so nothing was written): the call
    /// can be sent again to the slot's new primary.
    public var isRedirect: Bool {
        code == .server && (message.hasPrefix("MOVED ") || message.contains("access a non local key in a cluster node"))
    }

    public var description: String {
        var text = "redis"
        if let server { text += " \(server)" }
        if let command { text += " \(command)" }
        return text + ": " + message
    }
}
