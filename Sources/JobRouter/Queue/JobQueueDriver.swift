import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// An entry a worker has claimed: taken from its queue and recorded as in flight under a lease,
/// in one atomic step. Finishing, retrying, putting back or dead-lettering it names the claim's
/// token, so a worker whose lease expired cannot touch a job someone else now owns.
public struct ClaimedEntry: Sendable, Equatable {
    /// Identifies this claim (not the job: a job claimed twice has two tokens).
    public var token: String
    /// The queue (Redis list) it came from.
    public var queue: String
    /// Its bytes, which may not be a valid job at all.
    public var raw: Data
    /// The job's id, fixed when the entry was first claimed: an entry pushed without one gets one
    /// then, written into the stored entry, so every run, recovery and dead letter names the same job.
    public var jobID: JobID
    /// Set when the claim itself kept the entry aside (dead-lettered under ``jobID``, unread, e.g.
    /// over `max_payload`): the reason. There is nothing to run and no claim to settle.
    public var keptAside: String?
    /// Where this claim stands among the claims of its driver, as the server made them (a later
    /// claim has a larger number): a group that claims over several connections puts jobs stopped
    /// by shutdown back in this order. 0 when the driver does not say.
    public var order: Int64

    /// Makes an entry.
    public init(token: String, queue: String, raw: Data, jobID: JobID, keptAside: String? = nil, order: Int64 = 0) {
        self.token = token
        self.queue = queue
        self.raw = raw
        self.jobID = jobID
        self.keptAside = keptAside
        self.order = order
    }
}

/// What settling a claim (ack, retry, dead letter) found.
public enum SettleResult: Sendable, Equatable {
    /// The change was made.
    case applied
    /// The claim's lease had expired and recovery gave the job to another worker: it may run again.
    case lost
    /// The claim was already settled, by an earlier try of the same call whose reply did not arrive.
    case alreadySettled
}

/// What a worker group promises when it claims jobs.
public struct LeaseTerms: Sendable, Equatable {
    /// How long a claim lasts without a heartbeat.
    public var lease: Duration
    /// How many recoveries from dead workers a job may have before it is poison.
    public var maxRecoveries: Int
    /// Entries longer than this many bytes are dead-lettered by the claim, never fetched.
    public var maxPayload: Int
    /// The dead-letter store's bound, for entries kept aside by the claim.
    public var maxDead: Int
    /// Whether entries kept aside by the claim are recorded for the ledger (`malformed` attempts).
    public var ledger: LedgerTerms?

    /// Makes terms.
    public init(lease: Duration, maxRecoveries: Int, maxPayload: Int = RouterConfiguration.defaultMaxPayload,
                maxDead: Int = 10_000, ledger: LedgerTerms? = nil) {
        self.lease = lease
        self.maxRecoveries = maxRecoveries
        self.maxPayload = maxPayload
        self.maxDead = maxDead
        self.ledger = ledger
    }
}

/// What the queue server's scripts need to write attempt records for the ledger themselves
/// (recovery, entries kept aside by a claim). `nil` wherever these appear: no ledger, no records.
public struct LedgerTerms: Sendable, Equatable {
    /// Whether records keep the job's entry (and so its payload).
    public var storePayload: Bool

    /// Makes terms.
    public init(storePayload: Bool) {
        self.storePayload = storePayload
    }
}

/// One worker process, as it reports itself in its heartbeats.
public struct WorkerDescription: Sendable, Equatable {
    /// Unique per process: `host:pid:random`.
    public var id: String
    /// The groups it runs.
    public var groups: [String]
    /// Jobs it runs now.
    public var inFlight: Int
    /// When it started.
    public var startedAt: Date
    /// Handlers abandoned after their timeout that still run (they ignored cancellation).
    public var stuckHandlers = 0
    /// Queues its groups cannot read, with why.
    public var brokenQueues: [String: String] = [:]
    /// Jobs each of its groups runs now.
    public var busy: [String: Int] = [:]
    /// When each claim it holds was taken, by claim token (for "running for" in the dashboard).
    public var claimedAt: [String: Date] = [:]
    /// How many jobs each of its groups may run at once now (autoscaled groups change it).
    public var concurrency: [String: Int] = [:]

