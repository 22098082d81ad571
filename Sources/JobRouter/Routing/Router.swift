/// Where a job goes: the queue and the priority it was routed with.
public struct Route: Sendable, Equatable {
    /// The Redis list the job is pushed to.
    public var queue: String
    /// The priority used, or `nil` for a type without priorities.
    public var priority: String?
}

/// Maps (type, priority) to a queue. Built once from a validated configuration; pure and `Sendable`.
///
/// A producer can only ever reach a queue the configuration declares: every answer comes from
/// a `priorities` table or is `default_queue`.
public struct Router: Sendable {
    private let configuration: RouterConfiguration
    /// Each type's routing, taken out of its ``JobType`` once: routing a job then copies two
    /// values, not the whole type (handler options, retry and limit settings).
    private let routes: [String: TypeRoutes]

    private struct TypeRoutes: Sendable {
        var priorities: [String: String]
        var defaultPriority: String?
    }

    /// Makes a router for `configuration` (which ``RouterConfiguration/load(path:)`` has validated).
    public init(configuration: RouterConfiguration) {
        self.configuration = configuration
        self.routes = configuration.types.mapValues { TypeRoutes(priorities: $0.priorities, defaultPriority: $0.defaultPriority) }
    }

    /// The names of every known type, sorted.
    public var typeNames: [String] { configuration.types.keys.sorted() }

    /// The queue for a job of `type` at `priority` (or the type's default priority when `nil`).
    public func route(type: String, priority: String?) throws(RoutingError) -> Route {
        guard let jobType = routes[type] else {
            throw RoutingError(type: type, priority: priority,
                               message: "unknown job type '\(type)'; known types: \(typeNames.joined(separator: ", "))")
        }
        if jobType.priorities.isEmpty {
            if let priority {
                throw RoutingError(type: type, priority: priority,
                                   message: "type '\(type)' has no priorities, so priority '\(priority)' cannot be used; omit it")
            }
            return Route(queue: configuration.defaultQueue, priority: nil)
        }
        // Only an error names the type's priorities: sorting them per routed job was a cost of its own.
        var known: String { jobType.priorities.keys.sorted().joined(separator: ", ") }
        guard let chosen = priority ?? jobType.defaultPriority else {
            throw RoutingError(type: type, priority: nil,
                               message: "type '\(type)' has no default_priority, so a priority is needed: one of \(known)")
        }
        guard let queue = jobType.priorities[chosen] else {
            throw RoutingError(type: type, priority: chosen,
                               message: "unknown priority '\(chosen)' for type '\(type)'; its priorities: \(known)")
        }
        return Route(queue: queue, priority: chosen)
    }

    /// Every (type, priority, queue) row, sorted by type then priority: what `jobrouter check` prints.
    public var table: [(type: String, priority: String?, queue: String)] {
        typeNames.flatMap { name -> [(type: String, priority: String?, queue: String)] in
            guard let type = configuration.types[name] else { return [] }
            if type.priorities.isEmpty { return [(name, nil, configuration.defaultQueue)] }
            return type.priorities.keys.sorted().map { (name, $0, type.priorities[$0] ?? "") }
        }
    }
}

/// A (type, priority) pair the configuration does not route.
public struct RoutingError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The type asked for.
    public var type: String
    /// The priority asked for, if any.
    public var priority: String?
    /// One line saying what is wrong and what would be accepted.
    public var message: String
    public var description: String { message }
}
