import Foundation
import JobRouter
import JobRouterRedis
import Synchronization
import Testing

/// A private Sentinel set on loopback: one primary, two replicas, three sentinels (each test has
/// its own, so killing a primary disturbs no other test). Every process is killed when it ends.
final class PrivateSentinelSet: @unchecked Sendable {
    let master = "jobs"
    let directory: URL
    private(set) var serverPorts: [Int] = []
    private(set) var sentinelPorts: [Int] = []
    private var processes: [Int: Process] = [:]

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("jobrouter-sentinel-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit {
        for process in processes.values { kill(process.processIdentifier, SIGKILL) }
    }

    /// `redis+sentinel://…/jobs/0`.
    var url: String { "redis+sentinel://" + sentinelPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",") + "/\(master)/0" }

    private var serverBinary: String { ProcessInfo.processInfo.environment["JOBROUTER_TEST_REDIS_SERVER"] ?? "/usr/bin/redis-server" }

    private func launch(_ port: Int, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: serverBinary)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        processes[port] = process
    }

    func start() async throws {
        serverPorts = (0..<3).map { _ in PrivateRedis.freePort() }
        for (index, port) in serverPorts.enumerated() {
            let data = directory.appendingPathComponent("r\(port)")
            try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
            var arguments = ["--bind", "127.0.0.1", "--port", String(port), "--dir", data.path, "--save", "", "--appendonly", "no"]
            if index > 0 { arguments += ["--replicaof", "127.0.0.1", String(serverPorts[0])] }
            try launch(port, arguments)
        }
        let primary = RedisQueueDriver(endpoint: RedisEndpoint(host: "127.0.0.1", port: serverPorts[0]), namespace: "probe")
        let replicated = await eventually(timeout: .seconds(10)) {
            guard case .string(let info)? = try? await primary.command(["INFO", "replication"]) else { return false }
            // Connected is not enough: a replica still loading the first sync acknowledges nothing.
            return String(decoding: info, as: UTF8.self).components(separatedBy: "state=online").count == 3
        }
        guard replicated else { throw TestSetupError("the replicas did not connect to the primary") }
        sentinelPorts = (0..<3).map { _ in PrivateRedis.freePort() }
        for port in sentinelPorts {
            let config = directory.appendingPathComponent("sentinel-\(port).conf")
            try """
                port \(port)
                bind 127.0.0.1
                dir \(directory.path)
                sentinel monitor \(master) 127.0.0.1 \(serverPorts[0]) 2
                sentinel down-after-milliseconds \(master) 1000
                sentinel failover-timeout \(master) 4000
                sentinel parallel-syncs \(master) 1
                """.write(to: config, atomically: true, encoding: .utf8)
            try launch(port, [config.path, "--sentinel"])
        }
        for port in sentinelPorts {
            let sentinel = RedisQueueDriver(endpoint: RedisEndpoint(host: "127.0.0.1", port: port), namespace: "probe")
            let ready = await eventually(timeout: .seconds(10)) {
                guard case .array(let replicas)? = try? await sentinel.command(["SENTINEL", "replicas", master]) else { return false }
                guard case .array(let sentinels)? = try? await sentinel.command(["SENTINEL", "sentinels", master]) else { return false }
                return replicas.count == 2 && sentinels.count == 2
            }
            guard ready else { throw TestSetupError("sentinel \(port) did not see the replicas and the other sentinels") }
        }
    }

    /// The port of the server the sentinels name as primary now.
    func primaryPort() async -> Int? {
        for port in sentinelPorts {
            let sentinel = RedisQueueDriver(endpoint: RedisEndpoint(host: "127.0.0.1", port: port), namespace: "probe")
            if case .array(let parts)? = try? await sentinel.command(["SENTINEL", "get-master-addr-by-name", master]), parts.count == 2,
               case .string(let text) = parts[1], let primary = Int(String(decoding: text, as: UTF8.self)) {
                return primary
            }
        }
        return nil
    }

    /// SIGKILLs the primary; returns its port.
    func killPrimary() async throws -> Int {
        guard let port = await primaryPort(), let process = processes[port] else { throw TestSetupError("no primary to kill") }
        kill(process.processIdentifier, SIGKILL)
        processes[port] = nil
        return port
    }

    /// Waits until the sentinels name another primary than `old`, and it answers as one.
    func waitForFailover(from old: Int, timeout: Duration = .seconds(30)) async -> Bool {
        await eventually(timeout: timeout) {
            guard let port = await primaryPort(), port != old else { return false }
            let server = RedisQueueDriver(endpoint: RedisEndpoint(host: "127.0.0.1", port: port), namespace: "probe")
            guard case .array(let role)? = try? await server.command(["ROLE"]), case .string(let name)? = role.first else { return false }
            return String(decoding: name, as: UTF8.self) == "master"
        }
    }
}