    /// Makes a description.
    public init(id: String, groups: [String], inFlight: Int, startedAt: Date) {
        self.id = id
        self.groups = groups
        self.inFlight = inFlight
        self.startedAt = startedAt
    }

    /// A new, unique id for this process.
    public static func makeID() -> String {
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        let name = String(decoding: host.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        return "\(name.isEmpty ? "host" : name):\(getpid()):\(suffix)"
    }

    /// The JSON stored with each heartbeat.
    public var jsonText: String {
        JSONValue.object([
            "id": .string(id), "groups": .array(groups.map(JSONValue.string)),
            "in_flight": .integer(Int64(inFlight)), "pid": .integer(Int64(getpid())),
            "started_at": .string(Timestamp.format(startedAt)), "stuck_handlers": .integer(Int64(stuckHandlers)),
            "broken_queues": .object(brokenQueues.mapValues(JSONValue.string)),
            "busy": .object(busy.mapValues { .integer(Int64($0)) }),
            "claimed_at": .object(claimedAt.mapValues { .string(Timestamp.format($0)) }),
            "concurrency": .object(concurrency.mapValues { .integer(Int64($0)) }),
        ]).jsonText
    }
}

/// What one pass of lease recovery did, job by job.
public struct RecoveryReport: Sendable, Equatable {
    /// A job taken from a worker that stopped heartbeating.
    public struct Job: Sendable, Equatable {
        /// Its id.
        public var id: JobID
        /// The queue it was claimed from (and, when recovered, is back at the head of).
        public var queue: String

        /// Makes one.
        public init(id: JobID, queue: String) {
            self.id = id
            self.queue = queue
        }
    }

    /// Jobs put back at the head of their queue.
    public var recoveredJobs: [Job]
    /// Jobs dead-lettered as poison.
    public var poisonedJobs: [Job]

    /// How many were put back.
    public var recovered: Int { recoveredJobs.count }
    /// How many were dead-lettered as poison.
    public var poisoned: Int { poisonedJobs.count }

    /// Makes a report.
    public init(recovered: [Job] = [], poisoned: [Job] = []) {
        self.recoveredJobs = recovered
        self.poisonedJobs = poisoned
    }
}

/// A job, or an entry, that cannot run: kept with its reason instead of being dropped.
public struct DeadLetter: Sendable, Equatable {
    /// The job id, or a new one for an entry that had none.
    public var id: JobID
    /// The queue it was taken from.
    public var queue: String
    /// The job type, when the entry named one.
    public var type: String?
    /// Which run failed, when known.
    public var attempt: Int?
    /// Why it cannot run (one line, never a secret).
    public var reason: String
    /// The entry's exact bytes as stored (even when they are not valid UTF-8), so it can be
    /// inspected and put back; kept beside the record, not inside its JSON.
    public var raw: Data
    /// When it was dead-lettered.
    public var failedAt: Date

    /// Makes a record.
    public init(id: JobID, queue: String, type: String?, attempt: Int?, reason: String, raw: Data, failedAt: Date = Date()) {
        self.id = id
        self.queue = queue
        self.type = type
        self.attempt = attempt
        self.reason = reason
        self.raw = raw
        self.failedAt = failedAt
    }

