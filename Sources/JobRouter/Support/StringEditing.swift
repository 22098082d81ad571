/// Text edits the core and the Redis driver need, without Foundation (a worker links
/// FoundationEssentials only).
/// Matching goes scalar by scalar, as Foundation's string methods do, not character by
/// character: a quote followed by a combining mark is still a quote to escape.
extension StringProtocol {
    /// The text without blanks at either end (tabs, spaces and Unicode's other space separators):
    /// what `trimmingCharacters(in: .whitespaces)` gives.
    package func trimmingBlanks() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.isBlank }),
              let last = scalars.lastIndex(where: { !$0.isBlank }) else { return "" }
        return String(String.UnicodeScalarView(scalars[first...last]))
    }

    /// Every occurrence of `target` replaced by `replacement`, left to right.
    package func replacingEvery(_ target: String, with replacement: String) -> String {
        String(String.UnicodeScalarView(unicodeScalars).replacing(target.unicodeScalars, with: replacement.unicodeScalars))
    }
}

extension Unicode.Scalar {
    /// A tab or a space separator (Unicode category Zs).
    package var isBlank: Bool { self == "\t" || properties.generalCategory == .spaceSeparator }
}

extension String {
    /// Where the first `target` stands, matched scalar by scalar.
    package func firstScalarRange(of target: String) -> Range<String.Index>? {
        unicodeScalars.firstRange(of: target.unicodeScalars)
    }
}

extension StringProtocol {
    /// `%XX` escapes decoded (what `removingPercentEncoding` gives): `nil` for a `%` without two
    /// hexadecimal digits after it, or bytes that are not UTF-8.
    package func removingPercentEscapes() -> String? {
        var bytes: [UInt8] = []
        var iterator = utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(Self.hexValue), let low = iterator.next().flatMap(Self.hexValue) else { return nil }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
