import Foundation
import Logging

/// Something that happened to a job. Every lifecycle change is reported here, once, so that the
/// log, and later the ledger and metrics, see the same facts.
public enum JobEvent: Sendable {
    /// A job was pushed to its queue.
    case enqueued(JobEnvelope)
    /// A worker started running a job.
    case started(JobEnvelope, group: String)
    /// A handler returned.
    case succeeded(JobEnvelope, group: String, wait: Duration, run: Duration)
    /// A handler threw or timed out.
    case failed(JobEnvelope, group: String, wait: Duration, run: Duration, error: String)
    /// A failed job will run again after `delay` (its envelope is the next attempt's).
    case retryScheduled(JobEnvelope, group: String, delay: Duration)
    /// A job was scheduled to run later.
    case scheduled(JobEnvelope, at: Date)
    /// Jobs of a worker that stopped were put back (or dead-lettered as poison).
    case recovered(RecoveryReport)
    /// A job (or an entry that is not one) was kept aside with its reason.
    case deadLettered(DeadLetter, group: String)
    /// A running job was put back at the head of its queue (shutdown).
    case requeued(JobEnvelope, group: String, reason: String)
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
        case .retryScheduled(let job, let group, let delay):
            logger.notice("\(Self.describe(job, group: group)) outcome=retry in=\(Self.format(delay))")
        case .recovered(let report):
            logger.notice("recovered \(report.recovered) job(s) from stopped workers; \(report.poisoned) dead-lettered as poison")
        case .succeeded(let job, let group, let wait, let run):
            logger.info("\(Self.describe(job, group: group)) wait=\(Self.format(wait)) run=\(Self.format(run)) outcome=ok")
        case .failed(let job, let group, let wait, let run, let error):
            logger.warning("\(Self.describe(job, group: group)) wait=\(Self.format(wait)) run=\(Self.format(run)) outcome=failed error=\(Self.quote(error))")
        case .deadLettered(let record, let group):
            logger.error("group=\(group) job=\(record.id) type=\(record.type ?? "-") queue=\(record.queue) outcome=dead reason=\(Self.quote(record.reason))")
        case .requeued(let job, let group, let reason):
            logger.notice("\(Self.describe(job, group: group)) outcome=requeued reason=\(Self.quote(reason))")
        }
    }

    static func describe(_ job: JobEnvelope, group: String) -> String {
        "group=\(group) job=\(job.id) type=\(job.type) queue=\(job.queue) attempt=\(job.attempt)"
    }

    static func quote(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: " ") + "\""
    }

    /// `0.4ms`, `12ms`, `3.2s`, `5m3s`.
    static func format(_ duration: Duration) -> String {
        let seconds = max(0, duration.inSeconds)
        if seconds < 0.01 { return String(format: "%.1fms", seconds * 1000) }
        if seconds < 1 { return String(format: "%.0fms", seconds * 1000) }
        if seconds < 60 { return String(format: "%.1fs", seconds) }
        return "\(Int(seconds) / 60)m\(Int(seconds) % 60)s"
    }
}