    /// The JSON kept in the dead-letter store (the time is the store's index score, the raw
    /// bytes are kept beside it).
    public var jsonText: String {
        var fields: [String: JSONValue] = [
            "id": .string(id.rawValue), "queue": .string(queue), "reason": .string(reason),
        ]
        if let type { fields["type"] = .string(type) }
        if let attempt { fields["attempt"] = .integer(Int64(attempt)) }
        return JSONValue.object(fields).jsonText
    }
}

/// The one place that talks to the queue server. Everything the router and the workers do to
/// stored jobs goes through here, so a backend is one type (``JobRouterRedis/RedisQueueDriver``).
///
/// Each call either happens completely or throws; none blocks Swift's cooperative thread pool.
/// Calls that act on a claim say, with a ``SettleResult``, whether the claim was still this worker's.
public protocol JobQueueDriver: Sendable {
    /// Appends each job to the tail of its queue, in order, in as few round trips as possible.
    /// With `progress`, each step also records the last input line it pushed, atomically with the
    /// jobs, so a batch that failed part-way can be resumed without duplicates.
    /// With `batch`, the jobs count toward that batch's callback (``openBatch(_:callback:)``), in
    /// the same atomic steps.
    func push(_ jobs: [JobEnvelope], progress: BatchProgress?, batch: String?) async throws

    /// ``push(_:progress:batch:)`` with the jobs encoded already: `entries[i]` is `jobs[i].jsonBytes`.
    func push(_ jobs: [JobEnvelope], entries: [[UInt8]], progress: BatchProgress?, batch: String?) async throws

    /// ``push(_:entries:progress:batch:)`` for part of a larger array, which is not copied (a
    /// large enqueue pushes its jobs chunk by chunk): `entries[i]` is the `i`-th job's encoding.
    func push(_ jobs: ArraySlice<JobEnvelope>, entries: [[UInt8]], progress: BatchProgress?, batch: String?) async throws

    /// The last input line of batch `id` known to be pushed, or `nil` when none is recorded.
    func batchProgress(_ id: String) async throws -> Int?

    /// Holds jobs until `date`, then moves them to the tail of their queues.
    func schedule(_ jobs: [JobEnvelope], at date: Date) async throws

    /// Holds jobs for `delay` (measured on the server's clock), then moves them to their queues.
    func schedule(_ jobs: [JobEnvelope], after delay: Duration) async throws

    /// A fetcher for one worker group: it owns its own connection, because waiting for work blocks it.
    func makeFetcher(queues: [String], label: String, worker: String, terms: LeaseTerms) -> any JobFetcher

    /// The driver that owns the keys of `queues` (one group's); see the default below.
    func shard(forQueues queues: [String]) -> any JobQueueDriver

    /// Marks a claimed job done; with `attempt`, records it for the ledger in the same atomic step.
    func complete(_ claim: ClaimedEntry, attempt: AttemptRecord?) async throws -> SettleResult

    /// Like ``complete(_:attempt:)``, but returns at once: `settled` gets the outcome later, on
    /// any thread, once it is durable (or the error that kept it from being written). A driver may
    /// gather these into fewer calls (the Redis driver sends those waiting in one script call while
    /// the last is on the wire). The default runs ``complete(_:attempt:)`` in a task.
    func complete(_ claim: ClaimedEntry, attempt: AttemptRecord?,
                  settled: @escaping @Sendable (Result<SettleResult, any Error>) -> Void)

    /// Replaces a claimed job by `job` (its next attempt), due after `delay`; records `attempt` with it.
    func retry(_ claim: ClaimedEntry, as job: JobEnvelope, after delay: Duration, attempt: AttemptRecord?) async throws -> SettleResult

    /// Puts claimed jobs back at the head of their queues as `entries` (same order as `claims`; the
    /// first ends up first), recording `attempts` (same order, or empty) for those still this
    /// worker's. Returns how many were.
    func requeueAtHead(_ claims: [ClaimedEntry], as entries: [Data], attempts: [AttemptRecord]) async throws -> Int

    /// Keeps a job that cannot run, with its reason, releasing its claim when there is one;
    /// records `attempt` with it.
    func deadLetter(_ record: DeadLetter, claim: ClaimedEntry?, maxDead: Int, attempt: AttemptRecord?) async throws -> SettleResult

