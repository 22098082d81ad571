/// Everything `queues.toml` declares: job types, how each (type, priority) maps to a queue,
/// and the worker groups that read those queues.
///
/// Build one with ``RouterConfiguration/load(path:)`` or ``RouterConfiguration/parse(toml:file:)``;
/// both validate before returning, so a value you hold is always usable.
public struct RouterConfiguration: Sendable {
    /// The queue for types that declare no `priorities` (TOML `default_queue`, default `"default"`).
    public var defaultQueue: String
    /// Where Redis is and how JobRouter names its own keys there (TOML `[redis]`).
    public var redis: RedisSettings
    /// Job types by name (TOML `[types.NAME]`).
    public var types: [String: JobTypeConfiguration]
    /// Worker groups by name (TOML `[groups.NAME]`).
    public var groups: [String: WorkerGroupConfiguration]
    /// Where mail goes (TOML `[smtp]`); required when a type uses `handler = "smtp"`.
    public var smtp: SMTPSettings?
    /// Where the durable job history lives (TOML `[postgres]`); `nil`: no PostgreSQL.
    public var postgres: PostgresSettings?
    /// Where `work` serves /metrics, /healthz and /readyz (TOML `[http] listen`); `nil`: off
    /// unless `work --http` is given.
    public var httpListen: HTTPListenAddress?
    /// Where `jobrouter web` serves the dashboard (TOML `[web] listen`); `nil`: `127.0.0.1:8080`
    /// unless `web --listen` is given.
    public var webListen: HTTPListenAddress?

    /// What the scripts need to record attempts, when the ledger is on (`[postgres] ledger = true`).
    public var ledgerTerms: LedgerTerms? {
        guard let postgres, postgres.ledger else { return nil }
        return LedgerTerms(storePayload: postgres.storePayload)
    }
    /// Cron schedules by name (TOML `[schedules.NAME]`).
    public var schedules: [String: CronSchedule] = [:]
    /// Mail templates by name (TOML `[templates.NAME]`).
    public var templates: [String: MailTemplate] = [:]
    /// Most records the dead-letter store keeps; the oldest are trimmed and counted (TOML `max_dead`, default 10000).
    public var maxDead: Int
    /// The largest job entry, in bytes (TOML `max_payload`, default 1 MiB): enqueue refuses bigger
    /// jobs, and a bigger entry pushed by another client is dead-lettered by the claim, unread.
    public var maxPayload: Int = RouterConfiguration.defaultMaxPayload
    /// 1 MiB.
    public static let defaultMaxPayload = 1024 * 1024
    /// How often each worker process looks at the schedule for delayed jobs and retries that fell
    /// due (TOML `schedule_poll`, default 250 ms); sooner when the earliest job it saw falls due
    /// sooner. A process moves the retries it scheduled itself (and jobs deferred by a rate limit)
    /// when they fall due, whatever this is; only a job due sooner than the next look, scheduled by
    /// another process, waits for that look. Every process looks, so N processes make about
    /// N / `schedule_poll` cheap calls per second to Redis.
    public var schedulePoll: Duration = .milliseconds(250)
    /// The file this configuration was read from, for messages.
    public var file: String?

    /// Makes a configuration; call ``validate()`` before using one built by hand.
    public init(
        defaultQueue: String = "default",
        redis: RedisSettings = RedisSettings(),
        types: [String: JobTypeConfiguration] = [:],
        groups: [String: WorkerGroupConfiguration] = [:],
        maxDead: Int = 10_000,
        file: String? = nil
    ) {
        self.maxDead = maxDead
        self.defaultQueue = defaultQueue
        self.redis = redis
        self.types = types
        self.groups = groups
        self.file = file
    }

    /// Every queue a job can be routed to: the values of every `priorities` table, and `default_queue`
    /// (which also takes entries pushed by other Redis clients).
    public var declaredQueues: Set<String> {
        var queues: Set<String> = [defaultQueue]
        for type in types.values {
            for queue in type.priorities.values { queues.insert(queue) }
        }
        return queues
    }

    /// Queues that some type routes to but no group reads: jobs sent there wait forever.
    public var unreadQueues: [String] {
        let read = Set(groups.values.flatMap(\.queues))
        var routed = Set(types.values.flatMap { $0.priorities.values })
        if types.values.contains(where: { $0.priorities.isEmpty }) { routed.insert(defaultQueue) }
        return routed.subtracting(read).sorted()
    }

