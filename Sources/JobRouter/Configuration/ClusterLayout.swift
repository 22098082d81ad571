/// Where keys live in a Redis Cluster (`[redis] cluster`).
///
/// A Lua script, and a `BLPOP` over many lists, may only touch keys of one hash slot. So the unit of
/// placement is a queue's **hash tag**, the text between its first `{` and the next `}`: the queues
/// `{mail}emails:high` and `{mail}emails:low` share a slot, and JobRouter keeps its own keys for
/// them (claims, leases, schedule, dead letters, unique locks, cron ticks, counters) under
/// `NAMESPACE:{mail}:`, in the same slot. A group reads queues of one tag, so each group's work is
/// one shard's; groups with different tags spread over the shards.
///
/// State that no queue owns (the cluster-wide throughput counters, the shared rate limiters) lives
/// under ``globalTag``.
public enum ClusterLayout {
    /// The tag of JobRouter's keys that belong to no queue: `NAMESPACE:{global}:`.
    public static let globalTag = "global"

    /// The hash tag Redis Cluster hashes `key` by: the text between the first `{` and the next `}`,
    /// when that text is not empty; `nil` when the whole key is hashed.
    public static func hashTag(of key: String) -> Substring? {
        guard let open = key.firstIndex(of: "{") else { return nil }
        let rest = key[key.index(after: open)...]
        guard let close = rest.firstIndex(of: "}"), close > rest.startIndex else { return nil }
        return rest[..<close]
    }

    /// The cluster's hash slot of `key` (CRC16/XMODEM of the key or its hash tag, modulo 16384).
    public static func slot(of key: String) -> Int {
        let hashed = hashTag(of: key).map { Array($0.utf8) } ?? Array(key.utf8)
        return Int(crc16(hashed) & 0x3FFF)
    }

    /// The prefix of JobRouter's keys for the queues tagged `tag`: `NAMESPACE:{TAG}`.
    public static func namespace(_ base: String, tag: some StringProtocol) -> String {
        "\(base):{\(tag)}"
    }

    /// CRC16/XMODEM (polynomial 0x1021, initial 0), as Redis Cluster's `keyHashSlot`.
    static func crc16(_ bytes: [UInt8]) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 {
                crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
            }
        }
        return crc
    }
}

extension RouterConfiguration {
    /// In a cluster configuration, the hash tag of every queue the configuration names (routes,
    /// the default queue, groups), sorted: the shards' namespaces. Empty without `[redis] cluster`
    /// (unless `forced`: the cluster is named elsewhere, e.g. by `JOBROUTER_REDIS_URL`).
    public func clusterTags(forced: Bool = false) -> [String] {
        guard forced || !redis.cluster.isEmpty else { return [] }
        let queues = declaredQueues.union(groups.values.flatMap(\.queues)).union([defaultQueue])
        return Set(queues.compactMap { ClusterLayout.hashTag(of: $0).map(String.init) }).sorted()
    }

    /// The first problem that would make a cluster configuration touch keys of two slots in one
    /// script or `BLPOP`, as `key.path: message`; `nil` when there is none (or no cluster, unless
    /// `forced`). `validate()` reports it with the file and line.
    public func clusterLayoutProblem(forced: Bool) -> String? {
        clusterProblem(forced: forced).map { TOMLLocator.join($0.path) + ": " + $0.message }
    }

    func clusterProblem(forced: Bool = false) -> (path: [String], message: String)? {
        guard forced || !redis.cluster.isEmpty else { return nil }
        if !redis.sentinels.isEmpty, !redis.cluster.isEmpty { return (["redis", "cluster"], "set together with redis.sentinels; a deployment is either a Sentinel set or a Cluster") }
        if redis.database != 0 { return (["redis", "db"], "a Redis Cluster has only database 0") }
        if redis.namespace.contains("{") || redis.namespace.contains("}") {
            return (["redis", "namespace"], "cannot hold '{' or '}' in a cluster: JobRouter adds each queue's hash tag to it")
        }
        func untagged(_ queue: String) -> String {
            "queue '\(queue)' has no hash tag; in a Redis Cluster every queue needs one so its keys share a slot: name it e.g. '{\(Self.suggestedTag(queue))}\(queue)'"
        }
        if ClusterLayout.hashTag(of: defaultQueue) == nil { return (["default_queue"], untagged(defaultQueue)) }
        for name in types.keys.sorted() {
            guard let type = types[name] else { continue }
            for priority in type.priorities.keys.sorted() {
                if let queue = type.priorities[priority], ClusterLayout.hashTag(of: queue) == nil {
                    return (["types", name, "priorities", priority], untagged(queue))
                }
            }
        }
        for name in groups.keys.sorted() {
            guard let group = groups[name], let first = group.queues.first else { continue }
            let path = ["groups", name, "queues"]
            guard let tag = ClusterLayout.hashTag(of: first) else { return (path, untagged(first)) }
            for queue in group.queues.dropFirst() {
                guard let other = ClusterLayout.hashTag(of: queue) else { return (path, untagged(queue)) }
                if other != tag {
                    let slots = "slot \(ClusterLayout.slot(of: first)) and slot \(ClusterLayout.slot(of: queue))"
                    let renamed = "{\(tag)}" + queue.replacingEvery("{\(other)}", with: "")
                    return (path, "'\(first)' and '\(queue)' have different hash tags ({\(tag)}, {\(other)}: \(slots)); a group's queues, and the keys its scripts touch, must share one tag: rename '\(queue)' to '\(renamed)' (in its route too)")
                }
            }
        }
        return nil
    }

    private static func suggestedTag(_ queue: String) -> String {
        String(queue.prefix { $0 != ":" && $0 != "." && $0 != "-" })
    }
}
