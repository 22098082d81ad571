import ArgumentParser

/// `jobrouter`: routes jobs by type and priority into Redis lists and runs worker groups over them.
@main
struct JobRouterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobrouter",
        abstract: "Route background jobs by type and priority through Redis, and run worker groups.",
        discussion: "The shared flags (--config, --log-level) may come before or after the subcommand.",
        subcommands: [CheckCommand.self, EnqueueCommand.self, WorkCommand.self, StatusCommand.self, DeadCommand.self, MigrateCommand.self,
                      HistoryCommand.self, StatsCommand.self, SystemdCommand.self, RelayCommand.self, WebCommand.self,
                      SchedulesCommand.self, BatchesCommand.self, PauseCommand.self, ResumeCommand.self]
    )

    static func main() async {
        await main(Self.movingSharedFlags(Array(CommandLine.arguments.dropFirst())))
    }

    /// Flags every subcommand takes; each takes a value (`--config q.toml` or `--config=q.toml`).
    static let sharedFlags = ["--config", "--log-level"]

    /// `jobrouter --config q.toml work` → `jobrouter work --config q.toml`: shared flags given
    /// before the subcommand path are moved after it, where the subcommands read them.
    static func movingSharedFlags(_ arguments: [String]) -> [String] {
        var moved: [String] = []
        var rest: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" || !argument.hasPrefix("-") {
                // The subcommand path starts here: everything from it on stays in order.
                rest.append(contentsOf: arguments[index...])
                break
            }
            if sharedFlags.contains(argument), index + 1 < arguments.count {
                moved += [argument, arguments[index + 1]]
                index += 2
                continue
            }
            if sharedFlags.contains(where: { argument.hasPrefix($0 + "=") }) {
                moved.append(argument)
            } else {
                rest.append(argument)
            }
            index += 1
        }
        guard !moved.isEmpty else { return arguments }
        // After the subcommand path (the leading words), before its own arguments.
        let pathLength = subcommandPathLength(rest)
        return Array(rest.prefix(pathLength)) + moved + Array(rest.dropFirst(pathLength))
    }

    /// How many leading words of `arguments` name subcommands (`dead retry` is two).
    private static func subcommandPathLength(_ arguments: [String]) -> Int {
        var commands: [any ParsableCommand.Type] = configuration.subcommands
        var length = 0
        for argument in arguments {
            guard let match = commands.first(where: { $0._commandName == argument }) else { break }
            length += 1
            commands = match.configuration.subcommands
            if commands.isEmpty { break }
        }
        return length
    }
}
