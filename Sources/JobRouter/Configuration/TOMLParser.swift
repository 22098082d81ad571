/// Reads TOML 1.0 text into a ``TOMLTable``, keeping the line of every key, and refuses what
/// TOML does not allow (a key or table defined twice, an inline table extended later, a bad
/// escape or number) with the line and column of the fault.
///
/// It reads the whole of TOML 1.0's syntax. It is the core's own so that a worker reads its
/// configuration without Foundation (the TOML library it replaced
/// imported Foundation into every worker). Dates and times are checked and kept as written
/// (``TOMLValue/Storage/dateTime(_:)``): no `queues.toml` key takes one.
struct TOMLParser {
    private let bytes: [UInt8]
    private var index = 0
    /// How deep the arrays and inline tables being read are nested.
    private var depth = 0
    /// The deepest nesting read (arrays, inline tables, parts of a dotted key): past it the text
    /// is refused rather than read by recursion without a bound.
    static let maximumDepth = 100
    /// Where each line starts, for line and column numbers.
    private let lineStarts: [Int]

    init(text: String) {
        bytes = Array(text.utf8)
        var starts = [0]
        for (offset, byte) in bytes.enumerated() where byte == UInt8(ascii: "\n") { starts.append(offset + 1) }
        lineStarts = starts
    }

    // MARK: The document

    /// A table while the document is read: headers and dotted keys may still add to it.
    private final class Table {
        enum Origin {
            /// Made as the parent of a header or of a table array (`[a.b]` makes `a`): a header may still define it.
            case implicit
            /// Defined by a `[header]` (or an element of `[[array]]`).
            case header
            /// Made by a dotted key (`a.b = 1` makes `a`): only more dotted keys in the same table add to it.
            case dotted
        }

        enum Child {
            case table(Table)
            case tables([Table], line: Int)
            /// A value, inline tables and static arrays included: nothing adds to it later.
            case value(TOMLValue)
        }

        var origin: Origin
        var line: Int
        var keys: [String] = []
        var children: [String: Child] = [:]

        init(origin: Origin, line: Int) {
            self.origin = origin
            self.line = line
        }

        func set(_ key: String, _ child: Child) {
            if children.updateValue(child, forKey: key) == nil { keys.append(key) }
        }

        var value: TOMLTable {
            var table = TOMLTable()
            for key in keys {
                switch children[key] {
                case .table(let child)?:
                    table.append(key, TOMLValue(storage: .table(child.value), line: child.line))
                case .tables(let elements, let line)?:
                    table.append(key, TOMLValue(storage: .array(elements.map { TOMLValue(storage: .table($0.value), line: $0.line) }), line: line))
                case .value(let value)?:
                    table.append(key, value)
                case nil:
                    break
                }
            }
            return table
        }
    }

