import ArgumentParser
import Foundation
import JobRouter
import JobRouterRedis

/// `jobrouter enqueue`: one job from flags, or many from NDJSON with `--batch`.
struct EnqueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Enqueue a job (prints '<job-id> <queue>'), or many with --batch.",
        discussion: """
            Batch input is NDJSON, one job a line: {"type": "email", "priority": "high", "payload": {...}}.
            A bad line is reported with its line number while the good lines still go in; the exit
            status is then 1.
            """)

    @OptionGroup var options: CommonOptions

    @Argument(help: "The job type (a key of [types]).")
    var type: String?

    @Option(name: .long, help: "The priority (default: the type's default_priority).")
    var priority: String?

    @Option(name: .long, help: "The payload as JSON text.")
    var payload: String?

    @Option(name: .long, help: "Read the payload from a file, or '-' for stdin.")
    var payloadFile: String?

    @Option(name: .long, help: "Enqueue NDJSON lines from a file, or '-' for stdin.")
    var batch: String?

    @Option(name: .long, help: "With --batch: a name for this batch. Its progress is recorded with its jobs, so running the same command again after a failure continues after the last line enqueued, with no duplicates.")
    var batchID: String?

    @Option(name: .long, help: "With --batch: skip the input lines before this one (1-based).")
    var resumeFrom: Int?

    @Option(name: .long, help: ArgumentHelp("With --batch: enqueue a job of this type once every job of the batch has succeeded or died; its payload has the counts and the dead ids.", valueName: "type"))
    var onComplete: String?

    @Option(name: .long, help: ArgumentHelp("With --on-complete: the callback's own payload (JSON), under \"payload\" in its payload.", valueName: "json"))
    var onCompletePayload: String?

    @Option(name: .long, help: ArgumentHelp("With --on-complete: the callback's priority.", valueName: "priority"))
    var onCompletePriority: String?

    @Option(name: .customLong("in"), help: "Run it after this delay (\"30s\", \"5m\", \"2h\").")
    var delay: String?

    @Option(name: .long, help: "Run it at this time (ISO 8601, e.g. 2026-11-22T10:00:00Z).")
    var at: String?

    func validate() throws {
        if delay != nil && at != nil { throw ValidationError("give --in or --at, not both") }
        if let delay, DurationParser.parse(delay) == nil {
            throw ValidationError("--in: bad duration '\(delay)'; write a number and a unit: \"30s\", \"5m\", \"1h\"")
        }
        if let at, Timestamp.parse(at) == nil {
            throw ValidationError("--at: '\(at)' is not an ISO 8601 time such as 2026-11-22T10:00:00Z")
        }
        if batch == nil && (batchID != nil || resumeFrom != nil) { throw ValidationError("--batch-id and --resume-from go with --batch") }
        if batch == nil && onComplete != nil { throw ValidationError("--on-complete goes with --batch") }
        if onComplete == nil && (onCompletePayload != nil || onCompletePriority != nil) {
            throw ValidationError("--on-complete-payload and --on-complete-priority go with --on-complete")
        }
        if onComplete != nil && (delay != nil || at != nil) { throw ValidationError("--on-complete does not go with --in or --at") }
        if onComplete != nil && resumeFrom != nil { throw ValidationError("--on-complete does not go with --resume-from (use --batch-id: a re-run continues the same batch)") }
        if let resumeFrom, resumeFrom < 1 { throw ValidationError("--resume-from: lines are numbered from 1") }
        if let batchID, batchID.isEmpty || batchID.contains(where: { $0.isWhitespace || $0.isNewline }) {
            throw ValidationError("--batch-id: give a name without spaces")
        }
        if batch != nil {
            if type != nil || priority != nil || payload != nil || payloadFile != nil {
                throw ValidationError("--batch takes its types, priorities and payloads from the input; give no TYPE, --priority or --payload")
            }
        } else {
            if type == nil { throw ValidationError("missing TYPE (or use --batch FILE)") }
            if payload != nil && payloadFile != nil { throw ValidationError("give --payload or --payload-file, not both") }
        }
    }

    func run() async throws {
        try await CommandFailure.reporting {
            let configuration = try options.loadConfiguration()
            let driver = try options.makeDriver(configuration)
            let client = JobRouterClient(configuration: configuration, driver: driver)
            if let batch {
                var startLine = resumeFrom ?? 1
                if let batchID, let done = try await driver.batchProgress(batchID) {
                    startLine = max(startLine, done + 1)
                    FileHandle.standardError.write(Data("batch \(batchID): lines through \(done) are enqueued already; continuing at line \(done + 1)\n".utf8))
                }
                var callbackBatch: String?
                if let onComplete {
                    var payload = JSONValue.null
                    if let onCompletePayload {
                        do {
                            payload = try JSONValue.parse(Data(onCompletePayload.utf8))
                        } catch {
                            throw CommandFailure("--on-complete-payload: not valid JSON: \(error)")
                        }
                    }
                    // With --batch-id the batch keeps that name, so a re-run continues the same one.
                    callbackBatch = try await client.openBatch(batchID, onComplete: JobRequest(type: onComplete, priority: onCompletePriority, payload: payload))
                }
                // Rejected lines end the command with exit 1 after the good ones went in: the batch
                // is still complete (sealed) then; a failure part-way leaves it open for a re-run.
                var rejected: ExitCode?
                do {
                    try await BatchEnqueue(client: client, source: batch, timing: timing, batchID: batchID, startLine: startLine,
                                           callbackBatch: callbackBatch).run()
                } catch let code as ExitCode {
                    rejected = code
                }
                if let callbackBatch {
                    let fired = try await client.sealBatch(callbackBatch)
                    print("batch \(callbackBatch)")
                    if let fired { FileHandle.standardError.write(Data("batch \(callbackBatch): every job had finished already; callback \(fired) enqueued\n".utf8)) }
                }
                if let rejected { throw rejected }
            } else if let type {
                let request = JobRequest(type: type, priority: priority, payload: try readPayload())
                let result = try await timing.enqueue([request], with: client)[0]
                // A unique type's lock was held: the existing job's id, and exit 0.
                print("\(result.id) \(result.job.queue)" + (result.isDuplicate ? " duplicate" : ""))
            }
        }
    }

    private var timing: EnqueueTiming {
        if let delay, let duration = DurationParser.parse(delay) { return .after(duration) }
        if let at, let date = Timestamp.parse(at) { return .at(date) }
        return .now
    }

    private func readPayload() throws -> JSONValue {
        let data: Data
        let origin: String
        if let payload {
            data = Data(payload.utf8)
            origin = "--payload"
        } else if let payloadFile {
            origin = payloadFile == "-" ? "stdin" : payloadFile
            do {
                data = payloadFile == "-" ? FileHandle.standardInput.readDataToEndOfFile()
                    : try Data(contentsOf: URL(fileURLWithPath: payloadFile))
            } catch {
                throw CommandFailure("cannot read payload file \(payloadFile): \(error.localizedDescription)")
            }
        } else {
            return .null
        }
        do {
            return try JSONValue.parse(data)
        } catch {
            throw CommandFailure("\(origin): the payload is not valid JSON: \(error)")
        }
    }
}

