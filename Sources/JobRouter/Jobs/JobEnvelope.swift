import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A job as it is stored in a Redis list: one JSON object.
///
/// ```json
/// {"id":"01JDX…","type":"email","priority":"high","queue":"emails:high","payload":{…},"attempt":1,"enqueued_at":"2026-11-22T10:00:00.123Z"}
/// ```
/// Entries written by other Redis clients need only `type` (and usually `payload`); the rest is
/// filled in when a worker takes them (see ``decode(_:queue:now:)``).
public struct JobEnvelope: Sendable, Equatable {
    /// Unique and time-ordered.
    public var id: JobID
    /// The job type, a key of `[types]`.
    public var type: String
    /// The priority it was routed with; `nil` for types without priorities.
    public var priority: String?
    /// The queue (Redis list) it was routed to, and goes back to when put back.
    public var queue: String
    /// What the handler works on; any JSON value.
    public var payload: JSONValue
    /// Which run this is, from 1.
    public var attempt: Int
    /// When it was first enqueued.
    public var enqueuedAt: Date
    /// Why the previous attempt failed, on a retry.
    public var lastError: String?
    /// When a delayed job or a retry became due (`due_at`); its wait is measured from here
    /// rather than from ``enqueuedAt``. `nil` for jobs that ran as soon as they could.
    public var dueAt: Date?
    /// The unique lock this job holds (types with `unique`), `nil` for others.
    public var unique: UniqueMark?
    /// Jobs to enqueue when this one succeeds, in the same atomic step that marks it succeeded.
    public var then: [ChainStep] = []
    /// The batch this job belongs to (``JobRouterClient/enqueueBatch(_:onComplete:)``).
    public var batch: String?
    /// Whether it holds a rate-limit permit reserved when it was deferred: it runs when claimed,
    /// without asking its limiter again.
    public var ratePermit = false

    /// Since when the job has been waiting to run: ``dueAt`` when set, else ``enqueuedAt``.
    public var waitingSince: Date { dueAt ?? enqueuedAt }

    /// Makes an envelope for a new job.
    public init(
        id: JobID = .make(), type: String, priority: String?, queue: String,
        payload: JSONValue, attempt: Int = 1, enqueuedAt: Date = Date()
    ) {
        self.id = id
        self.type = type
        self.priority = priority
        self.queue = queue
        self.payload = payload
        self.attempt = attempt
        self.enqueuedAt = enqueuedAt
    }

    /// The compact JSON stored in Redis.
    public var jsonText: String {
        String(decoding: jsonBytes, as: UTF8.self)
    }