    mutating func document() throws(TOMLSyntaxError) -> TOMLTable {
        // A byte-order mark is allowed before the document.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
        let root = Table(origin: .header, line: 1)
        var current = root
        while true {
            skipBlank()
            guard let byte = peek else { break }
            switch byte {
            case UInt8(ascii: "#"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                break
            case UInt8(ascii: "["):
                current = try header(root)
            default:
                try keyValue(into: current)
            }
            try endOfLine()
        }
        return root.value
    }

    /// `[a.b]` or `[[a.b]]`: the table that the keys after it go into.
    private mutating func header(_ root: Table) throws(TOMLSyntaxError) -> Table {
        let start = index
        let line = lineNumber(start)
        index += 1
        let isArray = take(UInt8(ascii: "["))
        skipBlank()
        let path = try key()
        skipBlank()
        guard take(UInt8(ascii: "]")) else { throw fault(isArray ? "expected ']]' to end the table array header" : "expected ']' to end the table header") }
        if isArray, !take(UInt8(ascii: "]")) { throw fault("expected ']]' to end the table array header") }
        let name = "[\(isArray ? "[" : "")\(Self.join(path))\(isArray ? "]" : "")]"
        var table = root
        for (depth, component) in path.dropLast().enumerated() {
            switch table.children[component] {
            case .table(let child)?:
                table = child
            case .tables(let elements, _)?:
                guard let last = elements.last else { throw fault("\(name): \(Self.join(path.prefix(depth + 1))) is empty", at: start) }
                table = last
            case .value(let value)?:
                throw fault("\(name): \(Self.join(path.prefix(depth + 1))) is already \(Self.describe(value)) (line \(value.line)); nothing can be added to it", at: start)
            case nil:
                let child = Table(origin: .implicit, line: line)
                table.set(component, .table(child))
                table = child
            }
        }
        guard let last = path.last else { throw fault("a table header needs a name", at: start) }
        let existing = table.children[last]
        if isArray {
            switch existing {
            case nil:
                let element = Table(origin: .header, line: line)
                table.set(last, .tables([element], line: line))
                return element
            case .tables(let elements, let arrayLine)?:
                let element = Table(origin: .header, line: line)
                table.set(last, .tables(elements + [element], line: arrayLine))
                return element
            case .table(let child)?:
                throw fault("\(name): \(Self.join(path)) is already a table (line \(child.line)), not an array of tables", at: start)
            case .value(let value)?:
                throw fault("\(name): \(Self.join(path)) is already \(Self.describe(value)) (line \(value.line)); a [[table array]] cannot add to it", at: start)
            }
        }
        switch existing {
        case nil:
            let child = Table(origin: .header, line: line)
            table.set(last, .table(child))
            return child
        case .table(let child)?:
            switch child.origin {
            case .implicit:
                child.origin = .header
                child.line = line
                return child
            case .header:
                throw fault("table \(name) is defined twice (first on line \(child.line))", at: start)
            case .dotted:
                throw fault("table \(name) was already made by dotted keys (line \(child.line)); a header cannot reopen it", at: start)
            }
        case .tables(_, let arrayLine)?:
            throw fault("\(name): \(Self.join(path)) is an array of tables (line \(arrayLine)); write [[\(Self.join(path))]] to add to it", at: start)
        case .value(let value)?:
            throw fault("\(name): \(Self.join(path)) is already \(Self.describe(value)) (line \(value.line))", at: start)
        }
    }

    /// `key = value`, the key perhaps dotted, into `table`.
    private mutating func keyValue(into table: Table) throws(TOMLSyntaxError) {
        let start = index
        let line = lineNumber(start)
        let path = try key()
        skipBlank()
        guard take(UInt8(ascii: "=")) else { throw fault("expected '=' after the key \(Self.join(path))") }
        skipBlank()
        let value = try self.value()
        var target = table
        for (depth, component) in path.dropLast().enumerated() {
            switch target.children[component] {
            case .table(let child)? where child.origin == .dotted:
                target = child
            case .table(let child)?:
                throw fault("\(Self.join(path.prefix(depth + 1))) is a table defined on line \(child.line); dotted keys cannot add to it there", at: start)
            case .tables(_, let arrayLine)?:
                throw fault("\(Self.join(path.prefix(depth + 1))) is an array of tables (line \(arrayLine)); dotted keys cannot add to it", at: start)
            case .value(let existing)?:
                throw fault("\(Self.join(path.prefix(depth + 1))) is already \(Self.describe(existing)) (line \(existing.line)); nothing can be added to it", at: start)
            case nil:
                let child = Table(origin: .dotted, line: line)
                target.set(component, .table(child))
                target = child
            }
        }
        guard let last = path.last else { throw fault("expected a key", at: start) }
        if let existing = target.children[last] {
            let earlier: Int
            switch existing {
            case .table(let child): earlier = child.line
            case .tables(_, let arrayLine): earlier = arrayLine
            case .value(let value): earlier = value.line
            }
            throw fault("\(Self.join(path)) is defined twice (first on line \(earlier))", at: start)
        }
        target.set(last, .value(TOMLValue(storage: value, line: line)))
    }

    /// After a key-value pair or a header: blanks, perhaps a comment, then the end of the line.
    private mutating func endOfLine() throws(TOMLSyntaxError) {
        skipBlank()
        if peek == UInt8(ascii: "#") { try comment() }
        guard let byte = peek else { return }
        if byte == UInt8(ascii: "\n") { index += 1; return }
        if byte == UInt8(ascii: "\r"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "\n") { index += 2; return }
        throw fault("expected the end of the line, found \(describeByte(byte))")
    }

    private mutating func comment() throws(TOMLSyntaxError) {
        index += 1
        while let byte = peek, byte != UInt8(ascii: "\n") {
            if byte == UInt8(ascii: "\r"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "\n") { return }
            if (byte < 0x20 && byte != UInt8(ascii: "\t")) || byte == 0x7F { throw fault("control character \(describeByte(byte)) in a comment") }
            index += 1
        }
    }

    // MARK: Keys

    /// A key, dotted or not: its parts.
    private mutating func key() throws(TOMLSyntaxError) -> [String] {
        var parts: [String] = []
        while true {
            skipBlank()
            guard let byte = peek else { throw fault("expected a key, found the end of the text") }
            switch byte {
            case UInt8(ascii: "\""):
                if remainingStarts("\"\"\"") { throw fault("a key cannot be a multi-line string") }
                parts.append(try basicString())
            case UInt8(ascii: "'"):
                if remainingStarts("'''") { throw fault("a key cannot be a multi-line string") }
                parts.append(try literalString())
            default:
                let start = index
                while let byte = peek, Self.isBareKey(byte) { index += 1 }
                guard index > start else { throw fault("expected a key, found \(describeByte(byte))") }
                parts.append(String(decoding: bytes[start..<index], as: UTF8.self))
            }
            skipBlank()
            guard take(UInt8(ascii: ".")) else { return parts }
            guard parts.count < Self.maximumDepth else { throw fault("a key of more than \(Self.maximumDepth) parts") }
        }
    }

    private static func isBareKey(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "_"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    // MARK: Values

    private mutating func value() throws(TOMLSyntaxError) -> TOMLValue.Storage {
        guard let byte = peek else { throw fault("expected a value, found the end of the text") }
        switch byte {
        case UInt8(ascii: "\""):
            return .string(remainingStarts("\"\"\"") ? try multilineBasicString() : try basicString())
        case UInt8(ascii: "'"):
            return .string(remainingStarts("'''") ? try multilineLiteralString() : try literalString())
        case UInt8(ascii: "["):
            return .array(try array())
        case UInt8(ascii: "{"):
            return .table(try inlineTable())
        case UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "#"):
            throw fault("expected a value after '='")
        default:
            return try scalar()
        }
    }

    private mutating func array() throws(TOMLSyntaxError) -> [TOMLValue] {
        try enterNesting()
        defer { depth -= 1 }
        index += 1
        var elements: [TOMLValue] = []
        while true {
            try skipBlankLinesAndComments()
            if take(UInt8(ascii: "]")) { return elements }
            let line = lineNumber(index)
            elements.append(TOMLValue(storage: try value(), line: line))
            try skipBlankLinesAndComments()
            if take(UInt8(ascii: "]")) { return elements }
            guard take(UInt8(ascii: ",")) else {
                throw fault(peek.map { "expected ',' or ']' in the array, found \(describeByte($0))" } ?? "the array is not closed with ']'")
            }
        }
    }

    /// `{ a = 1, b.c = 2 }`: on one line, no trailing comma; nothing adds to it afterwards.
    private mutating func inlineTable() throws(TOMLSyntaxError) -> TOMLTable {
        try enterNesting()
        defer { depth -= 1 }
        index += 1
        let table = Table(origin: .header, line: lineNumber(index))
        skipBlank()
        if take(UInt8(ascii: "}")) { return table.value }
        while true {
            skipBlank()
            if peek == UInt8(ascii: "\n") || peek == UInt8(ascii: "\r") { throw fault("an inline table must be on one line") }
            try keyValue(into: table)
            skipBlank()
            if take(UInt8(ascii: "}")) { return table.value }
            guard take(UInt8(ascii: ",")) else {
                throw fault(peek.map { "expected ',' or '}' in the inline table, found \(describeByte($0))" } ?? "the inline table is not closed with '}'")
            }
            skipBlank()
            if peek == UInt8(ascii: "}") { throw fault("an inline table takes no comma after its last value") }
        }
    }

    private mutating func enterNesting() throws(TOMLSyntaxError) {
        guard depth < Self.maximumDepth else { throw fault("arrays and inline tables nested more than \(Self.maximumDepth) deep") }
        depth += 1
    }

    /// A number, a boolean, a date or a time.
    private mutating func scalar() throws(TOMLSyntaxError) -> TOMLValue.Storage {
        let start = index
        while let byte = peek, Self.isScalar(byte) { index += 1 }
        // A date and a time may be separated by one space: `1979-05-27 07:32:00`.
        if index - start == 10, Self.isDate(bytes[start..<index]), peek == UInt8(ascii: " "), index + 1 < bytes.count,
           Self.isDigit(bytes[index + 1]) {
            index += 1
            while let byte = peek, Self.isScalar(byte) { index += 1 }
        }
        guard index > start else { throw fault("expected a value, found \(describeByte(bytes[start]))") }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        switch text {
        case "true": return .boolean(true)
        case "false": return .boolean(false)
        case "inf", "+inf": return .float(.infinity)
        case "-inf": return .float(-.infinity)
        case "nan", "+nan", "-nan": return .float(.nan)
        default: break
        }
        if Self.isDateTime(bytes[start..<index]) { return .dateTime(text) }
        if let integer = try integer(text, at: start) { return .integer(integer) }
        if let float = Self.float(text) { return .float(float) }
        throw fault("'\(text)' is not a TOML value (strings are quoted)", at: start)
    }

    private static func isScalar(_ byte: UInt8) -> Bool {
        isBareKey(byte) || byte == UInt8(ascii: "+") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: ":")
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// An integer (decimal, `0x`, `0o`, `0b`, underscores between digits), `nil` if the text is
    /// not one; throws when it is one but too large.
    private func integer(_ text: String, at start: Int) throws(TOMLSyntaxError) -> Int64? {
        var digits = Substring(text)
        var radix = 10
        var negative = false
        if digits.hasPrefix("0x") || digits.hasPrefix("0o") || digits.hasPrefix("0b") {
            radix = digits.hasPrefix("0x") ? 16 : digits.hasPrefix("0o") ? 8 : 2
            digits = digits.dropFirst(2)
        } else {
            if digits.first == "+" || digits.first == "-" {
                negative = digits.first == "-"
                digits = digits.dropFirst()
            }
            // No leading zeros in a decimal integer.
            if digits.count > 1, digits.first == "0" { return nil }
        }
        guard Self.underscoresBetweenDigits(digits, radix: radix) else { return nil }
        let plain = digits.filter { $0 != "_" }
        guard !plain.isEmpty else { return nil }
        // Every character is a digit of the radix (checked above): no value means too large.
        guard let magnitude = UInt64(plain, radix: radix) else { throw fault("the integer \(text) is out of range (64-bit)", at: start) }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { throw fault("the integer \(text) is out of range (64-bit)", at: start) }
            return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { throw fault("the integer \(text) is out of range (64-bit)", at: start) }
        return Int64(magnitude)
    }

    /// Each underscore with a digit on both sides.
    private static func underscoresBetweenDigits(_ text: Substring, radix: Int) -> Bool {
        let characters = Array(text)
        for (offset, character) in characters.enumerated() {
            if character == "_" {
                guard offset > 0, offset + 1 < characters.count, characters[offset - 1].isHexDigit, characters[offset + 1].isHexDigit else { return false }
            } else if character.hexDigitValue.map({ $0 >= radix }) ?? true {
                return false
            }
        }
        return true
    }

    /// A float: an integer part, then a fraction, an exponent or both.
    private static func float(_ text: String) -> Double? {
        var characters = Substring(text)
        var sign = ""
        if characters.first == "+" || characters.first == "-" {
            sign = characters.first == "-" ? "-" : ""
            characters = characters.dropFirst()
        }
        // integer part
        let integerPart = characters.prefix { $0.isNumber || $0 == "_" }
        guard !integerPart.isEmpty, integerPart.first != "_", integerPart.last != "_", !integerPart.contains("__"),
              !(integerPart.count > 1 && integerPart.first == "0") else { return nil }
        var rest = characters.dropFirst(integerPart.count)
        var fraction: Substring = ""
        var exponent: Substring = ""
        if rest.first == "." {
            rest = rest.dropFirst()
            fraction = rest.prefix { $0.isNumber || $0 == "_" }
            guard !fraction.isEmpty, fraction.first != "_", fraction.last != "_", !fraction.contains("__") else { return nil }
            rest = rest.dropFirst(fraction.count)
        }
        if rest.first == "e" || rest.first == "E" {
            rest = rest.dropFirst()
            var exponentSign: Substring = ""
            if rest.first == "+" || rest.first == "-" {
                exponentSign = rest.prefix(1)
                rest = rest.dropFirst()
            }
            let digits = rest.prefix { $0.isNumber || $0 == "_" }
            guard !digits.isEmpty, digits.first != "_", digits.last != "_", !digits.contains("__") else { return nil }
            exponent = "e" + exponentSign + digits
            rest = rest.dropFirst(digits.count)
        }
        guard rest.isEmpty, !fraction.isEmpty || !exponent.isEmpty else { return nil }
        let plain = (sign + integerPart + (fraction.isEmpty ? "" : "." + fraction) + exponent).filter { $0 != "_" }
        return Double(plain)
    }

    /// `YYYY-MM-DD`.
    private static func isDate(_ text: ArraySlice<UInt8>) -> Bool {
        let shape = Array(text)
        guard shape.count == 10, shape[4] == UInt8(ascii: "-"), shape[7] == UInt8(ascii: "-") else { return false }
        guard let month = number(shape[5..<7]), let day = number(shape[8..<10]), number(shape[0..<4]) != nil else { return false }
        return (1...12).contains(month) && (1...31).contains(day)
    }

    /// `HH:MM:SS[.fraction]`.
    private static func isTime(_ text: ArraySlice<UInt8>) -> Bool {
        let shape = Array(text)
        guard shape.count >= 8, shape[2] == UInt8(ascii: ":"), shape[5] == UInt8(ascii: ":"),
              let hour = number(shape[0..<2]), let minute = number(shape[3..<5]), let second = number(shape[6..<8]),
              hour < 24, minute < 60, second <= 60 else { return false }
        if shape.count == 8 { return true }
        return shape[8] == UInt8(ascii: ".") && shape.count > 9 && shape[9...].allSatisfy(isDigit)
    }

    /// A local date, a local time, or a date and time (with `T`, `t` or a space), perhaps with an
    /// offset (`Z` or `±HH:MM`).
    private static func isDateTime(_ text: ArraySlice<UInt8>) -> Bool {
        let shape = Array(text)
        if isTime(text) { return true }
        guard shape.count >= 10, isDate(shape[0..<10]) else { return false }
        if shape.count == 10 { return true }
        guard [UInt8(ascii: "T"), UInt8(ascii: "t"), UInt8(ascii: " ")].contains(shape[10]) else { return false }
        var time = shape[11...]
        if let last = time.last, last == UInt8(ascii: "Z") || last == UInt8(ascii: "z") {
            time = time.dropLast()
        } else if time.count >= 14, let sign = time.dropLast(5).last, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
            let offset = Array(time.suffix(5))
            guard offset[2] == UInt8(ascii: ":"), let hours = number(offset[0..<2]), let minutes = number(offset[3..<5]),
                  hours < 24, minutes < 60 else { return false }
            time = time.dropLast(6)
        }
        return isTime(time)
    }

