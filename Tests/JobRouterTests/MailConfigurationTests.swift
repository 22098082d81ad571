import Foundation
import Testing
@testable import JobRouter

/// Mail settings in queues.toml: rate limits, the [smtp] table, template files.
@Suite struct MailConfigurationTests {
    @Test func rateLimitsParse() {
        #expect(RateLimit("20/s") == RateLimit(count: 20, period: .seconds(1)))
        #expect(RateLimit("600/min") == RateLimit(count: 600, period: .seconds(60)))
        #expect(RateLimit("10000/h") == RateLimit(count: 10000, period: .seconds(3600)))
        #expect(RateLimit("20/s")?.interval == .milliseconds(50))
        #expect(RateLimit("0/s") == nil)
        #expect(RateLimit("fast") == nil)
        #expect(RateLimit("5/week") == nil)
    }

    @Test func smtpConfigurationIsValidated() throws {
        let base = sampleTOML.replacingOccurrences(of: "handler = \"exec\"\ncommand = [\"./send.sh\"]", with: "handler = \"smtp\"")
        #expect(parseError(base)?.keyPath == "types.email.handler")
        let withSMTP = base + "\n[smtp]\nurl = \"smtp://127.0.0.1:2525\"\nfrom = \"a@x.org\"\nrate_limit = \"20/s\"\nburst = 5\n"
        let configuration = try RouterConfiguration.parse(toml: withSMTP)
        #expect(configuration.smtp?.rateLimit == RateLimit(count: 20, period: .seconds(1)))
        #expect(parseError(withSMTP + "password = \"hunter2\"\n")?.message.contains("environment") == true)
        #expect(parseError(withSMTP.replacingOccurrences(of: "20/s", with: "lots"))?.keyPath == "smtp.rate_limit")
        #expect(parseError(withSMTP.replacingOccurrences(of: "a@x.org", with: "nobody"))?.keyPath == "smtp.from")
        #expect(parseError(withSMTP.replacingOccurrences(of: "smtp://", with: "http://"))?.keyPath == "smtp.url")
        #expect(!(parseError(withSMTP + "password = \"hunter2\"\n")?.description.contains("hunter2") ?? true))
    }
}

@Suite struct MailTemplateFileTests {
    @Test func templateFilesAreReadRelativeToTheConfiguration() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("jobrouter-templates-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("mail"), withIntermediateDirectories: true)
        try "Hi {{name}}".write(to: directory.appendingPathComponent("mail/welcome.txt"), atomically: true, encoding: .utf8)
        let path = directory.appendingPathComponent("queues.toml").path
        let toml = sampleTOML + "\n[templates.welcome]\nsubject = \"Welcome\"\ntext_file = \"mail/welcome.txt\"\n"
        try toml.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try RouterConfiguration.load(path: path).templates["welcome"]?.text == "Hi {{name}}")
        try (toml.replacingOccurrences(of: "welcome.txt", with: "missing.txt")).write(toFile: path, atomically: true, encoding: .utf8)
        #expect {
            _ = try RouterConfiguration.load(path: path)
        } throws: { error in
            (error as? ConfigurationError)?.keyPath == "templates.welcome.text_file" && "\(error)".contains("cannot read")
        }
    }
}
