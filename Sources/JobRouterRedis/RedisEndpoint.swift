import FoundationEssentials

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
    /// When set, the primary is found through these sentinels (``host`` and ``port`` are then
    /// those of the primary found last, or of the first sentinel before any was found).
    public var sentinel: SentinelTarget?
    /// When set, a Redis Cluster: each connection goes to the primary that serves
    /// ``ClusterTarget/slot``, found from the seed nodes (``host`` and ``port`` are then the first seed's).
    public var cluster: ClusterTarget?

    /// Makes an endpoint for a server at `host:port`.
    public init(host: String, port: Int = 6379, database: Int = 0, username: String? = nil, password: String? = nil,
                sentinel: SentinelTarget? = nil, cluster: ClusterTarget? = nil) {
        self.host = host
        self.port = port
        self.database = database
        self.username = username
        self.password = password
        self.sentinel = sentinel
        self.cluster = cluster
    }

    /// Reads a `redis://` URL, or `redis+sentinel://[[user]:password@]host:port,host:port/MASTER[/db]`.
    public init(url: String) throws(RedisError) {
        func invalid(_ why: String) -> RedisError {
            RedisError(code: .connection, message: "invalid Redis URL \(Self.redact(url)): \(why)")
        }
        if url.hasPrefix("redis+sentinel://") {
            self = try Self.sentinelURL(url, invalid: invalid)
            return
        }
        if url.hasPrefix("redis+cluster://") {
            self = try Self.clusterURL(url, invalid: invalid)
            return
        }
        // Read by hand: URLComponents runs the host through IDNA (ICU), which maps pages of ICU's
        // data into every process that only wants a host and a port.
        if url.hasPrefix("rediss://") {
            throw invalid("rediss:// (TLS) is not supported: Debian's hiredis 0.14 has no TLS; run a local TLS tunnel (stunnel) and use redis://127.0.0.1:PORT (README: \"Redis over TLS\")")
        }
        guard url.hasPrefix("redis://") else { throw invalid("the scheme must be redis://") }
        var rest = Substring(url.dropFirst("redis://".count))
        if let end = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) { rest = rest[..<end] }
        let authority = rest.prefix { $0 != "/" }
        let path = rest.dropFirst(authority.count).drop { $0 == "/" }
        let (username, password, hostPort) = try Self.credentials(authority, invalid: invalid)
        var host = hostPort
        var portText: Substring?
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { throw invalid("unclosed [ in the host") }
            host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            let after = hostPort[hostPort.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw invalid("bad port") }
                portText = after.dropFirst()
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = hostPort[..<colon]
            portText = hostPort[hostPort.index(after: colon)...]
        }
        guard !host.isEmpty else { throw invalid("no host") }
        self.host = String(host)
        if let portText {
            guard let port = Int(portText), (1...65535).contains(port) else { throw invalid("bad port") }
            self.port = port
        } else {
            self.port = 6379
        }
        let database = path.reversed().drop { $0 == "/" }.reversed()
        if database.isEmpty {
            self.database = 0
        } else if let number = Int(String(database)), number >= 0 {
            self.database = number
        } else {
            throw invalid("the path must be a database number")
        }
        self.username = username
        self.password = password
    }

    /// `127.0.0.1:6379/0`, `sentinel jobs@127.0.0.1:26379,127.0.0.1:26380/0`, or
    /// `cluster 127.0.0.1:7000,127.0.0.1:7001 slot 1234`: no credentials.
    public var description: String {
        if let cluster {
            guard let slot = cluster.slot else { return "cluster " + cluster.seeds.map(\.description).joined(separator: ",") }
            return "\(host):\(port) (cluster slot \(slot))"
        }
        if let sentinel {
            return "sentinel \(sentinel.master)@" + sentinel.sentinels.map { "\($0.host):\($0.port)" }.joined(separator: ",") + "/\(database)"
        }
        return "\(host):\(port)/\(database)"
    }

    /// `redis+sentinel://[[user]:password@]h1:26379,h2:26379/MASTER[/db]`.
    private static func sentinelURL(_ url: String, invalid: (String) -> RedisError) throws(RedisError) -> RedisEndpoint {
        let (username, password, rest) = try credentials(Substring(url.dropFirst("redis+sentinel://".count)), invalid: invalid)
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 2, !parts[1].isEmpty else { throw invalid("name the monitored master after the hosts: redis+sentinel://h1:26379,h2:26379/MASTER/0") }
        var sentinels: [SentinelTarget.Address] = []
        for item in parts[0].split(separator: ",") {
            guard let address = SentinelTarget.Address(String(item), defaultPort: 26379) else { throw invalid("bad sentinel address '\(item)'") }
            sentinels.append(address)
        }
        guard let first = sentinels.first else { throw invalid("no sentinel address") }
        var database = 0
        if parts.count > 2, !parts[2].isEmpty {
            guard let number = Int(parts[2]), number >= 0 else { throw invalid("the database must be a number") }
            database = number
        }
        return RedisEndpoint(host: first.host, port: first.port, database: database, username: username, password: password,
                             sentinel: SentinelTarget(sentinels: sentinels, master: String(parts[1])))
    }

    /// `redis+cluster://[[user]:password@]h1:7000,h2:7001[/]`: the seed nodes of a cluster.
    private static func clusterURL(_ url: String, invalid: (String) -> RedisError) throws(RedisError) -> RedisEndpoint {
        let (username, password, rest) = try credentials(Substring(url.dropFirst("redis+cluster://".count)), invalid: invalid)
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
        if parts.count > 1, parts.dropFirst().contains(where: { !$0.isEmpty && $0 != "0" }) {
            throw invalid("a Redis Cluster has only database 0")
        }
        var seeds: [SentinelTarget.Address] = []
        for item in (parts.first ?? "").split(separator: ",") {
            guard let address = SentinelTarget.Address(String(item), defaultPort: 6379) else { throw invalid("bad node address '\(item)'") }
            seeds.append(address)
        }
        guard let first = seeds.first else { throw invalid("no node address") }
        return RedisEndpoint(host: first.host, port: first.port, username: username, password: password, cluster: ClusterTarget(seeds: seeds))
    }

    /// Splits `user:password@` (percent-decoded; empty parts are `nil`) off the front of `text`;
    /// a `%` not followed by two hexadecimal digits (or escapes that are not UTF-8) is an error,
    /// not a user or password silently left out.
    private static func credentials(_ text: Substring, invalid: (String) -> RedisError) throws(RedisError)
        -> (username: String?, password: String?, rest: Substring) {
        guard let at = text.lastIndex(of: "@") else { return (nil, nil, text) }
        let credentials = text[..<at]
        let colon = credentials.firstIndex(of: ":") ?? credentials.endIndex
        func decoded(_ part: Substring, _ what: String) throws(RedisError) -> String? {
            guard let text = part.removingPercentEscapes() else {
                throw invalid("the \(what) has a bad %-escape (write %25 for a literal %, %40 for @)")
            }
            return text.isEmpty ? nil : text
        }
        let password = colon < credentials.endIndex ? try decoded(credentials[credentials.index(after: colon)...], "password") : nil
        return (try decoded(credentials[..<colon], "user name"), password, text[text.index(after: at)...])
    }

    /// `url` with any credentials replaced by `***`, for messages about a URL that did not parse.
    static func redact(_ url: String) -> String {
        guard let at = url.unicodeScalars.lastIndex(of: "@"), let scheme = url.firstScalarRange(of: "://"), scheme.upperBound <= at else { return url }
        return String(url[..<scheme.upperBound]) + "***" + String(url[at...])
    }
}

