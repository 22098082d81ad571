import Foundation
import JobRouter
@testable import JobRouterRedis
import Synchronization
import Testing

/// The attempt log's layout: a settle call's records travel as one string with their lengths,
/// and come out of the log one by one, each once.
@Suite(.timeLimit(.minutes(2)))
struct AttemptLogTests {
    @Test func recordsSentTogetherAreReadOneByOne() {
        let joined = Array(#"{"a":1}{"bb":22}"#.utf8)
        let records = RedisAttemptLog.split(joined, lengths: Array("7,9".utf8))
        #expect(records == [Data(#"{"a":1}"#.utf8), Data(#"{"bb":22}"#.utf8)])
        // Slices of one buffer: read as what they hold, wherever they start.
        #expect(records.map { try? JSONValue.parse($0) } == [.object(["a": .integer(1)]), .object(["bb": .integer(22)])])
        // Lengths that do not add up: one record holding everything (stored as malformed, not lost).
        for lengths in ["7,8", "7,10", "7,x", "", "0,16"] {
            #expect(RedisAttemptLog.split(joined, lengths: Array(lengths.utf8)) == [Data(joined)], "\(lengths)")
        }
    }

    /// One `complete` call for three claims, one of them taken back by recovery: the records of
    /// the two it finished are logged, the third's is not (the script cuts them out of the joined
    /// string); with every claim finished, the joined string is logged as it came.
    @Test func aSettleCallLogsTheRecordsOfTheClaimsItFinishedOnly() async throws {
        let keys = TestKeys()
        let queue = keys.queue("default")
        let driver = RedisQueueDriver(endpoint: try RedisEndpoint(url: try TestRedis.url), namespace: keys.namespace, ledgerBuffer: 100)
        for n in 0..<6 { _ = try await driver.command(["RPUSH", queue, #"{"id":"j\#(n)","type":"ok"}"#]) }
        let fetcher = driver.makeFetcher(queues: [queue], label: "t", worker: "w", terms: LeaseTerms(lease: .seconds(30), maxRecoveries: 1))
        var claims = try await fetcher.fetch(max: 5, wait: .milliseconds(200))
        let short = driver.makeFetcher(queues: [queue], label: "short", worker: "w2", terms: LeaseTerms(lease: .milliseconds(200), maxRecoveries: 3))
        claims.insert(contentsOf: try await short.fetch(max: 1, wait: .milliseconds(200)), at: 1)
        await short.close()
        #expect(claims.count == 6)
        #expect(await eventually { (try? await driver.recoverExpiredLeases(limit: 10, maxDead: 100).recovered) == 1 })
        let log = RedisAttemptLog(driver: driver)
        // Drains what the log holds now (nothing is logged without a record).
        #expect(try await log.read(consumer: "c", max: 100, wait: .milliseconds(10)).isEmpty)

        func call(_ claims: ArraySlice<ClaimedEntry>) async throws -> RedisReply {
            let records = claims.map { #"{"id":"\#($0.jobID.rawValue)","claim":"\#($0.token)"}"# }
            var arguments = [keys.namespace, "100", records.map { String($0.utf8.count) }.joined(separator: ","), records.joined(),
                             "2", queue, String(claims.count)]
            for (claim, record) in zip(claims, records) {
                arguments += [claim.token, String(record.utf8.count)]
            }
            return try await driver.command(["EVAL", RedisScripts.complete.source, "0"] + arguments)
        }
        // Claim 1 was taken back: each claim answered on its own. Then every claim held: their number.
        #expect(try await call(claims[0..<3]) == .array([.integer(1), .integer(0), .integer(1)]))
        #expect(try await call(claims[3..<6]) == .integer(3))

        let read = try await log.read(consumer: "c", max: 100, wait: .milliseconds(100))
        #expect(read.map { String(decoding: $0.record, as: UTF8.self) } == [0, 2, 3, 4, 5].map {
            #"{"id":"\#(claims[$0].jobID.rawValue)","claim":"\#(claims[$0].token)"}"#
        })
        // Two entries: the first with a field per record (cut out), the second with the string as sent.
        #expect(Set(read.map(\.id)).count == 2)
        let entries = try await driver.command(["XRANGE", keys.namespace + ":events", "-", "+"])
        let fields = try (entries.array(for: "XRANGE") ?? []).map { entry in
            try (entry.array(for: "XRANGE")?[1].array(for: "XRANGE") ?? []).map { try $0.text(for: "XRANGE") }
        }
        #expect(fields.map { Array($0.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)) } == [["n", "r", "r"], ["n", "L", "R"]])
        #expect(fields.map { $0[1] } == ["2", "3"])
        #expect(try await log.backlog() == AttemptLogBacklog(waiting: 5, dropped: 0))
        // Acknowledging takes each entry's records off the count without reading them back.
        try await log.acknowledge(read.map(\.id))
        #expect(try await log.backlog() == AttemptLogBacklog(waiting: 0, dropped: 0))
        #expect(try await driver.command(["XLEN", keys.namespace + ":events"]) == .integer(0))
        await fetcher.close()
        await cleanUp(driver, keys)
    }

    /// Settles waiting in the batcher carry their records: with more waiting than one call takes
    /// (1,000), over two queues whose claims each call sends grouped by queue, every record
    /// reaches the log once, with its own claim.
    @Test func recordsWaitingInTheBatcherGoWithTheirOwnClaims() async throws {
        let keys = TestKeys()
        let queues = [keys.queue("a"), keys.queue("b")]
        let driver = RedisQueueDriver(endpoint: try RedisEndpoint(url: try TestRedis.url), namespace: keys.namespace, ledgerBuffer: 10_000)
        for n in 0..<2500 { _ = try await driver.command(["RPUSH", queues[n % 3 == 0 ? 0 : 1], #"{"id":"j\#(n)","type":"ok"}"#]) }
        let fetcher = driver.makeFetcher(queues: queues, label: "t", worker: "w", terms: LeaseTerms(lease: .seconds(60), maxRecoveries: 1))
        var claims: [ClaimedEntry] = []
        while claims.count < 2500 { claims += try await fetcher.fetch(max: 1000, wait: .milliseconds(100)) }
        await fetcher.close()
        let log = RedisAttemptLog(driver: driver)
        _ = try await log.read(consumer: "c", max: 1, wait: .milliseconds(10))  // makes the consumer group
        let results = Mutex<[SettleResult]>([])
        let done = AsyncStream<Void>.makeStream()
        // The driver's connection held by a 300 ms BLPOP meanwhile (the server free for others),
        // so the first flush finds all 2,500 waiting (more than one call takes); interleaved queues.
        let busy = Task { try await driver.command(["BLPOP", "\(keys.namespace):nothing", "0.3"]) }
        try await Task.sleep(for: .milliseconds(50))
        for claim in claims.shuffled() {
            let record = AttemptRecord(jobID: claim.jobID, claim: claim.token, type: "ok", priority: nil, queue: claim.queue, group: "g",
                                       attempt: 1, outcome: .succeeded, error: nil, worker: "w", enqueuedAt: nil, startedAt: nil, entry: nil)
            driver.complete(claim, attempt: record) { result in
                let count = results.withLock { all -> Int in
                    if case .success(let settled) = result { all.append(settled) }
                    return all.count
                }
                if count == 2500 { done.continuation.finish() }
            }
        }
        for await _ in done.stream {}
        _ = try await busy.value
        #expect(results.withLock { $0 } == Array(repeating: .applied, count: 2500))
        var logged: [String: String] = [:]
        while true {
            let read = try await log.read(consumer: "c", max: 1000, wait: .milliseconds(50))
            if read.isEmpty { break }
            for attempt in read {
                guard case .object(let fields)? = try? JSONValue.parse(attempt.record),
                      let id = fields["id"]?.stringValue, let claim = fields["claim"]?.stringValue else {
                    Issue.record("not a record: \(String(decoding: attempt.record, as: UTF8.self))")
                    continue
                }
                #expect(logged[id] == nil, "\(id) logged twice")
                logged[id] = claim
            }
        }
        #expect(logged == Dictionary(uniqueKeysWithValues: claims.map { ($0.jobID.rawValue, $0.token) }))
        await cleanUp(driver, keys)
    }
}
