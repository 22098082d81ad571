import ArgumentParser
import Foundation
import JobRouter
import JobRouterRedis
import JobRouterSMTP
import Logging
import UnixSignals

/// `jobrouter work`: runs worker groups until SIGTERM or SIGINT.
struct WorkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "work",
        abstract: "Run worker groups (all of them when no --group is given).",
        discussion: """
            One log line per job: group, job id, type, queue, attempt, wait time, run time, outcome.
            SIGTERM or SIGINT stops fetching at once and lets running jobs finish within the group's
            shutdown_timeout; jobs still running then go back to the head of their queue. A second
            signal puts them back at once.
            """)

    @OptionGroup var options: CommonOptions

    @Option(name: .long, help: "A group to run; repeat for several.")
    var group: [String] = []

    func run() async throws {
        try await CommandFailure.reporting {
            let configuration = try options.loadConfiguration()
            let logger = try options.makeLogger()
            let driver = try options.makeDriver(configuration)
            let worker: JobRouterWorker
            do {
                // The SMTP provider opens one connection per worker slot that can receive mail.
                worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: options.handlers,
                                             groups: group, logger: logger, rateLimiter: RedisRateLimiter(driver: driver))
            } catch {
                throw CommandFailure("\(configuration.file ?? "configuration"): \(error)")
            }
            let queues = Set(worker.groupNames.compactMap { configuration.groups[$0] }.flatMap(\.queues)).sorted()
            do {
                try await driver.preflight(queues: queues)
            } catch let error as RedisError where error.isPermanent {
                throw CommandFailure("\(error)")
            } catch {
                // Unreachable for now: the workers wait for the server and say so once.
                logger.warning("cannot check redis before starting (\(error)); starting anyway")
            }
            logger.info("worker starting: groups \(worker.groupNames.joined(separator: ", ")), redis \(driver.endpoint)")
            let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
            await withTaskGroup(of: Void.self) { tasks in
                tasks.addTask { await worker.run() }
                tasks.addTask {
                    var received = 0
                    for await signal in signals {
                        received += 1
                        if received == 1 {
                            logger.notice("\(signal): stopping; running jobs may finish (send again to put them back now)")
                            worker.shutdown()
                        } else {
                            logger.notice("\(signal) again: putting running jobs back now")
                            worker.shutdown(immediately: true)
                        }
                    }
                }
                await tasks.next()
                tasks.cancelAll()
            }
            if let failure = worker.fatalFailure { throw CommandFailure(failure) }
            logger.info("worker stopped")
        }
    }
}