    /// ``jsonText`` as UTF-8 bytes, what is stored (built as bytes: cheaper than growing a `String`).
    public var jsonBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(192)
        func raw(_ text: StaticString) {
            text.withUTF8Buffer { out.append(contentsOf: $0) }
        }
        raw("{\"id\":")
        JSONValue.writeString(id.rawValue, to: &out)
        raw(",\"type\":")
        JSONValue.writeString(type, to: &out)
        raw(",\"priority\":")
        if let priority { JSONValue.writeString(priority, to: &out) } else { raw("null") }
        raw(",\"queue\":")
        JSONValue.writeString(queue, to: &out)
        raw(",\"payload\":")
        payload.write(to: &out)
        raw(",\"attempt\":")
        out.append(contentsOf: String(attempt).utf8)
        raw(",\"enqueued_at\":\"")
        Timestamp.append(enqueuedAt, to: &out)
        raw("\"")
        if let lastError {
            raw(",\"last_error\":")
            JSONValue.writeString(lastError, to: &out)
        }
        if let dueAt {
            raw(",\"due_at\":\"")
            Timestamp.append(dueAt, to: &out)
            raw("\"")
        }
        if let unique {
            raw(",\"unique\":")
            unique.json.write(to: &out)
        }
        if !then.isEmpty {
            raw(",\"then\":")
            JSONValue.array(then.map(\.json)).write(to: &out)
        }
        if let batch {
            raw(",\"batch\":")
            JSONValue.writeString(batch, to: &out)
        }
        if ratePermit { raw(",\"rate_permit\":true") }
        raw("}")
        return out
    }

    /// Reads an entry taken from `queue`, filling in what a foreign producer left out:
    /// a new `id`, `attempt` 1, `enqueued_at` = `now`, `payload` null. The `queue` field is always
    /// set to where the entry really was, so putting it back returns it there.
    public static func decode(_ raw: Data, queue: String, now: Date = Date()) throws(EnvelopeError) -> JobEnvelope {
        // Bytes that are not UTF-8 would be altered (replaced by U+FFFD) by any reading: refuse.
        if let offset = invalidUTF8Offset(raw) {
            throw EnvelopeError(message: "not valid UTF-8 (at byte \(offset)); kept as it was")
        }
        // The fields are read in one pass into what decoding looks at (the last of a repeated
        // name wins, as in a dictionary): no dictionary is built and none is searched per field.
        var fields = Fields()
        let isObject: Bool
        do {
            isObject = try raw.withUnsafeBytes { buffer throws(JSONParser.Error) in
                try JSONParser.parseFields(buffer.bindMemory(to: UInt8.self)) { key, value in fields.take(key, value) }
            }
        } catch {
            throw EnvelopeError(message: "not valid JSON: \(error)")
        }
        guard isObject else {
            let value: JSONValue
            do { value = try JSONValue.parse(raw) } catch { throw EnvelopeError(message: "not valid JSON: \(error)") }
            throw EnvelopeError(message: "not a JSON object (found \(value.typeName))")
        }
        guard let typeValue = fields.type else { throw EnvelopeError(message: "no \"type\" field") }
        guard let type = typeValue.stringValue, !type.isEmpty else {
            throw EnvelopeError(message: "\"type\" must be a non-empty string, not \(typeValue.typeName)")
        }
        // A new id only for an entry without one (making one draws random bytes).
        let id: JobID
        switch fields.id {
        case nil, .null?: id = .make(now: now)
        case .string(let text)? where !text.isEmpty: id = JobID(rawValue: text)
        case .integer(let number)?: id = JobID(rawValue: String(number))
        case let other?: throw EnvelopeError(message: "\"id\" must be a non-empty string, not \(other.typeName)")
        }
        var envelope = JobEnvelope(id: id, type: type, priority: nil, queue: queue,
                                   payload: fields.payload ?? .null, attempt: 1, enqueuedAt: now)
        switch fields.priority {
        case nil, .null?: break
        case .string(let priority)?: envelope.priority = priority
        case let other?: throw EnvelopeError(message: "\"priority\" must be a string, not \(other.typeName)")
        }
        switch fields.attempt {
        case nil, .null?: break
        case let value?:
            guard let attempt = value.intValue, attempt >= 1 else {
                throw EnvelopeError(message: "\"attempt\" must be a whole number from 1")
            }
            envelope.attempt = attempt
        }
        if case .string(let lastError)? = fields.lastError { envelope.lastError = lastError }
        if case .string(let text)? = fields.dueAt { envelope.dueAt = dueTime(text) }
        if let value = fields.unique, value != .null {
            envelope.unique = try UniqueMark(json: value)
        }
        switch fields.then {
        case nil, .null?: break
        case .array(let steps)?: envelope.then = try steps.map { step throws(EnvelopeError) in try ChainStep(json: step) }
        case let other?: throw EnvelopeError(message: "\"then\" must be an array of jobs, not \(other.typeName)")
        }
        if case .bool(true)? = fields.ratePermit { envelope.ratePermit = true }
        switch fields.batch {
        case nil, .null?: break
        case .string(let batch)? where !batch.isEmpty: envelope.batch = batch
        case let other?: throw EnvelopeError(message: "\"batch\" must be a non-empty string, not \(other.typeName)")
        }
        switch fields.enqueuedAt {
        case nil, .null?: break
        case .string(let text)?:
            guard let date = Timestamp.parse(text) else {
                throw EnvelopeError(message: "\"enqueued_at\" is not an ISO 8601 time: \"\(text.prefix(40))\"")
            }
            envelope.enqueuedAt = try checkedTime(date.timeIntervalSince1970)
        case .integer(let seconds)?: envelope.enqueuedAt = try checkedTime(Double(seconds))
        case .number(let seconds)?: envelope.enqueuedAt = try checkedTime(seconds)
        case let other?: throw EnvelopeError(message: "\"enqueued_at\" must be a time string, not \(other.typeName)")
        }
        return envelope
    }

    /// The fields of an entry that decoding reads; any other field is passed over.
    private struct Fields {
        var type: JSONValue?
        var id: JSONValue?
        var payload: JSONValue?
        var priority: JSONValue?
        var attempt: JSONValue?
        var lastError: JSONValue?
        var dueAt: JSONValue?
        var unique: JSONValue?
        var then: JSONValue?
        var ratePermit: JSONValue?
        var batch: JSONValue?
        var enqueuedAt: JSONValue?

        mutating func take(_ key: String, _ value: JSONValue) {
            switch key {
            case "id": id = value
            case "type": type = value
            case "payload": payload = value
            case "priority": priority = value
            case "attempt": attempt = value
            case "enqueued_at": enqueuedAt = value
            case "last_error": lastError = value
            case "due_at": dueAt = value
            case "unique": unique = value
            case "then": then = value
            case "rate_permit": ratePermit = value
            case "batch": batch = value
            default: break
            }
        }
    }

    /// The times an entry may claim to have been enqueued at: 1970 to 2100 (seconds since the epoch).
    public static let enqueuedAtRange: ClosedRange<Double> = 0...4_102_444_800

    /// An entry's `due_at` text as a time. Only for measuring waits: a value that is not a time
    /// in range is left out (`nil`), not an error.
    package static func dueTime(_ text: String) -> Date? {
        guard let due = Timestamp.parse(text), enqueuedAtRange.contains(due.timeIntervalSince1970) else { return nil }
        return due
    }

    private static func checkedTime(_ seconds: Double) throws(EnvelopeError) -> Date {
        guard seconds.isFinite, enqueuedAtRange.contains(seconds) else {
            throw EnvelopeError(message: "\"enqueued_at\" is out of range (\(seconds) s since 1970; allowed 1970 to 2100)")
        }
        return Date(timeIntervalSince1970: seconds)
    }

    /// Where `bytes` stop being UTF-8, or `nil` when they are valid throughout.
    static func invalidUTF8Offset(_ bytes: Data) -> Int? {
        // The common cases are read straight from memory: ASCII (most entries) needs no decoder,
        // and valid UTF-8 is confirmed by the standard library's validator.
        let valid = bytes.withUnsafeBytes { raw -> Bool in
            let buffer = raw.bindMemory(to: UInt8.self)
            var high: UInt8 = 0
            for byte in buffer { high |= byte }
            return high < 0x80 || String(validating: buffer, as: UTF8.self) != nil
        }
        if valid { return nil }
        var offset = 0
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): offset += UTF8.width(scalar)
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }
}

