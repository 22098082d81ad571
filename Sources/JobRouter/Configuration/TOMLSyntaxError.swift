/// Text that is not TOML: what is wrong, and where.
struct TOMLSyntaxError: Error, Sendable, CustomStringConvertible {
    /// 1-based.
    var line: Int
    /// 1-based, in characters.
    var column: Int
    var message: String

    var description: String { message }
}
