import FoundationEssentials

/// A job to enqueue when another succeeds (`then`), routed when the chain was enqueued.
public struct ChainStep: Sendable, Equatable {
    /// Its type.
    public var type: String
    /// The priority it was routed with.
    public var priority: String?
    /// The queue it goes to.
    public var queue: String
    /// Its payload.
    public var payload: JSONValue
    /// What follows it in turn.
    public var then: [ChainStep]

    /// Makes a step.
    public init(type: String, priority: String?, queue: String, payload: JSONValue, then: [ChainStep] = []) {
        self.type = type
        self.priority = priority
        self.queue = queue
        self.payload = payload
        self.then = then
    }

    /// The new job this step becomes.
    public func envelope(now: Date = Date()) -> JobEnvelope {
        var job = JobEnvelope(id: .make(now: now), type: type, priority: priority, queue: queue, payload: payload, enqueuedAt: now)
        job.then = then
        return job
    }

    var json: JSONValue {
        var fields: [String: JSONValue] = ["type": .string(type), "queue": .string(queue), "payload": payload,
                                          "priority": priority.map(JSONValue.string) ?? .null]
        if !then.isEmpty { fields["then"] = .array(then.map(\.json)) }
        return .object(fields)
    }

    init(json: JSONValue) throws(EnvelopeError) {
        guard case .object(let fields) = json, let type = fields["type"]?.stringValue, !type.isEmpty,
              let queue = fields["queue"]?.stringValue, !queue.isEmpty else {
            throw EnvelopeError(message: "each job in \"then\" must be an object with a \"type\" and a \"queue\"")
        }
        var then: [ChainStep] = []
        if case .array(let steps)? = fields["then"] {
            then = try steps.map { step throws(EnvelopeError) in try ChainStep(json: step) }
        }
        self.init(type: type, priority: fields["priority"]?.stringValue, queue: queue, payload: fields["payload"] ?? .null, then: then)
    }
}

/// The unique lock a job holds: its key (the values at the type's key paths), when it is released,
/// and its lifetime.
public struct UniqueMark: Sendable, Equatable {
    /// The values at the type's key paths, as a JSON array.
    public var key: String
    /// When the lock is released.
    public var until: UniqueTerms.Until
    /// The lock's lifetime in milliseconds.
    public var lifetimeMilliseconds: Int64

    /// Makes one.
    public init(key: String, until: UniqueTerms.Until, lifetimeMilliseconds: Int64) {
        self.key = key
        self.until = until
        self.lifetimeMilliseconds = lifetimeMilliseconds
    }

    var json: JSONValue {
        .object(["key": .string(key), "until": .string(until.rawValue), "for_ms": .integer(lifetimeMilliseconds)])
    }

    init(json: JSONValue) throws(EnvelopeError) {
        guard case .object(let fields) = json, let key = fields["key"]?.stringValue,
              let until = fields["until"]?.stringValue.flatMap(UniqueTerms.Until.init(rawValue:)),
              let lifetime = fields["for_ms"]?.intValue, lifetime > 0 else {
            throw EnvelopeError(message: "\"unique\" must be {\"key\": string, \"until\": start|done|ttl, \"for_ms\": number}")
        }
        self.init(key: key, until: until, lifetimeMilliseconds: Int64(lifetime))
    }
}

extension JobEnvelope {
    /// Whether succeeding does more than ack: releasing a unique lock held until done, enqueueing
    /// `then` jobs, or counting toward a batch.
    public var hasCompletionEffects: Bool {
        unique?.until == .done || !then.isEmpty || batch != nil
    }
}
