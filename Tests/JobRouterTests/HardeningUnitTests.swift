import Foundation
import Logging
import Testing
@testable import JobRouter

/// Issue #14's pure logic: no server needed.
struct HardeningUnitTests {
    @Test(arguments: [
        (#"{"type":"x","enqueued_at":1e300}"#, "\"enqueued_at\" is out of range"),
        (#"{"type":"x","enqueued_at":-1}"#, "\"enqueued_at\" is out of range"),
        (#"{"type":"x","enqueued_at":99999999999999999999}"#, "\"enqueued_at\" is out of range"),
        (#"{"type":"x","enqueued_at":"9999-01-01T00:00:00Z"}"#, "\"enqueued_at\" is out of range"),
    ])
    func outOfRangeTimestampsAreRejectedNotTrapped(raw: String, reason: String) {
        #expect {
            _ = try JobEnvelope.decode(Data(raw.utf8), queue: "q")
        } throws: { error in
            "\(error)".contains(reason)
        }
    }

    @Test func arithmeticOnOutsideNumbersSaturates() {
        #expect(Int64(saturating: 1e300) == .max)
        #expect(Int64(saturating: -1e300) == .min)
        #expect(Int64(saturating: .nan) == 0)
        #expect(Duration.saturating(seconds: 1e300) == .milliseconds(Int64.max))
        #expect(Duration.seconds(Int64.max).inMilliseconds == .max)
        // Formatting a date far out of range does not trap either.
        _ = Timestamp.format(Date(timeIntervalSince1970: 1e300))
        _ = Timestamp.format(Date(timeIntervalSince1970: -1e300))
        _ = Timestamp.format(Date(timeIntervalSince1970: -9_223_372_036_854_775.5))
        _ = JobID.make(now: Date(timeIntervalSince1970: -1e300))
    }

    @Test func invalidUTF8IsRefusedWithItsOffset() {
        let bytes = Data(#"{"type":"x","payload":"caf"#.utf8) + Data([0xE9, 0x22, 0x7D])
        #expect(JobEnvelope.invalidUTF8Offset(bytes) == 26)
        #expect(JobEnvelope.invalidUTF8Offset(Data("{\"type\":\"café\"}".utf8)) == nil)
        #expect(throws: EnvelopeError.self) { try JobEnvelope.decode(bytes, queue: "q") }
    }

    @Test func controlCharactersNeverReachALogLine() {
        #expect(LogEscaping.escape("ping\n2026-12-02T00:00:00Z info forged") == "ping\\n2026-12-02T00:00:00Z info forged")
        #expect(LogEscaping.escape("a\u{1B}[2Jb\r\t\u{0}") == "a\\u{1B}[2Jb\\r\\t\\u{0}")
        #expect(LogEscaping.escape("plain café") == "plain café")
        let job = JobEnvelope(type: "ping\nforged", priority: nil, queue: "q", payload: .null)
        #expect(!LoggingJobEventRecorder.describe(job, group: "g").contains("\n"))
        var other = JobEnvelope(type: "café\tx", priority: nil, queue: "q", payload: .null)
        other.attempt = 12
        #expect(LoggingJobEventRecorder.describe(other, group: "g\u{1B}") == "group=g\\u{1B} job=\(other.id.rawValue) type=café\\tx queue=q attempt=12")
        #expect(!LoggingJobEventRecorder.quote("x\ny\u{7}").contains("\n"))
    }

    /// The per-job line goes straight to the line handler's output as bytes; it must be the line
    /// swift-log's path writes for the same text (escaped the same), and a logger with metadata
    /// keeps swift-log's path, so its fields are still written.
    @Test func thePerJobLineIsTheSameLineSwiftLogWrites() throws {
        // Close-on-exec ends: a child another test spawns meanwhile must not hold the write end
        // (the read below would then wait for that child to exit).
        let fds = try #require(ClosingPipe.make())
        defer { close(fds[0]) }
        let output = LogOutput(descriptor: fds[1])
        var logger = Logger(label: "test") { _ in LineLogHandler(output: output) }
        logger.logLevel = .info
        var job = JobEnvelope(type: "ping\u{1B}x", priority: nil, queue: "q\n", payload: .null)
        job.attempt = 3
        let event = JobEvent.succeeded(job, group: "g", wait: .microseconds(420), run: .milliseconds(12))
        #expect(LoggingJobEventRecorder(logger: logger).writesLinesDirectly)
        LoggingJobEventRecorder(logger: logger).record(event)
        let text = LoggingJobEventRecorder.describe(job, group: "g") + " wait=0.4ms run=12ms outcome=ok"
        logger.info(Logger.Message(stringLiteral: text))
        var tagged = logger
        tagged[metadataKey: "worker"] = "w1"
        #expect(!LoggingJobEventRecorder(logger: tagged).writesLinesDirectly)
        LoggingJobEventRecorder(logger: tagged).record(event)
        output.flush()
        close(fds[1])
        var written: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while case let count = read(fds[0], &chunk, chunk.count), count > 0 { written += chunk.prefix(count) }
        let lines = String(decoding: written, as: UTF8.self)
            .split(separator: "\n").map { String($0.dropFirst("2026-12-03T00:00:00.000Z ".count)) }
        let expected = "info group=g job=\(job.id.rawValue) type=ping\\u{1B}x queue=q\\n attempt=3 wait=0.4ms run=12ms outcome=ok"
        #expect(lines == [expected, expected, expected + " worker=w1"])
    }

    @Test func logDurationsAreShortAndRounded() {
        #expect(LoggingJobEventRecorder.format(.microseconds(420)) == "0.4ms")
        #expect(LoggingJobEventRecorder.format(.microseconds(9_960)) == "10.0ms")
        #expect(LoggingJobEventRecorder.format(.microseconds(12_400)) == "12ms")
        #expect(LoggingJobEventRecorder.format(.milliseconds(3_240)) == "3.2s")
        #expect(LoggingJobEventRecorder.format(.seconds(303)) == "5m3s")
        #expect(LoggingJobEventRecorder.format(.seconds(-1)) == "0.0ms")
    }

    @Test func execChildrenGetAnAllowlistedEnvironment() {
        let handler = ExecJobHandler(command: ["true"], passthrough: ["API_TOKEN"])
        let job = JobEnvelope(type: "t", priority: "high", queue: "q", payload: .null, attempt: 2)
        let child = handler.childEnvironment(for: job, from: [
            "PATH": "/bin", "HOME": "/root", "LC_ALL": "C.UTF-8", "API_TOKEN": "tok",
            "JOBROUTER_REDIS_URL": "redis://:pw@h", "SMTP_PASSWORD": "pw", "AWS_SECRET_ACCESS_KEY": "k",
        ])
        #expect(Set(child.keys) == ["PATH", "HOME", "LC_ALL", "API_TOKEN", "JOB_ID", "JOB_TYPE", "JOB_PRIORITY", "JOB_QUEUE", "JOB_ATTEMPT"])
        #expect(child["JOB_ATTEMPT"] == "2" && child["JOB_PRIORITY"] == "high")
    }

    @Test func oversizePayloadsAreEstimatedWithoutEncoding() {
        #expect(JSONValue.string(String(repeating: "x", count: 100)).estimatedSizeOver(50))
        #expect(!JSONValue.object(["a": .integer(1)]).estimatedSizeOver(50))
        #expect(JSONValue.array(Array(repeating: .string("abcdefghij"), count: 10)).estimatedSizeOver(100))
    }

    @Test func maxPayloadAndEnvParseAndValidate() throws {
        let configuration = try RouterConfiguration.parse(toml: """
            max_payload = "512KB"
            [types.a]
            handler = "exec"
            command = ["true"]
            env = ["API_TOKEN"]
            [groups.g]
            queues = ["default"]
            """)
        #expect(configuration.maxPayload == 512 * 1024)
        #expect(configuration.types["a"]?.environment == ["API_TOKEN"])
        #expect(throws: ConfigurationError.self) {
            try RouterConfiguration.parse(toml: "max_payload = \"lots\"\n[types.a]\nhandler = \"noop\"")
        }
        #expect {
            try RouterConfiguration.parse(toml: """
                [types.a]
                handler = "exec"
                command = ["true"]
                env = ["SMTP_PW"]
                [smtp]
                url = "smtp://h:25"
                from = "a@b.c"
                password_env = "SMTP_PW"
                """, file: "q.toml")
        } throws: { error in
            "\(error)" == "q.toml:4: types.a.env: 'SMTP_PW' holds one of JobRouter's own secrets and is never passed to jobs"
        }
    }
}

/// The wait between tries of a settle must hold even in a task that shutdown cancelled.
struct BackoffSleepTests {
    @Test func aCancelledTaskStillWaitsBetweenTries() async {
        let clock = ContinuousClock()
        let task = Task {
            let start = clock.now
            await WorkerGroupRunner.sleepIgnoringCancellation(.milliseconds(200))
            return start.duration(to: clock.now)
        }
        task.cancel()
        #expect(await task.value >= .milliseconds(190))
    }
}
