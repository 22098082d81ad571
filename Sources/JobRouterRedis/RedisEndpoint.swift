import Foundation

/// Where a Redis server is, read from `redis://[[user]:password@]host[:port][/db]`.
///
/// Its ``description`` never shows the password (nor the user): use it in logs and errors.
public struct RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// Host name or address.
    public var host: String
    /// TCP port (default 6379).
    public var port: Int
    /// Database number (default 0).
    public var database: Int
    /// ACL user name, when given.
    public var username: String?
    /// Password, when given. Prefer putting it in `JOBROUTER_REDIS_URL` rather than in `queues.toml`.
    public var password: String?

    /// Reads a `redis://` URL.
    public init(url: String) throws(RedisError) {
        func invalid(_ why: String) -> RedisError {
            RedisError(code: .connection, message: "invalid Redis URL \(Self.redact(url)): \(why)")
        }
        guard let components = URLComponents(string: url) else { throw invalid("not a URL") }
        if components.scheme == "rediss" {
            throw invalid("rediss:// (TLS) is not supported: Debian's hiredis 0.14 has no TLS; run a local TLS tunnel (stunnel) and use redis://127.0.0.1:PORT (README: \"Redis over TLS\")")
        }
        guard components.scheme == "redis" else { throw invalid("the scheme must be redis://") }
        guard let host = components.host, !host.isEmpty else { throw invalid("no host") }
        self.host = host
        self.port = components.port ?? 6379
        guard (1...65535).contains(port) else { throw invalid("bad port") }
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if path.isEmpty {
            self.database = 0
        } else if let database = Int(path), database >= 0 {
            self.database = database
        } else {
            throw invalid("the path must be a database number")
        }
        let user = components.user.flatMap { $0.isEmpty ? nil : $0 }
        self.username = user
        self.password = components.password.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// `127.0.0.1:6379/0`: no credentials.
    public var description: String { "\(host):\(port)/\(database)" }

    /// `url` with any credentials replaced by `***`, for messages about a URL that did not parse.
    static func redact(_ url: String) -> String {
        guard let at = url.lastIndex(of: "@"), let scheme = url.range(of: "://"), scheme.upperBound <= at else { return url }
        return String(url[..<scheme.upperBound]) + "***" + String(url[at...])
    }
}
