import Foundation
import Hummingbird
import JobRouter
import Logging
import NIOCore
import ServiceLifecycle

/// The operations endpoint of a worker process (`jobrouter work --http`):
///
/// - `GET /metrics`: every metric in Prometheus' text exposition format
/// - `GET /healthz`: 200 while the process runs its loop
/// - `GET /readyz`: 200 when Redis (and PostgreSQL, when configured) answered within the last few
///   seconds and the process is not shutting down; otherwise 503 with a JSON body naming what is wrong
///
/// A swift-service-lifecycle `Service`: run it in the same `ServiceGroup` as the workers, and it
/// stops with them.
public struct OperationsServer: Service {
    /// Where it listens.
    public var address: HTTPListenAddress
    private let exporter: MetricsExporter
    private let health: HealthMonitor
    private let logger: Logger
    private let onListening: @Sendable (Int) async -> Void

    /// A server on `address`; `onListening` is told the port once it listens (useful with port 0).
    public init(address: HTTPListenAddress, exporter: MetricsExporter, health: HealthMonitor, logger: Logger,
                onListening: @escaping @Sendable (Int) async -> Void = { _ in }) {
        self.address = address
        self.exporter = exporter
        self.health = health
        self.logger = logger
        self.onListening = onListening
    }

    /// The routes, without a server (for tests and for mounting beside other routes).
    public func makeRouter() -> Hummingbird.Router<BasicRequestContext> {
        let router = Hummingbird.Router()
        let exporter = exporter
        let health = health
        router.get("/metrics") { _, _ -> Response in
            let text = await exporter.render()
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: text)))
        }
        router.get("/healthz") { _, _ -> Response in
            Self.json(.ok, .object(["status": .string("ok")]))
        }
        router.get("/readyz") { _, _ -> Response in
            let readiness = health.readiness
            let body: JSONValue = .object([
                "ready": .bool(readiness.ready),
                "problems": .object(readiness.problems.mapValues(JSONValue.string)),
            ])
            return Self.json(readiness.ready ? .ok : .serviceUnavailable, body)
        }
        return router
    }

    public func run() async throws {
        let onListening = onListening
        let application = Application(
            router: makeRouter(),
            configuration: ApplicationConfiguration(address: .hostname(address.host, port: address.port),
                                                    serverName: "jobrouter"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
            logger: logger)
        try await application.run()
    }

    private static func json(_ status: HTTPResponse.Status, _ value: JSONValue) -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: ResponseBody(byteBuffer: ByteBuffer(string: value.jsonText + "\n")))
    }
}
