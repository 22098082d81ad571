import Foundation
@testable import JobRouter
@testable import JobRouterHTTP
import Testing

/// The pure parts of #10: addresses, /proc parsing, throughput arithmetic, label bounding.
struct ObservabilityUnitTests {
    @Test func listenAddressesParseAndBadOnesSayWhy() throws {
        #expect(try HTTPListenAddress(parsing: "9464") == HTTPListenAddress(host: "127.0.0.1", port: 9464))
        #expect(try HTTPListenAddress(parsing: "0.0.0.0:80") == HTTPListenAddress(host: "0.0.0.0", port: 80))
        #expect(try HTTPListenAddress(parsing: "[::1]:9464") == HTTPListenAddress(host: "::1", port: 9464))
        #expect(HTTPListenAddress(host: "::1", port: 9464).description == "[::1]:9464")
        for bad in ["", ":9464", "host:", "host:99999", "host:http"] {
            #expect(throws: HTTPConfigurationError.self) { try HTTPListenAddress(parsing: bad) }
        }
    }

    @Test func httpListenInTheFileIsCheckedWithItsLine() throws {
        let toml = """
            [types.a]
            handler = "noop"
            [groups.g]
            queues = ["default"]
            [http]
            listen = "127.0.0.1:70000"
            """
        do {
            _ = try RouterConfiguration.parse(toml: toml, file: "queues.toml")
            Issue.record("accepted a port over 65535")
        } catch let error as ConfigurationError {
            #expect(error.description.hasPrefix("queues.toml:6: http.listen:"), "\(error)")
        }
        let good = try RouterConfiguration.parse(toml: toml.replacingOccurrences(of: "70000", with: "9464"), file: "queues.toml")
        #expect(good.httpListen == HTTPListenAddress(host: "127.0.0.1", port: 9464))
        #expect(throws: ConfigurationError.self) { try RouterConfiguration.parse(toml: toml + "\nport = 1", file: "q.toml") }
    }

    @Test func procFilesGiveMemoryCPUAndStartTime() throws {
        // A command name with spaces and a parenthesis: fields are counted from the last ')'.
        let stat = "4242 (job (router) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 12345 0 0"
        let statm = "100000 2500 300 10 0 5000 0"
        let system = "cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"
        let parsed = try #require(ProcessStatistics.parse(stat: stat, statm: statm, ticksPerSecond: 100, pageSize: 4096))
        #expect(parsed.residentBytes == 2500 * 4096)
        #expect(parsed.cpuSeconds == 3.0)
        #expect(ProcessStatistics.startTime(stat: stat, system: system, ticksPerSecond: 100) == 1_700_000_000 + 123.45)
        #expect(ProcessStatistics.parse(stat: "garbage", statm: statm, ticksPerSecond: 100, pageSize: 4096) == nil)
        #expect(ProcessStatistics.startTime(stat: stat, system: "cpu 1 2 3\n", ticksPerSecond: 100) == nil)
        #expect(ProcessStatistics.read() != nil && ProcessStatistics.startTime() != nil)
    }

    @Test func throughputFieldsRoundTripAndTheLastMinuteBlendsTwoBuckets() {
        let key = ThroughputCount.Key(minute: 10, dimension: .queue, name: "emails:high", failed: true)
        #expect(ThroughputCount.Key(minute: 10, field: key.field) == key)
        #expect(ThroughputCount.Key(minute: 10, field: "x\tq\tname") == nil)
        var series = ThroughputSeries(minutes: [99, 100])
        series.add(minute: 99, fields: [("p\tq\tq1", 60), ("f\tq\tq1", 6), ("p\tt\tping", 60)])
        series.add(minute: 100, fields: [("p\tq\tq1", 10)])
        // 15 s into minute 100: all of it, and three quarters of minute 99.
        let now = Date(timeIntervalSince1970: 100 * 60 + 15)
        #expect(series.lastMinute(queue: "q1", now: now) == ThroughputSeries.Counts(processed: 10 + 45, failed: 5))
        #expect(series.types["ping"]?[99]?.processed == 60)
    }

