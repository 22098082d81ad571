import Synchronization

/// Which primary serves each hash slot of a Redis Cluster, as `CLUSTER SLOTS` last said, shared by
/// every connection of the process (one map per set of seed nodes).
///
/// A connection asks it for its slot's primary when it opens. A `-MOVED` reply, or a primary that
/// cannot be reached, marks the map stale: the next connection asks the cluster again (the seeds,
/// then every node the last map named, so a dead seed does not stop discovery).
final class ClusterSlotMap: Sendable {
    struct Range: Sendable {
        var first: Int
        var last: Int
        var primary: SentinelTarget.Address
    }

    private struct State {
        var ranges: [Range] = []
        var stale = true
    }

    private let state = Mutex(State())

    private static let maps = Mutex<[String: ClusterSlotMap]>([:])

    /// The process's map for the cluster that `seeds` belong to.
    static func shared(_ seeds: [SentinelTarget.Address]) -> ClusterSlotMap {
        let key = seeds.map(\.description).joined(separator: ",")
        return maps.withLock { maps in
            if let map = maps[key] { return map }
            let map = ClusterSlotMap()
            maps[key] = map
            return map
        }
    }

    /// The primary serving `slot`, asking the cluster first when the map is stale or has no owner.
    func primary(for slot: Int, endpoint: RedisEndpoint, seeds: [SentinelTarget.Address], timeout: Duration) throws(RedisError) -> SentinelTarget.Address {
        let known = state.withLock { state -> SentinelTarget.Address? in
            state.stale ? nil : state.ranges.first { $0.first <= slot && slot <= $0.last }?.primary
        }
        if let known { return known }
        let ranges = try Self.ask(seeds + state.withLock { $0.ranges.map(\.primary) }, endpoint: endpoint, timeout: timeout)
        state.withLock { $0 = State(ranges: ranges, stale: false) }
        guard let range = ranges.first(where: { $0.first <= slot && slot <= $0.last }) else {
            throw RedisError(code: .connection, message: "no node of the cluster serves hash slot \(slot) (CLUSTER SLOTS); is the cluster complete?",
                             server: endpoint.description)
        }
        return range.primary
    }

    /// The cluster moved `slot` (a `-MOVED` reply) or a primary is gone: ask again next time.
    func markStale() {
        state.withLock { $0.stale = true }
    }

    /// `CLUSTER SLOTS` from the first node in `nodes` that answers.
    private static func ask(_ nodes: [SentinelTarget.Address], endpoint: RedisEndpoint, timeout: Duration) throws(RedisError) -> [Range] {
        var problems: [String] = []
        var asked: Set<String> = []
        for node in nodes where asked.insert(node.description).inserted {
            do throws(RedisError) {
                var target = endpoint
                target.host = node.host
                target.port = node.port
                target.cluster = nil
                let connection = try RedisConnection(endpoint: target, timeout: min(timeout, .seconds(2)))
                let reply = try connection.command(["CLUSTER", "SLOTS"])
                return try parse(reply, askedNode: node)
            } catch {
                problems.append("\(node): \(error.message)")
            }
        }
        throw RedisError(code: .connection, message: "no cluster node answered CLUSTER SLOTS: " + problems.joined(separator: "; "),
                         server: endpoint.description)
    }

    /// Each entry: `[first, last, [host, port, id, ...], replicas...]`. A node announced without an
    /// address (`""`, or `?` for an unknown endpoint) is the node asked.
    static func parse(_ reply: RedisReply, askedNode: SentinelTarget.Address) throws(RedisError) -> [Range] {
        var ranges: [Range] = []
        for entry in try reply.array(for: "CLUSTER SLOTS") ?? [] {
            guard let parts = try entry.array(for: "CLUSTER SLOTS"), parts.count >= 3,
                  case .integer(let first) = parts[0], case .integer(let last) = parts[1],
                  let node = try parts[2].array(for: "CLUSTER SLOTS"), node.count >= 2,
                  case .integer(let port) = node[1] else {
                throw RedisError(code: .unexpectedReply, message: "CLUSTER SLOTS: an entry of an unknown shape", command: "CLUSTER SLOTS")
            }
            var host = try node[0].text(for: "CLUSTER SLOTS")
            if host.isEmpty || host == "?" { host = askedNode.host }
            ranges.append(Range(first: Int(first), last: Int(last), primary: SentinelTarget.Address(host: host, port: Int(port))))
        }
        return ranges
    }
}

extension RedisConnection {
    /// Connects to the primary that serves `cluster.slot`. When that primary cannot be reached (it
    /// died; a replica is being promoted), the map is asked for again once before giving up.
    static func openCluster(_ endpoint: RedisEndpoint, cluster: ClusterTarget, timeout: Duration) throws(RedisError) -> RedisConnection {
        let map = ClusterSlotMap.shared(cluster.seeds)
        let slot = cluster.slot ?? 0
        var failure: RedisError?
        for _ in 0..<2 {
            let primary = try map.primary(for: slot, endpoint: endpoint, seeds: cluster.seeds, timeout: timeout)
            var target = endpoint
            target.host = primary.host
            target.port = primary.port
            target.cluster = ClusterTarget(seeds: cluster.seeds, slot: slot)
            do throws(RedisError) {
                return try RedisConnection(endpoint: target, timeout: timeout)
            } catch {
                map.markStale()
                failure = error
            }
        }
        throw failure ?? RedisError(code: .connection, message: "no primary for hash slot \(slot)", server: endpoint.description)
    }

    /// The address in a `-MOVED slot host:port` or `-ASK slot host:port` reply.
    static func redirectTarget(_ message: String) -> SentinelTarget.Address? {
        let parts = message.split(separator: " ")
        guard parts.count == 3 else { return nil }
        return SentinelTarget.Address(String(parts[2]), defaultPort: 6379)
    }
}
