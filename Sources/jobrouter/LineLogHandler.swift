import Foundation
import JobRouter
import Logging
import Synchronization

/// Writes `2026-11-22T10:00:00.123Z info message key=value` lines to stdout, one write per line,
/// so lines from many jobs never interleave and survive a crash. Control characters in the message
/// and metadata are escaped: one message is always exactly one line.
struct LineLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    private static let lock = Mutex(())

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var line = Timestamp.format(Date()) + " " + event.level.rawValue + " " + LogEscaping.escape("\(event.message)")
        let merged = event.metadata.map { metadata.merging($0) { $1 } } ?? metadata
        for key in merged.keys.sorted() where key != "group" {
            line += " \(LogEscaping.escape(key))=\(LogEscaping.escape(merged[key].map { "\($0)" } ?? ""))"
        }
        line += "\n"
        var bytes = Array(line.utf8)
        Self.lock.withLock { _ in
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeMutableBytes { write(STDOUT_FILENO, $0.baseAddress! + offset, $0.count - offset) }
                if written <= 0 {
                    if written < 0 && errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }
}
