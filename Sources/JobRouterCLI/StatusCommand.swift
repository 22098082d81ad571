import ArgumentParser
import Foundation
import JobRouter
import JobRouterPostgres
import JobRouterRedis

/// `jobrouter status`: queues (depth, oldest, in flight, scheduled, dead, last-minute rate), groups
/// (busy / capacity) and live workers; once, as JSON, or live (`--watch`).
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show each queue's depth, oldest job, in-flight, scheduled and dead jobs and rate; the groups' load; the live workers (--watch: live).")

    @OptionGroup var options: CommonOptions

    @Flag(name: .long, help: "Print JSON instead of tables (with the per-minute throughput series).")
    var json = false

    @Flag(name: .long, help: "Redraw every --interval until q or Ctrl-C (a full-screen view on a terminal; a block per interval otherwise).")
    var watch = false

    @Option(name: .long, help: ArgumentHelp("How often --watch redraws.", valueName: "duration"))
    var interval = "1s"

    @Option(name: .long, help: "Minutes of throughput history in --json.")
    var minutes = 60

    func validate() throws {
        if watch && json { throw ValidationError("--watch and --json do not go together") }
        guard (1...1500).contains(minutes) else { throw ValidationError("--minutes: \(minutes) is not from 1 to 1500 (counts are kept 25 hours)") }
    }

    func run() async throws {
        try await CommandFailure.reporting {
            let configuration = try options.loadConfiguration()
            let driver = try options.makeDriver(configuration)
            // One connection for the ledger's and the outbox's lines, kept across --watch's redraws.
            let ledgerPool = configuration.postgres.flatMap { settings in
                settings.ledger || settings.outbox ? PostgresPool(settings: settings, applicationName: "jobrouter status", size: 1) : nil
            }
            guard watch else {
                print(try await Self.report(configuration, driver: driver, ledgerPool: ledgerPool, minutes: json ? minutes : 2).render(json: json))
                return
            }
            guard let every = DurationParser.parse(interval), every >= .milliseconds(100) else {
                throw CommandFailure("--interval: '\(interval)' is not a duration of 100ms or more (e.g. 500ms, 1s, 5s)")
            }
            try await StatusWatch(interval: every).run {
                do {
                    return try await Self.report(configuration, driver: driver, ledgerPool: ledgerPool, minutes: 2).table
                } catch {
                    return "redis \(driver.serverDescription): \(error)"
                }
            }
        }
    }

    /// Reads everything `status` shows.
    static func report(_ configuration: RouterConfiguration, driver: RedisQueueDriver, ledgerPool: PostgresPool?,
                       minutes: Int) async throws -> StatusReport {
        let statistics = try await driver.statistics(queues: configuration.declaredQueues.sorted())
        var ledger: LedgerStatus?
        var outbox: OutboxStatus?
        if let ledgerPool, let settings = configuration.postgres {
            if settings.ledger { ledger = try await LedgerStatus.read(driver: driver, pool: ledgerPool) }
            if settings.outbox { outbox = await OutboxStatus.read(pool: ledgerPool, schema: settings.schema) }
        }
        let now = Date()
        let throughput = try await driver.throughput(minutes: minutes, now: now)
        var report = StatusReport(configuration: configuration, server: driver.serverDescription,
                                  statistics: statistics, now: now, ledger: ledger, outbox: outbox, throughput: throughput)
        report.paused = try await driver.pausedQueues()
        let limiters = configuration.limiters.map(\.name)
        if !limiters.isEmpty { report.limiters = try await driver.limiterStatistics(limiters, now: now) }
        return report
    }
}

/// The ledger's side of `status`: records waiting in Redis, records dropped by the bound, and
/// whether PostgreSQL answers.
struct LedgerStatus {
    var backlog: AttemptLogBacklog
    var postgres: String
    /// Why PostgreSQL did not answer, when it did not.
    var postgresError: String?

