import Foundation
import Testing
@testable import JobRouter

@Suite struct RoutingTests {
    let router: Router

    init() throws {
        router = Router(configuration: try RouterConfiguration.parse(toml: sampleTOML))
    }

    @Test func routesByTypeAndPriority() throws {
        #expect(try router.route(type: "email", priority: "high") == Route(queue: "emails:high", priority: "high"))
        #expect(try router.route(type: "email", priority: "low") == Route(queue: "emails:low", priority: "low"))
    }

    @Test func missingPriorityUsesTheDefault() throws {
        #expect(try router.route(type: "email", priority: nil) == Route(queue: "emails:low", priority: "low"))
    }

    @Test func typeWithoutPrioritiesGoesToTheDefaultQueue() throws {
        #expect(try router.route(type: "report", priority: nil) == Route(queue: "default", priority: nil))
        #expect(throws: RoutingError.self) { try router.route(type: "report", priority: "high") }
    }

    @Test func unknownTypeListsTheKnownTypes() {
        #expect {
            try router.route(type: "sms", priority: nil)
        } throws: { error in
            (error as? RoutingError)?.message == "unknown job type 'sms'; known types: email, report"
        }
    }

    @Test func unknownPriorityListsTheTypesPriorities() {
        #expect {
            try router.route(type: "email", priority: "urgent")
        } throws: { error in
            (error as? RoutingError)?.message == "unknown priority 'urgent' for type 'email'; its priorities: high, low"
        }
    }

    @Test func noDefaultPriorityNeedsOne() throws {
        let toml = sampleTOML.replacingOccurrences(of: "default_priority = \"low\"\n", with: "")
        let router = Router(configuration: try RouterConfiguration.parse(toml: toml))
        #expect(throws: RoutingError.self) { try router.route(type: "email", priority: nil) }
    }

    @Test func everyAnswerIsADeclaredQueue() throws {
        let configuration = try RouterConfiguration.parse(toml: sampleTOML)
        for type in ["email", "report", "x", "../etc"] {
            for priority in [nil, "high", "low", "default", "emails:high"] as [String?] {
                if let route = try? router.route(type: type, priority: priority) {
                    #expect(configuration.declaredQueues.contains(route.queue))
                }
            }
        }
    }
}

@Suite struct EnvelopeTests {
    @Test func roundTrips() throws {
        let job = JobEnvelope(type: "email", priority: "high", queue: "emails:high",
                              payload: .object(["to": .string("ä@x.org"), "n": .integer(3), "f": .number(1.5), "quote": .string("a\"b\n")]),
                              attempt: 2, enqueuedAt: Date(timeIntervalSince1970: 1_763_800_000.123))
        var decoded = try JobEnvelope.decode(Data(job.jsonText.utf8), queue: "emails:high")
        // Stored times keep milliseconds.
        #expect(abs(decoded.enqueuedAt.timeIntervalSince(job.enqueuedAt)) < 0.001)
        decoded.enqueuedAt = job.enqueuedAt
        #expect(decoded == job)
    }

