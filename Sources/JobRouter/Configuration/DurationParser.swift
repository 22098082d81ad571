import FoundationEssentials

/// Reads durations written as strings in the configuration and on the command line:
/// a whole or decimal number followed by `ms`, `s`, `m`, `h` or `d` (`"250ms"`, `"1.5s"`, `"5m"`, `"7d"`).
public enum DurationParser {
    /// Parses `text`, or returns `nil` when it is not a duration.
    public static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingBlanks()
        let units: [(suffix: String, seconds: Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for unit in units where trimmed.hasSuffix(unit.suffix) {
            let number = trimmed.dropLast(unit.suffix.count)
            // "5ms" also ends in "s": only accept when what is left is a plain number.
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
                  let value = Double(number), value.isFinite, value >= 0
            else { continue }
            let total = value * unit.seconds
            guard total < 100 * 365 * 86400 else { return nil }
            return .milliseconds(Int64((total * 1000).rounded()))
        }
        return nil
    }

    /// Formats a duration the way the configuration writes it (`"250ms"`, `"30s"`, `"5m"`).
    public static func format(_ duration: Duration) -> String {
        let millis = duration.inMilliseconds
        if millis % 3_600_000 == 0, millis > 0 { return "\(millis / 3_600_000)h" }
        if millis % 60_000 == 0, millis > 0 { return "\(millis / 60_000)m" }
        if millis % 1000 == 0 { return "\(millis / 1000)s" }
        return "\(millis)ms"
    }
}

extension Duration {
    /// The whole number of milliseconds in this duration.
    public var inMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        let (millis, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return seconds < 0 ? .min : .max }
        return millis.addingReportingOverflow(attoseconds / 1_000_000_000_000_000).overflow ? .max
            : millis + attoseconds / 1_000_000_000_000_000
    }

    /// This duration in seconds, as a floating-point number.
    public var inSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
