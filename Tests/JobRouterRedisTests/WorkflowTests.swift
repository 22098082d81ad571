import Foundation
import JobRouter
import JobRouterRedis
import Testing

/// Unique jobs, chains, batches with callbacks, pause/resume and autoscaling against a real Redis.
@Suite(.timeLimit(.minutes(3)))
struct WorkflowTests {
    func configuration(_ keys: TestKeys, until: UniqueTerms.Until = .done, lease: Duration = .seconds(30),
                       scaling: ConcurrencyScaling? = nil) throws -> RouterConfiguration {
        var configuration = RouterConfiguration(defaultQueue: keys.queue("default"))
        configuration.redis.namespace = keys.namespace
        var sync = JobTypeConfiguration(name: "sync", handler: .swift, priorities: ["default": keys.queue("sync")],
                                        defaultPriority: "default", maxAttempts: 1)
        sync.unique = UniqueTerms(keyPaths: ["user_id"], lifetime: .seconds(600), until: until)
        configuration.types["sync"] = sync
        configuration.types["step"] = JobTypeConfiguration(name: "step", handler: .swift, priorities: ["high": keys.queue("high"), "low": keys.queue("low")],
                                                           defaultPriority: "low", maxAttempts: 1)
        configuration.types["done"] = JobTypeConfiguration(name: "done", handler: .swift, priorities: ["default": keys.queue("callbacks")],
                                                           defaultPriority: "default")
        var main = WorkerGroupConfiguration(name: "main", queues: [keys.queue("high"), keys.queue("low"), keys.queue("sync"), keys.queue("callbacks")],
                                            concurrency: 16, lease: lease, maxRecoveries: 0)
        if let scaling {
            main.scaling = scaling
            main.concurrency = scaling.max
        }
        configuration.groups["main"] = main
        try configuration.validate()
        return configuration
    }

    // MARK: Unique

    @Test func thousandConcurrentEnqueuesOfOneKeyMakeOneJob() async throws {
        let keys = TestKeys()
        let configuration = try configuration(keys)
        // Eight connections, 125 enqueues each, all at once.
        let drivers = try (0..<8).map { _ in try TestRedis.driver(namespace: keys.namespace) }
        defer { Task { await cleanUp(drivers[0], keys) } }
        let results = try await withThrowingTaskGroup(of: EnqueueResult.self) { group in
            for index in 0..<1000 {
                let client = JobRouterClient(configuration: configuration, driver: drivers[index % drivers.count])
                group.addTask {
                    try await client.submit([JobRequest(type: "sync", payload: .object(["user_id": .integer(7), "n": .integer(Int64(index))]))])[0]
                }
            }
            var all: [EnqueueResult] = []
            for try await result in group { all.append(result) }
            return all
        }
        let entries = try await listContents(drivers[0], keys.queue("sync"))
        #expect(entries.count == 1)
        #expect(results.filter { !$0.isDuplicate }.count == 1)
        let kept = try #require(results.first { !$0.isDuplicate })
        #expect(Set(results.map(\.id)) == [kept.id], "every duplicate names the job that holds the lock")
        #expect(entries.first?.contains(kept.id.rawValue) == true)
        // Another key is not locked.
        let other = try await JobRouterClient(configuration: configuration, driver: drivers[0])
            .submit([JobRequest(type: "sync", payload: .object(["user_id": .integer(8)]))])[0]
        #expect(!other.isDuplicate)
    }

