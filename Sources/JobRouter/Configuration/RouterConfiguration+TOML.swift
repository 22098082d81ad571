import FoundationEssentials

/// Reads `queues.toml`.
///
/// Every key it knows (anything else is an error, with a suggestion for near misses):
///
/// | key | type | default |
/// |---|---|---|
/// | `default_queue` | string | `"default"` |
/// | `max_dead` | integer ≥ 1 | `10000` |
/// | `max_payload` | size string (`"512KB"`, `"1MB"`) or bytes | `"1MB"`: bigger jobs are refused at enqueue, bigger foreign entries dead-lettered unread |
/// | `schedule_poll` | duration string, 10ms to 1m | `"250ms"`: how often each worker process looks for due delayed jobs and retries |
/// | `redis.url` | string | `"redis://127.0.0.1:6379/0"`; `JOBROUTER_REDIS_URL` overrides |
/// | `redis.namespace` | string | `"jobrouter"` |
/// | `redis.sentinels`, `redis.master` | `["host:port", …]` and the monitored name: find the primary through Sentinel | none |
/// | `redis.cluster` | `["host:port", …]`: seed nodes of a Redis Cluster (queue names then need hash tags) | none |
/// | `redis.sentinel_password_env`, `redis.db` | environment variable name; database number (with sentinels) | none; `0` |
/// | `redis.wait_replicas`, `redis.wait_timeout` | integer ≥ 0; duration string: replicas that must confirm each enqueue | `0`; `"100ms"` |
/// | `types.NAME.handler` | a provider's kind: `"exec"`, `"noop"`, `"smtp"`, `"swift"`, or one a module adds | required |
/// | `types.NAME.command` | array of strings | required for `exec` |
/// | `types.NAME.*` | any other key the kind's ``HandlerProvider/optionKeys`` name | |
/// | `types.NAME.env` | array of environment variable names passed to `exec` children | none: only PATH, HOME, LANG, LC_*, TZ, TMPDIR, USER, LOGNAME and `JOB_*` |
/// | `types.NAME.priorities` | table: priority → queue | none: the type goes to `default_queue` |
/// | `types.NAME.default_priority` | string, a key of `priorities` | none: enqueue must name a priority |
/// | `types.NAME.timeout` | duration string | `"5m"` |
/// | `types.NAME.max_attempts` | integer ≥ 1 | `5` |
/// | `types.NAME.backoff` | table `{ base = "1s", max = "1h" }` | `base = "1s"`, `max = "1h"` |
/// | `types.NAME.unique` | table `{ key = ["path", …], for = "1h", until = "done" }` (`start`, `done`, `ttl`) | none |
/// | `types.NAME.rate_limit` | `"10/s"` (with `types.NAME.burst`), or `{ key = "path", limit = "5/s", burst = 1, default = "1/s" }` | none |
/// | `groups.NAME.queues` | array of queue names, in priority order | required |
/// | `groups.NAME.concurrency` | integer ≥ 1, or `{ min, max, target_wait, scale_down_after = "30s" }` | `1` |
/// | `groups.NAME.rate_limit`, `groups.NAME.burst` | rate string; integer ≥ 1: paces every claim of the group | none; `1` |
/// | `groups.NAME.max_wait`, `groups.NAME.aging_slots` | table queue → duration (not the first queue); integer ≥ 1 | none; `1` |
/// | `schedules.NAME.cron`, `.type` | cron expression (5 fields, or 6 with seconds; `@daily`…); a job type | required |
/// | `schedules.NAME.timezone`, `.priority`, `.payload`, `.catch_up` | IANA zone; priority; any value; duration | `"UTC"`; the type's default; null; none |
/// | `groups.NAME.shutdown_timeout` | duration string | `"25s"` |
/// | `groups.NAME.lease` | duration string | `"30s"` |
/// | `groups.NAME.max_recoveries` | integer ≥ 0 | `3` |
///
/// | `smtp.url` | `smtp://host:port` or `smtps://host:port` | required when a type uses `smtp` |
/// | `smtp.tls` | `"required"`, `"opportunistic"`, `"off"` | `"opportunistic"` |
/// | `smtp.from` | `"Name <address>"` or `"address"` | required |
/// | `smtp.username_env`, `smtp.password_env` | names of environment variables | none |
/// | `smtp.timeout` | duration string | `"30s"` |
/// | `smtp.rate_limit` | `"20/s"`, `"600/min"`, `"10000/h"` | none (no limit) |
/// | `smtp.burst` | integer ≥ 1: mails that may go at once | `1` |
/// | `smtp.reuse_connections` | boolean | `true` |
/// | `smtp.ca_file` | path to a PEM bundle, relative to this file | none: the system trust store |
/// | `smtp.auth_mechanism` | `"PLAIN"`, `"LOGIN"`, `"CRAM-MD5"`, … | the best one the server offers |
/// | `smtp.tls_verify` | boolean; `false` only when set explicitly (and `check` warns) | `true` |
/// | `postgres.url` | `postgres://user@host:port/db`, no password | required in `[postgres]`; `JOBROUTER_POSTGRES_URL` overrides |
/// | `postgres.pool` | integer ≥ 1: connections per worker process | `8` |
/// | `postgres.ledger` | boolean | `true` |
/// | `postgres.ledger_buffer` | integer ≥ 1000: attempt records Redis holds for the ledger before dropping the oldest | `1000000` |
/// | `postgres.retain` | duration string | `"30d"` |
/// | `postgres.store_payload` | boolean | `true` |
/// | `postgres.schema` | SQL identifier | `"jobrouter"` |
/// | `postgres.outbox` | boolean: `work` relays the outbox to Redis | `false` |
/// | `http.listen` | `"host:port"` (a bare port: loopback) where `work` serves /metrics, /healthz, /readyz | off; `work --http` overrides |
/// | `web.listen` | `"host:port"` where `jobrouter web` serves the dashboard (not loopback: needs `JOBROUTER_WEB_TOKEN`) | `"127.0.0.1:8080"`; `web --listen` overrides |
/// | `templates.NAME.subject` | Mustache string | required |
/// | `templates.NAME.text`, `.html` | Mustache string | at least one body |
/// | `templates.NAME.text_file`, `.html_file` | path, relative to this file | instead of `text`/`html` |
///
/// Durations are strings: `"250ms"`, `"30s"`, `"5m"`, `"1h"`.
extension RouterConfiguration {
    /// Reads and validates the file at `path`; `providers` (default: the core's) read and check
    /// the keys of the handler kinds they serve.
    public static func load(path: String, providers: [any HandlerProvider] = HandlerRegistry().providers) throws -> RouterConfiguration {
        let text: String
        switch FileText.read(path) {
        case .success(let read): text = read
        case .failure(let reason): throw ConfigurationError(file: path, keyPath: "", message: "cannot read the file (\(reason))")
        }
        return try parse(toml: text, file: path, providers: providers)
    }

