import Foundation
import Hummingbird
import JobRouter
import JobRouterRedis
import Logging
import NIOCore
import ServiceLifecycle

/// `jobrouter web`: a dashboard over one Redis, server-rendered, its assets in the binary.
///
/// - `GET /` overview (live numbers refresh from `GET /api/overview` every 2 s), `/queues`,
///   `/queues/NAME?page=N` (entries as stored, escaped), `/workers`, `/dead?type=T&q=TEXT`,
///   `/dead/KEY`
/// - `POST /dead/KEY/retry`, `/dead/KEY/delete`, `/dead/retry-all` (the filter's jobs; a
///   confirmation box), `/dead/purge` (older than; a confirmation box): each needs the page's
///   CSRF token (403 without)
/// - `GET /scheduled?page=N` with `POST /scheduled/run` and `/scheduled/delete`; `GET /jobs/ID`
///   (dead or running, and its ledger attempts); `GET /history?type=&outcome=&queue=` with per
///   type figures for the last 24 hours (with the ledger)
/// - every view costs a fixed number of Redis round trips, whatever the number of jobs.
///
/// See ``WebAccess`` for who may use it. A swift-service-lifecycle `Service`.
public struct DashboardServer: Service {
    /// Where it listens.
    public var address: HTTPListenAddress
    private let configuration: RouterConfiguration
    private let driver: RedisQueueDriver
    private let access: WebAccess
    private let history: (any JobHistory)?
    private let logger: Logger
    private let onListening: @Sendable (Int) async -> Void

    /// A dashboard for `configuration` reading through `driver` (and the ledger through `history`,
    /// when there is one); `onListening` gets the port.
    public init(address: HTTPListenAddress, configuration: RouterConfiguration, driver: RedisQueueDriver, access: WebAccess,
                history: (any JobHistory)? = nil, logger: Logger, onListening: @escaping @Sendable (Int) async -> Void = { _ in }) {
        self.address = address
        self.configuration = configuration
        self.driver = driver
        self.access = access
        self.history = history
        self.logger = logger
        self.onListening = onListening
    }

    /// Most dead jobs one list (or one "retry all") covers.
    static let deadPageLimit = 200
    /// Entries per page of a queue or of the schedule.
    static let queuePageSize = 50
    /// Most running jobs the workers page lists.
    static let runningLimit = 500
    /// How far into each queue and the schedule a job page looks (one bounded script).
    static let locateLimit = 10_000

