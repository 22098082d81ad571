/// A value of a TOML document, with the line it was written on (1-based), so that every error
/// found while reading a configuration can name its line.
struct TOMLValue: Sendable {
    /// What kind of value it is.
    enum Kind: Sendable, Equatable {
        case string, int, double, bool, dateTime, array, table
    }

    /// The value itself.
    enum Storage: Sendable {
        case string(String)
        case integer(Int64)
        case float(Double)
        case boolean(Bool)
        /// A date, a time or both, as written (JobRouter reads none: the reader says so).
        case dateTime(String)
        case array([TOMLValue])
        case table(TOMLTable)
    }

    var storage: Storage
    /// The line the value (or, for a table, its header or first key) was written on.
    var line: Int

    var type: Kind {
        switch storage {
        case .string: .string
        case .integer: .int
        case .float: .double
        case .boolean: .bool
        case .dateTime: .dateTime
        case .array: .array
        case .table: .table
        }
    }

    var string: String? {
        if case .string(let text) = storage { return text }
        return nil
    }

    var int: Int? {
        if case .integer(let value) = storage { return Int(exactly: value) }
        return nil
    }

    var double: Double? {
        if case .float(let value) = storage { return value }
        return nil
    }

    var bool: Bool? {
        if case .boolean(let value) = storage { return value }
        return nil
    }

    var array: [TOMLValue]? {
        if case .array(let values) = storage { return values }
        return nil
    }

    var table: TOMLTable? {
        if case .table(let table) = storage { return table }
        return nil
    }
}

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

/// Text that is not TOML: what is wrong, and where.
struct TOMLSyntaxError: Error, Sendable, CustomStringConvertible {
    /// 1-based.
    var line: Int
    /// 1-based, in characters.
    var column: Int
    var message: String

    var description: String { message }
}
