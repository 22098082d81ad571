/// A rate shared by every process that uses the same limiter key (the Redis backend keeps it on
/// the server, so all worker processes on one Redis share it).
public protocol RateLimiter: Sendable {
    /// Takes one permit under `rate` with `burst`, or says how long to wait before asking again.
    /// Returns `.zero` when the permit was taken.
    func reserve(_ key: String, rate: RateLimit, burst: Int) async throws -> Duration

    /// Gives back a permit taken but not used (nothing was there to send).
    func refund(_ key: String, rate: RateLimit) async throws
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

/// Paces a worker group's claims by a shared rate: a permit is taken before each job is claimed,
/// so the group claims (and so sends) at most at the rate, and always the highest-priority job
/// waiting at that moment. A permit that finds no job is given back.
public struct RateGate: Sendable {
    /// The limiter holding the rate.
    public var limiter: any RateLimiter
    /// The limiter key shared by every process.
    public var key: String
    /// The rate.
    public var rate: RateLimit
    /// Permits that may go at once.
    public var burst: Int

    /// Makes a gate.
    public init(limiter: any RateLimiter, key: String, rate: RateLimit, burst: Int) {
        self.limiter = limiter
        self.key = key
        self.rate = rate
        self.burst = burst
    }
}
