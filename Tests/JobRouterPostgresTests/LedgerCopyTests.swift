import Foundation
import JobRouter
@testable import JobRouterPostgres
import JobRouterRedis
import Testing

/// The ledger's binary `COPY` must store every record it takes exactly as the `INSERT` it replaces
/// would, and leave every record it does not read exactly to that `INSERT`.
@Suite(.timeLimit(.minutes(2)))
struct LedgerCopyTests {
    /// Records of every shape the copy takes: escapes in every kind of field, nulls, times as
    /// integers, with an exponent and with more than six decimals, keys in any order, white
    /// space, unknown fields, entries without a payload or that are no object, nested payloads
    /// whose strings hold brackets and quotes.
    static let records: [String] = [
        #"{"id":"j01","claim":"w/1.1","outcome":"succeeded","queue":"q:high","worker":"host:1:abc","type":"email","priority":"high","group":"mail","attempt":1,"enqueued_at":1796261131.912,"started_at":1796261132.412000,"finished_at":1796261132.4121006,"entry":{"id":"j01","type":"email","payload":{"to":"a@example.com","s":"a}b\"c{[","arr":[1,{"x":null},true,-2.5e3],"u":"é\u00e9\ud83d\ude00"},"enqueued_at":"2026-12-03T01:25:31.912Z"}}"#,
        #"{"id":"j02","claim":"w/1.2","outcome":"failed","queue":"q","worker":"w","error":"line1\nline2\ttab \"q\" \\ \/ é \u00e9 😀 \ud83d\ude00 \b\f\r","attempt":3,"finished_at":1796261133,"entry":{"payload":"just text"}}"#,
        #"{"id":"j03","claim":"w/1.3","outcome":"dead","queue":"q","worker":"w","type":null,"priority":null,"group":null,"attempt":null,"error":null,"enqueued_at":null,"started_at":1.7962611e9,"finished_at":1796261134.5,"entry":{"payload":null}}"#,
        #"{"entry":{"type":"x"},"finished_at":1796261135.000001,"worker":"w","queue":"q","outcome":"requeued","claim":"w/1.4","id":"j04"}"#,
        #" { "id" : "j05" , "claim" : "w/1.5" ,"outcome":"recovered", "queue":"q", "worker":"w", "finished_at" : 1796261136.25 , "entry" : "not an object" } "#,
        #"{"id":"j06","claim":"w/1.6","outcome":"malformed","queue":"q","worker":"w","finished_at":1796261137,"extra":{"a":[1,2,{"b":"}"}]},"entry":[1,2]}"#,
        #"{"id":"j07","claim":"w/1.7","outcome":"succeeded","queue":"q","worker":"w","finished_at":1796261138,"entry":{"payload":{"deep":[[[{"k":"v"}]]]}}}"#,
        #"{"id":"j08","claim":"w/1.8","outcome":"succeeded","queue":"q","worker":"w","attempt":2147483647,"finished_at":1796261139,"entry":{"payload":12345678901234567890}}"#,
        // Times PostgreSQL reads through a double: before 1970, after 2038, long fractions, exponents.
        #"{"id":"j09","claim":"w/1.9","outcome":"succeeded","queue":"q","worker":"w","enqueued_at":-1.5,"started_at":4102444799.999999,"finished_at":1796261132.412100553512573242}"#,
        #"{"id":"j10","claim":"w/1.10","outcome":"succeeded","queue":"q","worker":"w","enqueued_at":17962611324121005E-7,"started_at":1.7962611324121005e+9,"finished_at":0.0000005}"#,
        // A retry: when it became due.
        #"{"id":"j11","claim":"w/1.11","outcome":"succeeded","queue":"q","worker":"w","attempt":2,"enqueued_at":1796261131.912,"due_at":1796261140.25,"started_at":1796261140.5,"finished_at":1796261141}"#,
    ]

