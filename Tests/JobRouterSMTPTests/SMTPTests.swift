import Foundation
import JobRouter
import JobRouterRedis
import JobRouterSMTP
import Logging
import Synchronization
import Testing

/// The SMTP sink started by scripts/test.sh (Debian's python3-aiosmtpd, scripts/smtp-sink.py): every
/// message it receives is parsed by Python's `email` package and written as one JSON line.
enum TestSMTP {
    static func environment(_ name: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
            throw SetupError(description: "\(name) is not set: run the suite with scripts/test.sh")
        }
        return value
    }

    static var url: String { get throws { try environment("JOBROUTER_TEST_SMTP_URL") } }
    static var redisURL: String { get throws { try environment("JOBROUTER_TEST_REDIS_URL") } }

    /// Records whose recipients (or rejected address) are in `domain`.
    static func records(domain: String) throws -> [JSONValue] {
        let text = try String(contentsOfFile: try environment("JOBROUTER_TEST_SMTP_LOG"), encoding: .utf8)
        // Every test shares the sink's log and polls it: only lines naming the domain are parsed.
        let needle = "@" + domain
        return text.split(separator: "\n").filter { $0.contains(needle) }.compactMap { try? JSONValue.parse(String($0)) }.filter { record in
            if let rejected = record["rejected"]?.stringValue { return rejected.hasSuffix("@" + domain) }
            guard case .array(let recipients)? = record["rcpt_tos"] else { return false }
            return recipients.contains { $0.stringValue?.hasSuffix("@" + domain) == true }
        }
    }

    static func delivered(domain: String) throws -> [JSONValue] {
        try records(domain: domain).filter { $0["rejected"] == nil }
    }

    struct SetupError: Error, CustomStringConvertible { var description: String }
}

func eventually(timeout: Duration = .seconds(15), _ condition: () throws -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if (try? condition()) == true { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return (try? condition()) == true
}

/// A test's own queue names, Redis namespace and recipient domain.
struct MailTestSetup {
    let prefix = "mail-\(UUID().uuidString.prefix(8).lowercased())"
    var domain: String { "\(prefix).test" }
    var queue: String { "\(prefix):mail" }
    var lowQueue: String { "\(prefix):mail-low" }

    func configuration(concurrency: Int, rateLimit: RateLimit? = nil, burst: Int = 1, maxAttempts: Int = 5) throws -> RouterConfiguration {
        var configuration = RouterConfiguration(defaultQueue: "\(prefix):default")
        configuration.redis = RedisSettings(url: try TestSMTP.redisURL, namespace: "\(prefix)-jr")
        configuration.smtp = SMTPSettings(url: try TestSMTP.url, tls: .off, from: "Exämple <noreply@example.com>",
                                          rateLimit: rateLimit, burst: burst)
        configuration.types["email"] = JobTypeConfiguration(
            name: "email", handler: .smtp, priorities: ["high": queue, "low": lowQueue], defaultPriority: "high",
            maxAttempts: maxAttempts, backoff: RetryBackoff(base: .milliseconds(50), max: .milliseconds(100)))
        configuration.groups["mail"] = WorkerGroupConfiguration(name: "mail", queues: [queue, lowQueue], concurrency: concurrency)
        try configuration.validate()
        return configuration
    }

    func driver(_ configuration: RouterConfiguration) throws -> RedisQueueDriver {
        try RedisQueueDriver(configuration: configuration, environment: [:])
    }
}

final class Events: JobEventRecorder, Sendable {
    private let events = Mutex<[JobEvent]>([])
    func record(_ event: JobEvent) { events.withLock { $0.append(event) } }
    var dead: [DeadLetter] { events.withLock { $0 }.compactMap { if case .deadLettered(let record, _) = $0 { record } else { nil } } }
    /// How many jobs started (each is reported as it starts, right after its claim).
    var started: Int { events.withLock { $0 }.filter { if case .started = $0 { true } else { false } }.count }
    /// The errors of failed attempts, in the order they were reported.
    var failures: [String] { events.withLock { $0 }.compactMap { if case .failed(_, _, _, _, let error, _) = $0 { error } else { nil } } }
}

/// Runs a worker with the mail handler while `body` runs.
func withMailWorker(_ configuration: RouterConfiguration, driver: RedisQueueDriver, connections: Int, events: Events = Events(),
                    _ body: (SMTPMailHandler) async throws -> Void) async throws {
    let handler = try SMTPMailHandler(configuration: configuration, connections: connections)
    var handlers = HandlerRegistry()
    handlers.provideSMTP(handler)
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: handlers, logger: logger,
                                     recorders: [events], rateLimiter: RedisRateLimiter(driver: driver))
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await worker.run() }
        do {
            try await body(handler)
        } catch {
            worker.shutdown(immediately: true)
            throw error
        }
        worker.shutdown()
        try await group.waitForAll()
    }
}