    /// Reads and validates TOML text; `file` names it in errors.
    public static func parse(toml text: String, file: String? = nil,
                             providers: [any HandlerProvider] = HandlerRegistry().providers) throws -> RouterConfiguration {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch {
            throw ConfigurationError(file: file, line: error.line, keyPath: "",
                                     message: "TOML syntax error at column \(error.column): \(error.message)")
        }
        let reader = TOMLReader(file: file, locator: TOMLLocator(root),
                                directory: file.map { URL(fileURLWithPath: $0).deletingLastPathComponent() },
                                providers: Dictionary(providers.map { ($0.kind, $0) }) { first, _ in first })
        var configuration = try reader.configuration(from: root)
        configuration.file = file
        do {
            try configuration.validate(providers: providers)
        } catch var error as ConfigurationError {
            error.line = error.line ?? reader.locator.line(of: error.keyPath)
            throw error
        }
        return configuration
    }

}

/// Walks the parsed TOML tree into configuration values, naming the key path of anything wrong.
struct TOMLReader {
    let file: String?
    let locator: TOMLLocator
    /// Where relative paths (template files) start.
    var directory: URL?
    /// The providers of the handler kinds this program links.
    var providers: [HandlerKind: any HandlerProvider] = [:]

    func fail(_ path: [String], _ message: String) -> ConfigurationError {
        let keyPath = TOMLLocator.join(path)
        return ConfigurationError(file: file, line: locator.line(of: keyPath), keyPath: keyPath, message: message)
    }

