import FoundationEssentials

/// Runs a program for each job (`handler = "exec"`): without a shell, the job's JSON on stdin, and
/// `JOB_ID`, `JOB_TYPE`, `JOB_PRIORITY`, `JOB_QUEUE`, `JOB_ATTEMPT` in its environment.
/// Exit status 0 is success; anything else fails the job with the tail of its stderr.
///
/// The child does not get the worker's environment (which holds the Redis URL and the SMTP
/// password): only ``safeEnvironmentNames`` (and `LC_*`), the `JOB_*` variables, and the names the
/// type lists in `env`.
public struct ExecJobHandler: JobHandler {
    /// The program and its arguments.
    public var command: [String]
    /// Variables passed through besides the safe ones (TOML `env`).
    public var passthrough: [String]

    /// Variables every child gets from the worker's environment when set.
    public static let safeEnvironmentNames: Set<String> = ["PATH", "HOME", "LANG", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL", "TERM"]

    /// Makes a handler that runs `command`, passing through `passthrough` from the worker's environment.
    public init(command: [String], passthrough: [String] = []) {
        self.command = command
        self.passthrough = passthrough
    }

    /// The environment a child gets for `job`, from the worker's `environment`.
    public func childEnvironment(for job: JobEnvelope, from environment: [String: String]) -> [String: String] {
        let allowed = Set(passthrough)
        var child = environment.filter { name, _ in
            Self.safeEnvironmentNames.contains(name) || name.hasPrefix("LC_") || allowed.contains(name)
        }
        child["PATH"] = child["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        child["JOB_ID"] = job.id.rawValue
        child["JOB_TYPE"] = job.type
        child["JOB_PRIORITY"] = job.priority ?? ""
        child["JOB_QUEUE"] = job.queue
        child["JOB_ATTEMPT"] = String(job.attempt)
        return child
    }

    public func handle(_ job: JobEnvelope, context: JobContext) async throws {
        let environment = childEnvironment(for: job, from: ProcessInfo.processInfo.environment)
        let termination: ChildProcess.Termination
        do {
            termination = try await ChildProcess.run(command, input: Array(job.jsonText.utf8), environment: environment)
        } catch let error as ChildProcess.SpawnError {
            // A program that is missing or not executable will not start next time either.
            throw JobFailure(error.description, permanent: true)
        }
        if termination.wasCancelled { throw CancellationError() }
        if termination.exitStatus == 0 { return }
        let how = termination.exitStatus.map { "exit status \($0)" } ?? "killed by signal \(termination.signal ?? 0)"
        let tail = termination.stderrTail
            .split(whereSeparator: \.isNewline).suffix(3).joined(separator: " | ")
            .trimmingBlanks()
        throw JobFailure(tail.isEmpty ? "\(command[0]) failed: \(how)" : "\(command[0]) failed: \(how): \(tail)")
    }
}