    public func run() async throws {
        let onListening = onListening
        let application = Application(
            router: makeRouter(),
            configuration: ApplicationConfiguration(address: .hostname(address.host, port: address.port), serverName: "jobrouter"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
            logger: logger)
        try await application.run()
    }

    /// The routes, without a server.
    public func makeRouter() -> Hummingbird.Router<BasicRequestContext> {
        let router = Hummingbird.Router()
        router.add(middleware: WebMiddleware(access: access, logger: logger))
        let (configuration, driver, access, history) = (self.configuration, self.driver, self.access, self.history)
        let pages = DashboardPages(configuration: configuration, csrf: access.csrfToken, withHistory: history != nil)
        let queues = configuration.declaredQueues.sorted()

        router.get("/assets/app.css") { _, _ in Self.asset(Assets.css, type: "text/css; charset=utf-8") }
        router.get("/assets/app.js") { _, _ in Self.asset(Assets.script, type: "text/javascript; charset=utf-8") }

        router.get("/login") { _, _ in Self.page(pages.login(failed: false)) }
        router.post("/login") { request, _ -> Response in
            let form = try await Self.form(request)
            guard let session = access.logIn(candidate: form["token"] ?? "") else {
                return Self.page(pages.login(failed: true), status: .unauthorized)
            }
            return Response(status: .seeOther, headers: [
                .location: "/",
                .setCookie: "\(WebAccess.sessionCookie)=\(session); Path=/; HttpOnly; SameSite=Strict",
            ])
        }

        router.get("/") { _, _ -> Response in
            let now = Date()
            async let statistics = driver.statistics(queues: queues)
            async let hour = driver.throughput(minutes: 60, now: now)
            async let day = driver.throughput(minutes: 1440, now: now)
            async let paused = driver.pausedQueues()
            return Self.page(pages.overview(try await statistics, throughput: try await hour, day: try await day, now: now,
                                            paused: try await paused))
        }
        router.get("/api/overview") { _, _ -> Response in
            let now = Date()
            async let statistics = driver.statistics(queues: queues)
            async let hour = driver.throughput(minutes: 60, now: now)
            let (figures, series) = (try await statistics, try await hour)
            let totals = pages.totals(series)
            let body: JSONValue = .object([
                "waiting": .integer(Int64(figures.queues.map(\.depth).reduce(0, +))),
                "in_flight": .integer(Int64(figures.queues.map(\.inFlight).reduce(0, +))),
                "scheduled": .integer(Int64(figures.queues.map(\.scheduled).reduce(0, +))),
                "dead": .integer(Int64(figures.queues.map(\.dead).reduce(0, +))),
                "processed_hour": .integer(Int64(totals.processed)),
                "failed_hour": .integer(Int64(totals.failed)),
                "queues": .object(Dictionary(uniqueKeysWithValues: figures.queues.map { ($0.name, JSONValue.integer(Int64($0.depth))) })),
            ])
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: body.jsonText)))
        }

        router.get("/queues") { _, _ -> Response in
            let now = Date()
            async let statistics = driver.statistics(queues: queues)
            async let hour = driver.throughput(minutes: 2, now: now)
            async let paused = driver.pausedQueues()
            return Self.page(pages.queues(try await statistics, throughput: try await hour, now: now, paused: try await paused))
        }
        router.get("/queues/{name}") { request, context -> Response in
            let name = Self.decodedParameter(context.parameters.get("name"))
            guard configuration.declaredQueues.contains(name) else {
                return Self.page(pages.layout(.queues, title: "No such queue", "<p>\(name) is not a queue of this configuration.</p>"), status: .notFound)
            }
            let page = max(0, request.uri.queryParameters.get("page").flatMap { Int($0) } ?? 0)
            let start = page * Self.queuePageSize
            let replies = try await driver.pipeline([["LLEN", name], ["LRANGE", name, String(start), String(start + Self.queuePageSize - 1)]])
            let depth = replies.first?.integerValue ?? 0
            let entries = replies.count > 1 ? replies[1].textValues : []
            let paused = try await driver.pausedQueues().contains(name)
            return Self.page(pages.queue(name, depth: depth, entries: entries, page: page, pageSize: Self.queuePageSize, paused: paused))
        }
        for (action, pause) in [("pause", true), ("resume", false)] {
            router.post("/queues/{name}/\(action)") { request, context -> Response in
                _ = try await Self.checkedForm(request, access)
                let name = Self.decodedParameter(context.parameters.get("name"))
                guard configuration.declaredQueues.contains(name) else { throw HTTPError(.notFound, message: "no such queue") }
                _ = try await driver.setPaused([name], pause)
                return Self.redirect("/queues/\(HTML.pathSegment(name))")
            }
        }

        router.get("/workers") { _, _ -> Response in
            async let statistics = driver.statistics(queues: queues)
            async let running = driver.runningJobs(limit: Self.runningLimit)
            return Self.page(pages.workers(try await statistics, running: try await running, now: Date()))
        }

        router.get("/scheduled") { request, _ -> Response in
            let page = max(0, request.uri.queryParameters.get("page").flatMap { Int($0) } ?? 0)
            let (total, jobs) = try await driver.scheduledJobs(offset: page * Self.queuePageSize, limit: Self.queuePageSize)
            let flash = Self.flash(request.uri.queryParameters.get("done"), count: request.uri.queryParameters.get("n"))
            let names = configuration.schedules.keys.sorted()
            let states = names.isEmpty ? [:] : try await driver.cronStates(names)
            return Self.page(pages.scheduled(jobs, total: total, page: page, pageSize: Self.queuePageSize, flash: flash,
                                             cron: pages.cronTable(states, now: Date())))
        }
        for (action, run) in [("run", true), ("delete", false)] {
            router.post("/scheduled/\(action)") { request, _ -> Response in
                let form = try await Self.checkedForm(request, access)
                guard let id = form["id"], let due = form["due"].flatMap({ Int64($0) }) else {
                    throw HTTPError(.badRequest, message: "a scheduled job is named by its id and due time")
                }
                let done = try await driver.actOnScheduled(id: id, dueMilliseconds: due, run: run)
                return Self.redirect(done ? "/scheduled?done=\(run ? "ran" : "deleted")&n=1" : "/scheduled?done=gone")
            }
        }

        router.get("/jobs/{id}") { _, context -> Response in
            let id = context.parameters.get("id") ?? ""
            async let dead = driver.deadLetter(id: id)
            async let running = driver.runningJobs(limit: Self.runningLimit)
            async let waiting = driver.locateWaiting(id: id, queues: queues, limit: Self.locateLimit)
            let attempts = try await history?.attempts(of: id)
            return Self.page(pages.job(id, dead: try await dead, running: try await running.first { $0.id == id },
                                       waiting: try await waiting, searched: Self.locateLimit, attempts: attempts))
        }

        router.get("/history") { request, _ -> Response in
            guard let history else {
                return Self.page(pages.layout(nil, title: "No history", "<p>The ledger needs a [postgres] table in queues.toml.</p>"), status: .notFound)
            }
            let query = request.uri.queryParameters
            func value(_ name: String) -> String? { query.get(name).flatMap { $0.isEmpty ? nil : $0 } }
            let filter = JobAttemptFilter(type: value("type"), outcome: value("outcome"), queue: value("queue"), limit: 100)
            async let attempts = history.history(filter)
            async let stats = history.stats(since: .seconds(86_400))
            return Self.page(pages.history(try await attempts, filter: filter, stats: try await stats))
        }

        router.get("/dead") { request, _ -> Response in
            let type = request.uri.queryParameters.get("type").flatMap { $0.isEmpty ? nil : $0 }
            let text = request.uri.queryParameters.get("q").flatMap { $0.isEmpty ? nil : $0 }
            async let letters = Self.deadLetters(driver, type: type, text: text)
            async let total = driver.deadLetterCount()
            let flash = Self.flash(request.uri.queryParameters.get("done"), count: request.uri.queryParameters.get("n"))
            return Self.page(pages.dead(try await letters, type: type, text: text, total: try await total, flash: flash))
        }
        router.get("/dead/{key}") { _, context -> Response in
            guard let letter = try await driver.deadLetter(id: context.parameters.get("key") ?? "") else {
                return Self.page(pages.layout(.dead, title: "No such dead job", "<p>It was retried, deleted or purged.</p>"), status: .notFound)
            }
            return Self.page(pages.deadLetter(letter))
        }
        router.post("/dead/{key}/retry") { request, context -> Response in
            try await Self.checkedForm(request, access)
            let key = context.parameters.get("key") ?? ""
            guard let letter = try await driver.deadLetter(id: key) else { return Self.redirect("/dead?done=gone") }
            do {
                let retried = try await driver.retryDeadLetter(letter, router: JobRouter.Router(configuration: configuration))
                return Self.redirect(retried ? "/dead?done=retried&n=1" : "/dead?done=gone")
            } catch let error as DeadLetterRetryError {
                return Self.page(pages.layout(.dead, title: "Not retried", "<p>\(error.description)</p>"), status: .unprocessableContent)
            }
        }
        router.post("/dead/{key}/delete") { request, context -> Response in
            try await Self.checkedForm(request, access)
            let deleted = try await driver.deleteDeadLetter(id: context.parameters.get("key") ?? "")
            return Self.redirect(deleted ? "/dead?done=deleted&n=1" : "/dead?done=gone")
        }
        router.post("/dead/retry-all") { request, _ -> Response in
            let form = try await Self.checkedForm(request, access, confirmed: true)
            let letters = try await Self.deadLetters(driver, type: form["type"].flatMap { $0.isEmpty ? nil : $0 },
                                                     text: form["q"].flatMap { $0.isEmpty ? nil : $0 })
            let router = JobRouter.Router(configuration: configuration)
            var retried = 0
            for letter in letters where (try? await driver.retryDeadLetter(letter, router: router)) == true { retried += 1 }
            return Self.redirect("/dead?done=retried&n=\(retried)")
        }
        router.post("/dead/purge") { request, _ -> Response in
            let form = try await Self.checkedForm(request, access, confirmed: true)
            guard let age = DurationParser.parse(form["older_than"] ?? "") else {
                return Self.page(pages.layout(.dead, title: "Not purged", "<p>older than: '\(form["older_than"] ?? "")' is not a duration such as 7d or 12h.</p>"),
                                 status: .unprocessableContent)
            }
            let purged = try await driver.purgeDeadLetters(before: Date().addingTimeInterval(-age.inSeconds))
            return Self.redirect("/dead?done=purged&n=\(purged)")
        }
        return router
    }

    /// Dead jobs of `type` whose reason contains `text`, newest first, at most ``deadPageLimit``.
    static func deadLetters(_ driver: RedisQueueDriver, type: String?, text: String?) async throws -> [StoredDeadLetter] {
        let letters = try await driver.deadLetters(type: type, limit: text == nil ? deadPageLimit : 10_000, withEntries: false)
        guard let text else { return letters }
        return Array(letters.filter { ($0.reason ?? "").localizedCaseInsensitiveContains(text) }.prefix(deadPageLimit))
    }

    static func flash(_ done: String?, count: String?) -> String? {
        let n = count.flatMap { Int($0) } ?? 0
        switch done {
        case "retried": return "\(n) job(s) sent back to their queue."
        case "deleted": return "\(n) dead job(s) deleted."
        case "purged": return "\(n) dead job(s) purged."
        case "ran": return "\(n) job(s) sent to their queue now."
        case "gone": return "That job is no longer there (retried, run, deleted or purged meanwhile)."
        default: return nil
        }
    }

    /// The form of a POST, after its CSRF token (and, for bulk actions, its confirmation) passed.
    @discardableResult
    static func checkedForm(_ request: Request, _ access: WebAccess, confirmed: Bool = false) async throws -> [String: String] {
        let form = try await form(request)
        guard access.acceptsForm(csrf: form["csrf"]) else {
            throw HTTPError(.forbidden, message: "missing or wrong CSRF token: reload the page and try again")
        }
        if confirmed, form["confirm"] != "yes" {
            throw HTTPError(.badRequest, message: "tick the confirmation box to run a bulk action")
        }
        return form
    }

    /// An `application/x-www-form-urlencoded` body (at most 64 KiB).
    static func form(_ request: Request) async throws -> [String: String] {
        let buffer = try await request.body.collect(upTo: 64 * 1024)
        let text = String(buffer: buffer)
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            if let name = parts.first { fields[name] = parts.count > 1 ? parts[1] : "" }
        }
        return fields
    }

    static func page(_ html: HTML, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                 body: ResponseBody(byteBuffer: ByteBuffer(string: html.text)))
    }

    static func asset(_ text: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "max-age=3600"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    /// A path parameter as the name it stands for: the router hands the segment over still
    /// percent-encoded, and the pages' own links encode every byte but unreserved ones
    /// (`{mail}emails:high` → `%7Bmail%7Demails%3Ahigh`).
    static func decodedParameter(_ raw: String?) -> String {
        guard let raw else { return "" }
        return raw.removingPercentEncoding ?? raw
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location])
    }
}

