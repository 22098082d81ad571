import FoundationEssentials
import JobRouter
import Mustache

/// One mail, built from an `smtp` job's payload, ready to send: the envelope (sender and every
/// recipient, Bcc included) and the RFC 5322 / MIME text (Bcc never in it).
///
/// The payload is either the message itself:
/// `{"to": "a@x.org" | [...], "cc": ..., "bcc": ..., "reply_to": ..., "subject": "...", "text": "...", "html": "...", "headers": {...}}`
/// or a template: `{"template": "registration", "to": ..., "vars": {...}}`.
///
/// The text is the same for every attempt of a job (the Message-ID and the MIME boundary come from
/// the job id, the Date header from when the job was first enqueued, which every attempt keeps),
/// so receivers can drop a duplicate delivery.
public struct MailMessage: Sendable, Equatable {
    /// The envelope sender (address only).
    public var sender: String
    /// Every envelope recipient: To, Cc and Bcc.
    public var recipients: [String]
    /// The whole message, CRLF line ends.
    public var data: Data
    /// The Message-ID header value.
    public var messageID: String

    /// Headers a payload may not set itself: the builder writes them.
    static let reservedHeaders: Set<String> = [
        "from", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id", "mime-version",
        "content-type", "content-transfer-encoding", "sender", "return-path",
    ]

    /// Builds the message for `job`; `date` (the Date header) defaults to when the job was first
    /// enqueued, so that every attempt sends the same bytes.
    public init(job: JobEnvelope, settings: SMTPSettings, templates: [String: MailTemplate], date: Date? = nil) throws(MailError) {
        let date = date ?? job.enqueuedAt
        guard case .object(let payload) = job.payload else {
            throw MailError("the payload must be a JSON object, not \(job.payload.typeName)")
        }
        let allowed: Set<String> = ["to", "cc", "bcc", "reply_to", "subject", "text", "html", "headers", "template", "vars"]
        for key in payload.keys.sorted() where !allowed.contains(key) {
            throw MailError("unknown payload field \"\(key)\"")
        }
        let from = try MailAddress(settings.from)
        let to = try Self.addresses(payload["to"], field: "to")
        let cc = try Self.addresses(payload["cc"], field: "cc")
        let bcc = try Self.addresses(payload["bcc"], field: "bcc")
        let replyTo = try Self.addresses(payload["reply_to"], field: "reply_to")
        if to.isEmpty && cc.isEmpty && bcc.isEmpty { throw MailError("no recipient: set \"to\"") }

        var subject: String
        var text: String?
        var html: String?
        if let templateValue = payload["template"] {
            guard let name = templateValue.stringValue else { throw MailError("\"template\" must be a string") }
            guard let template = templates[name] else {
                throw MailError("unknown template '\(name)'; templates: \(templates.keys.sorted().joined(separator: ", "))")
            }
            for field in ["subject", "text", "html"] where payload[field] != nil {
                throw MailError("\"\(field)\" cannot be given with \"template\"")
            }
            let vars = payload["vars"].map(Self.mustacheValue) ?? [String: Any]()
            subject = try Self.render(template.subject, vars, html: false, part: "subject")
            text = try template.text.map { template throws(MailError) in try Self.render(template, vars, html: false, part: "text") }
            html = try template.html.map { template throws(MailError) in try Self.render(template, vars, html: true, part: "html") }
        } else {
            guard let value = payload["subject"]?.stringValue else { throw MailError("\"subject\" must be a string") }
            subject = value
            text = try Self.optionalString(payload["text"], field: "text")
            html = try Self.optionalString(payload["html"], field: "html")
        }
        subject = subject.trimmingCharacters(in: .whitespaces)
        if MailAddress.hasLineBreak(subject) { throw MailError("the subject contains a line break") }
        if text == nil && html == nil { throw MailError("no body: set \"text\" and/or \"html\"") }

        var extra: [(String, String)] = []
        if let headers = payload["headers"] {
            guard case .object(let fields) = headers else { throw MailError("\"headers\" must be an object of strings") }
            for name in fields.keys.sorted() {
                guard let value = fields[name]?.stringValue else { throw MailError("header \(name) must be a string") }
                let tokenCharacters = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
                guard !name.isEmpty, name.allSatisfy({ tokenCharacters.contains($0) }) else { throw MailError("invalid header name '\(name)'") }
                if Self.reservedHeaders.contains(name.lowercased()) { throw MailError("header \(name) is set by JobRouter") }
                if MailAddress.hasLineBreak(value) { throw MailError("header \(name) contains a line break") }
                extra.append((name, MIMEEncoding.encodedWords(value)))
            }
        }

        let domain = from.address.split(separator: "@").last.map(String.init) ?? "jobrouter"
        messageID = "<\(job.id.rawValue)@\(domain)>"
        sender = from.address
        recipients = (to + cc + bcc).map(\.address)

        var head = ""
        func header(_ name: String, _ value: String) { head += "\(name): \(value)\r\n" }
        header("Date", MIMEEncoding.date(date))
        header("From", from.headerValue)
        if !to.isEmpty { header("To", to.map(\.headerValue).joined(separator: ",\r\n ")) }
        if !cc.isEmpty { header("Cc", cc.map(\.headerValue).joined(separator: ",\r\n ")) }
        if !replyTo.isEmpty { header("Reply-To", replyTo.map(\.headerValue).joined(separator: ",\r\n ")) }
        header("Subject", MIMEEncoding.encodedWords(subject))
        header("Message-ID", messageID)
        header("MIME-Version", "1.0")
        for (name, value) in extra { header(name, value) }

        var body = ""
        if let text, let html {
            let boundary = "=_jobrouter_\(job.id.rawValue)"
            header("Content-Type", "multipart/alternative; boundary=\"\(boundary)\"")
            body += "This is a multi-part message in MIME format.\r\n"
            body += "--\(boundary)\r\n" + Self.part(text, subtype: "plain")
            body += "--\(boundary)\r\n" + Self.part(html, subtype: "html")
            body += "--\(boundary)--\r\n"
        } else if let text {
            body = Self.part(text, subtype: "plain", into: &head)
        } else if let html {
            body = Self.part(html, subtype: "html", into: &head)
        }
        data = Data((head + "\r\n" + body).utf8)
    }