@Suite(.timeLimit(.minutes(2)))
struct SMTPTests {
    @Test func twentyMailsArriveAsValidMIMEWithBothParts() async throws {
        let setup = MailTestSetup()
        let configuration = try setup.configuration(concurrency: 4)
        let driver = try setup.driver(configuration)
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let subject = "Grüße aus Köln — 登録ありがとう"
        let jobs = try await client.enqueue((0..<20).map { index in
            JobRequest(type: "email", payload: .object([
                "to": .array([.string("first\(index)@\(setup.domain)"), .string("Zoë Second <second\(index)@\(setup.domain)>")]),
                "bcc": .string("audit\(index)@\(setup.domain)"),
                "subject": .string(subject), "text": .string("Hallo \(index), ä ö ü"), "html": .string("<p>Hallo <b>\(index)</b></p>"),
            ]))
        })
        try await withMailWorker(configuration, driver: driver, connections: 4) { _ in
            #expect(await eventually { try TestSMTP.delivered(domain: setup.domain).count == 20 })
        }
        let messages = try TestSMTP.delivered(domain: setup.domain)
        #expect(messages.count == 20)
        var ids: Set<String> = []
        for message in messages {
            #expect(message["subject"]?.stringValue == subject)
            #expect(message["content_type"]?.stringValue == "multipart/alternative")
            #expect(message["defects"] == .integer(0))
            #expect((message["max_line"]?.intValue ?? 9999) <= 998)
            guard case .array(let headers)? = message["headers"], case .array(let parts)? = message["parts"],
                  case .array(let recipients)? = message["rcpt_tos"] else {
                Issue.record("malformed record \(message.jsonText)")
                continue
            }
            #expect(recipients.count == 3)
            #expect(!headers.contains(.string("Bcc")))
            #expect(parts.map { $0["content_type"]?.stringValue } == ["text/plain", "text/html"])
            #expect(parts[0]["body"]?.stringValue?.hasPrefix("Hallo ") == true)
            #expect(parts[0]["body"]?.stringValue?.hasSuffix("ä ö ü") == true)
            #expect(message["to"]?.stringValue?.contains("Zoë Second") == true)
            ids.insert(message["message_id"]?.stringValue ?? "")
        }
        #expect(ids == Set(jobs.map { "<\($0.id.rawValue)@example.com>" }))
    }

