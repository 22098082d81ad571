import Logging

/// Runs jobs of one type. Register your own with ``HandlerRegistry/register(type:_:)`` for types
/// declared with `handler = "swift"`.
///
/// Return to succeed; throw to fail. Throw a ``JobFailure`` with `permanent: true` for a job that can
/// never succeed (bad payload): it is dead-lettered instead of retried. The task is cancelled when the
/// type's `timeout` passes or the worker must stop at once: handlers that wait should honour cancellation.
public protocol JobHandler: Sendable {
    /// Runs one job.
    func handle(_ job: JobEnvelope, context: JobContext) async throws
}

/// What a handler gets besides the job.
public struct JobContext: Sendable {
    /// A logger with the job id, type and group as metadata.
    public var logger: Logger
    /// The worker group running the job.
    public var group: String
    /// The type's configured `timeout`.
    public var timeout: Duration
    /// Shared resources the program registered for handlers (see ``HandlerServices``): modules
    /// add typed accessors, e.g. `context.postgres` from JobRouterPostgres.
    public var services = HandlerServices()
}

/// Resources handlers share (a database pool, an HTTP client), found by their type. Register them
/// with ``HandlerRegistry/provide(_:)``; a module adds a typed accessor on ``JobContext``.
public struct HandlerServices: Sendable {
    private var byType: [ObjectIdentifier: any Sendable] = [:]

    /// No services.
    public init() {}

    /// Adds (or replaces) `service`, found later by its type.
    public mutating func add<Service: Sendable>(_ service: Service) {
        byType[ObjectIdentifier(Service.self)] = service
    }

    /// The service of type `Service`, when one was added.
    public subscript<Service: Sendable>(_ type: Service.Type) -> Service? {
        byType[ObjectIdentifier(type)] as? Service
    }
}

/// A handler made from a closure.
public struct ClosureJobHandler: JobHandler {
    private let body: @Sendable (JobEnvelope, JobContext) async throws -> Void

    /// Wraps `body`.
    public init(_ body: @escaping @Sendable (JobEnvelope, JobContext) async throws -> Void) {
        self.body = body
    }

    public func handle(_ job: JobEnvelope, context: JobContext) async throws {
        try await body(job, context)
    }
}

/// Succeeds at once (`handler = "noop"`): for load tests and demos.
public struct NoopJobHandler: JobHandler {
    /// Makes the handler.
    public init() {}
    public func handle(_ job: JobEnvelope, context: JobContext) async throws {}
}

/// Why a job failed, as a handler reports it.
public struct JobFailure: Error, CustomStringConvertible, Sendable {
    /// One line for logs and the dead-letter record; never a secret.
    public var message: String
    /// `true` when running the job again cannot help (bad payload, rejected recipient).
    public var permanent: Bool

    /// Makes a failure.
    public init(_ message: String, permanent: Bool = false) {
        self.message = message
        self.permanent = permanent
    }

    public var description: String { message }
}
