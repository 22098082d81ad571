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

    /// A handler at the info level, without metadata.
    public init() {}

    /// A logger labelled `label` writing through this handler at `level` (`trace`, `debug`,
    /// `info`, `notice`, `warning`, `error` or `critical`, any case); `nil` for another word.
    public static func logger(label: String = "jobrouter", level: String) -> Logger? {
        guard let level = Logger.Level(rawValue: level.lowercased()) else { return nil }
        var logger = Logger(label: label) { _ in LineLogHandler() }
        logger.logLevel = level
        return logger
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = Timestamp.format(Date())
        line.reserveCapacity(256)
        line += " "
        line += event.level.rawValue
        line += " "
        line += LogEscaping.escape(event.message.description)
        let merged = event.metadata.map { metadata.merging($0) { $1 } } ?? metadata
        if !merged.isEmpty {
            for key in merged.keys.sorted() where key != "group" {
                line += " \(LogEscaping.escape(key))=\(LogEscaping.escape(merged[key].map { "\($0)" } ?? ""))"
            }
        }
        line += "\n"
        LogOutput.standardOutput.write(line, now: event.level >= .warning)
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
    private let buffer = Mutex<[UInt8]>([])
    private let flusherStarted = Atomic<Bool>(false)

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Adds `line` (ending in a newline); writes it and everything before it now when `now`.
    func write(_ line: String, now: Bool) {
        if !flusherStarted.load(ordering: .relaxed) { startFlusher() }
        buffer.withLock { bytes in
            bytes.append(contentsOf: line.utf8)
            if now || bytes.count >= 64 * 1024 { drain(&bytes) }
        }
    }

    /// Writes whatever is buffered.
    func flush() {
        buffer.withLock { drain(&$0) }
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
