import Metrics
import Synchronization

/// Turns ``JobEvent``s into swift-metrics counters and histograms (the names are JobRouter's
/// contract; the README lists them with a query each):
///
/// - `jobrouter_jobs_total{group,type,queue,outcome}` (outcome: succeeded, failed, dead, requeued,
///   recovered, malformed)
/// - `jobrouter_job_duration_seconds{group,type}`: handler run time (a swift-metrics `Timer`)
/// - `jobrouter_job_wait_seconds{group,queue}`: enqueued (or due) → started
///
/// Label values come only from the configuration: a type or queue it does not declare (a foreign
/// entry's garbage) is reported as `unknown`, so a hostile producer cannot grow the label set.
/// Metric handles are made once per label set and reused, so recording costs a dictionary lookup
/// and an atomic add. With no metrics backend bootstrapped, swift-metrics drops everything.
public final class MetricsJobEventRecorder: JobEventRecorder, Sendable {
    /// The outcome label values, as in the ledger.
    public enum Outcome: String, Sendable, CaseIterable {
        case succeeded, failed, dead, requeued, recovered, malformed, deferred
    }

    private struct CounterKey: Hashable {
        var group: String, type: String, queue: String, outcome: Outcome
    }
    private struct PairKey: Hashable {
        var first: String, second: String
    }

    private let labels: MetricLabels
    private let counters = Mutex<[CounterKey: Counter]>([:])
    private let durations = Mutex<[PairKey: Metrics.Timer]>([:])
    private let waits = Mutex<[PairKey: Metrics.Timer]>([:])

    /// A recorder whose label values are bounded by `configuration`'s types, queues and groups.
    public init(configuration: RouterConfiguration) {
        labels = MetricLabels(configuration: configuration)
    }

    public func record(_ event: JobEvent) {
        switch event {
        case .enqueued, .scheduled, .leaseLost:
            break
        case .started(let job, let group):
            let wait = max(0, job.waitingSince.distance(to: .now))
            timer(waits, PairKey(first: group, second: labels.queue(job.queue)), names: ("jobrouter_job_wait_seconds", "group", "queue"))
                .recordNanoseconds(Int64(saturating: wait * 1e9))
        case .succeeded(let job, let group, _, let run):
            count(job, group: group, .succeeded)
            observe(run, group: group, type: job.type)
        case .failed(let job, let group, _, let run, _, _):
            count(job, group: group, .failed)
            observe(run, group: group, type: job.type)
        case .deadLettered(let record, let group):
            let outcome: Outcome = record.type == nil ? .malformed : .dead
            counter(CounterKey(group: group, type: labels.type(record.type), queue: labels.queue(record.queue), outcome: outcome)).increment()
        case .requeued(let job, let group, _):
            count(job, group: group, .requeued)
        case .deferred(let job, let group, _, _):
            count(job, group: group, .deferred)
        case .recovered(let report):
            for job in report.recoveredJobs {
                counter(CounterKey(group: labels.reader(of: job.queue), type: MetricLabels.unknown,
                                   queue: labels.queue(job.queue), outcome: .recovered)).increment()
            }
            for job in report.poisonedJobs {
                counter(CounterKey(group: labels.reader(of: job.queue), type: MetricLabels.unknown,
                                   queue: labels.queue(job.queue), outcome: .dead)).increment()
            }
        }
    }

    private func count(_ job: JobEnvelope, group: String, _ outcome: Outcome) {
        counter(CounterKey(group: group, type: labels.type(job.type), queue: labels.queue(job.queue), outcome: outcome)).increment()
    }

    private func observe(_ run: Duration, group: String, type: String) {
        timer(durations, PairKey(first: group, second: labels.type(type)), names: ("jobrouter_job_duration_seconds", "group", "type"))
            .recordNanoseconds(Int64(saturating: run.inSeconds * 1e9))
    }

    private func counter(_ key: CounterKey) -> Counter {
        counters.withLock { cache in
            if let counter = cache[key] { return counter }
            let counter = Counter(label: "jobrouter_jobs_total", dimensions: [
                ("group", key.group), ("type", key.type), ("queue", key.queue), ("outcome", key.outcome.rawValue),
            ])
            cache[key] = counter
            return counter
        }
    }

    private func timer(_ cache: borrowing Mutex<[PairKey: Metrics.Timer]>, _ key: PairKey,
                       names: (label: String, first: String, second: String)) -> Metrics.Timer {
        cache.withLock { cache in
            if let timer = cache[key] { return timer }
            let timer = Metrics.Timer(label: names.label, dimensions: [(names.first, key.first), (names.second, key.second)],
                                      preferredDisplayUnit: .seconds)
            cache[key] = timer
            return timer
        }
    }
}
