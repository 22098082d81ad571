import Foundation
import Testing
import Synchronization
@testable import JobRouter

/// The pieces a group's claim loops share: slots, acks on their way, handler deadlines. No server.
@Suite struct WorkerPartsTests {
    /// A claim loop runs on its fetch connection's thread (a task preferring the thread): its
    /// calls there are no hop between threads. A task that prefers a stopped thread still runs.
    @Test(.timeLimit(.minutes(1))) func aTaskPreferringAConfinedThreadRunsOnIt() async throws {
        final class State {}
        struct Stopped: Error {}
        let thread = ConfinedThread(name: "prefer-me") { State() }
        let onThread: @Sendable () async -> UInt? = {
            try? await thread.run({ (_: State) throws(Stopped) -> UInt in UInt(pthread_self()) }, ifStopped: { Stopped() })
        }
        let confined = try #require(await onThread())
        let seen = await Task(executorPreference: thread) { () async -> [UInt?] in
            // On the thread, then a call on it from there, then back in the task: the same thread.
            let first = UInt(pthread_self())
            let inCall = await onThread()
            return [first, inCall, UInt(pthread_self())]
        }.value
        #expect(seen == [confined, confined, confined])
        // Stopped: the thread takes no more work, so the task runs on the global executor.
        thread.stop()
        let late = await Task(executorPreference: thread) { UInt(pthread_self()) }.value
        #expect(late != confined)
    }

    /// A claim loop over its cap of held claims is woken by the settle that brings them under,
    /// not at its next look (it used to sleep 20 ms a time: a fifth of a fast drain's time).
    @Test(.timeLimit(.minutes(1))) func aLoopOverTheClaimCapWakesWhenASettleBringsItUnder() async throws {
        let claims = ClaimRegistry()
        for index in 0..<3 { claims.add("t\(index)") }
        // Under the cap already: no wait.
        let clock = ContinuousClock()
        let under = await clock.measure { await claims.waitUntilFewer(than: 4, atMost: .seconds(20)) }
        #expect(under < .seconds(10))
        let woken = Task {
            let start = clock.now
            await claims.waitUntilFewer(than: 3, atMost: .seconds(20))
            return (start.duration(to: clock.now), claims.count)
        }
        try await Task.sleep(for: .milliseconds(100))
        // Another token than one held changes nothing; a held one gone wakes the loop.
        claims.remove("elsewhere")
        claims.remove("t1")
        let (waited, count) = await woken.value
        #expect(waited < .seconds(10))
        #expect(count == 2)
        // Nothing settles: back after the timeout, to look at shutdown.
        let start = clock.now
        await claims.waitUntilFewer(than: 1, atMost: .milliseconds(50))
        #expect(start.duration(to: clock.now) >= .milliseconds(50))
        #expect(claims.count == 2)
    }

    @Test func twoLoopsShareTheSlots() async {
        let slots = SlotPool(capacity: 4)
        #expect(await slots.acquireAll() == 4)
        // Both loops wait; a release goes whole to one waiting loop, the next to the other.
        let taken = Taken()
        let loops = (0..<2).map { _ in Task { await taken.add(await slots.acquireAll()) } }
        try? await Task.sleep(for: .milliseconds(100))
        #expect(await taken.counts.isEmpty)
        slots.release(3)
        // Polled: a loaded run's task may take a while to wake.
        for _ in 0..<500 where await taken.counts.isEmpty { try? await Task.sleep(for: .milliseconds(10)) }
        #expect(await taken.counts == [3])
        slots.release(1)
        for loop in loops { await loop.value }
        #expect(await taken.counts == [3, 1])
        #expect(slots.inUse == 4)
    }

    @Test func closingWakesEveryWaitingLoop() async {
        let slots = SlotPool(capacity: 1)
        #expect(await slots.acquireAll() == 1)
        async let first = slots.acquireAll()
        async let second = slots.acquireAll()
        try? await Task.sleep(for: .milliseconds(50))
        slots.close()
        #expect(await first == 0)
        #expect(await second == 0)
    }

    @Test func shutdownWaitsForTheAcksOnTheirWay() async {
        let settles = PendingSettles()
        await settles.waitUntilNone()  // none: at once
        settles.begin()
        settles.begin()
        let done = Taken()
        let waiter = Task {
            await settles.waitUntilNone()
            await done.add(1)
        }
        settles.end()
        try? await Task.sleep(for: .milliseconds(50))
        #expect(await done.counts.isEmpty)
        settles.end()
        await waiter.value
        #expect(await done.counts == [1] && settles.count == 0)
    }

    /// What a run through ``HandlerRun`` gave.
    final class RunResult: Sendable {
        /// Whether `HandlerRun.run` returned, what it returned (`nil`: abandoned), and what
        /// `onAbandon` was handed.
        let value = Mutex<(returned: Bool, outcome: HandlerRun.Outcome?, abandoned: HandlerRun.Outcome?)>((false, nil, nil))
    }

