import Foundation
import JobRouter
import JobRouterRedis
import Testing

/// A private redis-server this test can stop and start again on the same port.
final class PrivateRedis: @unchecked Sendable {
    let port: Int
    let directory: URL
    private var process: Process?

    private let extraArguments: [String]

    /// `appendOnly` keeps the data across restarts (the data dir stays the same).
    init(appendOnly: Bool = false) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("jobrouter-redis-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        port = Self.freePort()
        extraArguments = appendOnly ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"]
    }

    deinit {
        // A test that ends (or fails) without stopping it must not leave a server running.
        if let process { kill(process.processIdentifier, SIGKILL) }
    }

    var url: String { "redis://127.0.0.1:\(port)/0" }

    /// A port nothing listens on now: one below the kernel's ephemeral range (32768 and up, where
    /// the suite's own connections take their local ports), that a bind accepts.
    static func freePort() -> Int {
        for _ in 0..<100 {
            let candidate = Int.random(in: 20000...32000)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(candidate).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if bound == 0 { return candidate }
        }
        return Int.random(in: 20000...32000)
    }

    func start() async throws {
        let server = ProcessInfo.processInfo.environment["JOBROUTER_TEST_REDIS_SERVER"] ?? "/usr/bin/redis-server"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: server)
        process.arguments = ["--bind", "127.0.0.1", "--port", String(port), "--dir", directory.path, "--save", ""] + extraArguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        let driver = RedisQueueDriver(endpoint: try RedisEndpoint(url: url), namespace: "probe")
        let up = await eventually(timeout: .seconds(20)) { (try? await driver.command(["PING"])) != nil }
        guard up else { throw TestSetupError("private redis-server on port \(port) did not start") }
    }

    /// Stops the server as a crash would (SIGKILL: a SIGTERM can arrive blocked, since the server
    /// inherits the signal mask of the pool thread that spawned it), and waits until its port is free.
    func stop() async {
        guard let process else { return }
        kill(process.processIdentifier, SIGKILL)
        if let endpoint = try? RedisEndpoint(url: url) {
            let probe = RedisQueueDriver(endpoint: endpoint, namespace: "probe")
            _ = await eventually(timeout: .seconds(15)) { (try? await probe.command(["PING"])) == nil }
        }
        self.process = nil
    }
}

@Suite(.timeLimit(.minutes(2)))
struct ReconnectTests {
    @Test func workerCarriesOnAfterRedisRestarts() async throws {
        let redis = try PrivateRedis()
        try await redis.start()
        let keys = TestKeys()
        var configuration = RouterConfiguration(defaultQueue: keys.queue("default"))
        configuration.redis.namespace = keys.namespace
        configuration.types["job"] = JobTypeConfiguration(name: "job", handler: .swift)
        configuration.groups["g"] = WorkerGroupConfiguration(name: "g", queues: [keys.queue("default")], concurrency: 2)
        let driver = RedisQueueDriver(endpoint: try RedisEndpoint(url: redis.url), namespace: keys.namespace)
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let ran = Observations<JobID>()
        var handlers = HandlerRegistry()
        handlers.register(type: "job") { job, _ in ran.append(job.id) }
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: handlers,
                                         logger: testLogger, recorders: [])
        do {
            try await withWorker(worker) {
                let first = try await client.enqueue(type: "job")
                #expect(await eventually { ran.all.contains(first.id) })

                await redis.stop()
                try await Task.sleep(for: .seconds(1))
                try await redis.start()

                let second = try await client.enqueue(type: "job")
                #expect(await eventually(timeout: .seconds(15)) { ran.all.contains(second.id) })
            }
        } catch {
            await redis.stop()
            throw error
        }
        await redis.stop()
    }
}
