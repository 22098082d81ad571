import ArgumentParser

/// `jobrouter`: routes jobs by type and priority into Redis lists and runs worker groups over them.
@main
struct JobRouterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobrouter",
        abstract: "Route background jobs by type and priority through Redis, and run worker groups.",
        subcommands: [CheckCommand.self, EnqueueCommand.self, WorkCommand.self, StatusCommand.self, DeadCommand.self]
    )
}
