/// A strict RFC 8259 JSON reader straight into ``JSONValue``: one pass over the bytes, no
/// intermediate objects and no thrown errors on the happy path. Workers read every job through it,
/// so it is kept lean.
package struct JSONParser {
    /// Where and why a document is not JSON.
    struct Error: Swift.Error, CustomStringConvertible {
        var offset: Int
        var reason: String
        /// The reason and where, counting bytes from 1: "unexpected character at byte 7", or
        /// "unexpected end after 12 bytes".
        var description: String {
            reason == "unexpected end" ? "\(reason) after \(offset) bytes" : "\(reason) at byte \(offset + 1)"
        }
    }

    static let maximumDepth = 512

    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0

    private init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    /// Parses a whole document; anything but white space after the value is an error.
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) throws(Error) -> JSONValue {
        var parser = JSONParser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw Error(offset: parser.index, reason: "unexpected text after the value") }
        return value
    }

    /// Parses a whole document whose top level is an object, handing each field to `visit` in
    /// document order (a repeated name is handed over again: the last one is what a dictionary
    /// would keep) instead of building a dictionary of them. Returns `false`, having handed over
    /// nothing, when the top level is another kind of value.
    static func parseFields(_ bytes: UnsafeBufferPointer<UInt8>, _ visit: (String, JSONValue) -> Void) throws(Error) -> Bool {
        var parser = JSONParser(bytes: bytes)
        parser.skipWhitespace()
        guard parser.index < bytes.count, bytes[parser.index] == UInt8(ascii: "{") else { return false }
        try parser.fields(depth: 1, visit)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw Error(offset: parser.index, reason: "unexpected text after the value") }
        return true
    }

    /// What ``lastMember(_:in:)`` found.
    package enum MemberLookup: Equatable {
        /// The value's bytes, of the last member of that name (the one a dictionary keeps).
        case found(Range<Int>)
        /// The object has no member of that name.
        case absent
        /// Not an object this scan can read without decoding (a name with an escape, or text
        /// that is not JSON): the caller must not conclude anything.
        case undecided
    }

    /// Finds where the value of the top-level member `name` of a JSON object stands, without
    /// making any value: strings and nested values are only stepped over. Meant for documents
    /// known to be JSON (an entry a worker decoded); anything unexpected gives `.undecided`.
    package static func lastMember(_ name: StaticString, in bytes: UnsafeBufferPointer<UInt8>) -> MemberLookup {
        let wanted = UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        var scanner = JSONParser(bytes: bytes)
        scanner.skipWhitespace()
        guard scanner.at(UInt8(ascii: "{")) else { return .undecided }
        scanner.index += 1
        scanner.skipWhitespace()
        if scanner.at(UInt8(ascii: "}")) { return .absent }
        var found: Range<Int>?
        while true {
            scanner.skipWhitespace()
            guard scanner.at(UInt8(ascii: "\"")) else { return .undecided }
            let keyStart = scanner.index + 1
            guard let escaped = scanner.stepOverString(), !escaped else { return .undecided }
            let key = UnsafeBufferPointer(rebasing: bytes[keyStart..<(scanner.index - 1)])
            scanner.skipWhitespace()
            guard scanner.at(UInt8(ascii: ":")) else { return .undecided }
            scanner.index += 1
            scanner.skipWhitespace()
            let start = scanner.index
            guard scanner.stepOverValue() else { return .undecided }
            if key.elementsEqual(wanted) { found = start..<scanner.index }
            scanner.skipWhitespace()
            if scanner.at(UInt8(ascii: ",")) {
                scanner.index += 1
            } else if scanner.at(UInt8(ascii: "}")) {
                return found.map { .found($0) } ?? .absent
            } else {
                return .undecided
            }
        }
    }

    private func at(_ byte: UInt8) -> Bool { index < bytes.count && bytes[index] == byte }

    /// Steps over the string starting at `index` (its opening quote); `nil` when it does not
    /// end, else whether it held an escape.
    private mutating func stepOverString() -> Bool? {
        index += 1
        var escaped = false
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\""):
                index += 1
                return escaped
            case UInt8(ascii: "\\"):
                escaped = true
                index += 2
            default:
                index += 1
            }
        }
        return nil
    }

    /// Steps over one value starting at `index`: a string, an object or array (to its matching
    /// end, strings in it stepped over whole), or a scalar (to the next delimiter).
    private mutating func stepOverValue() -> Bool {
        guard index < bytes.count else { return false }
        switch bytes[index] {
        case UInt8(ascii: "\""):
            return stepOverString() != nil
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "\""):
                    guard stepOverString() != nil else { return false }
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 {
                        index += 1
                        return true
                    }
                default:
                    break
                }
                index += 1
            }
            return false
        default:
            let start = index
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x0A, 0x0D, 0x09: return index > start
                default: index += 1
                }
            }
            return false
        }
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    private func fail(_ reason: String) -> Error { Error(offset: index, reason: reason) }

    private mutating func value(depth: Int) throws(Error) -> JSONValue {
        guard index < bytes.count else { throw fail("unexpected end") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw fail("unexpected character")
        }
    }

    private mutating func literal(_ word: StaticString) throws(Error) {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw fail("unexpected end") }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] {
            throw fail("unexpected character")
        }
        index += count
    }

    private mutating func object(depth: Int) throws(Error) -> JSONValue {
        var fields = [String: JSONValue](minimumCapacity: 4)
        try self.fields(depth: depth) { key, value in fields[key] = value }
        return .object(fields)
    }

    /// Reads an object's fields (the index is at its `{`), handing each to `visit`.
    private mutating func fields(depth: Int, _ visit: (String, JSONValue) -> Void) throws(Error) {
        guard depth <= Self.maximumDepth else { throw fail("nested too deeply") }
        index += 1
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a field name") }
            let key = try string()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            index += 1
            skipWhitespace()
            visit(key, try value(depth: depth))
            skipWhitespace()
            guard index < bytes.count else { throw fail("unexpected end") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return
            } else {
                throw fail("expected ',' or '}'")
            }
        }
    }

    private mutating func array(depth: Int) throws(Error) -> JSONValue {
        guard depth <= Self.maximumDepth else { throw fail("nested too deeply") }
        index += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try value(depth: depth))
            skipWhitespace()
            guard index < bytes.count else { throw fail("unexpected end") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            } else {
                throw fail("expected ',' or ']'")
            }
        }
    }

    private mutating func string() throws(Error) -> String {
        index += 1 // opening quote
        let start = index
        // Fast path: no escapes.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw fail("control character in a string") }
            index += 1
        }
        var scratch = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return String(decoding: scratch, as: UTF8.self)
            case UInt8(ascii: "\\"):
                index += 1
                guard index < bytes.count else { throw fail("unexpected end") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""): scratch.append(0x22)
                case UInt8(ascii: "\\"): scratch.append(0x5C)
                case UInt8(ascii: "/"): scratch.append(0x2F)
                case UInt8(ascii: "b"): scratch.append(0x08)
                case UInt8(ascii: "f"): scratch.append(0x0C)
                case UInt8(ascii: "n"): scratch.append(0x0A)
                case UInt8(ascii: "r"): scratch.append(0x0D)
                case UInt8(ascii: "t"): scratch.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        // A high surrogate must be followed by \u and a low one.
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            throw fail("lone surrogate")
                        }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail("lone surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw fail("lone surrogate")
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw fail("bad \\u escape") }
                    scratch.append(contentsOf: String(Character(unicode)).utf8)
                default:
                    throw fail("bad escape")
                }
            default:
                if byte < 0x20 { throw fail("control character in a string") }
                scratch.append(byte)
                index += 1
            }
        }
        throw fail("unterminated string")
    }

    private mutating func hex4() throws(Error) -> UInt32 {
        guard let value = JSONParser.hex4(bytes, at: index) else {
            throw fail(index + 4 <= bytes.count ? "bad \\u escape" : "unexpected end")
        }
        index += 4
        return value
    }

    /// The four hex digits of a `\uXXXX` escape starting at `index`, or `nil`. Shared with the
    /// ledger's record scanner.
    package static func hex4(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> UInt32? {
        guard index >= 0, index + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for byte in bytes[index..<(index + 4)] {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    private mutating func number() throws(Error) -> JSONValue {
        let start = index
        var isInteger = true
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else { throw fail("bad number") }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else { throw fail("bad number") }
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else { throw fail("bad number") }
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        if isInteger, let integer = Int64(text) { return .integer(integer) }
        guard let double = Double(text), double.isFinite else { throw Error(offset: start, reason: "number out of range") }
        return .number(double)
    }
}
