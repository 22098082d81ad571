import FoundationEssentials
import Synchronization

/// A unique, time-ordered job identifier: 26 characters of Crockford base32 (ULID layout),
/// 48 bits of milliseconds since the epoch followed by 80 random bits. IDs made by one process
/// sort in the order they were made, even within the same millisecond.
public struct JobID: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The textual form stored in Redis.
    public let rawValue: String

    /// Wraps an identifier read from a stored job; any non-empty text is accepted.
    public init(rawValue: String) {
        self.rawValue = rawValue
    }

    public var description: String { rawValue }

    public static func < (lhs: JobID, rhs: JobID) -> Bool { lhs.rawValue < rhs.rawValue }

    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)
    private static let state = Mutex<(millis: UInt64, high: UInt16, low: UInt64)>((0, 0, 0))

    /// Makes a new identifier.
    public static func make(now: Date = Date()) -> JobID {
        let wallMillis = UInt64(max(0, Int64(saturating: now.timeIntervalSince1970 * 1000)))
        let (millis, high, low) = state.withLock { state -> (UInt64, UInt16, UInt64) in
            if wallMillis > state.millis {
                state = (wallMillis, UInt16.random(in: 0...UInt16.max) & 0x7FFF, UInt64.random(in: 0...UInt64.max))
            } else {
                // Same (or an earlier) millisecond: count up from the last value so order holds.
                let (low, overflow) = state.low.addingReportingOverflow(1)
                state.low = low
                if overflow { state.high &+= 1 }
            }
            return state
        }
        // Written straight into the string's storage: no array first.
        let text = String(unsafeUninitializedCapacity: 26) { chars in
            var time = millis & 0xFFFF_FFFF_FFFF
            for index in stride(from: 9, through: 0, by: -1) {
                chars[index] = alphabet[Int(time & 31)]
                time >>= 5
            }
            // 80 random bits as 16 digits: 12 from the low 60 bits of `low`, one from its top 4 bits
            // and the lowest bit of `high`, three from the rest of `high`.
            var bits = low
            for index in stride(from: 25, through: 14, by: -1) {
                chars[index] = alphabet[Int(bits & 31)]
                bits >>= 5
            }
            chars[13] = alphabet[Int((bits & 15) | (UInt64(high & 1) << 4))]
            var rest = high >> 1
            for index in stride(from: 12, through: 10, by: -1) {
                chars[index] = alphabet[Int(rest & 31)]
                rest >>= 5
            }
            return 26
        }
        return JobID(rawValue: text)
    }
}
