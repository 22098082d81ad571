import Foundation
import JobRouter
import JobRouterRedis

/// The dashboard's pages, rendered on the server from figures already read. Every value from
/// outside goes through ``HTML``'s escaping.
struct DashboardPages {
    let configuration: RouterConfiguration
    let csrf: String
    /// Whether the ledger's pages exist (PostgreSQL configured).
    let withHistory: Bool

    enum Section: String, CaseIterable {
        case overview = "Overview", queues = "Queues", workers = "Workers", scheduled = "Scheduled", dead = "Dead", history = "History"

        var path: String {
            switch self {
            case .overview: "/"
            case .queues: "/queues"
            case .workers: "/workers"
            case .scheduled: "/scheduled"
            case .dead: "/dead"
            case .history: "/history"
            }
        }
    }

    /// A page; `live` ones replace their content with a fresh copy every 2 s (app.js).
    func layout(_ section: Section?, title: String, flash: String? = nil, live: Bool = false, _ body: HTML) -> HTML {
        let links = Section.allCases.filter { withHistory || $0 != .history }.map { item -> HTML in
            item == section ? "<a class=\"here\" href=\"\(item.path)\">\(item.rawValue)</a>" : "<a href=\"\(item.path)\">\(item.rawValue)</a>"
        }
        let notice: HTML = flash.map { "<div class=\"flash\">\($0)</div>" } ?? ""
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(title) · JobRouter</title><link rel="stylesheet" href="/assets/app.css"></head>
            <body><header><strong>JobRouter</strong><nav>\(links)</nav></header>
            <main\(live ? " data-refresh" : "")><h1>\(title)</h1>\(notice)\(body)</main>
            <script src="/assets/app.js"></script></body></html>
            """
    }

    /// A form posting to `action` with the CSRF token; `confirm` adds a required checkbox.
    func button(_ label: String, action: String, danger: Bool = false, fields: [(String, String)] = [], confirm: String? = nil) -> HTML {
        let hidden = fields.map { name, value -> HTML in "<input type=\"hidden\" name=\"\(name)\" value=\"\(value)\">" }
        let check: HTML = confirm.map { "<label><input type=\"checkbox\" name=\"confirm\" value=\"yes\" required> \($0)</label> " } ?? ""
        return """
            <form class="inline" method="post" action="\(action)"><input type="hidden" name="csrf" value="\(csrf)">\(hidden)\(check)<button\(danger ? " class=\"danger\"" : "") type="submit">\(label)</button></form>
            """
    }

    // MARK: Overview

    func overview(_ statistics: QueueStatistics, throughput: ThroughputSeries, day: ThroughputSeries, now: Date, paused: Set<String> = []) -> HTML {
        let hour = totals(throughput)
        let midnight = ThroughputCount.minute(of: now) / 1440 * 1440
        let today = totals(day, from: midnight)
        let waiting = statistics.queues.map(\.depth).reduce(0, +)
        let cards: HTML = """
            <div class="cards">
            <div class="card"><b data-live="waiting">\(waiting)</b><span>waiting</span></div>
            <div class="card"><b data-live="in_flight">\(statistics.queues.map(\.inFlight).reduce(0, +))</b><span>running</span></div>
            <div class="card"><b data-live="scheduled">\(statistics.queues.map(\.scheduled).reduce(0, +))</b><span>scheduled</span></div>
            <div class="card"><b data-live="dead">\(statistics.queues.map(\.dead).reduce(0, +))</b><span>dead</span></div>
            <div class="card"><b data-live="processed_hour">\(hour.processed)</b><span>processed, last hour</span></div>
            <div class="card"><b data-live="failed_hour" class="bad">\(hour.failed)</b><span>failed, last hour</span></div>
            <div class="card"><b>\(today.processed)</b><span>processed today (UTC)</span></div>
            <div class="card"><b class="bad">\(today.failed)</b><span>failed today (UTC)</span></div>
            </div>
            """
        return layout(.overview, title: "Overview", """
            \(cards)
            <h2>Jobs per minute, last hour <span class="muted">(processed, failed in red)</span></h2>
            \(chart(throughput, bucket: 1))
            <h2>Jobs per 15 minutes, last 24 hours</h2>
            \(chart(day, bucket: 15))
            <h2>Queues</h2>
            \(queueTable(statistics, throughput: throughput, now: now, paused: paused))
            """)
    }

    /// Jobs processed and failed in `series` (from minute `from` on, minutes since the epoch).
    func totals(_ series: ThroughputSeries, from: Int = 0) -> ThroughputSeries.Counts {
        var total = ThroughputSeries.Counts()
        for minutes in series.queues.values {
            for (minute, counts) in minutes where minute >= from {
                total.processed += counts.processed
                total.failed += counts.failed
            }
        }
        return total
    }

    /// Bars of `bucket` minutes each as inline SVG (no script, no external chart library).
    func chart(_ series: ThroughputSeries, bucket: Int) -> HTML {
        let perMinute = stride(from: 0, to: series.minutes.count, by: max(1, bucket)).map { start -> ThroughputSeries.Counts in
            var counts = ThroughputSeries.Counts()
            for minute in series.minutes[start..<min(start + max(1, bucket), series.minutes.count)] {
                for minutes in series.queues.values {
                    counts.processed += minutes[minute]?.processed ?? 0
                    counts.failed += minutes[minute]?.failed ?? 0
                }
            }
            return counts
        }
        let peak = max(1, perMinute.map { $0.processed + $0.failed }.max() ?? 1)
        let width = 10
        let bars = perMinute.enumerated().map { index, counts -> HTML in
            let processed = counts.processed * 120 / peak
            let failed = counts.failed * 120 / peak
            return """
                <rect class="p" x="\(index * width)" y="\(130 - processed - failed)" width="\(width - 2)" height="\(processed)"><title>\(counts.processed) processed</title></rect><rect class="f" x="\(index * width)" y="\(130 - failed)" width="\(width - 2)" height="\(failed)"><title>\(counts.failed) failed</title></rect>
                """
        }
        return "<svg class=\"chart\" viewBox=\"0 0 \(perMinute.count * width) 130\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"jobs per minute; peak \(peak)\">\(bars)</svg>"
    }

    func queueTable(_ statistics: QueueStatistics, throughput: ThroughputSeries, now: Date, paused: Set<String> = []) -> HTML {
        let rows = statistics.queues.map { queue -> HTML in
            let rate = throughput.lastMinute(queue: queue.name, now: now)
            let readers = configuration.groups.values.filter { $0.queues.contains(queue.name) }.map(\.name).sorted().joined(separator: ", ")
            let pausedMark: HTML = paused.contains(queue.name) ? " <span class=\"bad\">PAUSED</span>" : ""
            let broken: HTML = queue.broken.map { " <span class=\"bad\">BROKEN: \($0)</span>\(pausedMark)" } ?? pausedMark
            return """
                <tr><td><a href="/queues/\(HTML.pathSegment(queue.name))">\(queue.name)</a>\(broken)</td><td class="n">\(queue.depth)</td>\
                <td class="n">\(queue.oldestAge.map(Self.age) ?? "-")</td><td class="n">\(queue.inFlight)</td><td class="n">\(queue.scheduled)</td>\
                <td class="n">\(queue.dead)</td><td class="n">\(rate.processed)</td><td class="n">\(rate.failed)</td><td>\(readers.isEmpty ? "-" : readers)</td></tr>
                """
        }
        return """
            <table><tr><th>queue</th><th class="n">waiting</th><th class="n">oldest</th><th class="n">running</th><th class="n">scheduled</th>\
            <th class="n">dead</th><th class="n">done/min</th><th class="n">failed/min</th><th>groups</th></tr>\(rows)</table>
            """
    }

    // MARK: Queues

    func queues(_ statistics: QueueStatistics, throughput: ThroughputSeries, now: Date, paused: Set<String> = []) -> HTML {
        layout(.queues, title: "Queues", queueTable(statistics, throughput: throughput, now: now, paused: paused))
    }

    func queue(_ name: String, depth: Int, entries: [String], page: Int, pageSize: Int, paused: Bool = false) -> HTML {
        let rows = entries.enumerated().map { offset, entry -> HTML in
            let job = try? JSONValue.parse(Data(entry.utf8))
            return """
                <tr><td class="n">\(page * pageSize + offset + 1)</td><td>\(job?["id"]?.stringValue)</td><td>\(job?["type"]?.stringValue)</td>\
                <td>\(job?["enqueued_at"]?.stringValue)</td><td><pre>\(entry)</pre></td></tr>
                """
        }
        let pages = max(1, (depth + pageSize - 1) / pageSize)
        let previous: HTML = page > 0 ? "<a href=\"?page=\(page - 1)\">← newer</a> " : ""
        let next: HTML = page + 1 < pages ? " <a href=\"?page=\(page + 1)\">older →</a>" : ""
        let state: HTML = paused
            ? "<p><span class=\"bad\">PAUSED</span>: workers claim nothing from it. \(button("Resume", action: "/queues/\(HTML.pathSegment(name))/resume"))</p>"
            : "<p>\(button("Pause", action: "/queues/\(HTML.pathSegment(name))/pause", danger: true)) <span class=\"muted\">workers stop claiming from it at once; running jobs finish</span></p>"
        return layout(.queues, title: "Queue \(name)", """
            \(state)
            <p>\(depth) waiting, head first. Page \(page + 1) of \(pages). \(previous)\(next)</p>
            <table><tr><th class="n">#</th><th>id</th><th>type</th><th>enqueued</th><th>entry as stored</th></tr>\(rows)</table>
            """)
    }

    // MARK: Workers

    func workers(_ statistics: QueueStatistics, running: [RunningJob], now: Date) -> HTML {
        let rows = statistics.workers.map { worker -> HTML in
            let description = worker.description
            let groups = description?["groups"].flatMap { value -> String? in
                guard case .array(let names) = value else { return nil }
                return names.compactMap(\.stringValue).joined(separator: ", ")
            }
            let heartbeat = Self.age(.saturating(seconds: max(0, now.timeIntervalSince(worker.lastHeartbeat))))
            return """
                <tr><td>\(worker.id)</td><td class="n">\(description?["pid"]?.intValue.map(String.init))</td><td>\(groups)</td>\
                <td>\(description?["started_at"]?.stringValue)</td><td class="n">\(description?["in_flight"]?.intValue.map(String.init))</td>\
                <td class="n">\(heartbeat) ago</td></tr>
                """
        }
        let body: HTML = rows.isEmpty ? "<p class=\"muted\">No worker process is heartbeating.</p>" : """
            <table><tr><th>worker</th><th class="n">pid</th><th>groups</th><th>started</th><th class="n">running</th><th class="n">heartbeat</th></tr>\(rows)</table>
            """
        // When each claim was taken, from its worker's last heartbeat (a claim newer than that shows "-").
        var claimedAt: [String: Date] = [:]
        for worker in statistics.workers {
            guard case .object(let claims)? = worker.description?["claimed_at"] else { continue }
            for (token, value) in claims { if let date = value.stringValue.flatMap(Timestamp.parse) { claimedAt[token] = date } }
        }
        let jobs = running.map { job -> HTML in
            let entry = try? JSONValue.parse(Data(job.entry.utf8))
            let runningFor = claimedAt[job.token].map { Self.age(.saturating(seconds: max(0, now.timeIntervalSince($0)))) }
            return """
                <tr><td><a href="/jobs/\(HTML.pathSegment(job.id))">\(job.id)</a></td><td>\(entry?["type"]?.stringValue)</td><td>\(job.queue)</td>\
                <td class="n">\(entry?["attempt"]?.intValue.map(String.init))</td><td class="n">\(runningFor)</td><td>\(job.worker)</td></tr>
                """
        }
        let runningTable: HTML = jobs.isEmpty ? "<p class=\"muted\">No job is running.</p>" : """
            <table><tr><th>job</th><th>type</th><th>queue</th><th class="n">attempt</th><th class="n">running for</th><th>worker</th></tr>\(jobs)</table>
            """
        return layout(.workers, title: "Workers", live: true, "\(body)<h2>Running now</h2>\(runningTable)")
    }

    // MARK: Scheduled

    /// The cron schedules: expression, zone, job, next fire times and the last run.
    func cronTable(_ states: [String: CronScheduleState], now: Date) -> HTML {
        let schedules = configuration.schedules.keys.sorted().compactMap { configuration.schedules[$0] }
        guard !schedules.isEmpty else { return "" }
        let rows = schedules.map { schedule -> HTML in
            let next = schedule.nextFires(after: now, count: 3).map { Timestamp.format($0) }.joined(separator: ", ")
            let last: HTML = states[schedule.name].map { state in
                "<a href=\"/jobs/\(HTML.pathSegment(state.jobID.rawValue))\">\(state.jobID.rawValue)</a> at \(Timestamp.format(state.firedAt))"
            } ?? "never"
            return """
                <tr><td>\(schedule.name)</td><td><code>\(schedule.cron.text)</code></td><td>\(schedule.zoneName)</td>\
                <td>\(schedule.type)</td><td>\(next.isEmpty ? "never" : next)</td><td>\(last)</td></tr>
                """
        }
        return """
            <h2>Cron schedules</h2>
            <table><tr><th>schedule</th><th>cron</th><th>zone</th><th>type</th><th>next (UTC)</th><th>last run</th></tr>\(rows)</table>
            """
    }

    func scheduled(_ jobs: [ScheduledJob], total: Int, page: Int, pageSize: Int, flash: String?, cron: HTML = "") -> HTML {
        let rows = jobs.map { job -> HTML in
            let entry = try? JSONValue.parse(Data(job.entry.utf8))
            let id = entry?["id"]?.stringValue ?? ""
            let fields = [("id", id), ("due", String(job.dueMilliseconds))]
            return """
                <tr><td>\(Timestamp.format(Date(timeIntervalSince1970: Double(job.dueMilliseconds) / 1000)))</td>\
                <td><a href="/jobs/\(HTML.pathSegment(id))">\(id)</a></td><td>\(entry?["type"]?.stringValue)</td><td>\(job.queue)</td>\
                <td class="n">\(entry?["attempt"]?.intValue.map(String.init))</td><td>\(entry?["last_error"]?.stringValue)</td>\
                <td>\(Self.excerpt(entry?["payload"]?.jsonText ?? "-"))</td>\
                <td>\(button("run now", action: "/scheduled/run", fields: fields)) \(button("delete", action: "/scheduled/delete", danger: true, fields: fields))</td></tr>
                """
        }
        let pages = max(1, (total + pageSize - 1) / pageSize)
        let previous: HTML = page > 0 ? "<a href=\"?page=\(page - 1)\">← sooner</a> " : ""
        let next: HTML = page + 1 < pages ? " <a href=\"?page=\(page + 1)\">later →</a>" : ""
        return layout(.scheduled, title: "Scheduled", flash: flash, """
            \(cron)
            <p>\(total) waiting for their time (delayed jobs, retries and deferred jobs), soonest first. Page \(page + 1) of \(pages). \(previous)\(next)</p>
            <table><tr><th>due</th><th>job</th><th>type</th><th>queue</th><th class="n">attempt</th><th>last error</th><th>payload</th><th></th></tr>\(rows)</table>
            """)
    }

    // MARK: Job

    func job(_ id: String, dead: StoredDeadLetter?, running: RunningJob?, waiting: WaitingJob?, searched: Int, attempts: [JobAttempt]?) -> HTML {
        var whereNow: HTML = "Not dead, not running, and not among the first \(searched) entries of any queue or of the schedule: finished, or waiting further back."
        var entry: String?
        if let waiting {
            if let position = waiting.position {
                whereNow = "Waiting in \(waiting.queue), \(position) job(s) ahead of it."
            } else {
                let due = Timestamp.format(Date(timeIntervalSince1970: Double(waiting.dueMilliseconds ?? 0) / 1000))
                whereNow = "Scheduled: due \(due), then to \(waiting.queue). <a href=\"/scheduled\">Run it now or delete it</a>."
            }
            entry = waiting.entry
        }
        if let dead {
            whereNow = "Dead: \(dead.reason ?? "-"). <a href=\"/dead/\(HTML.pathSegment(dead.id))\">Retry or delete it</a>."
            entry = dead.raw
        } else if let running {
            whereNow = "Running on \(running.worker) (queue \(running.queue))."
            entry = running.entry
        }
        let history: HTML
        if let attempts {
            history = attempts.isEmpty ? "<p class=\"muted\">The ledger has no attempt of this job.</p>" : attemptTable(attempts, linkIDs: false)
        } else {
            history = "<p class=\"muted\">Without PostgreSQL there is no ledger to show attempts from.</p>"
        }
        return layout(nil, title: "Job \(id)", """
            <p>\(whereNow)</p>\(entry.map { "<h2>Entry as stored</h2><pre>\($0)</pre>" as HTML } ?? "")
            <h2>Attempts (ledger)</h2>\(history)
            """)
    }

    // MARK: History

    func attemptTable(_ attempts: [JobAttempt], linkIDs: Bool) -> HTML {
        let rows = attempts.map { attempt -> HTML in
            let id: HTML = linkIDs ? "<a href=\"/jobs/\(HTML.pathSegment(attempt.id))\">\(attempt.id)</a>" : "\(attempt.id)"
            let outcome: HTML = attempt.outcome == "succeeded" ? "<span class=\"ok\">\(attempt.outcome)</span>"
                : "<span class=\"bad\">\(attempt.outcome)</span>"
            return """
                <tr><td>\(id)</td><td>\(attempt.type)</td><td>\(attempt.queue)</td><td class="n">\(attempt.attempt.map(String.init))</td>\
                <td>\(outcome)</td><td>\(attempt.finishedAt)</td><td class="n">\(attempt.wait.map(Self.seconds))</td>\
                <td class="n">\(attempt.run.map(Self.seconds))</td><td>\(attempt.worker)</td><td>\(attempt.error)</td></tr>
                """
        }
        return """
            <table><tr><th>job</th><th>type</th><th>queue</th><th class="n">attempt</th><th>outcome</th><th>finished</th>\
            <th class="n">wait</th><th class="n">run</th><th>worker</th><th>error</th></tr>\(rows)</table>
            """
    }

    func history(_ attempts: [JobAttempt], filter: JobAttemptFilter, stats: [JobTypeStats]) -> HTML {
        func options(_ name: String, _ values: [String], _ chosen: String?) -> HTML {
            let items = ([""] + values).map { value -> HTML in
                "<option value=\"\(value)\"\(value == (chosen ?? "") ? " selected" : "")>\(value.isEmpty ? "any \(name)" : value)</option>"
            }
            return "<select name=\"\(name)\">\(items)</select>"
        }
        let outcomes = ["succeeded", "failed", "dead", "requeued", "recovered", "malformed"]
        let statRows = stats.map { row -> HTML in
            """
            <tr><td>\(row.type)</td><td class="n">\(row.attempts)</td><td class="n">\(row.succeeded)</td><td class="n">\(row.retried)</td>\
            <td class="n">\(row.dead)</td><td class="n">\(row.wait.map { $0.map(Self.seconds) ?? "-" }.joined(separator: " / "))</td>\
            <td class="n">\(row.run.map { $0.map(Self.seconds) ?? "-" }.joined(separator: " / "))</td></tr>
            """
        }
        return layout(.history, title: "History", """
            <form method="get" action="/history">\(options("type", configuration.types.keys.sorted(), filter.type)) \
            \(options("outcome", outcomes, filter.outcome)) \(options("queue", configuration.declaredQueues.sorted(), filter.queue)) \
            <button type="submit">Filter</button></form>
            <h2>Per type, last 24 hours <span class="muted">(wait and run: p50 / p95 / p99)</span></h2>
            <table><tr><th>type</th><th class="n">attempts</th><th class="n">succeeded</th><th class="n">retried</th><th class="n">dead</th>\
            <th class="n">wait</th><th class="n">run</th></tr>\(statRows)</table>
            <h2>Latest attempts</h2>\(attemptTable(attempts, linkIDs: true))
            """)
    }

    /// The first 200 characters of `text`, with `…` when cut.
    static func excerpt(_ text: String) -> String {
        text.count > 200 ? String(text.prefix(200)) + "…" : text
    }

    /// `0.4ms`, `12ms`, `3.2s`.
    static func seconds(_ value: Double) -> String {
        if value < 0.01 { return String(Int((value * 10_000).rounded()) / 10) + "." + String(Int((value * 10_000).rounded()) % 10) + "ms" }
        if value < 1 { return String(Int((value * 1000).rounded())) + "ms" }
        return String(Int((value * 10).rounded()) / 10) + "." + String(Int((value * 10).rounded()) % 10) + "s"
    }

    // MARK: Dead

    func dead(_ letters: [StoredDeadLetter], type: String?, text: String?, total: Int, flash: String?) -> HTML {
        let types = Set(configuration.types.keys).union(letters.compactMap(\.type)).sorted()
        let options = ([""] + types).map { name -> HTML in
            "<option value=\"\(name)\"\(name == (type ?? "") ? " selected" : "")>\(name.isEmpty ? "any type" : name)</option>"
        }
        let filter: HTML = """
            <form method="get" action="/dead"><select name="type">\(options)</select> <input name="q" placeholder="reason contains" value="\(text ?? "")"> <button type="submit">Filter</button></form>
            """
        let rows = letters.map { letter -> HTML in
            let path = "/dead/" + HTML.pathSegment(letter.id)
            return """
                <tr><td><a href="\(path)">\(letter.jobID)</a></td><td>\(letter.type)</td><td>\(letter.queue)</td>\
                <td>\(Timestamp.format(letter.failedAt))</td><td>\(letter.reason)</td>\
                <td>\(button("retry", action: path + "/retry")) \(button("delete", action: path + "/delete", danger: true))</td></tr>
                """
        }
        let filterFields = [("type", type ?? ""), ("q", text ?? "")]
        let bulk: HTML = """
            <p>\(button("Retry all \(letters.count) shown", action: "/dead/retry-all", fields: filterFields, confirm: "yes, retry them all"))</p>
            <p><form class="inline" method="post" action="/dead/purge"><input type="hidden" name="csrf" value="\(csrf)">\
            Delete every dead job older than <input name="older_than" value="7d" size="5"> \
            <label><input type="checkbox" name="confirm" value="yes" required> yes, delete them</label> \
            <button class="danger" type="submit">Purge</button></form></p>
            """
        return layout(.dead, title: "Dead jobs", flash: flash, """
            \(filter)<p class="muted">\(letters.count) shown of \(total) kept.</p>
            \(rows.isEmpty ? "" : bulk)
            <table><tr><th>job</th><th>type</th><th>queue</th><th>died</th><th>reason</th><th></th></tr>\(rows)</table>
            """)
    }

    func deadLetter(_ letter: StoredDeadLetter) -> HTML {
        let path = "/dead/" + HTML.pathSegment(letter.id)
        return layout(.dead, title: "Dead job \(letter.jobID)", """
            <p>\(button("retry", action: path + "/retry")) \(button("delete", action: path + "/delete", danger: true))</p>
            <table><tr><th>type</th><td>\(letter.type)</td></tr><tr><th>queue</th><td>\(letter.queue)</td></tr>\
            <tr><th>died</th><td>\(Timestamp.format(letter.failedAt))</td></tr><tr><th>reason</th><td>\(letter.reason)</td></tr></table>
            <h2>Entry as stored</h2><pre>\(letter.raw ?? letter.rawBytes.map { "\($0.count) bytes, not UTF-8" } ?? "not kept")</pre>
            <h2>Record</h2><pre>\(letter.record.jsonText)</pre>
            """)
    }

    func login(failed: Bool) -> HTML {
        layout(nil, title: "Sign in", flash: failed ? "That is not the token." : nil, """
            <form method="post" action="/login"><label>Token <input type="password" name="token" autocomplete="current-password" required></label> <button type="submit">Sign in</button></form>
            """)
    }

    /// `42s`, `3m 5s`, `2h 10m`, `3d 4h`.
    static func age(_ duration: Duration) -> String {
        let seconds = Int(duration.inSeconds)
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m \(seconds % 60)s" }
        if seconds < 86_400 { return "\(seconds / 3600)h \(seconds % 3600 / 60)m" }
        return "\(seconds / 86_400)d \(seconds % 86_400 / 3600)h"
    }
}