    /// The backlog from Redis, and whether PostgreSQL answers through `pool`.
    static func read(driver: RedisQueueDriver, pool: PostgresPool) async throws -> LedgerStatus {
        let backlog = try await RedisAttemptLog.backlog(over: driver.shards)
        var error: String?
        do {
            _ = try await pool.withConnection { try $0.query("SELECT 1") }
        } catch let failure {
            error = "\(failure)"
        }
        return LedgerStatus(backlog: backlog, postgres: pool.server, postgresError: error)
    }

    var line: String {
        var text = "ledger: \(backlog.waiting) record(s) waiting in redis"
        if backlog.dropped > 0 { text += ", \(backlog.dropped) DROPPED (ledger_buffer full)" }
        text += "; postgres \(postgres) " + (postgresError.map { "UNREACHABLE: \($0)" } ?? "reachable")
        return text
    }

    var json: JSONValue {
        .object([
            "waiting": .integer(Int64(backlog.waiting)), "dropped": .integer(Int64(backlog.dropped)),
            "postgres": .string(postgres), "postgres_reachable": .bool(postgresError == nil),
            "postgres_error": postgresError.map(JSONValue.string) ?? .null,
        ])
    }
}

/// The outbox's side of `status`: rows waiting for the relay, the oldest one's age, and rows kept
/// because they could not be relayed (with their reasons, in the table).
struct OutboxStatus {
    var waiting = 0
    var oldest: Duration = .zero
    var failed = 0
    /// Why the figures could not be read, when they could not.
    var error: String?

    static func read(pool: PostgresPool, schema: String) async -> OutboxStatus {
        do {
            let rows = try await pool.withConnection { connection in
                try connection.query("""
                    SELECT count(*) FILTER (WHERE failed_at IS NULL) AS waiting,
                           coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE failed_at IS NULL)), 0) AS oldest,
                           count(*) FILTER (WHERE failed_at IS NOT NULL) AS failed
                    FROM \(schema).outbox
                    """)
            }
            return OutboxStatus(waiting: rows.int("waiting") ?? 0, oldest: .saturating(seconds: rows.double("oldest") ?? 0),
                                failed: rows.int("failed") ?? 0)
        } catch {
            return OutboxStatus(error: "\(error)")
        }
    }

    var line: String {
        if let error { return "outbox: UNREADABLE: \(error)" }
        var text = "outbox: \(waiting) row(s) waiting for the relay"
        if waiting > 0 { text += ", oldest \(StatusReport.age(oldest))" }
        if failed > 0 { text += "; \(failed) FAILED (kept with their reason: failed_at and error in the outbox table)" }
        return text
    }

    var json: JSONValue {
        .object([
            "waiting": .integer(Int64(waiting)), "oldest_age_seconds": .number(oldest.inSeconds),
            "failed": .integer(Int64(failed)), "error": error.map(JSONValue.string) ?? .null,
        ])
    }
}

/// What `status` prints, from figures already read.
struct StatusReport {
    let configuration: RouterConfiguration
    let server: String
    let statistics: QueueStatistics
    let now: Date
    var ledger: LedgerStatus?
    var outbox: OutboxStatus?
    var throughput: ThroughputSeries?
    /// Queues paused with `jobrouter pause`.
    var paused: Set<String> = []
    /// Figures of every limiter the configuration declares.
    var limiters: [String: LimiterStatistics] = [:]

    private var secondsIntoMinute: Double { now.timeIntervalSince1970.truncatingRemainder(dividingBy: 60) }

    /// Each group's starvation bounds: (group, queue, bound, the queue's oldest job's age).
    private var bounds: [(group: String, queue: String, bound: Duration, oldest: Duration?)] {
        groups.flatMap { group in
            group.queues.compactMap { queue in
                group.maxWait[queue].map { (group.name, queue, $0, statistics.queues.first { $0.name == queue }?.oldestAge) }
            }
        }
    }

