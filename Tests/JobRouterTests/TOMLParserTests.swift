import Testing
@testable import JobRouter

/// The TOML reader: what TOML 1.0 allows is read as the spec says, what it does not is refused
/// with its line and column.
struct TOMLParserTests {
    private func parse(_ text: String) throws -> TOMLTable { try TOMLTable(string: text) }

    private func fault(_ text: String) -> TOMLSyntaxError? {
        do {
            _ = try TOMLTable(string: text)
            return nil
        } catch {
            return error
        }
    }

    @Test func everyKindOfValue() throws {
        let root = try parse(#"""
            # a comment
            title = "JobRouter"   # after a value
            "quoted key" = 'literal \n stays'
            a.b.c = 1
            a.b.d = 2
            hex = 0xDEAD_beef
            octal = 0o755
            binary = -0
            bits = 0b1101
            big = 9_223_372_036_854_775_807
            small = -9223372036854775808
            floats = [1.5, -2e3, 6.626E-34, 1_000.000_1, inf, -inf, nan]
            flags = [true, false]
            when = 1979-05-27T07:32:00-08:00
            day = 1979-05-27
            spaced = 1979-05-27 07:32:00.999Z
            clock = 07:32:00
            escapes = "tab\t quote\" backslash\\ e\u00E9 snowman\U00002603"
            empty = ""
            inline = { x = 1, y.z = "two" }
            nested = [ [1, 2], ["a"], [], ]
            multi = [
              1,  # one
              2,
            ]

            [servers.alpha]
            ip = "10.0.0.1"

            [[products]]
            name = "Hammer"

            [[products]]
            name = "Nail"
            """#)
        #expect(root["title"]?.string == "JobRouter")
        #expect(root["quoted key"]?.string == #"literal \n stays"#)
        #expect(root["a"]?.table?["b"]?.table?["c"]?.int == 1)
        #expect(root["a"]?.table?["b"]?.table?["d"]?.int == 2)
        #expect(root["hex"]?.int == 0xDEAD_BEEF)
        #expect(root["octal"]?.int == 0o755)
        #expect(root["binary"]?.int == 0)
        #expect(root["bits"]?.int == 13)
        #expect(root["big"]?.int == Int.max)
        #expect(root["small"]?.int == Int.min)
        let floats = try #require(root["floats"]?.array).compactMap(\.double)
        #expect(floats.count == 7)
        #expect(Array(floats.prefix(6)) == [1.5, -2000, 6.626e-34, 1000.0001, .infinity, -.infinity])
        #expect(floats.last?.isNaN == true)
        #expect(root["flags"]?.array?.compactMap(\.bool) == [true, false])
        #expect(root["when"]?.type == .dateTime)
        #expect(root["day"]?.type == .dateTime)
        if case .dateTime(let text)? = root["spaced"]?.storage { #expect(text == "1979-05-27 07:32:00.999Z") } else { Issue.record("spaced is not a date-time") }
        #expect(root["clock"]?.type == .dateTime)
        #expect(root["escapes"]?.string == "tab\t quote\" backslash\\ e\u{E9} snowman\u{2603}")
        #expect(root["empty"]?.string == "")
        let inline = try #require(root["inline"]?.table)
        #expect(inline["x"]?.int == 1)
        #expect(inline["y"]?.table?["z"]?.string == "two")
        let nested = try #require(root["nested"]?.array)
        #expect(nested.map { $0.array?.count } == [2, 1, 0])
        #expect(root["multi"]?.array?.compactMap(\.int) == [1, 2])
        #expect(root["servers"]?.table?["alpha"]?.table?["ip"]?.string == "10.0.0.1")
        #expect(root["products"]?.array?.compactMap { $0.table?["name"]?.string } == ["Hammer", "Nail"])
        #expect(root.keys.prefix(4) == ["title", "quoted key", "a", "hex"])
    }

    @Test func multiLineStrings() throws {
        let root = try parse(#"""
            basic = """
            Roses are red
            Violets are "blue"\tand \
                 wrapped"""
            quotes = """Here are two quotation marks: "". Simple enough."""
            ending = """She said "yes"."""" 
            literal = '''
            The first newline is
            trimmed in raw strings: \n stays.
            '''
            apostrophes = '''That's it.'''''
            folded = """The quick \

                 brown \   
              fox."""
            crlf = "a"
            """#.replacingOccurrences(of: "crlf = \"a\"", with: "crlf = \"\"\"\r\nline\r\n\"\"\""))
        #expect(root["basic"]?.string == "Roses are red\nViolets are \"blue\"\tand wrapped")
        #expect(root["quotes"]?.string == "Here are two quotation marks: \"\". Simple enough.")
        #expect(root["ending"]?.string == "She said \"yes\".\"")
        #expect(root["literal"]?.string == "The first newline is\ntrimmed in raw strings: \\n stays.\n")
        #expect(root["apostrophes"]?.string == "That's it.''")
        #expect(root["folded"]?.string == "The quick brown fox.")
        #expect(root["crlf"]?.string == "line\r\n")
    }

    @Test func tablesMayBeDefinedAfterTheirChildrenAndArraysOfTablesNest() throws {
        let root = try parse("""
            [a.b]
            x = 1
            [a]
            y = 2
            [fruit]
            apple.color = "red"
            [fruit.apple.texture]
            smooth = true
            [[orders]]
            id = 1
            [[orders.lines]]
            sku = "A"
            [[orders.lines]]
            sku = "B"
            [[orders]]
            id = 2
            """)
        #expect(root["a"]?.table?["b"]?.table?["x"]?.int == 1)
        #expect(root["a"]?.table?["y"]?.int == 2)
        #expect(root["fruit"]?.table?["apple"]?.table?["texture"]?.table?["smooth"]?.bool == true)
        let orders = try #require(root["orders"]?.array)
        #expect(orders.count == 2)
        #expect(orders[0].table?["lines"]?.array?.compactMap { $0.table?["sku"]?.string } == ["A", "B"])
        #expect(orders[1].table?["lines"] == nil)
    }

    @Test func everyKeyKeepsItsLine() throws {
        let root = try parse("""
            top = 1

            [groups.mail]
            queues = ["a",
              "b"]
            concurrency = { min = 1,
            """ .replacingOccurrences(of: "{ min = 1,", with: "{ min = 1, max = 4 }") + "\n[[jobs]]\nname = \"x\"\n")
        let lines = Dictionary(root.lines().map { ($0.path.joined(separator: "."), $0.line) }) { first, _ in first }
        #expect(lines["top"] == 1)
        #expect(lines["groups.mail"] == 3)
        #expect(lines["groups.mail.queues"] == 4)
        #expect(lines["groups.mail.concurrency"] == 6)
        #expect(lines["groups.mail.concurrency.max"] == 6)
        #expect(lines["jobs"] == 7)
        #expect(lines["jobs.0.name"] == 8)
        #expect(TOMLLocator(root).line(of: "groups.mail.concurrency.max") == 6)
        #expect(TOMLLocator(root).line(of: "groups.mail.nothing") == 3, "an unwritten key is located at its nearest written parent")
    }

    @Test(arguments: [
        ("a = 1\na = 2", 2, 1, "a is defined twice (first on line 1)"),
        ("[t]\n[t]", 2, 1, "table [t] is defined twice (first on line 1)"),
        ("t = { a = 1 }\n[t]", 2, 1, "[t]: t is already an inline table (line 1)"),
        ("t = { a = 1 }\nt.b = 2", 2, 1, "t is already an inline table (line 1)"),
        ("[t.u]\n[t]\nu.v = 1", 3, 1, "u is a table defined on line 1; dotted keys cannot add to it there"),
        ("a.b = 1\n[a]", 2, 1, "table [a] was already made by dotted keys (line 1)"),
        ("x = [1]\n[[x]]", 2, 1, "x is already an array (line 1)"),
        ("[[x]]\n[x]", 2, 1, "x is an array of tables (line 1)"),
        ("s = \"bad \\q escape\"", 1, 10, "unknown escape \\q"),
        ("s = \"open", 1, 10, "the string is not closed with '\"'"),
        ("n = 012", 1, 5, "'012' is not a TOML value"),
        ("n = 9223372036854775808", 1, 5, "out of range"),
        ("n = 1__000", 1, 5, "'1__000' is not a TOML value"),
        ("t = { a = 1,\n b = 2 }", 1, 13, "an inline table must be on one line"),
        ("t = { a = 1, }", 1, 14, "no comma after its last value"),
        ("a =", 1, 4, "expected a value"),
        ("a = hello", 1, 5, "'hello' is not a TOML value (strings are quoted)"),
        ("a = 1 b = 2", 1, 7, "expected the end of the line, found 'b'"),
        ("a = [1 2]", 1, 8, "expected ',' or ']' in the array, found '2'"),
        ("a = \"\u{7}\"", 1, 6, "control character"),
        ("= 1", 1, 1, "expected a key, found '='"),
        ("[a", 1, 3, "expected ']' to end the table header"),
        ("s = \"\\uD800\"", 1, 6, "is not a Unicode scalar value"),
        ("d = 1979-13-27", 1, 5, "is not a TOML value"),
        ("s = \"\"\"a\rb\"\"\"", 1, 9, "a carriage return must be followed by a line feed"),
        ("s = '''a\rb'''", 1, 9, "a carriage return must be followed by a line feed"),
    ] as [(String, Int, Int, String)])
    func refusedWithItsLineAndColumn(text: String, line: Int, column: Int, message: String) throws {
        let error = try #require(fault(text), "\(text) was read as TOML")
        #expect(error.line == line, "\(text): \(error)")
        #expect(error.column == column, "\(text): \(error)")
        #expect(error.message.contains(message), "\(text): \(error.message)")
    }

    @Test func nestingIsBounded() throws {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(try parse("a = " + deep)["a"]?.array?.count == 1)
        let deeper = String(repeating: "[", count: 5_000) + String(repeating: "]", count: 5_000)
        #expect(fault("a = " + deeper)?.message.contains("nested more than 100 deep") == true)
        #expect(fault("t = " + String(repeating: "{ a = ", count: 200) + "1" + String(repeating: " }", count: 200))?.message.contains("nested more than 100 deep") == true)
        #expect(fault(Array(repeating: "k", count: 5_000).joined(separator: ".") + " = 1")?.message.contains("a key of more than 100 parts") == true)
        #expect(try parse(Array(repeating: "k", count: 100).joined(separator: ".") + " = 1")["k"] != nil)
    }

    @Test func configurationErrorsNameTheLineOfKeysInInlineTablesAndArraysOfLines() throws {
        let text = """
            default_queue = "default"
            [types.report]
            handler = "noop"
            rate_limit = { key = "tenant",
            """.replacingOccurrences(of: "{ key = \"tenant\",", with: "{ key = \"tenant\", limit = \"fast\" }")
            + "\n[groups.all]\nqueues = [\n  \"default\",\n  \"nowhere\",\n]\n"
        do {
            _ = try RouterConfiguration.parse(toml: text, file: "queues.toml")
            Issue.record("a bad rate was accepted")
        } catch let error as ConfigurationError {
            #expect(error.keyPath == "types.report.rate_limit.limit")
            #expect(error.line == 4)
        }
        let routed = text.replacingOccurrences(of: "limit = \"fast\"", with: "limit = \"5/s\"")
        do {
            _ = try RouterConfiguration.parse(toml: routed, file: "queues.toml")
            Issue.record("an unrouted queue was accepted")
        } catch let error as ConfigurationError {
            #expect(error.keyPath == "groups.all.queues")
            #expect(error.line == 6)
        }
    }
}