/// Reads NDJSON, routes each line, and pushes good jobs in pipelined chunks.
/// When enqueued jobs become runnable.
enum EnqueueTiming {
    case now
    case after(Duration)
    case at(Date)

    var isNow: Bool {
        if case .now = self { return true }
        return false
    }

    func enqueue(_ requests: [JobRequest], with client: JobRouterClient, progress: BatchProgress? = nil,
                 batch: String? = nil) async throws -> [EnqueueResult] {
        switch self {
        case .now: return try await client.submit(requests, progress: progress, batch: batch)
        case .after(let delay): return try await client.submit(requests, after: delay)
        case .at(let date): return try await client.submit(requests, at: date)
        }
    }
}

struct BatchEnqueue {
    let client: JobRouterClient
    let source: String
    var timing: EnqueueTiming = .now
    /// Names the batch: its progress is pushed with its jobs (only for immediate enqueues).
    var batchID: String?
    /// The first input line to read.
    var startLine = 1
    /// The batch (opened with a callback) the jobs count toward.
    var callbackBatch: String?

    static let chunkSize = 5000

    func run() async throws {
        let file: UnsafeMutablePointer<FILE>
        var totalBytes: Int?
        if source == "-" {
            guard let standardInput = fdopen(STDIN_FILENO, "r") else {
                throw CommandFailure("cannot read stdin: \(String(cString: strerror(errno)))")
            }
            file = standardInput
        } else {
            guard let opened = fopen(source, "r") else {
                throw CommandFailure("cannot read batch file \(source): \(String(cString: strerror(errno)))")
            }
            file = opened
            var info = stat()
            if stat(source, &info) == 0 { totalBytes = Int(info.st_size) }
        }
        defer { fclose(file) }

        let origin = source == "-" ? "stdin" : source
        let progress = ProgressBar(totalBytes: totalBytes)
        let started = ContinuousClock.now
        var lineNumber = 0
        var bytesRead = 0
        var enqueued = 0
        var rejected = 0
        var perQueue: [String: Int] = [:]
        var pending: [JobRequest] = []
        var pendingLines: [Int] = []
        pending.reserveCapacity(Self.chunkSize)
        // The last input line of every chunk whose push was confirmed, and of the one in flight.
        var confirmedLine = startLine - 1
        var inFlightLine: Int?

        // Three stages overlap: this loop parses chunk n + 2 while chunk n + 1 is routed and encoded
        // and chunk n is pushed. Chunks are pushed one at a time, in input order (`turns`), so
        // progress and the lines confirmed stay exact.
        let (client, timing, batchID, callbackBatch) = (self.client, self.timing, self.batchID, self.callbackBatch)
        var duplicates = 0
        let turns = Turns()
        do {
        try await withThrowingTaskGroup(of: (jobs: [EnqueueResult], lastLine: Int).self) { pushes in
            var inFlight = 0
            var chunks = 0
            func account(_ pushed: (jobs: [EnqueueResult], lastLine: Int)) {
                for result in pushed.jobs where !result.isDuplicate { perQueue[result.job.queue, default: 0] += 1 }
                let duplicated = pushed.jobs.filter(\.isDuplicate).count
                duplicates += duplicated
                enqueued += pushed.jobs.count - duplicated
                // Each chunk began only once every earlier one was in (its result may still come
                // second, if the task that ended the turn before it was slow to return).
                confirmedLine = max(confirmedLine, pushed.lastLine)
                inFlight -= 1
                if inFlight == 0 { inFlightLine = nil }
                progress.update(lines: lineNumber, bytes: bytesRead)
            }
            func flush() async throws {
                guard !pending.isEmpty else { return }
                if inFlight >= 2, let pushed = try await pushes.next() { account(pushed) }
                let requests = pending
                let lines = pendingLines
                let lastLine = lineNumber
                let marker = batchID.map { BatchProgress(batchID: $0, lines: lines) }
                let turn = chunks
                chunks += 1
                pushes.addTask {
                    do {
                        // Immediate jobs are made and encoded before their turn; delayed ones in it.
                        let prepared = timing.isNow ? try client.prepare(requests, batch: callbackBatch) : nil
                        try await turns.begin(turn)
                        let jobs = if let prepared {
                            try await client.submit(prepared, progress: marker)
                        } else {
                            try await timing.enqueue(requests, with: client, progress: marker, batch: callbackBatch)
                        }
                        turns.end(turn)
                        return (jobs, lastLine)
                    } catch {
                        turns.end(turn, failure: error)
                        throw error
                    }
                }
                inFlightLine = lastLine
                inFlight += 1
                pending.removeAll(keepingCapacity: true)
                pendingLines.removeAll(keepingCapacity: true)
            }

            var buffer: UnsafeMutablePointer<CChar>?
            var capacity = 0
            defer { free(buffer) }
            do {
            while true {
                let length = getline(&buffer, &capacity, file)
                guard length >= 0, let buffer else { break }
                lineNumber += 1
                bytesRead += length
                if lineNumber < startLine { continue }
                // Read where getline put it: no copy of the line is made.
                let line = UnsafeBufferPointer(start: UnsafeRawPointer(buffer).assumingMemoryBound(to: UInt8.self), count: length)
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { continue }
                do {
                    let request = try JobRequest(ndjsonBytes: line)
                    try client.check(request)
                    pending.append(request)
                    pendingLines.append(lineNumber)
                } catch {
                    rejected += 1
                    progress.clear()
                    FileHandle.standardError.write(Data("jobrouter: \(origin):\(lineNumber): \(error)\n".utf8))
                }
                if pending.count >= Self.chunkSize { try await flush() }
            }
            if ferror(file) != 0 { throw CommandFailure("reading \(origin) failed: \(String(cString: strerror(errno)))") }
            try await flush()
            while let pushed = try await pushes.next() { account(pushed) }
            } catch {
                // A chunk's failure can arrive before the result of the chunk whose turn it
                // followed (that task ends its turn, then returns): every push that did finish
                // is counted before saying which lines are confirmed, or a re-run from the first
                // line not confirmed would enqueue those again.
                while !pushes.isEmpty {
                    do {
                        if let pushed = try await pushes.next() { account(pushed) }
                    } catch {
                        continue
                    }
                }
                throw error
            }
        }
        } catch let error as CommandFailure {
            throw error
        } catch {
            // Say exactly what is known, and how to go on without losing or doubling a job.
            progress.finish()
            var message = "enqueue stopped: \(error). \(enqueued) job(s) confirmed enqueued, input lines \(startLine) to \(confirmedLine)"
            if let inFlightLine, inFlightLine > confirmedLine {
                message += "; lines \(confirmedLine + 1) to \(inFlightLine) were being sent and may or may not be in Redis"
            }
            if let batchID {
                message += ". Run the same command (--batch-id \(batchID)) again to continue exactly after the last line enqueued"
            } else {
                message += ". Resume with --resume-from \(confirmedLine + 1) (with --batch-id NAME a re-run is exact)"
            }
            throw CommandFailure(message)
        }
        progress.finish()

        let seconds = max(started.duration(to: .now).inSeconds, 1e-6)
        let queues = perQueue.keys.sorted().map { "\($0) \(perQueue[$0] ?? 0)" }.joined(separator: ", ")
        var summary = "enqueued \(enqueued) job(s) in \(String(format: "%.2f", seconds))s (\(Int(Double(enqueued) / seconds)) jobs/s)"
        if !queues.isEmpty { summary += ": \(queues)" }
        if duplicates > 0 { summary += "; \(duplicates) duplicate(s) of unique jobs not enqueued" }
        if rejected > 0 { summary += "; \(rejected) line(s) rejected" }
        FileHandle.standardError.write(Data((summary + "\n").utf8))
        if rejected > 0 { throw ExitCode.failure }
    }
}

/// A one-line progress bar on stderr, drawn only when stderr is a terminal.
final class ProgressBar {
    private let totalBytes: Int?
    private let enabled = isatty(STDERR_FILENO) == 1
    private var drawn = false

    init(totalBytes: Int?) {
        self.totalBytes = totalBytes
    }

    func update(lines: Int, bytes: Int) {
        guard enabled else { return }
        var text = "\r"
        if let totalBytes, totalBytes > 0 {
            let fraction = min(1, Double(bytes) / Double(totalBytes))
            let filled = Int(fraction * 30)
            text += "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: 30 - filled) + "] "
            text += String(format: "%3.0f%% ", fraction * 100)
        }
        text += "\(lines) lines"
        FileHandle.standardError.write(Data(text.utf8))
        drawn = true
    }

    func clear() {
        guard enabled, drawn else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
        drawn = false
    }

    func finish() {
        clear()
    }
}