    /// Says this worker process is alive and extends the leases of the claims it names by `lease`.
    func heartbeat(_ worker: WorkerDescription, renewing tokens: [String], lease: Duration) async throws

    /// Removes a worker process that stopped cleanly from the list of live workers.
    func workerStopped(_ id: String) async throws

    /// Puts back (or dead-letters as poison) jobs whose lease has expired, up to `limit`; with
    /// `ledger`, each is recorded as an attempt of the worker that lost it.
    func recoverExpiredLeases(limit: Int, maxDead: Int, ledger: LedgerTerms?) async throws -> RecoveryReport

    /// Moves scheduled jobs that are due to their queues, up to `limit`; returns how many moved and
    /// how long until the next one is due (`nil` when none is scheduled).
    func moveDueJobs(limit: Int) async throws -> (moved: Int, nextDue: Duration?)

    /// How many entries wait in each queue.
    func depths(of queues: [String]) async throws -> [String: Int]

    /// How many records the dead-letter store holds.
    func deadLetterCount() async throws -> Int

    /// Adds counts to the cluster-wide per-minute throughput (kept for 25 hours).
    func addThroughput(_ counts: [ThroughputCount]) async throws

    /// The per-minute throughput of the last `minutes` minutes, up to and including the current one.
    func throughput(minutes: Int, now: Date) async throws -> ThroughputSeries

    /// Pushes jobs relayed from an outbox (each to the tail of its queue, or to the schedule when
    /// its `dueAt` is later), skipping any whose ``RelayedJob/key`` was pushed before and not yet
    /// confirmed: a relay that died between this push and deleting its rows pushes nothing twice.
    /// Keys unconfirmed for longer than `window` are forgotten. A job of a unique type
    /// (``JobEnvelope/unique`` set) takes its lock in the same step, or is not pushed when another
    /// job holds it. Returns, per job, whether it was pushed by this call.
    func pushRelayed(_ jobs: [RelayedJob], window: Duration) async throws -> [Bool]

    /// Forgets keys of relayed jobs whose outbox rows are deleted.
    func confirmRelayed(_ keys: [String]) async throws

    // MARK: Scheduling and workflow

    /// Makes `job` for tick `tick` of schedule `name`, unless a job was made for that tick or a
    /// later one (by any process). A unique job whose lock is held is not made; the tick is taken.
    func fireCronTick(_ name: String, tick: Date, job: JobEnvelope) async throws -> CronTickResult

    /// What Redis remembers of each named schedule (names never fired are left out).
    func cronStates(_ names: [String]) async throws -> [String: CronScheduleState]

    /// Enqueues a job of a unique type (``JobEnvelope/unique`` set) now, or at `due`, unless a job
    /// holds its lock; returns the holder's id then, `nil` when `job` was pushed.
    func pushUnique(_ job: JobEnvelope, due: Date?) async throws -> JobID?

    /// A unique job started: releases its lock (`until = "start"`) or starts its `for` (`"ttl"`).
    func uniqueStarted(_ job: JobEnvelope) async throws

    /// Marks a claimed job done and, in the same atomic step, releases its unique lock
    /// (`until = "done"`), pushes its `then` jobs and counts it for its batch.
    func complete(_ claim: ClaimedEntry, attempt: AttemptRecord?, finishing job: JobEnvelope) async throws -> SettleResult

    /// ``deadLetter(_:claim:maxDead:attempt:)`` that also releases `job`'s unique lock
    /// (`until = "done"`) and counts it dead for its batch.
    func deadLetter(_ record: DeadLetter, claim: ClaimedEntry?, maxDead: Int, attempt: AttemptRecord?,
                    holding job: JobEnvelope?) async throws -> SettleResult

    /// Opens batch `id`, whose `callback` job (routed; its payload becomes the user's part) is
    /// enqueued once every job pushed for the batch has succeeded or died and the batch is sealed.
    /// Opening an open batch again changes nothing.
    func openBatch(_ id: String, callback: JobEnvelope) async throws

