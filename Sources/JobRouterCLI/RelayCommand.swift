import ArgumentParser
import Foundation
import JobRouter
import JobRouterPostgres
import UnixSignals

/// `jobrouter relay`: moves jobs enqueued in PostgreSQL's outbox to Redis, alone (without workers).
struct RelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay",
        abstract: "Relay jobs enqueued through the PostgreSQL outbox to Redis (without running workers).",
        discussion: """
            Rows come from `SELECT jobrouter.enqueue(type, payload, priority, run_at, id)` run inside
            an application's transaction: a job exists exactly when that transaction committed. One
            relay is active at a time across all processes (a PostgreSQL advisory lock); others wait
            and take over within a second or so when it stops. `jobrouter work` relays too when
            `[postgres] outbox = true`. A row that cannot be routed stays in the table with its
            reason (failed_at, error). With --once: relays what is committed now, prints the
            counts, and exits.
            """)

    @OptionGroup var options: CommonOptions

    @Flag(name: .long, help: "Relay what is committed now, then exit.")
    var once = false

    func run() async throws {
        try await CommandFailure.reporting {
            let configuration = try options.loadConfiguration()
            guard configuration.postgres != nil else {
                throw CommandFailure("\(configuration.file ?? "configuration"): relay needs a [postgres] table")
            }
            let logger = try options.makeLogger()
            let driver = try options.makeDriver(configuration)
            let relay: OutboxRelay
            do {
                relay = try OutboxRelay(configuration: configuration, driver: driver, logger: logger)
            } catch {
                throw CommandFailure("\(error)")
            }
            if once {
                let report: OutboxRelay.Report
                do {
                    report = try await relay.drain()
                } catch {
                    throw CommandFailure("\(error)")
                }
                print("relayed \(report.pushed), already pushed \(report.alreadyPushed), kept as failed \(report.failed)")
                return
            }
            let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
            await withTaskGroup(of: Void.self) { tasks in
                tasks.addTask { await relay.run() }
                tasks.addTask {
                    for await signal in signals {
                        logger.notice("\(signal): relay stopping")
                        relay.finish()
                        break
                    }
                }
                await tasks.next()
                relay.finish()
                tasks.cancelAll()
            }
        }
    }
}
