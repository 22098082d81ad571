import CoreMetrics
import Foundation
import JobRouter
import Metrics
import Prometheus
import Synchronization

/// What the queue server holds now, read for `/metrics` (at most once per ``MetricsExporter/refreshInterval``).
public struct ClusterGauges: Sendable, Equatable {
    /// One queue's figures.
    public struct Queue: Sendable, Equatable {
        /// The queue's name (declared in the configuration).
        public var name: String
        /// Jobs waiting in it.
        public var depth: Int
        /// How long its oldest waiting job has waited (0 when empty).
        public var oldestAge: Duration

        /// Makes one.
        public init(name: String, depth: Int, oldestAge: Duration) {
            self.name = name
            self.depth = depth
            self.oldestAge = oldestAge
        }
    }

    /// Every declared queue.
    public var queues: [Queue]
    /// Jobs scheduled for later (delayed enqueues and retries).
    public var scheduled: Int
    /// Dead letters kept.
    public var dead: Int
    /// Attempt records waiting in Redis for the ledger; `nil` without a ledger.
    public var ledgerBacklog: Int?
    /// One limiter's figures (`type:NAME`, `group:NAME`, `smtp`).
    public struct Limiter: Sendable, Equatable {
        /// Its name.
        public var name: String
        /// Permits per second now.
        public var rate: Double
        /// Jobs it deferred (kept a day after its last use).
        public var deferred: Int
        /// Distinct key values in the last minute or two (keyed limits).
        public var keysActive: Int

        /// Makes one.
        public init(name: String, rate: Double, deferred: Int, keysActive: Int) {
            self.name = name
            self.rate = rate
            self.deferred = deferred
            self.keysActive = keysActive
        }
    }
    /// Every declared limiter.
    public var limiters: [Limiter] = []
    /// Starvation bounds (`max_wait`) by queue.
    public var maxWait: [String: Duration] = [:]

    /// Makes one.
    public init(queues: [Queue], scheduled: Int, dead: Int, ledgerBacklog: Int? = nil, limiters: [Limiter] = [], maxWait: [String: Duration] = [:]) {
        self.queues = queues
        self.scheduled = scheduled
        self.dead = dead
        self.ledgerBacklog = ledgerBacklog
        self.limiters = limiters
        self.maxWait = maxWait
    }
}

