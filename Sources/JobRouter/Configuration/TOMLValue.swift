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