    @Test func theCopyStoresEveryRecordExactlyAsTheInsertDoes() async throws {
        let pool = PostgresPool(url: try TestPostgres.url, size: 1)
        let copied = TestPostgres.schema("copied"), inserted = TestPostgres.schema("inserted")
        for schema in [copied, inserted] { _ = try await PostgresMigrator(schema: schema).migrate(pool) }
        let records = Self.records.map { Data($0.utf8) }
        let stream = try #require(LedgerCopy.encode(records), "the copy takes every one of these records")
        let columns = """
            SELECT job_id, claim, type, priority, queue, worker_group, attempt, outcome, error, worker,
                   enqueued_at, started_at, finished_at, payload::text, due_at
            """
        let (viaCopy, viaInsert) = try await pool.withConnection { connection in
            let stored = try connection.copy(LedgerCopy.statement(schema: copied), data: stream)
            try connection.execute(prepared: "insert_\(inserted)", LedgerSQL.insert(schema: inserted), [LedgerSQL.array(records)])
            #expect(stored == records.count)
            return (try connection.query("\(columns) FROM \(copied).attempts ORDER BY job_id").rows,
                    try connection.query("\(columns) FROM \(inserted).attempts ORDER BY job_id").rows)
        }
        #expect(viaCopy.count == records.count)
        for (copy, insert) in zip(viaCopy, viaInsert) {
            #expect(copy == insert)
        }
        // Spot checks on what was read, not only that both agree.
        let first = try #require(viaCopy.first)
        #expect(first[13]?.contains(#""s": "a}b\"c{["#) == true && first[13]?.contains("😀") == true)
        #expect(viaCopy[1][8] == "line1\nline2\ttab \"q\" \\ / é é 😀 😀 \u{8}\u{c}\r")
        #expect(viaCopy[2][2] == nil && viaCopy[2][6] == nil && viaCopy[2][13] == "null")
        #expect(viaCopy[3][13] == nil && viaCopy[4][13] == nil && viaCopy[5][13] == nil)
        #expect(viaCopy[6][13] == #"{"deep": [[[{"k": "v"}]]]}"#)
        #expect(viaCopy[10][14] != nil && viaCopy.prefix(10).allSatisfy { $0[14] == nil })
        let times = try await pool.withConnection { connection in
            try connection.query("SELECT extract(epoch FROM finished_at)::text, extract(epoch FROM started_at)::text FROM \(copied).attempts WHERE job_id IN ('j01', 'j03') ORDER BY job_id").rows
        }
        #expect(times == [["1796261132.412100", "1796261132.412000"], ["1796261134.500000", "1796261100.000000"]])
        _ = try? await pool.withConnection { connection in
            for schema in [copied, inserted] { try connection.query("DROP SCHEMA \(schema) CASCADE") }
        }
    }

    /// The shipper reads about `recordsPerBatch` records at once: fewer entries when a busy
    /// worker's entries carry dozens of records each, never more than its entry limit, at least one.
    @Test func theShipperReadsAboutABatchOfRecords() {
        let limit = 200
        #expect(LedgerShipper.recordsPerBatch == 4000)
        #expect(LedgerShipper.entriesToRead(afterReading: 12_000, in: 200, limit: limit) == 66)   // 60 per entry
        #expect(LedgerShipper.entriesToRead(afterReading: 1000, in: 200, limit: limit) == 200)    // 5 per entry
        #expect(LedgerShipper.entriesToRead(afterReading: 9000, in: 1, limit: limit) == 1)        // one huge entry
        #expect(LedgerShipper.entriesToRead(afterReading: 0, in: 0, limit: limit) == 200)         // nothing read yet
    }

