import Foundation
import JobRouter
import JobRouterPostgres
import JobRouterRedis
@testable import JobRouterWeb
import Logging
import Synchronization
import Testing

/// The dashboard over HTTP (curl) against the real Redis started by scripts/test.sh.
@Suite(.timeLimit(.minutes(2)))
struct DashboardTests {
    struct Setup {
        let prefix = "web-\(UUID().uuidString.prefix(8).lowercased())"
        let configuration: RouterConfiguration
        let driver: RedisQueueDriver

        init(handler: String = "noop") throws {
            guard let url = ProcessInfo.processInfo.environment["JOBROUTER_TEST_REDIS_URL"], !url.isEmpty else {
                throw WebError(message: "JOBROUTER_TEST_REDIS_URL is not set: run the suite with scripts/test.sh")
            }
            configuration = try RouterConfiguration.parse(toml: """
                default_queue = "\(prefix):low"
                [redis]
                url = "\(url)"
                namespace = "\(prefix)-jr"
                [types.mail]
                handler = "\(handler)"
                priorities = { high = "\(prefix):high", low = "\(prefix):low" }
                default_priority = "low"
                [groups.g]
                queues = ["\(prefix):high", "\(prefix):low"]
                concurrency = 8
                [schedules.nightly]
                cron = "0 3 * * *"
                timezone = "Europe/Berlin"
                type = "mail"
                """, providers: HandlerRegistry().providers)
            driver = try RedisQueueDriver(configuration: configuration)
        }

        /// Runs a dashboard on a free loopback port (or `host`) for `body`.
        func withServer(host: String = "127.0.0.1", token: String? = nil, history: (any JobHistory)? = nil,
                        _ body: (String) async throws -> Void) async throws {
            let address = HTTPListenAddress(host: host, port: 0)
            let access = try WebAccess(listen: address, token: token)
            let port = Mutex<Int?>(nil)
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            let server = DashboardServer(address: address, configuration: configuration, driver: driver, access: access,
                                         history: history, logger: logger) { bound in
                port.withLock { $0 = bound }
            }
            let running = Task { try await server.run() }
            defer { running.cancel() }
            let deadline = ContinuousClock.now + .seconds(10)
            while port.withLock({ $0 }) == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            let bound = try #require(port.withLock { $0 })
            try await body("http://127.0.0.1:\(bound)")
        }
    }