    /// Says every job of batch `id` is pushed; returns the callback's id if it was enqueued now.
    func sealBatch(_ id: String) async throws -> JobID?

    /// Open batches, oldest first.
    func batches(limit: Int) async throws -> [BatchStatus]

    /// Pauses (`true`) or resumes queues; returns how many changed.
    func setPaused(_ queues: [String], _ paused: Bool) async throws -> Int

    /// The paused queues.
    func pausedQueues() async throws -> Set<String>

    /// Since when the job at the head of each queue has waited (queues that are empty are left out).
    func headWaits(of queues: [String]) async throws -> [String: Date]

    // MARK: Rate limits

    /// Takes a permit of `limiter` for a claimed job, or defers the job: over the limit, a permit
    /// is reserved for it and it moves to the schedule at the time that permit is valid (`job` is
    /// stored with ``JobEnvelope/ratePermit`` set), releasing the claim. One atomic step.
    func admit(_ claim: ClaimedEntry, job: JobEnvelope, limiter: LimiterChoice) async throws -> RateAdmission

    /// Figures of the named limiters (`type:NAME`, `group:NAME`, `smtp`).
    func limiterStatistics(_ names: [String], now: Date) async throws -> [String: LimiterStatistics]
}

/// Which limiter a job goes through, and its terms.
public struct LimiterChoice: Sendable, Equatable {
    /// The limiter's name for figures: `type:TYPE`.
    public var name: String
    /// Its state's key: the name, and for keyed limits `:` and the key value.
    public var state: String
    /// The key value (keyed limits), counted for "keys active".
    public var keyValue: String?
    /// The rate.
    public var rate: RateLimit
    /// The burst.
    public var burst: Int

    /// The limiter for a job of `type` with `payload` under `limit`; `nil` when the job is not limited.
    public init?(type: String, payload: JSONValue, limit: JobRateLimit) {
        guard let (key, rate) = limit.limiter(for: payload) else { return nil }
        name = "type:\(type)"
        state = limit.key == nil ? name : "\(name):\(key)"
        keyValue = limit.key == nil ? nil : key
        self.rate = rate
        burst = limit.burst
    }
}

/// What asking a limiter for a claimed job did.
public enum RateAdmission: Sendable, Equatable {
    /// A permit was taken: run it.
    case run
    /// Over the limit: it waits in the schedule this long, holding the permit reserved for it.
    case deferred(Duration)
    /// The claim was gone (its lease expired and recovery took it).
    case lost
}

/// One limiter's figures.
public struct LimiterStatistics: Sendable, Equatable {
    /// Permits in the previous whole minute.
    public var lastMinute: Int
    /// Permits so far in this minute (including ones reserved for deferred jobs that fall in it).
    public var thisMinute: Int
    /// Jobs deferred by this limiter, ever (kept a day after it was last used).
    public var deferred: Int
    /// Distinct key values seen in this minute and the previous one (keyed limits).
    public var keysActive: Int

    /// Makes figures.
    public init(lastMinute: Int, thisMinute: Int, deferred: Int, keysActive: Int) {
        self.lastMinute = lastMinute
        self.thisMinute = thisMinute
        self.deferred = deferred
        self.keysActive = keysActive
    }

    /// Permits per second: over the previous whole minute, or this one when it has run 10 s or more.
    public func rate(secondsIntoMinute: Double) -> Double {
        secondsIntoMinute >= 10 ? Double(thisMinute) / secondsIntoMinute : Double(lastMinute) / 60
    }
}

/// What claiming a cron tick did.
public enum CronTickResult: Sendable, Equatable {
    /// The job was made.
    case fired(JobID)
    /// A job was made for this tick (or a later one) already.
    case taken
    /// The type is unique and a job holds its lock: no job was made; that job's id.
    case duplicate(JobID)
}

/// An open batch with a callback, as `jobrouter batches` shows it.
public struct BatchStatus: Sendable, Equatable {
    /// Its id.
    public var id: String
    /// Jobs pushed so far.
    public var total: Int
    /// Jobs not finished yet.
    public var pending: Int
    /// Jobs that succeeded.
    public var succeeded: Int
    /// Jobs dead-lettered.
    public var dead: Int
    /// Whether every job is pushed.
    public var sealed: Bool
    /// When it was opened.
    public var created: Date
    /// The callback's type.
    public var callbackType: String