    func configuration(from root: TOMLTable) throws -> RouterConfiguration {
        try checkKeys(root, path: [], allowed: ["default_queue", "max_dead", "max_payload", "schedule_poll", "redis", "postgres", "http", "web", "types", "groups", "smtp", "templates", "schedules"])
        var configuration = RouterConfiguration()
        if let value = root["default_queue"] { configuration.defaultQueue = try string(value, ["default_queue"]) }
        if let value = root["max_dead"] { configuration.maxDead = try integer(value, ["max_dead"]) }
        if let value = root["max_payload"] { configuration.maxPayload = try size(value, ["max_payload"]) }
        if let value = root["schedule_poll"] { configuration.schedulePoll = try duration(value, ["schedule_poll"]) }
        if let value = root["redis"] {
            let table = try self.table(value, ["redis"])
            try checkKeys(table, path: ["redis"], allowed: ["url", "namespace", "sentinels", "master", "sentinel_password_env", "db", "cluster",
                                                            "wait_replicas", "wait_timeout"])
            if let url = table["url"] { configuration.redis.url = try string(url, ["redis", "url"]) }
            if let namespace = table["namespace"] { configuration.redis.namespace = try string(namespace, ["redis", "namespace"]) }
            if let value = table["sentinels"] { configuration.redis.sentinels = try strings(value, ["redis", "sentinels"]) }
            if let value = table["cluster"] { configuration.redis.cluster = try strings(value, ["redis", "cluster"]) }
            if let value = table["master"] { configuration.redis.master = try string(value, ["redis", "master"]) }
            if let value = table["sentinel_password_env"] {
                configuration.redis.sentinelPasswordEnvironment = try string(value, ["redis", "sentinel_password_env"])
            }
            if let value = table["db"] { configuration.redis.database = try integer(value, ["redis", "db"]) }
            if let value = table["wait_replicas"] { configuration.redis.waitReplicas = try integer(value, ["redis", "wait_replicas"]) }
            if let value = table["wait_timeout"] { configuration.redis.waitTimeout = try duration(value, ["redis", "wait_timeout"]) }
        }
        if let value = root["types"] {
            let types = try table(value, ["types"])
            for name in types.keys {
                guard let entry = types[name] else { continue }
                configuration.types[name] = try jobType(name: name, try table(entry, ["types", name]))
            }
        }
        if let value = root["smtp"] { configuration.smtp = try smtp(try table(value, ["smtp"])) }
        if let value = root["postgres"] { configuration.postgres = try postgres(try table(value, ["postgres"])) }
        if let value = root["http"] {
            let table = try self.table(value, ["http"])
            try checkKeys(table, path: ["http"], allowed: ["listen"])
            if let listen = table["listen"] {
                let text = try string(listen, ["http", "listen"])
                do {
                    configuration.httpListen = try HTTPListenAddress(parsing: text)
                } catch {
                    throw fail(["http", "listen"], error.detail)
                }
            }
        }
        if let value = root["web"] {
            let table = try self.table(value, ["web"])
            try checkKeys(table, path: ["web"], allowed: ["listen"])
            if let listen = table["listen"] {
                let text = try string(listen, ["web", "listen"])
                do {
                    configuration.webListen = try HTTPListenAddress(parsing: text, source: "web.listen")
                } catch {
                    throw fail(["web", "listen"], error.detail)
                }
            }
        }
        if let value = root["templates"] {
            let templates = try table(value, ["templates"])
            for name in templates.keys {
                guard let entry = templates[name] else { continue }
                configuration.templates[name] = try template(name: name, try table(entry, ["templates", name]))
            }
        }
        if let value = root["schedules"] {
            let schedules = try table(value, ["schedules"])
            for name in schedules.keys {
                guard let entry = schedules[name] else { continue }
                configuration.schedules[name] = try schedule(name: name, try table(entry, ["schedules", name]))
            }
        }
        if let value = root["groups"] {
            let groups = try table(value, ["groups"])
            for name in groups.keys {
                guard let entry = groups[name] else { continue }
                configuration.groups[name] = try group(name: name, try table(entry, ["groups", name]))
            }
        }
        return configuration
    }

