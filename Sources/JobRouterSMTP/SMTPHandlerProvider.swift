import JobRouter
import Synchronization

/// `handler = "smtp"`: one ``SMTPMailHandler`` shared by every mail type of a worker, with one
/// connection per worker slot that can receive mail (the concurrency of the groups it runs that
/// read a queue some `smtp` type routes to).
public final class SMTPHandlerProvider: HandlerProvider {
    private let environment: [String: String]?
    private let shared = Mutex<SMTPMailHandler?>(nil)

    /// Reads the SMTP credentials from `environment` (default: the process's) when it makes the handler.
    public init(environment: [String: String]? = nil) {
        self.environment = environment
    }

    public var kind: HandlerKind { .smtp }

    public func validate(_ type: JobTypeConfiguration, in configuration: RouterConfiguration) -> HandlerOptionProblem? {
        configuration.smtp == nil ? HandlerOptionProblem(key: "handler", "\"smtp\" needs an [smtp] table (url, from)") : nil
    }

    public func makeHandler(for type: JobTypeConfiguration, context: HandlerContext) throws -> any JobHandler {
        try shared.withLock { handler in
            if let handler { return handler }
            let slots = context.groups.filter(context.configuration.receivesMail).map(\.concurrency).reduce(0, +)
            let made = if let environment {
                try SMTPMailHandler(configuration: context.configuration, connections: max(slots, 1), environment: environment)
            } else {
                try SMTPMailHandler(configuration: context.configuration, connections: max(slots, 1))
            }
            handler = made
            return made
        }
    }
}
