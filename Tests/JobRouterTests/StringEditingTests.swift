import Testing
@testable import JobRouter

/// The text helpers that replaced Foundation's in the core: they match scalar by scalar, as
/// Foundation's do, so an escape cannot be dodged with a combining mark.
struct StringEditingTests {
    @Test func trimmingBlanksTakesTabsAndSpaceSeparatorsButNotLineBreaks() {
        #expect(" \t 5/s \u{3000}".trimmingBlanks() == "5/s")
        #expect("\nx\n".trimmingBlanks() == "\nx\n")
        #expect("  \t ".trimmingBlanks() == "")
        #expect("a b"[...].trimmingBlanks() == "a b")
    }

    @Test func replacingEveryMatchesScalarsNotCharacters() {
        // A quote followed by a combining acute accent is one Character, and still a quote to escape.
        let name = "Bob \"\u{301}x"
        #expect(name.replacingEvery("\"", with: "\\\"") == "Bob \\\"\u{301}x")
        #expect("a\r\nb\rc\nd".replacingEvery("\r\n", with: "\n").replacingEvery("\r", with: "\n") == "a\nb\nc\nd")
        #expect("{a}q{a}".replacingEvery("{a}", with: "") == "q")
        #expect("abc".replacingEvery("x", with: "y") == "abc")
    }

    @Test func percentEscapesDecodeOrRefuse() {
        #expect("p%40ss%3Aw%C3%B6rd".removingPercentEscapes() == "p@ss:w\u{F6}rd")
        #expect("plain".removingPercentEscapes() == "plain")
        #expect("bad%4".removingPercentEscapes() == nil)
        #expect("bad%zz".removingPercentEscapes() == nil)
        #expect("%FF".removingPercentEscapes() == nil, "not UTF-8")
    }

    @Test func redactionFindsTheSchemeAndTheLastAtSignScalarWise() {
        #expect(PostgresSettings.redacted("postgres://app:s3cret@db:5432/app") == "postgres://app:***@db:5432/app")
        // An at sign with a combining mark after it is still where the credentials end.
        #expect(PostgresSettings.redacted("postgres://app:s3cret@\u{301}db/app") == "postgres://app:***@\u{301}db/app")
        #expect("x://y".firstScalarRange(of: "://") != nil)
    }
}
