/// A configuration file that cannot be used, with the place that is wrong.
///
/// Its description is one line: `queues.toml:14: groups.mail.concurency: unknown key (did you mean 'concurrency'?)`.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The file the configuration came from, when it came from a file.
    public var file: String?
    /// The line in that file, when it is known.
    public var line: Int?
    /// The dotted path of the offending key (`groups.mail.concurrency`), empty for the file as a whole.
    public var keyPath: String
    /// What is wrong.
    public var message: String

    /// Makes an error for `keyPath`.
    public init(file: String? = nil, line: Int? = nil, keyPath: String, message: String) {
        self.file = file
        self.line = line
        self.keyPath = keyPath
        self.message = message
    }

    public var description: String {
        var place = file ?? "configuration"
        if let line { place += ":\(line)" }
        return keyPath.isEmpty ? "\(place): \(message)" : "\(place): \(keyPath): \(message)"
    }
}
