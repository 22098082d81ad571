/// The handler providers a program links, and the Swift handlers it registered: everything that
/// turns a `[types.NAME]` table into a running handler.
public struct HandlerRegistry: Sendable {
    private var byKind: [HandlerKind: any HandlerProvider] = [:]
    private var swiftHandlers: [String: any JobHandler] = [:]
    /// Resources handed to every handler in its ``JobContext``.
    public private(set) var services = HandlerServices()

    /// A registry with the core's providers: `exec`, `noop` and `swift`.
    public init() {
        add(ExecHandlerProvider())
        add(NoopHandlerProvider())
    }

    /// Adds (or replaces) the provider of its kind.
    public mutating func add(_ provider: any HandlerProvider) {
        byKind[provider.kind] = provider
    }

    /// Runs `type`'s jobs with `handler`. The type must be declared with `handler = "swift"`.
    public mutating func register(type: String, _ handler: any JobHandler) {
        swiftHandlers[type] = handler
    }

    /// Runs `type`'s jobs with `body`.
    public mutating func register(type: String, _ body: @escaping @Sendable (JobEnvelope, JobContext) async throws -> Void) {
        swiftHandlers[type] = ClosureJobHandler(body)
    }

    /// Hands `service` to every handler through ``JobContext/services``.
    public mutating func provide<Service: Sendable>(_ service: Service) {
        services.add(service)
    }

    /// Runs every `handler = "smtp"` type with `handler` (a shortcut for adding a
    /// ``FixedHandlerProvider``; `JobRouterSMTP`'s `SMTPHandlerProvider` sizes one by itself).
    public mutating func provideSMTP(_ handler: any JobHandler) {
        add(FixedHandlerProvider(kind: .smtp, handler: handler))
    }

    /// Every provider, the `swift` one included: pass them to ``RouterConfiguration/load(path:providers:)``.
    public var providers: [any HandlerProvider] {
        Array(byKind.values) + [SwiftHandlerProvider(handlers: swiftHandlers)]
    }

    /// The provider of `kind`, if this program has one.
    public func provider(for kind: HandlerKind) -> (any HandlerProvider)? {
        kind == .swift ? SwiftHandlerProvider(handlers: swiftHandlers) : byKind[kind]
    }

    /// The handler for every type in `types`, or an error naming the first type that has none.
    public func resolve(_ types: [String], in configuration: RouterConfiguration,
                        groups: [WorkerGroupConfiguration]? = nil) throws(HandlerResolutionError) -> [String: any JobHandler] {
        let context = HandlerContext(configuration: configuration, groups: groups ?? Array(configuration.groups.values))
        var handlers: [String: any JobHandler] = [:]
        for name in types {
            guard let type = configuration.types[name] else { continue }
            guard let provider = provider(for: type.handler) else {
                throw HandlerResolutionError(type: name, message: Self.missing(type.handler))
            }
            do {
                handlers[name] = try provider.makeHandler(for: type, context: context)
            } catch let error as HandlerResolutionError {
                throw error
            } catch {
                throw HandlerResolutionError(type: name, message: "\(error)")
            }
        }
        return handlers
    }

    /// Why a type cannot be run by this program, or `nil` when it can. `check` prints this.
    public func availability(of type: JobTypeConfiguration, in configuration: RouterConfiguration) -> String? {
        guard let provider = provider(for: type.handler) else { return Self.missing(type.handler) }
        return provider.availability(of: type, in: configuration)
    }

    private static func missing(_ kind: HandlerKind) -> String {
        let provider = HandlerKind.firstPartyProviders[kind].map { " (\($0))" } ?? ""
        return "handler \"\(kind)\" is not available in this program: add its provider to the HandlerRegistry\(provider)"
    }
}

/// A job type that no handler can run.
public struct HandlerResolutionError: Error, CustomStringConvertible, Sendable {
    /// The type.
    public var type: String
    /// Why.
    public var message: String

    /// Makes an error.
    public init(type: String, message: String) {
        self.type = type
        self.message = message
    }

    public var description: String { "types.\(type): \(message)" }
}
