/// Which handler runs each job type, resolved from the configuration and from handlers
/// registered in Swift.
public struct HandlerRegistry: Sendable {
    private var registered: [String: any JobHandler] = [:]
    private var smtpHandler: (any JobHandler)?

    /// An empty registry: `exec` and `noop` types still resolve by themselves.
    public init() {}

    /// Runs `type`'s jobs with `handler`. The type must be declared with `handler = "swift"`.
    public mutating func register(type: String, _ handler: any JobHandler) {
        registered[type] = handler
    }

    /// Runs `type`'s jobs with `body`.
    public mutating func register(type: String, _ body: @escaping @Sendable (JobEnvelope, JobContext) async throws -> Void) {
        registered[type] = ClosureJobHandler(body)
    }

    /// Runs every `handler = "smtp"` type with `handler` (the CLI passes the libcurl mail handler).
    public mutating func provideSMTP(_ handler: any JobHandler) {
        smtpHandler = handler
    }

    /// The handler for every type in `types`, or an error naming the first type that has none.
    public func resolve(_ types: [String], in configuration: RouterConfiguration) throws(HandlerResolutionError) -> [String: any JobHandler] {
        var handlers: [String: any JobHandler] = [:]
        for name in types {
            guard let type = configuration.types[name] else { continue }
            switch type.handler {
            case .noop:
                handlers[name] = NoopJobHandler()
            case .exec:
                handlers[name] = ExecJobHandler(command: type.command, passthrough: type.environment)
            case .smtp:
                guard let smtpHandler else {
                    throw HandlerResolutionError(type: name, message: "handler \"smtp\" needs the mail handler: from Swift, call HandlerRegistry.provideSMTP(SMTPMailHandler(...))")
                }
                handlers[name] = smtpHandler
            case .swift:
                guard let handler = registered[name] else {
                    throw HandlerResolutionError(type: name, message: "handler \"swift\" but no Swift handler is registered for it; run the worker from your own program with HandlerRegistry.register(type: \"\(name)\", ...)")
                }
                handlers[name] = handler
            }
        }
        return handlers
    }

    /// Why a type in the configuration cannot be run here, or `nil` when it can. `check` prints this.
    public static func availability(of type: JobTypeConfiguration) -> String? {
        switch type.handler {
        case .smtp: return nil
        case .swift: return "needs a Swift handler registered by your own program; `jobrouter work` cannot run it"
        case .exec, .noop: return nil
        }
    }
}

/// A job type that no handler can run.
public struct HandlerResolutionError: Error, CustomStringConvertible, Sendable {
    /// The type.
    public var type: String
    /// Why.
    public var message: String
    public var description: String { "types.\(type): \(message)" }
}