    /// Runs `body` through ``HandlerRun`` in a task of `tasks`, as a group runs a handler, until
    /// the group would stop waiting for it; returns its outcome (`nil`: abandoned) and what
    /// `onAbandon` was handed.
    private func runHandler(timeout: Duration, grace: Duration = .seconds(5), stuck: StuckHandlers = StuckHandlers(),
                            deadlines: HandlerDeadlines, tasks: JobTasks = JobTasks(), result: RunResult = RunResult(),
                            _ body: @escaping @Sendable () async throws -> Void) async -> (HandlerRun.Outcome?, HandlerRun.Outcome?) {
        tasks.start { task in
            let outcome = await HandlerRun.run(timeout: timeout, grace: grace, stuck: stuck, deadlines: deadlines,
                                               cancelTask: { tasks.cancel(task) },
                                               onAbandon: { reason in tasks.replace(task) { result.value.withLock { $0.abandoned = reason } } }) {
                try await body()
            }
            result.value.withLock { $0.returned = true; $0.outcome = outcome }
        }
        await tasks.waitUntilNone()
        return result.value.withLock { ($0.outcome, $0.abandoned) }
    }

    @Test func aHandlerPastItsTimeoutIsStoppedByTheGroupsWatcher() async {
        let deadlines = HandlerDeadlines()
        let stuck = StuckHandlers()
        let clock = ContinuousClock()
        let start = clock.now
        let (outcome, abandoned) = await runHandler(timeout: .milliseconds(200), stuck: stuck, deadlines: deadlines) {
            try await Task.sleep(for: .seconds(30))
        }
        let took = start.duration(to: clock.now)
        guard case .timedOut? = outcome else {
            Issue.record("expected a timeout, got \(String(describing: outcome))")
            return
        }
        // Stopped at its deadline, not at the handler's 30 s end (a loaded machine wakes the
        // watcher late: the bound is loose; timing is not what is tested here).
        #expect(took >= .milliseconds(200) && took < .seconds(10), "took \(took)")
        #expect(abandoned == nil && stuck.current == 0)
    }

