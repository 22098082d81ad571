import FoundationEssentials

/// The `[smtp]` table: where mail goes and how fast.
public struct SMTPSettings: Sendable, Equatable {
    /// How the connection is protected.
    public enum TLS: String, Sendable, CaseIterable {
        /// STARTTLS must succeed (`smtp://`), or implicit TLS (`smtps://`).
        case required
        /// STARTTLS when the server offers it.
        case opportunistic
        /// Plain text (only for `smtp://` on a trusted network, e.g. a local relay).
        case off
    }

    /// `smtp://host:port` (STARTTLS per ``tls``) or `smtps://host:port` (implicit TLS) (TOML `url`, required).
    public var url: String
    /// TOML `tls`, default `"opportunistic"`.
    public var tls: TLS
    /// The From header, `"Name <address>"` or `"address"` (TOML `from`, required).
    public var from: String
    /// The environment variable holding the user name (TOML `username_env`); never the value itself.
    public var usernameEnvironment: String?
    /// The environment variable holding the password (TOML `password_env`); never the value itself.
    public var passwordEnvironment: String?
    /// Bound on connecting and on each SMTP exchange (TOML `timeout`, default `"30s"`).
    public var timeout: Duration
    /// Mails per period for every worker process on this Redis together (TOML `rate_limit`: `"20/s"`, `"600/min"`, `"10000/h"`).
    public var rateLimit: RateLimit?
    /// How many mails may go at once before the steady rate applies (TOML `burst`, default 1).
    public var burst: Int
    /// Keep each worker slot's connection open between mails (TOML `reuse_connections`, default `true`).
    public var reuseConnections = true
    /// A PEM bundle of the CAs that may sign the relay's certificate, for relays with a private CA
    /// (TOML `ca_file`, relative to queues.toml; default: the system trust store).
    public var caFile: String?
    /// Whether the relay's certificate and name are checked (TOML `tls_verify`, default `true`).
    /// Turning it off lets anyone on the path read the mail and the password; `check` warns.
    public var tlsVerify = true
    /// The SASL mechanism to log in with, e.g. `"PLAIN"` or `"LOGIN"` (TOML `auth_mechanism`;
    /// default: the best one the server offers).
    public var authMechanism: String?

    /// Makes settings.
    public init(url: String, tls: TLS = .opportunistic, from: String, usernameEnvironment: String? = nil,
                passwordEnvironment: String? = nil, timeout: Duration = .seconds(30), rateLimit: RateLimit? = nil, burst: Int = 1) {
        self.url = url
        self.tls = tls
        self.from = from
        self.usernameEnvironment = usernameEnvironment
        self.passwordEnvironment = passwordEnvironment
        self.timeout = timeout
        self.rateLimit = rateLimit
        self.burst = burst
    }
}

/// A rate: `count` events per `period`.
public struct RateLimit: Sendable, Equatable, CustomStringConvertible {
    /// Events per period.
    public var count: Int
    /// The period.
    public var period: Duration

    /// Makes a rate.
    public init(count: Int, period: Duration) {
        self.count = count
        self.period = period
    }

    /// Reads `"20/s"`, `"600/min"`, `"10000/h"` (also `sec`, `m`, `hour`, `d`, `day`).
    public init?(_ text: String) {
        let parts = text.replacingEvery(" ", with: "").split(separator: "/")
        guard parts.count == 2, let count = Int(parts[0]), count > 0 else { return nil }
        switch parts[1].lowercased() {
        case "s", "sec", "second": period = .seconds(1)
        case "m", "min", "minute": period = .seconds(60)
        case "h", "hour": period = .seconds(3600)
        case "d", "day": period = .seconds(86400)
        default: return nil
        }
        self.count = count
    }

    /// The steady gap between two events.
    public var interval: Duration { period / count }

    public var description: String {
        switch period {
        case .seconds(1): return "\(count)/s"
        case .seconds(60): return "\(count)/min"
        case .seconds(3600): return "\(count)/h"
        default: return "\(count)/day"
        }
    }
}

/// A `[templates.NAME]` table, with files already read.
public struct MailTemplate: Sendable, Equatable {
    /// The subject (Mustache).
    public var subject: String
    /// The plain-text body (Mustache), from `text` or `text_file`.
    public var text: String?
    /// The HTML body (Mustache, HTML-escaped values), from `html` or `html_file`.
    public var html: String?

    /// Makes a template.
    public init(subject: String, text: String? = nil, html: String? = nil) {
        self.subject = subject
        self.text = text
        self.html = html
    }
}
