import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization

/// Writes `2026-11-22T10:00:00.123Z info message key=value` lines to stdout through
/// ``LogOutput``. Control characters in the message and metadata are escaped: one message is
/// always exactly one line.
public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    /// Where the lines go: stdout, or another descriptor in tests.
    let output: LogOutput

    /// A handler at the info level, without metadata.
    public init() {
        output = .standardOutput
    }

    init(output: LogOutput) {
        self.output = output
    }

    /// A logger labelled `label` writing through this handler at `level` (`trace`, `debug`,
    /// `info`, `notice`, `warning`, `error` or `critical`, any case).
    public static func logger(label: String = "jobrouter", level: String) throws(UnknownLogLevel) -> Logger {
        guard let found = Logger.Level(rawValue: level.lowercased()) else { throw UnknownLogLevel(name: level) }
        var logger = Logger(label: label) { _ in LineLogHandler() }
        logger.logLevel = found
        return logger
    }

    /// A `--log-level` that names no level.
    public struct UnknownLogLevel: Error, CustomStringConvertible {
        /// The word given.
        public var name: String
        public var description: String {
            "--log-level: '\(name)' is not one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))"
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let message = LogEscaping.escape(event.message.description)
        var fields = ""
        let merged = event.metadata.map { metadata.merging($0) { $1 } } ?? metadata
        if !merged.isEmpty {
            for key in merged.keys.sorted() where key != "group" {
                fields += " \(LogEscaping.escape(key))=\(LogEscaping.escape(merged[key].map { "\($0)" } ?? ""))"
            }
        }
        output.write(level: event.level, message: message, fields: fields)
    }
}

/// Log lines on their way to a file descriptor: whole lines gathered in a buffer and written
/// together, at least every ``flushInterval``, at once for a warning or worse (and everything
/// before it), when the buffer passes 64 KiB, and at exit. One `write()` per line cost a fifth of
/// a worker's CPU at the info level. Lines never interleave, and their order is kept; a process
/// killed with SIGKILL loses at most the last ``flushInterval`` of info lines.
final class LogOutput: Sendable {
    /// stdout, flushed by a background thread and at exit.
    static let standardOutput = LogOutput(descriptor: STDOUT_FILENO)

    /// How long a line may wait in the buffer.
    static let flushInterval: Duration = .milliseconds(100)

    private let descriptor: Int32
    private let buffer = Mutex(Buffer())
    private let flusherStarted = Atomic<Bool>(false)

    /// Lines not written yet, and the start of the last second's timestamps.
    private struct Buffer {
        var bytes: [UInt8] = []
        var second: Int = -1
        /// `2026-11-22T10:00:00.` for `second`.
        var prefix: [UInt8] = []
    }

    init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Adds the line `TIME LEVEL MESSAGE[FIELDS]`, stamped as it goes in (the clock read once
    /// per line, the date formatted once per second); a warning or worse is written at once,
    /// with everything before it.
    func write(level: Logger.Level, message: String, fields: String) {
        append(level: level) { bytes in
            bytes.append(contentsOf: message.utf8)
            bytes.append(contentsOf: fields.utf8)
        }
    }

    /// Adds the line `TIME LEVEL TEXT`, `text` being one line's bytes already escaped (the
    /// per-job line, built as bytes: no `String` and no swift-log event on its way here).
    func write(level: Logger.Level, escapedLine text: [UInt8]) {
        append(level: level) { $0.append(contentsOf: text) }
    }

    private func append(level: Logger.Level, _ text: (inout [UInt8]) -> Void) {
        if !flusherStarted.load(ordering: .relaxed) { startFlusher() }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let second = now.tv_sec
        let millis = Int(now.tv_nsec / 1_000_000)
        buffer.withLock { buffer in
            if buffer.second != second {
                buffer.second = second
                buffer.prefix = Array(Timestamp.format(Date(timeIntervalSince1970: Double(second))).utf8.dropLast(4))
            }
            buffer.bytes.append(contentsOf: buffer.prefix)
            buffer.bytes.append(UInt8(ascii: "0") + UInt8(millis / 100))
            buffer.bytes.append(UInt8(ascii: "0") + UInt8(millis / 10 % 10))
            buffer.bytes.append(UInt8(ascii: "0") + UInt8(millis % 10))
            buffer.bytes.append(contentsOf: "Z ".utf8)
            buffer.bytes.append(contentsOf: level.rawValue.utf8)
            buffer.bytes.append(UInt8(ascii: " "))
            text(&buffer.bytes)
            buffer.bytes.append(UInt8(ascii: "\n"))
            if level >= .warning || buffer.bytes.count >= 64 * 1024 { drain(&buffer.bytes) }
        }
    }

    /// Writes whatever is buffered.
    func flush() {
        buffer.withLock { drain(&$0.bytes) }
    }

    private func drain(_ bytes: inout [UInt8]) {
        guard !bytes.isEmpty else { return }
        bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(descriptor, base + offset, raw.count - offset)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return }  // stdout closed or full beyond repair: the lines are lost, not the process
                offset += written
            }
        }
        bytes.removeAll(keepingCapacity: true)
    }

    private func startFlusher() {
        guard flusherStarted.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        atexit { LogOutput.standardOutput.flush() }
        let interval = UInt32(Self.flushInterval.components.attoseconds / 1_000_000_000_000)
        // A plain thread: sleeping here must not take one of the cooperative pool's threads.
        OSThread.start(name: "jobrouter-log") { [self] in
            while true {
                usleep(interval)
                flush()
            }
        }
    }
}
