import ArgumentParser
import Foundation
import JobRouter
import JobRouterRedis

/// `jobrouter status`: queue depths and the groups that read them.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show each queue's depth and each group's queues and concurrency.")

    @OptionGroup var options: CommonOptions

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    func run() async throws {
        try await CommandFailure.reporting {
            let configuration = try options.loadConfiguration()
            let driver = try options.makeDriver(configuration)
            let queues = configuration.declaredQueues.sorted()
            let report = StatusReport(
                configuration: configuration, server: driver.endpoint.description,
                depths: try await driver.depths(of: queues), dead: try await driver.deadLetterCount())
            print(json ? report.json : report.table)
        }
    }
}

/// What `status` prints, from figures already read.
struct StatusReport {
    let configuration: RouterConfiguration
    let server: String
    let depths: [String: Int]
    let dead: Int

    private var queues: [String] { configuration.declaredQueues.sorted() }
    private var groups: [WorkerGroupConfiguration] {
        configuration.groups.keys.sorted().compactMap { configuration.groups[$0] }
    }

    private func readers(of queue: String) -> [String] {
        groups.filter { $0.queues.contains(queue) }.map(\.name)
    }

    var json: String {
        var queueValues: [JSONValue] = []
        for queue in queues {
            let fields: [String: JSONValue] = [
                "name": .string(queue),
                "depth": .integer(Int64(depths[queue] ?? 0)),
                "groups": .array(readers(of: queue).map(JSONValue.string)),
            ]
            queueValues.append(.object(fields))
        }
        var groupValues: [JSONValue] = []
        for group in groups {
            let fields: [String: JSONValue] = [
                "name": .string(group.name),
                "queues": .array(group.queues.map(JSONValue.string)),
                "concurrency": .integer(Int64(group.concurrency)),
            ]
            groupValues.append(.object(fields))
        }
        let root: [String: JSONValue] = [
            "redis": .string(server), "queues": .array(queueValues), "groups": .array(groupValues),
            "dead": .integer(Int64(dead)),
        ]
        return JSONValue.object(root).jsonText
    }

    var table: String {
        let width = max(queues.map(\.count).max() ?? 5, groups.map(\.name.count).max() ?? 5, 5)
        func pad(_ text: String, _ size: Int) -> String { text.padding(toLength: max(size, text.count), withPad: " ", startingAt: 0) }
        var lines = ["redis \(server)", "", pad("QUEUE", width) + "    DEPTH  READ BY"]
        for queue in queues {
            let depth = String(depths[queue] ?? 0)
            let readBy = readers(of: queue)
            lines.append(pad(queue, width) + "  " + String(repeating: " ", count: max(0, 7 - depth.count)) + depth + "  "
                         + (readBy.isEmpty ? "(no group)" : readBy.joined(separator: ", ")))
        }
        lines.append("")
        lines.append(pad("GROUP", width) + "  CONCURRENCY  QUEUES")
        for group in groups {
            lines.append(pad(group.name, width) + "  " + pad(String(group.concurrency), 11) + "  " + group.queues.joined(separator: " > "))
        }
        lines.append("")
        lines.append("dead letters: \(dead)")
        return lines.joined(separator: "\n")
    }
}
