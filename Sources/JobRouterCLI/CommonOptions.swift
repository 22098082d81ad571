import ArgumentParser
import Foundation
import JobRouter
import JobRouterPostgres
import JobRouterRedis
import JobRouterSMTP
import Logging

/// Flags every command takes.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "The configuration file (default: $JOBROUTER_CONFIG, else ./queues.toml).")
    var config: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    /// The path that will be read.
    var configPath: String { RouterConfiguration.path(given: config) }

    /// Every handler kind the CLI links: the core's, `smtp` and `sql`.
    var handlers: HandlerRegistry {
        var registry = HandlerRegistry()
        registry.add(SMTPHandlerProvider())
        registry.add(SQLHandlerProvider())
        return registry
    }

    /// Loads and validates the configuration, or prints one line naming what is wrong and exits 1.
    /// The `--log-level` word is checked here too, so a command that logs nothing (`status`,
    /// `enqueue`, …) refuses a bad one as `work` does rather than ignore it.
    func loadConfiguration() throws -> RouterConfiguration {
        _ = try makeLogger()
        do {
            return try RouterConfiguration.load(path: configPath, providers: handlers.providers)
        } catch {
            throw CommandFailure("\(error)")
        }
    }

    /// The Redis driver for `configuration` (`JOBROUTER_REDIS_URL` overrides the file's URL).
    func makeDriver(_ configuration: RouterConfiguration) throws -> RedisQueueDriver {
        do {
            return try RedisQueueDriver(configuration: configuration)
        } catch {
            throw CommandFailure("\(error)")
        }
    }

    /// A logger writing one line per message to stdout.
    func makeLogger() throws -> Logger {
        do {
            return try LineLogHandler.logger(level: logLevel)
        } catch {
            throw CommandFailure("\(error)")
        }
    }
}

/// A failure already explained in one line: printed to stderr as `jobrouter: <message>`, exit status 1.
struct CommandFailure: Error, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

extension CommandFailure {
    /// Runs `body`; turns a ``CommandFailure`` or any other error into one line on stderr and exit 1.
    static func reporting(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as CommandFailure {
            FileHandle.standardError.write(Data("jobrouter: \(error.message)\n".utf8))
            throw ExitCode.failure
        } catch let error as ExitCode {
            throw error
        } catch let error as CleanExit {
            throw error
        } catch let error as ValidationError {
            throw error
        } catch {
            FileHandle.standardError.write(Data("jobrouter: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}
