import FoundationEssentials

/// A `[schedules.NAME]` table: a job enqueued at every tick of a cron expression.
///
/// Every `work` process looks at every schedule about once a second, and a tick is claimed in Redis
/// by one atomic script (the schedule's last tick is stored with it), so each tick makes exactly one
/// job however many processes run, and one as long as at least one process was up at that tick.
/// A process fires only ticks that came while it was up, except with ``catchUp``: then a process
/// also fires the most recent missed tick once, when it is at most that old.
public struct CronSchedule: Sendable, Equatable {
    /// The schedule's name, the key of its table.
    public var name: String
    /// When it fires (TOML `cron`).
    public var cron: CronExpression
    /// The time zone the expression's times are in (TOML `timezone`, an IANA name, default `"UTC"`).
    public var timeZone: TimeZone
    /// The job type to enqueue (TOML `type`).
    public var type: String
    /// Its priority (TOML `priority`); `nil` for the type's default.
    public var priority: String?
    /// Its payload (TOML `payload`, any table or value; default null).
    public var payload: JSONValue
    /// How old a missed tick may be and still run once after downtime (TOML `catch_up`); `nil`:
    /// missed ticks are skipped.
    public var catchUp: Duration?

    /// Makes a schedule.
    public init(name: String, cron: CronExpression, timeZone: TimeZone = CronSchedule.utc, type: String, priority: String? = nil,
                payload: JSONValue = .null, catchUp: Duration? = nil) {
        self.name = name
        self.cron = cron
        self.timeZone = timeZone
        self.type = type
        self.priority = priority
        self.payload = payload
        self.catchUp = catchUp
    }

    /// UTC, the default time zone.
    public static let utc = TimeZone(identifier: "UTC") ?? .gmt

    /// The zone's name as configured: `UTC` for the default (Foundation on Linux calls it `GMT`).
    public var zoneName: String {
        timeZone.identifier == "GMT" && timeZone == Self.utc ? "UTC" : timeZone.identifier
    }

    /// The next `count` fire times after `date`.
    public func nextFires(after date: Date, count: Int) -> [Date] {
        var out: [Date] = []
        var cursor = date
        while out.count < count, let next = cron.nextFire(after: cursor, in: timeZone) {
            out.append(next)
            cursor = next
        }
        return out
    }
}

/// What Redis remembers about a schedule: the last tick that made a job.
public struct CronScheduleState: Sendable, Equatable {
    /// The tick (its fire time).
    public var tick: Date
    /// The job it made.
    public var jobID: JobID
    /// When the job was made (server time).
    public var firedAt: Date

    /// Makes one.
    public init(tick: Date, jobID: JobID, firedAt: Date) {
        self.tick = tick
        self.jobID = jobID
        self.firedAt = firedAt
    }
}
