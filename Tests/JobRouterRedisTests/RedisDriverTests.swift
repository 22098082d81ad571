import Foundation
import JobRouter
import JobRouterRedis
import Synchronization
import Testing

/// The Redis driver and its scripts against the real server, including under concurrency.
@Suite(.timeLimit(.minutes(2)))
struct RedisDriverTests {
    @Test func concurrentFetchersTakeEveryEntryExactlyOnceInPriorityOrder() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let (high, low) = (keys.queue("high"), keys.queue("low"))
        let jobs = (0..<3000).map { index in
            JobEnvelope(type: "t", priority: nil, queue: index < 1000 ? high : low, payload: .integer(Int64(index)))
        }
        try await driver.push(jobs)

        let fetchers = (0..<6).map { driver.makeFetcher(queues: [high, low], label: "f\($0)") }
        let taken = try await withThrowingTaskGroup(of: [FetchedEntry].self) { group in
            for fetcher in fetchers {
                group.addTask {
                    var mine: [FetchedEntry] = []
                    while true {
                        let batch = try await fetcher.fetch(max: 7, wait: .milliseconds(50))
                        if batch.isEmpty { return mine }
                        // Within one atomic claim, a high entry never follows a low one.
                        let queues = batch.map(\.queue)
                        #expect(queues == queues.sorted { $0 == high && $1 == low })
                        mine += batch
                    }
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        for fetcher in fetchers { await fetcher.close() }
        let indices = try taken.map { try JobEnvelope.decode($0.raw, queue: $0.queue).payload.intValue ?? -1 }
        #expect(indices.count == 3000)
        #expect(Set(indices) == Set(0..<3000))
        #expect(taken.allSatisfy { entry in
            let index = (try? JobEnvelope.decode(entry.raw, queue: entry.queue).payload.intValue) ?? -1
            return entry.queue == (index < 1000 ? high : low)
        })
    }

    @Test func idleFetchBlocksAndWakesWithinMilliseconds() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let queue = keys.queue("q")
        let fetcher = driver.makeFetcher(queues: [queue], label: "idle")
        let clock = ContinuousClock()
        let pushedAt = Mutex<ContinuousClock.Instant?>(nil)
        async let fetched = fetcher.fetch(max: 1, wait: .seconds(5))
        try await Task.sleep(for: .milliseconds(200))
        pushedAt.withLock { $0 = clock.now }
        try await driver.push([JobEnvelope(type: "t", priority: nil, queue: queue, payload: .null)])
        let entries = try await fetched
        let latency = try #require(pushedAt.withLock { $0 }).duration(to: clock.now)
        #expect(entries.count == 1)
        #expect(latency < .milliseconds(100), "woke after \(latency)")
        await fetcher.close()
    }

    @Test func interruptWakesABlockedFetchAtOnce() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        let fetcher = driver.makeFetcher(queues: [keys.queue("q")], label: "interrupt")
        let clock = ContinuousClock()
        let start = clock.now
        async let fetched = fetcher.fetch(max: 1, wait: .seconds(10))
        try await Task.sleep(for: .milliseconds(200))
        fetcher.interrupt()
        #expect(try await fetched.isEmpty)
        #expect(start.duration(to: clock.now) < .seconds(2))
        await fetcher.close()
    }

    @Test func requeueAtHeadKeepsTheGivenOrder() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let queue = keys.queue("q")
        _ = try await driver.command(["RPUSH", queue, "later"])
        try await driver.requeueAtHead(["a", "b", "c"].map { FetchedEntry(queue: queue, raw: Data($0.utf8)) })
        #expect(try await listContents(driver, queue) == ["a", "b", "c", "later"])
    }

    @Test func errorsNeverShowThePassword() async throws {
        let endpoint = try RedisEndpoint(url: "redis://user:s3cret-pw@127.0.0.1:1/0")
        #expect(endpoint.description == "127.0.0.1:1/0")
        let driver = RedisQueueDriver(endpoint: endpoint, namespace: "x")
        await #expect {
            _ = try await driver.depths(of: ["q"])
        } throws: { error in
            let text = "\(error)"
            return text.contains("127.0.0.1:1") && !text.contains("s3cret")
        }
        #expect {
            _ = try RedisEndpoint(url: "redis://:s3cret-pw@host:notaport")
        } throws: { error in
            !"\(error)".contains("s3cret")
        }
    }

    @Test func wrongPasswordIsAConnectionErrorWithTheServersMessage() async throws {
        var endpoint = try RedisEndpoint(url: try TestRedis.url)
        endpoint.password = "wrong-secret"
        let driver = RedisQueueDriver(endpoint: endpoint, namespace: "x")
        await #expect {
            _ = try await driver.depths(of: ["q"])
        } throws: { error in
            guard let error = error as? RedisError else { return false }
            return error.code == .connection && error.command == "AUTH" && !"\(error)".contains("wrong-secret")
        }
    }
}
