import Testing
@testable import JobRouter

/// A valid configuration; tests replace parts of it to make one thing wrong at a time.
let sampleTOML = """
    default_queue = "default"

    [redis]
    url = "redis://127.0.0.1:6379/0"

    [types.email]
    handler = "exec"
    command = ["./send.sh"]
    priorities = { high = "emails:high", low = "emails:low" }
    default_priority = "low"
    timeout = "30s"

    [types.report]
    handler = "noop"

    [groups.mail]
    queues = ["emails:high", "emails:low"]
    concurrency = 8
    shutdown_timeout = "25s"

    [groups.general]
    queues = ["default"]
    concurrency = 4
    """

func parseError(_ toml: String) -> ConfigurationError? {
    do {
        _ = try RouterConfiguration.parse(toml: toml, file: "queues.toml")
        return nil
    } catch let error as ConfigurationError {
        return error
    } catch {
        Issue.record("unexpected error type: \(error)")
        return nil
    }
}

@Suite struct ConfigurationTests {
    @Test func parsesTheSample() throws {
        let configuration = try RouterConfiguration.parse(toml: sampleTOML, file: "queues.toml")
        #expect(configuration.defaultQueue == "default")
        #expect(configuration.types["email"]?.priorities == ["high": "emails:high", "low": "emails:low"])
        #expect(configuration.types["email"]?.timeout == .seconds(30))
        #expect(configuration.types["email"]?.command == ["./send.sh"])
        #expect(configuration.types["report"]?.timeout == .seconds(300))
        #expect(configuration.groups["mail"]?.queues == ["emails:high", "emails:low"])
        #expect(configuration.groups["mail"]?.concurrency == 8)
        #expect(configuration.groups["general"]?.shutdownTimeout == .seconds(25))
        #expect(configuration.redis.namespace == "jobrouter")
        #expect(configuration.unreadQueues.isEmpty)
    }

    @Test func shippedFileIsValid() throws {
        let path = #filePath.replacingOccurrences(of: "Tests/JobRouterTests/ConfigurationTests.swift", with: "queues.toml")
        let configuration = try RouterConfiguration.load(path: path)
        #expect(configuration.groups.keys.sorted() == ["general", "mail"])
    }

    @Test func typoInKeyIsReportedWithSuggestionAndLine() throws {
        let error = try #require(parseError(sampleTOML.replacingOccurrences(of: "concurrency = 8", with: "concurency = 8")))
        #expect(error.keyPath == "groups.mail.concurency")
        #expect(error.message.contains("did you mean 'concurrency'"))
        #expect(error.line == 18)
        #expect(error.description.hasPrefix("queues.toml:18: groups.mail.concurency: unknown key"))
    }

    @Test func unknownTopLevelKey() throws {
        let error = try #require(parseError("defualt_queue = \"x\"\n" + sampleTOML))
        #expect(error.keyPath == "defualt_queue")
        #expect(error.line == 1)
    }

    @Test func syntaxErrorNamesTheLine() throws {
        let error = try #require(parseError(sampleTOML.replacingOccurrences(of: "concurrency = 4", with: "concurrency = = 4")))
        #expect(error.line == 23)
        #expect(error.message.contains("TOML syntax error"))
    }

