import Foundation
import JobRouter
import JobRouterRedis
import JobRouterSMTP
import Logging
import Synchronization
import Testing

private let quietLogger: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return logger
}()

/// Relays that require AUTH, started by scripts/test.sh: aiosmtpd with an authenticator, behind
/// STARTTLS and behind implicit TLS (smtps), with a certificate from a private CA (`ca_file`).
@Suite(.timeLimit(.minutes(2)))
struct SMTPAuthTests {
    static let password = "s3cret-pw"

    /// Lines written by the AUTH relays.
    static func authRecords() throws -> [JSONValue] {
        try TestSMTP.environment("JOBROUTER_TEST_SMTP_AUTH_LOGS").split(separator: ":").flatMap { path -> [JSONValue] in
            let text = (try? String(contentsOfFile: String(path), encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { try? JSONValue.parse(String($0)) }
        }
    }

    static func delivered(domain: String) throws -> [JSONValue] {
        try authRecords().filter { record in
            guard case .array(let recipients)? = record["rcpt_tos"] else { return false }
            return recipients.contains { $0.stringValue?.hasSuffix("@" + domain) == true }
        }
    }

    func configuration(_ setup: MailTestSetup, url: String, mechanism: String?, caFile: Bool = true) throws -> RouterConfiguration {
        var configuration = try setup.configuration(concurrency: 1, maxAttempts: 3)
        var smtp = SMTPSettings(url: url, tls: .required, from: "noreply@example.com",
                                usernameEnvironment: "TEST_SMTP_USER", passwordEnvironment: "TEST_SMTP_PASSWORD")
        smtp.authMechanism = mechanism
        smtp.caFile = caFile ? try TestSMTP.environment("JOBROUTER_TEST_SMTP_CA") : nil
        smtp.timeout = .seconds(60)
        configuration.smtp = smtp
        return configuration
    }

    func send(_ setup: MailTestSetup, _ configuration: RouterConfiguration, password: String) async throws
        -> (events: Events, took: Duration, firstError: String?) {
        let driver = try setup.driver(configuration)
        let client = JobRouterClient(configuration: configuration, driver: driver)
        _ = try await client.enqueue(type: "email", payload: .object([
            "to": .string("someone@\(setup.domain)"), "subject": .string("hello"), "text": .string("body")]))
        let events = Events()
        let handler = try SMTPMailHandler(configuration: configuration, connections: 1,
                                          environment: ["TEST_SMTP_USER": "jobrouter", "TEST_SMTP_PASSWORD": password])
        var handlers = HandlerRegistry()
        handlers.provideSMTP(handler)
        let recorder = TimedEvents()
        let worker = try JobRouterWorker(configuration: configuration, driver: driver, handlers: handlers, logger: quietLogger,
                                         recorders: [events, recorder], rateLimiter: RedisRateLimiter(driver: driver))
        let clock = ContinuousClock()
        let start = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await worker.run() }
            _ = await eventually { recorder.finished }
            worker.shutdown()
            try await group.waitForAll()
        }
        return (events, start.duration(to: recorder.finishedAt ?? clock.now), recorder.firstError)
    }

    @Test(arguments: [("STARTTLS", "PLAIN"), ("STARTTLS", "LOGIN"), ("smtps", "PLAIN"), ("smtps", "LOGIN")])
    func theRightPasswordLogsInAndSends(transport: String, mechanism: String) async throws {
        let setup = MailTestSetup()
        let url = try TestSMTP.environment(transport == "smtps" ? "JOBROUTER_TEST_SMTPS_URL" : "JOBROUTER_TEST_SMTP_STARTTLS_URL")
        let (events, _, _) = try await send(setup, try configuration(setup, url: url, mechanism: mechanism), password: Self.password)
        #expect(events.dead.isEmpty)
        #expect(try Self.delivered(domain: setup.domain).count == 1)
    }

