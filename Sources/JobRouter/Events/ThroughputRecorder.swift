import FoundationEssentials
import Synchronization

/// Cluster-wide throughput: jobs processed and failed per minute, per queue and per type, added up
/// in this process and flushed to the queue server every few seconds (``JobQueueDriver/addThroughput(_:)``),
/// where every worker's counts meet in per-minute buckets kept for 25 hours. Off the job path: a
/// job costs one dictionary update here; the server sees one small call per flush.
///
/// "Processed" counts every attempt that ended in this worker (succeeded, failed and retried, or
/// dead); "failed" the ones that did not succeed. Names not declared in the configuration are
/// counted as `unknown`.
public final class ThroughputRecorder: JobEventRecorder, Sendable {
    private let pending = Mutex<[ThroughputCount.Key: Int]>([:])
    private let labels: MetricLabels

    /// Counts jobs of the queues and types `configuration` declares.
    public init(configuration: RouterConfiguration) {
        labels = MetricLabels(configuration: configuration)
    }

    public func record(_ event: JobEvent) {
        switch event {
        case .succeeded(let job, _, _, _):
            add(queue: job.queue, type: job.type, failed: false)
        case .failed(let job, _, _, _, _, _):
            add(queue: job.queue, type: job.type, failed: true)
        case .deadLettered(let record, _):
            add(queue: record.queue, type: record.type, failed: true)
        default:
            break
        }
    }

    private func add(queue: String, type: String?, failed: Bool) {
        let minute = ThroughputCount.minute(of: Date())
        let queue = labels.queue(queue)
        let type = labels.type(type)
        pending.withLock { counts in
            counts[.init(minute: minute, dimension: .queue, name: queue, failed: false), default: 0] += 1
            counts[.init(minute: minute, dimension: .type, name: type, failed: false), default: 0] += 1
            if failed {
                counts[.init(minute: minute, dimension: .queue, name: queue, failed: true), default: 0] += 1
                counts[.init(minute: minute, dimension: .type, name: type, failed: true), default: 0] += 1
            }
        }
    }

    /// Takes what was counted since the last call.
    public func drain() -> [ThroughputCount] {
        pending.withLock { counts in
            defer { counts.removeAll(keepingCapacity: true) }
            return counts.map { ThroughputCount(key: $0.key, count: $0.value) }
        }
    }

    /// Puts counts back after a flush failed, so they go with the next one.
    public func restore(_ counts: [ThroughputCount]) {
        pending.withLock { pending in
            for count in counts { pending[count.key, default: 0] += count.count }
        }
    }

    /// Sends what was counted to `driver`; on failure keeps it for the next flush.
    public func flush(to driver: any JobQueueDriver) async throws {
        let counts = drain()
        guard !counts.isEmpty else { return }
        do {
            try await driver.addThroughput(counts)
        } catch {
            restore(counts)
            throw error
        }
    }
}

/// Jobs counted in one minute for one queue or type.
public struct ThroughputCount: Sendable, Equatable {
    /// Whether a count is per queue or per job type.
    public enum Dimension: String, Sendable, Hashable {
        case queue = "q", type = "t"
    }

    /// What is counted.
    public struct Key: Sendable, Hashable {
        /// Minutes since the epoch.
        public var minute: Int
        /// Per queue or per type.
        public var dimension: Dimension
        /// The queue's or type's name.
        public var name: String
        /// `false`: processed (every attempt that ended); `true`: failed (did not succeed).
        public var failed: Bool

        /// Makes one.
        public init(minute: Int, dimension: Dimension, name: String, failed: Bool) {
            self.minute = minute
            self.dimension = dimension
            self.name = name
            self.failed = failed
        }

        /// The field in the minute's hash: `p` or `f`, tab, `q` or `t`, tab, name.
        public var field: String { "\(failed ? "f" : "p")\t\(dimension.rawValue)\t\(name)" }

        /// The key for a minute's hash field, or `nil` for a field that is not one.
        public init?(minute: Int, field: String) {
            let parts = field.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0] == "p" || parts[0] == "f", let dimension = Dimension(rawValue: String(parts[1])) else { return nil }
            self.init(minute: minute, dimension: dimension, name: String(parts[2]), failed: parts[0] == "f")
        }
    }

    /// What is counted.
    public var key: Key
    /// How many.
    public var count: Int

    /// Makes one.
    public init(key: Key, count: Int) {
        self.key = key
        self.count = count
    }

    /// Minutes since the epoch at `date`.
    public static func minute(of date: Date) -> Int {
        Int(Int64(saturating: date.timeIntervalSince1970 / 60))
    }
}

/// Counts read back from the queue server: minute → name → (processed, failed), per queue and per type.
public struct ThroughputSeries: Sendable, Equatable {
    /// One name's counts in one minute.
    public struct Counts: Sendable, Equatable {
        /// Attempts that ended.
        public var processed = 0
        /// Attempts that did not succeed.
        public var failed = 0

        /// Makes one.
        public init(processed: Int = 0, failed: Int = 0) {
            self.processed = processed
            self.failed = failed
        }
    }

    /// The minutes covered, oldest first (minutes since the epoch).
    public var minutes: [Int]
    /// Per queue: minute → counts.
    public var queues: [String: [Int: Counts]] = [:]
    /// Per type: minute → counts.
    public var types: [String: [Int: Counts]] = [:]

    /// An empty series over `minutes`.
    public init(minutes: [Int]) {
        self.minutes = minutes
    }

    /// Adds what one minute's hash held.
    public mutating func add(minute: Int, fields: [(String, Int)]) {
        for (field, value) in fields {
            guard let key = ThroughputCount.Key(minute: minute, field: field) else { continue }
            var counts = (key.dimension == .queue ? queues : types)[key.name]?[minute] ?? Counts()
            if key.failed { counts.failed += value } else { counts.processed += value }
            if key.dimension == .queue { queues[key.name, default: [:]][minute] = counts } else { types[key.name, default: [:]][minute] = counts }
        }
    }

    /// Jobs processed in the 60 seconds before `now` for `queue`: this minute's count so far plus
    /// the part of the previous minute still inside the window.
    public func lastMinute(queue: String, now: Date) -> Counts {
        let minute = ThroughputCount.minute(of: now)
        let elapsed = now.timeIntervalSince1970 / 60 - Double(minute)
        let current = queues[queue]?[minute] ?? Counts()
        let previous = queues[queue]?[minute - 1] ?? Counts()
        let share = max(0, 1 - elapsed)
        return Counts(processed: current.processed + Int((Double(previous.processed) * share).rounded()),
                      failed: current.failed + Int((Double(previous.failed) * share).rounded()))
    }
}
