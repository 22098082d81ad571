import FoundationEssentials
import Logging

/// Grows and shrinks an autoscaled group's slots (`concurrency = { min, max, target_wait }`).
///
/// Once a second it reads how long the oldest job at the head of the group's queues has waited.
/// - While that is over `target_wait` and every slot is busy, the group grows by half its slots
///   (at least one), up to `max`: more slots would run the backlog down.
/// - Once the wait has stayed under target with some slots idle for `scale_down_after`, it shrinks
///   to what that period needed (the most slots busy at once, and a quarter more), down to `min`,
///   and waits as long again before shrinking more.
/// Each change is logged once with its reason. Running jobs are never stopped by a shrink.
struct ConcurrencyScaler: Sendable {
    let group: String
    let queues: [String]
    let terms: ConcurrencyScaling
    let slots: SlotPool
    /// Jobs the group holds now (slots taken by a waiting fetch are not busy).
    let claims: ClaimRegistry
    let driver: any JobQueueDriver
    let logger: Logger

    static let interval: Duration = .seconds(1)

    func run(while running: @Sendable () -> Bool, sleep: @Sendable (Duration) async -> Void) async {
        var quietSince: ContinuousClock.Instant?
        // The most slots busy at once since the quiet period began.
        var peakBusy = 0
        var failing = false
        while running() {
            await sleep(Self.interval)
            guard running() else { break }
            let oldest: Date?
            do {
                oldest = try await driver.oldestWaiting(in: queues)
                failing = false
            } catch {
                if !failing { logger.debug("group \(group): cannot read queue heads for autoscaling (retrying): \(error)") }
                failing = true
                continue
            }
            let wait = oldest.map { max(0, Date().timeIntervalSince($0)) } ?? 0
            let limit = slots.capacity
            let busy = claims.count
            let decision = Self.decide(limit: limit, busy: busy, wait: wait, terms: terms)
            if decision > limit {
                quietSince = nil
                apply(decision, reason: "the oldest waiting job waited \(Self.seconds(wait)) > target_wait \(DurationParser.format(terms.targetWait)) with all \(limit) slots busy")
            } else if wait < terms.targetWait.inSeconds, busy < limit, limit > terms.min {
                let now = ContinuousClock.now
                guard let since = quietSince else {
                    quietSince = now
                    peakBusy = busy
                    continue
                }
                peakBusy = Swift.max(peakBusy, busy)
                if since.duration(to: now) >= terms.scaleDownAfter {
                    let smaller = Self.shrink(limit: limit, peakBusy: peakBusy, terms: terms)
                    apply(smaller, reason: "quiet for \(DurationParser.format(terms.scaleDownAfter)): at most \(peakBusy) of \(limit) slots busy, oldest wait \(Self.seconds(wait))")
                    quietSince = now
                    peakBusy = busy
                }
            } else {
                quietSince = nil
            }
        }
    }

    /// The limit to grow to now, or `limit` when the group should not grow.
    static func decide(limit: Int, busy: Int, wait: Double, terms: ConcurrencyScaling) -> Int {
        guard wait > terms.targetWait.inSeconds, busy >= limit, limit < terms.max else { return limit }
        return Swift.min(terms.max, limit + Swift.max(1, limit / 2))
    }

    /// The limit after a quiet period in which at most `peakBusy` slots were busy: what that needed
    /// and a quarter more (at least one slot of headroom), never below `min`, always below `limit`.
    static func shrink(limit: Int, peakBusy: Int, terms: ConcurrencyScaling) -> Int {
        let fit = peakBusy + Swift.max(1, peakBusy / 4)
        return Swift.max(terms.min, Swift.min(limit - 1, fit))
    }

    private func apply(_ limit: Int, reason: String) {
        let old = slots.capacity
        guard limit != old else { return }
        slots.resize(to: limit)
        logger.notice("group \(group): concurrency \(old) → \(limit): \(reason)")
    }

    private static func seconds(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)s"
    }
}