    @Test func recordsTheCopyDoesNotReadAreLeftToTheInsert() {
        let good = #"{"id":"j","claim":"c","outcome":"succeeded","queue":"q","worker":"w","finished_at":1}"#
        #expect(LedgerCopy.encode([Data(good.utf8)]) != nil)
        let refused = [
            #"{"id":"j","claim":"c","outcome":"succeeded","queue":"q","worker":"w","enqueued_at":"2026-12-03T01:25:31.912Z"}"#,
            #"{"id":"j","claim":"c","outcome":"weird","queue":"q","worker":"w"}"#,
            #"{"id":"j","claim":"c","outcome":"succeeded","queue":"q"}"#,
            #"{"id":null,"claim":"c","outcome":"succeeded","queue":"q","worker":"w"}"#,
            #"{"id":"j\u0000","claim":"c","outcome":"succeeded","queue":"q","worker":"w"}"#,
            #"{"id":"j\ud800","claim":"c","outcome":"succeeded","queue":"q","worker":"w"}"#,
            #"{"id":"j","claim":"c","outcome":"succeeded","queue":"q","worker":"w","attempt":2.5}"#,
            #"{"id":"j","claim":"c","outcome":"succeeded","queue":"q","worker":"w","attempt":"3"}"#,
            #"{"id":"j","claim":"c","outcome":"succeeded","queue":"q","worker":"w","attempt":4294967296}"#,
            #"{"id":5,"claim":"c","outcome":"succeeded","queue":"q","worker":"w"}"#,
            #"{"id":"j","claim":"c","outcome":"succeeded","queue":"q","worker":"w"} trailing"#,
            #"{"id":"j","claim":"c","outcome":"succeeded","queue":"q","worker":"w","entry":{"payload":}}"#,
            // Named twice: which one the INSERT takes is its business.
            #"{"id":"j","claim":"c","outcome":"succeeded","queue":"q","worker":"w","entry":{"payload":1,"payload":2}}"#,
            // A name with an escape may spell `payload`: the INSERT decodes it.
            #"{"id":"j","claim":"c","outcome":"succeeded","queue":"q","worker":"w","entry":{"pay\u006coad":1}}"#,
            #"{"id":"j","claim":"c","outcome":"succeeded","queue":"q","worker":"w","queue":"r"}"#,
            "{\"id\":\"j\nk\",\"claim\":\"c\",\"outcome\":\"succeeded\",\"queue\":\"q\",\"worker\":\"w\"}",
            "not json at all",
            "",
        ]
        for record in refused {
            #expect(LedgerCopy.encode([Data(good.utf8), Data(record.utf8)]) == nil, "\(record)")
        }
    }

    @Test func aRecordWithoutAnEndTakesTheTimeItIsStored() async throws {
        let pool = PostgresPool(url: try TestPostgres.url, size: 1)
        let schema = TestPostgres.schema()
        _ = try await PostgresMigrator(schema: schema).migrate(pool)
        let record = #"{"id":"j","claim":"c","outcome":"succeeded","queue":"q","worker":"w"}"#
        let now = Date(timeIntervalSince1970: 1_796_261_140.25)
        let stream = try #require(LedgerCopy.encode([Data(record.utf8)], now: now))
        let finished = try await pool.withConnection { connection in
            try connection.copy(LedgerCopy.statement(schema: schema), data: stream)
            return try connection.query("SELECT extract(epoch FROM finished_at)::text AS t FROM \(schema).attempts").value("t")
        }
        #expect(finished == "1796261140.250000")
        _ = try? await pool.withConnection { try $0.query("DROP SCHEMA \(schema) CASCADE") }
    }