/// The sentinels that watch a primary, and the name they know it by.
public struct SentinelTarget: Sendable, Equatable {
    /// A `host:port`.
    public struct Address: Sendable, Equatable, CustomStringConvertible {
        /// Host name or address.
        public var host: String
        /// TCP port.
        public var port: Int

        /// Makes one.
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// Reads `host:port` (or `host`, with `defaultPort`); `nil` when it is not one.
        public init?(_ text: String, defaultPort: Int) {
            let trimmed = text.trimmingBlanks()
            guard !trimmed.isEmpty else { return nil }
            if let colon = trimmed.lastIndex(of: ":") {
                guard let port = Int(trimmed[trimmed.index(after: colon)...]), (1...65535).contains(port), colon > trimmed.startIndex else { return nil }
                self.init(host: String(trimmed[..<colon]), port: port)
            } else {
                self.init(host: trimmed, port: defaultPort)
            }
        }

        public var description: String { "\(host):\(port)" }
    }

    /// The sentinels, asked in order (a process starts at a different one each time it rediscovers).
    public var sentinels: [Address]
    /// The name the sentinels monitor the primary by (`sentinel monitor NAME ...`).
    public var master: String
    /// The sentinels' own password (`requirepass` on the sentinels), when they have one.
    public var password: String?

    /// Makes a target.
    public init(sentinels: [Address], master: String, password: String? = nil) {
        self.sentinels = sentinels
        self.master = master
        self.password = password
    }
}

/// The seed nodes of a Redis Cluster, and the hash slot a connection serves.
public struct ClusterTarget: Sendable, Equatable {
    /// Nodes asked for the slot map (`CLUSTER SLOTS`), in order; any node of the cluster will do.
    public var seeds: [SentinelTarget.Address]
    /// The slot whose primary a connection goes to (every key a JobRouter connection touches is of
    /// one hash tag: see ``JobRouter/ClusterLayout``); `nil` until a driver pins it.
    public var slot: Int?

    /// Makes a target.
    public init(seeds: [SentinelTarget.Address], slot: Int? = nil) {
        self.seeds = seeds
        self.slot = slot
    }
}
