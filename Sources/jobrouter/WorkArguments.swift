import JobRouter

/// `work` with the options of `jobrouter work` the lean worker runs: `--config`, `--group`
/// (repeatable) and `--log-level`, each as `--name value` or `--name=value`. Anything else
/// (another command, `--http`, `--help`, a missing value) is the full CLI's to run or explain.
struct WorkArguments: Equatable {
    var config: String?
    var groups: [String] = []
    var logLevel = "info"

    /// The configuration file: `--config`, else `$JOBROUTER_CONFIG`, else `queues.toml`.
    var configPath: String { RouterConfiguration.path(given: config) }

    /// `nil` unless `arguments` are `work` and only those options (`--config` and `--log-level`
    /// may come before `work`, as the CLI takes them).
    init?(_ arguments: [String]) {
        var rest = arguments[...]
        var sawWork = false
        while let argument = rest.popFirst() {
            if argument == "work" && !sawWork {
                sawWork = true
                continue
            }
            let name: Substring
            var value: String?
            if let equals = argument.firstIndex(of: "=") {
                name = argument[..<equals]
                value = String(argument[argument.index(after: equals)...])
            } else {
                name = argument[...]
            }
            guard ["--config", "--log-level"].contains(name) || (sawWork && name == "--group") else { return nil }
            if value == nil { value = rest.popFirst() }
            guard let value else { return nil }
            switch name {
            case "--config": config = value
            case "--group": groups.append(value)
            default: logLevel = value
            }
        }
        guard sawWork else { return nil }
    }
}