    /// A body part with its own headers (for multipart).
    private static func part(_ content: String, subtype: String) -> String {
        var headers = ""
        let body = part(content, subtype: subtype, into: &headers)
        return headers + "\r\n" + body
    }

    /// Writes the part's Content-Type and Content-Transfer-Encoding into `headers`; returns its body.
    private static func part(_ content: String, subtype: String, into headers: inout String) -> String {
        let normalized = MIMEEncoding.crlf(content)
        let lines = normalized.components(separatedBy: "\r\n")
        let plain = normalized.allSatisfy { $0.isASCII } && lines.allSatisfy { $0.utf8.count <= 76 }
        headers += "Content-Type: text/\(subtype); charset=utf-8\r\n"
        if plain {
            headers += "Content-Transfer-Encoding: 7bit\r\n"
            return normalized.hasSuffix("\r\n") ? normalized : normalized + "\r\n"
        }
        headers += "Content-Transfer-Encoding: base64\r\n"
        return MIMEEncoding.base64Lines(Data(normalized.utf8))
    }

    private static func addresses(_ value: JSONValue?, field: String) throws(MailError) -> [MailAddress] {
        switch value {
        case nil, .null?: return []
        case .string(let text)?: return [try MailAddress(text)]
        case .array(let items)?:
            var result: [MailAddress] = []
            for item in items {
                guard let text = item.stringValue else { throw MailError("\"\(field)\" must hold strings") }
                result.append(try MailAddress(text))
            }
            return result
        default:
            throw MailError("\"\(field)\" must be an address or a list of addresses")
        }
    }

    private static func optionalString(_ value: JSONValue?, field: String) throws(MailError) -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let text)?: return text
        default: throw MailError("\"\(field)\" must be a string")
        }
    }

    private static func render(_ source: String, _ vars: Any, html: Bool, part: String) throws(MailError) -> String {
        do {
            let template = try MustacheTemplate(string: html ? source : "{{% CONTENT_TYPE: TEXT}}" + source)
            return template.render(vars)
        } catch {
            throw MailError("template \(part) does not parse: \(error)")
        }
    }

    /// JSON as the plain Swift values Mustache walks.
    static func mustacheValue(_ value: JSONValue) -> Any {
        switch value {
        case .null: return ""
        case .bool(let flag): return flag
        case .integer(let number): return Int(number)
        case .number(let number): return number
        case .string(let text): return text
        case .array(let items): return items.map(mustacheValue)
        case .object(let fields): return fields.mapValues(mustacheValue)
        }
    }
}
