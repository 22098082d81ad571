import Foundation
import JobRouter
@testable import JobRouterRedis
import Synchronization
import Testing

/// The Redis Cluster `scripts/test.sh` starts (3 primaries, 3 replicas): `JOBROUTER_TEST_CLUSTER_PORTS`.
struct TestCluster {
    let ports: [Int]

    init() throws {
        let text = ProcessInfo.processInfo.environment["JOBROUTER_TEST_CLUSTER_PORTS"] ?? ""
        ports = text.split(separator: " ").compactMap { Int($0) }
        guard ports.count == 6 else { throw TestSetupError("JOBROUTER_TEST_CLUSTER_PORTS is not set: run the suite with scripts/test.sh") }
    }

    var seeds: [String] { ports.map { "127.0.0.1:\($0)" } }
    var url: String { "redis+cluster://" + seeds.joined(separator: ",") }

    /// A plain connection to one node (no cluster routing).
    func node(_ port: Int) -> RedisQueueDriver {
        RedisQueueDriver(endpoint: RedisEndpoint(host: "127.0.0.1", port: port), namespace: "probe")
    }

    /// The port of the primary that serves `slot`, from CLUSTER SLOTS.
    func primary(of slot: Int) async throws -> Int? {
        for port in ports {
            guard let reply = try? await node(port).command(["CLUSTER", "SLOTS"]) else { continue }
            let ranges = try ClusterSlotMap.parse(reply, askedNode: SentinelTarget.Address(host: "127.0.0.1", port: port))
            return ranges.first { $0.first <= slot && slot <= $0.last }?.primary.port
        }
        return nil
    }

    /// The replica of the primary on `port`.
    func replica(of port: Int) async throws -> Int? {
        guard case .string(let text) = try await node(port).command(["CLUSTER", "NODES"]) else { return nil }
        let lines: [[String]] = String(decoding: text, as: UTF8.self).split(separator: "\n").map { line in
            line.split(separator: " ").map { String($0) }
        }
        guard let owner: String = lines.first(where: { $0.count > 2 && $0[1].hasPrefix("127.0.0.1:\(port)@") })?[0] else { return nil }
        for fields in lines where fields.count > 3 && fields[2].contains("slave") && fields[3] == owner && !fields[2].contains("fail") {
            let address = fields[1].split(separator: "@")[0].split(separator: ":")
            if address.count == 2, let replica = Int(address[1]) { return replica }
        }
        return nil
    }

    /// `count` hash tags starting `prefix` whose slots are served by different primaries.
    func tagsOnDifferentShards(_ prefix: String, count: Int) async throws -> [(tag: String, primary: Int)] {
        var found: [(tag: String, primary: Int)] = []
        var n = 0
        while found.count < count, n < 1000 {
            let tag = "\(prefix)\(n)"
            n += 1
            guard let primary = try await primary(of: ClusterLayout.slot(of: "{\(tag)}")) else { continue }
            if !found.contains(where: { $0.primary == primary }) { found.append((tag, primary)) }
        }
        return found
    }
}

