/// A rate shared by every process that uses the same limiter key (the Redis backend keeps it on
/// the server, so all worker processes on one Redis share it).
public protocol RateLimiter: Sendable {
    /// Takes one permit under `rate` with `burst`, or says how long to wait before asking again.
    /// Returns `.zero` when the permit was taken.
    func reserve(_ key: String, rate: RateLimit, burst: Int) async throws -> Duration
}

extension RateLimiter {
    /// Waits (sleeping, never spinning) until a permit is taken. Throws when the task is cancelled.
    public func acquire(_ key: String, rate: RateLimit, burst: Int) async throws {
        while true {
            let wait = try await reserve(key, rate: rate, burst: burst)
            if wait <= .zero { return }
            try await Task.sleep(for: wait)
        }
    }
}
