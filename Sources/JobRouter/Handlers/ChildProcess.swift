import FoundationEssentials
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One child process started without a shell, in a process group of its own, watched by a
/// dedicated thread (spawning, feeding stdin, reading stderr and waiting all block, so none of it
/// runs on Swift's cooperative pool).
///
/// Cancelling the awaiting task sends SIGTERM to the whole process group, then SIGKILL two seconds
/// later, whether or not the direct child has exited by then (a grandchild that ignores SIGTERM is
/// killed all the same). When the direct child exits by itself, whatever it left running in its
/// group gets SIGTERM, then SIGKILL after the same grace. Groups of a worker that dies are killed
/// by the ``OrphanGuard``.
struct ChildProcess {
    /// How long a process group gets between SIGTERM and SIGKILL.
    static let killGrace: Duration = .seconds(2)

    /// How a child ended.
    struct Termination: Sendable {
        /// Exit status, when it exited.
        var exitStatus: Int32?
        /// The signal that ended it, when one did.
        var signal: Int32?
        /// The last bytes it wrote to stderr (at most `stderrTailLimit`).
        var stderrTail: String
        /// `true` when it was stopped because the task was cancelled.
        var wasCancelled: Bool
    }

    /// A child that could not be started.
    struct SpawnError: Error, CustomStringConvertible {
        var program: String
        var code: Int32
        var description: String { "cannot start \(program): \(String(cString: strerror(code)))" }
    }

    static let stderrTailLimit = 2048

    /// Shared between the awaiting task (which may cancel) and the watching thread.
    private final class Control: Sendable {
        struct State {
            var pid: pid_t = 0
            var cancelledAt: ContinuousClock.Instant?
        }
        let state = Mutex(State())

        func cancel() {
            let pid = state.withLock { state -> pid_t in
                if state.cancelledAt == nil { state.cancelledAt = .now }
                return state.pid
            }
            if pid > 0 { kill(-pid, SIGTERM) }
        }
    }