    @Test func throughputRecorderCountsByQueueAndTypeAndBoundsNames() throws {
        var configuration = RouterConfiguration(defaultQueue: "default")
        configuration.types["ping"] = JobTypeConfiguration(name: "ping", handler: .noop)
        configuration.groups["g"] = WorkerGroupConfiguration(name: "g", queues: ["default"], concurrency: 1)
        let recorder = ThroughputRecorder(configuration: configuration)
        let job = JobEnvelope(type: "ping", priority: nil, queue: "default", payload: .null)
        recorder.record(.succeeded(job, group: "g", wait: .zero, run: .zero))
        recorder.record(.failed(job, group: "g", wait: .zero, run: .zero, error: "x", retryIn: .seconds(1)))
        recorder.record(.deadLettered(DeadLetter(id: JobID(rawValue: "j"), queue: "default", type: "evil\ttype", attempt: nil,
                                                 reason: "unknown type", raw: Data()), group: "g"))
        let counts = Dictionary(recorder.drain().map { ("\($0.key.failed ? "f" : "p") \($0.key.dimension.rawValue) \($0.key.name)", $0.count) },
                                uniquingKeysWith: +)
        #expect(counts == ["p q default": 3, "f q default": 2, "p t ping": 2, "f t ping": 1, "p t unknown": 1, "f t unknown": 1])
        #expect(recorder.drain().isEmpty)
    }

    @Test func metricLabelsComeOnlyFromTheConfiguration() {
        var configuration = RouterConfiguration(defaultQueue: "default")
        configuration.types["ping"] = JobTypeConfiguration(name: "ping", handler: .noop)
        configuration.groups["g"] = WorkerGroupConfiguration(name: "g", queues: ["default"], concurrency: 1)
        let labels = MetricLabels(configuration: configuration)
        #expect(labels.type("ping") == "ping")
        #expect(labels.type("x\"} 1e9\n") == "unknown")
        #expect(labels.type(nil) == "unknown")
        #expect(labels.queue("default") == "default")
        #expect(labels.queue("someone-else") == "unknown")
        #expect(labels.reader(of: "default") == "g")
        #expect(labels.reader(of: "elsewhere") == "unknown")
    }

    @Test func durationBucketsSpanHundredMicrosecondsToFiveMinutes() {
        #expect(MetricsExporter.durationBuckets.first == .microseconds(100))
        #expect(MetricsExporter.durationBuckets.last == .seconds(300))
        #expect(MetricsExporter.durationBuckets == MetricsExporter.durationBuckets.sorted())
    }

    @Test func aDelayedOrRetriedJobWaitsFromWhenItWasDue() throws {
        var job = JobEnvelope(type: "ping", priority: nil, queue: "q", payload: .null, enqueuedAt: Date(timeIntervalSince1970: 1_000))
        #expect(job.waitingSince == Date(timeIntervalSince1970: 1_000))
        job.dueAt = Date(timeIntervalSince1970: 1_060)
        let decoded = try JobEnvelope.decode(Data(job.jsonText.utf8), queue: "q")
        #expect(decoded.dueAt == Date(timeIntervalSince1970: 1_060) && decoded.waitingSince == Date(timeIntervalSince1970: 1_060))
        // Only a measure: a due_at that is not a time is left out, the job still runs.
        let odd = try JobEnvelope.decode(Data(#"{"type":"ping","due_at":"soon","enqueued_at":"2026-01-01T00:00:00Z"}"#.utf8), queue: "q")
        #expect(odd.dueAt == nil && odd.waitingSince == odd.enqueuedAt)
    }
}

/// The fixed-format timestamp reader agrees with Foundation's ISO 8601 parser.
struct TimestampTests {
    @Test func theDirectReaderAgreesWithFoundation() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let date = Date(timeIntervalSince1970: Double(Int64.random(in: 0...4_102_444_799_999, using: &generator)) / 1000)
            let text = Timestamp.format(date)
            let direct = try #require(Timestamp.parseUTC(text), "\(text)")
            let foundation = try #require(try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
            #expect(abs(direct.timeIntervalSince1970 - foundation.timeIntervalSince1970) < 0.0005, "\(text)")
        }
        for text in ["2024-02-29T23:59:59Z", "2000-01-01T00:00:00.5Z", "1970-01-01T00:00:00.000000001Z"] {
            let direct = try #require(Timestamp.parseUTC(text))
            let foundation = try #require(try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: text.contains("."))))
            #expect(abs(direct.timeIntervalSince1970 - foundation.timeIntervalSince1970) < 0.0005, "\(text)")
        }
        // Not its form, or not a real date: left to Foundation (which refuses these), never misread.
        for text in ["2023-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00:00.Z",
                     "2026-01-01T00:00:00+01:00", "2026-1-01T00:00:00Z", "2026-01-01T00:00:00.1234567890Z"] {
            #expect(Timestamp.parseUTC(text) == nil, "\(text)")
        }
        #expect(Timestamp.parse("2026-01-01T01:00:00+01:00") == Date(timeIntervalSince1970: 1_767_225_600))
    }
}
