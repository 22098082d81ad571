import ArgumentParser
import Foundation
import JobRouter
import JobRouterPostgres

/// `jobrouter history`: attempts from the ledger, kept in PostgreSQL after Redis has forgotten them.
struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Every attempt of one job (oldest first), or the latest attempts (newest first), from the ledger.",
        discussion: "Needs [postgres] in queues.toml with the ledger on.")

    @OptionGroup var options: CommonOptions

    @Argument(help: "A job id: every attempt of that job.") var id: String?
    @Option(name: .long, help: "Only this job type.") var type: String?
    @Option(name: .long, help: "Only this outcome: succeeded, failed, dead, requeued, recovered, malformed.") var outcome: String?
    @Option(name: .long, help: "Only this queue.") var queue: String?
    @Option(name: .long, help: "Only attempts that ended this recently (e.g. 1h, 30m, 7d).") var since: String?
    @Option(name: .long, help: "At most this many.") var limit = 50
    @Flag(name: .long, help: "A JSON array of attempts.") var json = false

    func run() async throws {
        try await CommandFailure.reporting {
            let (ledger, _) = try LedgerAccess.open(options, command: "history")
            let attempts: [Ledger.Attempt]
            if let id {
                attempts = try await ledger.attempts(of: id)
                if attempts.isEmpty { throw CommandFailure("no attempt of job \(LogEscaping.escape(id)) in the ledger") }
            } else {
                if let outcome, AttemptOutcome(rawValue: outcome) == nil {
                    throw CommandFailure("--outcome: '\(LogEscaping.escape(outcome))' is not one of \(AttemptOutcome.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                let filter = Ledger.Filter(type: type, outcome: outcome, queue: queue, since: try since.map { try LedgerAccess.duration($0, flag: "--since") },
                                           limit: limit)
                attempts = try await ledger.history(filter)
            }
            if json {
                print(JSONValue.array(attempts.map(\.json)).jsonText)
                return
            }
            let rows = attempts.map { attempt -> [String] in
                var row = [attempt.attempt.map(String.init) ?? "-", attempt.outcome, attempt.finishedAt,
                           LedgerAccess.seconds(attempt.wait), LedgerAccess.seconds(attempt.run), attempt.worker,
                           attempt.error ?? ""]
                if id == nil { row = [attempt.id, attempt.type ?? "-", attempt.queue] + row }
                return row.map(LogEscaping.escape)
            }
            var header = ["ATTEMPT", "OUTCOME", "FINISHED", "WAIT", "RUN", "WORKER", "ERROR"]
            if id == nil { header = ["ID", "TYPE", "QUEUE"] + header }
            let offset = id == nil ? 3 : 0
            for line in StatusReport.table(header: header, rows: rows, rightAligned: [offset, offset + 3, offset + 4]) {
                print(line)
            }
        }
    }
}

/// `jobrouter stats`: per type, attempts and outcomes, and wait and run time percentiles from the ledger.
struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Per job type: attempts, succeeded, retried, dead, and p50/p95/p99 of wait and run time, from the ledger.",
        discussion: "Computed by PostgreSQL over the attempts that ended in the period. Needs [postgres] in queues.toml.")

    @OptionGroup var options: CommonOptions

    @Option(name: .long, help: "The period: attempts that ended this recently (e.g. 1h, 30m, 7d).") var since = "1h"
    @Flag(name: .long, help: "A JSON array, one object per type.") var json = false

    func run() async throws {
        try await CommandFailure.reporting {
            let (ledger, _) = try LedgerAccess.open(options, command: "stats")
            let stats = try await ledger.stats(since: try LedgerAccess.duration(since, flag: "--since"))
            if json {
                print(JSONValue.array(stats.map(\.json)).jsonText)
                return
            }
            let header = ["TYPE", "ATTEMPTS", "OK", "RETRIED", "DEAD", "WAIT p50", "p95", "p99", "RUN p50", "p95", "p99"]
            let rows = stats.map { type in
                [LogEscaping.escape(type.type), String(type.attempts), String(type.succeeded), String(type.retried), String(type.dead)]
                    + type.wait.map(LedgerAccess.seconds) + type.run.map(LedgerAccess.seconds)
            }
            for line in StatusReport.table(header: header, rows: rows, rightAligned: Set(1...10)) { print(line) }
            if stats.isEmpty { print("no attempts ended in the last \(since)") }
        }
    }
}

/// What `history` and `stats` share.
enum LedgerAccess {
    /// The ledger of the configuration's `[postgres]`, or one line saying it needs one.
    static func open(_ options: CommonOptions, command: String) throws -> (Ledger, PostgresSettings) {
        let configuration = try options.loadConfiguration()
        guard let settings = configuration.postgres else {
            throw CommandFailure("\(configuration.file ?? "configuration"): \(command) reads the ledger and needs a [postgres] table with a url")
        }
        let pool = PostgresPool(settings: settings, applicationName: "jobrouter \(command)", size: 1)
        return (Ledger(pool: pool, schema: settings.schema), settings)
    }

    static func duration(_ text: String, flag: String) throws -> Duration {
        guard let duration = DurationParser.parse(text), duration > .zero else {
            throw CommandFailure("\(flag): '\(LogEscaping.escape(text))' is not a duration such as 30s, 15m, 1h or 7d")
        }
        return duration
    }

    /// `0.4ms`, `12ms`, `3.2s`, or `-` when unknown.
    static func seconds(_ value: Double?) -> String {
        guard let value else { return "-" }
        if value < 0.01 { return String(format: "%.1fms", value * 1000) }
        if value < 1 { return String(format: "%.0fms", value * 1000) }
        if value < 60 { return String(format: "%.1fs", value) }
        return DurationParser.format(Duration.saturating(seconds: value))
    }
}