/// Sentinel: discovery, a primary SIGKILLed under a drain, and acknowledged enqueues
/// (`wait_replicas`) across a failover.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct SentinelTests {
    func configuration(_ keys: TestKeys) throws -> RouterConfiguration {
        var configuration = RouterConfiguration(defaultQueue: keys.queue("default"))
        configuration.redis.namespace = keys.namespace
        configuration.types["job"] = JobTypeConfiguration(name: "job", handler: .swift)
        configuration.groups["main"] = WorkerGroupConfiguration(name: "main", queues: [keys.queue("default")], concurrency: 8, lease: .seconds(5))
        try configuration.validate()
        return configuration
    }

    /// Against the set `scripts/test.sh` starts (`JOBROUTER_TEST_SENTINEL_URL`): this test kills nothing.
    @Test func theSentinelURLAndSettingsReachThePrimary() async throws {
        guard let url = ProcessInfo.processInfo.environment["JOBROUTER_TEST_SENTINEL_URL"], !url.isEmpty else {
            throw TestSetupError("JOBROUTER_TEST_SENTINEL_URL is not set: run the suite with scripts/test.sh")
        }
        let endpoint = try RedisEndpoint(url: url)
        let sentinels = endpoint.sentinel?.sentinels ?? []
        #expect(endpoint.description.hasPrefix("sentinel jobs@127.0.0.1:"))
        let driver = RedisQueueDriver(endpoint: endpoint, namespace: "t")
        guard case .array(let role) = try await driver.command(["ROLE"]), case .string(let name)? = role.first else {
            Issue.record("no ROLE reply")
            return
        }
        #expect(String(decoding: name, as: UTF8.self) == "master")
        // From queues.toml settings too.
        var settings = RedisSettings()
        settings.sentinels = sentinels.map(\.description)
        settings.master = "jobs"
        let fromSettings = try RedisQueueDriver.endpoint(settings, environment: [:])
        #expect(fromSettings.sentinel?.sentinels.count == 3)
        let other = RedisQueueDriver(endpoint: fromSettings, namespace: "t")
        #expect(try await other.command(["PING"]) == .status("PONG"))
        // A name no sentinel monitors: one line naming each sentinel's answer.
        var wrong = endpoint
        wrong.sentinel?.master = "nope"
        let failing = RedisQueueDriver(endpoint: wrong, namespace: "t")
        do {
            _ = try await failing.command(["PING"])
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("no sentinel gave a reachable primary for 'nope'"), "\(error)")
        }
    }

    /// A drain while the primary is SIGKILLed: the sentinels promote a replica, the workers follow,
    /// no job is lost (some may run twice: acks the old primary had not replicated).
    @Test func aDrainSurvivesThePrimaryBeingKilled() async throws {
        let set = try PrivateSentinelSet()
        try await set.start()
        let keys = TestKeys()
        let configuration = try configuration(keys)
        let driver = RedisQueueDriver(endpoint: try RedisEndpoint(url: set.url), namespace: keys.namespace)
        driver.replication = RedisQueueDriver.Replication(replicas: 2, timeout: .seconds(2))
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let jobs = try await client.enqueue((0..<3000).map { JobRequest(type: "job", payload: .integer(Int64($0))) })
        driver.replication = nil
        let ran = Observations<String>()
        var handlers = HandlerRegistry()
        handlers.register(type: "job") { job, _ in
            ran.append(job.id.rawValue)
            try await Task.sleep(for: .milliseconds(2))
        }
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: handlers, logger: testLogger, recorders: [])
        try await withWorker(worker) {
            #expect(await eventually { ran.count >= 300 })
            let old = try await set.killPrimary()
            #expect(await set.waitForFailover(from: old), "a replica was promoted")
            #expect(await eventually(timeout: .seconds(60)) { Set(ran.all).isSuperset(of: jobs.map(\.id.rawValue)) }, "every job ran")
            // status works after the failover, through the same endpoint. The promoted replica may
            // have lagged the old primary: jobs that ran there are queued again and run a second
            // time (at-least-once) until the queue is empty.
            let drained = await eventually(timeout: .seconds(60)) {
                (try? await driver.statistics(queues: [keys.queue("default")]))?.queues.first.map { $0.depth == 0 && $0.inFlight == 0 } ?? false
            }
            let left = drained ? "" : await leftovers(driver, keys)
            #expect(drained, "the queue drains on the new primary; \(left)")
        }
        let missing = Set(jobs.map(\.id.rawValue)).subtracting(ran.all)
        #expect(missing.isEmpty, "\(missing.count) jobs never ran")
    }

    /// What is left in flight, for a failure's message: the owners' leases against the server's
    /// clock, the in-flight tokens (the first 20), the counts and the queue's depth.
    private func leftovers(_ driver: RedisQueueDriver, _ keys: TestKeys) async -> String {
        let script = """
            local ns = ARGV[1]
            local tokens = redis.call('HKEYS', ns .. ':inflight')
            return cjson.encode({now = redis.call('TIME')[1], owners = redis.call('ZRANGE', ns .. ':owners', 0, -1, 'WITHSCORES'),
              inflight = {unpack(tokens, 1, math.min(#tokens, 20))}, held = #tokens, counts = redis.call('HGETALL', ns .. ':count:inflight'),
              depth = redis.call('LLEN', KEYS[1])})
            """
        do {
            let reply = try await driver.command(["EVAL", script, "1", keys.queue("default"), keys.namespace])
            guard case .string(let bytes) = reply else { return "\(reply)" }
            return String(decoding: bytes, as: UTF8.self)
        } catch {
            return "(could not read what is left: \(error))"
        }
    }

    /// An enqueue loop with wait_replicas = 1 across a failover: every enqueue that returned
    /// (acknowledged) is on the new primary; the ones that failed said so.
    @Test func acknowledgedEnqueuesSurviveAFailover() async throws {
        let set = try PrivateSentinelSet()
        try await set.start()
        let keys = TestKeys()
        let configuration = try configuration(keys)
        let driver = RedisQueueDriver(endpoint: try RedisEndpoint(url: set.url), namespace: keys.namespace)
        driver.replication = RedisQueueDriver.Replication(replicas: 1, timeout: .milliseconds(500))
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let acknowledged = Observations<String>()
        let failures = Observations<String>()
        let stop = Atomic<Bool>(false)
        let loop = Task {
            var n = 0
            while !stop.load(ordering: .relaxed) {
                n += 1
                do {
                    let job = try await client.enqueue(type: "job", payload: .integer(Int64(n)))
                    acknowledged.append(job.id.rawValue)
                } catch {
                    failures.append("\(error)")
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
        }
        #expect(await eventually { acknowledged.count >= 200 })
        let old = try await set.killPrimary()
        #expect(await set.waitForFailover(from: old), "a replica was promoted")
        let before = acknowledged.count
        #expect(await eventually(timeout: .seconds(20)) { acknowledged.count > before + 100 }, "enqueues go on after the failover")
        stop.store(true, ordering: .relaxed)
        await loop.value
        let stored = Set(try await listContents(driver, keys.queue("default")).compactMap { entry in
            try? JobEnvelope.decode(Data(entry.utf8), queue: keys.queue("default")).id.rawValue
        })
        let lost = Set(acknowledged.all).subtracting(stored)
        #expect(lost.isEmpty, "\(lost.count) acknowledged enqueues lost; \(failures.count) enqueues failed and said so")
        #expect(!failures.all.contains { $0.contains("hunter2") })
    }
}
