import ArgumentParser
import Foundation
import JobRouter
import JobRouterRedis

/// `jobrouter dead`: the jobs that could not run, with their reasons.
struct DeadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead", abstract: "List, show, retry or purge dead-lettered jobs.",
        subcommands: [List.self, Show.self, Retry.self, Purge.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead jobs, newest first.")
        @OptionGroup var options: CommonOptions
        @Flag(name: .long, help: "One JSON object per line.") var json = false
        @Option(name: .long, help: "Only jobs of this type.") var type: String?
        @Option(name: .long, help: "At most this many.") var limit = 100

        func run() async throws {
            try await CommandFailure.reporting {
                let driver = try options.makeDriver(try options.loadConfiguration())
                // The table shows no entry: only --json reads the entries' bytes.
                let dead = try await driver.deadLetters(type: type, limit: limit, withEntries: json)
                for record in dead {
                    if json {
                        print(record.jsonText)
                    } else {
                        let fields = [record.id, Timestamp.format(record.failedAt), record.type ?? "-", record.queue ?? "-", record.reason ?? ""]
                        print(fields.map(LogEscaping.escape).joined(separator: "  "))
                    }
                }
                if !json { FileHandle.standardError.write(Data("\(dead.count) dead job(s) shown\n".utf8)) }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one dead job in full (JSON).")
        @OptionGroup var options: CommonOptions
        @Argument(help: "The record's key as `dead list` shows it: the job id, or id~N for a later record with the same id.") var id: String

        func run() async throws {
            try await CommandFailure.reporting {
                let driver = try options.makeDriver(try options.loadConfiguration())
                guard let record = try await driver.deadLetter(id: id) else {
                    throw CommandFailure("no dead job with id \(LogEscaping.escape(id))")
                }
                print(record.jsonText)
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send dead jobs back to the queue the current queues.toml routes them to, attempts reset.",
            discussion: "A job whose type (or priority) the configuration no longer has is refused, named, and kept.")
        @OptionGroup var options: CommonOptions
        @Argument(help: "The job id.") var id: String?
        @Flag(name: .long, help: "Every dead job (or every one of --type).") var all = false
        @Option(name: .long, help: "With --all: only jobs of this type.") var type: String?

        func validate() throws {
            if (id == nil) == !all { throw ValidationError("give a job id or --all") }
            if type != nil && !all { throw ValidationError("--type goes with --all") }
        }

        func run() async throws {
            try await CommandFailure.reporting {
                let configuration = try options.loadConfiguration()
                let driver = try options.makeDriver(configuration)
                var records: [StoredDeadLetter] = []
                if let id {
                    guard let record = try await driver.deadLetter(id: id) else {
                        throw CommandFailure("no dead job with id \(LogEscaping.escape(id))")
                    }
                    records = [record]
                } else {
                    records = try await driver.deadLetters(type: type, limit: Int.max)
                }
                let router = Router(configuration: configuration)
                var retried = 0
                var refused: [String] = []
                for record in records {
                    do {
                        guard try await driver.retryDeadLetter(record, router: router) else { continue }
                    } catch let error as DeadLetterRetryError {
                        if id != nil { throw CommandFailure(LogEscaping.escape(error.description)) }
                        refused.append(LogEscaping.escape(error.description))
                        continue
                    }
                    retried += 1
                    if id != nil, let job = try? JobEnvelope.decode(record.rawBytes ?? Data(), queue: "") {
                        let route = try? router.route(type: job.type, priority: job.priority)
                        print("\(LogEscaping.escape(record.jobID)) \(route?.queue ?? "")")
                    }
                }
                for line in refused { FileHandle.standardError.write(Data("jobrouter: \(line); kept\n".utf8)) }
                FileHandle.standardError.write(Data("sent \(retried) dead job(s) back to their queues\n".utf8))
                if !refused.isEmpty { throw ExitCode.failure }
            }
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete dead jobs (all, or those older than a duration).")
        @OptionGroup var options: CommonOptions
        @Option(name: .long, help: "Only those dead-lettered longer ago than this (\"7d\", \"12h\").") var olderThan: String?

        func validate() throws {
            if let olderThan, DurationParser.parse(olderThan) == nil {
                throw ValidationError("--older-than: bad duration '\(olderThan)'; write e.g. \"7d\" or \"12h\"")
            }
        }

        func run() async throws {
            try await CommandFailure.reporting {
                let driver = try options.makeDriver(try options.loadConfiguration())
                let age = olderThan.flatMap(DurationParser.parse) ?? .zero
                let cutoff = age == .zero ? Date.distantFuture : Date().addingTimeInterval(-age.inSeconds)
                let purged = try await driver.purgeDeadLetters(before: cutoff)
                FileHandle.standardError.write(Data("purged \(purged) dead job(s)\n".utf8))
            }
        }
    }
}
