#if canImport(Glibc)
import Glibc
#endif

/// Pipes whose both ends are close-on-exec from the moment they exist.
///
/// `pipe()` followed by `fcntl(FD_CLOEXEC)` leaves a window in which a child spawned by another
/// thread inherits the new ends: a job's child would then hold another job's stdin open (its
/// `cat` never sees end-of-file) or the orphan guard's pipe (it would never see the worker die).
/// `pipe2(O_CLOEXEC)` closes that window; Swift's Glibc module does not export it (it is a GNU
/// extension), so it is looked up once by name.
enum ClosingPipe {
    private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32

    private static let pipe2: Pipe2? = {
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "pipe2") else { return nil }
        return unsafeBitCast(symbol, to: Pipe2.self)
    }()

    /// A new pipe (`[read, write]`), both ends close-on-exec; `nil` with `errno` set on failure.
    static func make() -> [Int32]? {
        var fds: [Int32] = [-1, -1]
        if let pipe2 {
            guard pipe2(&fds, O_CLOEXEC) == 0 else { return nil }
            return fds
        }
        guard pipe(&fds) == 0 else { return nil }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return fds
    }
}

/// Spawned children get only the descriptors their spawn sets up (0, 1 and 2): every other one is
/// closed in the child, whether or not the process marked it close-on-exec. A library's socket
/// or another component's pipe (Foundation's `Pipe` is not close-on-exec) must not stay open in a
/// job's child or in the orphan guard's watcher, which outlives the worker: a pipe held there
/// never reaches end-of-file for its reader.
enum SpawnDescriptors {
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    /// glibc 2.34's `posix_spawn_file_actions_addclosefrom_np` (not exported by Swift's Glibc module).
    private static let addCloseFrom: AddCloseFrom? = {
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: AddCloseFrom.self)
    }()

    /// Adds "close every descriptor from 3 up" to `actions` (after its dup2s). Without glibc 2.34
    /// it adds nothing, and descriptors JobRouter did not open may be inherited.
    static func closeTheRest(_ actions: inout posix_spawn_file_actions_t) {
        _ = addCloseFrom?(&actions, 3)
    }
}
