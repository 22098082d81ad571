import Foundation
import JobRouter
import JobRouterPostgres
import Testing

/// The PostgreSQL started by scripts/test.sh: `JOBROUTER_TEST_POSTGRES_URL`. A missing server is a
/// failure, never a skip.
enum TestPostgres {
    static var url: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["JOBROUTER_TEST_POSTGRES_URL"], !url.isEmpty else {
                throw SetupError(description: "JOBROUTER_TEST_POSTGRES_URL is not set: run the suite with scripts/test.sh")
            }
            return url
        }
    }

    struct SetupError: Error, CustomStringConvertible { var description: String }

    /// A schema name of its own for one test.
    static func schema(_ name: String = #function) -> String {
        "t_" + name.prefix(while: { $0 != "(" }).lowercased().prefix(30) + "_" + UUID().uuidString.prefix(6).lowercased()
    }
}

@Suite(.timeLimit(.minutes(2)))
struct PostgresTests {
    @Test func parametersRowsAndNull() async throws {
        let pool = PostgresPool(url: try TestPostgres.url, size: 1)
        let rows = try await pool.withConnection { connection in
            try connection.query("SELECT $1::int + 1 AS n, $2::text AS t, NULL::text AS empty", ["41", "it's"])
        }
        #expect(rows.columns == ["n", "t", "empty"])
        #expect(rows.rows == [["42", "it's", nil]])
    }

