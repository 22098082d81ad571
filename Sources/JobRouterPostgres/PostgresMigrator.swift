import JobRouter

/// JobRouter's schema in PostgreSQL, versioned: `jobrouter migrate` applies what is pending, each
/// version in its own transaction, under an advisory lock so two processes migrating at once
/// apply each version exactly once. Running it again changes nothing.
public struct PostgresMigrator: Sendable {
    /// One step of the schema.
    public struct Migration: Sendable, Equatable {
        /// Its number; applied in order.
        public var version: Int
        /// What it does, for `migrate --status`.
        public var name: String
        /// The statements (with `{schema}` standing for the configured schema name).
        public var statements: [String]
    }

    /// Where a database stands.
    public struct Status: Sendable, Equatable {
        /// Versions applied, with when.
        public var applied: [(version: Int, name: String, appliedAt: String)]
        /// Versions this JobRouter knows and the database does not have yet.
        public var pending: [Migration]

        public static func == (lhs: Status, rhs: Status) -> Bool {
            lhs.applied.map(\.version) == rhs.applied.map(\.version) && lhs.pending == rhs.pending
        }
    }

    /// The schema name (a plain identifier, checked by the configuration).
    public var schema: String
    /// How long one version waits for a lock on a table (an `ALTER TABLE` on the ledger while a
    /// long query reads it): past it the version is rolled back and `migrate` fails, saying so,
    /// rather than queueing every worker's writes behind the waiting lock.
    public var lockTimeout: Duration

    /// Every version this JobRouter knows, oldest first.
    public static let migrations: [Migration] = [
        Migration(version: 1, name: "schema and migration bookkeeping", statements: [
            "CREATE SCHEMA IF NOT EXISTS {schema}",
        ]),
        Migration(version: 2, name: "the ledger: one row per attempt", statements: [
            """
            CREATE TABLE {schema}.attempts (
              job_id text NOT NULL,
              claim text NOT NULL,
              type text,
              priority text,
              queue text NOT NULL,
              worker_group text,
              attempt integer,
              outcome text NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'dead', 'requeued', 'recovered', 'malformed')),
              error text,
              worker text NOT NULL,
              enqueued_at timestamptz,
              started_at timestamptz,
              finished_at timestamptz NOT NULL,
              payload jsonb,
              PRIMARY KEY (job_id, claim))
            """,
            "CREATE INDEX attempts_finished_at ON {schema}.attempts (finished_at)",
            // Times in records are seconds since the epoch, or (from entries of other producers)
            // ISO 8601 text; text that is not a time reads as NULL rather than failing a batch.
            """
            CREATE FUNCTION {schema}.record_time(value jsonb) RETURNS timestamptz LANGUAGE plpgsql IMMUTABLE AS $$
            BEGIN
              IF jsonb_typeof(value) = 'number' THEN RETURN to_timestamp(value::text::double precision); END IF;
              IF jsonb_typeof(value) = 'string' THEN
                BEGIN
                  RETURN (value #>> '{}')::timestamptz;
                EXCEPTION WHEN others THEN
                  RETURN NULL;
                END;
              END IF;
              RETURN NULL;
            END $$
            """,
        ]),
        Migration(version: 3, name: "the outbox: jobs enqueued inside the app's transactions", statements: [
            """
            CREATE TABLE {schema}.outbox (
              seq bigserial PRIMARY KEY,
              id text NOT NULL,
              type text NOT NULL,
              priority text,
              payload jsonb NOT NULL,
              run_at timestamptz,
              created_at timestamptz NOT NULL DEFAULT now(),
              failed_at timestamptz,
              error text)
            """,
            "CREATE INDEX outbox_failed ON {schema}.outbox (failed_at) WHERE failed_at IS NOT NULL",
            // JobRouter's id layout (ULID): 10 characters of milliseconds since the epoch, then 16
            // random ones, Crockford base32; ids sort by their millisecond (within one, randomly).
            """
            CREATE FUNCTION {schema}.new_job_id() RETURNS text LANGUAGE plpgsql VOLATILE AS $$
            DECLARE
              alphabet constant text := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
              ms bigint := floor(extract(epoch FROM clock_timestamp()) * 1000);
              id text := '';
            BEGIN
              FOR i IN REVERSE 9..0 LOOP
                id := id || substr(alphabet, ((ms >> (5 * i)) & 31)::int + 1, 1);
              END LOOP;
              FOR i IN 1..16 LOOP
                id := id || substr(alphabet, floor(random() * 32)::int + 1, 1);
              END LOOP;
              RETURN id;
            END $$
            """,
            // Callable by any client inside its own transaction; the row (and so the job) exists
            // only if that transaction commits. Routing is checked by the relay, from queues.toml.
            """
            CREATE FUNCTION {schema}.enqueue(type text, payload jsonb, priority text DEFAULT NULL,
                                             run_at timestamptz DEFAULT NULL, id text DEFAULT NULL)
            RETURNS text LANGUAGE plpgsql VOLATILE AS $$
            DECLARE
              job_id text := coalesce($5, {schema}.new_job_id());
            BEGIN
              IF $1 IS NULL OR $1 = '' THEN
                RAISE EXCEPTION '{schema}.enqueue: type must be a non-empty string';
              END IF;
              IF job_id = '' OR job_id ~ '[[:cntrl:]]' THEN
                RAISE EXCEPTION '{schema}.enqueue: id must be non-empty text without control characters';
              END IF;
              INSERT INTO {schema}.outbox (id, type, priority, payload, run_at)
                VALUES (job_id, $1, $3, coalesce($2, 'null'::jsonb), $4);
              PERFORM pg_notify('{schema}_outbox', '');
              RETURN job_id;
            END $$
            """,
        ]),
        // A nullable column without a default: no rewrite of the table, whatever its size.
        Migration(version: 4, name: "the ledger: when each attempt became due (its wait counts from then)", statements: [
            "ALTER TABLE {schema}.attempts ADD COLUMN due_at timestamptz",
        ]),
    ]

