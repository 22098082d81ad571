/// Markup safe to send: the template's literal text as written, and every interpolated `String`
/// (a payload, an error, a type name, a queue) HTML-escaped, so data from outside renders as
/// text whatever it holds. Markup built elsewhere is interpolated as ``HTML``, unescaped.
///
/// ```swift
/// let row: HTML = "<td>\(job.type)</td><td>\(count)</td>"
/// ```
public struct HTML: Sendable, Equatable, CustomStringConvertible, ExpressibleByStringInterpolation {
    /// The markup.
    public private(set) var text: String

    public var description: String { text }

    /// Markup taken as is (only for text JobRouter wrote itself).
    public init(trusted text: String) {
        self.text = text
    }

    public init(stringLiteral value: String) {
        text = value
    }

    public init(stringInterpolation: StringInterpolation) {
        text = stringInterpolation.text
    }

    /// Builds ``HTML`` from a literal with interpolations.
    public struct StringInterpolation: StringInterpolationProtocol {
        var text = ""

        public init(literalCapacity: Int, interpolationCount: Int) {
            text.reserveCapacity(literalCapacity + interpolationCount * 16)
        }

        public mutating func appendLiteral(_ literal: String) {
            text += literal
        }

        /// Text from anywhere: escaped.
        public mutating func appendInterpolation(_ value: String) {
            text += HTML.escape(value)
        }

        /// Text that may be missing: escaped, `-` when `nil`.
        public mutating func appendInterpolation(_ value: String?) {
            text += HTML.escape(value ?? "-")
        }

        public mutating func appendInterpolation(_ value: Int) {
            text += String(value)
        }

        /// Markup: as is.
        public mutating func appendInterpolation(_ markup: HTML) {
            text += markup.text
        }

        /// Pieces of markup, one after the other.
        public mutating func appendInterpolation(_ pieces: [HTML]) {
            for piece in pieces { text += piece.text }
        }
    }

    /// `text` with `& < > " '` as character references: safe in element content and in quoted
    /// attribute values.
    public static func escape(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == 0x26 || $0 == 0x3C || $0 == 0x3E || $0 == 0x22 || $0 == 0x27 }) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 16)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    /// `text` for a URL path segment: everything but unreserved characters percent-encoded.
    public static func pathSegment(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(Character(Unicode.Scalar(byte)))
            default:
                out += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return out
    }
}
