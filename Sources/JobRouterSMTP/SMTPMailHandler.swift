import Foundation
import JobRouter
import Logging
import Metrics
import Synchronization

/// Runs `handler = "smtp"` jobs: builds the message from the payload (or a template) and sends it
/// over one of a fixed set of libcurl handles, each on its own thread and each keeping its SMTP
/// connection open between mails. (The rate limit paces the claims of mail groups, before a job is
/// taken, so the next mail sent is always the highest-priority one waiting: see `JobRouterWorker`.)
///
/// A bad payload (invalid address, line break in a header, unknown template) or a 5xx reply fails
/// the job permanently (dead-lettered with the reason); 4xx replies, connection failures and
/// timeouts fail it for a retry.
public final class SMTPMailHandler: JobHandler {
    private let settings: SMTPSettings
    private let templates: [String: MailTemplate]
    private let pool: SMTPTransportPool

    /// A handler with `connections` handles (give it the concurrency of the groups that send mail,
    /// so each worker slot has its own connection).
    public init(configuration: RouterConfiguration, connections: Int,
                environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard let settings = configuration.smtp else { throw MailError("the configuration has no [smtp] table") }
        self.settings = settings
        self.templates = configuration.templates
        self.pool = SMTPTransportPool(size: max(connections, 1), endpoint: SMTPEndpoint(settings: settings, environment: environment))
    }

    deinit {
        pool.stop()
    }

    /// `jobrouter_smtp_messages_total{outcome}`: sent, failed (will retry), rejected (permanent
    /// reply), invalid (the job could not be made into a message).
    static func count(_ outcome: String) {
        Counter(label: "jobrouter_smtp_messages_total", dimensions: [("outcome", outcome)]).increment()
    }

    /// Connections opened so far by every handle.
    public var connectionsOpened: Int { pool.connectionsOpened }

    public func handle(_ job: JobEnvelope, context: JobContext) async throws {
        let message: MailMessage
        do {
            message = try MailMessage(job: job, settings: settings, templates: templates)
        } catch {
            Self.count("invalid")
            throw JobFailure("bad mail: \(error.message)", permanent: true)
        }
        do {
            try await pool.send(message)
            Self.count("sent")
        } catch let error as SMTPError {
            Self.count(error.permanent ? "rejected" : "failed")
            throw JobFailure(error.description, permanent: error.permanent)
        }
        context.logger.debug("mail sent", metadata: ["message_id": "\(message.messageID)", "recipients": "\(message.recipients.count)"])
    }
}

/// A fixed set of SMTP handles, each confined to its own thread; a send borrows a free one.
final class SMTPTransportPool: Sendable {
    /// The handle of one thread, made on that thread when first used.
    final class Slot {
        let endpoint: SMTPEndpoint
        var transport: SMTPTransport?
        init(endpoint: SMTPEndpoint) { self.endpoint = endpoint }
    }

    private let threads: [ConfinedThread<Slot>]
    private let lease: HandleLease
    private let opened = Mutex(0)

    init(size: Int, endpoint: SMTPEndpoint) {
        threads = (0..<size).map { index in ConfinedThread(name: "jobrouter-smtp-\(index)") { Slot(endpoint: endpoint) } }
        lease = HandleLease(count: size)
    }

    var connectionsOpened: Int { opened.withLock { $0 } }

    func send(_ message: MailMessage) async throws {
        let index = await lease.borrow()
        defer { lease.giveBack(index) }
        let opened = try await threads[index].run { (slot: Slot) throws(SMTPError) -> Int in
            let transport: SMTPTransport
            if let existing = slot.transport {
                transport = existing
            } else {
                transport = try SMTPTransport(endpoint: slot.endpoint)
                slot.transport = transport
            }
            let before = transport.connectionsOpened
            try transport.send(message)
            return transport.connectionsOpened - before
        } ifStopped: {
            SMTPError(replyCode: 0, message: "the mail handler is stopped")
        }
        self.opened.withLock { $0 += opened }
        if opened > 0 { Counter(label: "jobrouter_smtp_connections_opened_total").increment(by: opened) }
    }

    func stop() {
        for thread in threads { thread.stop() }
    }
}