    private func jobType(name: String, _ table: TOMLTable) throws -> JobTypeConfiguration {
        let path = ["types", name]
        let common: Set<String> = ["handler", "priorities", "default_priority", "timeout", "max_attempts", "backoff", "unique", "rate_limit", "burst"]
        let kinds = Set(providers.keys).union(HandlerKind.firstPartyProviders.keys).map(\.rawValue).sorted().joined(separator: ", ")
        guard let handlerValue = table["handler"] else {
            throw fail(path + ["handler"], "missing; one of \(kinds)")
        }
        let handler = HandlerKind(rawValue: try string(handlerValue, path + ["handler"]))
        if let provider = providers[handler] {
            let allowed = common.union(provider.optionKeys)
            for key in table.keys.sorted() where !allowed.contains(key) {
                if let owner = providers.values.filter({ $0.optionKeys.contains(key) }).map(\.kind.rawValue).sorted().first {
                    throw fail(path + [key], "only handler \"\(owner)\" takes '\(key)' (this type's handler is \"\(handler)\")")
                }
            }
            try checkKeys(table, path: path, allowed: allowed)
        } else if HandlerKind.firstPartyProviders[handler] == nil {
            throw fail(path + ["handler"], "unknown handler kind '\(handler)'; one of \(kinds)")
        }
        // A first-party kind whose provider this program does not link: its keys are kept unchecked
        // (the program that runs such jobs links the provider and checks them).
        var type = JobTypeConfiguration(name: name, handler: handler)
        for key in table.keys.sorted() where !common.contains(key) {
            guard let value = table[key] else { continue }
            type.options[key] = try json(value, path + [key])
        }
        if let value = table["priorities"] {
            let priorities = try self.table(value, path + ["priorities"])
            for priority in priorities.keys {
                guard let queue = priorities[priority] else { continue }
                type.priorities[priority] = try string(queue, path + ["priorities", priority])
            }
        }
        if let value = table["default_priority"] { type.defaultPriority = try string(value, path + ["default_priority"]) }
        if let value = table["timeout"] { type.timeout = try duration(value, path + ["timeout"]) }
        if let value = table["max_attempts"] { type.maxAttempts = try integer(value, path + ["max_attempts"]) }
        if let value = table["backoff"] {
            // A lone duration is the usual first try: say what the table looks like.
            if value.type == .string, let text = value.string {
                throw fail(path + ["backoff"], "must be a table: backoff = { base = \"\(text)\", max = \"1h\" } (exponential with full jitter from base up to max), not \(describe(value))")
            }
            let backoff = try self.table(value, path + ["backoff"])
            try checkKeys(backoff, path: path + ["backoff"], allowed: ["base", "max"])
            if let base = backoff["base"] { type.backoff.base = try duration(base, path + ["backoff", "base"]) }
            if let max = backoff["max"] { type.backoff.max = try duration(max, path + ["backoff", "max"]) }
        }
        if let value = table["unique"] { type.unique = try unique(try self.table(value, path + ["unique"]), path + ["unique"]) }
        if let value = table["rate_limit"] {
            type.rateLimit = try jobRateLimit(value, path + ["rate_limit"])
            if let burst = table["burst"] {
                guard type.rateLimit?.key == nil else {
                    throw fail(path + ["burst"], "with a keyed rate_limit, give burst inside it: rate_limit = { key = ..., limit = ..., burst = \(burst.int ?? 1) }")
                }
                type.rateLimit?.burst = try integer(burst, path + ["burst"])
            }
        } else if table["burst"] != nil {
            throw fail(path + ["burst"], "set, but the type has no rate_limit")
        }
        return type
    }

    private func rate(_ value: TOMLValue, _ path: [String]) throws -> RateLimit {
        let text = try string(value, path)
        guard let rate = RateLimit(text) else {
            throw fail(path, "bad rate '\(text)'; write a count per unit: \"20/s\", \"600/min\", \"10000/h\"")
        }
        return rate
    }

