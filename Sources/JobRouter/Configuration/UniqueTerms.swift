/// A type's `unique` table: at most one job per key at a time.
///
/// `unique = { key = ["user_id"], for = "10m", until = "done" }`: enqueueing a job of the type while
/// one with the same values at those payload paths holds the lock returns the existing job's id
/// instead of making a new job. The lock is taken by the enqueue script in the same atomic step as
/// the push, and is released:
/// - `until = "done"` (default): when the job succeeds or is dead-lettered (also as poison after
///   too many recoveries); a crashed worker's job is recovered still holding it;
/// - `until = "start"`: when a worker starts the job;
/// - `until = "ttl"`: `for` after a worker started it, whatever the outcome.
///
/// In every mode the lock expires `for` after it was last set, so nothing (a queue deleted by hand,
/// a job purged) can keep a key locked for longer.
public struct UniqueTerms: Sendable, Equatable {
    /// When the lock is released.
    public enum Until: String, Sendable, CaseIterable {
        case start, done, ttl
    }

    /// Payload paths whose values make the key (dots reach into objects: `"user.id"`).
    public var keyPaths: [String]
    /// The lock's lifetime (TOML `for`, default `"1h"`).
    public var lifetime: Duration
    /// When the lock is released (TOML `until`).
    public var until: Until

    /// Makes terms.
    public init(keyPaths: [String], lifetime: Duration = .seconds(3600), until: Until = .done) {
        self.keyPaths = keyPaths
        self.lifetime = lifetime
        self.until = until
    }

    /// The lock's key part for `payload`: the values at the key paths as a JSON array, or why it
    /// cannot be made (a path missing from the payload).
    public func key(for payload: JSONValue, type: String) throws(UniqueKeyError) -> String {
        var values: [JSONValue] = []
        for path in keyPaths {
            var value = payload
            for part in path.split(separator: ".", omittingEmptySubsequences: false) {
                guard case .object(let fields) = value, let next = fields[String(part)] else {
                    throw UniqueKeyError(message: "type '\(type)' is unique by \(keyPaths.joined(separator: ", ")), and the payload has no '\(path)'")
                }
                value = next
            }
            values.append(value)
        }
        var text = ""
        JSONValue.array(values).write(to: &text)
        return text
    }
}

/// A unique job whose payload lacks a key path.
public struct UniqueKeyError: Error, CustomStringConvertible, Sendable {
    /// What is missing.
    public var message: String
    public var description: String { message }
}

/// A group's `concurrency = { min, max, target_wait }`: slots that follow the load.
///
/// Every second the group looks at the oldest job waiting in its queues: while it is older than
/// `target_wait` and every slot is busy, the group grows by half (at least one slot) up to `max`;
/// after `scale_down_after` with the oldest wait under target and slots left idle, it shrinks to
/// what that period needed (the most slots busy at once, plus a quarter), down to `min`. Each
/// change is logged once with its reason.
public struct ConcurrencyScaling: Sendable, Equatable {
    /// Fewest slots (TOML `min`).
    public var min: Int
    /// Most slots (TOML `max`).
    public var max: Int
    /// The longest the oldest waiting job should wait (TOML `target_wait`).
    public var targetWait: Duration
    /// How long the group must be quiet before it shrinks (TOML `scale_down_after`, default `"30s"`).
    public var scaleDownAfter: Duration

    /// Makes terms.
    public init(min: Int, max: Int, targetWait: Duration, scaleDownAfter: Duration = .seconds(30)) {
        self.min = min
        self.max = max
        self.targetWait = targetWait
        self.scaleDownAfter = scaleDownAfter
    }
}