    @Test(arguments: ["JOBROUTER_TEST_SMTP_STARTTLS_URL", "JOBROUTER_TEST_SMTPS_URL"], [nil, "PLAIN", "LOGIN"])
    func aWrongPasswordIsDeadAtOnceWithTheServersReply(variable: String, mechanism: String?) async throws {
        let setup = MailTestSetup()
        let (events, took, _) = try await send(setup, try configuration(setup, url: try TestSMTP.environment(variable), mechanism: mechanism),
                                            password: "wrong-pw-123")
        let dead = try #require(events.dead.first)
        #expect(dead.reason.hasPrefix("SMTP 535"), "\(dead.reason)")
        #expect(dead.attempt == 1, "a refused login is not retried")
        #expect(!dead.reason.contains("wrong-pw-123") && !dead.reason.contains(Self.password))
        // Not after the 60 s SMTP timeout (alone this takes ~0.1 s; the full parallel suite on
        // two cores has taken it past 3 s).
        #expect(took < .seconds(20), "took \(took)")
        #expect(try Self.delivered(domain: setup.domain).isEmpty)
    }

    @Test(arguments: ["JOBROUTER_TEST_SMTP_STARTTLS_URL", "JOBROUTER_TEST_SMTPS_URL"])
    func aRefusedLoginLeavesTheHandleUsableForTheNextMail(variable: String) async throws {
        let setup = MailTestSetup()
        let configuration = try configuration(setup, url: try TestSMTP.environment(variable), mechanism: nil)
        guard let smtp = configuration.smtp else { return }
        // One handle, as a worker slot has: two refused logins in a row, each answered at once.
        let transport = try SMTPTransport(endpoint: SMTPEndpoint(settings: smtp, environment: [
            "TEST_SMTP_USER": "jobrouter", "TEST_SMTP_PASSWORD": "wrong-pw-123"]))
        let job = JobEnvelope(type: "email", priority: nil, queue: setup.queue, payload: .object([
            "to": .string("a@\(setup.domain)"), "subject": .string("s"), "text": .string("t")]))
        let message = try MailMessage(job: job, settings: smtp, templates: [:])
        let clock = ContinuousClock()
        for _ in 0..<2 {
            let start = clock.now
            #expect(throws: SMTPError.self) { try transport.send(message) }
            do { try transport.send(message) } catch { #expect(error.replyCode == 535, "\(error)") }
            #expect(start.duration(to: clock.now) < .seconds(20), "not after the 60 s timeout")
        }
    }

    @Test func withoutTheCAFileTheRelaysCertificateIsRefused() async throws {
        let setup = MailTestSetup()
        let url = try TestSMTP.environment("JOBROUTER_TEST_SMTP_STARTTLS_URL")
        let (_, _, error) = try await send(setup, try configuration(setup, url: url, mechanism: nil, caFile: false), password: Self.password)
        // Not signed by a CA in the system store: a TLS failure, never a login in the clear.
        #expect(try Self.delivered(domain: setup.domain).isEmpty)
        let message = try #require(error)
        #expect(message.contains("certificate") || message.contains("SSL"), "\(message)")
    }
}

/// Notes when the first job reached an outcome, and its error if it failed.
final class TimedEvents: JobEventRecorder, Sendable {
    private let state = Mutex<(at: ContinuousClock.Instant?, error: String?)>((nil, nil))
    func record(_ event: JobEvent) {
        switch event {
        case .succeeded: state.withLock { if $0.at == nil { $0.at = .now } }
        case .deadLettered(let record, _): state.withLock { if $0.at == nil { $0 = (.now, record.reason) } }
        case .failed(_, _, _, _, let error, _): state.withLock { if $0.at == nil { $0 = (.now, error) } }
        default: break
        }
    }
    var finished: Bool { state.withLock { $0.at != nil } }
    var finishedAt: ContinuousClock.Instant? { state.withLock { $0.at } }
    var firstError: String? { state.withLock { $0.error } }
}