    /// The handler runs in its job's task; one that blocks its thread and never suspends still
    /// has its outcome decided after timeout and grace, by a task taking its place, which is all
    /// the group then waits for.
    @Test(.timeLimit(.minutes(1))) func aHandlerBlockingItsThreadIsAbandonedAfterTheGrace() async {
        let deadlines = HandlerDeadlines()
        let stuck = StuckHandlers()
        let tasks = JobTasks()
        let started = Mutex(false)
        let release = Mutex(false)
        let result = RunResult()
        let clock = ContinuousClock()
        let start = clock.now
        let finished = Task {
            await runHandler(timeout: .milliseconds(100), grace: .milliseconds(300), stuck: stuck, deadlines: deadlines, tasks: tasks,
                             result: result) {
                started.withLock { $0 = true }
                // Blocks its thread until told: no suspension point, cancellation never seen.
                while !release.withLock({ $0 }) { usleep(10_000) }
            }
        }
        while !started.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(5)) }
        // The group would stop waiting once the replacement wrote the outcome, the handler still
        // running (looked at for up to 20 s, so a wait that never ends fails rather than hangs).
        while tasks.count > 0 || result.value.withLock({ $0.abandoned == nil }), start.duration(to: clock.now) < .seconds(20) {
            try? await Task.sleep(for: .milliseconds(5))
        }
        let waited = start.duration(to: clock.now)
        #expect(tasks.count == 0, "the group still waits for the abandoned handler's task")
        #expect(stuck.current == 1)
        #expect(waited >= .milliseconds(400) && waited < .seconds(20), "waited \(waited)")
        let abandoned = result.value.withLock { $0.abandoned }
        guard case .timedOut? = abandoned else {
            release.withLock { $0 = true }
            Issue.record("expected the abandoned run's outcome to be a timeout, got \(String(describing: abandoned))")
            return
        }
        #expect(!result.value.withLock { $0.returned }, "the handler was waited for")
        // Once the handler does return, its run gives no second outcome and is no longer stuck.
        release.withLock { $0 = true }
        while !result.value.withLock({ $0.returned }) { try? await Task.sleep(for: .milliseconds(5)) }
        let outcome = result.value.withLock { $0.outcome }
        #expect(outcome == nil, "the run returned an outcome although it was abandoned: \(String(describing: outcome))")
        #expect(stuck.current == 0)
        #expect(deadlines.watched == 0)
        _ = await finished.value
    }

    /// A run stopped by cancelling its task (shutdown) is interrupted, even when the handler
    /// throws its cancellation error.
    @Test func aCancelledRunIsInterrupted() async {
        let tasks = JobTasks()
        let started = Mutex(false)
        let ended = Task {
            await runHandler(timeout: .seconds(30), deadlines: HandlerDeadlines(), tasks: tasks) {
                started.withLock { $0 = true }
                try await Task.sleep(for: .seconds(30))
            }
        }
        while !started.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(5)) }
        tasks.cancelAll()
        let (outcome, abandoned) = await ended.value
        guard case .interrupted? = outcome else {
            Issue.record("expected an interruption, got \(String(describing: outcome))")
            return
        }
        #expect(abandoned == nil)
    }

    @Test func aHandlerThatReturnsIsNoLongerWatched() async {
        let deadlines = HandlerDeadlines()
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    let (outcome, _) = await runHandler(timeout: .seconds(30), deadlines: deadlines) {}
                    if case .completed? = outcome { return true }
                    return false
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(outcomes.allSatisfy { $0 })
        #expect(deadlines.watched == 0)
    }

    /// Tasks started after ``JobTasks/cancelAll()`` start cancelled; the wait ends with the last.
    @Test func jobTasksStartedAfterCancelAllAreCancelled() async {
        let tasks = JobTasks()
        let seen = Mutex<[Bool]>([])
        tasks.start { _ in seen.withLock { $0.append(Task.isCancelled) } }
        await tasks.waitUntilNone()
        tasks.cancelAll()
        tasks.start { _ in seen.withLock { $0.append(Task.isCancelled) } }
        await tasks.waitUntilNone()
        #expect(seen.withLock { $0 } == [false, true])
        #expect(tasks.count == 0)
    }

    /// The scheduler's wait ends when a job this process scheduled falls due, not at its next look;
    /// a later due time does not cut it short, and shutdown ends it.
    @Test(.timeLimit(.minutes(1))) func theSchedulersWaitEndsWhenAJobItWasToldOfFallsDue() async {
        let alarm = ScheduleAlarm()
        let done = ShutdownController()
        let clock = ContinuousClock()

        // Told while waiting: the wait ends at that due time, not after its 30 s.
        var start = clock.now
        async let waited: Void = alarm.wait(until: start + .seconds(30), notBefore: start, unless: done, reaches: .aborting)
        try? await Task.sleep(for: .milliseconds(100))
        alarm.due(in: .milliseconds(200))
        await waited
        var elapsed = start.duration(to: clock.now)
        #expect(elapsed >= .milliseconds(300) && elapsed < .seconds(10), "waited \(elapsed)")

        // Told before the wait began (while the scheduler looked at Redis): the wait ends then too.
        start = clock.now
        alarm.due(in: .milliseconds(100))
        await alarm.wait(until: start + .seconds(30), notBefore: start, unless: done, reaches: .aborting)
        elapsed = start.duration(to: clock.now)
        #expect(elapsed >= .milliseconds(100) && elapsed < .seconds(10), "waited \(elapsed)")

        // A due time after the wait's end changes nothing.
        start = clock.now
        alarm.due(in: .seconds(30))
        await alarm.wait(until: start + .milliseconds(200), notBefore: start, unless: done, reaches: .aborting)
        elapsed = start.duration(to: clock.now)
        #expect(elapsed >= .milliseconds(200) && elapsed < .seconds(10), "waited \(elapsed)")

        // Nor does one before `notBefore`: the wait ends there, not sooner.
        start = clock.now
        async let spaced: Void = alarm.wait(until: start + .seconds(30), notBefore: start + .milliseconds(300), unless: done, reaches: .aborting)
        try? await Task.sleep(for: .milliseconds(50))
        alarm.due(in: .zero)
        await spaced
        elapsed = start.duration(to: clock.now)
        #expect(elapsed >= .milliseconds(300) && elapsed < .seconds(10), "waited \(elapsed)")

        // Shutdown ends a wait at once.
        start = clock.now
        async let stopped: Void = alarm.wait(until: start + .seconds(30), notBefore: start, unless: done, reaches: .aborting)
        try? await Task.sleep(for: .milliseconds(50))
        done.advance(to: .aborting)
        await stopped
        elapsed = start.duration(to: clock.now)
        #expect(elapsed < .seconds(10), "waited \(elapsed)")
    }
}

/// What the loops of a test took, in order.
private actor Taken {
    var counts: [Int] = []
    func add(_ count: Int) { counts.append(count) }
}

@Suite struct TurnsTests {
    /// Turns begun in any order run in turn order, each after the one before it ended.
    @Test func turnsBeginInOrder() async throws {
        final class Order: Sendable { let turns = Mutex<[Int]>([]) }
        let turns = Turns()
        let order = Order()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for turn in [3, 1, 2, 0] {
                group.addTask {
                    try await turns.begin(turn)
                    order.turns.withLock { $0.append(turn) }
                    turns.end(turn)
                }
                try await Task.sleep(for: .milliseconds(5))
            }
            try await group.waitForAll()
        }
        #expect(order.turns.withLock { $0 } == [0, 1, 2, 3])
    }

    /// A failed turn stops every later one, waiting or not yet begun, with its own error.
    @Test func aFailedTurnStopsTheLaterOnesWithItsError() async throws {
        struct Refused: Error, Equatable {}
        let turns = Turns()
        let waiting = Task { () -> (any Error)? in
            do { try await turns.begin(2) } catch { return error }
            return nil
        }
        try await turns.begin(0)
        turns.end(0)
        try await turns.begin(1)
        try await Task.sleep(for: .milliseconds(20))
        turns.end(1, failure: Refused())
        #expect(await waiting.value as? Refused == Refused())
        await #expect(throws: Refused.self) { try await turns.begin(3) }
    }
}
