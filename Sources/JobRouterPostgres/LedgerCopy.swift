import Foundation
import JobRouter

/// The ledger's fast path: attempt records (JSON objects, as the settle scripts log them) turned
/// into one `COPY … FROM STDIN (FORMAT binary)` stream for the `attempts` table.
///
/// PostgreSQL storing a row this way costs a fraction of reading it from a JSON array with
/// `INSERT … ON CONFLICT` (measured 3–4 µs against ~15 µs per row here, on the cores the workers
/// share). The records are read here instead, by a scanner that takes exactly the record layout
/// and gives up (`nil`) on anything else: a time written as text, a field of an unexpected kind,
/// a missing required field, an escape PostgreSQL would refuse. Such a batch, and one the copy
/// fails on (a record stored already: `COPY` has no `ON CONFLICT`), goes through
/// ``LedgerSQL/insert(schema:)``, which decides those cases as before.
enum LedgerCopy {
    /// The columns, in the order each row carries them.
    static func statement(schema: String) -> String {
        """
        COPY \(schema).attempts (job_id, claim, type, priority, queue, worker_group, attempt, outcome, error, worker,
                                 enqueued_at, due_at, started_at, finished_at, payload) FROM STDIN (FORMAT binary)
        """
    }

    /// The whole copy stream for `records` (header, one tuple each, trailer), or `nil` when one
    /// of them is not a record this scanner reads exactly as the `INSERT` would.
    /// `now` stands in for a missing `finished_at`, as `coalesce(…, now())` does.
    static func encode(_ records: [Data], now: Date = Date()) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(19 + records.reduce(2) { $0 + $1.count + 64 })
        out.append(contentsOf: Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00])
        appendInt32(0, to: &out)  // flags
        appendInt32(0, to: &out)  // header extension length
        let nowMicros = Int64((now.timeIntervalSince1970 * 1_000_000).rounded())
        for record in records {
            let encoded = record.withUnsafeBytes { raw -> Bool in
                let bytes = raw.bindMemory(to: UInt8.self)
                var scanner = RecordScanner(bytes: bytes)
                guard let row = scanner.record() else { return false }
                row.append(to: &out, from: bytes, now: nowMicros)
                return true
            }
            if !encoded { return nil }
        }
        out.append(0xFF)
        out.append(0xFF)
        return out
    }

    static func appendInt32(_ value: Int32, to out: inout [UInt8]) {
        let bits = UInt32(bitPattern: value)
        out.append(UInt8(truncatingIfNeeded: bits >> 24))
        out.append(UInt8(truncatingIfNeeded: bits >> 16))
        out.append(UInt8(truncatingIfNeeded: bits >> 8))
        out.append(UInt8(truncatingIfNeeded: bits))
    }

    static func appendInt64(_ value: Int64, to out: inout [UInt8]) {
        appendInt32(Int32(truncatingIfNeeded: value >> 32), to: &out)
        appendInt32(Int32(truncatingIfNeeded: value), to: &out)
    }

    /// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC).
    static let postgresEpochMicros: Int64 = 946_684_800_000_000

    /// A text value: where it stands in the record (no escapes, the usual case) or its decoded
    /// bytes.
    enum Text {
        case span(Range<Int>)
        case decoded([UInt8])
    }

    /// One record's columns.
    struct Row {
        var id: Text?
        var claim: Text?
        var type: Text?
        var priority: Text?
        var queue: Text?
        var group: Text?
        var attempt: Int32?
        var outcome: Text?
        var error: Text?
        var worker: Text?
        var enqueuedAt: Int64?
        var dueAt: Int64?
        var startedAt: Int64?
        var finishedAt: Int64?
        /// Where the payload's JSON text stands in the entry.
        var payload: Range<Int>?

        /// Appends the row as one tuple of the copy stream; `bytes` is the record it was read from.
        func append(to out: inout [UInt8], from bytes: UnsafeBufferPointer<UInt8>, now: Int64) {
            out.append(0)
            out.append(15)
            text(id); text(claim); text(type); text(priority); text(queue); text(group)
            if let attempt {
                LedgerCopy.appendInt32(4, to: &out)
                LedgerCopy.appendInt32(attempt, to: &out)
            } else {
                LedgerCopy.appendInt32(-1, to: &out)
            }
            text(outcome); text(error); text(worker)
            time(enqueuedAt); time(dueAt); time(startedAt); time(finishedAt ?? now)
            if let payload {
                LedgerCopy.appendInt32(Int32(payload.count + 1), to: &out)
                out.append(1)  // jsonb's binary form: version 1, then the JSON text
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[payload]))
            } else {
                LedgerCopy.appendInt32(-1, to: &out)
            }

            func text(_ value: Text?) {
                switch value {
                case nil:
                    LedgerCopy.appendInt32(-1, to: &out)
                case .span(let range)?:
                    LedgerCopy.appendInt32(Int32(range.count), to: &out)
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[range]))
                case .decoded(let decoded)?:
                    LedgerCopy.appendInt32(Int32(decoded.count), to: &out)
                    out.append(contentsOf: decoded)
                }
            }
            func time(_ micros: Int64?) {
                guard let micros else { return LedgerCopy.appendInt32(-1, to: &out) }
                LedgerCopy.appendInt32(8, to: &out)
                LedgerCopy.appendInt64(micros - LedgerCopy.postgresEpochMicros, to: &out)
            }
        }
    }

    /// Whether `text` is an outcome the table's check allows.
    static func allowed(_ text: Text, in bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        switch text {
        case .span(let range):
            let value = UnsafeBufferPointer(rebasing: bytes[range])
            return outcomes.contains { $0.elementsEqual(value) }
        case .decoded(let decoded):
            return outcomes.contains(decoded)
        }
    }

    /// The outcomes the table's check allows.
    static let outcomes: [[UInt8]] = AttemptOutcome.allCases.map { Array($0.rawValue.utf8) }

    /// Reads one record; every method returns `nil` (give up) on input it does not take.
    struct RecordScanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        init(bytes: UnsafeBufferPointer<UInt8>) {
            self.bytes = bytes
        }

        mutating func record() -> Row? {
            var row = Row()
            // The fields read so far (one bit each): a field named twice is left to the statement.
            var seen: UInt32 = 0
            skipSpace()
            guard take(UInt8(ascii: "{")) else { return nil }
            skipSpace()
            if !take(UInt8(ascii: "}")) {
                repeat {
                    skipSpace()
                    guard let key = plainKey() else { return nil }
                    skipSpace()
                    guard take(UInt8(ascii: ":")) else { return nil }
                    skipSpace()
                    guard let bit = field(key, into: &row), seen & bit == 0 else { return nil }
                    seen |= bit
                    skipSpace()
                } while take(UInt8(ascii: ","))
                guard take(UInt8(ascii: "}")) else { return nil }
            }
            skipSpace()
            guard index == bytes.count else { return nil }
            // What the table requires, and the outcomes its check allows: anything else is for
            // the statement that reports it.
            guard row.id != nil, row.claim != nil, row.queue != nil, row.worker != nil,
                  let outcome = row.outcome, LedgerCopy.allowed(outcome, in: bytes) else { return nil }
            return row
        }

        /// Reads the value of `key` into `row`; returns the field's bit (0 for a field the table
        /// does not keep), `nil` to give up.
        private mutating func field(_ key: Range<Int>, into row: inout Row) -> UInt32? {
            func read(_ bit: UInt32, _ ok: Bool) -> UInt32? { ok ? bit : nil }
            switch key.count {
            case 2 where equal(key, "id"): return read(1 << 0, text(&row.id))
            case 5 where equal(key, "claim"): return read(1 << 1, text(&row.claim))
            case 4 where equal(key, "type"): return read(1 << 2, text(&row.type))
            case 8 where equal(key, "priority"): return read(1 << 3, text(&row.priority))
            case 5 where equal(key, "queue"): return read(1 << 4, text(&row.queue))
            case 5 where equal(key, "group"): return read(1 << 5, text(&row.group))
            case 7 where equal(key, "attempt"):
                if literal("null") { row.attempt = nil; return 1 << 6 }
                guard let value = integer(), let attempt = Int32(exactly: value) else { return nil }
                row.attempt = attempt
                return 1 << 6
            case 7 where equal(key, "outcome"): return read(1 << 7, text(&row.outcome))
            case 5 where equal(key, "error"): return read(1 << 8, text(&row.error))
            case 6 where equal(key, "worker"): return read(1 << 9, text(&row.worker))
            case 11 where equal(key, "enqueued_at"): return read(1 << 10, time(&row.enqueuedAt))
            case 6 where equal(key, "due_at"): return read(1 << 14, time(&row.dueAt))
            case 10 where equal(key, "started_at"): return read(1 << 11, time(&row.startedAt))
            case 11 where equal(key, "finished_at"): return read(1 << 12, time(&row.finishedAt))
            case 5 where equal(key, "entry"):
                row.payload = nil
                guard peek == UInt8(ascii: "{") else { return read(1 << 13, skipValue()) }
                return read(1 << 13, payload(&row.payload))
            default:
                return read(0, skipValue())
            }
        }

        // MARK: values

        /// A string (decoded) or `null`.
        private mutating func text(_ value: inout Text?) -> Bool {
            if literal("null") { value = nil; return true }
            guard let text = string() else { return false }
            value = text
            return true
        }

        /// Seconds since the epoch (a JSON number) as microseconds, or `null`. Text times go the
        /// statement's way.
        private mutating func time(_ value: inout Int64?) -> Bool {
            if literal("null") { value = nil; return true }
            let start = index
            guard skipNumber() else { return false }
            let number = UnsafeBufferPointer(rebasing: bytes[start..<index])
            guard let micros = Self.micros(number) else { return false }
            value = micros
            return true
        }

        /// Microseconds since the Unix epoch, as PostgreSQL's `to_timestamp(double precision)`
        /// makes them: the number as a double, less the PostgreSQL epoch, times a million, rounded
        /// half to even. A plain `digits[.up to six digits]` before 2038 is read exactly instead,
        /// which gives the same microsecond (the double's error stays under 0.37 µs there).
        /// `nil` beyond what a record's time can be.
        static func micros(_ number: UnsafeBufferPointer<UInt8>) -> Int64? {
            var seconds: Int64 = 0
            var fraction: Int64 = 0
            var fractionDigits = 0
            var inFraction = false
            var exact = !number.isEmpty
            for byte in number {
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"):
                    let digit = Int64(byte - UInt8(ascii: "0"))
                    if inFraction {
                        fraction = fraction * 10 + digit
                        fractionDigits += 1
                        if fractionDigits > 6 { exact = false }
                    } else {
                        seconds = seconds * 10 + digit
                        if seconds >= 1 << 31 { exact = false }
                    }
                case UInt8(ascii: "."):
                    inFraction = true
                default:
                    exact = false  // a sign or an exponent
                }
                if !exact { break }
            }
            if exact {
                while fractionDigits < 6 {
                    fraction *= 10
                    fractionDigits += 1
                }
                return seconds * 1_000_000 + fraction
            }
            guard let value = Double(String(decoding: number, as: UTF8.self)), value.isFinite,
                  abs(value) < 100_000_000_000 else { return nil }
            let sincePostgresEpoch = ((value - Double(LedgerCopy.postgresEpochMicros / 1_000_000)) * 1_000_000).rounded(.toNearestOrEven)
            return Int64(sincePostgresEpoch) + LedgerCopy.postgresEpochMicros
        }

        /// An integer without fraction or exponent.
        private mutating func integer() -> Int64? {
            let start = index
            guard skipNumber() else { return nil }
            var value: Int64 = 0
            var position = start
            let negative = bytes[position] == UInt8(ascii: "-")
            if negative { position += 1 }
            while position < index {
                let byte = bytes[position]
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), value < 1_000_000_000_000 else { return nil }
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
                position += 1
            }
            return negative ? -value : value
        }

        /// The entry object: keeps the raw text of its `payload` member (the statement's
        /// `entry->'payload'`); gives up when it is named twice, or when a member name holds an
        /// escape (it may spell `payload`: the statement decodes it).
        private mutating func payload(_ value: inout Range<Int>?) -> Bool {
            guard take(UInt8(ascii: "{")) else { return false }
            skipSpace()
            if take(UInt8(ascii: "}")) { return true }
            repeat {
                skipSpace()
                guard let key = plainKey() else { return false }
                let isPayload = equal(key, "payload")
                skipSpace()
                guard take(UInt8(ascii: ":")) else { return false }
                skipSpace()
                let start = index
                guard skipValue() else { return false }
                if isPayload {
                    guard value == nil else { return false }
                    value = start..<index
                }
                skipSpace()
            } while take(UInt8(ascii: ","))
            return take(UInt8(ascii: "}"))
        }

        // MARK: JSON

        private var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

        private mutating func take(_ byte: UInt8) -> Bool {
            guard peek == byte else { return false }
            index += 1
            return true
        }

        private mutating func skipSpace() {
            while let byte = peek, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { index += 1 }
        }

        private mutating func literal(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count,
                  equal(index..<(index + count), word) else { return false }
            index += count
            return true
        }

        /// Whether the bytes at `range` are `word`.
        private func equal(_ range: Range<Int>, _ word: StaticString) -> Bool {
            guard range.count == word.utf8CodeUnitCount, let base = bytes.baseAddress else { return false }
            return memcmp(base + range.lowerBound, word.utf8Start, range.count) == 0
        }

        /// A key without escapes (every key of a record), without its quotes.
        private mutating func plainKey() -> Range<Int>? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            let start = index
            while let byte = peek, byte != UInt8(ascii: "\"") {
                guard byte != UInt8(ascii: "\\"), byte >= 0x20 else { return nil }
                index += 1
            }
            guard take(UInt8(ascii: "\"")) else { return nil }
            return start..<(index - 1)
        }

        /// A string: where it stands when it has no escapes, else its decoded bytes. Gives up on
        /// what PostgreSQL's text would refuse (`\u0000`, a lone surrogate) and on what JSON does
        /// not allow (raw control characters).
        private mutating func string() -> Text? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            let start = index
            while let byte = peek, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") {
                guard byte >= 0x20 else { return nil }
                index += 1
            }
            if take(UInt8(ascii: "\"")) { return .span(start..<(index - 1)) }
            var out = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
            while let byte = peek {
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return .decoded(out)
                case UInt8(ascii: "\\"):
                    guard let escaped = peek else { return nil }
                    index += 1
                    switch escaped {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escaped)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        guard var scalar = hex4() else { return nil }
                        if (0xD800...0xDBFF).contains(scalar) {
                            guard take(UInt8(ascii: "\\")), take(UInt8(ascii: "u")), let low = hex4(),
                                  (0xDC00...0xDFFF).contains(low) else { return nil }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00...0xDFFF).contains(scalar) || scalar == 0 {
                            return nil
                        }
                        guard let unicode = Unicode.Scalar(scalar), let encoded = UTF8.encode(unicode) else { return nil }
                        out.append(contentsOf: encoded)
                    default:
                        return nil
                    }
                default:
                    guard byte >= 0x20 else { return nil }
                    out.append(byte)
                }
            }
            return nil
        }

        private mutating func hex4() -> UInt32? {
            guard let value = JSONParser.hex4(bytes, at: index) else { return nil }
            index += 4
            return value
        }

        private mutating func skipString() -> Bool {
            guard take(UInt8(ascii: "\"")) else { return false }
            while let byte = peek {
                index += 1
                if byte == UInt8(ascii: "\"") { return true }
                if byte == UInt8(ascii: "\\") {
                    guard peek != nil else { return false }
                    index += 1
                } else if byte < 0x20 {
                    return false
                }
            }
            return false
        }

        /// `-?digits(.digits)?([eE][+-]?digits)?`
        private mutating func skipNumber() -> Bool {
            _ = take(UInt8(ascii: "-"))
            guard digits() else { return false }
            if take(UInt8(ascii: ".")) { guard digits() else { return false } }
            if take(UInt8(ascii: "e")) || take(UInt8(ascii: "E")) {
                if !take(UInt8(ascii: "+")) { _ = take(UInt8(ascii: "-")) }
                guard digits() else { return false }
            }
            return true
        }

        private mutating func digits() -> Bool {
            let start = index
            while let byte = peek, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { index += 1 }
            return index > start
        }

        /// Skips one value of any kind, nested ones included.
        private mutating func skipValue(depth: Int = 0) -> Bool {
            guard depth < 64, let byte = peek else { return false }
            switch byte {
            case UInt8(ascii: "\""):
                return skipString()
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let object = byte == UInt8(ascii: "{")
                let close = object ? UInt8(ascii: "}") : UInt8(ascii: "]")
                index += 1
                skipSpace()
                if take(close) { return true }
                repeat {
                    skipSpace()
                    if object {
                        guard skipString() else { return false }
                        skipSpace()
                        guard take(UInt8(ascii: ":")) else { return false }
                        skipSpace()
                    }
                    guard skipValue(depth: depth + 1) else { return false }
                    skipSpace()
                } while take(UInt8(ascii: ","))
                return take(close)
            case UInt8(ascii: "t"):
                return literal("true")
            case UInt8(ascii: "f"):
                return literal("false")
            case UInt8(ascii: "n"):
                return literal("null")
            default:
                return skipNumber()
            }
        }
    }
}
