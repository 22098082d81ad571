import FoundationEssentials

/// A mailbox: an address with an optional display name. Parsing rejects anything that could
/// inject headers or commands (CR, LF, NUL, angle brackets in the wrong place).
public struct MailAddress: Sendable, Equatable, CustomStringConvertible {
    /// `local@domain`.
    public var address: String
    /// The display name, when given as `Name <local@domain>`.
    public var name: String?

    /// Reads `local@domain` or `Name <local@domain>`.
    public init(_ text: String) throws(MailError) {
        if Self.hasLineBreak(text) { throw MailError("address contains a line break") }
        let trimmed = text.trimmingBlanks()
        if let open = trimmed.lastIndex(of: "<"), trimmed.hasSuffix(">") {
            var name = trimmed[..<open].trimmingBlanks()
            if name.hasPrefix("\""), name.hasSuffix("\""), name.count >= 2 { name = String(name.dropFirst().dropLast()) }
            self.name = name.isEmpty ? nil : name
            self.address = String(trimmed[trimmed.index(after: open)..<trimmed.index(before: trimmed.endIndex)])
        } else {
            self.name = nil
            self.address = trimmed
        }
        guard Self.isValid(address) else { throw MailError("invalid address '\(text)'") }
    }

    /// `true` when `text` holds CR, LF or NUL anywhere. Checked on Unicode scalars: in Swift "\r\n"
    /// is one `Character`, equal to neither "\r" nor "\n".
    public static func hasLineBreak(_ text: String) -> Bool {
        text.unicodeScalars.contains { $0 == "\r" || $0 == "\n" || $0 == "\0" || $0 == "\u{2028}" || $0 == "\u{2029}" || $0 == "\u{85}" }
    }

    /// A plain check of `local@domain`: printable ASCII atoms, one `@`, a domain of dot-separated labels.
    static func isValid(_ address: String) -> Bool {
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, address.utf8.count <= 254 else { return false }
        let localAllowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~.-")
        guard parts[0].allSatisfy({ localAllowed.contains($0) }), !parts[0].hasPrefix("."), !parts[0].hasSuffix("."),
              !parts[0].contains("..") else { return false }
        let labels = parts[1].split(separator: ".", omittingEmptySubsequences: false)
        return labels.allSatisfy { label in
            !label.isEmpty && label.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
    }

    /// The header form: `=?UTF-8?B?…?= <a@x.org>`, `"Doe, Jane" <a@x.org>` or `a@x.org`.
    public var headerValue: String {
        guard let name else { return address }
        if !name.allSatisfy({ $0.isASCII }) { return MIMEEncoding.encodedWords(name) + " <\(address)>" }
        let specials = Set("()<>[]:;@\\,.\"")
        if name.contains(where: { specials.contains($0) }) {
            return "\"" + name.replacingEvery("\\", with: "\\\\").replacingEvery("\"", with: "\\\"") + "\" <\(address)>"
        }
        return "\(name) <\(address)>"
    }

    public var description: String { headerValue }
}

/// A mail that cannot be built: bad address, header injection, missing body. Never retried.
public struct MailError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What is wrong (never the message body).
    public var message: String
    /// Makes an error.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