/// An entry that is not a job JobRouter can run.
public struct EnvelopeError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What is wrong with the entry (never its content: payloads may hold personal data).
    public var message: String
    public var description: String { message }
}

/// UTC timestamps as `2026-11-22T10:00:00.123Z`, written and read without a formatter object.
public enum Timestamp {
    /// The last second formatted, since jobs enqueued together share it.
    private static let lastSecond = Mutex<(seconds: Int64, text: [UInt8])>((-1, []))

    /// Formats `date` in UTC with milliseconds.
    public static func format(_ date: Date) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(24)
        append(date, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends ``format(_:)``'s text as UTF-8 (entries are built as bytes).
    static func append(_ date: Date, to out: inout [UInt8]) {
        let millisTotal = Int64(saturating: (date.timeIntervalSince1970 * 1000).rounded(.down))
        // Floor division: a time before 1970 has its milliseconds counted up from its second too
        // (no step here can overflow, even at the saturated extremes).
        let (quotient, remainder) = millisTotal.quotientAndRemainder(dividingBy: 1000)
        let wholeSeconds = remainder < 0 ? quotient - 1 : quotient
        let millis = Int(remainder < 0 ? remainder + 1000 : remainder)
        let text: [UInt8]
        if let cached = lastSecond.withLock({ $0.seconds == wholeSeconds ? $0.text : nil }) {
            text = cached
        } else {
            text = Array(formatSeconds(wholeSeconds).utf8)
            lastSecond.withLock { $0 = (wholeSeconds, text) }
        }
        out.append(contentsOf: text)
        func digit(_ value: Int) -> UInt8 { UInt8(ascii: "0") + UInt8(truncatingIfNeeded: value) }
        out.append(UInt8(ascii: "."))
        out.append(digit(millis / 100))
        out.append(digit(millis / 10 % 10))
        out.append(digit(millis % 10))
        out.append(UInt8(ascii: "Z"))
    }

    /// `2026-11-22T10:00:00` for whole seconds since the epoch.
    private static func formatSeconds(_ wholeSeconds: Int64) -> String {
        var seconds = time_t(wholeSeconds)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
        }
        return pad(parts.tm_year + 1900, 4) + "-" + pad(parts.tm_mon + 1, 2) + "-" + pad(parts.tm_mday, 2)
            + "T" + pad(parts.tm_hour, 2) + ":" + pad(parts.tm_min, 2) + ":" + pad(parts.tm_sec, 2)
    }