    @Test func twoHundredMailsAtConcurrencyFourReuseConnections() async throws {
        let setup = MailTestSetup()
        let configuration = try setup.configuration(concurrency: 4)
        let driver = try setup.driver(configuration)
        let client = JobRouterClient(configuration: configuration, driver: driver)
        _ = try await client.enqueue((0..<200).map { index in
            JobRequest(type: "email", payload: .object(["to": .string("r\(index)@\(setup.domain)"), "subject": .string("n\(index)"), "text": .string("t")]))
        })
        var opened = 0
        let events = Events()
        try await withMailWorker(configuration, driver: driver, connections: 4, events: events) { handler in
            // A bound for a failure only: the sink is shared with the rest of a loaded suite.
            #expect(await eventually(timeout: .seconds(60)) { try TestSMTP.delivered(domain: setup.domain).count == 200 },
                    "\((try? TestSMTP.delivered(domain: setup.domain).count) ?? -1) of 200 delivered, \(events.started) started, failures: \(events.failures.prefix(3))")
            opened = handler.connectionsOpened
        }
        let peers = Set(try TestSMTP.delivered(domain: setup.domain).compactMap { $0["peer"]?.stringValue })
        #expect(peers.count <= 8, "\(peers.count) connections")
        #expect(opened <= 8 && opened >= 1)
    }

    @Test func permanentRejectionIsTriedOnceAndDeadLetteredWithTheReply() async throws {
        let setup = MailTestSetup()
        let configuration = try setup.configuration(concurrency: 2)
        let driver = try setup.driver(configuration)
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let job = try await client.enqueue(type: "email", payload: .object([
            "to": .string("reject.me@\(setup.domain)"), "subject": .string("s"), "text": .string("t")]))
        let events = Events()
        try await withMailWorker(configuration, driver: driver, connections: 2, events: events) { _ in
            #expect(await eventually { events.dead.count == 1 })
            try await Task.sleep(for: .milliseconds(300))
        }
        #expect(try TestSMTP.records(domain: setup.domain).count == 1, "exactly one delivery attempt")
        #expect(events.dead.first?.id == job.id)
        #expect(events.dead.first?.reason == "SMTP 550: 550 5.1.1 no such user")
    }

    @Test func temporaryRejectionIsRetriedWithTheSameMessageID() async throws {
        let setup = MailTestSetup()
        let configuration = try setup.configuration(concurrency: 1)
        let driver = try setup.driver(configuration)
        let client = JobRouterClient(configuration: configuration, driver: driver)
        let job = try await client.enqueue(type: "email", payload: .object([
            "to": .string("deferonce@\(setup.domain)"), "subject": .string("s"), "text": .string("t")]))
        try await withMailWorker(configuration, driver: driver, connections: 1) { _ in
            #expect(await eventually { try TestSMTP.delivered(domain: setup.domain).count == 1 })
        }
        let records = try TestSMTP.records(domain: setup.domain)
        #expect(records.first?["code"] == .integer(451))
        #expect(records.last?["message_id"]?.stringValue == "<\(job.id.rawValue)@example.com>")
    }

    @Test func headerInjectionIsRejectedAndNothingIsSent() async throws {
        let setup = MailTestSetup()
        let configuration = try setup.configuration(concurrency: 1)
        let driver = try setup.driver(configuration)
        let client = JobRouterClient(configuration: configuration, driver: driver)
        _ = try await client.enqueue(type: "email", payload: .object([
            "to": .string("victim@\(setup.domain)"), "subject": .string("hello\r\nBcc: x@\(setup.domain)"), "text": .string("t")]))
        let events = Events()
        try await withMailWorker(configuration, driver: driver, connections: 1, events: events) { _ in
            #expect(await eventually { events.dead.count == 1 })
        }
        #expect(events.dead.first?.reason == "bad mail: the subject contains a line break")
        #expect(try TestSMTP.records(domain: setup.domain).isEmpty)
    }

    @Test func theNextMailSentUnderTheRateLimitIsStillAHighOne() async throws {
        let setup = MailTestSetup()
        let configuration = try setup.configuration(concurrency: 4, rateLimit: RateLimit(count: 5, period: .seconds(1)))
        let driver = try setup.driver(configuration)
        let client = JobRouterClient(configuration: configuration, driver: driver)
        func mail(_ subject: String, _ priority: String) -> JobRequest {
            JobRequest(type: "email", priority: priority, payload: .object([
                "to": .string("\(subject)@\(setup.domain)"), "subject": .string(subject), "text": .string("t")]))
        }
        _ = try await client.enqueue((0..<8).map { mail("low\($0)", "low") })
        let lowsBefore = Mutex(0)
        let events = Events()
        try await withMailWorker(configuration, driver: driver, connections: 4, events: events) { _ in
            #expect(await eventually { try TestSMTP.delivered(domain: setup.domain).count >= 2 })
            _ = try await client.enqueue((0..<3).map { mail("high\($0)", "high") })
            // Lows claimed (each starts right after its claim) by the time the highs were in, and
            // of those the ones not sent yet. Paced, a claim waits for its permit (one per 200 ms):
            // the one holding its permit is on its way, and at most one more whose mail is slow to
            // reach the sink on a loaded machine; claiming ahead of the permits would hold up to
            // the concurrency (4).
            let started = events.started
            let sent = try TestSMTP.delivered(domain: setup.domain).count
            lowsBefore.withLock { $0 = started }
            #expect(started - sent <= 2, "\(started) started, \(sent) sent")
            #expect(await eventually { try TestSMTP.delivered(domain: setup.domain).count == 11 })
        }
        let subjects = try TestSMTP.delivered(domain: setup.domain).compactMap { $0["subject"]?.stringValue }
        let firstHigh = try #require(subjects.firstIndex { $0.hasPrefix("high") })
        let lastHigh = try #require(subjects.lastIndex { $0.hasPrefix("high") })
        // No low claimed after the highs arrived went before them (one may have been claimed while
        // they were being enqueued).
        let allowed = lowsBefore.withLock { $0 } + 1
        #expect(firstHigh <= allowed, "\(subjects)")
        // While the workers waited for the rate, the highs that arrived went next: a low among them
        // can only be one already on its way (started before the highs came in, its mail slower to
        // reach the sink on a loaded machine, as a run beside busy loops saw once).
        let lowsAmongHighs = subjects[firstHigh...lastHigh].filter { $0.hasPrefix("low") }.count
        #expect(lowsAmongHighs <= max(0, allowed - firstHigh), "\(subjects), \(allowed - 1) lows started before the highs")
    }

    @Test func shutdownDoesNotWaitForTheNextPermit() async throws {
        let setup = MailTestSetup()
        let configuration = try setup.configuration(concurrency: 2, rateLimit: RateLimit(count: 1, period: .seconds(3600)))
        let driver = try setup.driver(configuration)
        let client = JobRouterClient(configuration: configuration, driver: driver)
        _ = try await client.enqueue((0..<2).map { index in
            JobRequest(type: "email", payload: .object(["to": .string("r\(index)@\(setup.domain)"), "subject": .string("s"), "text": .string("t")]))
        })
        let clock = ContinuousClock()
        var stopping = clock.now
        try await withMailWorker(configuration, driver: driver, connections: 2) { _ in
            #expect(await eventually { try TestSMTP.delivered(domain: setup.domain).count == 1 })
            try await Task.sleep(for: .milliseconds(200))
            stopping = clock.now
        }
        // Far below the hour to the next permit (a loaded run took 2.4 s).
        #expect(stopping.duration(to: clock.now) < .seconds(10))
        // The second mail was never claimed: it waits in its queue for the next permit.
        #expect(try await driver.depths(of: [setup.queue])[setup.queue] == 1)
        #expect(try TestSMTP.delivered(domain: setup.domain).count == 1)
    }

    @Test func aRateLimitedMailGroupNeedsALimiter() throws {
        let setup = MailTestSetup()
        let configuration = try setup.configuration(concurrency: 1, rateLimit: RateLimit(count: 5, period: .seconds(1)))
        var handlers = HandlerRegistry()
        handlers.provideSMTP(try SMTPMailHandler(configuration: configuration, connections: 1))
        #expect {
            _ = try JobRouterWorker(configuration: configuration, driver: try setup.driver(configuration), handlers: handlers,
                                    logger: Logger(label: "test"))
        } throws: { error in
            "\(error)".hasPrefix("groups.mail receives mail and smtp.rate_limit is 5/s, but no rateLimiter was given")
        }
    }
}