    /// The newest version: what `work` needs with the ledger on.
    public static var latestVersion: Int { migrations.map(\.version).max() ?? 0 }

    /// A migrator for `schema`.
    public init(schema: String = "jobrouter", lockTimeout: Duration = .seconds(10)) {
        self.schema = schema
        self.lockTimeout = lockTimeout
    }

    /// The advisory lock every migrating process takes (a fixed key, per schema).
    private var lockKey: String { "jobrouter-migrate:\(schema)" }

    /// Applies every pending version; returns the ones it applied (none when up to date).
    public func migrate(_ pool: PostgresPool) async throws -> [Migration] {
        let schema = self.schema
        let lockKey = self.lockKey
        let lockTimeout = "\(max(lockTimeout.inMilliseconds, 1))ms"
        let waited = DurationParser.format(self.lockTimeout)
        let server = pool.server
        return try await pool.withConnection { connection in
            try connection.query("SELECT pg_advisory_lock(hashtext($1))", [lockKey])
            defer { _ = try? connection.query("SELECT pg_advisory_unlock(hashtext($1))", [lockKey]) }
            try connection.query("CREATE SCHEMA IF NOT EXISTS \(schema)")
            try connection.query("""
                CREATE TABLE IF NOT EXISTS \(schema).schema_migrations (
                  version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())
                """)
            let done = Set(try connection.query("SELECT version FROM \(schema).schema_migrations").rows.compactMap { $0[0].flatMap(Int.init) })
            var applied: [Migration] = []
            for migration in Self.migrations where !done.contains(migration.version) {
                do {
                    try connection.transaction { connection in
                        try connection.query("SET LOCAL lock_timeout = '\(lockTimeout)'")
                        for statement in migration.statements {
                            try connection.query(statement.replacingOccurrences(of: "{schema}", with: schema))
                        }
                        try connection.query("INSERT INTO \(schema).schema_migrations (version, name) VALUES ($1, $2)",
                                             [String(migration.version), migration.name])
                    }
                } catch let error as PostgresError where error.sqlState == "55P03" {
                    throw PostgresError(code: .query, sqlState: "55P03", message: """
                        version \(migration.version) (\(migration.name)) waited \(waited) for a lock on a table another \
                        session holds (a long query?) and was rolled back; run `jobrouter migrate` again
                        """, server: server)
                }
                applied.append(migration)
            }
            return applied
        }
    }

    /// Which versions are applied and which are pending (all pending on a database never migrated).
    public func status(_ pool: PostgresPool) async throws -> Status {
        let schema = self.schema
        return try await pool.withConnection { connection in
            let exists = try connection.query("SELECT to_regclass($1) IS NOT NULL AS present", ["\(schema).schema_migrations"])
            guard exists.value("present") == "t" else { return Status(applied: [], pending: Self.migrations) }
            let rows = try connection.query("""
                SELECT version, name, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS at
                FROM \(schema).schema_migrations ORDER BY version
                """).rows
            let applied = rows.compactMap { row -> (Int, String, String)? in
                guard let version = row[0].flatMap(Int.init) else { return nil }
                return (version, row[1] ?? "", row[2] ?? "")
            }
            let versions = Set(applied.map(\.0))
            return Status(applied: applied.map { (version: $0.0, name: $0.1, appliedAt: $0.2) },
                          pending: Self.migrations.filter { !versions.contains($0.version) })
        }
    }
}