    @Test(arguments: [
        ("concurrency = 8", "concurrency = 0", "groups.mail.concurrency", "at least 1"),
        ("concurrency = 8", "concurrency = -2", "groups.mail.concurrency", "at least 1"),
        ("concurrency = 8", "concurrency = \"8\"", "groups.mail.concurrency", "whole number"),
        ("queues = [\"default\"]", "queues = [\"default\", \"nowhere\"]", "groups.general.queues", "no type routes to queue 'nowhere'"),
        ("queues = [\"default\"]", "queues = [\"default\", \"default\"]", "groups.general.queues", "listed twice"),
        ("queues = [\"default\"]", "queues = []", "groups.general.queues", "at least one queue"),
        ("handler = \"noop\"", "handler = \"magic\"", "types.report.handler", "unknown handler kind 'magic'"),
        ("default_priority = \"low\"", "default_priority = \"urgent\"", "types.email.default_priority", "'urgent' is not one of"),
        ("timeout = \"30s\"", "timeout = \"30 parsecs\"", "types.email.timeout", "bad duration"),
        ("timeout = \"30s\"", "timeout = 30", "types.email.timeout",
         #"must be a duration string with a unit ("250ms", "30s", "5m", "1h"), not the integer 30"#),
        ("shutdown_timeout = \"25s\"", "shutdown_timeout = \"soon\"", "groups.mail.shutdown_timeout", "bad duration"),
        ("command = [\"./send.sh\"]", "command = []", "types.email.command", "needs a command"),
        ("command = [\"./send.sh\"]", "command = \"./send.sh --fast\"", "types.email.command",
         #"must be an array of strings, the program and its arguments (no shell runs it): command = ["./send.sh", "--fast"]"#),
        ("timeout = \"30s\"", "timeout = \"30s\"\nbackoff = \"200ms\"", "types.email.backoff",
         #"must be a table: backoff = { base = "200ms", max = "1h" }"#),
        ("handler = \"noop\"", "handler = \"noop\"\ncommand = [\"x\"]", "types.report.command", "only handler \"exec\""),
        ("emails:low\" }", "jobrouter:low\" }", "types.email.priorities.low", "JobRouter's own key space"),
        ("timeout = \"30s\"", "timeout = \"30s\"\nmax_attempts = 0", "types.email.max_attempts", "at least 1"),
        ("timeout = \"30s\"", "timeout = \"30s\"\nbackoff = { base = \"2s\", max = \"1s\" }", "types.email.backoff.max", "not be shorter"),
        ("timeout = \"30s\"", "timeout = \"30s\"\nbackoff = { bsae = \"2s\" }", "types.email.backoff.bsae", "did you mean 'base'"),
        ("shutdown_timeout = \"25s\"", "shutdown_timeout = \"25s\"\nlease = \"500ms\"", "groups.mail.lease", "at least 1s"),
        ("shutdown_timeout = \"25s\"", "shutdown_timeout = \"25s\"\nmax_recoveries = -1", "groups.mail.max_recoveries", "cannot be negative"),
        ("default_queue = \"default\"", "default_queue = \"default\"\nmax_dead = 0", "max_dead", "at least 1"),
        ("default_queue = \"default\"", "default_queue = \"default\"\nschedule_poll = \"5ms\"", "schedule_poll", "from 10ms to 1m, not 5ms"),
        ("default_queue = \"default\"", "default_queue = \"default\"\nschedule_poll = 2", "schedule_poll",
         #"must be a duration string with a unit ("250ms", "30s", "5m", "1h"), not the integer 2"#),
    ])
    func validationErrorsNameTheKeyPath(original: String, replacement: String, keyPath: String, message: String) throws {
        #expect(sampleTOML.contains(original))
        let error = try #require(parseError(sampleTOML.replacingOccurrences(of: original, with: replacement)))
        #expect(error.keyPath == keyPath)
        #expect(error.message.contains(message), "\(error)")
        #expect(error.file == "queues.toml")
        #expect(error.line != nil, "\(error)")
        #expect(!error.description.contains("\n"))
    }

    @Test func schedulePollIsReadAndDefaultsToAQuarterSecond() throws {
        #expect(try RouterConfiguration.parse(toml: sampleTOML).schedulePoll == .milliseconds(250))
        let toml = sampleTOML.replacingOccurrences(of: "default_queue = \"default\"", with: "default_queue = \"default\"\nschedule_poll = \"2s\"")
        #expect(try RouterConfiguration.parse(toml: toml).schedulePoll == .seconds(2))
    }

    @Test func missingHandler() throws {
        let error = try #require(parseError(sampleTOML.replacingOccurrences(of: "handler = \"noop\"", with: "")))
        #expect(error.keyPath == "types.report.handler")
    }

    @Test func unreadQueueIsAWarningNotAnError() throws {
        let toml = sampleTOML.replacingOccurrences(of: "queues = [\"emails:high\", \"emails:low\"]", with: "queues = [\"emails:high\"]")
        let configuration = try RouterConfiguration.parse(toml: toml)
        #expect(configuration.unreadQueues == ["emails:low"])
    }

    @Test func smtpTypeNeedsTheMailHandlerProvided() throws {
        let toml = sampleTOML.replacingOccurrences(of: "handler = \"exec\"\ncommand = [\"./send.sh\"]", with: "handler = \"smtp\"")
            + "\n[smtp]\nurl = \"smtp://127.0.0.1:2525\"\nfrom = \"a@x.org\"\n"
        let configuration = try RouterConfiguration.parse(toml: toml)
        let email = try #require(configuration.types["email"])
        // Without the SMTP provider the kind is named, and how to get it.
        #expect(HandlerRegistry().availability(of: email, in: configuration)?.contains("JobRouterSMTP") == true)
        #expect(throws: HandlerResolutionError.self) { try HandlerRegistry().resolve(["email"], in: configuration) }
        var registry = HandlerRegistry()
        registry.provideSMTP(NoopJobHandler())
        #expect(try registry.resolve(["email"], in: configuration)["email"] is NoopJobHandler)
    }

    @Test func unreadableFile() {
        #expect {
            _ = try RouterConfiguration.load(path: "/nonexistent/queues.toml")
        } throws: { error in
            "\(error)".hasPrefix("/nonexistent/queues.toml: cannot read the file")
        }
    }
}

@Suite struct DurationParserTests {
    @Test(arguments: [
        ("250ms", Duration.milliseconds(250)), ("30s", .seconds(30)), ("5m", .seconds(300)),
        ("1h", .seconds(3600)), ("1.5s", .milliseconds(1500)), ("7d", .seconds(7 * 86400)), ("0s", .zero),
    ])
    func parses(text: String, expected: Duration) {
        #expect(DurationParser.parse(text) == expected)
    }

    @Test(arguments: ["", "5", "s", "-1s", "5 minutes", "1e3s", "ms", "5x"])
    func rejects(text: String) {
        #expect(DurationParser.parse(text) == nil)
    }

    @Test func formats() {
        #expect(DurationParser.format(.seconds(30)) == "30s")
        #expect(DurationParser.format(.seconds(300)) == "5m")
        #expect(DurationParser.format(.milliseconds(250)) == "250ms")
    }
}

@Suite struct RetryBackoffTests {
    let backoff = RetryBackoff(base: .milliseconds(100), max: .seconds(1))

    @Test func ceilingDoublesUpToTheMaximum() {
        #expect((1...6).map { backoff.ceiling(afterFailures: $0) }
                == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)])
        #expect(backoff.ceiling(afterFailures: 1000) == .seconds(1))
    }

