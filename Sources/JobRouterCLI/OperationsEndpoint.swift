import Foundation
import JobRouter
import JobRouterHTTP
import JobRouterPostgres
import JobRouterRedis
import Logging
import ServiceLifecycle

/// `work --http`: the metrics exporter, the readiness probes and the HTTP server, wired to this
/// process's configuration. Probes and queue figures use connections of their own, never the
/// workers'.
struct OperationsEndpoint {
    let exporter: MetricsExporter
    let health: HealthMonitor
    let server: OperationsServer

    /// Builds it and makes Prometheus the process's metrics backend. Call before the worker is made.
    init(listen: HTTPListenAddress, configuration: RouterConfiguration, options: CommonOptions, logger: Logger) throws {
        let probeDriver = try options.makeDriver(configuration)
        let queues = configuration.declaredQueues.sorted()
        let ledger = configuration.postgres?.ledger == true
        let limiters = configuration.limiters.map(\.name)
        var bounds: [String: Duration] = [:]
        for group in configuration.groups.values { bounds.merge(group.maxWait) { Swift.min($0, $1) } }
        exporter = MetricsExporter { [probeDriver, bounds] in
            let statistics = try await probeDriver.statistics(queues: queues)
            let backlog = ledger ? try await RedisAttemptLog.backlog(over: probeDriver.shards).waiting : nil
            let now = Date()
            let figures = limiters.isEmpty ? [:] : try await probeDriver.limiterStatistics(limiters, now: now)
            let second = now.timeIntervalSince1970.truncatingRemainder(dividingBy: 60)
            return ClusterGauges(
                queues: statistics.queues.map { .init(name: $0.name, depth: $0.depth, oldestAge: $0.oldestAge ?? .zero) },
                scheduled: statistics.queues.map(\.scheduled).reduce(0, +),
                dead: statistics.queues.map(\.dead).reduce(0, +), ledgerBacklog: backlog,
                limiters: limiters.compactMap { name in
                    figures[name].map { .init(name: name, rate: $0.rate(secondsIntoMinute: second), deferred: $0.deferred, keysActive: $0.keysActive) }
                },
                maxWait: bounds)
        }
        exporter.bootstrap(withPostgres: configuration.postgres != nil, withMail: configuration.smtp != nil)
        var checks = [HealthMonitor.Check(name: "redis") { [probeDriver] in _ = try await probeDriver.command(["PING"]) }]
        if let settings = configuration.postgres {
            let pool = PostgresPool(settings: settings, applicationName: "jobrouter readiness", size: 1)
            checks.append(HealthMonitor.Check(name: "postgres") { _ = try await pool.withConnection { try $0.query("SELECT 1") } })
        }
        health = HealthMonitor(checks: checks)
        server = OperationsServer(address: listen, exporter: exporter, health: health, logger: logger) { port in
            logger.notice("http: /metrics, /healthz and /readyz on http://\(HTTPListenAddress(host: listen.host, port: port))")
        }
    }

    /// The server and the probes, as one group to run beside the workers and stop after them.
    func serviceGroup(logger: Logger) -> ServiceGroup {
        ServiceGroup(configuration: .init(services: [.init(service: server), .init(service: health)], logger: logger))
    }
}