    private static func number(_ digits: ArraySlice<UInt8>) -> Int? {
        guard !digits.isEmpty, digits.allSatisfy(isDigit) else { return nil }
        return digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
    }

    // MARK: Strings

    /// `"…"` with escapes.
    private mutating func basicString() throws(TOMLSyntaxError) -> String {
        index += 1
        var out: [UInt8] = []
        while true {
            guard let byte = peek else { throw fault("the string is not closed with '\"'") }
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return try text(out)
            case UInt8(ascii: "\\"):
                try escape(into: &out)
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                throw fault("the string is not closed on its line (for several lines, use \"\"\")")
            default:
                try checkCharacter(byte)
                out.append(byte)
                index += 1
            }
        }
    }

    /// `"""…"""`: a newline right after the opening quotes is dropped; a backslash at the end of
    /// a line drops the line break and the blanks after it.
    private mutating func multilineBasicString() throws(TOMLSyntaxError) -> String {
        index += 3
        skipNewline()
        var out: [UInt8] = []
        while true {
            guard let byte = peek else { throw fault("the string is not closed with '\"\"\"'") }
            switch byte {
            case UInt8(ascii: "\""):
                if let closed = closing(UInt8(ascii: "\""), into: &out) {
                    if closed { return try text(out) }
                } else {
                    throw fault("too many quotes at the end of the string")
                }
            case UInt8(ascii: "\\"):
                if try !skipLineEndingBackslash() { try escape(into: &out) }
            case UInt8(ascii: "\r"), UInt8(ascii: "\n"):
                try lineBreak(into: &out)
            default:
                try checkCharacter(byte)
                out.append(byte)
                index += 1
            }
        }
    }

    /// `'…'`: as written.
    private mutating func literalString() throws(TOMLSyntaxError) -> String {
        index += 1
        let start = index
        while true {
            guard let byte = peek else { throw fault("the string is not closed with \"'\"") }
            if byte == UInt8(ascii: "'") { break }
            if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") { throw fault("the string is not closed on its line (for several lines, use ''')") }
            try checkCharacter(byte)
            index += 1
        }
        let out = Array(bytes[start..<index])
        index += 1
        return try text(out)
    }

    /// `'''…'''`: as written, but a newline right after the opening quotes.
    private mutating func multilineLiteralString() throws(TOMLSyntaxError) -> String {
        index += 3
        skipNewline()
        var out: [UInt8] = []
        while true {
            guard let byte = peek else { throw fault("the string is not closed with \"'''\"") }
            if byte == UInt8(ascii: "'") {
                if let closed = closing(UInt8(ascii: "'"), into: &out) {
                    if closed { return try text(out) }
                    continue
                }
                throw fault("too many quotes at the end of the string")
            }
            if byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") {
                try lineBreak(into: &out)
                continue
            }
            try checkCharacter(byte)
            out.append(byte)
            index += 1
        }
    }

    /// At a backslash in a multi-line basic string: when nothing but blanks follows it on its
    /// line, steps over it, the line break and every blank and line break after them (the text
    /// goes on at the next non-blank), and says so.
    private mutating func skipLineEndingBackslash() throws(TOMLSyntaxError) -> Bool {
        var probe = index + 1
        while probe < bytes.count, bytes[probe] == UInt8(ascii: " ") || bytes[probe] == UInt8(ascii: "\t") { probe += 1 }
        guard probe < bytes.count, bytes[probe] == UInt8(ascii: "\n") || bytes[probe] == UInt8(ascii: "\r") else { return false }
        index = probe
        var dropped: [UInt8] = []
        while let next = peek {
            if next == UInt8(ascii: " ") || next == UInt8(ascii: "\t") {
                index += 1
            } else if next == UInt8(ascii: "\n") || next == UInt8(ascii: "\r") {
                try lineBreak(into: &dropped)
            } else {
                break
            }
        }
        return true
    }

    /// At a line break in a multi-line string: keeps it (LF or CRLF) and steps over it; a
    /// carriage return without a line feed after it is refused.
    private mutating func lineBreak(into out: inout [UInt8]) throws(TOMLSyntaxError) {
        if take(UInt8(ascii: "\n")) {
            out.append(UInt8(ascii: "\n"))
            return
        }
        guard remainingStarts("\r\n") else { throw fault("a carriage return must be followed by a line feed") }
        out.append(contentsOf: [UInt8(ascii: "\r"), UInt8(ascii: "\n")])
        index += 2
    }

    /// At a run of `quote`s in a multi-line string: `true` when three of them end it (up to two
    /// more before them belong to the text), `false` when fewer than three (text), `nil` when
    /// more than five.
    private mutating func closing(_ quote: UInt8, into out: inout [UInt8]) -> Bool? {
        var count = 0
        while index + count < bytes.count, bytes[index + count] == quote { count += 1 }
        if count < 3 {
            out.append(contentsOf: repeatElement(quote, count: count))
            index += count
            return false
        }
        guard count <= 5 else { return nil }
        out.append(contentsOf: repeatElement(quote, count: count - 3))
        index += count
        return true
    }

    private mutating func escape(into out: inout [UInt8]) throws(TOMLSyntaxError) {
        index += 1
        guard let byte = peek else { throw fault("the string ends in the middle of an escape") }
        index += 1
        switch byte {
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "\""): out.append(byte)
        case UInt8(ascii: "\\"): out.append(byte)
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let width = byte == UInt8(ascii: "u") ? 4 : 8
            guard index + width <= bytes.count,
                  let value = UInt32(String(decoding: bytes[index..<(index + width)], as: UTF8.self), radix: 16),
                  bytes[index..<(index + width)].allSatisfy({ Character(Unicode.Scalar($0)).isHexDigit }) else {
                throw fault("\\\(Character(Unicode.Scalar(byte))) needs \(width) hexadecimal digits", at: index - 2)
            }
            guard let scalar = Unicode.Scalar(value) else {
                throw fault("\\\(Character(Unicode.Scalar(byte)))\(String(value, radix: 16, uppercase: true)) is not a Unicode scalar value", at: index - 2)
            }
            out.append(contentsOf: Array(String(Character(scalar)).utf8))
            index += width
        default:
            throw fault("unknown escape \\\(describeEscaped(byte)) (escapes: \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX)", at: index - 2)
        }
    }

    /// Control characters other than tab are not allowed in strings and comments.
    private func checkCharacter(_ byte: UInt8) throws(TOMLSyntaxError) {
        if (byte < 0x20 && byte != UInt8(ascii: "\t")) || byte == 0x7F {
            throw fault("control character \(describeByte(byte)) in a string (write it as an escape)")
        }
    }

    private func text(_ utf8: [UInt8]) throws(TOMLSyntaxError) -> String {
        guard let text = String(validating: utf8, as: UTF8.self) else { throw fault("the string is not valid UTF-8") }
        return text
    }

    // MARK: Scanning

    private var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func take(_ byte: UInt8) -> Bool {
        guard peek == byte else { return false }
        index += 1
        return true
    }

    private func remainingStarts(_ prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard index + count <= bytes.count else { return false }
        return prefix.withUTF8Buffer { bytes[index..<(index + count)].elementsEqual($0) }
    }

    private mutating func skipBlank() {
        while let byte = peek, byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { index += 1 }
    }

    private mutating func skipNewline() {
        if take(UInt8(ascii: "\n")) { return }
        if remainingStarts("\r\n") { index += 2 }
    }

    /// Inside an array: blanks, line breaks and comments.
    private mutating func skipBlankLinesAndComments() throws(TOMLSyntaxError) {
        while let byte = peek {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"):
                index += 1
            case UInt8(ascii: "\r"):
                guard remainingStarts("\r\n") else { throw fault("a carriage return must be followed by a line feed") }
                index += 2
            case UInt8(ascii: "#"):
                try comment()
            default:
                return
            }
        }
    }

    // MARK: Errors

    private func lineNumber(_ offset: Int) -> Int {
        var low = 0, high = lineStarts.count - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if lineStarts[middle] <= offset { low = middle } else { high = middle - 1 }
        }
        return low + 1
    }

    private func fault(_ message: String, at offset: Int? = nil) -> TOMLSyntaxError {
        let at = min(offset ?? index, bytes.count)
        let line = lineNumber(at)
        let lineStart = lineStarts[line - 1]
        let column = String(decoding: bytes[lineStart..<at], as: UTF8.self).count + 1
        return TOMLSyntaxError(line: line, column: column, message: message)
    }

    private func describeByte(_ byte: UInt8) -> String {
        switch byte {
        case UInt8(ascii: "\n"): return "a line break"
        case UInt8(ascii: "\r"): return "a carriage return"
        case UInt8(ascii: "\t"): return "a tab"
        case 0x20..<0x7F: return "'\(Character(Unicode.Scalar(byte)))'"
        default: return "byte 0x\(String(byte, radix: 16, uppercase: true))"
        }
    }

    private func describeEscaped(_ byte: UInt8) -> String {
        (0x21..<0x7F).contains(byte) ? String(Character(Unicode.Scalar(byte))) : describeByte(byte)
    }

    static func join(_ path: some Collection<String>) -> String { TOMLLocator.join(Array(path)) }

    private static func describe(_ value: TOMLValue) -> String {
        switch value.type {
        case .table: "an inline table"
        case .array: "an array"
        case .string: "a string"
        case .int: "an integer"
        case .double: "a float"
        case .bool: "a boolean"
        case .dateTime: "a date or time"
        }
    }
}
