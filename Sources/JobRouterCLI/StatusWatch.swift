import Foundation
import JobRouter

/// `status --watch`: redraws a view every interval. On a terminal: full screen (the alternate
/// screen, cursor hidden, keys read one at a time), redrawn in place, until `q` or Ctrl-C, and the
/// terminal is restored however it ends. Otherwise (a pipe, a file): one block per interval,
/// headed by the time, until the process is stopped or the reader goes away.
struct StatusWatch {
    let interval: Duration

    func run(_ view: @escaping @Sendable () async -> String) async throws {
        guard isatty(STDOUT_FILENO) == 1, isatty(STDIN_FILENO) == 1 else {
            while !Task.isCancelled {
                let text = await view()
                guard Self.write("--- \(Timestamp.format(Date())) ---\n\(text)\n\n") else { return }
                try await Task.sleep(for: interval)
            }
            return
        }
        let terminal = try RawTerminal()
        defer { terminal.restore() }
        terminal.write("\u{1B}[?1049h\u{1B}[?25l")
        defer { terminal.write("\u{1B}[?25h\u{1B}[?1049l") }
        let clock = ContinuousClock()
        while true {
            let text = await view()
            let footer = "\(Timestamp.format(Date()))  every \(DurationFormat.short(interval))  q: quit"
            // Home, draw each line clearing what an earlier, longer frame left, then clear below.
            let lines = (text + "\n\n" + footer).split(separator: "\n", omittingEmptySubsequences: false)
            terminal.write("\u{1B}[H" + lines.map { $0 + "\u{1B}[K" }.joined(separator: "\r\n") + "\u{1B}[J")
            let deadline = clock.now + interval
            // Wait for the next frame, looking for a key every 50 ms (poll without waiting, then
            // sleep: a cooperative thread is never blocked).
            while clock.now < deadline {
                if let key = await terminal.readKey(timeoutMilliseconds: 50), key == UInt8(ascii: "q") || key == UInt8(ascii: "Q") || key == 3 || key == 4 {
                    return
                }
            }
        }
    }
}

extension StatusWatch {
    /// Writes all of `text` to stdout; `false` once it cannot (the reader closed the pipe).
    static func write(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(STDOUT_FILENO, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }
}

/// Short durations for the watch footer.
enum DurationFormat {
    static func short(_ duration: Duration) -> String {
        let milliseconds = duration.inMilliseconds
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000)s" : "\(milliseconds)ms"
    }
}

/// The terminal in non-canonical mode without echo or signal keys (Ctrl-C arrives as a byte, so
/// the view can restore the terminal before it exits), until ``restore()``.
final class RawTerminal {
    private var saved = termios()
    private var active = false

    init() throws {
        guard tcgetattr(STDIN_FILENO, &saved) == 0 else {
            throw CommandFailure("status --watch: cannot read the terminal's settings: \(String(cString: strerror(errno)))")
        }
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG)
        guard tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0 else {
            throw CommandFailure("status --watch: cannot set up the terminal: \(String(cString: strerror(errno)))")
        }
        active = true
    }

    deinit { restore() }

    /// Puts the terminal back as it was.
    func restore() {
        guard active else { return }
        active = false
        _ = tcsetattr(STDIN_FILENO, TCSANOW, &saved)
    }

    func write(_ text: String) {
        _ = StatusWatch.write(text)
    }

    /// One key if one is waiting; otherwise sleeps `timeoutMilliseconds` and returns `nil`.
    func readKey(timeoutMilliseconds: Int32) async -> UInt8? {
        var descriptor = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, 0) == 1 else {
            try? await Task.sleep(for: .milliseconds(Int64(timeoutMilliseconds)))
            return nil
        }
        var byte: UInt8 = 0
        // Input closed (EOF): treat as quit.
        return read(STDIN_FILENO, &byte, 1) == 1 ? byte : 4
    }
}
