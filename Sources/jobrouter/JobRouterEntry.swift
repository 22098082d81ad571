#if canImport(Glibc)
import Glibc
#endif
import JobRouter

/// The `jobrouter` executable: runs `jobrouter work` itself when the core alone runs the
/// configuration (``LeanWorker``), and hands every other command to the full CLI,
/// `jobrouter-cli` beside it (exec: same process id, arguments and environment). So a worker
/// without mail, PostgreSQL or HTTP never maps libcurl, libpq or SwiftNIO.
/// `JOBROUTER_LEAN_WORKER=0` sends `work` to the full CLI too.
@main
enum JobRouterEntry {
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard getenv("JOBROUTER_LEAN_WORKER").map({ String(cString: $0) }) != "0",
              let work = WorkArguments(arguments),
              let configuration = try? RouterConfiguration.load(path: work.configPath),
              configuration.beyondCore == nil else {
            // Whatever it is (another command, an option only the CLI knows, a configuration that
            // does not load: the CLI says what is wrong with it), the full CLI takes it.
            FullCLI.exec(arguments)
        }
        do {
            try await LeanWorker.run(work, configuration: configuration)
        } catch {
            LeanWorker.fail("\(error)", status: 1)
        }
    }
}

/// `jobrouter-cli`, the full command line, beside this executable.
enum FullCLI {
    /// Replaces this process with `jobrouter-cli arguments…`; never returns.
    static func exec(_ arguments: [String]) -> Never {
        let path = directory + "/jobrouter-cli"
        let pointers = ([path] + arguments).map { strdup($0) } + [nil]
        execv(path, pointers)
        LeanWorker.fail("cannot run \(path) (\(String(cString: strerror(errno)))): install it beside jobrouter", status: 1)
    }

    /// This executable's directory (from `/proc/self/exe`; the working directory if unknown).
    static var directory: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return "." }
        let path = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
