import FoundationEssentials
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Makes `exec` children die with their worker, however it dies (even SIGKILL, where nothing in
/// the worker runs): one small watcher process per worker holds the read end of a pipe whose write
/// end only the worker has. The worker writes `+ PGID` for each job's process group it starts and
/// `-PGID` once the group is gone; when the worker dies the kernel closes the pipe, the watcher
/// reads end-of-file and SIGKILLs every group still listed. Without it, a job's processes would run
/// on beside the re-run of the same job on another worker.
///
/// The watcher is `awk` (every Debian system has it), started lazily with the first child, in its
/// own process group so a terminal's ^C for the worker does not end it first.
final class OrphanGuard: Sendable {
    /// The worker's guard.
    static let shared = OrphanGuard()

    private let writeEnd = Mutex<Int32?>(nil)
    private let started = Mutex(false)

    /// The watcher's program: remembers live groups, kills what is left at end of input.
    static let program = """
        $1 == "+" { live[$2] = 1; next }
        $1 == "-" { delete live[$2]; next }
        END { for (group in live) system("kill -9 -" group " 2>/dev/null") }
        """

    /// Starts the watcher if it is not running yet. Called before a child is spawned, so that
    /// listing the child's group right after the spawn is one write, not a watcher start-up (a
    /// worker killed during that start-up used to leave the child behind).
    func prepare() {
        _ = descriptor()
    }

    /// Lists `group` to be killed if this process dies.
    func watch(_ group: pid_t) {
        send("+ \(group)\n")
    }

    /// Takes `group` off the list: it is gone.
    func forget(_ group: pid_t) {
        send("- \(group)\n")
    }

    private func send(_ line: String) {
        guard let fd = descriptor() else { return }
        let bytes = Array(line.utf8)
        // A line is far below PIPE_BUF, so it is written whole or not at all; a full pipe (a stuck
        // watcher) must not stall a job, so the end is non-blocking and a failed write is dropped.
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    private func descriptor() -> Int32? {
        writeEnd.withLock { current -> Int32? in
            if let current { return current }
            let alreadyTried = started.withLock { tried -> Bool in
                defer { tried = true }
                return tried
            }
            guard !alreadyTried else { return nil }
            let fd = Self.startWatcher()
            current = fd
            return fd
        }
    }

    /// Starts the watcher; returns the pipe's write end, or `nil` when it could not start.
    private static func startWatcher() -> Int32? {
        guard let fds = ClosingPipe.make() else { return nil }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[0], 0)
        // Not the worker's stdout/stderr: a watcher that outlives the worker must not hold its log pipe.
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        SpawnDescriptors.closeTheRest(&actions)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let arguments: [String] = ["awk", program]
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = [strdup("PATH=/usr/local/bin:/usr/bin:/bin"), nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawnp(&pid, "awk", &actions, &attributes, argv, envp)
        close(fds[0])
        guard result == 0 else {
            close(fds[1])
            return nil
        }
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        // Nobody waits for the watcher: it outlives the worker by design, then init reaps it.
        return fds[1]
    }
}