/// The Prometheus side of a JobRouter process: a collector registry that swift-metrics reports
/// into (``bootstrap()``), the gauges read from the queue server on scrape (cached, so scraping
/// often costs the server one small script per ``refreshInterval``, never a call on the job path),
/// this process's groups' load, and the standard `process_*` metrics.
public final class MetricsExporter: Sendable {
    /// Buckets for run and wait times: 100 µs to 5 min, roughly ×2.5 apart.
    public static let durationBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2) + .microseconds(500),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
        .seconds(120), .seconds(300),
    ]

    /// How old the queue server's figures may be before a scrape reads them again.
    public let refreshInterval: Duration
    /// The registry everything is exported from.
    public let registry: PrometheusCollectorRegistry
    private let cluster: @Sendable () async throws -> ClusterGauges
    private let load = Mutex<@Sendable () -> [GroupLoad]>({ [] })
    private let cache = Mutex<(at: ContinuousClock.Instant, refreshing: Bool)?>(nil)
    private let startTime: Double

    /// An exporter reading queue figures through `cluster`.
    public init(refreshInterval: Duration = .seconds(1), cluster: @escaping @Sendable () async throws -> ClusterGauges) {
        self.refreshInterval = refreshInterval
        self.registry = PrometheusCollectorRegistry()
        self.cluster = cluster
        self.startTime = ProcessStatistics.startTime() ?? Date().timeIntervalSince1970
    }

    /// A swift-metrics factory writing into ``registry``, with JobRouter's histogram buckets.
    public var factory: PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = Self.durationBuckets
        return factory
    }

    /// Makes ``factory`` the process's swift-metrics backend (once per process, before any
    /// metric is made) and creates the counters that must be exported even before they count.
    public func bootstrap(withPostgres: Bool, withMail: Bool) {
        MetricsSystem.bootstrap(factory)
        Counter(label: "jobrouter_redis_errors_total").increment(by: 0)
        if withPostgres { Counter(label: "jobrouter_postgres_errors_total").increment(by: 0) }
        if withMail {
            for outcome in ["sent", "failed", "rejected", "invalid"] {
                Counter(label: "jobrouter_smtp_messages_total", dimensions: [("outcome", outcome)]).increment(by: 0)
            }
            Counter(label: "jobrouter_smtp_connections_opened_total").increment(by: 0)
        }
    }

    /// Where `jobrouter_jobs_inflight` and `jobrouter_group_concurrency` come from (the worker,
    /// once it exists: ``JobRouter/JobRouterWorker/load``).
    public func reportLoad(_ load: @escaping @Sendable () -> [GroupLoad]) {
        self.load.withLock { $0 = load }
    }

    /// Exports `jobrouter_rate_limit_wait_seconds_total` for these (rate-limited) groups from now,
    /// before their first wait.
    public func exportRateLimitWaits(groups: [String]) {
        for group in groups {
            FloatingPointCounter(label: "jobrouter_rate_limit_wait_seconds_total", dimensions: [("group", group)]).increment(by: 0)
        }
    }

    /// The text exposition of every metric, reading the queue server first when its figures are older than ``refreshInterval``.
    public func render() async -> [UInt8] {
        await refreshIfStale()
        for group in load.withLock({ $0 })() {
            gauge("jobrouter_jobs_inflight", [("group", group.group)]).set(Double(group.busy))
            gauge("jobrouter_group_concurrency", [("group", group.group)]).set(Double(group.concurrency))
        }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        buffer.append(contentsOf: Array(processMetrics().utf8))
        return buffer
    }

    /// The registry's gauge `name` with `labels`, by its full name and without a `# HELP` line (as
    /// the metrics that come through swift-metrics).
    private func gauge(_ name: String, _ labels: [(String, String)] = []) -> Prometheus.Gauge {
        registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: ""), labels: labels)
    }

    private func refreshIfStale() async {
        let now = ContinuousClock.now
        let due = cache.withLock { state -> Bool in
            if let current = state, current.refreshing || now - current.at < refreshInterval { return false }
            state = (now, true)
            return true
        }
        guard due else { return }
        defer { cache.withLock { $0?.refreshing = false } }
        guard let figures = try? await cluster() else { return }
        for queue in figures.queues {
            gauge("jobrouter_queue_depth", [("queue", queue.name)]).set(Double(queue.depth))
            gauge("jobrouter_queue_oldest_job_age_seconds", [("queue", queue.name)])
                .set(queue.oldestAge.inSeconds)
        }
        for limiter in figures.limiters {
            gauge("jobrouter_limiter_rate", [("limiter", limiter.name)]).set(limiter.rate)
            gauge("jobrouter_limiter_deferred_jobs", [("limiter", limiter.name)]).set(Double(limiter.deferred))
            gauge("jobrouter_limiter_keys_active", [("limiter", limiter.name)]).set(Double(limiter.keysActive))
        }
        for (queue, bound) in figures.maxWait {
            gauge("jobrouter_queue_max_wait_seconds", [("queue", queue)]).set(bound.inSeconds)
        }
        gauge("jobrouter_scheduled_jobs").set(Double(figures.scheduled))
        gauge("jobrouter_dead_jobs").set(Double(figures.dead))
        if let backlog = figures.ledgerBacklog {
            gauge("jobrouter_ledger_backlog").set(Double(backlog))
        }
    }

    /// `process_resident_memory_bytes`, `process_cpu_seconds_total`, `process_start_time_seconds`
    /// (the names every Prometheus client library uses), from /proc.
    private func processMetrics() -> String {
        guard let process = ProcessStatistics.read() else { return "" }
        return """
            # TYPE process_resident_memory_bytes gauge
            process_resident_memory_bytes \(process.residentBytes)
            # TYPE process_cpu_seconds_total counter
            process_cpu_seconds_total \(process.cpuSeconds)
            # TYPE process_start_time_seconds gauge
            process_start_time_seconds \(startTime)

            """
    }
}