    private func jobRateLimit(_ value: TOMLValue, _ path: [String]) throws -> JobRateLimit {
        guard value.type == .table else { return JobRateLimit(rate: try rate(value, path)) }
        let table = try self.table(value, path)
        try checkKeys(table, path: path, allowed: ["key", "limit", "burst", "default"])
        guard let limit = table["limit"] else { throw fail(path + ["limit"], "missing; the rate per key, e.g. \"5/s\"") }
        var terms = JobRateLimit(rate: try rate(limit, path + ["limit"]))
        if let key = table["key"] { terms.key = try string(key, path + ["key"]) }
        if let burst = table["burst"] { terms.burst = try integer(burst, path + ["burst"]) }
        if let fallback = table["default"] { terms.defaultRate = try rate(fallback, path + ["default"]) }
        return terms
    }

    private func unique(_ table: TOMLTable, _ path: [String]) throws -> UniqueTerms {
        try checkKeys(table, path: path, allowed: ["key", "for", "until"])
        guard let keyValue = table["key"] else {
            throw fail(path + ["key"], "missing; the payload paths whose values make a job unique, e.g. [\"user_id\"]")
        }
        let keys = keyValue.type == .string ? [try string(keyValue, path + ["key"])] : try strings(keyValue, path + ["key"])
        var terms = UniqueTerms(keyPaths: keys)
        if let value = table["for"] { terms.lifetime = try duration(value, path + ["for"]) }
        if let value = table["until"] {
            let text = try string(value, path + ["until"])
            guard let until = UniqueTerms.Until(rawValue: text) else {
                throw fail(path + ["until"], "'\(text)' is not one of start, done, ttl")
            }
            terms.until = until
        }
        return terms
    }

    private func schedule(name: String, _ table: TOMLTable) throws -> CronSchedule {
        let path = ["schedules", name]
        try checkKeys(table, path: path, allowed: ["cron", "timezone", "type", "priority", "payload", "catch_up"])
        guard let cronValue = table["cron"] else {
            throw fail(path + ["cron"], "missing; 5 fields (\"0 3 * * *\") or @hourly, @daily, @weekly, @monthly")
        }
        let cron: CronExpression
        do {
            cron = try CronExpression(parsing: try string(cronValue, path + ["cron"]))
        } catch let error as CronError {
            throw fail(path + ["cron"], error.message)
        }
        guard let typeValue = table["type"] else { throw fail(path + ["type"], "missing; the job type to enqueue") }
        var schedule = CronSchedule(name: name, cron: cron, type: try string(typeValue, path + ["type"]))
        if let value = table["timezone"] {
            let zone = try string(value, path + ["timezone"])
            let named: TimeZone?
            do {
                named = try NamedTimeZone.named(zone)
            } catch {
                throw fail(path + ["timezone"], "'\(zone)': named time zones need FoundationInternationalization, which could not be loaded: \(error)")
            }
            guard let timeZone = named else {
                throw fail(path + ["timezone"], "unknown time zone '\(zone)'; write an IANA name like \"Europe/Berlin\" or \"UTC\"")
            }
            schedule.timeZone = timeZone
        }
        if let value = table["priority"] { schedule.priority = try string(value, path + ["priority"]) }
        if let value = table["payload"] { schedule.payload = try json(value, path + ["payload"]) }
        if let value = table["catch_up"] { schedule.catchUp = try duration(value, path + ["catch_up"]) }
        return schedule
    }

