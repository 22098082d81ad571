#if canImport(Glibc)
import Glibc
#endif

/// A detached operating-system thread (never one of Swift's cooperative pool), for work that
/// blocks in C: started with `pthread_create`, so the core needs no Foundation `Thread`.
enum OSThread {
    /// The closure a new thread runs, carried through `pthread_create`'s argument.
    private final class Start {
        let name: String
        let body: @Sendable () -> Void
        init(_ name: String, _ body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }

    /// Starts a thread named `name` (the first 15 bytes: the kernel's limit) running `body`.
    /// A process that cannot start a thread cannot run jobs: that ends it, saying why.
    static func start(name: String, _ body: @escaping @Sendable () -> Void) {
        let start = Unmanaged.passRetained(Start(name, body)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        let created = pthread_create(&thread, &attributes, { argument in
            guard let argument else { return nil }
            let start = Unmanaged<Start>.fromOpaque(argument).takeRetainedValue()
            OSThread.nameCurrent(start.name)
            start.body()
            return nil
        }, start)
        guard created == 0 else {
            Unmanaged<Start>.fromOpaque(start).release()
            fatalError("cannot start thread \(name): \(String(cString: strerror(created)))")
        }
    }

    /// Names the calling thread as `ps -L`, `top -H` and debuggers show it (best effort).
    private static func nameCurrent(_ name: String) {
        let descriptor = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        let bytes = Array(name.utf8.prefix(15))
        _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        close(descriptor)
    }
}
