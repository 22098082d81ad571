import FoundationEssentials

/// Finds the line where a key path is written in a TOML document, so that errors found after
/// parsing (a value out of range, a queue no type routes to) point at a line. The parser keeps
/// the line of every key, header and array-of-tables element, so every written path has one.
struct TOMLLocator: Sendable {
    private struct Entry: Sendable {
        var line: Int
        var path: [String]
    }

    private let entries: [Entry]

    /// The lines of `root`'s keys.
    init(_ root: TOMLTable) {
        entries = root.lines().map { Entry(line: $0.line, path: $0.path) }
    }

    /// Parses `text` for its lines; text that is not TOML locates nothing.
    init(text: String) {
        self.init((try? TOMLTable(string: text)) ?? TOMLTable())
    }

    /// The line of `keyPath` (dotted, as ``ConfigurationError`` writes it), or of its nearest written parent.
    func line(of keyPath: String) -> Int? {
        var path = Self.splitKey(keyPath)
        while !path.isEmpty {
            if let entry = entries.first(where: { $0.path == path }) { return entry.line }
            path.removeLast()
        }
        return nil
    }

    /// Joins key path components, quoting those that need it (`groups."my group".queues`).
    static func join(_ path: [String]) -> String {
        path.map { component in
            component.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) && !component.isEmpty
                ? component : "\"\(component)\""
        }.joined(separator: ".")
    }

    /// Splits a dotted key, honouring quotes: `a."b.c".d` → `["a", "b.c", "d"]`.
    static func splitKey(_ key: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var quote: Character?
        for character in key {
            if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
            } else if character == "\"" || character == "'" {
                quote = character
            } else if character == "." {
                parts.append(current.trimmingBlanks())
                current = ""
            } else {
                current.append(character)
            }
        }
        parts.append(current.trimmingBlanks())
        return parts.filter { !$0.isEmpty }
    }
}
