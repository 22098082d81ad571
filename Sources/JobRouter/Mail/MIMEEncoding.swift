import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The encodings a correct message needs: RFC 2047 encoded words for non-ASCII header text, and
/// base64 bodies with lines of 76 characters, so no line ever exceeds 998 octets.
public enum MIMEEncoding {
    /// `text` as is when it is printable ASCII, else as UTF-8 `B` encoded words of at most 75
    /// characters each, split on character boundaries and folded onto continuation lines.
    public static func encodedWords(_ text: String) -> String {
        if text.allSatisfy({ $0.isASCII && ($0 == " " || !$0.isWhitespace) }) && !text.contains("=?") { return text }
        // "=?UTF-8?B?" + "?=" take 12 of the 75 characters: 63 of base64, so 45 bytes of UTF-8.
        var words: [String] = []
        var chunk: [UInt8] = []
        for character in text {
            let bytes = Array(String(character).utf8)
            if chunk.count + bytes.count > 45 {
                words.append("=?UTF-8?B?" + Data(chunk).base64EncodedString() + "?=")
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty { words.append("=?UTF-8?B?" + Data(chunk).base64EncodedString() + "?=") }
        return words.joined(separator: "\r\n ")
    }

    /// Base64 in lines of 76 characters, each ended by CRLF.
    public static func base64Lines(_ data: Data) -> String {
        let encoded = data.base64EncodedString()
        var out = ""
        out.reserveCapacity(encoded.count + encoded.count / 76 * 2 + 2)
        var index = encoded.startIndex
        while index < encoded.endIndex {
            let end = encoded.index(index, offsetBy: 76, limitedBy: encoded.endIndex) ?? encoded.endIndex
            out += encoded[index..<end]
            out += "\r\n"
            index = end
        }
        return out
    }

    /// `text` with every line break made CRLF.
    public static func crlf(_ text: String) -> String {
        text.replacingEvery("\r\n", with: "\n").replacingEvery("\r", with: "\n")
            .replacingEvery("\n", with: "\r\n")
    }

    /// RFC 5322 date: `Sun, 22 Nov 2026 10:00:00 +0000`.
    public static func date(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) +0000"
    }
}
