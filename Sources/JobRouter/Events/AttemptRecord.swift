import FoundationEssentials

/// How one attempt of a job ended, as the ledger keeps it.
public enum AttemptOutcome: String, Sendable, CaseIterable {
    /// The handler returned and the job was acknowledged.
    case succeeded
    /// The handler failed and the next attempt is scheduled.
    case failed
    /// The job was dead-lettered (attempts used up, a permanent error, an unknown type, poison).
    case dead
    /// The job was put back at the head of its queue at shutdown.
    case requeued
    /// Its worker stopped heartbeating and recovery put the job back.
    case recovered
    /// The entry was not a job JobRouter can read (kept in the dead letters with its reason).
    case malformed
}

/// One attempt's end, written by the queue server's script that made the outcome durable, in the
/// same atomic step (so the ledger sees exactly the transitions that happened, once each).
///
/// `claim` (the claim token) names the attempt: one claim, one record, so a record delivered twice
/// is stored once.
public struct AttemptRecord: Sendable, Equatable {
    /// The job's id.
    public var jobID: JobID
    /// The claim token of this attempt (or the dead-letter key for entries kept aside by a claim).
    public var claim: String
    /// The job type, when the entry named one.
    public var type: String?
    /// The priority it was routed with.
    public var priority: String?
    /// The queue it was claimed from.
    public var queue: String
    /// The worker group that ran it.
    public var group: String?
    /// Which run this was, from 1.
    public var attempt: Int?
    /// How it ended.
    public var outcome: AttemptOutcome
    /// Why it failed, for failed, dead and malformed attempts.
    public var error: String?
    /// The worker process (`host:pid:random`).
    public var worker: String
    /// When the job was first enqueued.
    public var enqueuedAt: Date?
    /// When this attempt became due, for a job that waited for a time: a delay, a retry's
    /// backoff, a cron tick, a dead job sent back. Its wait counts from then.
    public var dueAt: Date?
    /// When this attempt started.
    public var startedAt: Date?
    /// When it ended.
    public var finishedAt: Date
    /// The stored entry (JSON), from which the ledger keeps the payload (the record's JSON carries
    /// only that member); `nil` when payloads are not kept.
    public var entry: Data?

    /// Makes a record.
    public init(jobID: JobID, claim: String, type: String?, priority: String?, queue: String, group: String?,
                attempt: Int?, outcome: AttemptOutcome, error: String?, worker: String, enqueuedAt: Date?,
                dueAt: Date? = nil, startedAt: Date?, finishedAt: Date = Date(), entry: Data?) {
        self.jobID = jobID
        self.claim = claim
        self.type = type
        self.priority = priority
        self.queue = queue
        self.group = group
        self.attempt = attempt
        self.outcome = outcome
        self.error = error
        self.worker = worker
        self.enqueuedAt = enqueuedAt
        self.dueAt = dueAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.entry = entry
    }

    /// The record as one JSON object (times in seconds since the epoch; of `entry`, which must be
    /// a JSON text, as every entry a worker decoded is, only its payload, as `{"payload":…}`).
    public var jsonText: String {
        String(decoding: jsonBytes, as: UTF8.self)
    }

    /// ``jsonText`` as UTF-8 bytes, built as bytes in one buffer sized for the usual record (no
    /// growth unless a string needs escapes): one per job goes with its ack when a ledger is on.
    public var jsonBytes: [UInt8] {
        var out: [UInt8] = []
        var strings = jobID.rawValue.utf8.count + claim.utf8.count + queue.utf8.count + worker.utf8.count
        strings += (type?.utf8.count ?? 0) + (priority?.utf8.count ?? 0) + (group?.utf8.count ?? 0) + (error?.utf8.count ?? 0)
        // Keys, quotes, punctuation and numbers take under 330 bytes.
        out.reserveCapacity(330 + strings + (entry?.count ?? 0))
        func append(_ text: StaticString) {
            out.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
        }
        append("{\"id\":")
        JSONValue.writeString(jobID.rawValue, to: &out)
        append(",\"claim\":")
        JSONValue.writeString(claim, to: &out)
        append(",\"outcome\":\"")
        out.append(contentsOf: outcome.rawValue.utf8)
        append("\",\"queue\":")
        JSONValue.writeString(queue, to: &out)
        append(",\"worker\":")
        JSONValue.writeString(worker, to: &out)
        if let type { append(",\"type\":"); JSONValue.writeString(type, to: &out) }
        if let priority { append(",\"priority\":"); JSONValue.writeString(priority, to: &out) }
        if let group { append(",\"group\":"); JSONValue.writeString(group, to: &out) }
        if let attempt {
            append(",\"attempt\":")
            if attempt < 0 { out.append(UInt8(ascii: "-")) }
            Self.appendDigits(UInt64(attempt.magnitude), to: &out)
        }
        if let error { append(",\"error\":"); JSONValue.writeString(error, to: &out) }
        if let enqueuedAt { append(",\"enqueued_at\":"); Self.appendSeconds(enqueuedAt, to: &out) }
        if let dueAt { append(",\"due_at\":"); Self.appendSeconds(dueAt, to: &out) }
        if let startedAt { append(",\"started_at\":"); Self.appendSeconds(startedAt, to: &out) }
        append(",\"finished_at\":")
        Self.appendSeconds(finishedAt, to: &out)
        if let entry, !entry.isEmpty {
            append(",\"entry\":")
            Self.appendPayloadMember(of: entry, to: &out)
        }
        append("}")
        return out
    }