    /// Makes one.
    public init(id: String, total: Int, pending: Int, succeeded: Int, dead: Int, sealed: Bool, created: Date, callbackType: String) {
        self.id = id
        self.total = total
        self.pending = pending
        self.succeeded = succeeded
        self.dead = dead
        self.sealed = sealed
        self.created = created
        self.callbackType = callbackType
    }
}

/// A job on its way from an outbox to its queue.
public struct RelayedJob: Sendable, Equatable {
    /// What identifies the outbox row it came from (its sequence number): pushed at most once.
    public var key: String
    /// The job, routed, with `dueAt` set when it must wait.
    public var job: JobEnvelope

    /// Makes one.
    public init(key: String, job: JobEnvelope) {
        self.key = key
        self.job = job
    }
}

extension JobQueueDriver {
    /// The driver that owns the keys of `queues` (one group's): a shard of a partitioned backend
    /// (Redis Cluster: the queues' hash tag), or this driver. A group's claims are settled and
    /// renewed through it.
    public func shard(forQueues queues: [String]) -> any JobQueueDriver { self }

    public func push(_ jobs: [JobEnvelope], entries: [[UInt8]], progress: BatchProgress?, batch: String?) async throws {
        try await push(jobs, progress: progress, batch: batch)
    }

    public func push(_ jobs: ArraySlice<JobEnvelope>, entries: [[UInt8]], progress: BatchProgress?, batch: String?) async throws {
        try await push(Array(jobs), entries: entries, progress: progress, batch: batch)
    }

    /// Appends each job to the tail of its queue, in order.
    public func push(_ jobs: [JobEnvelope]) async throws {
        try await push(jobs, progress: nil, batch: nil)
    }

    /// Since when the oldest job at the head of `queues` has waited (`due_at` or `enqueued_at`);
    /// `nil` when they are empty.
    public func oldestWaiting(in queues: [String]) async throws -> Date? {
        try await headWaits(of: queues).values.min()
    }

    /// Appends each job to the tail of its queue, recording `progress` with them.
    public func push(_ jobs: [JobEnvelope], progress: BatchProgress?) async throws {
        try await push(jobs, progress: progress, batch: nil)
    }

    public func complete(_ claim: ClaimedEntry, attempt: AttemptRecord?,
                         settled: @escaping @Sendable (Result<SettleResult, any Error>) -> Void) {
        Task {
            do {
                settled(.success(try await complete(claim, attempt: attempt)))
            } catch {
                settled(.failure(error))
            }
        }
    }

    /// Marks a claimed job done, recording nothing for a ledger.
    public func complete(_ claim: ClaimedEntry) async throws -> SettleResult {
        try await complete(claim, attempt: nil)
    }

    /// Schedules a claimed job's next attempt, recording nothing for a ledger.
    public func retry(_ claim: ClaimedEntry, as job: JobEnvelope, after delay: Duration) async throws -> SettleResult {
        try await retry(claim, as: job, after: delay, attempt: nil)
    }

    /// Puts claimed jobs back at the head of their queues, recording nothing for a ledger.
    public func requeueAtHead(_ claims: [ClaimedEntry], as entries: [Data]) async throws -> Int {
        try await requeueAtHead(claims, as: entries, attempts: [])
    }

