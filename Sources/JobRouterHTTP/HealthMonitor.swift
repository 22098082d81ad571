import Foundation
import JobRouter
import Logging
import ServiceLifecycle
import Synchronization

/// Readiness: probes each dependency (Redis, and PostgreSQL when configured) every
/// ``interval`` on connections of their own, and answers whether each answered within
/// ``staleAfter`` and the process is not shutting down. A probe that hangs (a paused server)
/// counts as failing once ``staleAfter`` passes; the next probe of that check waits for it.
public final class HealthMonitor: Service, Sendable {
    /// One dependency to probe.
    public struct Check: Sendable {
        /// Its name in `/readyz`'s body (`redis`, `postgres`).
        public var name: String
        /// Throws (or hangs) when the dependency does not answer.
        public var probe: @Sendable () async throws -> Void

        /// Makes one.
        public init(name: String, probe: @escaping @Sendable () async throws -> Void) {
            self.name = name
            self.probe = probe
        }
    }

    /// What `/readyz` reports.
    public struct Readiness: Sendable, Equatable {
        /// Ready for work: every check answered recently and the process is not stopping.
        public var ready: Bool
        /// What is wrong, by check name (`shutdown` while stopping).
        public var problems: [String: String]
    }

    private struct Probe {
        var lastSuccess: ContinuousClock.Instant?
        var lastError: String?
        var running = false
    }

    /// How often each check runs.
    public let interval: Duration
    /// How long after its last success a check counts as failing.
    public let staleAfter: Duration
    private let checks: [Check]
    private let probes: Mutex<[String: Probe]>
    private let stopping = Mutex(false)
    private let started = ContinuousClock.now

    /// A monitor over `checks`.
    public init(checks: [Check], interval: Duration = .seconds(1), staleAfter: Duration = .seconds(3)) {
        self.checks = checks
        self.interval = interval
        self.staleAfter = staleAfter
        self.probes = Mutex(Dictionary(uniqueKeysWithValues: checks.map { ($0.name, Probe()) }))
    }

    /// From now on, not ready (the process is shutting down).
    public func markStopping() {
        stopping.withLock { $0 = true }
    }

    /// Whether the process is ready, and if not, why.
    public var readiness: Readiness {
        let now = ContinuousClock.now
        var problems: [String: String] = [:]
        if stopping.withLock({ $0 }) { problems["shutdown"] = "the process is shutting down" }
        let states = probes.withLock { $0 }
        for check in checks {
            let state = states[check.name] ?? Probe()
            if let success = state.lastSuccess, now - success <= staleAfter { continue }
            if let error = state.lastError {
                problems[check.name] = error
            } else if state.lastSuccess != nil {
                problems[check.name] = "no answer for over \(Int(staleAfter.inSeconds)) s"
            } else {
                problems[check.name] = now - started > staleAfter ? "no answer yet" : "not checked yet"
            }
        }
        return Readiness(ready: problems.isEmpty, problems: problems)
    }

    /// Probes every ``interval`` until graceful shutdown or cancellation.
    public func run() async {
        await withDiscardingTaskGroup { tasks in
            tasks.addTask {
                try? await gracefulShutdown()
                self.markStopping()
            }
            while !Task.isCancelled, !Task.isShuttingDownGracefully {
                for check in checks {
                    let start = probes.withLock { probes -> Bool in
                        guard probes[check.name]?.running == false else { return false }
                        probes[check.name]?.running = true
                        return true
                    }
                    // A probe still waiting on a hung server is not stacked on, nor waited for at
                    // shutdown (a blocked C call cannot be cancelled): each runs in a task of its own.
                    guard start else { continue }
                    Task {
                        var error: String?
                        do { try await check.probe() } catch let failure { error = "\(failure)" }
                        let now = ContinuousClock.now
                        self.probes.withLock { probes in
                            probes[check.name]?.running = false
                            probes[check.name]?.lastError = error
                            if error == nil { probes[check.name]?.lastSuccess = now }
                        }
                    }
                }
                try? await Task.sleep(for: interval)
            }
            tasks.cancelAll()
        }
    }
}
