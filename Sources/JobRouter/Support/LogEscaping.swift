/// Makes text from outside safe to print on one line of a log or a table: control characters
/// (newlines, escape sequences, NUL, DEL and the C1 range) become visible escapes, so a job type
/// or an error message can never forge a log line or rewrite a terminal.
public enum LogEscaping {
    /// `text` with each control character written as `\n`, `\r`, `\t` or `\u{1B}`.
    public static func escape(_ text: String) -> String {
        // Printable ASCII (nearly every log field) needs no scalar-by-scalar look: this runs for
        // every field of every job's line.
        if isPrintableASCII(text) { return text }
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            guard isControl(scalar) else {
                out.unicodeScalars.append(scalar)
                continue
            }
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default: out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            }
        }
        return out
    }

    /// Whether every byte is printable ASCII: a plain loop over the string's contiguous UTF-8
    /// (native strings have it), several times faster than `allSatisfy` over the view.
    private static func isPrintableASCII(_ text: String) -> Bool {
        let scanned = text.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            for byte in bytes where byte < 0x20 || byte >= 0x7F { return false }
            return true
        }
        return scanned ?? text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}"
    }
}
