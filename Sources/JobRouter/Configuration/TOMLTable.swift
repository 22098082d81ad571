/// A TOML table: its keys in the order they were written, and their values.
struct TOMLTable: Sendable {
    /// The keys, in the order written.
    private(set) var keys: [String] = []
    private var values: [String: TOMLValue] = [:]

    init() {}

    /// Parses a whole document; throws ``TOMLSyntaxError`` for text that is not TOML 1.0.
    init(string text: String) throws(TOMLSyntaxError) {
        var parser = TOMLParser(text: text)
        self = try parser.document()
    }

    subscript(key: String) -> TOMLValue? { values[key] }

    /// Adds `key` (the parser adds each key once).
    mutating func append(_ key: String, _ value: TOMLValue) {
        if values.updateValue(value, forKey: key) == nil { keys.append(key) }
    }

    /// Every key path of the document (tables, and the keys inside them, arrays of tables by
    /// index) with the line it was written on.
    func lines(under path: [String] = []) -> [(path: [String], line: Int)] {
        var out: [(path: [String], line: Int)] = []
        for key in keys {
            guard let value = values[key] else { continue }
            let here = path + [key]
            out.append((here, value.line))
            switch value.storage {
            case .table(let table):
                out += table.lines(under: here)
            case .array(let elements):
                for (index, element) in elements.enumerated() {
                    if let table = element.table { out += table.lines(under: here + [String(index)]) }
                }
            default:
                break
            }
        }
        return out
    }
}