    @Test func errorsCarrySQLStateAndTheServersMessage() async throws {
        let pool = PostgresPool(url: try TestPostgres.url, size: 1)
        await #expect {
            try await pool.withConnection { try $0.query("SELECT 1 / 0") }
        } throws: { error in
            guard let error = error as? PostgresError else { return false }
            return error.sqlState == "22012" && error.message == "division by zero" && error.code == .query && !error.isTransient
        }
        // The connection is still good after a statement failed.
        #expect(try await pool.withConnection { try $0.query("SELECT 1 AS one") }.value("one") == "1")
    }

    @Test func aBadPasswordOrDatabaseIsOneLineWithoutThePassword() async throws {
        let url = try TestPostgres.url.replacingOccurrences(of: "/jobrouter", with: "/no_such_db")
        let pool = PostgresPool(url: url.replacingOccurrences(of: "postgres@", with: "postgres:hunter2@"), size: 1)
        await #expect {
            try await pool.withConnection { try $0.query("SELECT 1") }
        } throws: { error in
            let text = "\(error)"
            return text.contains("no_such_db") && text.contains("does not exist") && !text.contains("hunter2") && !text.contains("\n")
        }
    }

    @Test func blockingCallsRunOnThePoolsOwnThreadsAtOnce() async throws {
        let name = "jobrouter test-pool " + UUID().uuidString.prefix(8)
        let pool = PostgresPool(url: try TestPostgres.url, size: 4, applicationName: name)
        let schema = TestPostgres.schema()
        // Each call counts itself in (a sequence: its increments are seen at once by every session) and
        // returns true once all four are in, false after 20 s. None leaves before the last arrives, so
        // "true" four times means four calls blocked at the same moment. Run one at a time, or two at a
        // time on Swift's pool (2 threads here), no call ever sees four: a fact, not a duration.
        _ = try await pool.withConnection { connection in
            try connection.query("CREATE SCHEMA \(schema)")
            try connection.query("CREATE SEQUENCE \(schema).arrived")
            return try connection.query("""
                CREATE FUNCTION \(schema).meet(want int) RETURNS boolean LANGUAGE plpgsql AS $$
                DECLARE deadline timestamptz := clock_timestamp() + interval '20 seconds';
                BEGIN
                  PERFORM nextval('\(schema).arrived');
                  LOOP
                    IF (SELECT last_value FROM \(schema).arrived) >= want THEN RETURN true; END IF;
                    IF clock_timestamp() > deadline THEN RETURN false; END IF;
                    PERFORM pg_sleep(0.01);
                  END LOOP;
                END $$
                """)
        }
        let met = try await withThrowingTaskGroup(of: String?.self) { group in
            for _ in 0..<4 {
                group.addTask { try await pool.withConnection { try $0.query("SELECT \(schema).meet(4) AS met") }.value("met") }
            }
            var met: [String?] = []
            for try await value in group { met.append(value) }
            return met
        }
        #expect(met == ["t", "t", "t", "t"])
        let named = try await pool.withConnection { connection in
            try connection.query("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1", [name])
        }
        #expect(named.value("n") == "4")
        _ = try await pool.withConnection { try $0.query("DROP SCHEMA \(schema) CASCADE") }
    }

    @Test func aBrokenConnectionIsReplaced() async throws {
        let pool = PostgresPool(url: try TestPostgres.url, size: 1, applicationName: "jobrouter test-replace")
        let first = try await pool.withConnection { try $0.query("SELECT pg_backend_pid() AS pid") }.value("pid")
        // Another session kills ours, as a server restart would.
        let admin = PostgresPool(url: try TestPostgres.url, size: 1)
        _ = try await admin.withConnection { try $0.query("SELECT pg_terminate_backend($1::int)", [first]) }
        await #expect(throws: PostgresError.self) { try await pool.withConnection { try $0.query("SELECT 1") } }
        let second = try await pool.withConnection { try $0.query("SELECT pg_backend_pid() AS pid") }.value("pid")
        #expect(second != nil && second != first)
    }

    @Test func transactionsCommitOrRollBack() async throws {
        let schema = TestPostgres.schema()
        let pool = PostgresPool(url: try TestPostgres.url, size: 1)
        _ = try await pool.withConnection { try $0.query("CREATE SCHEMA \(schema)"); return try $0.query("CREATE TABLE \(schema).t (n int)") }
        _ = try await pool.withTransaction { try $0.query("INSERT INTO \(schema).t VALUES (1)") }
        struct Abort: Error {}
        await #expect(throws: Abort.self) {
            try await pool.withTransaction { connection in
                try connection.query("INSERT INTO \(schema).t VALUES (2)")
                throw Abort()
            }
        }
        let count = try await pool.withConnection { try $0.query("SELECT count(*) AS n FROM \(schema).t") }.value("n")
        #expect(count == "1")
        _ = try await pool.withConnection { try $0.query("DROP SCHEMA \(schema) CASCADE") }
    }

    @Test func migrateIsIdempotentAndSafeConcurrently() async throws {
        let schema = TestPostgres.schema()
        let pool = PostgresPool(url: try TestPostgres.url, size: 4)
        let migrator = PostgresMigrator(schema: schema)
        #expect(try await migrator.status(pool).pending.map(\.version) == PostgresMigrator.migrations.map(\.version))
        let applied = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<4 { group.addTask { try await migrator.migrate(pool).count } }
            return try await group.reduce(0, +)
        }
        #expect(applied == PostgresMigrator.migrations.count, "each version applied exactly once")
        #expect(try await migrator.migrate(pool).isEmpty)
        let status = try await migrator.status(pool)
        #expect(status.pending.isEmpty && status.applied.map(\.version) == PostgresMigrator.migrations.map(\.version))
        _ = try await pool.withConnection { try $0.query("DROP SCHEMA \(schema) CASCADE") }
    }

    /// A version that cannot get its table's lock (a long query holds it) gives up after the lock
    /// timeout, rolled back and saying what to do, rather than queueing every writer behind it.
    @Test func aMigrationWaitingForALockGivesUpAndSaysSo() async throws {
        let schema = TestPostgres.schema()
        let pool = PostgresPool(url: try TestPostgres.url, size: 1)
        let holder = PostgresPool(url: try TestPostgres.url, size: 1)
        let migrator = PostgresMigrator(schema: schema, lockTimeout: .milliseconds(300))
        _ = try await migrator.migrate(pool)
        // Back to version 3, then a reader holds the ledger's table.
        _ = try await pool.withConnection { connection in
            try connection.query("ALTER TABLE \(schema).attempts DROP COLUMN due_at")
            try connection.query("DELETE FROM \(schema).schema_migrations WHERE version = 4")
        }
        _ = try await holder.withConnection { connection in
            try connection.query("BEGIN")
            try connection.query("LOCK TABLE \(schema).attempts IN ACCESS SHARE MODE")
        }
        // Released after 3 s whatever happens, so a migration that waits does not wait forever.
        let release = Task {
            try? await Task.sleep(for: .seconds(3))
            _ = try? await holder.withConnection { try $0.query("ROLLBACK") }
        }
        let started = ContinuousClock.now
        do {
            _ = try await migrator.migrate(pool)
            Issue.record("the migration went through while the table was locked")
        } catch let error as PostgresError {
            #expect(error.sqlState == "55P03" && error.message.contains("version 4") && error.message.contains("run `jobrouter migrate` again"), "\(error)")
            #expect(ContinuousClock.now - started < .seconds(2))
        }
        #expect(try await migrator.status(pool).pending.map(\.version) == [4])
        await release.value
        #expect(try await migrator.migrate(pool).map(\.version) == [4])
        _ = try await pool.withConnection { try $0.query("DROP SCHEMA \(schema) CASCADE") }
    }

    @Test func postgresSettingsParseAndRefuseAPasswordInTheFile() throws {
        let base = "[types.a]\nhandler = \"noop\"\n[groups.g]\nqueues = [\"default\"]\n"
        let configuration = try RouterConfiguration.parse(toml: base + "[postgres]\nurl = \"postgres://jr@127.0.0.1:5432/app\"\npool = 3\nretain = \"7d\"\n")
        #expect(configuration.postgres?.pool == 3 && configuration.postgres?.retain == .seconds(7 * 86_400))
        #expect {
            try RouterConfiguration.parse(toml: base + "[postgres]\nurl = \"postgres://jr:secret@127.0.0.1/app\"\n", file: "q.toml")
        } throws: { "\($0)" == "q.toml:6: postgres.url: holds a password; put it in JOBROUTER_POSTGRES_URL, PGPASSWORD or ~/.pgpass instead" }
        #expect(PostgresSettings(url: "x").connectionURL(environment: ["JOBROUTER_POSTGRES_URL": "postgres://a:b@h/d"]) == "postgres://a:b@h/d")
    }
}
