/// Conversions of numbers that may come from outside (a foreign entry's timestamp, a clock gone
/// wrong) that clamp instead of trapping: a bad value must never crash a worker.
extension Int64 {
    /// `value` rounded toward zero, clamped to Int64's range; 0 for NaN.
    public init(saturating value: Double) {
        if value.isNaN {
            self = 0
        } else if value >= 9.2e18 {
            self = .max
        } else if value <= -9.2e18 {
            self = .min
        } else {
            self = Int64(value)
        }
    }
}

extension Duration {
    /// `seconds` as a duration with millisecond precision, clamped to ±Int64.max milliseconds.
    public static func saturating(seconds: Double) -> Duration {
        .milliseconds(Int64(saturating: seconds * 1000))
    }
}