    /// Reads an ISO 8601 time with or without fractional seconds, `Z` or a numeric offset.
    public static func parse(_ text: String) -> Date? {
        // JobRouter's own form (`2026-11-22T10:00:00.123Z`) is read directly: Foundation's parser
        // costs ~20 times more per entry and maps ICU's data. Anything else goes to Foundation.
        if let date = parseUTC(text) { return date }
        if let date = try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)) {
            return date
        }
        return try? Date(text, strategy: Date.ISO8601FormatStyle())
    }

    /// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` with a valid date and time, else `nil`.
    static func parseUTC(_ text: String) -> Date? {
        var text = text
        return text.withUTF8 { bytes -> Date? in
            guard bytes.count >= 20, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T"),
                  bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"), bytes[bytes.count - 1] == UInt8(ascii: "Z")
            else { return nil }
            func number(_ start: Int, _ length: Int) -> Int? {
                var value = 0
                for index in start..<(start + length) {
                    let digit = Int(bytes[index]) - 48
                    guard (0...9).contains(digit) else { return nil }
                    value = value * 10 + digit
                }
                return value
            }
            guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
                  let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2),
                  (1...12).contains(month), hour < 24, minute < 60, second < 60 else { return nil }
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
            let monthDays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
            guard day >= 1, day <= monthDays[month - 1] else { return nil }
            var fraction = 0.0
            if bytes.count > 20 {
                // `.` and 1 to 9 digits before the `Z`.
                guard bytes[19] == UInt8(ascii: "."), bytes.count - 21 >= 1, bytes.count - 21 <= 9,
                      let digits = number(20, bytes.count - 21) else { return nil }
                var scale = 1.0
                for _ in 0..<(bytes.count - 21) { scale *= 10 }
                fraction = Double(digits) / scale
            }
            // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
            let y = month <= 2 ? year - 1 : year
            let era = (y >= 0 ? y : y - 399) / 400
            let yearOfEra = y - era * 400
            let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
            let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
            let days = era * 146_097 + dayOfEra - 719_468
            let seconds = Double(days * 86_400 + hour * 3600 + minute * 60 + second)
            // Whole milliseconds as Foundation reads them (what JobRouter writes), plus any finer part.
            return Date(timeIntervalSince1970: seconds + fraction)
        }
    }
}