    @Test func fullJitterSpansZeroToTheCeiling() {
        #expect(backoff.delay(afterFailures: 3, unit: 0) == .zero)
        #expect(backoff.delay(afterFailures: 3, unit: 0.5) == .milliseconds(200))
        #expect(backoff.delay(afterFailures: 3, unit: 1) == .milliseconds(400))
        for _ in 0..<1000 {
            let delay = backoff.delay(afterFailures: 2)
            #expect(delay >= .zero && delay <= .milliseconds(200))
        }
    }

    @Test func parsedFromTheConfiguration() throws {
        let toml = sampleTOML.replacingOccurrences(of: "timeout = \"30s\"", with: "timeout = \"30s\"\nmax_attempts = 3\nbackoff = { base = \"100ms\", max = \"1s\" }")
        let email = try #require(try RouterConfiguration.parse(toml: toml).types["email"])
        #expect(email.maxAttempts == 3)
        #expect(email.backoff == backoff)
    }
}

/// Handler kinds are providers: each reads and checks its own keys, and a module can add a kind.
struct HandlerProviderTests {
    struct EchoProvider: HandlerProvider {
        var kind: HandlerKind { "echo" }
        var optionKeys: Set<String> { ["word"] }
        func validate(_ type: JobTypeConfiguration, in configuration: RouterConfiguration) -> HandlerOptionProblem? {
            type.options["word"]?.stringValue == nil ? HandlerOptionProblem(key: "word", "must be a string") : nil
        }
        func makeHandler(for type: JobTypeConfiguration, context: HandlerContext) throws -> any JobHandler { NoopJobHandler() }
    }

    let toml = """
        [types.say]
        handler = "echo"
        word = "hello"
        [groups.g]
        queues = ["default"]
        """

    @Test func aModuleAddsAKindWithItsOwnKeys() throws {
        var registry = HandlerRegistry()
        registry.add(EchoProvider())
        let configuration = try RouterConfiguration.parse(toml: toml, providers: registry.providers)
        #expect(configuration.types["say"]?.options["word"] == .string("hello"))
        #expect(try registry.resolve(["say"], in: configuration)["say"] is NoopJobHandler)
    }

    @Test func aKindsKeysAreCheckedByItsProvider() throws {
        var registry = HandlerRegistry()
        registry.add(EchoProvider())
        #expect {
            try RouterConfiguration.parse(toml: toml.replacingOccurrences(of: "word = \"hello\"", with: "word = 3"), file: "q.toml",
                                          providers: registry.providers)
        } throws: { "\($0)" == "q.toml:3: types.say.word: must be a string" }
        #expect {
            try RouterConfiguration.parse(toml: toml.replacingOccurrences(of: "word =", with: "wrod ="), file: "q.toml",
                                          providers: registry.providers)
        } throws: { "\($0)".contains("types.say.wrod: unknown key (did you mean 'word'?)") }
        // Without its provider the kind is unknown (it is not one of JobRouter's own).
        #expect { try RouterConfiguration.parse(toml: toml, file: "q.toml") } throws: {
            "\($0)".contains("types.say.handler: unknown handler kind 'echo'")
        }
    }

    @Test func execKeysBelongToExec() {
        #expect {
            try RouterConfiguration.parse(toml: "[types.a]\nhandler = \"noop\"\ncommand = [\"x\"]\n[groups.g]\nqueues = [\"default\"]", file: "q.toml")
        } throws: { "\($0)".contains("types.a.command: only handler \"exec\" takes 'command' (this type's handler is \"noop\")") }
    }

    /// `--config`, else `$JOBROUTER_CONFIG` (when not empty), else `queues.toml`: the rule both
    /// executables read the file by.
    @Test func theConfigurationPathComesFromTheOptionThenTheEnvironment() {
        #expect(RouterConfiguration.path(given: "a.toml", environment: ["JOBROUTER_CONFIG": "b.toml"]) == "a.toml")
        #expect(RouterConfiguration.path(given: nil, environment: ["JOBROUTER_CONFIG": "b.toml"]) == "b.toml")
        #expect(RouterConfiguration.path(given: nil, environment: ["JOBROUTER_CONFIG": ""]) == "queues.toml")
        #expect(RouterConfiguration.path(given: nil, environment: [:]) == "queues.toml")
    }
}