    private func group(name: String, _ table: TOMLTable) throws -> WorkerGroupConfiguration {
        let path = ["groups", name]
        try checkKeys(table, path: path, allowed: ["queues", "concurrency", "shutdown_timeout", "lease", "max_recoveries", "rate_limit", "burst",
                                                   "max_wait", "aging_slots"])
        guard let queuesValue = table["queues"] else {
            throw fail(path + ["queues"], "missing; the ordered list of queues this group reads")
        }
        var group = WorkerGroupConfiguration(name: name, queues: try strings(queuesValue, path + ["queues"]))
        if let value = table["concurrency"] {
            if value.type == .table {
                let scaling = try self.table(value, path + ["concurrency"])
                let at = path + ["concurrency"]
                try checkKeys(scaling, path: at, allowed: ["min", "max", "target_wait", "scale_down_after"])
                for key in ["min", "max", "target_wait"] where scaling[key] == nil {
                    throw fail(at + [key], "missing; autoscaled concurrency needs min, max and target_wait")
                }
                guard let low = scaling["min"], let high = scaling["max"], let wait = scaling["target_wait"] else { return group }
                var terms = ConcurrencyScaling(min: try integer(low, at + ["min"]), max: try integer(high, at + ["max"]),
                                               targetWait: try duration(wait, at + ["target_wait"]))
                if let quiet = scaling["scale_down_after"] { terms.scaleDownAfter = try duration(quiet, at + ["scale_down_after"]) }
                group.scaling = terms
                group.concurrency = terms.max
            } else {
                group.concurrency = try integer(value, path + ["concurrency"])
            }
        }
        if let value = table["lease"] { group.lease = try duration(value, path + ["lease"]) }
        if let value = table["max_recoveries"] { group.maxRecoveries = try integer(value, path + ["max_recoveries"]) }
        if let value = table["shutdown_timeout"] { group.shutdownTimeout = try duration(value, path + ["shutdown_timeout"]) }
        if let value = table["rate_limit"] { group.rateLimit = try rate(value, path + ["rate_limit"]) }
        if let value = table["burst"] {
            guard group.rateLimit != nil else { throw fail(path + ["burst"], "set, but the group has no rate_limit") }
            group.burst = try integer(value, path + ["burst"])
        }
        if let value = table["max_wait"] {
            let bounds = try self.table(value, path + ["max_wait"])
            for queue in bounds.keys {
                guard let bound = bounds[queue] else { continue }
                group.maxWait[queue] = try duration(bound, path + ["max_wait", queue])
            }
        }
        if let value = table["aging_slots"] { group.agingSlots = try integer(value, path + ["aging_slots"]) }
        return group
    }