    private var limiterLines: [String] {
        let rows = configuration.limiters.map { limiter -> [String] in
            let figures = limiters[limiter.name]
            let rate = figures.map { String(format: "%.1f/s", $0.rate(secondsIntoMinute: secondsIntoMinute)) } ?? "-"
            return [limiter.name, limiter.limit, rate, figures.map { String($0.deferred) } ?? "-", figures.map { String($0.keysActive) } ?? "-"]
        }
        var lines = rows.isEmpty ? [] : Self.table(header: ["LIMITER", "LIMIT", "NOW", "DEFERRED", "KEYS"], rows: rows, rightAligned: [2, 3, 4])
        for bound in bounds {
            let oldest = bound.oldest.map(Self.age) ?? "-"
            let over = (bound.oldest ?? .zero) > bound.bound ? "  OVER" : ""
            lines.append("max_wait \(LogEscaping.escape(bound.queue)) (group \(bound.group)): oldest \(oldest) of \(DurationParser.format(bound.bound))\(over)")
        }
        return lines
    }

    private var limiterJSON: JSONValue {
        .array(configuration.limiters.map { limiter in
            let figures = limiters[limiter.name]
            return .object([
                "name": .string(limiter.name), "limit": .string(limiter.limit),
                "rate_per_second": figures.map { .number($0.rate(secondsIntoMinute: secondsIntoMinute)) } ?? .null,
                "deferred": figures.map { .integer(Int64($0.deferred)) } ?? .null,
                "keys_active": figures.map { .integer(Int64($0.keysActive)) } ?? .null,
            ])
        })
    }

    func render(json: Bool) -> String { json ? self.json : table }

    /// Jobs processed (and failed) in the last 60 s, from the cluster's per-minute counts.
    private func rate(_ queue: String) -> ThroughputSeries.Counts? {
        throughput?.lastMinute(queue: queue, now: now)
    }

    /// Jobs each group runs now, over its capacity (the concurrency of each live worker running it,
    /// as it reports it: autoscaled groups change theirs).
    private func load(_ group: WorkerGroupConfiguration) -> (busy: Int, capacity: Int) {
        var busy = 0, workers = 0, capacity = 0
        for worker in liveWorkers {
            guard case .array(let names)? = worker.description?["groups"], names.contains(.string(group.name)) else { continue }
            workers += 1
            busy += worker.description?["busy"]?[group.name]?.intValue ?? 0
            capacity += worker.description?["concurrency"]?[group.name]?.intValue ?? group.concurrency
        }
        return (busy, capacity)
    }

    /// `8`, or for an autoscaled group `2-64 auto`.
    private func concurrency(_ group: WorkerGroupConfiguration) -> String {
        guard let scaling = group.scaling else { return String(group.concurrency) }
        return "\(scaling.min)-\(scaling.max) auto"
    }

    private var groups: [WorkerGroupConfiguration] {
        configuration.groups.keys.sorted().compactMap { configuration.groups[$0] }
    }

    private func readers(of queue: String) -> [String] {
        groups.filter { $0.queues.contains(queue) }.map(\.name)
    }

    /// Workers whose description has not lapsed (they heartbeat).
    private var liveWorkers: [QueueStatistics.Worker] {
        statistics.workers.filter { $0.description != nil }
    }

