import Foundation
import JobRouter
@testable import JobRouterSMTP
import Testing

@Suite struct MailMessageTests {
    let settings = SMTPSettings(url: "smtp://127.0.0.1:2525", from: "Exämple Sender <noreply@example.com>")

    func job(_ payload: String, id: String = "01JOBID0000000000000000000") throws -> JobEnvelope {
        JobEnvelope(id: JobID(rawValue: id), type: "email", priority: "high", queue: "emails:high", payload: try JSONValue.parse(payload))
    }

    func build(_ payload: String, templates: [String: MailTemplate] = [:]) throws -> MailMessage {
        try MailMessage(job: try job(payload), settings: settings, templates: templates, date: Date(timeIntervalSince1970: 1_795_000_000))
    }

    func text(_ message: MailMessage) -> String { String(decoding: message.data, as: UTF8.self) }

    @Test func headersEnvelopeAndBcc() throws {
        let message = try build(#"{"to":["a@x.org","B <b@x.org>"],"cc":"c@x.org","bcc":"hidden@x.org","reply_to":"r@x.org","subject":"Hi","text":"Hello"}"#)
        let body = text(message)
        #expect(message.sender == "noreply@example.com")
        #expect(message.recipients == ["a@x.org", "b@x.org", "c@x.org", "hidden@x.org"])
        #expect(body.contains("To: a@x.org,\r\n B <b@x.org>\r\n"))
        #expect(body.contains("Cc: c@x.org\r\n"))
        #expect(body.contains("Reply-To: r@x.org\r\n"))
        #expect(!body.contains("hidden@x.org"), "bcc must never be in the headers")
        #expect(!body.lowercased().contains("bcc:"))
        #expect(body.contains("Message-ID: <01JOBID0000000000000000000@example.com>\r\n"))
        #expect(body.contains("MIME-Version: 1.0\r\n"))
        #expect(body.contains("Date: Wed, 18 Nov 2026 11:06:40 +0000\r\n"))
        #expect(body.contains("From: =?UTF-8?B?"))
    }

    @Test func sameJobSameBytes() throws {
        let payload = #"{"to":"a@x.org","subject":"Hi","text":"t","html":"<p>h</p>"}"#
        #expect(try build(payload) == (try build(payload)))
    }

    @Test func nonASCIISubjectIsEncodedWordsOfAtMost75Characters() throws {
        let subject = String(repeating: "Grüße aus Köln — ", count: 8)
        let message = try build(#"{"to":"a@x.org","subject":"\#(subject)","text":"t"}"#)
        let headerLines = text(message).components(separatedBy: "\r\n\r\n")[0].components(separatedBy: "\r\n")
        let subjectLines = headerLines.drop { !$0.hasPrefix("Subject:") }.prefix { $0.hasPrefix("Subject:") || $0.hasPrefix(" ") }
        var decoded = ""
        for line in subjectLines {
            let word = line.replacingOccurrences(of: "Subject: ", with: "").trimmingCharacters(in: .whitespaces)
            #expect(word.count <= 75)
            #expect(word.hasPrefix("=?UTF-8?B?") && word.hasSuffix("?="))
            let base64 = String(word.dropFirst(10).dropLast(2))
            decoded += String(decoding: try #require(Data(base64Encoded: base64)), as: UTF8.self)
        }
        #expect(decoded == subject.trimmingCharacters(in: .whitespaces))
    }

    @Test func multipartAlternativeWithBothBodiesAndShortLines() throws {
        let longLine = String(repeating: "ä", count: 3000)
        let message = try build(#"{"to":"a@x.org","subject":"s","text":"\#(longLine)","html":"<p>x</p>"}"#)
        let body = text(message)
        #expect(body.contains("Content-Type: multipart/alternative; boundary=\"=_jobrouter_01JOBID0000000000000000000\""))
        #expect(body.contains("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64"))
        #expect(body.contains("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit"))
        #expect(body.hasSuffix("--=_jobrouter_01JOBID0000000000000000000--\r\n"))
        #expect(body.components(separatedBy: "\r\n").allSatisfy { $0.utf8.count <= 998 })
        #expect(!body.replacingOccurrences(of: "\r\n", with: "").contains("\n"), "only CRLF line ends")
    }

    @Test(arguments: [
        (#"{"to":"a@x.org","subject":"hi\r\nBcc: x@y.org","text":"t"}"#, "the subject contains a line break"),
        (#"{"to":"a@x.org\r\nBcc: x@y.org","subject":"s","text":"t"}"#, "address contains a line break"),
        (#"{"to":"not-an-address","subject":"s","text":"t"}"#, "invalid address"),
        (#"{"to":"a@x..org","subject":"s","text":"t"}"#, "invalid address"),
        (#"{"to":"a@x.org","subject":"s"}"#, "no body"),
        (#"{"subject":"s","text":"t"}"#, "no recipient"),
        (#"{"to":"a@x.org","subject":"s","text":"t","headers":{"X-Tag":"a\nb"}}"#, "header X-Tag contains a line break"),
        (#"{"to":"a@x.org","subject":"s","text":"t","headers":{"Bcc":"x@y.org"}}"#, "header Bcc is set by JobRouter"),
        (#"{"to":"a@x.org","subject":"s","text":"t","headers":{"X Bad":"v"}}"#, "invalid header name"),
        (#"{"to":"a@x.org","subject":"s","text":"t","attachments":[]}"#, "unknown payload field"),
        (#"{"template":"missing","to":"a@x.org"}"#, "unknown template 'missing'"),
        (#"["a@x.org"]"#, "must be a JSON object"),
    ])
    func badPayloadsAreRejected(payload: String, reason: String) {
        #expect {
            _ = try build(payload)
        } throws: { error in
            "\(error)".contains(reason)
        }
    }

    @Test func templatesRenderWithMustache() throws {
        let templates = ["welcome": MailTemplate(subject: "Welcome, {{name}}!", text: "Hi {{name}} & co", html: "<b>{{name}}</b>")]
        let message = try build(#"{"template":"welcome","to":"a@x.org","vars":{"name":"Zoë <x>"}}"#, templates: templates)
        let body = text(message)
        #expect(body.contains("Subject: =?UTF-8?B?" + Data("Welcome, Zoë <x>!".utf8).base64EncodedString().prefix(20)))
        // Text parts are not HTML-escaped; HTML parts are.
        #expect(body.contains(MIMEEncoding.base64Lines(Data("Hi Zoë <x> & co".utf8))))
        #expect(body.contains("<b>Zo") == false)
        #expect(body.contains(MIMEEncoding.base64Lines(Data("<b>Zoë &lt;x&gt;</b>".utf8))))
    }

    @Test func everyAttemptOfAMailSendsTheSameBytes() throws {
        var job = JobEnvelope(type: "email", priority: nil, queue: "q", payload: .object([
            "to": .string("a@example.org"), "subject": .string("s"), "text": .string("t")]),
            enqueuedAt: Date(timeIntervalSince1970: 1_796_000_000))
        let settings = SMTPSettings(url: "smtp://127.0.0.1:25", from: "noreply@example.org")
        let first = try MailMessage(job: job, settings: settings, templates: [:])
        job.attempt = 3
        job.lastError = "SMTP 451: try again"
        let third = try MailMessage(job: job, settings: settings, templates: [:])
        #expect(first.data == third.data)
        #expect(String(decoding: first.data, as: UTF8.self).contains("Date: "))
    }
}
