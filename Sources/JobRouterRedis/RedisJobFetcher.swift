import FoundationEssentials
import JobRouter
import Synchronization

/// Claims a group's entries with the claim script. When every queue is empty it blocks in `BLPOP`
/// on the queues' wake-up lists (which every JobRouter push fills in the same atomic step as the
/// job), then claims again; entries pushed by other Redis clients, which push no token, are
/// claimed when that wait times out.
///
/// A queue key holding something other than a list (`WRONGTYPE`) is set aside, reported through
/// ``brokenQueues``, and looked at again every ``brokenRecheck``; the group's other queues go on.
final class RedisJobFetcher: JobFetcher {
    private let queues: [String]
    private let arguments: [[UInt8]]
    private let namespace: String
    private let thread: RedisConnectionThread
    private let control: RedisConnectionThread
    private let state = FetchState()

    /// Numbers this process's fetchers: each is a lease owner of its own (`worker#n`).
    private static let fetchers = Atomic<Int>(0)

    /// The lease its claims are held under (see ``RedisScripts/claim``): extended by each claim
    /// call that takes something, and by the heartbeats of its group, which name the claims it
    /// holds. A claim the worker never learned of (a call's answer lost with its connection; after
    /// a failover, a settle the promoted replica never saw) is held by no one, yet would stay in
    /// flight for as long as its owner goes on claiming. So the fetcher claims under a new owner
    /// (`worker#n.1`, `.2`, …) after any call that failed, and once its owner is ``ownerLifetime``
    /// old: the owner it left runs out once the claims it still holds are settled, and recovery
    /// takes whatever is left under it.
    private let owner: LeaseOwner

    /// How long a fetcher claims under one owner at most: ten leases (5 minutes by default). Each
    /// owner left costs recovery one pass over the in-flight table once its lease ran out.
    static func ownerLifetime(lease: Duration) -> Duration { lease * 10 }

    init(queues: [String], namespace: String, worker: String, terms: LeaseTerms, endpoint: RedisEndpoint,
         timeout: Duration, label: String, control: RedisConnectionThread, ledgerBuffer: Int, ownerLifetime: Duration? = nil) {
        self.queues = queues
        self.namespace = namespace
        self.owner = LeaseOwner(base: "\(worker)#\(Self.fetchers.wrappingAdd(1, ordering: .relaxed).newValue)",
                                lifetime: ownerLifetime ?? Self.ownerLifetime(lease: terms.lease))
        self.arguments = [Array(namespace.utf8), [], Array(worker.utf8), Array(String(terms.maxRecoveries).utf8),
                          Array(String(terms.lease.inMilliseconds).utf8), Array(String(terms.maxPayload).utf8),
                          Array(String(terms.maxDead).utf8), Array(String(terms.ledger == nil ? 0 : ledgerBuffer).utf8),
                          []]
        self.control = control
        // The socket timeout must outlast the longest BLPOP wait, or hiredis drops the connection.
        self.thread = RedisConnectionThread(endpoint: endpoint, timeout: timeout + .seconds(5), name: "jobrouter-fetch-\(label)")
    }

    /// How often a queue set aside as broken is looked at again.
    static let brokenRecheck: Duration = .seconds(10)

    var brokenQueues: [String: String] { state.broken }

    /// The connection's client id while it waits in BLPOP for jobs.
    var waitingClient: Int64? { state.waitingClient }

    var taskExecutor: (any TaskExecutor)? { thread.taskExecutor }

    func fetch(max: Int, wait: Duration) async throws -> [ClaimedEntry] {
        let (queues, namespace, state) = (self.queues, self.namespace, self.state)
        let arguments = claimArguments(max: max)
        // Seconds with milliseconds for BLPOP, by integer arithmetic: `String(format:)` per fetch
        // costs more, and goes through Foundation's formatting.
        let waitMilliseconds = Swift.max(wait.inMilliseconds, 0)
        let fraction = String(waitMilliseconds % 1000)
        let waitSeconds = "\(waitMilliseconds / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
        return try await claiming { connection throws(RedisError) in
            if state.brokenDue(now: .now) { try Self.checkTypes(connection, queues: queues, state: state) }
            let readable = queues.filter { state.broken[$0] == nil }
            guard !readable.isEmpty else { return [] }
            let claimed = try Self.claim(connection, queues: readable, arguments: arguments, state: state, all: queues)
            if !claimed.isEmpty { return claimed }
            let id = try connection.clientID()
            guard state.beginWait(client: id) else { return [] }
            defer { state.endWait() }
            _ = try connection.command(["BLPOP"] + readable.map { "\(namespace):wake:\($0)" } + [waitSeconds])
            return try Self.claim(connection, queues: readable, arguments: arguments, state: state, all: queues)
        }
    }

