import Foundation

/// Enqueues jobs: routes each by type and priority, then pushes it to its queue.
///
/// ```swift
/// let client = JobRouterClient(configuration: config, driver: try RedisQueueDriver(configuration: config))
/// let job = try await client.enqueue(type: "email", priority: "high", payload: ["to": "a@example.org"])
/// print(job.id, job.queue)
/// ```
public struct JobRouterClient: Sendable {
    /// The routing table in use.
    public let router: Router
    /// The largest entry accepted, in bytes (`max_payload`).
    public let maxPayload: Int
    private let driver: any JobQueueDriver
    private let recorders: [any JobEventRecorder]

    /// Makes a client for `configuration`'s routing, pushing through `driver`.
    public init(configuration: RouterConfiguration, driver: any JobQueueDriver, recorders: [any JobEventRecorder] = []) {
        self.router = Router(configuration: configuration)
        self.maxPayload = configuration.maxPayload
        self.driver = driver
        self.recorders = recorders
    }

    /// Routes and pushes one job; returns it as stored (with its id and queue).
    @discardableResult
    public func enqueue(type: String, priority: String? = nil, payload: JSONValue = .null) async throws -> JobEnvelope {
        try await enqueue([JobRequest(type: type, priority: priority, payload: payload)])[0]
    }

    /// Routes and pushes one job whose payload is any `Encodable` value.
    @discardableResult
    public func enqueue<Payload: Encodable>(type: String, priority: String? = nil, payload: Payload) async throws -> JobEnvelope {
        let data = try JSONEncoder().encode(payload)
        return try await enqueue(type: type, priority: priority, payload: try JSONValue.parse(data))
    }

    /// Routes every request first (any routing error throws before anything is pushed), then pushes
    /// them all in as few round trips as the driver can.
    public func enqueue(_ requests: [JobRequest]) async throws -> [JobEnvelope] {
        try await enqueue(requests, progress: nil)
    }

    /// Like ``enqueue(_:)``, recording `progress` in the same atomic steps as the jobs (batches).
    public func enqueue(_ requests: [JobRequest], progress: BatchProgress?) async throws -> [JobEnvelope] {
        let jobs = try route(requests)
        try await driver.push(jobs, progress: progress)
        for job in jobs {
            for recorder in recorders { recorder.record(.enqueued(job)) }
        }
        return jobs
    }

    /// Routes the requests and holds them until `date` (a time in the past means now).
    public func enqueue(_ requests: [JobRequest], at date: Date) async throws -> [JobEnvelope] {
        var jobs = try route(requests)
        for index in jobs.indices { jobs[index].dueAt = max(date, jobs[index].enqueuedAt) }
        try await driver.schedule(jobs, at: date)
        for job in jobs {
            for recorder in recorders { recorder.record(.scheduled(job, at: date)) }
        }
        return jobs
    }

    /// Routes the requests and holds them for `delay`, measured on the queue server's clock.
    public func enqueue(_ requests: [JobRequest], after delay: Duration) async throws -> [JobEnvelope] {
        var jobs = try route(requests)
        let due = Date().addingTimeInterval(delay.inSeconds)
        for index in jobs.indices { jobs[index].dueAt = due }
        try await driver.schedule(jobs, after: delay)
        for job in jobs {
            for recorder in recorders { recorder.record(.scheduled(job, at: due)) }
        }
        return jobs
    }

    /// Routes one request and checks its size, throwing what enqueueing it would throw (without
    /// making the job: batch enqueue checks every line before it sends any).
    public func check(_ request: JobRequest) throws {
        let route = try router.route(type: request.type, priority: request.priority)
        if mayBeTooLarge(request) {
            try checkSize(JobEnvelope(type: request.type, priority: route.priority, queue: route.queue, payload: request.payload))
        }
    }

    /// A cheap bound first: only payloads that could be near the limit are encoded to measure. The
    /// estimate is at least a sixth of the encoded size (escapes of control characters take 6
    /// bytes), so an eighth of the limit never lets an oversize job through.
    private func mayBeTooLarge(_ request: JobRequest) -> Bool {
        maxPayload < 65_536 || request.payload.estimatedSizeOver(maxPayload / 8)
    }

    private func checkSize(_ job: JobEnvelope) throws {
        let size = job.jsonText.utf8.count
        if size > maxPayload { throw JobTooLargeError(type: job.type, size: size, maxPayload: maxPayload) }
    }

    private func route(_ requests: [JobRequest]) throws -> [JobEnvelope] {
        let now = Date()
        return try requests.map { request in
            let route = try router.route(type: request.type, priority: request.priority)
            let job = JobEnvelope(id: .make(now: now), type: request.type, priority: route.priority, queue: route.queue,
                                  payload: request.payload, enqueuedAt: now)
            if mayBeTooLarge(request) { try checkSize(job) }
            return job
        }
    }
}

/// A job bigger than `max_payload`: refused at enqueue, nothing pushed.
public struct JobTooLargeError: Error, CustomStringConvertible, Sendable {
    /// Its type.
    public var type: String
    /// Its size as stored, in bytes.
    public var size: Int
    /// The limit.
    public var maxPayload: Int
    public var description: String {
        "a job of type '\(type)' is \(size) bytes, over max_payload (\(maxPayload) bytes); keep big data elsewhere and pass a reference"
    }
}

/// One job to enqueue.
public struct JobRequest: Sendable, Equatable {
    /// The type, a key of `[types]`.
    public var type: String
    /// The priority, or `nil` for the type's `default_priority`.
    public var priority: String?
    /// Any JSON value.
    public var payload: JSONValue

    /// Makes a request.
    public init(type: String, priority: String? = nil, payload: JSONValue = .null) {
        self.type = type
        self.priority = priority
        self.payload = payload
    }
}

extension JobRequest {
    /// Reads one line of an NDJSON batch: `{"type": "...", "priority": "...", "payload": ...}`
    /// (`priority` and `payload` may be left out).
    public init(ndjsonLine line: Data) throws(EnvelopeError) {
        let value: JSONValue
        do {
            value = try JSONValue.parse(line)
        } catch {
            throw EnvelopeError(message: "not valid JSON")
        }
        guard case .object(let fields) = value else {
            throw EnvelopeError(message: "not a JSON object (found \(value.typeName))")
        }
        for key in fields.keys.sorted() where !["type", "priority", "payload"].contains(key) {
            throw EnvelopeError(message: "unknown field \"\(key)\"; a line has \"type\", \"priority\" and \"payload\"")
        }
        guard let type = fields["type"]?.stringValue, !type.isEmpty else {
            throw EnvelopeError(message: "\"type\" must be a non-empty string")
        }
        var priority: String?
        switch fields["priority"] {
        case nil, .null?: priority = nil
        case .string(let text)?: priority = text
        case let other?: throw EnvelopeError(message: "\"priority\" must be a string, not \(other.typeName)")
        }
        self.init(type: type, priority: priority, payload: fields["payload"] ?? .null)
    }
}
