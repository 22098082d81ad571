import ArgumentParser
import JobRouter
import JobRouterRedis

/// `jobrouter pause QUEUE…`: workers stop claiming from those queues (running jobs finish).
struct PauseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause",
        abstract: "Pause queues: workers stop claiming from them at once (running jobs finish; the group's other queues go on).",
        discussion: "Kept in Redis until `jobrouter resume`; `status` marks paused queues. Jobs can still be enqueued to them.")

    @OptionGroup var options: CommonOptions

    @Argument(help: "Queues to pause.")
    var queues: [String]

    func run() async throws {
        try await QueueNames.setPaused(queues, true, options: options)
    }
}

/// `jobrouter resume QUEUE…`.
struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Resume paused queues: workers claim from them again at once.")

    @OptionGroup var options: CommonOptions

    @Argument(help: "Queues to resume.")
    var queues: [String]

    func run() async throws {
        try await QueueNames.setPaused(queues, false, options: options)
    }
}

enum QueueNames {
    /// Pauses or resumes `queues` (names checked first) and says what changed.
    static func setPaused(_ queues: [String], _ paused: Bool, options: CommonOptions) async throws {
        try await CommandFailure.reporting {
            let configuration = try options.loadConfiguration()
            try check(queues, in: configuration)
            let changed = try await options.makeDriver(configuration).setPaused(queues, paused)
            let unchanged = queues.count - changed
            let note = unchanged == 0 ? "" : paused ? " (\(unchanged) already paused)" : " (\(unchanged) were not paused)"
            print("\(paused ? "paused" : "resumed") \(queues.joined(separator: ", "))" + note)
        }
    }

    /// Refuses names that no type routes to (a typo would pause nothing).
    static func check(_ queues: [String], in configuration: RouterConfiguration) throws {
        guard !queues.isEmpty else { throw CommandFailure("name at least one queue") }
        let declared = configuration.declaredQueues
        for queue in queues where !declared.contains(queue) {
            throw CommandFailure("no type routes to queue '\(queue)'; declared queues: \(declared.sorted().joined(separator: ", "))")
        }
    }
}