    var json: String {
        let queues: [JSONValue] = statistics.queues.map { queue in
            var fields: [String: JSONValue] = [
                "name": .string(queue.name), "depth": .integer(Int64(queue.depth)),
                "in_flight": .integer(Int64(queue.inFlight)), "scheduled": .integer(Int64(queue.scheduled)),
                "dead": .integer(Int64(queue.dead)), "groups": .array(readers(of: queue.name).map(JSONValue.string)),
            ]
            fields["oldest_age_ms"] = queue.oldestAge.map { .integer($0.inMilliseconds) } ?? .null
            if let rate = rate(queue.name) {
                fields["processed_last_minute"] = .integer(Int64(rate.processed))
                fields["failed_last_minute"] = .integer(Int64(rate.failed))
            }
            fields["broken"] = queue.broken.map(JSONValue.string) ?? .null
            fields["paused"] = .bool(paused.contains(queue.name))
            return .object(fields)
        }
        let groupValues: [JSONValue] = groups.map { group in
            let load = load(group)
            return .object(["name": .string(group.name), "queues": .array(group.queues.map(JSONValue.string)),
                            "concurrency": .integer(Int64(group.concurrency)), "busy": .integer(Int64(load.busy)),
                            "capacity": .integer(Int64(load.capacity)),
                            "autoscale": group.scaling.map { .object(["min": .integer(Int64($0.min)), "max": .integer(Int64($0.max)),
                                                                      "target_wait_ms": .integer($0.targetWait.inMilliseconds)]) } ?? .null])
        }
        let workers: [JSONValue] = liveWorkers.map { worker in
            var fields: [String: JSONValue] = ["id": .string(worker.id), "last_heartbeat": .string(Timestamp.format(worker.lastHeartbeat))]
            if case .object(let description)? = worker.description {
                fields.merge(description) { current, _ in current }
            }
            return .object(fields)
        }
        let root: [String: JSONValue] = [
            "redis": .string(server), "queues": .array(queues), "groups": .array(groupValues),
            "workers": .array(workers), "dead_trimmed": .integer(Int64(statistics.trimmedDead)),
            "dead_by_type": .object(statistics.deadByType.mapValues { .integer(Int64($0)) }),
            "ledger": ledger?.json ?? .null,
            "outbox": outbox?.json ?? .null,
            "throughput": throughput.map(Self.json) ?? .null,
            "limiters": limiterJSON,
            "max_wait": .array(bounds.map { bound in
                .object(["group": .string(bound.group), "queue": .string(bound.queue), "max_wait_ms": .integer(bound.bound.inMilliseconds),
                         "oldest_age_ms": bound.oldest.map { .integer($0.inMilliseconds) } ?? .null])
            }),
        ]
        return JSONValue.object(root).jsonText
    }

    /// `{"minutes": [...], "queues": {name: [{"minute", "processed", "failed"}…]}, "types": {…}}`,
    /// one entry per minute (oldest first; minutes since the epoch, and the time as text).
    static func json(_ series: ThroughputSeries) -> JSONValue {
        func rows(_ byName: [String: [Int: ThroughputSeries.Counts]]) -> JSONValue {
            .object(byName.mapValues { counts in
                .array(series.minutes.map { minute in
                    let count = counts[minute] ?? .init()
                    return .object(["minute": .integer(Int64(minute)),
                                    "at": .string(Timestamp.format(Date(timeIntervalSince1970: Double(minute) * 60))),
                                    "processed": .integer(Int64(count.processed)), "failed": .integer(Int64(count.failed))])
                })
            })
        }
        return .object(["minutes": .array(series.minutes.map { .integer(Int64($0)) }),
                        "queues": rows(series.queues), "types": rows(series.types)])
    }