/// Sign-in for every page but the login form and the assets, and the security headers on every
/// response.
struct WebMiddleware<Context: RequestContext>: RouterMiddleware {
    let access: WebAccess
    let logger: Logger

    static var policy: String {
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    }

    /// 503 with the failure in one line (errors carry no secrets): a page, or text for `/api/`.
    static func unavailable(_ error: any Error, api: Bool) -> Response {
        let line = "\(error)".replacingOccurrences(of: "\n", with: " ")
        let body = api ? line + "\n" : """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>Unavailable · JobRouter</title>\
            <link rel="stylesheet" href="/assets/app.css"></head><body><main><h1>Unavailable</h1>\
            <p class="error">\(HTML.escape(line))</p><p><a href="/">Overview</a></p></main></body></html>
            """
        return Response(status: .serviceUnavailable,
                        headers: [.contentType: api ? "text/plain; charset=utf-8" : "text/html; charset=utf-8", .cacheControl: "no-store"],
                        body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        var response: Response
        if !access.acceptsHost(request.head.authority) {
            response = Response(status: .misdirectedRequest, headers: [.contentType: "text/plain; charset=utf-8"],
                                body: ResponseBody(byteBuffer: ByteBuffer(string: "this dashboard answers to 127.0.0.1 and localhost only\n")))
        } else if access.requiresLogin, path != "/login", !path.hasPrefix("/assets/"),
           !access.admits(authorization: request.headers[.authorization], cookie: request.headers[.cookie]) {
            response = path.hasPrefix("/api/") || request.method != .get
                ? Response(status: .unauthorized) : Response(status: .seeOther, headers: [.location: "/login"])
        } else {
            do {
                response = try await next(request, context)
            } catch let error as HTTPError {
                response = Response(status: error.status, headers: [.contentType: "text/plain; charset=utf-8"],
                                    body: ResponseBody(byteBuffer: ByteBuffer(string: (error.body ?? "\(error.status)") + "\n")))
            } catch {
                // Redis or PostgreSQL away, or a ledger schema behind: say which, rather than an empty 500.
                logger.warning("web: \(request.method) \(LogEscaping.escape(path)): \(error)")
                response = Self.unavailable(error, api: path.hasPrefix("/api/"))
            }
        }
        response.headers[.contentSecurityPolicy] = Self.policy
        response.headers[.xContentTypeOptions] = "nosniff"
        if let name = HTTPFields.Element.Name("X-Frame-Options") { response.headers[name] = "DENY" }
        if let name = HTTPFields.Element.Name("Referrer-Policy") { response.headers[name] = "no-referrer" }
        return response
    }
}