    @Test func foreignEntryGetsMissingFieldsFilledIn() throws {
        let now = Date(timeIntervalSince1970: 1_763_800_000)
        let job = try JobEnvelope.decode(Data(#"{"type":"report","payload":{"n":1}}"#.utf8), queue: "default", now: now)
        #expect(job.type == "report")
        #expect(job.payload == .object(["n": .integer(1)]))
        #expect(job.queue == "default")
        #expect(job.attempt == 1)
        #expect(job.enqueuedAt == now)
        #expect(job.priority == nil)
        #expect(job.id.rawValue.count == 26)
    }

    @Test func queueFieldFollowsWhereTheEntryWas() throws {
        let job = try JobEnvelope.decode(Data(#"{"type":"report","queue":"elsewhere"}"#.utf8), queue: "default")
        #expect(job.queue == "default")
    }

    @Test(arguments: [
        ("not json", "not valid JSON"), ("[1,2]", "not a JSON object (found array)"), ("{}", "no \"type\" field"),
        (#"{"type":7}"#, "\"type\" must be a non-empty string"), (#"{"type":"x","attempt":0}"#, "\"attempt\" must be"),
        (#"{"type":"x","enqueued_at":"yesterday"}"#, "not an ISO 8601 time"), ("", "not valid JSON"),
        (#"{"type":"x"} {}"#, "not valid JSON: unexpected text after the value at byte 14"),
        (#"{"type":"x","a":[1,}"#, "not valid JSON: unexpected character at byte 20"), (#""text""#, "not a JSON object (found string)"),
        (#"{"type":"x","type":""}"#, "\"type\" must be a non-empty string"),
    ])
    func malformedEntriesAreRejectedWithAReason(raw: String, reason: String) {
        #expect {
            _ = try JobEnvelope.decode(Data(raw.utf8), queue: "default")
        } throws: { error in
            "\(error)".contains(reason)
        }
    }

    /// Fields are read in one pass: a repeated name keeps its last value (as a dictionary would),
    /// fields decoding does not know are passed over whatever they hold.
    @Test func aRepeatedFieldKeepsItsLastValueAndUnknownFieldsArePassedOver() throws {
        let raw = #"{"type":7,"id":"a","meta":{"deep":[1,{"x":null}],"s":"\u00e9"},"type":"report","attempt":2,"attempt":3,"payload":{"n":1}}"#
        let job = try JobEnvelope.decode(Data(raw.utf8), queue: "default")
        #expect(job.type == "report")
        #expect(job.id.rawValue == "a")
        #expect(job.attempt == 3)
        #expect(job.payload == .object(["n": .integer(1)]))
    }

    @Test func timestampsRoundTrip() throws {
        let date = Date(timeIntervalSince1970: 1_763_800_000.5)
        #expect(Timestamp.format(date) == "2025-11-22T08:26:40.500Z")
        #expect(Timestamp.parse("2025-11-22T08:26:40.500Z") == date)
        #expect(Timestamp.parse("2025-11-22T08:26:40Z") == Date(timeIntervalSince1970: 1_763_800_000))
        // Milliseconds count up from the second, before 1970 too; leading zeros kept.
        #expect(Timestamp.format(Date(timeIntervalSince1970: -0.5)) == "1969-12-31T23:59:59.500Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 1_763_800_000.007)) == "2025-11-22T08:26:40.007Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 1_763_800_001.04)) == "2025-11-22T08:26:41.040Z")
    }

    @Test func jobIDsAreUniqueAndOrdered() {
        let ids = (0..<20_000).map { _ in JobID.make() }
        #expect(Set(ids).count == ids.count)
        #expect(ids == ids.sorted())
        #expect(ids.allSatisfy { $0.rawValue.count == 26 })
    }

    @Test func batchLines() throws {
        let request = try JobRequest(ndjsonLine: Data(#"{"type":"email","priority":"high","payload":{"to":"a@x.org"}}"#.utf8))
        #expect(request == JobRequest(type: "email", priority: "high", payload: .object(["to": .string("a@x.org")])))
        #expect(throws: EnvelopeError.self) { try JobRequest(ndjsonLine: Data(#"{"type":"email","prio":"high"}"#.utf8)) }
        #expect(throws: EnvelopeError.self) { try JobRequest(ndjsonLine: Data("{".utf8)) }
    }

    /// A line's fields are read without a dictionary, with a dictionary's outcome: the last of a
    /// repeated name wins, and the unknown field named is the first in sorted order.
    @Test func batchLinesReadAsADictionaryWould() throws {
        func line(_ text: String) throws(EnvelopeError) -> JobRequest { try JobRequest(ndjsonLine: Data(text.utf8)) }
        func refusal(_ text: String) -> String {
            do { _ = try line(text); return "accepted" } catch { return error.message }
        }
        #expect(try line(#"{"type":"a","payload":1,"type":"email","priority":null,"payload":{"n":2}}"#)
                == JobRequest(type: "email", payload: .object(["n": .integer(2)])))
        #expect(refusal(#"{"zeta":1,"type":"email","beta":2,"alpha":{"x":3}}"#)
                == #"unknown field "alpha"; a line has "type", "priority", "payload" and "then""#)
        #expect(refusal(#"[{"type":"email"}]"#) == "not a JSON object (found array)")
        #expect(refusal(#"{"type":"email"} x"#) == "not valid JSON: unexpected text after the value at byte 18")
        #expect(refusal(#"{"priority":"high"}"#) == #""type" must be a non-empty string"#)
        #expect(refusal(#"{"type":"email","priority":3}"#) == #""priority" must be a string, not number"#)
        #expect(refusal(#"{"type":"email","then":{"type":"b","extra":1,"another":2}}"#)
                == #"unknown field "another"; a line has "type", "priority", "payload" and "then""#)
        #expect(try line(#"{"type":"email","then":[{"type":"b","priority":"low"}]}"#)
                == JobRequest(type: "email", then: [JobRequest(type: "b", priority: "low")]))
    }

    @Test func backoffIsCapped() {
        #expect(ConnectionHealth.backoff(afterFailures: 1) == .milliseconds(100))
        #expect(ConnectionHealth.backoff(afterFailures: 2) == .milliseconds(200))
        #expect(ConnectionHealth.backoff(afterFailures: 50) == .seconds(5))
    }
}