    /// Whether jobs of an `smtp` type can arrive in one of `group`'s queues (such a group is paced
    /// by `[smtp] rate_limit`).
    public func receivesMail(_ group: WorkerGroupConfiguration) -> Bool {
        group.queues.contains { queue in types(routingTo: queue).contains { types[$0]?.handler == .smtp } }
    }

    /// The types whose jobs can arrive in `queue`.
    public func types(routingTo queue: String) -> [String] {
        types.values.filter { type in
            type.priorities.isEmpty ? queue == defaultQueue : type.priorities.values.contains(queue)
        }.map(\.name).sorted()
    }
}

/// The `[redis]` table.
public struct RedisSettings: Sendable, Equatable {
    /// `redis://[[user]:password@]host[:port][/db]`; `JOBROUTER_REDIS_URL` overrides it. Default `redis://127.0.0.1:6379/0`.
    public var url: String
    /// Prefix of the keys JobRouter keeps for itself (dead letters, later leases and schedules). Default `"jobrouter"`.
    /// Queue names may not start with it.
    public var namespace: String

    /// Sentinels (`host:port`) that find the primary (TOML `sentinels`); empty: ``url`` is the server.
    public var sentinels: [String] = []
    /// The name the sentinels monitor the primary by (TOML `master`).
    public var master: String?
    /// The environment variable holding the sentinels' own password (TOML `sentinel_password_env`).
    public var sentinelPasswordEnvironment: String?
    /// Seed nodes (`host:port`) of a Redis Cluster (TOML `cluster`); empty: not a cluster. In a
    /// cluster every queue name carries a hash tag (`{mail}emails:high`), see ``ClusterLayout``.
    public var cluster: [String] = []
    /// The database with sentinels (TOML `db`, default 0).
    public var database = 0
    /// Replicas that must confirm each enqueue (`WAIT`) before it counts as done (TOML
    /// `wait_replicas`, default 0: none).
    public var waitReplicas = 0
    /// How long an enqueue waits for them (TOML `wait_timeout`, default `"100ms"`).
    public var waitTimeout: Duration = .milliseconds(100)

    /// Makes the settings; the defaults suit a local Redis.
    public init(url: String = "redis://127.0.0.1:6379/0", namespace: String = "jobrouter") {
        self.url = url
        self.namespace = namespace
    }
}

/// What runs a job of a given type: the `handler` value of a `[types.NAME]` table, served by a
/// ``HandlerProvider``. Not a closed set: a module can bring a kind of its own.
public struct HandlerKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public var rawValue: String

    /// A kind named `rawValue`.
    public init(rawValue: String) { self.rawValue = rawValue }
    /// A kind named `value`.
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }

    /// Runs `command` without a shell, with the job's JSON on stdin.
    public static let exec: HandlerKind = "exec"
    /// Succeeds at once: for load tests and demos.
    public static let noop: HandlerKind = "noop"
    /// Sends mail over SMTP with the `[smtp]` settings (the provider is in `JobRouterSMTP`).
    public static let smtp: HandlerKind = "smtp"
    /// A handler registered from Swift with ``HandlerRegistry/register(type:_:)``.
    public static let swift: HandlerKind = "swift"

    /// The kinds JobRouter's own modules provide, with where their provider is. A configuration
    /// may name these even in a program that does not link them (an app that only enqueues reads
    /// the same queues.toml as the workers); any other kind needs its provider when the file is read.
    public static let firstPartyProviders: [HandlerKind: String] = [
        .exec: "JobRouter", .noop: "JobRouter", .swift: "JobRouter", .smtp: "JobRouterSMTP's SMTPHandlerProvider",
        "sql": "JobRouterPostgres's SQLHandlerProvider",
    ]
}

