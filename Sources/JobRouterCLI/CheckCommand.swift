import ArgumentParser
import Foundation
import JobRouter
import JobRouterPostgres

/// `jobrouter check`: validates the configuration and prints the routing table and groups.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Validate the configuration; print the routing table and the groups.")

    @OptionGroup var options: CommonOptions

    func run() async throws {
        try await CommandFailure.reporting {
            let configuration = try options.loadConfiguration()
            // `sql` statements are prepared against the database, when there is one.
            if let settings = configuration.postgres, configuration.types.values.contains(where: { $0.handler == "sql" }) {
                let pool = PostgresPool(settings: settings, applicationName: "jobrouter check", size: 1)
                do {
                    let problems = try await SQLHandlerProvider.checkStatements(in: configuration, pool: pool)
                    if let first = problems.first { throw CommandFailure("\(first)") }
                } catch let error as PostgresError {
                    // No database here (a CI job, a laptop): the file is still checked; say what was not.
                    FileHandle.standardError.write(Data("warning: sql statements not checked against the database: \(error)\n".utf8))
                }
            }
            print(CheckReport(configuration: configuration, handlers: options.handlers).text)
        }
    }
}

/// What `check` prints; a value so it can be tested.
struct CheckReport {
    let configuration: RouterConfiguration
    let handlers: HandlerRegistry

    var text: String {
        let router = Router(configuration: configuration)
        var lines = ["\(configuration.file ?? "configuration"): OK", "", "routes (type, priority -> queue):"]
        let rows = router.table
        let typeWidth = rows.map(\.type.count).max() ?? 4
        let priorityWidth = max(rows.map { ($0.priority ?? "-").count }.max() ?? 1, 1)
        for row in rows {
            var line = "  " + row.type.padding(toLength: typeWidth, withPad: " ", startingAt: 0)
            line += "  " + (row.priority ?? "-").padding(toLength: priorityWidth, withPad: " ", startingAt: 0)
            line += "  -> " + row.queue
            if let type = configuration.types[row.type] {
                if row.priority != nil, row.priority == type.defaultPriority { line += "  (default)" }
            }
            lines.append(line)
        }
        lines.append("")
        lines.append("types:")
        for name in configuration.types.keys.sorted() {
            guard let type = configuration.types[name] else { continue }
            var line = "  \(name): handler \(type.handler.rawValue)"
            if !type.command.isEmpty { line += " \(type.command.joined(separator: " "))" }
            for key in type.options.keys.sorted() where key != "command" {
                line += " \(key)=\(type.options[key]?.jsonText ?? "")"
            }
            line += ", timeout \(DurationParser.format(type.timeout)), max_attempts \(type.maxAttempts)"
            line += ", backoff \(DurationParser.format(type.backoff.base))..\(DurationParser.format(type.backoff.max))"
            if let unique = type.unique {
                line += ", unique by \(unique.keyPaths.joined(separator: "+")) until \(unique.until.rawValue) (for \(DurationParser.format(unique.lifetime)))"
            }
            if let problem = handlers.availability(of: type, in: configuration) { line += "  [\(problem)]" }
            lines.append(line)
        }
        lines.append("")
        lines.append("groups (queues in priority order):")
        for name in configuration.groups.keys.sorted() {
            guard let group = configuration.groups[name] else { continue }
            let concurrency = group.scaling.map { "concurrency \($0.min)..\($0.max) (autoscaled, target_wait \(DurationParser.format($0.targetWait)))" }
                ?? "concurrency \(group.concurrency)"
            lines.append("  \(name): \(group.queues.joined(separator: " > ")), \(concurrency), shutdown_timeout \(DurationParser.format(group.shutdownTimeout)), lease \(DurationParser.format(group.lease)), max_recoveries \(group.maxRecoveries)")
        }
        let limiters = configuration.limiters
        let bounded = configuration.groups.keys.sorted().compactMap { name -> String? in
            guard let group = configuration.groups[name], !group.maxWait.isEmpty else { return nil }
            let bounds = group.queues.compactMap { queue in group.maxWait[queue].map { "\(queue) \(DurationParser.format($0))" } }
            return "  \(name): max_wait \(bounds.joined(separator: ", ")), aging_slots \(group.agingSlots)"
        }
        if !limiters.isEmpty || !bounded.isEmpty {
            lines.append("")
            lines.append("limits:")
            lines += limiters.map { "  \($0.name): \($0.limit)" }
            lines += bounded
        }
        if !configuration.schedules.isEmpty {
            lines.append("")
            lines.append("schedules:")
            let now = Date()
            for name in configuration.schedules.keys.sorted() {
                guard let schedule = configuration.schedules[name] else { continue }
                let next = schedule.nextFires(after: now, count: 1).first.map { SchedulesCommand.local($0, schedule.timeZone) } ?? "never"
                var line = "  \(name): \(schedule.cron.text) \(schedule.zoneName) -> \(schedule.type)"
                if let priority = schedule.priority { line += " (\(priority))" }
                if let catchUp = schedule.catchUp { line += ", catch_up \(DurationParser.format(catchUp))" }
                lines.append(line + ", next \(next)")
            }
        }
        if !configuration.redis.cluster.isEmpty {
            lines.append("")
            lines.append("redis cluster shards (hash tag: slot, groups; JobRouter's keys under \(configuration.redis.namespace):{TAG}):")
            for tag in configuration.clusterTags() {
                let groups = configuration.groups.values.filter { $0.queues.first.flatMap(ClusterLayout.hashTag(of:)).map(String.init) == tag }
                    .map(\.name).sorted()
                lines.append("  {\(tag)}: slot \(ClusterLayout.slot(of: "{\(tag)}")), \(groups.isEmpty ? "no group" : "groups " + groups.joined(separator: ", "))")
            }
        }
        var warnings = configuration.unreadQueues.map { "warning: queue '\($0)' receives jobs but no group reads it" }
        if let smtp = configuration.smtp, !smtp.tlsVerify {
            warnings.append("warning: smtp.tls_verify = false: the relay's certificate is not checked, so anyone on the path can read the mail and the password")
        }
        warnings += configuration.types.values.sorted { $0.name < $1.name }.compactMap { type in
                handlers.availability(of: type, in: configuration).map { "note: types.\(type.name): \($0)" }
            }
        if !warnings.isEmpty {
            lines.append("")
            lines.append(contentsOf: warnings)
        }
        return lines.joined(separator: "\n")
    }
}
