/// One kind of handler (`handler = "exec"`, `"smtp"`, `"sql"`, …): it names its kind, reads and
/// checks its own keys of a `[types.NAME]` table, says whether it can run here, and makes the
/// handler. The core provides `exec`, `noop` and `swift`; `JobRouterSMTP` provides `smtp`; a
/// program registers the providers it links in a ``HandlerRegistry`` and passes their
/// ``HandlerRegistry/providers`` when it loads the configuration.
///
/// No code outside a provider switches over handler kinds.
public protocol HandlerProvider: Sendable {
    /// The `handler` value it serves.
    var kind: HandlerKind { get }
    /// The keys of a `[types.NAME]` table this kind reads, besides the ones every type has
    /// (`handler`, `priorities`, `default_priority`, `timeout`, `max_attempts`, `backoff`). Their
    /// values arrive in ``JobTypeConfiguration/options``.
    var optionKeys: Set<String> { get }
    /// Checks a type of this kind in `configuration`; returns the first problem, by key.
    func validate(_ type: JobTypeConfiguration, in configuration: RouterConfiguration) -> HandlerOptionProblem?
    /// Why `jobrouter work` cannot run `type` in this program (printed by `check`), or `nil`.
    func availability(of type: JobTypeConfiguration, in configuration: RouterConfiguration) -> String?
    /// Makes the handler that runs `type`'s jobs in a worker running `context.groups`.
    func makeHandler(for type: JobTypeConfiguration, context: HandlerContext) throws -> any JobHandler
}

extension HandlerProvider {
    public var optionKeys: Set<String> { [] }
    public func validate(_ type: JobTypeConfiguration, in configuration: RouterConfiguration) -> HandlerOptionProblem? { nil }
    public func availability(of type: JobTypeConfiguration, in configuration: RouterConfiguration) -> String? { nil }
}

/// What a provider gets when a worker asks it for a handler.
public struct HandlerContext: Sendable {
    /// The whole configuration.
    public var configuration: RouterConfiguration
    /// The groups the worker runs (a provider sizes its connections from their concurrency).
    public var groups: [WorkerGroupConfiguration]

    /// Makes a context.
    public init(configuration: RouterConfiguration, groups: [WorkerGroupConfiguration]) {
        self.configuration = configuration
        self.groups = groups
    }
}

/// A problem a provider found in a type's keys: reported as `types.NAME.KEY: message`.
public struct HandlerOptionProblem: Sendable, Equatable {
    /// The key under `[types.NAME]` (e.g. `command`), or `handler` for the kind as a whole.
    public var key: String
    /// What is wrong.
    public var message: String

    /// Makes a problem.
    public init(key: String, _ message: String) {
        self.key = key
        self.message = message
    }
}

/// `handler = "exec"`: runs `command` with the job on stdin (see ``ExecJobHandler``).
public struct ExecHandlerProvider: HandlerProvider {
    /// Makes the provider.
    public init() {}
    public var kind: HandlerKind { .exec }
    public var optionKeys: Set<String> { ["command", "env"] }

    public func validate(_ type: JobTypeConfiguration, in configuration: RouterConfiguration) -> HandlerOptionProblem? {
        if let command = type.options["command"], command.stringsValue == nil {
            // A command line in one string is the usual first try: no shell splits it.
            if let line = command.stringValue {
                let words = line.split(separator: " ").map { "\"\($0)\"" }.joined(separator: ", ")
                return HandlerOptionProblem(key: "command", "must be an array of strings, the program and its arguments (no shell runs it): command = [\(words)]")
            }
            return HandlerOptionProblem(key: "command", "must be an array of strings")
        }
        if type.command.isEmpty || type.command[0].isEmpty {
            return HandlerOptionProblem(key: "command", "handler \"exec\" needs a command: an array like [\"./scripts/job.sh\", \"--flag\"]")
        }
        if type.options["env"].map({ $0.stringsValue == nil }) == true {
            return HandlerOptionProblem(key: "env", "must be an array of strings")
        }
        for (index, name) in type.environment.enumerated() {
            if name.isEmpty || name.contains("=") {
                return HandlerOptionProblem(key: "env", "element \(index + 1) must be a variable name, not '\(name)'")
            }
            if configuration.secretEnvironmentNames.contains(name) {
                return HandlerOptionProblem(key: "env", "'\(name)' holds one of JobRouter's own secrets and is never passed to jobs")
            }
        }
        return nil
    }

    public func makeHandler(for type: JobTypeConfiguration, context: HandlerContext) throws -> any JobHandler {
        ExecJobHandler(command: type.command, passthrough: type.environment)
    }
}

/// `handler = "noop"`: succeeds at once.
public struct NoopHandlerProvider: HandlerProvider {
    /// Makes the provider.
    public init() {}
    public var kind: HandlerKind { .noop }
    public func makeHandler(for type: JobTypeConfiguration, context: HandlerContext) throws -> any JobHandler {
        NoopJobHandler()
    }
}

/// `handler = "swift"`: the handlers a program registered by type name.
public struct SwiftHandlerProvider: HandlerProvider {
    /// Handlers by type name.
    public var handlers: [String: any JobHandler]

    /// Serves `handlers`.
    public init(handlers: [String: any JobHandler] = [:]) {
        self.handlers = handlers
    }

    public var kind: HandlerKind { .swift }

    public func availability(of type: JobTypeConfiguration, in configuration: RouterConfiguration) -> String? {
        handlers[type.name] == nil ? "needs a Swift handler registered by your own program; `jobrouter work` cannot run it" : nil
    }

    public func makeHandler(for type: JobTypeConfiguration, context: HandlerContext) throws -> any JobHandler {
        guard let handler = handlers[type.name] else {
            throw HandlerResolutionError(type: type.name, message: "handler \"swift\" but no Swift handler is registered for it; run the worker from your own program with HandlerRegistry.register(type: \"\(type.name)\", ...)")
        }
        return handler
    }
}

/// One ready-made handler for every type of a kind (e.g. the mail handler a program built itself).
public struct FixedHandlerProvider: HandlerProvider {
    public let kind: HandlerKind
    private let handler: any JobHandler

    /// Runs every type of `kind` with `handler`.
    public init(kind: HandlerKind, handler: any JobHandler) {
        self.kind = kind
        self.handler = handler
    }

    public func makeHandler(for type: JobTypeConfiguration, context: HandlerContext) throws -> any JobHandler {
        handler
    }
}

extension JSONValue {
    /// The elements, when this is an array of strings.
    var stringsValue: [String]? {
        guard case .array(let elements) = self else { return nil }
        let strings = elements.compactMap(\.stringValue)
        return strings.count == elements.count ? strings : nil
    }
}
