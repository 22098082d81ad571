import FoundationEssentials

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
    /// The `unique` terms of the types that have them.
    private let uniqueTerms: [String: UniqueTerms]

    /// Makes a client for `configuration`'s routing, pushing through `driver`.
    public init(configuration: RouterConfiguration, driver: any JobQueueDriver, recorders: [any JobEventRecorder] = []) {
        self.router = Router(configuration: configuration)
        self.maxPayload = configuration.maxPayload
        self.driver = driver
        self.recorders = recorders
        self.uniqueTerms = configuration.types.compactMapValues(\.unique)
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
    /// A job of a unique type whose lock is held is not made: its place in the result holds the
    /// job that holds the lock (see ``submit(_:progress:batch:)`` to tell the two apart).
    public func enqueue(_ requests: [JobRequest], progress: BatchProgress?) async throws -> [JobEnvelope] {
        try await store(requests, progress: progress, batch: nil).envelopes
    }

    /// Routes and pushes the requests, saying for each whether it was enqueued or, for a unique
    /// type whose lock is held, which job holds it. With `batch` (opened by ``openBatch(_:onComplete:)``)
    /// the jobs count toward its callback. Jobs of unique types go one script call each; the rest
    /// in as few round trips as the driver can.
    public func submit(_ requests: [JobRequest], progress: BatchProgress? = nil, batch: String? = nil) async throws -> [EnqueueResult] {
        try await store(requests, progress: progress, batch: batch).results
    }

    private func store(_ requests: [JobRequest], progress: BatchProgress?, batch: String?) async throws -> Stored {
        guard requests.count > Self.overlapChunk, progress == nil else {
            return try await store(prepare(requests, batch: batch), progress: progress)
        }
        // A large call: every request is routed first (a routing error throws before anything is
        // pushed), then each chunk is encoded while the one before it is pushed.
        let jobs = try route(requests, batch: batch)
        return try await store(jobs, due: nil, event: { .enqueued($0) }) { plain in
            try await withThrowingTaskGroup(of: Void.self) { pushes in
                var pushing = false
                for start in stride(from: 0, to: plain.count, by: Self.overlapChunk) {
                    // A slice: copying the chunk would retain every field of every job.
                    let chunk = plain[start..<min(start + Self.overlapChunk, plain.count)]
                    var entries: [[UInt8]] = []
                    entries.reserveCapacity(chunk.count)
                    for index in chunk.indices { entries.append(chunk[index].jsonBytes) }
                    // In order: a chunk is pushed once the one before it is in.
                    if pushing { try await pushes.next() }
                    pushes.addTask { try await driver.push(chunk, entries: entries, progress: nil, batch: batch) }
                    pushing = true
                }
                try await pushes.waitForAll()
            }
        }
    }

    /// How many jobs of a large ``submit(_:progress:batch:)`` are encoded while the previous ones
    /// are pushed.
    static let overlapChunk = 2_000

    /// Does the part of ``submit(_:progress:batch:)`` that needs no server: routes and checks the
    /// requests (throwing as `submit` would, before anything is pushed), makes their jobs and
    /// encodes them. A caller with many chunks prepares the next while the last is pushed.
    public func prepare(_ requests: [JobRequest], batch: String? = nil) throws -> PreparedJobs {
        let jobs = try route(requests, batch: batch)
        var entries: [[UInt8]] = []
        entries.reserveCapacity(jobs.count)
        // By index: iterating would copy each job (a retain per field) to read it once.
        for index in jobs.indices where jobs[index].unique == nil { entries.append(jobs[index].jsonBytes) }
        return PreparedJobs(jobs: jobs, entries: entries, batch: batch)
    }

    /// Pushes jobs made by ``prepare(_:batch:)``, as ``submit(_:progress:batch:)`` does.
    public func submit(_ prepared: PreparedJobs, progress: BatchProgress? = nil) async throws -> [EnqueueResult] {
        try await store(prepared, progress: progress).results
    }

    private func store(_ prepared: PreparedJobs, progress: BatchProgress?) async throws -> Stored {
        // Progress is recorded even for a chunk with no plain job.
        try await store(prepared.jobs, due: nil, always: progress != nil, event: { .enqueued($0) }) { plain in
            try await driver.push(plain, entries: prepared.entries, progress: progress, batch: prepared.batch)
        }
    }

    /// Routes the requests and holds them until `date` (a time in the past means now).
    public func enqueue(_ requests: [JobRequest], at date: Date) async throws -> [JobEnvelope] {
        try await store(requests, at: date).envelopes
    }

    /// Routes the requests and holds them for `delay`, measured on the queue server's clock.
    public func enqueue(_ requests: [JobRequest], after delay: Duration) async throws -> [JobEnvelope] {
        try await store(requests, after: delay).envelopes
    }

    /// ``enqueue(_:at:)``, saying for each request whether it was a duplicate of a unique job.
    public func submit(_ requests: [JobRequest], at date: Date) async throws -> [EnqueueResult] {
        try await store(requests, at: date).results
    }

    private func store(_ requests: [JobRequest], at date: Date) async throws -> Stored {
        var jobs = try route(requests)
        for index in jobs.indices { jobs[index].dueAt = max(date, jobs[index].enqueuedAt) }
        return try await store(jobs, due: date, event: { .scheduled($0, at: date) }) { try await driver.schedule($0, at: date) }
    }

    /// ``enqueue(_:after:)``, saying for each request whether it was a duplicate of a unique job.
    public func submit(_ requests: [JobRequest], after delay: Duration) async throws -> [EnqueueResult] {
        try await store(requests, after: delay).results
    }

    private func store(_ requests: [JobRequest], after delay: Duration) async throws -> Stored {
        var jobs = try route(requests)
        let due = Date().addingTimeInterval(delay.inSeconds)
        for index in jobs.indices { jobs[index].dueAt = due }
        return try await store(jobs, due: due, event: { .scheduled($0, at: due) }) { try await driver.schedule($0, after: delay) }
    }

    /// Routed jobs once stored, and which were duplicates of a unique job (by index).
    private struct Stored {
        var jobs: [JobEnvelope]
        var existing: [Int: JobID] = [:]

        /// One result per job.
        var results: [EnqueueResult] {
            jobs.indices.map { EnqueueResult(job: jobs[$0], existing: existing[$0]) }
        }

        /// The jobs, a duplicate's with the existing job's id: the routed array itself when there
        /// is none (a large call's jobs are not copied again, a retain per field each).
        var envelopes: [JobEnvelope] {
            var envelopes = jobs
            for (index, id) in existing { envelopes[index].id = id }
            return envelopes
        }
    }

    /// Stores routed jobs: the plain ones through `plain` (one call, or none when there are none
    /// and not `always`), each unique one through its lock (now, or at `due`). Reports `event` for
    /// each job made.
    private func store(_ jobs: [JobEnvelope], due: Date?, always: Bool = false, event: (JobEnvelope) -> JobEvent,
                       plain: ([JobEnvelope]) async throws -> Void) async throws -> Stored {
        // The same array when no job is unique (the usual case): filtering copies every job.
        let unique = jobs.contains { $0.unique != nil }
        let others = unique ? jobs.filter { $0.unique == nil } : jobs
        if !others.isEmpty || always { try await plain(others) }
        var stored = Stored(jobs: jobs)
        // By index: iterating would copy each job (a retain per field) to read it once.
        guard unique || !recorders.isEmpty else { return stored }
        for index in jobs.indices {
            let existing = jobs[index].unique == nil ? nil : try await driver.pushUnique(jobs[index], due: due)
            if let existing {
                stored.existing[index] = existing
            } else {
                for recorder in recorders { recorder.record(event(jobs[index])) }
            }
        }
        return stored
    }

    /// Opens a batch whose `callback` job is enqueued once, when every job submitted with this
    /// batch id has succeeded or died (after ``sealBatch(_:)``). Its payload is
    /// `{"batch", "total", "succeeded", "dead", "dead_ids" (the first 1000), "payload" (the callback's own)}`.
    /// Returns the batch id (`id`, or a new one).
    @discardableResult
    public func openBatch(_ id: String? = nil, onComplete callback: JobRequest) async throws -> String {
        let batch = id ?? "b-" + JobID.make().rawValue
        guard let route = try route([callback]).first else { return batch }
        try await driver.openBatch(batch, callback: route)
        return batch
    }

    /// Says every job of `batch` is submitted; returns the callback's id if it was enqueued now
    /// (every job had finished already).
    @discardableResult
    public func sealBatch(_ batch: String) async throws -> JobID? {
        try await driver.sealBatch(batch)
    }

    /// Enqueues `requests` as one batch with a callback: opens it, submits the jobs, seals it.
    public func enqueueBatch(_ requests: [JobRequest], onComplete callback: JobRequest, id: String? = nil) async throws -> (batch: String, jobs: [EnqueueResult]) {
        let batch = try await openBatch(id, onComplete: callback)
        var results: [EnqueueResult] = []
        for start in stride(from: 0, to: requests.count, by: 10_000) {
            results += try await submit(Array(requests[start..<min(start + 10_000, requests.count)]), batch: batch)
        }
        try await sealBatch(batch)
        return (batch, results)
    }

    /// Routes one request and checks its size, throwing what enqueueing it would throw (without
    /// making the job: batch enqueue checks every line before it sends any).
    public func check(_ request: JobRequest) throws {
        let route = try router.route(type: request.type, priority: request.priority)
        if let terms = uniqueTerms[request.type] { _ = try terms.key(for: request.payload, type: request.type) }
        if !request.then.isEmpty { _ = try steps(request.then) }
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

    /// Routes one request into the job it would enqueue, without pushing it.
    public func makeJob(_ request: JobRequest) throws -> JobEnvelope {
        try route([request])[0]
    }

    /// The jobs `requests` make, counting toward `batch` when one is given.
    private func route(_ requests: [JobRequest], batch: String? = nil) throws -> [JobEnvelope] {
        let now = Date()
        return try requests.map { request in
            let route = try router.route(type: request.type, priority: request.priority)
            var job = JobEnvelope(id: .make(now: now), type: request.type, priority: route.priority, queue: route.queue,
                                  payload: request.payload, enqueuedAt: now)
            job.batch = batch
            if let terms = uniqueTerms[request.type] {
                job.unique = UniqueMark(key: try terms.key(for: request.payload, type: request.type), until: terms.until,
                                        lifetimeMilliseconds: max(terms.lifetime.inMilliseconds, 1))
            }
            if !request.then.isEmpty {
                job.then = try steps(request.then)
                try checkSize(job)
            } else if mayBeTooLarge(request) {
                try checkSize(job)
            }
            return job
        }
    }

    /// Routes a chain's next jobs now, so a routing mistake fails the enqueue, not the success.
    private func steps(_ requests: [JobRequest]) throws -> [ChainStep] {
        try requests.map { request in
            let route = try router.route(type: request.type, priority: request.priority)
            if uniqueTerms[request.type] != nil {
                throw UniqueKeyError(message: "type '\(request.type)' is unique; it cannot follow another job in 'then'")
            }
            return ChainStep(type: request.type, priority: route.priority, queue: route.queue, payload: request.payload,
                             then: try steps(request.then))
        }
    }
}

/// Jobs made from requests by ``JobRouterClient/prepare(_:batch:)``, not pushed yet.
public struct PreparedJobs: Sendable {
    /// The jobs, in the order of the requests.
    public let jobs: [JobEnvelope]
    /// The entries of the jobs pushed as they are (those of no unique type), in order.
    let entries: [[UInt8]]
    /// The batch (with a callback) the jobs count toward.
    let batch: String?
}

/// What enqueueing one request did.
public struct EnqueueResult: Sendable, Equatable {
    /// The job as routed (and stored, unless it is a duplicate).
    public var job: JobEnvelope
    /// For a unique type whose lock was held: the job holding it (this one was not made).
    public var existing: JobID?
    /// Whether the request was refused as a duplicate.
    public var isDuplicate: Bool { existing != nil }
    /// The id to give the caller: the new job's, or the existing one's.
    public var id: JobID { existing ?? job.id }

    /// Makes one.
    public init(job: JobEnvelope, existing: JobID?) {
        self.job = job
        self.existing = existing
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
    /// Jobs to enqueue once this one succeeds (each may have its own `then`): a chain.
    public var then: [JobRequest]

    /// Makes a request.
    public init(type: String, priority: String? = nil, payload: JSONValue = .null, then: [JobRequest] = []) {
        self.type = type
        self.priority = priority
        self.payload = payload
        self.then = then
    }
}

extension JobRequest {
    /// Reads one line of an NDJSON batch: `{"type": "...", "priority": "...", "payload": ...}`
    /// (`priority` and `payload` may be left out).
    public init(ndjsonLine line: Data) throws(EnvelopeError) {
        let read = line.withUnsafeBytes { raw in
            Result { () throws(EnvelopeError) in try JobRequest(ndjsonBytes: raw.bindMemory(to: UInt8.self)) }
        }
        self = try read.get()
    }

    /// ``init(ndjsonLine:)`` over bytes in place (batch enqueue reads its input buffer directly).
    /// The line's fields are taken as they are read: no dictionary is built for the line itself.
    package init(ndjsonBytes bytes: UnsafeBufferPointer<UInt8>) throws(EnvelopeError) {
        var fields = LineFields()
        let isObject: Bool
        do {
            isObject = try JSONParser.parseFields(bytes) { key, value in fields.take(key, value) }
        } catch {
            throw EnvelopeError(message: "not valid JSON: \(error)")
        }
        guard isObject else {
            let value: JSONValue
            do { value = try JSONParser.parse(bytes) } catch { throw EnvelopeError(message: "not valid JSON: \(error)") }
            throw EnvelopeError(message: "not a JSON object (found \(value.typeName))")
        }
        self = try Self(fields)
    }

    /// The fields a line (or a step of its `then`) may have; a repeated name keeps its last value,
    /// as a dictionary would.
    private struct LineFields {
        var type: JSONValue?
        var priority: JSONValue?
        var payload: JSONValue?
        var then: JSONValue?
        /// The first unknown field name in sorted order (the same message every time).
        var unknown: String?

        mutating func take(_ key: String, _ value: JSONValue) {
            switch key {
            case "type": type = value
            case "priority": priority = value
            case "payload": payload = value
            case "then": then = value
            default: if unknown.map({ key < $0 }) ?? true { unknown = key }
            }
        }
    }

    private init(fields: [String: JSONValue]) throws(EnvelopeError) {
        var line = LineFields()
        for (key, value) in fields { line.take(key, value) }
        self = try Self(line)
    }

    private init(_ fields: LineFields) throws(EnvelopeError) {
        if let key = fields.unknown {
            throw EnvelopeError(message: "unknown field \"\(key)\"; a line has \"type\", \"priority\", \"payload\" and \"then\"")
        }
        guard let type = fields.type?.stringValue, !type.isEmpty else {
            throw EnvelopeError(message: "\"type\" must be a non-empty string")
        }
        var priority: String?
        switch fields.priority {
        case nil, .null?: priority = nil
        case .string(let text)?: priority = text
        case let other?: throw EnvelopeError(message: "\"priority\" must be a string, not \(other.typeName)")
        }
        var then: [JobRequest] = []
        switch fields.then {
        case nil, .null?: break
        case .array(let steps)?:
            then = try steps.map { step throws(EnvelopeError) in
                guard case .object(let fields) = step else { throw EnvelopeError(message: "each job in \"then\" must be an object") }
                return try JobRequest(fields: fields)
            }
        case .object(let step)?: then = [try JobRequest(fields: step)]
        case let other?: throw EnvelopeError(message: "\"then\" must be a job or an array of jobs, not \(other.typeName)")
        }
        self.init(type: type, priority: priority, payload: fields.payload ?? .null, then: then)
    }
}
