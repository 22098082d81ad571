import Foundation
import JobRouter
import JobRouterPostgres
import JobRouterRedis
import Testing

/// The ledger on a Redis Cluster: each tag's settle scripts write its own attempt log
/// (`NAMESPACE:{TAG}:events`), one shipper per shard stores them (as `jobrouter work` runs them),
/// and every attempt of every tag lands in PostgreSQL once.
@Suite(.timeLimit(.minutes(3)))
struct LedgerClusterTests {
    @Test func everyTagsAttemptsAreStoredOnce() async throws {
        let ports = (ProcessInfo.processInfo.environment["JOBROUTER_TEST_CLUSTER_PORTS"] ?? "").split(separator: " ")
        try #require(ports.count == 6, "JOBROUTER_TEST_CLUSTER_PORTS is not set: run the suite with scripts/test.sh")
        let run = UUID().uuidString.prefix(6).lowercased()
        let schema = TestPostgres.schema()
        let pool = PostgresPool(url: try TestPostgres.url, size: 1)
        _ = try await PostgresMigrator(schema: schema).migrate(pool)
        let toml = """
            default_queue = "{a\(run)}default"
            [redis]
            cluster = [\(ports.map { "\"127.0.0.1:\($0)\"" }.joined(separator: ", "))]
            namespace = "lc\(run)"
            [postgres]
            url = "postgres://nobody@127.0.0.1:1/unused"
            schema = "\(schema)"
            [types.a]
            handler = "swift"
            priorities = { normal = "{a\(run)}q" }
            default_priority = "normal"
            [types.b]
            handler = "swift"
            priorities = { normal = "{b\(run)}q" }
            default_priority = "normal"
            [groups.a]
            queues = ["{a\(run)}q"]
            [groups.b]
            queues = ["{b\(run)}q"]
            """
        let configuration = try RouterConfiguration.parse(toml: toml, providers: HandlerRegistry().providers)
        let driver = try RedisQueueDriver(configuration: configuration, environment: [:])
        #expect(driver.shards.map(\.namespace).sorted() == ["lc\(run):{a\(run)}", "lc\(run):{b\(run)}"])
        var registry = HandlerRegistry()
        registry.register(type: "a") { _, _ in }
        registry.register(type: "b") { _, _ in }
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let jobs = try await client.enqueue((0..<200).flatMap { n in
            [JobRequest(type: "a", payload: .integer(Int64(n))), JobRequest(type: "b", payload: .integer(Int64(n)))]
        })
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: registry, logger: LedgerTests.quietLogger, recorders: [])
        let settings = try #require(configuration.postgres)
        let shippers = driver.shards.map { shard in
            LedgerShipper(log: RedisAttemptLog(driver: shard), pool: pool, settings: settings, consumer: worker.workerID, logger: LedgerTests.quietLogger)
        }
        let running = Task { await worker.run() }
        let shipping = shippers.map { shipper in Task { await shipper.run() } }
        let stored = try await LedgerTests.eventually(timeout: .seconds(60)) {
            let rows = try await pool.withConnection { try $0.query("SELECT count(DISTINCT job_id), count(*) FROM \(schema).attempts WHERE outcome = 'succeeded'").rows }
            return rows.first == ["400", "400"]
        }
        #expect(stored, "all 400 attempts of both tags stored, each once")
        worker.shutdown(immediately: true)
        await running.value
        for shipper in shippers { shipper.finish() }
        for task in shipping { await task.value }
        let ids = try await pool.withConnection { try $0.query("SELECT job_id FROM \(schema).attempts").rows }.compactMap { $0.first ?? nil }
        #expect(Set(ids) == Set(jobs.map(\.id.rawValue)))
        #expect(try await RedisAttemptLog.backlog(over: driver.shards) == AttemptLogBacklog(waiting: 0, dropped: 0))
        _ = try? await pool.withConnection { try $0.query("DROP SCHEMA \(schema) CASCADE") }
    }
}
