import FoundationEssentials

/// Finds the line where a key path is written in TOML text, so that errors found after parsing
/// (the parser keeps no positions) can still point at a line.
///
/// It understands `[table]` headers, `key = value` lines and dotted or quoted keys, which covers
/// what `queues.toml` uses; when it cannot tell, it answers `nil` and the error names only the key path.
struct TOMLLocator: Sendable {
    private struct Entry: Sendable {
        var line: Int
        var path: [String]
    }

    private let entries: [Entry]

    init(text: String) {
        var entries: [Entry] = []
        var header: [String] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            let number = index + 1
            if line.hasPrefix("[") {
                let inner = line.drop(while: { $0 == "[" }).prefix(while: { $0 != "]" })
                header = Self.splitKey(String(inner))
                entries.append(Entry(line: number, path: header))
            } else if let equals = line.firstIndex(of: "="), !line.hasPrefix("#") {
                let key = Self.splitKey(String(line[..<equals]))
                guard !key.isEmpty else { continue }
                let path = header + key
                entries.append(Entry(line: number, path: path))
                // Inline tables: `priorities = { high = "a", low = "b" }` records the inner keys too.
                let rest = line[line.index(after: equals)...]
                if let open = rest.firstIndex(of: "{") {
                    for part in rest[rest.index(after: open)...].split(separator: ",") {
                        guard let innerEquals = part.firstIndex(of: "=") else { continue }
                        let innerKey = Self.splitKey(String(part[..<innerEquals]))
                        if !innerKey.isEmpty { entries.append(Entry(line: number, path: path + innerKey)) }
                    }
                }
            }
        }
        self.entries = entries
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
                parts.append(current.trimmingCharacters(in: .whitespaces))
                current = ""
            } else {
                current.append(character)
            }
        }
        parts.append(current.trimmingCharacters(in: .whitespaces))
        return parts.filter { !$0.isEmpty }
    }
}
