/// Label values for metrics and throughput counts, bounded by the configuration: a type or queue
/// it does not declare is ``unknown``, so values from outside never grow the label set.
public struct MetricLabels: Sendable {
    /// The value for anything the configuration does not declare.
    public static let unknown = "unknown"

    private let types: Set<String>
    private let queues: Set<String>
    /// The first group (by name) reading each queue.
    private let readers: [String: String]

    /// Labels bounded by `configuration`.
    public init(configuration: RouterConfiguration) {
        types = Set(configuration.types.keys)
        queues = configuration.declaredQueues
        var readers: [String: String] = [:]
        for name in configuration.groups.keys.sorted() {
            for queue in configuration.groups[name]?.queues ?? [] where readers[queue] == nil { readers[queue] = name }
        }
        self.readers = readers
    }

    /// `type` when the configuration declares it, else ``unknown``.
    public func type(_ type: String?) -> String {
        guard let type, types.contains(type) else { return Self.unknown }
        return type
    }

    /// `queue` when the configuration declares it, else ``unknown``.
    public func queue(_ queue: String) -> String {
        queues.contains(queue) ? queue : Self.unknown
    }

    /// The group reading `queue` (for jobs recovered from another worker, whose group is not recorded).
    public func reader(of queue: String) -> String {
        readers[queue] ?? Self.unknown
    }
}