    /// Keeps a job that cannot run, recording nothing for a ledger.
    public func deadLetter(_ record: DeadLetter, claim: ClaimedEntry?, maxDead: Int) async throws -> SettleResult {
        try await deadLetter(record, claim: claim, maxDead: maxDead, attempt: nil)
    }

    /// Recovers expired leases, recording nothing for a ledger.
    public func recoverExpiredLeases(limit: Int, maxDead: Int) async throws -> RecoveryReport {
        try await recoverExpiredLeases(limit: limit, maxDead: maxDead, ledger: nil)
    }
}

/// Attempt records waiting on the queue server for the ledger (written by the scripts that settle
/// jobs), read by consumers that store them and then acknowledge them. Every record is delivered
/// until some consumer acknowledges it; one a consumer took and never acknowledged (it died) is
/// given to another after a while.
public protocol AttemptLog: Sendable {
    /// The records of up to `max` log entries (each holds the records of one settle call) not yet
    /// given to any consumer, waiting up to `wait` for one.
    func read(consumer: String, max: Int, wait: Duration) async throws -> [LoggedAttempt]

    /// The records of up to `max` entries given to some consumer more than `idle` ago and never acknowledged, now `consumer`'s.
    func reclaim(consumer: String, idle: Duration, max: Int) async throws -> [LoggedAttempt]

    /// Forgets records that are stored.
    func acknowledge(_ ids: [String]) async throws

    /// How many records wait, and how many were ever dropped by the bound.
    func backlog() async throws -> AttemptLogBacklog
}

/// One record as the attempt log holds it.
public struct LoggedAttempt: Sendable, Equatable {
    /// Its place in the log (what ``AttemptLog/acknowledge(_:)`` takes).
    public var id: String
    /// The record: an ``AttemptRecord`` as JSON.
    public var record: Data

    /// Makes one.
    public init(id: String, record: Data) {
        self.id = id
        self.record = record
    }
}

/// The attempt log's size.
public struct AttemptLogBacklog: Sendable, Equatable {
    /// Records not yet stored.
    public var waiting: Int
    /// Records dropped because the log was full (never stored).
    public var dropped: Int

    /// Makes one.
    public init(waiting: Int, dropped: Int) {
        self.waiting = waiting
        self.dropped = dropped
    }
}

/// A batch's progress marker: pushed with its jobs in the same atomic steps.
public struct BatchProgress: Sendable, Equatable {
    /// Names the batch (`enqueue --batch-id`); progress is kept a week.
    public var batchID: String
    /// The input line of each job, in the order of the jobs pushed.
    public var lines: [Int]

    /// Makes a marker.
    public init(batchID: String, lines: [Int]) {
        self.batchID = batchID
        self.lines = lines
    }
}

/// Claims entries from a group's queues in strict priority order.
public protocol JobFetcher: Sendable {
    /// Claims up to `max` entries, always from the earliest non-empty queue first. When every queue
    /// is empty, waits on the server up to `wait` for one to arrive (no polling), and then returns
    /// what it could claim, possibly nothing.
    func fetch(max: Int, wait: Duration) async throws -> [ClaimedEntry]

    /// Claims up to `max` entries from `queues` only (in that order), without waiting: a group
    /// taking an overdue job from a queue with a starvation bound.
    func claim(max: Int, from queues: [String]) async throws -> [ClaimedEntry]

    /// Makes a waiting ``fetch(max:wait:)`` return soon, and later ones return without waiting.
    func interrupt()

    /// Queues set aside because they cannot be read (e.g. the key holds another type), with why.
    var brokenQueues: [String: String] { get }

    /// Releases the connection.
    func close() async

    /// Where a loop claiming through this fetcher should run: the thread its calls run on, so a
    /// claim is no hop from the loop's thread to the connection's and back (a thread wake-up each
    /// way). `nil`: the global executor.
    var taskExecutor: (any TaskExecutor)? { get }
}

extension JobFetcher {
    public var taskExecutor: (any TaskExecutor)? { nil }
}
