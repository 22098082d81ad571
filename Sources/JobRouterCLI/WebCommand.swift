import ArgumentParser
import Foundation
import JobRouter
import JobRouterPostgres
import JobRouterRedis
import JobRouterWeb
import Logging
import ServiceLifecycle
import UnixSignals

/// `jobrouter web`: the dashboard.
struct WebCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "web",
        abstract: "Serve the web dashboard (overview, queues, workers, scheduled, dead jobs, history).",
        discussion: """
            Listens on 127.0.0.1:8080 unless --listen or [web] listen says otherwise. Any address
            other than loopback needs JOBROUTER_WEB_TOKEN, which every request must then carry (the
            sign-in form sets an HttpOnly, SameSite=Strict cookie; or Authorization: Bearer TOKEN).
            Retrying, deleting and purging are POSTs with a CSRF token; bulk actions ask for a
            confirmation.
            """)

    @OptionGroup var options: CommonOptions

    @Option(name: .long, help: ArgumentHelp("Where to listen: HOST:PORT, or a bare port on 127.0.0.1; overrides [web] listen.", valueName: "host:port"))
    var listen: String?

    func run() async throws {
        try await CommandFailure.reporting {
            let configuration = try options.loadConfiguration()
            let logger = try options.makeLogger()
            let driver = try options.makeDriver(configuration)
            var address = configuration.webListen ?? HTTPListenAddress(host: "127.0.0.1", port: 8080)
            if let listen {
                do { address = try HTTPListenAddress(parsing: listen, source: "--listen") } catch { throw CommandFailure("\(error)") }
            }
            let access: WebAccess
            do {
                access = try WebAccess(listen: address, token: ProcessInfo.processInfo.environment["JOBROUTER_WEB_TOKEN"])
            } catch {
                throw CommandFailure("\(error)")
            }
            let host = address.host
            // With the ledger: job attempts, history and per-type figures.
            let history = configuration.postgres.flatMap { settings -> Ledger? in
                guard settings.ledger else { return nil }
                return Ledger(pool: PostgresPool(settings: settings, applicationName: "jobrouter web", size: 2), schema: settings.schema)
            }
            let server = DashboardServer(address: address, configuration: configuration, driver: driver, access: access,
                                         history: history, logger: logger) { port in
                logger.notice("web: dashboard on http://\(HTTPListenAddress(host: host, port: port))\(access.requiresLogin ? " (sign-in required)" : "")")
            }
            let group = ServiceGroup(configuration: .init(services: [.init(service: server)], gracefulShutdownSignals: [.sigterm, .sigint],
                                                          logger: logger))
            do {
                try await group.run()
            } catch {
                throw CommandFailure("web: cannot serve on \(address): \(error)")
            }
        }
    }
}