    struct Reply {
        var status: Int
        var headers: String
        var body: String
        func header(_ name: String) -> String? {
            headers.split(separator: "\r\n").first { $0.lowercased().hasPrefix(name.lowercased() + ":") }
                .map { String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces) }
        }
    }

    /// One request through curl (no redirects followed). The process is awaited, not waited
    /// for: the server under test answers on the same cooperative pool.
    static func request(_ url: String, post form: [String: String]? = nil, headers: [String] = []) async throws -> Reply {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("web-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (bodyFile, headersFile, codeFile) = (directory.appendingPathComponent("body"), directory.appendingPathComponent("headers"),
                                                 directory.appendingPathComponent("code"))
        var arguments = ["-s", "-o", bodyFile.path, "-D", headersFile.path, "-w", "%{http_code}", "--max-time", "10"]
        for header in headers { arguments += ["-H", header] }
        if let form {
            arguments += ["-X", "POST"]
            for (name, value) in form.sorted(by: { $0.key < $1.key }) { arguments += ["--data-urlencode", "\(name)=\(value)"] }
            if form.isEmpty { arguments += ["-d", ""] }
        }
        arguments.append(url)
        _ = FileManager.default.createFile(atPath: codeFile.path, contents: nil)
        let output = try FileHandle(forWritingTo: codeFile)
        defer { try? output.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = arguments
        process.standardOutput = output
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            process.terminationHandler = { _ in continuation.resume() }
            do { try process.run() } catch { continuation.resume() }
        }
        func read(_ file: URL) -> String { (try? String(contentsOf: file, encoding: .utf8)) ?? "" }
        return Reply(status: Int(read(codeFile)) ?? 0, headers: read(headersFile), body: read(bodyFile))
    }

    static func csrf(in page: String) -> String? {
        guard let start = page.range(of: "name=\"csrf\" value=\"") else { return nil }
        return String(page[start.upperBound...].prefix(while: { $0 != "\"" }))
    }

    func bury(_ setup: Setup, type: String, reason: String, payload: String) async throws -> String {
        let job = JobEnvelope(type: "mail", priority: "low", queue: "\(setup.prefix):low", payload: .object(["note": .string(payload)]))
        let record = DeadLetter(id: job.id, queue: job.queue, type: type, attempt: 1, reason: reason, raw: Data(job.jsonText.utf8))
        _ = try await setup.driver.deadLetter(record, claim: nil, maxDead: 1000, attempt: nil)
        return job.id.rawValue
    }

    @Test func pagesRenderWithSecurityHeadersAndShowHostileTextAsText() async throws {
        let setup = try Setup()
        let client = JobRouterClient(configuration: setup.configuration, driver: setup.driver)
        _ = try await client.enqueue(type: "mail", payload: .object(["html": .string("<script>alert(1)</script>")]))
        _ = try await bury(setup, type: "\"><img src=x onerror=alert(2)>", reason: "<b>boom</b>", payload: "<script>alert(3)</script>")
        try await setup.withServer { base in
            for path in ["/", "/queues", "/queues/\(setup.prefix):low", "/workers", "/dead", "/api/overview", "/assets/app.css", "/assets/app.js"] {
                let reply = try await Self.request(base + path)
                #expect(reply.status == 200, "\(path): \(reply.status)")
                #expect(reply.header("Content-Security-Policy")?.contains("script-src 'self'") == true, "\(path)")
                #expect(reply.header("Content-Security-Policy")?.contains("frame-ancestors 'none'") == true, "\(path)")
                #expect(reply.header("X-Content-Type-Options") == "nosniff", "\(path)")
                #expect(!reply.body.contains("<script>alert") && !reply.body.contains("<img src=x") && !reply.body.contains("<b>boom"), "\(path) renders markup from data")
            }
            let queue = try await Self.request(base + "/queues/\(setup.prefix):low")
            #expect(queue.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "\(queue.body)")
            // The pages link a queue with its name percent-encoded (':' as %3A): that link works.
            let linked = "/queues/" + HTML.pathSegment("\(setup.prefix):low")
            #expect(try await Self.request(base + "/queues").body.contains("href=\"\(linked)\""))
            #expect(try await Self.request(base + linked).status == 200, "\(linked)")
            let dead = try await Self.request(base + "/dead")
            #expect(dead.body.contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;") && dead.body.contains("&lt;b&gt;boom&lt;/b&gt;"), "\(dead.body)")
            let overview = try await Self.request(base + "/api/overview")
            let figures = try JSONValue.parse(Data(overview.body.utf8))
            #expect(figures["waiting"]?.intValue == 1 && figures["dead"]?.intValue == 1, "\(overview.body)")
            #expect(try await Self.request(base + "/queues/not-a-queue").status == 404)
            // DNS rebinding: another site's name pointed at 127.0.0.1 is refused.
            #expect(try await Self.request(base + "/", headers: ["Host: evil.example:80"]).status == 421)
            #expect(try await Self.request(base + "/", headers: ["Host: localhost"]).status == 200)
        }
    }

    @Test func actionsNeedTheCSRFTokenAndARetriedJobIsBackInItsQueue() async throws {
        let setup = try Setup()
        let id = try await bury(setup, type: "mail", reason: "smtp 550", payload: "hello")
        try await setup.withServer { base in
            let page = try await Self.request(base + "/dead")
            let key = try #require(page.body.range(of: "/dead/\(id)").map { _ in id })
            // No token, a wrong token, or a GET: nothing changes.
            #expect(try await Self.request(base + "/dead/\(key)/retry", post: [:]).status == 403)
            #expect(try await Self.request(base + "/dead/\(key)/retry", post: ["csrf": "forged"]).status == 403)
            #expect(try await Self.request(base + "/dead/\(key)/retry").status != 200)
            #expect(try await setup.driver.deadLetterCount() == 1)
            // A bulk action without its confirmation is refused too.
            let token = try #require(Self.csrf(in: page.body))
            #expect(try await Self.request(base + "/dead/purge", post: ["csrf": token, "older_than": "0s"]).status == 400)
            #expect(try await setup.driver.deadLetterCount() == 1)

            let retried = try await Self.request(base + "/dead/\(key)/retry", post: ["csrf": token])
            #expect(retried.status == 303 && retried.header("Location") == "/dead?done=retried&n=1")
            #expect(try await setup.driver.deadLetterCount() == 0)
            let queued = try await setup.driver.pipeline([["LRANGE", "\(setup.prefix):low", "0", "-1"]]).first?.textValues ?? []
            #expect(queued.count == 1 && queued.first?.contains(id) == true, "\(queued)")

            let another = try await bury(setup, type: "mail", reason: "bad", payload: "x")
            #expect(try await Self.request(base + "/dead/\(another)/delete", post: ["csrf": token]).status == 303)
            #expect(try await setup.driver.deadLetterCount() == 0)
        }
    }

    @Test func anAddressBeyondLoopbackNeedsATokenAndEveryRequestCarriesIt() async throws {
        #expect(throws: WebError.self) { try WebAccess(listen: HTTPListenAddress(host: "0.0.0.0", port: 8080), token: nil) }
        #expect(throws: Never.self) { try WebAccess(listen: HTTPListenAddress(host: "127.0.0.1", port: 8080), token: nil) }
        let setup = try Setup()
        let token = "s3cret-\(UUID().uuidString)"
        try await setup.withServer(token: token) { base in
            let anonymous = try await Self.request(base + "/")
            #expect(anonymous.status == 303 && anonymous.header("Location") == "/login")
            #expect(try await Self.request(base + "/api/overview").status == 401)
            #expect(try await Self.request(base + "/assets/app.css").status == 200)
            #expect(try await Self.request(base + "/", headers: ["Authorization: Bearer \(token)"]).status == 200)
            #expect(try await Self.request(base + "/", headers: ["Authorization: Bearer wrong"]).status == 303)
            let wrong = try await Self.request(base + "/login", post: ["token": "wrong"])
            #expect(wrong.status == 401 && !wrong.body.contains(token))
            let login = try await Self.request(base + "/login", post: ["token": token])
            let cookie = try #require(login.header("Set-Cookie"))
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && !cookie.contains(token), "\(cookie)")
            let session = String(cookie.prefix(while: { $0 != ";" }))
            let page = try await Self.request(base + "/", headers: ["Cookie: \(session)"])
            #expect(page.status == 200 && !page.body.contains(token))
        }
    }

    @Test func scheduledJobsRunNowOrAreDeletedAndAJobPageSaysWhereItIs() async throws {
        let setup = try Setup()
        let client = JobRouterClient(configuration: setup.configuration, driver: setup.driver)
        let later = try await client.enqueue([JobRequest(type: "mail", payload: .string("<i>soon</i>")),
                                              JobRequest(type: "mail", payload: .string("later"))], after: .seconds(3600))
        let deadID = try await bury(setup, type: "mail", reason: "gone wrong", payload: "p")
        try await setup.withServer { base in
            let page = try await Self.request(base + "/scheduled")
            #expect(page.status == 200 && page.body.contains(later[0].id.rawValue) && page.body.contains("&lt;i&gt;soon&lt;/i&gt;"), "\(page.body)")
            // The cron schedules, with their next fire times (03:00 in Berlin is 02:00 or 01:00 UTC).
            #expect(page.body.contains("<td>nightly</td><td><code>0 3 * * *</code></td><td>Europe/Berlin</td>"), "\(page.body)")
            #expect(page.body.contains("T02:00:00.000Z") || page.body.contains("T01:00:00.000Z"))
            #expect(page.body.contains("never"))
            let token = try #require(Self.csrf(in: page.body))
            let schedule = try await setup.driver.scheduledJobs(offset: 0, limit: 10)
            let first = try #require(schedule.jobs.first { $0.entry.contains(later[0].id.rawValue) })
            #expect(try await Self.request(base + "/scheduled/run", post: ["id": later[0].id.rawValue, "due": String(first.dueMilliseconds)]).status == 403)
            let ran = try await Self.request(base + "/scheduled/run", post: ["csrf": token, "id": later[0].id.rawValue, "due": String(first.dueMilliseconds)])
            #expect(ran.status == 303 && ran.header("Location") == "/scheduled?done=ran&n=1")
            let queued = try await setup.driver.pipeline([["LRANGE", "\(setup.prefix):low", "0", "-1"]]).first?.textValues ?? []
            #expect(queued.count == 1 && queued.first?.contains(later[0].id.rawValue) == true)
            let second = try #require(try await setup.driver.scheduledJobs(offset: 0, limit: 10).jobs.first)
            let deleted = try await Self.request(base + "/scheduled/delete", post: ["csrf": token, "id": later[1].id.rawValue, "due": String(second.dueMilliseconds)])
            #expect(deleted.status == 303 && deleted.header("Location") == "/scheduled?done=deleted&n=1")
            #expect(try await setup.driver.scheduledJobs(offset: 0, limit: 10).total == 0)

            let job = try await Self.request(base + "/jobs/\(deadID)")
            #expect(job.status == 200 && job.body.contains("Dead: gone wrong") && job.body.contains("no ledger"), "\(job.body)")
        }
    }

    @Test func aQueueIsPausedAndResumedFromItsPage() async throws {
        let setup = try Setup()
        let queue = "\(setup.prefix):low"
        try await setup.withServer { base in
            let page = try await Self.request(base + "/queues/\(queue)")
            #expect(page.status == 200 && page.body.contains("Pause"), "\(page.body)")
            let token = try #require(Self.csrf(in: page.body))
            #expect(try await Self.request(base + "/queues/\(queue)/pause", post: [:]).status == 403)
            let paused = try await Self.request(base + "/queues/\(queue)/pause", post: ["csrf": token])
            #expect(paused.status == 303)
            #expect(try await setup.driver.pausedQueues() == [queue])
            #expect(try await Self.request(base + "/queues").body.contains("PAUSED"))
            #expect(try await Self.request(base + "/queues/\(queue)").body.contains("Resume"))
            #expect(try await Self.request(base + "/queues/\(queue)/resume", post: ["csrf": token]).status == 303)
            #expect(try await setup.driver.pausedQueues().isEmpty)
            #expect(try await Self.request(base + "/queues/nope/pause", post: ["csrf": token]).status == 404)
        }
    }

    @Test func historyAndAJobsAttemptsComeFromTheLedger() async throws {
        let setup = try Setup()
        guard let url = ProcessInfo.processInfo.environment["JOBROUTER_TEST_POSTGRES_URL"], !url.isEmpty else {
            throw WebError(message: "JOBROUTER_TEST_POSTGRES_URL is not set: run the suite with scripts/test.sh")
        }
        let schema = "t_web_" + UUID().uuidString.prefix(8).lowercased()
        let pool = PostgresPool(url: url, size: 1)
        _ = try await PostgresMigrator(schema: schema).migrate(pool)
        defer { Task { _ = try? await pool.withConnection { try $0.query("DROP SCHEMA \(schema) CASCADE") } } }
        _ = try await pool.withConnection { connection in
            try connection.query("""
                INSERT INTO \(schema).attempts (job_id, claim, type, queue, attempt, outcome, error, worker, enqueued_at, started_at, finished_at)
                VALUES ('job-1', 'c1', 'mail', 'q', 1, 'failed', '<b>421 try later</b>', 'w1', now() - interval '2 s', now() - interval '1 s', now() - interval '0.5 s'),
                       ('job-1', 'c2', 'mail', 'q', 2, 'succeeded', NULL, 'w1', now() - interval '0.4 s', now() - interval '0.3 s', now())
                """)
        }
        try await setup.withServer(history: Ledger(pool: pool, schema: schema)) { base in
            let history = try await Self.request(base + "/history?type=mail")
            #expect(history.status == 200 && history.body.contains("/jobs/job-1") && history.body.contains("&lt;b&gt;421 try later&lt;/b&gt;"), "\(history.body)")
            #expect(history.body.contains(">2</td>"), "per-type attempts: \(history.body)")
            let job = try await Self.request(base + "/jobs/job-1")
            #expect(job.body.contains("succeeded") && job.body.contains("failed"), "\(job.body)")
            // The ledger's schema a version behind (an older JobRouter migrated it): the pages say so.
            _ = try await pool.withConnection { connection in
                try connection.query("ALTER TABLE \(schema).attempts DROP COLUMN due_at")
                try connection.query("DELETE FROM \(schema).schema_migrations WHERE version = 4")
            }
            for path in ["/history", "/jobs/job-1"] {
                let behind = try await Self.request(base + path)
                #expect(behind.status == 503 && behind.body.contains("schema \(schema) is at version 3")
                        && behind.body.contains("run `jobrouter migrate`"), "\(path): \(behind.status) \(behind.body)")
            }
        }
    }

    @Test func aJobPageFindsAWaitingOrScheduledJobAndWorkersShowHowLongJobsRun() async throws {
        let setup = try Setup(handler: "swift")
        let client = JobRouterClient(configuration: setup.configuration, driver: setup.driver)
        let waiting = try await client.enqueue([JobRequest(type: "mail", payload: .integer(1)), JobRequest(type: "mail", payload: .integer(2))])
        let later = try await client.enqueue([JobRequest(type: "mail", payload: .integer(3))], after: .seconds(3600))
        try await setup.withServer { base in
            let second = try await Self.request(base + "/jobs/\(waiting[1].id.rawValue)")
            #expect(second.body.contains("Waiting in \(setup.prefix):low, 1 job(s) ahead of it."), "\(second.body)")
            let scheduled = try await Self.request(base + "/jobs/\(later[0].id.rawValue)")
            #expect(scheduled.body.contains("Scheduled: due ") && scheduled.body.contains("then to \(setup.prefix):low"), "\(scheduled.body)")
            let unknown = try await Self.request(base + "/jobs/no-such-job")
            #expect(unknown.status == 200 && unknown.body.contains("not among the first 10000"), "\(unknown.body)")

            // A job held by a running handler: the workers page lists it with how long it has run.
            let release = Observations<Bool>()
            var handlers = HandlerRegistry()
            handlers.register(type: "mail") { _, _ in
                while release.all.isEmpty { try await Task.sleep(for: .milliseconds(20)) }
            }
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            let worker = try JobRouterWorker(configuration: setup.configuration, driver: setup.driver, handlers: handlers,
                                             logger: logger, recorders: [])
            let running = Task { await worker.run() }
            defer { release.append(true); worker.shutdown(); running.cancel() }
            // Heartbeats carry when each claim was taken; wait for one that lists both jobs.
            let listed = await DashboardBrowserTests.eventually(timeout: .seconds(20)) {
                let page = (try? await Self.request(base + "/workers"))?.body ?? ""
                return page.contains(waiting[0].id.rawValue) && page.contains(waiting[1].id.rawValue) && page.contains("s</td><td>")
            }
            let page = try await Self.request(base + "/workers")
            #expect(listed, "\(page.body)")
            #expect(page.body.contains("running for"))
        }
    }
}