    /// Appends `entry` as the record carries it: only its `payload` member, as written in the
    /// entry (`{"payload":…}`, or `{}` for an entry without one), the one member the ledger
    /// keeps; the rest of a job's entry is in the record's own fields already and was, before,
    /// nearly half of each record's bytes in Redis. An entry this scan cannot read without
    /// decoding (a member name with an escape, rare) goes whole, as it did before: the ledger
    /// decodes it.
    static func appendPayloadMember(of entry: Data, to out: inout [UInt8]) {
        entry.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            switch JSONParser.lastMember("payload", in: bytes) {
            case .found(let value):
                out.append(contentsOf: #"{"payload":"#.utf8)
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[value]))
                out.append(UInt8(ascii: "}"))
            case .absent:
                out.append(contentsOf: "{}".utf8)
            case .undecided:
                out.append(contentsOf: bytes)
            }
        }
    }

    /// Appends seconds since the epoch with microseconds, as JSON, without making a string.
    static func appendSeconds(_ date: Date, to out: inout [UInt8]) {
        let micros = Int64(saturating: (date.timeIntervalSince1970 * 1_000_000).rounded())
        if micros < 0 { out.append(UInt8(ascii: "-")) }
        appendDigits(UInt64(micros.magnitude / 1_000_000), to: &out)
        out.append(UInt8(ascii: "."))
        var fraction = micros.magnitude % 1_000_000
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { digits in
            for index in stride(from: 5, through: 0, by: -1) {
                digits[index] = UInt8(ascii: "0") + UInt8(fraction % 10)
                fraction /= 10
            }
            out.append(contentsOf: digits)
        }
    }

    /// Appends `value` in decimal, without making a string.
    package static func appendDigits(_ value: UInt64, to out: inout [UInt8]) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // room for 20 digits
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { digits in
            repeat {
                digits[23 - count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                count += 1
            } while rest > 0
            out.append(contentsOf: digits[(24 - count)...])
        }
    }
}

/// Makes a worker's attempt records: it passes one with each settle only when a ledger consumes
/// them (``RouterConfiguration/ledgerTerms``).
struct AttemptRecorder: Sendable {
    /// This worker process.
    let worker: String
    /// Whether payloads go into the records.
    let storePayload: Bool

    /// The record of `job`'s attempt that ended as `outcome`.
    func record(_ job: JobEnvelope, claim: ClaimedEntry, group: String, outcome: AttemptOutcome, error: String?,
                startedAt: Date?, entry: Data? = nil) -> AttemptRecord {
        AttemptRecord(jobID: job.id, claim: claim.token, type: job.type, priority: job.priority, queue: claim.queue,
                      group: group, attempt: job.attempt, outcome: outcome, error: error, worker: worker,
                      enqueuedAt: job.enqueuedAt, dueAt: job.dueAt, startedAt: startedAt, finishedAt: Date(),
                      entry: storePayload ? (entry ?? claim.raw) : nil)
    }

    /// The record of an entry that is not a job (its bytes are not kept: they may not be JSON).
    func malformed(_ claim: ClaimedEntry, group: String, reason: String) -> AttemptRecord {
        AttemptRecord(jobID: claim.jobID, claim: claim.token, type: nil, priority: nil, queue: claim.queue, group: group,
                      attempt: nil, outcome: .malformed, error: reason, worker: worker, enqueuedAt: nil, startedAt: nil,
                      entry: nil)
    }
}