    var table: String {
        var lines = ["redis \(server)", ""]
        let queueRows = statistics.queues.map { queue -> [String] in
            let rate = rate(queue.name)
            let processed: String = rate.map { String($0.processed) } ?? "-"
            let failed: String = rate.map { String($0.failed) } ?? "-"
            var depth: String = queue.broken == nil ? String(queue.depth) : "BROKEN"
            if paused.contains(queue.name) { depth += " PAUSED" }
            let oldest: String = queue.oldestAge.map(Self.age) ?? "-"
            let readBy: String = readers(of: queue.name).joined(separator: ", ").nonEmpty ?? "(no group)"
            return [LogEscaping.escape(queue.name), depth, oldest, String(queue.inFlight), String(queue.scheduled), String(queue.dead),
                    processed, failed, readBy]
        }
        lines += Self.table(header: ["QUEUE", "DEPTH", "OLDEST", "IN FLIGHT", "SCHEDULED", "DEAD", "PROCESSED/MIN", "FAILED/MIN", "READ BY"],
                            rows: queueRows, rightAligned: [1, 3, 4, 5, 6, 7])
        for queue in statistics.queues {
            if let broken = queue.broken { lines.append("queue \(LogEscaping.escape(queue.name)) is broken: \(broken); no worker can read it") }
        }
        if !statistics.deadByType.isEmpty {
            let byType = statistics.deadByType.keys.sorted().map { "\(LogEscaping.escape($0)) \(statistics.deadByType[$0] ?? 0)" }
            lines.append("dead by type: " + byType.joined(separator: ", "))
        }
        lines.append("")
        let groupRows = groups.map { group -> [String] in
            let load = load(group)
            return [group.name, load.capacity == 0 ? "-" : "\(load.busy)/\(load.capacity)", concurrency(group), DurationParser.format(group.lease),
                    group.queues.joined(separator: " > ")]
        }
        lines += Self.table(header: ["GROUP", "BUSY", "CONCURRENCY", "LEASE", "QUEUES"], rows: groupRows, rightAligned: [1, 2])
        lines.append("")
        let limits = limiterLines
        if !limits.isEmpty {
            lines += limits
            lines.append("")
        }
        if liveWorkers.isEmpty {
            lines.append("no worker process is running")
        } else {
            let workerRows = liveWorkers.map { worker -> [String] in
                let groups = worker.description?["groups"].map { value -> String in
                    guard case .array(let names) = value else { return "" }
                    return names.compactMap(\.stringValue).joined(separator: ", ")
                } ?? ""
                let inFlight = worker.description?["in_flight"]?.intValue.map(String.init) ?? "-"
                let stuck = worker.description?["stuck_handlers"]?.intValue.map(String.init) ?? "0"
                let ago = Duration.saturating(seconds: max(0, now.timeIntervalSince(worker.lastHeartbeat)))
                let host = worker.id.split(separator: ":").first.map(String.init) ?? "-"
                let pid = worker.description?["pid"]?.intValue.map(String.init) ?? "-"
                let uptime = worker.description?["started_at"]?.stringValue.flatMap(Timestamp.parse)
                    .map { Self.age(Duration.saturating(seconds: max(0, now.timeIntervalSince($0)))) } ?? "-"
                return [LogEscaping.escape(worker.id), LogEscaping.escape(host), pid, uptime, groups, inFlight, stuck, Self.age(ago) + " ago"]
            }
            lines += Self.table(header: ["WORKER", "HOST", "PID", "UP", "GROUPS", "IN FLIGHT", "STUCK", "HEARTBEAT"], rows: workerRows,
                                rightAligned: [2, 3, 5, 6])
        }
        if let ledger {
            lines.append("")
            lines.append(ledger.line)
        }
        if let outbox {
            if ledger == nil { lines.append("") }
            lines.append(outbox.line)
        }
        if statistics.trimmedDead > 0 {
            lines.append("")
            lines.append("\(statistics.trimmedDead) dead job(s) were trimmed over time (max_dead \(configuration.maxDead))")
        }
        return lines.joined(separator: "\n")
    }

    static func age(_ duration: Duration) -> String {
        let seconds = duration.inSeconds
        if seconds < 1 { return "\(duration.inMilliseconds)ms" }
        if seconds < 120 { return String(format: "%.0fs", seconds) }
        if seconds < 7200 { return String(format: "%.0fm", seconds / 60) }
        return String(format: "%.1fh", seconds / 3600)
    }

    static func table(header: [String], rows: [[String]], rightAligned: Set<Int>) -> [String] {
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) }
        }
        func render(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                let padding = String(repeating: " ", count: max(0, widths[index] - cell.count))
                if index == cells.count - 1 { return cell }
                return rightAligned.contains(index) ? padding + cell : cell + padding
            }.joined(separator: "  ")
        }
        return [render(header)] + rows.map(render)
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
