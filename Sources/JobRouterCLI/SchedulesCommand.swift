import ArgumentParser
import Foundation
import JobRouter
import JobRouterRedis

/// `jobrouter schedules`: each cron schedule with its next fire times and its last run.
struct SchedulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedules",
        abstract: "List the cron schedules: expression, time zone, job, the next 3 fire times, and the last run (job id, when).")

    @OptionGroup var options: CommonOptions

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() async throws {
        try await CommandFailure.reporting {
            let configuration = try options.loadConfiguration()
            let schedules = configuration.schedules.keys.sorted().compactMap { configuration.schedules[$0] }
            if schedules.isEmpty {
                print(json ? "[]" : "no [schedules] in \(configuration.file ?? "the configuration")")
                return
            }
            let states = try await options.makeDriver(configuration).cronStates(schedules.map(\.name))
            let now = Date()
            if json {
                let values: [JSONValue] = schedules.map { schedule in
                    var fields: [String: JSONValue] = [
                        "name": .string(schedule.name), "cron": .string(schedule.cron.text), "timezone": .string(schedule.zoneName),
                        "type": .string(schedule.type), "priority": schedule.priority.map(JSONValue.string) ?? .null,
                        "next": .array(schedule.nextFires(after: now, count: 3).map { .string(Timestamp.format($0)) }),
                        "catch_up_ms": schedule.catchUp.map { .integer($0.inMilliseconds) } ?? .null,
                    ]
                    if let state = states[schedule.name] {
                        fields["last"] = .object(["tick": .string(Timestamp.format(state.tick)), "job": .string(state.jobID.rawValue),
                                                  "at": .string(Timestamp.format(state.firedAt))])
                    } else {
                        fields["last"] = .null
                    }
                    return .object(fields)
                }
                print(JSONValue.array(values).jsonText)
                return
            }
            for schedule in schedules {
                var line = "\(schedule.name)  \(schedule.cron.text)  \(schedule.zoneName)  → \(schedule.type)"
                if let priority = schedule.priority { line += " (\(priority))" }
                if let catchUp = schedule.catchUp { line += "  catch_up \(DurationParser.format(catchUp))" }
                print(line)
                let next = schedule.nextFires(after: now, count: 3).map { Self.local($0, schedule.timeZone) }
                print("  next: " + (next.isEmpty ? "never" : next.joined(separator: ", ")))
                if let state = states[schedule.name] {
                    print("  last: job \(state.jobID) at \(Timestamp.format(state.firedAt)) (tick \(Self.local(state.tick, schedule.timeZone)))")
                } else {
                    print("  last: never fired")
                }
            }
        }
    }

    /// `2026-12-03 03:00:00 CET`, in the schedule's zone (`UTC` for UTC, which Foundation on Linux
    /// abbreviates `GMT`).
    static func local(_ date: Date, _ zone: TimeZone) -> String {
        let offset = zone.secondsFromGMT(for: date)
        let wall = Int64(date.timeIntervalSince1970.rounded(.down)) + Int64(offset)
        let text = Timestamp.format(Date(timeIntervalSince1970: Double(wall)))
        let abbreviation = zone == CronSchedule.utc ? "UTC" : zone.abbreviation(for: date) ?? ""
        // `YYYY-MM-DDTHH:MM:SS.mmmZ` → `YYYY-MM-DD HH:MM:SS`
        return text.prefix(10) + " " + text.dropFirst(11).prefix(8) + (abbreviation.isEmpty ? "" : " " + abbreviation)
    }
}

/// `jobrouter batches`: open batches with a callback, and their progress.
struct BatchesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batches",
        abstract: "List open batches (enqueue --batch --on-complete): jobs done, dead and pending, and the callback waiting for them.")

    @OptionGroup var options: CommonOptions

    @Option(name: .long, help: "Show at most this many (oldest first).")
    var limit = 100

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() async throws {
        try await CommandFailure.reporting {
            let configuration = try options.loadConfiguration()
            let batches = try await options.makeDriver(configuration).batches(limit: limit)
            if json {
                print(JSONValue.array(batches.map { batch in
                    .object(["id": .string(batch.id), "total": .integer(Int64(batch.total)), "pending": .integer(Int64(batch.pending)),
                             "succeeded": .integer(Int64(batch.succeeded)), "dead": .integer(Int64(batch.dead)),
                             "sealed": .bool(batch.sealed), "created": .string(Timestamp.format(batch.created)),
                             "callback": .string(batch.callbackType)])
                }).jsonText)
                return
            }
            if batches.isEmpty {
                print("no open batches")
                return
            }
            for batch in batches {
                let finished = batch.succeeded + batch.dead
                let percent = batch.total == 0 ? 0 : finished * 100 / batch.total
                var line = "\(LogEscaping.escape(batch.id))  \(finished)/\(batch.total) finished (\(percent)%): \(batch.succeeded) succeeded, \(batch.dead) dead, \(batch.pending) pending"
                line += "  → \(LogEscaping.escape(batch.callbackType))"
                if !batch.sealed { line += "  (still being enqueued)" }
                line += "  opened \(Timestamp.format(batch.created))"
                print(line)
            }
        }
    }
}