    func claim(max: Int, from queues: [String]) async throws -> [ClaimedEntry] {
        let (all, state) = (self.queues, self.state)
        let arguments = claimArguments(max: max)
        return try await claiming { connection throws(RedisError) in
            let readable = queues.filter { state.broken[$0] == nil }
            guard !readable.isEmpty else { return [] }
            return try Self.claim(connection, queues: readable, arguments: arguments, state: state, all: all)
        }
    }

    /// The claim script's arguments for a call taking up to `max`, under the owner to claim under now.
    private func claimArguments(max: Int) -> [[UInt8]] {
        var arguments = self.arguments
        arguments[1] = Array(String(max).utf8)
        arguments[8] = owner.current()
        return arguments
    }

    /// Runs `body` on the fetcher's connection. After a call that failed, claims go under a new
    /// owner: what it took, if anything, the worker never saw.
    private func claiming(_ body: @escaping @Sendable (RedisConnection) throws(RedisError) -> [ClaimedEntry]) async throws -> [ClaimedEntry] {
        do {
            return try await thread.run(body)
        } catch {
            owner.advance()
            throw error
        }
    }

    private static func claim(_ connection: RedisConnection, queues: [String], arguments: [[UInt8]], state: FetchState,
                              all: [String]) throws(RedisError) -> [ClaimedEntry] {
        let flat = try connection.evaluate(RedisScripts.claim, keys: queues, arguments: arguments).array(for: "claim") ?? []
        // The call's token prefix, then per queue its name, how many, and a pair per entry (see
        // ``RedisScripts/claim``): the N-th pair is claim `prefix N`.
        guard let first = flat.first else { return [] }
        let prefix = try first.text(for: "claim")
        let firstOrder = Self.order(of: prefix + "0")
        var entries: [ClaimedEntry] = []
        entries.reserveCapacity(flat.count / 2)
        var index = 1
        var position = 0
        var sawBroken = false
        func cutShort() -> RedisError {
            RedisError(code: .unexpectedReply, message: "a claim reply cut short at element \(index + 1) of \(flat.count)", command: "claim")
        }
        while index < flat.count {
            guard index + 1 < flat.count else { throw cutShort() }
            let queue = try flat[index].text(for: "claim")
            let count = try flat[index + 1].text(for: "claim")
            if count == "!" {
                // A queue key that is not a list: the script skipped it; set it aside (below).
                sawBroken = true
                index += 3
                continue
            }
            guard let taken = Int(count), taken >= 0, taken <= flat.count, index + 1 + 2 * taken < flat.count else { throw cutShort() }
            index += 2
            for _ in 0..<taken {
                position += 1
                let id = try flat[index].bytes(for: "claim")
                let second = Data(try flat[index + 1].bytes(for: "claim"))
                index += 2
                if id.first == UInt8(ascii: "\n") {
                    // Kept aside by the script (dead-lettered under this key): no claim.
                    entries.append(ClaimedEntry(token: "", queue: queue, raw: Data(),
                                                jobID: JobID(rawValue: String(decoding: id.dropFirst(), as: UTF8.self)),
                                                keptAside: String(decoding: second, as: UTF8.self)))
                } else {
                    entries.append(ClaimedEntry(token: prefix + String(position), queue: queue, raw: second,
                                                jobID: JobID(rawValue: String(decoding: id, as: UTF8.self)),
                                                order: firstOrder > 0 && position < 1_000_000 ? firstOrder + Int64(position) : 0))
                }
            }
        }
        if sawBroken { try checkTypes(connection, queues: all, state: state) }
        return entries
    }

