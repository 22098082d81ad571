import Foundation
import JobRouter
import JobRouterRedis
import Testing

/// The drain's fast path against a real Redis: noop jobs acked from the claim loops, acks written
/// without a task waiting for them, and the leases set kept in its indexed form.
@Suite(.timeLimit(.minutes(2)))
struct HotPathTests {
    func configuration(_ keys: TestKeys) throws -> RouterConfiguration {
        var configuration = RouterConfiguration(defaultQueue: keys.queue("default"))
        configuration.redis.namespace = keys.namespace
        configuration.types["ping"] = JobTypeConfiguration(name: "ping", handler: .noop)
        configuration.groups["main"] = WorkerGroupConfiguration(name: "main", queues: [keys.queue("default")], concurrency: 16)
        try configuration.validate()
        return configuration
    }

    /// A stop in the middle of a fast drain: every job is either reported done (its ack written)
    /// or still in its queue; none is left claimed, and none is reported done without its ack.
    @Test func aNoopDrainStoppedMidwayLeavesEveryJobDoneOrQueued() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let configuration = try configuration(keys)
        let total = 6_000
        let client = JobRouterClient(configuration: configuration, driver: driver)
        _ = try await client.enqueue((0..<total).map { _ in JobRequest(type: "ping") })
        let events = EventLog()
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: HandlerRegistry(),
                                         groups: ["main"], logger: testLogger, recorders: [events])
        let queue = keys.queue("default")
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await worker.run() }
            #expect(await eventually { events.succeeded.count >= 500 })
            worker.shutdown()
            try await group.waitForAll()
        }
        // Read right after run() returned: the group waited for its acks.
        let done = Set(events.succeeded.map(\.id))
        let left = try await driver.depths(of: [queue])[queue] ?? -1
        #expect(try await driver.command(["HLEN", "\(keys.namespace):inflight"]) == .integer(0))
        #expect(try await driver.command(["ZCOUNT", "\(keys.namespace):leases", "-inf", "(+inf"]) == .integer(0))
        #expect(done.count == events.succeeded.count, "a job reported done twice")
        #expect(done.count > 0 && done.count < total, "the stop came mid-drain: \(done.count) done")
        #expect(done.count + left == total, "done \(done.count) + queued \(left) != \(total)")
    }

    /// The leases set keeps its keeper, so Redis holds it as a skiplist from the first claim.
    @Test func theLeasesSetIsASkiplistFromTheFirstClaim() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let configuration = try configuration(keys)
        let client = JobRouterClient(configuration: configuration, driver: driver)
        _ = try await client.enqueue(type: "ping")
        let fetcher = driver.makeFetcher(queues: [keys.queue("default")], label: "test", worker: "w",
                                         terms: LeaseTerms(lease: .seconds(30), maxRecoveries: 3, maxPayload: 1 << 20, maxDead: 100, ledger: nil))
        let claimed = try await fetcher.fetch(max: 1, wait: .milliseconds(100))
        await fetcher.close()
        #expect(claimed.count == 1)
        #expect(try await driver.command(["OBJECT", "ENCODING", "\(keys.namespace):leases"]) == .string(Array("skiplist".utf8)))
        // One claim's lease, and the keeper no recovery ever reads (its score is +inf).
        #expect(try await driver.command(["ZCOUNT", "\(keys.namespace):leases", "-inf", "(+inf"]) == .integer(1))
        let settled = try #require(claimed.first)
        #expect(try await driver.complete(settled) == .applied)
        #expect(try await driver.command(["ZCOUNT", "\(keys.namespace):leases", "-inf", "(+inf"]) == .integer(0))
    }
}
