import JobRouter

/// A ``RateLimiter`` kept on the Redis server (one GCRA script), so it holds across every worker
/// process on that server.
public struct RedisRateLimiter: RateLimiter {
    private let driver: RedisQueueDriver

    /// Uses `driver`'s connection and namespace.
    public init(driver: RedisQueueDriver) {
        self.driver = driver
    }

    public func reserve(_ key: String, rate: RateLimit, burst: Int) async throws -> Duration {
        let interval = max(rate.interval.inMilliseconds, 1)
        let arguments = [Array(driver.namespace.utf8), Array(key.utf8), Array(String(interval).utf8), Array(String(burst).utf8)]
        let wait = try await driver.commands.run { connection throws(RedisError) in
            try connection.evaluate(RedisScripts.rateLimit, keys: [], arguments: arguments).integer(for: "rate-limit")
        }
        return .milliseconds(wait)
    }

    public func refund(_ key: String, rate: RateLimit) async throws {
        let interval = max(rate.interval.inMilliseconds, 1)
        let arguments = [Array(driver.namespace.utf8), Array(key.utf8), Array(String(interval).utf8)]
        _ = try await driver.commands.run { connection throws(RedisError) in
            try connection.evaluate(RedisScripts.rateRefund, keys: [], arguments: arguments)
        }
    }
}
