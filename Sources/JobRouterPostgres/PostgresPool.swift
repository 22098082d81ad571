import Foundation
import JobRouter
import Metrics
import Synchronization

/// A fixed number of PostgreSQL connections, each owned by its own dedicated thread, so libpq's
/// blocking calls never run on Swift's cooperative pool. Connections open lazily, on first use;
/// one that broke (the server restarted, the network dropped) is closed and opened again on the
/// next call, so workers survive a PostgreSQL restart without restarting.
public final class PostgresPool: Sendable {
    /// What each thread holds.
    final class Session {
        let url: String
        let applicationName: String
        var connection: PostgresConnection?

        init(url: String, applicationName: String) {
            self.url = url
            self.applicationName = applicationName
        }

        func open() throws(PostgresError) -> PostgresConnection {
            if let connection, connection.isHealthy { return connection }
            connection = nil
            let opened = try PostgresConnection(url: url, applicationName: applicationName)
            connection = opened
            return opened
        }
    }

    private let threads: [ConfinedThread<Session>]
    private let lease: HandleLease
    /// The server, without credentials.
    public let server: String

    /// `size` connections to `url`, shown in `pg_stat_activity` as `applicationName`.
    public init(url: String, size: Int, applicationName: String = "jobrouter") {
        server = PostgresConnection.describe(url)
        let count = max(size, 1)
        threads = (0..<count).map { index in
            ConfinedThread(name: "jobrouter-pg-\(index)") { Session(url: url, applicationName: applicationName) }
        }
        lease = HandleLease(count: count)
    }

    /// A pool for `settings` (`JOBROUTER_POSTGRES_URL` from `environment` in place of the URL).
    public convenience init(settings: PostgresSettings, applicationName: String, size: Int? = nil,
                            environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.init(url: settings.connectionURL(environment: environment), size: size ?? settings.pool, applicationName: applicationName)
    }

    deinit {
        for thread in threads { thread.stop() }
    }

    /// How many connections the pool may open.
    public var size: Int { threads.count }

    /// Runs `body` with a connection of its own, on that connection's thread. A failure that
    /// breaks the connection closes it; the next call opens a new one.
    public func withConnection<Result: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) throws -> Result
    ) async throws -> Result {
        let index = await lease.borrow()
        defer { lease.giveBack(index) }
        let server = self.server
        let outcome: Swift.Result<Result, PostgresFailure> = try await threads[index].run({ (session: Session) throws(PostgresError) in
            let connection: PostgresConnection
            do throws(PostgresError) {
                connection = try session.open()
            } catch {
                Counter(label: "jobrouter_postgres_errors_total").increment()
                throw error
            }
            do {
                return .success(try body(connection))
            } catch let error as PostgresError {
                if error.closesConnection || !connection.isHealthy { session.connection = nil }
                Counter(label: "jobrouter_postgres_errors_total").increment()
                throw error
            } catch {
                return .failure(PostgresFailure(error: error))
            }
        }, ifStopped: {
            PostgresError(code: .connection, message: "the pool is stopped", server: server)
        })
        return try outcome.unwrapped()
    }

    /// Runs `body` in a transaction on one connection: committed when it returns, rolled back when it throws.
    public func withTransaction<Result: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) throws -> Result
    ) async throws -> Result {
        try await withConnection { connection in try connection.transaction(body) }
    }
}

/// An error thrown by a caller's body (not by libpq), carried back across the thread.
struct PostgresFailure: Error, @unchecked Sendable {
    let error: any Error
}

extension Result where Failure == PostgresFailure {
    func unwrapped() throws -> Success {
        switch self {
        case .success(let value): return value
        case .failure(let failure): throw failure.error
        }
    }
}

extension JobContext {
    /// The PostgreSQL pool the program gave its handlers (``HandlerRegistry/usePostgres(_:)``), or
    /// `nil` without one:
    /// `try await context.postgres?.withConnection { try $0.query("SELECT email FROM users WHERE id = $1", [id]) }`.
    public var postgres: PostgresPool? { services[PostgresPool.self] }
}

extension HandlerRegistry {
    /// Gives every handler `pool` as ``JobRouter/JobContext/postgres``.
    public mutating func usePostgres(_ pool: PostgresPool) {
        provide(pool)
    }
}