    /// In one call, beside plain jobs: a duplicate of a unique job is answered with the job that
    /// holds the lock (by `enqueue` as its id, by `submit` as `existing`), is not pushed, and is
    /// not reported as enqueued; every other job is, once.
    @Test func aDuplicateInACallIsAnsweredWithTheLockHolderAndNotReported() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let events = EventLog()
        let client = JobRouterClient(configuration: try configuration(keys), driver: driver, recorders: [events])
        let sync = JobRequest(type: "sync", payload: .object(["user_id": .integer(3)]))
        let step = JobRequest(type: "step", payload: .integer(1))
        let first = try await client.enqueue([step, sync, step])
        let second = try await client.enqueue([step, sync])
        #expect(second[1].id == first[1].id)
        #expect(second[0].id != first[0].id && second[0].id != first[2].id)
        let third = try await client.submit([sync, step])
        #expect(third[0].existing == first[1].id && !third[1].isDuplicate)
        let enqueued = events.all.compactMap { if case .enqueued(let job) = $0 { return job.id } else { return nil } }
        #expect(enqueued == [first[0].id, first[1].id, first[2].id, second[0].id, third[1].id])
        #expect(try await listContents(driver, keys.queue("sync")).count == 1)
        #expect(try await listContents(driver, keys.queue("low")).count == 4)
    }

    @Test(arguments: [UniqueTerms.Until.done, .start])
    func theLockIsReleasedWhenTheJobSucceedsOrStarts(until: UniqueTerms.Until) async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let configuration = try configuration(keys, until: until)
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let request = JobRequest(type: "sync", payload: .object(["user_id": .integer(1)]))
        let first = try await client.submit([request])[0]
        #expect(try await client.submit([request])[0].existing == first.job.id)

        let release = Observations<Int>()
        let running = Observations<String>()
        var handlers = HandlerRegistry()
        handlers.register(type: "sync") { job, _ in
            running.append(job.id.rawValue)
            // Held here until the test lets it go.
            while release.count == 0 { try await Task.sleep(for: .milliseconds(5)) }
        }
        handlers.register(type: "step") { _, _ in }
        handlers.register(type: "done") { _, _ in }
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: handlers, logger: testLogger, recorders: [])
        try await withWorker(worker) {
            #expect(await eventually { running.count == 1 })
            try await Task.sleep(for: .milliseconds(100))
            let whileRunning = try await client.submit([request])[0]
            // `start`: released when it started, so a new job is made; `done`: still held.
            #expect(whileRunning.isDuplicate == (until == .done))
            release.append(1)
            #expect(await eventually { (try? await driver.command(["HLEN", "\(keys.namespace):inflight"])) == .integer(0) && running.count >= 1 })
            #expect(await eventually { (try? await listContents(driver, keys.queue("sync")))?.isEmpty == true })
            if until == .done {
                let after = try await client.submit([request])[0]
                #expect(!after.isDuplicate, "released once the job succeeded")
            }
        }
    }

    @Test func aDeadJobAndAPoisonedJobReleaseTheirLocks() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let configuration = try configuration(keys, lease: .seconds(1))
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let request = JobRequest(type: "sync", payload: .object(["user_id": .integer(2)]))

        // Dies (max_attempts 1): released.
        _ = try await client.submit([request])
        var handlers = HandlerRegistry()
        handlers.register(type: "sync") { _, _ in throw JobFailure("no such user", permanent: true) }
        handlers.register(type: "step") { _, _ in }
        handlers.register(type: "done") { _, _ in }
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: handlers, logger: testLogger, recorders: [])
        try await withWorker(worker) {
            #expect(await eventually { (try? await driver.deadLetterCount()) == 1 })
        }
        // Retried from the dead letters, it holds its lock again.
        let dead = try #require(try await driver.deadLetters(limit: 1).first)
        let beforeRetry = Date()
        #expect(try await driver.retryDeadLetter(dead, router: Router(configuration: configuration)))
        // Sent back, it waits from then on (status, metrics, its wait); it was enqueued before.
        let entry = try #require(try await listContents(driver, keys.queue("sync")).first)
        let back = try JobEnvelope.decode(Data(entry.utf8), queue: keys.queue("sync"))
        #expect(back.waitingSince >= beforeRetry.addingTimeInterval(-0.002) && back.enqueuedAt < beforeRetry, "\(entry)")
        let retried = try await client.submit([request])[0]
        #expect(retried.existing?.rawValue == dead.jobID, "the retried job holds the lock")
        _ = try await driver.command(["DEL", keys.queue("sync"), "\(keys.namespace):unique:sync:[2]"])
        #expect(try await client.submit([request])[0].isDuplicate == false)

        // Claimed by a worker that then vanished, with max_recoveries 0: poison, and released.
        let fetcher = driver.makeFetcher(queues: [keys.queue("sync")], label: "gone", worker: "gone:1",
                                         terms: LeaseTerms(lease: .seconds(1), maxRecoveries: 0))
        #expect(try await fetcher.fetch(max: 1, wait: .milliseconds(100)).count == 1)
        await fetcher.close()
        #expect(try await client.submit([request])[0].isDuplicate, "held while its claim is alive")
        try await Task.sleep(for: .milliseconds(1100))
        let report = try await driver.recoverExpiredLeases(limit: 10, maxDead: 100)
        #expect(report.poisoned == 1)
        #expect(try await client.submit([request])[0].isDuplicate == false, "the poisoned job's lock is released")
    }

    // MARK: Chains

    /// A chain settles exactly once: a worker that dies after its handler returned (before the ack)
    /// re-runs the job and the next one is made once; a settle whose reply was lost and is tried
    /// again makes nothing twice.
    @Test func theNextJobOfAChainExistsExactlyOnce() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let configuration = try configuration(keys, lease: .seconds(1))
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let chain = JobRequest(type: "step", priority: "high", payload: .string("a"),
                               then: [JobRequest(type: "step", priority: "low", payload: .string("b"),
                                                 then: [JobRequest(type: "step", payload: .string("c"))])])
        _ = try await client.enqueue([chain])
        #expect(try await listContents(driver, keys.queue("low")).isEmpty, "nothing follows before the first succeeded")

        // Claimed, handler "returned", and the worker died before its ack: the lease expires and
        // recovery puts it back.
        let fetcher = driver.makeFetcher(queues: [keys.queue("high")], label: "dies", worker: "dies:1",
                                         terms: LeaseTerms(lease: .seconds(1), maxRecoveries: 5))
        let claimed = try await fetcher.fetch(max: 1, wait: .milliseconds(100))
        await fetcher.close()
        #expect(claimed.count == 1)
        try await Task.sleep(for: .milliseconds(1100))
        #expect(try await driver.recoverExpiredLeases(limit: 10, maxDead: 100).recovered == 1)
        #expect(try await listContents(driver, keys.queue("low")).isEmpty)

        // A second worker claims it again and settles it; the settle is sent twice (a lost reply).
        let second = driver.makeFetcher(queues: [keys.queue("high")], label: "lives", worker: "lives:1",
                                        terms: LeaseTerms(lease: .seconds(30), maxRecoveries: 5))
        let again = try #require(try await second.fetch(max: 1, wait: .milliseconds(100)).first)
        await second.close()
        var job = try JobEnvelope.decode(again.raw, queue: again.queue)
        job.id = again.jobID
        #expect(try await driver.complete(again, attempt: nil, finishing: job) == .applied)
        #expect(try await driver.complete(again, attempt: nil, finishing: job) == .alreadySettled)
        let next = try await listContents(driver, keys.queue("low"))
        #expect(next.count == 1)
        let b = try JobEnvelope.decode(Data(try #require(next.first).utf8), queue: keys.queue("low"))
        #expect(b.payload == .string("b") && b.then.count == 1 && b.then[0].payload == .string("c"))

        // The rest of the chain runs through a worker: c follows b, once.
        let seen = Observations<String>()
        var handlers = HandlerRegistry()
        handlers.register(type: "step") { job, _ in seen.append(job.payload.stringValue ?? "?") }
        handlers.register(type: "sync") { _, _ in }
        handlers.register(type: "done") { _, _ in }
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: handlers, logger: testLogger, recorders: [])
        try await withWorker(worker) {
            #expect(await eventually { seen.count == 2 })
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(seen.all == ["b", "c"])
    }

    // MARK: Batches

    @Test func aBatchOfTenThousandWithTenDeadCallsBackOnceWithTheCounts() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let configuration = try configuration(keys)
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let failing = Set((0..<10).map { $0 * 997 })
        let requests = (0..<10_000).map { JobRequest(type: "step", payload: .integer(Int64($0))) }
        let callbacks = Observations<JSONValue>()
        let deadIDs = Observations<String>()
        var handlers = HandlerRegistry()
        handlers.register(type: "step") { job, _ in
            if let n = job.payload.intValue, failing.contains(n) {
                deadIDs.append(job.id.rawValue)
                throw JobFailure("fails on purpose", permanent: true)
            }
        }
        handlers.register(type: "sync") { _, _ in }
        handlers.register(type: "done") { job, _ in callbacks.append(job.payload) }
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: handlers, logger: testLogger, recorders: [])
        try await withWorker(worker) {
            // Workers run while the batch is still going in: the callback must wait for the seal.
            let (batch, submitted) = try await client.enqueueBatch(requests, onComplete: JobRequest(type: "done", payload: .object(["report": .string("r1")])))
            #expect(submitted.count == 10_000)
            #expect(await eventually(timeout: .seconds(90)) { callbacks.count == 1 })
            try await Task.sleep(for: .milliseconds(300))
            #expect(callbacks.count == 1)
            let payload = try #require(callbacks.all.first)
            #expect(payload["batch"] == .string(batch))
            #expect(payload["total"] == .integer(10_000))
            #expect(payload["succeeded"] == .integer(9_990))
            #expect(payload["dead"] == .integer(10))
            #expect(payload["payload"] == .object(["report": .string("r1")]))
            let ids = Set((payload["dead_ids"]?.arrayValue ?? []).compactMap(\.stringValue))
            #expect(ids == Set(deadIDs.all))
            #expect(try await driver.batches(limit: 10).isEmpty, "a finished batch is no longer open")
        }
    }

    @Test func aBatchWhoseJobsFinishBeforeItIsSealedCallsBackAtTheSeal() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let configuration = try configuration(keys)
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let batch = try await client.openBatch("b1", onComplete: JobRequest(type: "done"))
        _ = try await client.submit([JobRequest(type: "step")], batch: batch)
        let open = try await driver.batches(limit: 10)
        #expect(open.map(\.id) == ["b1"] && open.first?.total == 1 && open.first?.sealed == false)
        // Run the one job by hand.
        let fetcher = driver.makeFetcher(queues: [keys.queue("low")], label: "t", worker: "t:1", terms: LeaseTerms(lease: .seconds(30), maxRecoveries: 1))
        let claim = try #require(try await fetcher.fetch(max: 1, wait: .milliseconds(100)).first)
        await fetcher.close()
        var job = try JobEnvelope.decode(claim.raw, queue: claim.queue)
        job.id = claim.jobID
        #expect(try await driver.complete(claim, attempt: nil, finishing: job) == .applied)
        #expect(try await listContents(driver, keys.queue("callbacks")).isEmpty, "not sealed yet")
        #expect(try await client.sealBatch(batch) != nil)
        #expect(try await listContents(driver, keys.queue("callbacks")).count == 1)
        #expect(try await client.sealBatch(batch) == nil, "once")
    }

    // MARK: Pause

    @Test func aPausedQueueStartsNothingWhileTheGroupsOtherQueuesGoOn() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let configuration = try configuration(keys)
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let starts = Observations<(String, ContinuousClock.Instant)>()
        var handlers = HandlerRegistry()
        handlers.register(type: "step") { job, _ in
            starts.append((job.priority ?? "?", .now))
            try await Task.sleep(for: .milliseconds(20))
        }
        handlers.register(type: "sync") { _, _ in }
        handlers.register(type: "done") { _, _ in }
        _ = try await client.enqueue((0..<3000).map { JobRequest(type: "step", priority: "high", payload: .integer(Int64($0))) })
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: handlers, logger: testLogger, recorders: [])
        try await withWorker(worker) {
            #expect(await eventually { starts.count > 100 })
            #expect(try await driver.setPaused([keys.queue("high")], true) == 1)
            // Every claim from the moment the pause is stored skips the queue: its depth stays put.
            let depthAtPause = try await driver.depths(of: [keys.queue("high")])[keys.queue("high")]
            #expect((depthAtPause ?? 0) > 0)
            try await Task.sleep(for: .milliseconds(300))
            // Low jobs go on meanwhile.
            _ = try await client.enqueue((0..<50).map { JobRequest(type: "step", priority: "low", payload: .integer(Int64($0))) })
            #expect(await eventually(timeout: .seconds(20)) { starts.all.filter { $0.0 == "low" }.count == 50 })
            try await Task.sleep(for: .milliseconds(300))
            let depth = try await driver.depths(of: [keys.queue("high")])[keys.queue("high")]
            #expect(depth == depthAtPause, "high jobs were claimed after the pause")
            #expect(try await driver.pausedQueues() == [keys.queue("high")])
            let before = starts.count
            #expect(try await driver.setPaused([keys.queue("high")], false) == 1)
            #expect(await eventually { starts.count > before + 50 }, "resumed: high jobs start again")
        }
    }

    // MARK: Autoscaling

    @Test func aGroupScalesUpUnderAStepLoadAndBackDownAfter() async throws {
        let keys = TestKeys()
        let driver = try TestRedis.driver(namespace: keys.namespace)
        defer { Task { await cleanUp(driver, keys) } }
        let configuration = try configuration(keys, scaling: ConcurrencyScaling(min: 1, max: 16, targetWait: .milliseconds(300),
                                                                                scaleDownAfter: .seconds(1)))
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let gauge = ConcurrencyGauge()
        var handlers = HandlerRegistry()
        handlers.register(type: "step") { _, _ in
            gauge.enter()
            defer { gauge.leave() }
            try await Task.sleep(for: .milliseconds(50))
        }
        handlers.register(type: "sync") { _, _ in }
        handlers.register(type: "done") { _, _ in }
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: handlers, logger: testLogger, recorders: [])
        try await withWorker(worker) {
            try await Task.sleep(for: .milliseconds(500))
            #expect(worker.load.first?.concurrency == 1, "starts at min")
            _ = try await client.enqueue((0..<1500).map { JobRequest(type: "step", payload: .integer(Int64($0))) })
            #expect(await eventually(timeout: .seconds(20)) { (worker.load.first?.concurrency ?? 0) == 16 }, "grows to max while jobs wait")
            #expect(await eventually(timeout: .seconds(60)) { (try? await driver.depths(of: [keys.queue("low")]))?[keys.queue("low")] == 0 })
            #expect(await eventually(timeout: .seconds(30)) { (worker.load.first?.concurrency ?? 0) == 1 }, "back to min once quiet")
        }
        #expect(gauge.peak > 8, "peak \(gauge.peak)")
    }
}
