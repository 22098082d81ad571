/// How long a failed job waits before its next attempt: exponential backoff with full jitter.
///
/// The wait before attempt `n + 1` (after `n` failed runs) is drawn uniformly from
/// `0 ... min(max, base × 2^(n-1))`, so retries of jobs that failed together spread out instead of
/// hitting a recovering service at the same moment.
public struct RetryBackoff: Sendable, Equatable {
    /// The ceiling of the first wait (TOML `backoff.base`, default `"1s"`).
    public var base: Duration
    /// The largest ceiling (TOML `backoff.max`, default `"1h"`).
    public var max: Duration

    /// Makes a backoff.
    public init(base: Duration = .seconds(1), max: Duration = .seconds(3600)) {
        self.base = base
        self.max = max
    }

    /// The ceiling of the wait after `failures` failed runs (1 for the first).
    public func ceiling(afterFailures failures: Int) -> Duration {
        let exponent = Swift.min(Swift.max(failures - 1, 0), 40)
        let millis = Double(base.inMilliseconds) * Double(1 << exponent)
        return .milliseconds(Int64(Swift.min(millis, Double(max.inMilliseconds))))
    }

    /// The wait after `failures` failed runs; `unit` is a random number in `0..<1`.
    public func delay(afterFailures failures: Int, unit: Double) -> Duration {
        let ceiling = Double(ceiling(afterFailures: failures).inMilliseconds)
        return .milliseconds(Int64((ceiling * Swift.min(Swift.max(unit, 0), 1)).rounded()))
    }

    /// The wait after `failures` failed runs, with a fresh random draw.
    public func delay(afterFailures failures: Int) -> Duration {
        delay(afterFailures: failures, unit: Double.random(in: 0..<1))
    }
}
