import Synchronization

extension RedisConnection {
    /// Connects to `endpoint`; with ``RedisEndpoint/sentinel``, to the primary the sentinels name,
    /// checked with `ROLE` before use (a sentinel that has not seen a failover yet may name a
    /// server that is a replica now: then the next sentinel is asked). With ``RedisEndpoint/cluster``,
    /// to the primary that serves its slot.
    public static func open(_ endpoint: RedisEndpoint, timeout: Duration) throws(RedisError) -> RedisConnection {
        if let cluster = endpoint.cluster { return try openCluster(endpoint, cluster: cluster, timeout: timeout) }
        guard let sentinel = endpoint.sentinel else { return try RedisConnection(endpoint: endpoint, timeout: timeout) }
        var problems: [String] = []
        let count = sentinel.sentinels.count
        let first = SentinelRotation.next(count)
        for offset in 0..<count {
            let address = sentinel.sentinels[(first + offset) % count]
            do throws(RedisError) {
                guard let primary = try askSentinel(address, for: sentinel, timeout: min(timeout, .seconds(2))) else {
                    problems.append("\(address): does not know '\(sentinel.master)'")
                    continue
                }
                var target = endpoint
                target.host = primary.host
                target.port = primary.port
                target.sentinel = nil
                let connection = try RedisConnection(endpoint: target, timeout: timeout)
                let role = try connection.command(["ROLE"]).array(for: "ROLE")?.first.map { value throws(RedisError) in try value.text(for: "ROLE") }
                guard role == "master" else {
                    problems.append("\(address) named \(primary), which is a \(role ?? "server of unknown role"), not the primary")
                    continue
                }
                return connection
            } catch {
                problems.append("\(address): \(error.message)")
            }
        }
        throw RedisError(code: .connection, message: "no sentinel gave a reachable primary for '\(sentinel.master)': " + problems.joined(separator: "; "),
                         server: endpoint.description)
    }

    /// `SENTINEL get-master-addr-by-name`: the primary's address, or `nil` when this sentinel does
    /// not monitor that name.
    private static func askSentinel(_ address: SentinelTarget.Address, for sentinel: SentinelTarget,
                                    timeout: Duration) throws(RedisError) -> SentinelTarget.Address? {
        let connection = try RedisConnection(endpoint: RedisEndpoint(host: address.host, port: address.port, password: sentinel.password),
                                             timeout: timeout)
        let reply = try connection.command(["SENTINEL", "get-master-addr-by-name", sentinel.master])
        guard let parts = try reply.array(for: "SENTINEL"), parts.count == 2 else { return nil }
        let host = try parts[0].text(for: "SENTINEL")
        guard let port = Int(try parts[1].text(for: "SENTINEL")) else { return nil }
        return SentinelTarget.Address(host: host, port: port)
    }
}

/// Where the next discovery starts, so the processes and connections of a deployment spread their
/// questions over the sentinels and one that hangs does not delay every reconnect.
enum SentinelRotation {
    // The first discovery of a process asks the sentinels in the order given; later ones rotate.
    private static let counter = Atomic<Int>(-1)

    static func next(_ count: Int) -> Int {
        guard count > 0 else { return 0 }
        return counter.add(1, ordering: .relaxed).newValue % count
    }
}
