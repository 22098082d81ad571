/// `host:port` for the HTTP endpoint (`work --http`, TOML `[http] listen`). A bare port listens on loopback only.
public struct HTTPListenAddress: Sendable, Equatable, CustomStringConvertible {
    /// The address to bind (`127.0.0.1` unless one is given).
    public var host: String
    /// The port (0: any free one).
    public var port: Int

    /// An address from its parts.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `127.0.0.1:9464`, `0.0.0.0:9464`, `[::1]:9464` or `9464`; throws a one-line error naming `source`.
    public init(parsing text: String, source: String = "--http") throws(HTTPConfigurationError) {
        var host = "127.0.0.1"
        var portText = Substring(text)
        if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            portText = text[text.index(after: colon)...]
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            if host.isEmpty { throw HTTPConfigurationError(message: "\(source): '\(text)' has no host before ':' (e.g. 127.0.0.1:9464)", detail: "has no host before ':' (e.g. 127.0.0.1:9464)") }
        }
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw HTTPConfigurationError(message: "\(source): '\(text)' is not host:port with a port from 0 to 65535 (e.g. 127.0.0.1:9464)",
                                         detail: "'\(text)' is not host:port with a port from 0 to 65535 (e.g. 127.0.0.1:9464)")
        }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A bad HTTP setting, in one line.
public struct HTTPConfigurationError: Error, CustomStringConvertible, Sendable {
    /// What is wrong and where.
    public var message: String
    /// What is wrong, without where.
    public var detail: String
    public var description: String { message }
}