    /// A record delivered again after it was stored (its shipper died between the commit and the
    /// acknowledgement) makes the copy fail on the key: the batch then goes through the INSERT,
    /// which skips it, and the connection goes on working.
    @Test func aBatchHoldingAStoredRecordIsStoredOnceThroughTheInsert() async throws {
        let setup = try LedgerTests.Setup()
        let pool = try await setup.migrated()
        let configuration = try setup.configuration("[types.ok]\nhandler = \"noop\"")
        let driver = try RedisQueueDriver(configuration: configuration, environment: [:])
        let key = "\(setup.prefix)-jr:events"
        func record(_ n: Int) -> String {
            #"{"id":"j\#(n)","claim":"w/1.\#(n)","outcome":"succeeded","queue":"q","worker":"w","finished_at":1796261140,"entry":{"payload":{"n":\#(n)}}}"#
        }
        func ship(_ numbers: [Int]) async throws {
            let shipper = try await Self.ship(numbers.map { Array(record($0).utf8) }, to: key, driver: driver, pool: pool,
                                              configuration: configuration)
            #expect(shipper.state.postgresReachable && shipper.state.stored == numbers.count)
        }
        try await ship([1, 2])
        try await ship([2, 3, 1, 4])
        let rows = try await setup.rows(pool, "SELECT job_id, payload::text FROM {schema}.attempts ORDER BY job_id")
        #expect(rows == [["j1", #"{"n": 1}"#], ["j2", #"{"n": 2}"#], ["j3", #"{"n": 3}"#], ["j4", #"{"n": 4}"#]])
        #expect(try await RedisAttemptLog(driver: driver).backlog() == AttemptLogBacklog(waiting: 0, dropped: 0))
        await setup.drop(pool)
        await LedgerTests().cleanUp(driver, prefix: setup.prefix)
    }

    /// What a worker's records keep of their entries reaches PostgreSQL as the payload the handler
    /// saw: the payload's text as written (a wide number whole), none for an entry without one, and
    /// for an entry whose member names hold escapes (sent whole, left to the INSERT) the decoded one.
    @Test func aWorkersRecordsStoreThePayloadTheHandlerSaw() async throws {
        let setup = try LedgerTests.Setup()
        let pool = try await setup.migrated()
        let configuration = try setup.configuration("[types.ok]\nhandler = \"noop\"")
        let driver = try RedisQueueDriver(configuration: configuration, environment: [:])
        let key = "\(setup.prefix)-jr:events"
        let entries = [
            #"{"id":"j1","type":"ok","payload":{"s":"}{\"payload\":0","n":12345678901234567890},"attempt":1}"#,
            #"{"id":"j2","type":"ok"}"#,
            #"{"id":"j3","type":"ok","pay\u006coad":{"k":"é"}}"#,
        ]
        let records = entries.enumerated().map { n, entry in
            AttemptRecord(jobID: JobID(rawValue: "j\(n + 1)"), claim: "w/1.\(n + 1)", type: "ok", priority: nil, queue: "q",
                          group: "g", attempt: 1, outcome: .succeeded, error: nil, worker: "w", enqueuedAt: nil,
                          startedAt: nil, finishedAt: Date(timeIntervalSince1970: 1_796_261_140), entry: Data(entry.utf8)).jsonBytes
        }
        _ = try await Self.ship(records, to: key, driver: driver, pool: pool, configuration: configuration)
        let rows = try await setup.rows(pool, "SELECT job_id, coalesce(payload::text, '-') FROM {schema}.attempts ORDER BY job_id")
        #expect(rows == [["j1", #"{"n": 12345678901234567890, "s": "}{\"payload\":0"}"#], ["j2", "-"], ["j3", #"{"k": "é"}"#]])
        await setup.drop(pool)
        await LedgerTests().cleanUp(driver, prefix: setup.prefix)
    }

    /// Appends `records` to the stream `key` (an entry each, counted as the scripts count them)
    /// and runs a shipper until it has stored them all; returns it, finished.
    static func ship(_ records: [[UInt8]], to key: String, driver: RedisQueueDriver, pool: PostgresPool,
                     configuration: RouterConfiguration) async throws -> LedgerShipper {
        for record in records {
            _ = try await driver.command(bytes: ["XADD", key, "*", "n", "1", "r"].map { Array($0.utf8) } + [record])
        }
        _ = try await driver.command(["INCRBY", key + ":records", String(records.count)])
        let shipper = LedgerShipper(log: RedisAttemptLog(driver: driver), pool: pool, settings: try #require(configuration.postgres),
                                    consumer: "c1", logger: LedgerTests.quietLogger)
        let shipping = Task { await shipper.run() }
        #expect(try await LedgerTests.eventually { try await RedisAttemptLog(driver: driver).backlog().waiting == 0 })
        shipper.finish()
        await shipping.value
        return shipper
    }
}