    private func smtp(_ table: TOMLTable) throws -> SMTPSettings {
        let path = ["smtp"]
        try checkKeys(table, path: path, allowed: ["url", "tls", "from", "username_env", "password_env", "timeout", "rate_limit", "burst",
                                                   "reuse_connections", "username", "password", "ca_file", "tls_verify", "auth_mechanism"])
        // Secrets come from the environment only: a password in the file is refused, not read.
        for key in ["username", "password"] where table[key] != nil {
            throw fail(path + [key], "put secrets in the environment and name the variable with \(key)_env")
        }
        guard let urlValue = table["url"] else { throw fail(path + ["url"], "missing; e.g. \"smtp://127.0.0.1:2525\"") }
        guard let fromValue = table["from"] else { throw fail(path + ["from"], "missing; e.g. \"Example <noreply@example.com>\"") }
        var settings = SMTPSettings(url: try string(urlValue, path + ["url"]), from: try string(fromValue, path + ["from"]))
        if let value = table["tls"] {
            let text = try string(value, path + ["tls"])
            guard let tls = SMTPSettings.TLS(rawValue: text) else {
                throw fail(path + ["tls"], "'\(text)' is not one of required, opportunistic, off")
            }
            settings.tls = tls
        }
        if let value = table["username_env"] { settings.usernameEnvironment = try string(value, path + ["username_env"]) }
        if let value = table["password_env"] { settings.passwordEnvironment = try string(value, path + ["password_env"]) }
        if let value = table["timeout"] { settings.timeout = try duration(value, path + ["timeout"]) }
        if let value = table["rate_limit"] {
            let text = try string(value, path + ["rate_limit"])
            guard let rate = RateLimit(text) else {
                throw fail(path + ["rate_limit"], "bad rate '\(text)'; write a count per unit: \"20/s\", \"600/min\", \"10000/h\"")
            }
            settings.rateLimit = rate
        }
        if let value = table["burst"] { settings.burst = try integer(value, path + ["burst"]) }
        if let value = table["reuse_connections"] {
            guard value.type == .bool, let flag = value.bool else { throw fail(path + ["reuse_connections"], "must be true or false") }
            settings.reuseConnections = flag
        }
        if let value = table["ca_file"] {
            let relative = try string(value, path + ["ca_file"])
            let url = relative.hasPrefix("/") ? URL(fileURLWithPath: relative)
                : (directory ?? URL(fileURLWithPath: FileManager.default.currentDirectoryPath)).appendingPathComponent(relative)
            guard FileManager.default.isReadableFile(atPath: url.path) else {
                throw fail(path + ["ca_file"], "cannot read \(url.path)")
            }
            settings.caFile = url.path
        }
        if let value = table["auth_mechanism"] {
            let text = try string(value, path + ["auth_mechanism"]).uppercased()
            guard !text.isEmpty, text.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw fail(path + ["auth_mechanism"], "'\(text)' is not a SASL mechanism name such as PLAIN or LOGIN")
            }
            settings.authMechanism = text
        }
        if let value = table["tls_verify"] {
            guard value.type == .bool, let flag = value.bool else { throw fail(path + ["tls_verify"], "must be true or false") }
            settings.tlsVerify = flag
        }
        return settings
    }

    private func postgres(_ table: TOMLTable) throws -> PostgresSettings {
        let path = ["postgres"]
        try checkKeys(table, path: path, allowed: ["url", "pool", "ledger", "ledger_buffer", "retain", "store_payload", "schema", "outbox", "password"])
        if table["password"] != nil {
            throw fail(path + ["password"], "put the password in JOBROUTER_POSTGRES_URL, PGPASSWORD or ~/.pgpass, not in the file")
        }
        guard let urlValue = table["url"] else { throw fail(path + ["url"], "missing; e.g. \"postgres://jobrouter@127.0.0.1:5432/app\"") }
        var settings = PostgresSettings(url: try string(urlValue, path + ["url"]))
        if let value = table["pool"] { settings.pool = try integer(value, path + ["pool"]) }
        if let value = table["ledger"] { settings.ledger = try bool(value, path + ["ledger"]) }
        if let value = table["ledger_buffer"] { settings.ledgerBuffer = try integer(value, path + ["ledger_buffer"]) }
        if let value = table["retain"] { settings.retain = try duration(value, path + ["retain"]) }
        if let value = table["store_payload"] { settings.storePayload = try bool(value, path + ["store_payload"]) }
        if let value = table["schema"] { settings.schema = try string(value, path + ["schema"]) }
        if let value = table["outbox"] { settings.outbox = try bool(value, path + ["outbox"]) }
        return settings
    }

    private func bool(_ value: TOMLValue, _ path: [String]) throws -> Bool {
        guard value.type == .bool, let flag = value.bool else { throw fail(path, "must be true or false, not \(describe(value))") }
        return flag
    }

    private func template(name: String, _ table: TOMLTable) throws -> MailTemplate {
        let path = ["templates", name]
        try checkKeys(table, path: path, allowed: ["subject", "text", "html", "text_file", "html_file"])
        guard let subject = table["subject"] else { throw fail(path + ["subject"], "missing") }
        var template = MailTemplate(subject: try string(subject, path + ["subject"]))
        func body(_ inline: String, _ fileKey: String) throws -> String? {
            if table[inline] != nil && table[fileKey] != nil { throw fail(path + [fileKey], "give \(inline) or \(fileKey), not both") }
            if let value = table[inline] { return try string(value, path + [inline]) }
            guard let value = table[fileKey] else { return nil }
            let relative = try string(value, path + [fileKey])
            let url = relative.hasPrefix("/") ? URL(fileURLWithPath: relative)
                : (directory ?? URL(fileURLWithPath: FileManager.default.currentDirectoryPath)).appendingPathComponent(relative)
            guard let text = try? String(contentsOf: url, encoding: .utf8) else {
                throw fail(path + [fileKey], "cannot read \(url.path)")
            }
            return text
        }
        template.text = try body("text", "text_file")
        template.html = try body("html", "html_file")
        if template.text == nil && template.html == nil { throw fail(path, "needs text, html, text_file or html_file") }
        return template
    }

    // MARK: Typed access

    private func checkKeys(_ table: TOMLTable, path: [String], allowed: Set<String>) throws {
        for key in table.keys.sorted() where !allowed.contains(key) {
            var message = "unknown key"
            if let near = allowed.min(by: { editDistance(key, $0) < editDistance(key, $1) }), editDistance(key, near) <= 2 {
                message += " (did you mean '\(near)'?)"
            } else {
                message += "; known keys: \(allowed.sorted().joined(separator: ", "))"
            }
            throw fail(path + [key], message)
        }
    }

    private func table(_ value: TOMLValue, _ path: [String]) throws -> TOMLTable {
        guard value.type == .table, let table = value.table else { throw fail(path, "must be a table, not \(describe(value))") }
        return table
    }

    private func string(_ value: TOMLValue, _ path: [String]) throws -> String {
        guard value.type == .string, let string = value.string else { throw fail(path, "must be a string, not \(describe(value))") }
        return string
    }

    private func integer(_ value: TOMLValue, _ path: [String]) throws -> Int {
        guard value.type == .int, let integer = value.int else {
            throw fail(path, "must be a whole number, not \(describe(value))")
        }
        return integer
    }

    /// A TOML value as JSON, for a handler kind's own keys (its provider checks the shape).
    private func json(_ value: TOMLValue, _ path: [String]) throws -> JSONValue {
        switch value.type {
        case .string: return .string(value.string ?? "")
        case .int: return .integer(Int64(value.int ?? 0))
        case .double: return .number(value.double ?? 0)
        case .bool: return .bool(value.bool ?? false)
        case .array:
            return .array(try (value.array ?? []).enumerated().map { index, element in try json(element, path + [String(index)]) })
        case .table:
            guard let table = value.table else { return .object([:]) }
            var fields: [String: JSONValue] = [:]
            for key in table.keys {
                if let element = table[key] { fields[key] = try json(element, path + [key]) }
            }
            return .object(fields)
        default:
            throw fail(path, "dates and times are not supported here; write a string")
        }
    }

    private func strings(_ value: TOMLValue, _ path: [String]) throws -> [String] {
        guard value.type == .array, let array = value.array else {
            throw fail(path, "must be an array of strings, not \(describe(value))")
        }
        return try array.enumerated().map { index, element in
            guard element.type == .string, let string = element.string else {
                throw fail(path, "element \(index + 1) must be a string, not \(describe(element))")
            }
            return string
        }
    }

    /// A byte count: a whole number, or a string like `"512KB"`, `"1MB"` (1024-based).
    private func size(_ value: TOMLValue, _ path: [String]) throws -> Int {
        if value.type == .int, let bytes = value.int { return bytes }
        let text = try string(value, path)
        let units: [(String, Int)] = [("KB", 1024), ("MB", 1024 * 1024), ("GB", 1024 * 1024 * 1024), ("B", 1)]
        let trimmed = text.trimmingBlanks().uppercased()
        for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
            if let number = Int(trimmed.dropLast(suffix.count).trimmingBlanks()), number >= 0,
               number <= Int.max / factor {
                return number * factor
            }
        }
        throw fail(path, "bad size '\(text)'; write bytes or a number and a unit: \"512KB\", \"1MB\"")
    }

    private func duration(_ value: TOMLValue, _ path: [String]) throws -> Duration {
        // `timeout = 30` is a likely slip: say which unit-bearing string is meant.
        guard value.type == .string, let text = value.string else {
            throw fail(path, "must be a duration string with a unit (\"250ms\", \"30s\", \"5m\", \"1h\"), not \(describe(value))")
        }
        guard let duration = DurationParser.parse(text) else {
            throw fail(path, "bad duration '\(text)'; write a number and a unit: \"250ms\", \"30s\", \"5m\", \"1h\"")
        }
        return duration
    }

    private func describe(_ value: TOMLValue) -> String {
        switch value.type {
        case .string: return "the string \"\(value.string ?? "")\""
        case .int: return "the integer \(value.int.map(String.init) ?? "")"
        case .double: return "the number \(value.double.map { "\($0)" } ?? "")"
        case .bool: return "the boolean \(value.bool.map { "\($0)" } ?? "")"
        case .array: return "an array"
        case .table: return "a table"
        default: return "a date or time"
        }
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