    /// Runs `arguments[0]` with `arguments[1...]`, writes `input` to its stdin, and waits for it.
    /// Its stdout goes to this process's stderr, so it shows beside the worker's log without mixing into it.
    static func run(_ arguments: [String], input: [UInt8], environment: [String: String]) async throws -> Termination {
        let control = Control()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Termination, Error>) in
                OSThread.start(name: "jobrouter-exec") {
                    let result = Result { try watch(arguments, input: input, environment: environment, control: control) }
                    guard case .success(let termination) = result, let group = control.state.withLock({ $0.pid > 0 ? $0.pid : nil }) else {
                        continuation.resume(with: result)
                        return
                    }
                    if termination.wasCancelled {
                        // The job is over only when nothing of it is left: its retry must not meet it.
                        reap(group: group, termSentAt: control.state.withLock { $0.cancelledAt } ?? .now)
                        continuation.resume(with: result)
                    } else {
                        continuation.resume(with: result)
                        if groupAlive(group) { kill(-group, SIGTERM) }
                        reap(group: group, termSentAt: .now)
                    }
                }
            }
        } onCancel: {
            control.cancel()
        }
    }

    /// Whether any process of group `group` is still running. Zombies do not count: an orphaned
    /// grandchild that died waits for init to reap it, and where init is slow to (a container)
    /// `kill(-group, 0)` alone would keep saying yes.
    static func groupAlive(_ group: pid_t) -> Bool {
        guard kill(-group, 0) == 0 || errno == EPERM else { return false }
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return true }
        for entry in entries where entry.first?.isNumber == true {
            // /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces and parentheses.
            guard let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, let pgrp = pid_t(fields[2]), pgrp == group else { continue }
            if fields[0] != "Z" && fields[0] != "X" { return true }
        }
        return false
    }

    /// Waits for group `group` to empty, sending SIGKILL once ``killGrace`` has passed since SIGTERM,
    /// then tells the orphan guard it is gone.
    private static func reap(group: pid_t, termSentAt: ContinuousClock.Instant) {
        var killed = false
        while groupAlive(group) {
            if !killed, termSentAt.duration(to: .now) >= killGrace {
                kill(-group, SIGKILL)
                killed = true
            }
            usleep(20_000)
            if killed, termSentAt.duration(to: .now) > killGrace + .seconds(5) { break }
        }
        OrphanGuard.shared.forget(group)
    }

    private static func watch(_ arguments: [String], input: [UInt8], environment: [String: String], control: Control) throws -> Termination {
        signal(SIGPIPE, SIG_IGN)
        // Close-on-exec from the start, so children other threads start never hold them (dup2
        // clears the flag in ours).
        guard let stdinPipe = ClosingPipe.make() else { throw SpawnError(program: arguments[0], code: errno) }
        guard let stderrPipe = ClosingPipe.make() else {
            let code = errno
            close(stdinPipe[0]); close(stdinPipe[1])
            throw SpawnError(program: arguments[0], code: code)
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdinPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, 2, 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe[1], 2)
        SpawnDescriptors.closeTheRest(&actions)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A group of its own (so a timeout can stop everything it started and a terminal's ^C
        // does not reach it), default signal dispositions (the worker ignores SIGPIPE and traps
        // SIGTERM/SIGINT, and ignored signals would otherwise be inherited), and no blocked signals.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT] { sigaddset(&defaults, signal) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        OrphanGuard.shared.prepare()
        var pid: pid_t = 0
        let spawnResult: Int32 = arguments[0].contains("/")
            ? posix_spawn(&pid, arguments[0], &actions, &attributes, argv, envp)
            : posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
        close(stdinPipe[0])
        close(stderrPipe[1])
        guard spawnResult == 0 else {
            close(stdinPipe[1]); close(stderrPipe[0])
            throw SpawnError(program: arguments[0], code: spawnResult)
        }
        OrphanGuard.shared.watch(pid)
        let cancelledEarly = control.state.withLock { state -> Bool in
            state.pid = pid
            return state.cancelledAt != nil
        }
        if cancelledEarly { kill(-pid, SIGTERM) }

        var writeFD: Int32 = stdinPipe[1]
        var readFD: Int32 = stderrPipe[0]
        _ = fcntl(writeFD, F_SETFL, fcntl(writeFD, F_GETFL) | O_NONBLOCK)
        _ = fcntl(readFD, F_SETFL, fcntl(readFD, F_GETFL) | O_NONBLOCK)
        var written = 0
        if input.isEmpty { close(writeFD); writeFD = -1 }
        var tail: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var status: Int32 = 0
        var reaped = false
        var killed = false

        while !reaped {
            var fds: [pollfd] = []
            if writeFD >= 0 { fds.append(pollfd(fd: writeFD, events: Int16(POLLOUT), revents: 0)) }
            if readFD >= 0 { fds.append(pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)) }
            // With pipes open, poll wakes on data or close; without, only the exit is left to wait for.
            _ = poll(&fds, nfds_t(fds.count), fds.isEmpty ? 5 : 50)
            if writeFD >= 0 {
                let count = input.withUnsafeBytes { bytes in
                    write(writeFD, bytes.baseAddress! + written, input.count - written)
                }
                if count > 0 { written += count }
                if written >= input.count || (count < 0 && errno != EAGAIN && errno != EINTR) {
                    close(writeFD)
                    writeFD = -1
                }
            }
            if readFD >= 0 {
                while true {
                    let count = read(readFD, &buffer, buffer.count)
                    if count > 0 {
                        tail.append(contentsOf: buffer[0..<count])
                        if tail.count > stderrTailLimit { tail.removeFirst(tail.count - stderrTailLimit) }
                        continue
                    }
                    if count == 0 || (errno != EAGAIN && errno != EINTR) {
                        close(readFD)
                        readFD = -1
                    }
                    break
                }
            }
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid || (result < 0 && errno == ECHILD) {
                reaped = true
                break
            }
            if !killed, let cancelledAt = control.state.withLock({ $0.cancelledAt }), cancelledAt.duration(to: .now) > .seconds(2) {
                kill(-pid, SIGKILL)
                killed = true
            }
        }
        if writeFD >= 0 { close(writeFD) }
        if readFD >= 0 {
            // The child is gone; take what is already buffered (a grandchild may hold the pipe open).
            let count = read(readFD, &buffer, buffer.count)
            if count > 0 { tail.append(contentsOf: buffer[0..<count]) }
            close(readFD)
        }
        if tail.count > stderrTailLimit { tail.removeFirst(tail.count - stderrTailLimit) }
        let exited = (status & 0x7f) == 0
        return Termination(
            exitStatus: exited ? (status >> 8) & 0xff : nil,
            signal: exited ? nil : status & 0x7f,
            stderrTail: String(decoding: tail, as: UTF8.self),
            wasCancelled: control.state.withLock { $0.cancelledAt != nil })
    }
}
