import Foundation

/// Runs a program for each job (`handler = "exec"`): without a shell, the job's JSON on stdin, and
/// `JOB_ID`, `JOB_TYPE`, `JOB_PRIORITY`, `JOB_QUEUE`, `JOB_ATTEMPT` in its environment.
/// Exit status 0 is success; anything else fails the job with the tail of its stderr.
public struct ExecJobHandler: JobHandler {
    /// The program and its arguments.
    public var command: [String]

    /// Makes a handler that runs `command`.
    public init(command: [String]) {
        self.command = command
    }

    public func handle(_ job: JobEnvelope, context: JobContext) async throws {
        var environment = ProcessInfo.processInfo.environment
        environment["JOB_ID"] = job.id.rawValue
        environment["JOB_TYPE"] = job.type
        environment["JOB_PRIORITY"] = job.priority ?? ""
        environment["JOB_QUEUE"] = job.queue
        environment["JOB_ATTEMPT"] = String(job.attempt)
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
            .trimmingCharacters(in: .whitespaces)
        throw JobFailure(tail.isEmpty ? "\(command[0]) failed: \(how)" : "\(command[0]) failed: \(how): \(tail)")
    }
}