    /// A claim token's place in the server's order: tokens are `WORKER/SEQ.N`, SEQ counting the
    /// claim calls of the namespace (`NS:seq`) and N the position in the call. 0 if not so.
    static func order(of token: String) -> Int64 {
        var token = token
        return token.withUTF8 { bytes -> Int64 in
            guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return 0 }
            var call: Int64 = 0, position: Int64 = 0, seenDot = false
            for byte in bytes[(slash + 1)...] {
                if byte == UInt8(ascii: ".") && !seenDot { seenDot = true; continue }
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return 0 }
                let digit = Int64(byte - UInt8(ascii: "0"))
                if seenDot { position = position &* 10 &+ digit } else { call = call &* 10 &+ digit }
            }
            guard seenDot, position < 1_000_000, call < Int64.max / 1_000_000 else { return 0 }
            return call * 1_000_000 + position
        }
    }

    private static func checkTypes(_ connection: RedisConnection, queues: [String], state: FetchState) throws(RedisError) {
        var broken: [String: String] = [:]
        for (queue, reply) in zip(queues, try connection.pipeline(queues.map { [Array("TYPE".utf8), Array($0.utf8)] })) {
            guard case .status(let kind) = reply else { continue }
            if kind != "list" && kind != "none" { broken[queue] = "holds a \(kind), not a list" }
        }
        state.setBroken(broken, recheckAt: .now + brokenRecheck)
    }

    func interrupt() {
        guard let client = state.interrupt() else { return }
        // From another connection: CLIENT UNBLOCK makes the waiting BLPOP return nil at once.
        control.submit { session in
            _ = try? session.connection().command(["CLIENT", "UNBLOCK", String(client)])
        }
    }

    func close() async {
        thread.stop()
    }
}

/// A fetcher's lease owner: `BASE`, then `BASE.1`, `BASE.2`, … (see ``RedisJobFetcher``).
private final class LeaseOwner: Sendable {
    private let base: String
    private let lifetime: Duration
    private let state: Mutex<(generation: Int, since: ContinuousClock.Instant, name: [UInt8])>

    init(base: String, lifetime: Duration) {
        self.base = base
        self.lifetime = lifetime
        state = Mutex((0, .now, Array(base.utf8)))
    }

    /// The owner to claim under: a new one once this one is `lifetime` old.
    func current() -> [UInt8] {
        let now = ContinuousClock.now
        return state.withLock { state in
            if now - state.since >= lifetime { advance(&state, now: now) }
            return state.name
        }
    }

    /// Claims go under a new owner from now on (a call failed: what it took, if anything, is unseen).
    func advance() {
        let now = ContinuousClock.now
        state.withLock { advance(&$0, now: now) }
    }

    private func advance(_ state: inout (generation: Int, since: ContinuousClock.Instant, name: [UInt8]), now: ContinuousClock.Instant) {
        state.generation += 1
        state.since = now
        state.name = Array("\(base).\(state.generation)".utf8)
    }
}

/// Whether a fetcher waits in BLPOP (and as which client), whether it was told to stop waiting,
/// and which of its queues are set aside as broken.
private final class FetchState: Sendable {
    private let state = Mutex<(blockedClient: Int64?, interrupted: Bool)>((nil, false))
    private let brokenState = Mutex<(queues: [String: String], recheckAt: ContinuousClock.Instant?)>(([:], nil))

    var broken: [String: String] { brokenState.withLock { $0.queues } }

    /// Whether broken queues are due for another look.
    func brokenDue(now: ContinuousClock.Instant) -> Bool {
        brokenState.withLock { state in
            guard !state.queues.isEmpty, let at = state.recheckAt else { return false }
            return now >= at
        }
    }

    func setBroken(_ queues: [String: String], recheckAt: ContinuousClock.Instant) {
        brokenState.withLock { $0 = (queues, queues.isEmpty ? nil : recheckAt) }
    }

    /// Records that `client` is about to wait; `false` when it must not, having been interrupted.
    func beginWait(client: Int64) -> Bool {
        state.withLock { state in
            guard !state.interrupted else { return false }
            state.blockedClient = client
            return true
        }
    }

    func endWait() {
        state.withLock { $0.blockedClient = nil }
    }

    /// The client waiting in BLPOP now, if any.
    var waitingClient: Int64? { state.withLock { $0.blockedClient } }

    /// Marks the fetcher interrupted; returns the client to unblock if it is waiting now.
    func interrupt() -> Int64? {
        state.withLock { state in
            state.interrupted = true
            return state.blockedClient
        }
    }
}
