import FoundationEssentials

/// The `[postgres]` table: where JobRouter's durable history lives. Without it JobRouter works
/// without PostgreSQL.
///
/// The password never comes from the file: it comes from `JOBROUTER_POSTGRES_URL`, `PGPASSWORD`
/// or `~/.pgpass` (libpq reads the last two itself).
public struct PostgresSettings: Sendable, Equatable {
    /// `postgres://user@host:port/database` (TOML `url`, required); `JOBROUTER_POSTGRES_URL` overrides it.
    public var url: String
    /// Connections per worker process (TOML `pool`, default 8).
    public var pool: Int = 8
    /// Record every attempt of every job (TOML `ledger`, default `true`).
    public var ledger = true
    /// Most attempt records waiting in Redis for the ledger (TOML `ledger_buffer`, default 1,000,000).
    /// Past it the oldest are dropped, counted, and `status` shows the count.
    public var ledgerBuffer = 1_000_000
    /// Ledger rows older than this are pruned (TOML `retain`, default `"30d"`).
    public var retain: Duration = .seconds(30 * 86_400)
    /// Keep each job's payload in the ledger (TOML `store_payload`, default `true`).
    public var storePayload = true
    /// The schema JobRouter's tables live in (TOML `schema`, default `"jobrouter"`).
    public var schema = "jobrouter"
    /// Relay jobs enqueued through the outbox (`{schema}.enqueue(...)` in SQL) to Redis from
    /// every `jobrouter work` process (TOML `outbox`, default `false`; one relays at a time).
    public var outbox = false

    /// Settings for `url`, the rest at their defaults.
    public init(url: String) {
        self.url = url
    }

    /// The URL to connect to: `JOBROUTER_POSTGRES_URL` from `environment` when set, else ``url``.
    public func connectionURL(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        environment["JOBROUTER_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? url
    }

    /// `url` without any password, for messages.
    public static func redacted(_ url: String) -> String {
        guard let scheme = url.firstScalarRange(of: "://"), let at = url.unicodeScalars[scheme.upperBound...].lastIndex(of: "@") else { return url }
        let credentials = url[scheme.upperBound..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }
}
