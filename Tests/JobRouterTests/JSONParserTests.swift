import Foundation
import Testing
@testable import JobRouter

@Suite struct JSONParserTests {
    @Test(arguments: [
        ("null", JSONValue.null), ("true", .bool(true)), (" false ", .bool(false)), ("0", .integer(0)),
        ("-12", .integer(-12)), ("1.5", .number(1.5)), ("1e3", .number(1000)), ("-0.25E-2", .number(-0.0025)),
        ("9223372036854775807", .integer(Int64.max)), ("9223372036854775808", .number(9223372036854775808)),
        (#""a\"b\\c\/\n\t""#, .string("a\"b\\c/\n\t")), (#""\u00e9\ud83d\ude00""#, .string("é😀")), (#""ünï""#, .string("ünï")),
        ("[]", .array([])), ("{}", .object([:])), (#"{"a":[1,{"b":null}],"c":"d"}"#, .object(["a": .array([.integer(1), .object(["b": .null])]), "c": .string("d")])),
    ])
    func parses(text: String, expected: JSONValue) throws {
        #expect(try JSONValue.parse(text) == expected)
    }

    @Test(arguments: [
        "", " ", "nul", "tru", "01", "1.", ".5", "-", "1e", "+1", "[1,]", "{\"a\":1,}", "{a:1}", "[1 2]", "{\"a\" 1}",
        "\"unterminated", "\"\u{01}\"", #""\x""#, #""\ud83d""#, #""\ude00""#, "[1]x", "NaN", "1e999", "'a'",
    ])
    func rejects(text: String) {
        #expect(throws: (any Error).self) { try JSONValue.parse(text) }
    }

    @Test func limitsNesting() {
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        #expect(throws: (any Error).self) { try JSONValue.parse(deep) }
        let fine = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: Never.self) { try JSONValue.parse(fine) }
    }

    @Test func writesWhatItReads() throws {
        let text = #"{"a":[1,2.5,"x\"\n\u0001"],"b":{"c":null,"d":true}}"#
        let value = try JSONValue.parse(text)
        #expect(try JSONValue.parse(value.jsonText) == value)
        #expect(value.jsonText == text)
    }

    /// Written as bytes: escapes around multi-byte text, every control character, keys sorted.
    @Test func escapesOnlyWhatJSONRequires() throws {
        let value = JSONValue.object(["é😀": .string("a\\b\"c\r\t\u{1F}ünï😀\u{7F}"), "a": .string("")])
        #expect(value.jsonText == #"{"a":"","é😀":"a\\b\"c\r\t\u001fünï😀\#u{7F}"}"#)
        #expect(try JSONValue.parse(value.jsonText) == value)
        #expect(value.jsonBytes == Array(value.jsonText.utf8))
    }

    /// Finding a top-level member's value without decoding: the bytes of the last member of that
    /// name, nested values and strings (holding braces, quotes, the name itself) stepped over whole.
    @Test(arguments: [
        (#"{"id":"j","payload":{"n":1},"attempt":1}"#, #"{"n":1}"#),
        (#" { "payload" : [1, {"payload":"x"}, "]}\"{"] , "b":2 } "#, #"[1, {"payload":"x"}, "]}\"{"]"#),
        (#"{"s":"payload","payload":12345678901234567890}"#, "12345678901234567890"),
        (#"{"payload":1,"payload":"last"}"#, #""last""#),
        (#"{"payload":null}"#, "null"),
        (#"{"a":{"payload":1},"payload":-2.5e3}"#, "-2.5e3"),
    ])
    func findsTheLastMemberOfAName(text: String, expected: String) {
        let bytes = Array(text.utf8)
        let lookup = bytes.withUnsafeBufferPointer { JSONParser.lastMember("payload", in: $0) }
        guard case .found(let range) = lookup else { Issue.record("\(lookup) for \(text)"); return }
        #expect(String(decoding: bytes[range], as: UTF8.self) == expected)
    }

    /// An object without the member says so; what the scan cannot read without decoding (a member
    /// name with an escape, which may spell the name) or is not an object it can follow is left
    /// undecided, never guessed.
    @Test(arguments: [
        (#"{}"#, JSONParser.MemberLookup.absent), (#"{"a":{"payload":1}}"#, .absent), (#"{"pay":"payload"}"#, .absent),
        (#"{"pay\u006coad":1}"#, .undecided), (#"[{"payload":1}]"#, .undecided), (#""payload""#, .undecided),
        (#"{"payload":{"n":1}"#, .undecided), (#"{"payload":"open}"#, .undecided), (#"{"payload":}"#, .undecided),
        (#"{"payload" 1}"#, .undecided), ("", .undecided),
    ])
    func saysWhenAMemberIsAbsentOrCannotBeFound(text: String, expected: JSONParser.MemberLookup) {
        let lookup = Array(text.utf8).withUnsafeBufferPointer { JSONParser.lastMember("payload", in: $0) }
        #expect(lookup == expected, "\(text)")
    }
}
