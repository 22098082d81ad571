import FoundationEssentials

extension RouterConfiguration {
    /// The configuration file a command reads: `given` (`--config`), else `$JOBROUTER_CONFIG`,
    /// else `queues.toml` in the working directory.
    public static func path(given: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let given { return given }
        if let path = environment["JOBROUTER_CONFIG"], !path.isEmpty { return path }
        return "queues.toml"
    }

    /// What in this configuration takes more than the core and Redis to run `work`: a job type
    /// whose handler kind is not the core's (`smtp`, `sql`), the PostgreSQL ledger or outbox, or
    /// an HTTP endpoint. `nil` when the core alone runs every group, as the `jobrouter` executable
    /// then does itself, as a lean worker (no libcurl, libpq or SwiftNIO mapped).
    public var beyondCore: String? {
        let core = Set(HandlerRegistry().providers.map(\.kind))
        for (name, type) in types.sorted(by: { $0.key < $1.key }) where !core.contains(type.handler) {
            return "type \(name) uses the \(type.handler) handler"
        }
        if let postgres, postgres.ledger || postgres.outbox { return "the postgres ledger or outbox is on" }
        if let httpListen { return "[http] listen is \(httpListen)" }
        return nil
    }
}