/// Redis Cluster: hash slots as the server computes them, a two-group drain across shards with a
/// primary failover in the middle (MOVED replies followed), views that add up every shard.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ClusterTests {
    @Test func slotsAreTheServersOwn() async throws {
        let cluster = try TestCluster()
        let node = cluster.node(cluster.ports[0])
        let keys = ["foo", "123456789", "{user1000}.following", "{user1000}.followers", "{}x", "{a{b}c}", "x{}{y}", "{mail}emails:high",
                    "jobrouter:{mail}:inflight", "ünïcødé", "a}{b", String(repeating: "k", count: 300)]
        for key in keys {
            let server = try await node.command(["CLUSTER", "KEYSLOT", key])
            #expect(server == .integer(Int64(ClusterLayout.slot(of: key))), "\(key)")
        }
        #expect(ClusterLayout.slot(of: "123456789") == 0x31C3 & 0x3FFF)
    }

    /// Two groups, each on its own shard; a `CLUSTER FAILOVER` of one group's primary mid-drain:
    /// every job runs, the queues end empty, enqueues go on after the switch, and the views (depths,
    /// dead letters, workers) add up both shards.
    @Test func aTwoGroupDrainAcrossShardsSurvivesAFailover() async throws {
        let cluster = try TestCluster()
        let run = UUID().uuidString.prefix(6).lowercased()
        let tags = try await cluster.tagsOnDifferentShards("t\(run)", count: 2)
        try #require(tags.count == 2, "two tags on two shards")
        let (a, b) = (tags[0].tag, tags[1].tag)
        let text = """
            default_queue = "{\(a)}default"
            [redis]
            cluster = [\(cluster.seeds.map { "\"\($0)\"" }.joined(separator: ", "))]
            namespace = "jr\(run)"
            [types.mail]
            handler = "swift"
            priorities = { high = "{\(a)}mail:high", low = "{\(a)}mail:low" }
            default_priority = "low"
            [types.report]
            handler = "swift"
            priorities = { normal = "{\(b)}reports" }
            default_priority = "normal"
            [groups.mail]
            queues = ["{\(a)}mail:high", "{\(a)}mail:low"]
            concurrency = 8
            lease = "5s"
            [groups.reports]
            queues = ["{\(b)}reports"]
            concurrency = 8
            lease = "5s"
            """
        let configuration = try RouterConfiguration.parse(toml: text)
        let driver = try RedisQueueDriver(configuration: configuration, environment: [:])
        #expect(driver.shards.count == 2)
        let client = JobRouterClient(configuration: configuration, driver: driver)
        var requests: [JobRequest] = []
        for n in 0..<1500 {
            requests.append(JobRequest(type: "mail", payload: .integer(Int64(n))))
            requests.append(JobRequest(type: "report", payload: .integer(Int64(n))))
        }
        requests.append(JobRequest(type: "mail", payload: .string("die")))
        requests.append(JobRequest(type: "report", payload: .string("die")))
        let jobs = try await client.enqueue(requests)
        let ran = Observations<String>()
        var handlers = HandlerRegistry()
        for type in ["mail", "report"] {
            handlers.register(type: type) { job, _ in
                if job.payload == .string("die") { throw TestSetupError("dies on purpose") }
                ran.append(job.id.rawValue)
                try await Task.sleep(for: .milliseconds(3))
            }
        }
        var terms = configuration
        for name in ["mail", "report"] { terms.types[name]?.maxAttempts = 1 }
        let worker = try JobRouterWorker(configuration: terms, driver: driver, handlers: handlers, logger: testLogger, recorders: [])
        var later: [JobEnvelope] = []
        try await withWorker(worker) {
            #expect(await eventually { ran.count >= 500 })
            let primary = tags[0].primary
            guard let replica = try await cluster.replica(of: primary) else {
                Issue.record("no replica for \(primary)")
                return
            }
            #expect(try await cluster.node(replica).command(["CLUSTER", "FAILOVER"]) == .status("OK"))
            #expect(ran.count < 2500, "the failover comes in the middle of the drain")
            #expect(await eventually(timeout: .seconds(20)) {
                (try? await cluster.primary(of: ClusterLayout.slot(of: "{\(a)}"))) == replica
            }, "the replica took the slot over")
            // The client's connections were to the old primary: they follow the MOVED replies.
            // With wait_replicas, each enqueue waits for the shard's replica (the old primary, now).
            driver.replication = RedisQueueDriver.Replication(replicas: 1, timeout: .seconds(5))
            later = try await client.enqueue((0..<100).map { JobRequest(type: "mail", payload: .integer(Int64(10_000 + $0))) })
            driver.replication = nil
            let expected = Set(jobs.map(\.id.rawValue) + later.map(\.id.rawValue)).subtracting(jobs.suffix(2).map(\.id.rawValue))
            #expect(await eventually(timeout: .seconds(60)) { Set(ran.all).isSuperset(of: expected) }, "every job ran")
            #expect(await eventually(timeout: .seconds(30)) {
                guard let statistics = try? await driver.statistics(queues: configuration.declaredQueues.sorted()) else { return false }
                return statistics.queues.allSatisfy { $0.depth == 0 && $0.inFlight == 0 } && statistics.queues.map(\.dead).reduce(0, +) == 2
            }, "both shards drained; one dead job in each")
            let statistics = try await driver.statistics(queues: configuration.declaredQueues.sorted())
            #expect(statistics.workers.contains { $0.id == worker.workerID }, "the worker is seen through the shards")
        }
        let missing = Set(jobs.dropLast(2).map(\.id.rawValue) + later.map(\.id.rawValue)).subtracting(ran.all)
        #expect(missing.isEmpty, "\(missing.count) jobs never ran")
        let dead = try await driver.deadLetters(limit: 10)
        #expect(Set(dead.compactMap(\.queue)) == ["{\(a)}mail:low", "{\(b)}reports"], "dead letters from both shards: \(dead.map(\.queue))")
        // Each group's keys are on its own shard: the {a} keys on a's primary, the {b} keys on b's.
        let onB = try await cluster.node(tags[1].primary).command(["EXISTS", "jr\(run):{\(b)}:dead"])
        #expect(onB == .integer(1))
        #expect(try await driver.deadLetterCount() == 2)
    }

    /// A slot migrating between shards: a push of a new queue key is answered `-ASK` and runs on
    /// the importing node (`ASKING` first); once the slot has moved, the driver's next call is
    /// answered `-MOVED` and follows it. The slot is moved back at the end.
    @Test func aMigratingSlotIsFollowedWithASKThenMOVED() async throws {
        let cluster = try TestCluster()
        let run = UUID().uuidString.prefix(6).lowercased()
        let tags = try await cluster.tagsOnDifferentShards("m\(run)", count: 2)
        try #require(tags.count == 2)
        let tag = tags[0].tag
        let queue = "{\(tag)}q"
        let slot = String(ClusterLayout.slot(of: queue))
        let (source, target) = (tags[0].primary, tags[1].primary)
        func nodeID(_ port: Int) async throws -> String {
            guard case .string(let id) = try await cluster.node(port).command(["CLUSTER", "MYID"]) else { throw TestSetupError("no node id") }
            return String(decoding: id, as: UTF8.self)
        }
        let (sourceID, targetID) = (try await nodeID(source), try await nodeID(target))
        var configuration = RouterConfiguration(defaultQueue: queue)
        configuration.redis.cluster = cluster.seeds
        configuration.redis.namespace = "jr\(run)"
        configuration.types["job"] = JobTypeConfiguration(name: "job", handler: .swift)
        try configuration.validate()
        let driver = try RedisQueueDriver(configuration: configuration, environment: [:])
        let client = JobRouterClient(configuration: configuration, driver: driver)
        #expect(try await driver.depths(of: [queue])[queue] == 0, "connected to the slot's owner before the migration")

        /// Hands the slot from `holder` to `owner` as `redis-cli --cluster` does (importing and
        /// migrating, keys emptied, then the new owner named: it bumps its epoch, so every node
        /// agrees), and waits until every node says so.
        func settle(to owner: (port: Int, id: String), from holder: (port: Int, id: String)) async throws {
            _ = try await cluster.node(owner.port).command(["CLUSTER", "SETSLOT", slot, "IMPORTING", holder.id])
            _ = try await cluster.node(holder.port).command(["CLUSTER", "SETSLOT", slot, "MIGRATING", owner.id])
            if case .array(let keys) = try await cluster.node(holder.port).command(["CLUSTER", "GETKEYSINSLOT", slot, "100"]) {
                for case .string(let key) in keys { _ = try await cluster.node(holder.port).command(["DEL", String(decoding: key, as: UTF8.self)]) }
            }
            _ = try await cluster.node(holder.port).command(["CLUSTER", "SETSLOT", slot, "NODE", owner.id])
            _ = try await cluster.node(owner.port).command(["CLUSTER", "SETSLOT", slot, "NODE", owner.id])
            let agreed = await eventually(timeout: .seconds(10)) {
                for port in cluster.ports {
                    guard let reply = try? await cluster.node(port).command(["CLUSTER", "SLOTS"]),
                          let ranges = try? ClusterSlotMap.parse(reply, askedNode: SentinelTarget.Address(host: "127.0.0.1", port: port)),
                          ranges.first(where: { $0.first <= Int(slot) ?? 0 && Int(slot) ?? 0 <= $0.last })?.primary.port == owner.port else { return false }
                }
                return true
            }
            if !agreed { throw TestSetupError("the nodes did not agree that slot \(slot) is on \(owner.port)") }
        }
        _ = try await cluster.node(target).command(["CLUSTER", "SETSLOT", slot, "IMPORTING", sourceID])
        _ = try await cluster.node(source).command(["CLUSTER", "SETSLOT", slot, "MIGRATING", targetID])
        do {
            let job = try await client.enqueue(type: "job", payload: .integer(1))
            let onTarget = try await cluster.node(target).pipeline([["ASKING"], ["LLEN", queue]])
            #expect(onTarget.last == .integer(1), "the job went to the importing node")
            #expect(try await cluster.node(source).command(["CLUSTER", "COUNTKEYSINSLOT", slot]) == .integer(0), "nothing was written on the old one")
            // The migration ends: the slot is the target's.
            try await settle(to: (target, targetID), from: (source, sourceID))
            let followed = await eventually(timeout: .seconds(10)) { (try? await driver.depths(of: [queue]))?[queue] == 1 }
            #expect(followed, "the depth is read from the new owner")
            let entries = try await driver.pipeline([["LRANGE", queue, "0", "-1"]]).first?.textValues ?? []
            #expect(entries.first.flatMap { try? JobEnvelope.decode(Data($0.utf8), queue: queue).id } == job.id)
        } catch {
            try? await settle(to: (source, sourceID), from: (target, targetID))
            throw error
        }
        // Back where it was, so the other tests see the layout they computed.
        try await settle(to: (source, sourceID), from: (target, targetID))
        #expect(try await cluster.primary(of: Int(slot) ?? 0) == source)
    }

    /// The cluster URL in `JOBROUTER_REDIS_URL`, and a configuration it cannot serve.
    @Test func theClusterURLNeedsTaggedQueues() async throws {
        let cluster = try TestCluster()
        let endpoint = try RedisEndpoint(url: "redis+cluster://" + cluster.seeds.joined(separator: ","))
        #expect(endpoint.cluster?.seeds.count == 6)
        #expect(throws: RedisError.self) { try RedisEndpoint(url: "redis+cluster://127.0.0.1:7000/3") }
        var configuration = RouterConfiguration(defaultQueue: "plain")
        configuration.types["job"] = JobTypeConfiguration(name: "job", handler: .swift)
        try configuration.validate()
        do {
            _ = try RedisQueueDriver(configuration: configuration, environment: ["JOBROUTER_REDIS_URL": "redis+cluster://" + cluster.seeds[0]])
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("default_queue: queue 'plain' has no hash tag"), "\(error)")
        }
    }
}
