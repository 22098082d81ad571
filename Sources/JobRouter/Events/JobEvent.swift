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
    /// Where the per-job line goes straight to, as bytes, when `logger` writes through a
    /// ``LineLogHandler`` without metadata (the CLI's): the same line swift-log would write,
    /// without a `String`, a swift-log event and a second escaping pass per job.
    private let lines: LogOutput?

    /// Whether the per-job line skips swift-log (see `lines`).
    var writesLinesDirectly: Bool { lines != nil }

    /// Logs to `logger`.
    public init(logger: Logger) {
        self.logger = logger
        if let handler = logger.handler as? LineLogHandler, handler.metadata.isEmpty {
            lines = handler.output
        } else {
            lines = nil
        }
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
            // Built as bytes in one buffer: this line is written for every job.
            var line: [UInt8] = []
            line.reserveCapacity(192)
            Self.describe(job, group: group, into: &line)
            line.append(contentsOf: " wait=".utf8)
            Self.format(wait, into: &line)
            line.append(contentsOf: " run=".utf8)
            Self.format(run, into: &line)
            line.append(contentsOf: " outcome=ok".utf8)
            // Every field is escaped already (``appendField(_:to:)``; the rest are digits).
            if let lines {
                lines.write(level: .info, escapedLine: line)
            } else {
                logger.info(Logger.Message(stringLiteral: String(decoding: line, as: UTF8.self)))
            }
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
        var line: [UInt8] = []
        line.reserveCapacity(160)
        describe(job, group: group, into: &line)
        return String(decoding: line, as: UTF8.self)
    }

    /// `group=… job=… type=… queue=… attempt=…`, appended.
    static func describe(_ job: JobEnvelope, group: String, into line: inout [UInt8]) {
        line.append(contentsOf: "group=".utf8)
        appendField(group, to: &line)
        line.append(contentsOf: " job=".utf8)
        appendField(job.id.rawValue, to: &line)
        line.append(contentsOf: " type=".utf8)
        appendField(job.type, to: &line)
        line.append(contentsOf: " queue=".utf8)
        appendField(job.queue, to: &line)
        line.append(contentsOf: " attempt=".utf8)
        if job.attempt < 0 { line.append(UInt8(ascii: "-")) }
        AttemptRecord.appendDigits(UInt64(job.attempt.magnitude), to: &line)
    }

    /// ``field(_:)``, appended (printable ASCII as it is, without a copy).
    static func appendField(_ text: String, to line: inout [UInt8]) {
        var text = text
        let plain = text.withUTF8 { bytes -> Bool in
            for byte in bytes where byte < 0x20 || byte >= 0x7F { return false }
            line.append(contentsOf: bytes)
            return true
        }
        if !plain { line.append(contentsOf: LogEscaping.escape(text).utf8) }
    }

    /// A value from outside (a type, an id) as one log token: control characters escaped, so no
    /// field can forge a line or move the cursor.
    static func field(_ text: String) -> String {
        LogEscaping.escape(text)
    }

    static func quote(_ text: String) -> String {
        "\"" + LogEscaping.escape(text.replacingEvery("\\", with: "\\\\").replacingEvery("\"", with: "\\\"")) + "\""
    }

    /// `0.4ms`, `12ms`, `3.2s`, `5m3s`.
    /// Integer arithmetic, not `String(format:)`: this runs for every job at the info level.
    static func format(_ duration: Duration) -> String {
        var text: [UInt8] = []
        format(duration, into: &text)
        return String(decoding: text, as: UTF8.self)
    }

    /// ``format(_:)``, appended.
    static func format(_ duration: Duration, into line: inout [UInt8]) {
        let seconds = max(0, duration.inSeconds)
        if seconds < 0.01 {
            tenths(seconds * 10_000, into: &line)
            line.append(contentsOf: "ms".utf8)
        } else if seconds < 1 {
            AttemptRecord.appendDigits(UInt64((seconds * 1000).rounded()), to: &line)
            line.append(contentsOf: "ms".utf8)
        } else if seconds < 60 {
            tenths(seconds * 10, into: &line)
            line.append(UInt8(ascii: "s"))
        } else {
            let whole = UInt64(min(seconds, 1e15))
            AttemptRecord.appendDigits(whole / 60, to: &line)
            line.append(UInt8(ascii: "m"))
            AttemptRecord.appendDigits(whole % 60, to: &line)
            line.append(UInt8(ascii: "s"))
        }
    }

    /// `value / 10` with one decimal: 42 → `4.2`.
    private static func tenths(_ value: Double, into line: inout [UInt8]) {
        let rounded = UInt64(value.rounded())
        AttemptRecord.appendDigits(rounded / 10, to: &line)
        line.append(UInt8(ascii: "."))
        line.append(UInt8(ascii: "0") + UInt8(rounded % 10))
    }
}
