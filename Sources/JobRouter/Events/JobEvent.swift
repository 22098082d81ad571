import FoundationEssentials
import Logging

/// Something that happened to a job. Every lifecycle change is reported here, once, and only
/// after the queue server has made it durable (the ack applied, the retry scheduled, the dead
/// letter kept), so that the log, and later the ledger and metrics, see the same true facts.
public enum JobEvent: Sendable {
    /// A job was pushed to its queue.
    case enqueued(JobEnvelope)
    /// A job was scheduled to run later.
    case scheduled(JobEnvelope, at: Date)
    /// A worker started running a job (not yet an outcome).
    case started(JobEnvelope, group: String)
    /// A handler returned and the job's ack was applied.
    case succeeded(JobEnvelope, group: String, wait: Duration, run: Duration)
    /// A handler threw or timed out and the next attempt is scheduled `retryIn` from now.
    case failed(JobEnvelope, group: String, wait: Duration, run: Duration, error: String, retryIn: Duration)
    /// A job (or an entry that is not one) was kept aside with its reason.
    case deadLettered(DeadLetter, group: String)
    /// A running job was put back at the head of its queue (shutdown).
    case requeued(JobEnvelope, group: String, reason: String)
    /// Jobs of a worker that stopped were put back (or dead-lettered as poison), by id.
    case recovered(RecoveryReport)
    /// This worker ran a job but its claim was gone when it settled it: its lease had expired and
    /// recovery gave the job to another worker, which may run it again. Its outcome here is not kept.
    case leaseLost(JobEnvelope, group: String, run: Duration)
    /// A job over its type's rate limit was not run: it waits in the schedule for the permit
    /// reserved for it, `by` from now (attempt unchanged, no slot held).
    case deferred(JobEnvelope, group: String, by: Duration, limiter: String)
}

/// Receives ``JobEvent``s. Called on the worker's tasks: return quickly and never block.
public protocol JobEventRecorder: Sendable {
    /// Notes one event.
    func record(_ event: JobEvent)
}

/// Writes one log line per finished job (group, id, type, queue, wait, run time, outcome), and one
/// per dead letter and requeue.
public struct LoggingJobEventRecorder: JobEventRecorder {
    private let logger: Logger

    /// Logs to `logger`.
    public init(logger: Logger) {
        self.logger = logger
    }

    public func record(_ event: JobEvent) {
        switch event {
        case .enqueued, .started, .scheduled:
            break
        case .recovered(let report):
            for job in report.recoveredJobs {
                logger.notice("job=\(Self.field(job.id.rawValue)) queue=\(Self.field(job.queue)) outcome=recovered: its worker stopped heartbeating; back at the head of its queue")
            }
            for job in report.poisonedJobs {
                logger.error("job=\(Self.field(job.id.rawValue)) queue=\(Self.field(job.queue)) outcome=dead reason=poison (recovered from stopped workers too often)")
            }
        case .succeeded(let job, let group, let wait, let run):
            // The one line most jobs get: skipped whole (not built) below the info level.
            guard logger.logLevel <= .info else { return }
            var line = Self.describe(job, group: group)
            line += " wait="
            line += Self.format(wait)
            line += " run="
            line += Self.format(run)
            line += " outcome=ok"
            logger.info(Logger.Message(stringLiteral: line))
        case .failed(let job, let group, let wait, let run, let error, let delay):
            logger.warning("\(Self.describe(job, group: group)) wait=\(Self.format(wait)) run=\(Self.format(run)) outcome=failed retry_in=\(Self.format(delay)) error=\(Self.quote(error))")
        case .deadLettered(let record, let group):
            logger.error("group=\(Self.field(group)) job=\(Self.field(record.id.rawValue)) type=\(Self.field(record.type ?? "-")) queue=\(Self.field(record.queue)) outcome=dead reason=\(Self.quote(record.reason))")
        case .requeued(let job, let group, let reason):
            logger.notice("\(Self.describe(job, group: group)) outcome=requeued reason=\(Self.quote(reason))")
        case .deferred(let job, let group, let delay, let limiter):
            logger.info("\(Self.describe(job, group: group)) outcome=deferred run_in=\(Self.format(delay)) limiter=\(Self.field(limiter))")
        case .leaseLost(let job, let group, let run):
            logger.warning("\(Self.describe(job, group: group)) run=\(Self.format(run)) outcome=lease-lost: its lease expired before it finished and another worker took it over; it may run again")
        }
    }

    static func describe(_ job: JobEnvelope, group: String) -> String {
        var text = "group="
        text.reserveCapacity(160)
        text += field(group)
        text += " job="
        text += field(job.id.rawValue)
        text += " type="
        text += field(job.type)
        text += " queue="
        text += field(job.queue)
        text += " attempt="
        text += String(job.attempt)
        return text
    }

    /// A value from outside (a type, an id) as one log token: control characters escaped, so no
    /// field can forge a line or move the cursor.
    static func field(_ text: String) -> String {
        LogEscaping.escape(text)
    }

    static func quote(_ text: String) -> String {
        "\"" + LogEscaping.escape(text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")) + "\""
    }

    /// `0.4ms`, `12ms`, `3.2s`, `5m3s`.
    /// Integer arithmetic, not `String(format:)`: this runs for every job at the info level.
    static func format(_ duration: Duration) -> String {
        let seconds = max(0, duration.inSeconds)
        if seconds < 0.01 { return tenths(seconds * 10_000) + "ms" }
        if seconds < 1 { return String(Int((seconds * 1000).rounded())) + "ms" }
        if seconds < 60 { return tenths(seconds * 10) + "s" }
        return "\(Int(seconds) / 60)m\(Int(seconds) % 60)s"
    }

    /// `value / 10` with one decimal: 42 → `4.2`.
    private static func tenths(_ value: Double) -> String {
        let rounded = Int(value.rounded())
        return String(rounded / 10) + "." + String(rounded % 10)
    }
}