/// A `[types.NAME]` table.
public struct JobTypeConfiguration: Sendable, Equatable {
    /// The type's name, the key of its table.
    public var name: String
    /// What runs jobs of this type (TOML `handler`, required).
    public var handler: HandlerKind
    /// The handler kind's own keys (those its ``HandlerProvider/optionKeys`` name), as read.
    public var options: [String: JSONValue] = [:]
    /// The program and its arguments for `exec` (TOML `command`, required for `exec` only).
    public var command: [String] {
        get { options["command"]?.stringsValue ?? [] }
        set { options["command"] = newValue.isEmpty ? nil : .array(newValue.map(JSONValue.string)) }
    }
    /// Environment variables passed through to `exec` children besides the safe defaults (TOML
    /// `env`). JobRouter's own secrets can never be listed.
    public var environment: [String] {
        get { options["env"]?.stringsValue ?? [] }
        set { options["env"] = newValue.isEmpty ? nil : .array(newValue.map(JSONValue.string)) }
    }
    /// Priority name → queue (TOML `priorities`). Empty: every job of this type goes to `default_queue`.
    public var priorities: [String: String]
    /// The priority used when a job names none (TOML `default_priority`).
    public var defaultPriority: String?
    /// How long one run may take before it is stopped and fails (TOML `timeout`, default `"5m"`).
    public var timeout: Duration
    /// How many runs a job gets before it is dead-lettered (TOML `max_attempts`, default 5).
    public var maxAttempts: Int
    /// The wait before each retry (TOML `backoff = { base = "1s", max = "1h" }`).
    public var backoff: RetryBackoff
    /// At most one job per key at a time (TOML `unique = { key = [...], for = "10m", until = "done" }`).
    public var unique: UniqueTerms?
    /// A shared rate for its jobs, per type or per payload key (TOML `rate_limit`, `burst`).
    public var rateLimit: JobRateLimit?

    /// Makes a type.
    public init(
        name: String,
        handler: HandlerKind,
        command: [String] = [],
        priorities: [String: String] = [:],
        defaultPriority: String? = nil,
        timeout: Duration = .seconds(300),
        maxAttempts: Int = 5,
        backoff: RetryBackoff = RetryBackoff()
    ) {
        self.maxAttempts = maxAttempts
        self.backoff = backoff
        self.name = name
        self.handler = handler
        self.priorities = priorities
        self.defaultPriority = defaultPriority
        self.timeout = timeout
        self.command = command
    }
}

/// A `[groups.NAME]` table: workers that read an ordered list of queues.
public struct WorkerGroupConfiguration: Sendable, Equatable {
    /// The group's name, the key of its table.
    public var name: String
    /// Queues in strict priority order: a job in an earlier queue is always taken first (TOML `queues`, required).
    public var queues: [String]
    /// How many jobs this group runs at once in one process (TOML `concurrency`, default 1); with
    /// ``scaling``, the most it grows to.
    public var concurrency: Int
    /// Slots that follow the load (TOML `concurrency = { min, max, target_wait }`); `nil`: fixed.
    public var scaling: ConcurrencyScaling?
    /// How many jobs the group runs at once when it starts: ``concurrency``, or `min` when autoscaled.
    public var initialConcurrency: Int { scaling?.min ?? concurrency }
    /// A shared rate for all the group's claims, across every process (TOML `rate_limit`).
    public var rateLimit: RateLimit?
    /// Claims that may go at once before ``rateLimit`` applies (TOML `burst`, default 1).
    public var burst = 1
    /// Starvation bounds: queue → the longest a job there should wait while strict order would
    /// leave it (TOML `max_wait = { "emails:low" = "5m" }`). Empty: strict priority, always.
    public var maxWait: [String: Duration] = [:]
    /// How many slots may run bounded queues' overdue jobs at once (TOML `aging_slots`, default 1).
    public var agingSlots = 1
    /// How long running jobs may go on after a shutdown signal before they are put back (TOML `shutdown_timeout`, default `"25s"`).
    public var shutdownTimeout: Duration
    /// How long a job stays claimed by a worker process that stops heartbeating before another process
    /// puts it back (TOML `lease`, default `"30s"`).
    public var lease: Duration
    /// How many times a job may be recovered from dead workers before it is dead-lettered as poison
    /// (TOML `max_recoveries`, default 3).
    public var maxRecoveries: Int

    /// Makes a group.
    public init(name: String, queues: [String], concurrency: Int = 1, shutdownTimeout: Duration = .seconds(25),
                lease: Duration = .seconds(30), maxRecoveries: Int = 3) {
        self.lease = lease
        self.maxRecoveries = maxRecoveries
        self.name = name
        self.queues = queues
        self.concurrency = concurrency
        self.shutdownTimeout = shutdownTimeout
    }
}
