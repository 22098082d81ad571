import Foundation
import Testing
@testable import JobRouter

/// A ledger record is one JSON object the ledger reads back field by field.
@Suite struct AttemptRecordTests {
    @Test(arguments: [1_796_261_132.4121, 0.5, -0.5, -1_796_261_132.000_001, 0])
    func timesAndNumbersAreWrittenExactly(seconds: Double) throws {
        let record = AttemptRecord(jobID: JobID(rawValue: "j\"1"), claim: "w/1.2", type: "t\n", priority: nil, queue: "q", group: "g",
                                   attempt: 12_345, outcome: .failed, error: "bad \\ \"x\"", worker: "w",
                                   enqueuedAt: Date(timeIntervalSince1970: seconds), startedAt: nil,
                                   finishedAt: Date(timeIntervalSince1970: seconds), entry: Data(#"{"payload":[1]}"#.utf8))
        guard case .object(let fields) = try JSONValue.parse(Data(record.jsonBytes)) else { Issue.record("not an object"); return }
        #expect(fields["id"] == .string("j\"1") && fields["type"] == .string("t\n") && fields["error"] == .string("bad \\ \"x\""))
        #expect(fields["attempt"] == .integer(12_345) && fields["priority"] == nil && fields["started_at"] == nil)
        #expect(fields["entry"] == .object(["payload": .array([.integer(1)])]))
        let expected = String(format: "%.6f", seconds)
        let text = String(decoding: record.jsonBytes, as: UTF8.self)
        #expect(text.contains("\"enqueued_at\":\(expected),") && text.contains("\"finished_at\":\(expected),"), "\(text)")
    }

    /// Every string is escaped exactly as ``JSONValue`` writes strings, also when every byte of
    /// every string needs a `\u00XX` escape (the record then outgrows the buffer reserved for
    /// it), and the widest numbers are written whole.
    @Test func stringsAreEscapedAsJSONValueWritesThemEvenWhenEveryByteIs() throws {
        let mixed = "a\u{01}\u{1F}\"\\\n\r\t é 😀/\u{7F}"
        let worst = String(repeating: "\u{02}", count: 700)
        for text in [mixed, worst] {
            let record = AttemptRecord(jobID: JobID(rawValue: text), claim: text, type: text, priority: text, queue: text, group: text,
                                       attempt: -12, outcome: .malformed, error: text, worker: text,
                                       enqueuedAt: Date(timeIntervalSince1970: -9e12), startedAt: Date(timeIntervalSince1970: 9e12),
                                       finishedAt: Date(timeIntervalSince1970: 1e9), entry: nil)
            var escaped: [UInt8] = []
            JSONValue.writeString(text, to: &escaped)
            let written = String(decoding: record.jsonBytes, as: UTF8.self)
            #expect(written.components(separatedBy: String(decoding: escaped, as: UTF8.self)).count == 9, "\(written.prefix(200))")
            guard case .object(let fields) = try JSONValue.parse(Data(record.jsonBytes)) else { Issue.record("not an object"); return }
            for key in ["id", "claim", "type", "priority", "queue", "group", "error", "worker"] {
                #expect(fields[key] == .string(text), "\(key)")
            }
            #expect(fields["attempt"] == .integer(-12) && fields["outcome"] == .string("malformed") && fields["entry"] == nil)
        }
        let widest = AttemptRecord(jobID: JobID(rawValue: ""), claim: "", type: nil, priority: nil, queue: "", group: nil,
                                   attempt: Int.min, outcome: .succeeded, error: nil, worker: "",
                                   enqueuedAt: Date(timeIntervalSince1970: -1e300), startedAt: Date(timeIntervalSince1970: 1e300),
                                   finishedAt: Date(timeIntervalSince1970: -1e300), entry: Data())
        let text = String(decoding: widest.jsonBytes, as: UTF8.self)
        #expect(text.contains("\"attempt\":-9223372036854775808,") && text.contains("\"started_at\":9223372036854.775807,"), "\(text)")
        #expect(text.hasSuffix("\"finished_at\":-9223372036854.775808}"), "\(text)")
    }

    /// A record carries of its job's entry only the payload, as the entry wrote it (a number too
    /// wide for a double stays whole); an entry without one gives `{}`, and one whose member names
    /// the scan cannot read without decoding (escapes) goes whole, for the ledger to decode.
    @Test(arguments: [
        (#"{"id":"j","type":"t","queue":"q","payload":{"to":"a@example.com","n":12345678901234567890},"attempt":2}"#,
         #"{"payload":{"to":"a@example.com","n":12345678901234567890}}"#),
        (#"{"type":"t","payload":"x","payload":[1.50]}"#, #"{"payload":[1.50]}"#),
        (#"{"type":"t"}"#, "{}"),
        (#"{"type":"t","pay\u006coad":[1, "é"]}"#, #"{"type":"t","pay\u006coad":[1, "é"]}"#),
    ])
    func carriesOnlyThePayloadOfTheEntry(entry: String, carried: String) throws {
        let record = AttemptRecord(jobID: JobID(rawValue: "j"), claim: "w/1.1", type: "t", priority: nil, queue: "q", group: nil,
                                   attempt: 1, outcome: .succeeded, error: nil, worker: "w", enqueuedAt: nil, startedAt: nil,
                                   finishedAt: Date(timeIntervalSince1970: 1), entry: Data(entry.utf8))
        let text = String(decoding: record.jsonBytes, as: UTF8.self)
        #expect(text.hasSuffix(#","entry":"# + carried + "}"), "\(text)")
        #expect(throws: Never.self) { try JSONValue.parse(Data(record.jsonBytes)) }
    }
}
