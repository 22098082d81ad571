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
}
