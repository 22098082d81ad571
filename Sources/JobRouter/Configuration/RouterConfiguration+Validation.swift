extension String {
    fileprivate func nonEmptyOr(_ fallback: String) -> String { isEmpty ? fallback : self }
}

extension RouterConfiguration {
    /// A problem found after loading (e.g. by a provider checking against a server), named by key
    /// path and, when the file can be read again, by line.
    public func problem(at path: [String], _ message: String) -> ConfigurationError {
        let keyPath = TOMLLocator.join(path)
        let line = file.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }.flatMap { TOMLLocator(text: $0).line(of: keyPath) }
        return ConfigurationError(file: file, line: line, keyPath: keyPath, message: message)
    }

    /// Environment variables that hold JobRouter's own secrets: never passed to `exec` children.
    public var secretEnvironmentNames: Set<String> {
        var names: Set<String> = ["JOBROUTER_REDIS_URL", "JOBROUTER_REDIS_PASSWORD", "JOBROUTER_SMTP_URL", "JOBROUTER_POSTGRES_URL", "REDISCLI_AUTH"]
        if let name = redis.sentinelPasswordEnvironment { names.insert(name) }
        if let smtp {
            if let name = smtp.usernameEnvironment { names.insert(name) }
            if let name = smtp.passwordEnvironment { names.insert(name) }
        }
        return names
    }

    /// Checks everything that TOML types alone cannot: names, references between tables, limits.
    /// Throws the first problem found, naming its key path; problems are looked for in a fixed order
    /// (types and groups by name) so the same file always gives the same message.
    /// `providers` check the keys of the kinds they serve (default: the core's).
    public func validate(providers: [any HandlerProvider] = HandlerRegistry().providers) throws {
        let byKind = Dictionary(providers.map { ($0.kind, $0) }) { first, _ in first }
        func fail(_ path: [String], _ message: String) -> ConfigurationError {
            ConfigurationError(file: file, keyPath: TOMLLocator.join(path), message: message)
        }
        let namespace = redis.namespace
        if namespace.isEmpty || namespace.contains(where: \.isWhitespace) {
            throw fail(["redis", "namespace"], "must be a non-empty name without spaces")
        }
        func checkQueueName(_ queue: String, _ path: [String]) throws {
            if queue.isEmpty { throw fail(path, "a queue name cannot be empty") }
            if queue.contains(where: { $0.isWhitespace || $0.isNewline }) {
                throw fail(path, "queue name '\(queue)' contains white space")
            }
            if queue == namespace || queue.hasPrefix(namespace + ":") {
                throw fail(path, "queue name '\(queue)' is inside JobRouter's own key space '\(namespace):' (redis.namespace)")
            }
        }
        try checkQueueName(defaultQueue, ["default_queue"])
        if !redis.sentinels.isEmpty {
            if redis.master?.isEmpty ?? true { throw fail(["redis", "master"], "missing; the name the sentinels monitor (sentinel monitor NAME ...)") }
            for address in redis.sentinels {
                let parts = address.split(separator: ":")
                guard parts.count == 2, !parts[0].isEmpty, let port = Int(parts[1]), (1...65535).contains(port) else {
                    throw fail(["redis", "sentinels"], "'\(address)' is not host:port")
                }
            }
        } else if redis.master != nil {
            throw fail(["redis", "master"], "set, but there are no sentinels")
        }
        for address in redis.cluster {
            let parts = address.split(separator: ":")
            guard parts.count == 2, !parts[0].isEmpty, let port = Int(parts[1]), (1...65535).contains(port) else {
                throw fail(["redis", "cluster"], "'\(address)' is not host:port")
            }
        }
        if redis.database < 0 { throw fail(["redis", "db"], "cannot be negative") }
        if redis.waitReplicas < 0 { throw fail(["redis", "wait_replicas"], "cannot be negative") }
        if redis.waitTimeout <= .zero { throw fail(["redis", "wait_timeout"], "must be longer than zero") }
        if maxDead < 1 { throw fail(["max_dead"], "must be at least 1, not \(maxDead)") }
        if schedulePoll < .milliseconds(10) || schedulePoll > .seconds(60) {
            throw fail(["schedule_poll"], "must be from 10ms to 1m, not \(DurationParser.format(schedulePoll))")
        }
        if maxPayload < 256 { throw fail(["max_payload"], "must be at least 256 bytes, not \(maxPayload)") }
        if types.isEmpty { throw fail(["types"], "no job types declared; add a [types.NAME] table") }

        for name in types.keys.sorted() {
            guard let type = types[name] else { continue }
            let path = ["types", name]
            if name.isEmpty { throw fail(path, "a type name cannot be empty") }
            if let provider = byKind[type.handler] {
                for key in type.options.keys.sorted() where !provider.optionKeys.contains(key) {
                    throw fail(path + [key], "handler \"\(type.handler)\" takes no '\(key)' (its keys: \(provider.optionKeys.sorted().joined(separator: ", ").nonEmptyOr("none")))")
                }
                if let problem = provider.validate(type, in: self) { throw fail(path + [problem.key], problem.message) }
            }
            for priority in type.priorities.keys.sorted() {
                if priority.isEmpty { throw fail(path + ["priorities"], "a priority name cannot be empty") }
                try checkQueueName(type.priorities[priority] ?? "", path + ["priorities", priority])
            }
            if let defaultPriority = type.defaultPriority {
                if type.priorities.isEmpty {
                    throw fail(path + ["default_priority"], "set, but the type has no priorities table")
                }
                if type.priorities[defaultPriority] == nil {
                    throw fail(path + ["default_priority"],
                               "'\(defaultPriority)' is not one of this type's priorities (\(type.priorities.keys.sorted().joined(separator: ", ")))")
                }
            }
            if type.timeout <= .zero { throw fail(path + ["timeout"], "must be longer than zero") }
            if type.maxAttempts < 1 { throw fail(path + ["max_attempts"], "must be at least 1, not \(type.maxAttempts)") }
            if type.backoff.base <= .zero { throw fail(path + ["backoff", "base"], "must be longer than zero") }
            if type.backoff.max < type.backoff.base {
                throw fail(path + ["backoff", "max"], "must not be shorter than backoff.base")
            }
            if let limit = type.rateLimit {
                let at = path + ["rate_limit"]
                if limit.burst < 1 { throw fail(limit.key == nil ? path + ["burst"] : at + ["burst"], "must be at least 1, not \(limit.burst)") }
                if let key = limit.key, key.isEmpty || (!key.hasPrefix("@") && key.split(separator: ".", omittingEmptySubsequences: false).contains("")) {
                    throw fail(at + ["key"], "'\(key)' is not a payload path (names joined by dots) or @recipient_domain")
                }
                if let key = limit.key, key.hasPrefix("@"), key != "@recipient_domain" {
                    throw fail(at + ["key"], "unknown '\(key)'; the only computed key is @recipient_domain")
                }
                if limit.rate.interval < .milliseconds(1) { throw fail(at, "over 1000/s is not supported (a permit every millisecond at most)") }
            }
            if let unique = type.unique {
                if unique.keyPaths.isEmpty { throw fail(path + ["unique", "key"], "must name at least one payload path") }
                if let bad = unique.keyPaths.first(where: { $0.isEmpty || $0.split(separator: ".", omittingEmptySubsequences: false).contains("") }) {
                    throw fail(path + ["unique", "key"], "'\(bad)' is not a payload path (names joined by dots)")
                }
                if unique.lifetime < .seconds(1) { throw fail(path + ["unique", "for"], "must be at least 1s") }
            }
        }

        if let smtp {
            let scheme = smtp.url.split(separator: ":").first.map(String.init) ?? ""
            guard scheme == "smtp" || scheme == "smtps", smtp.url.contains("://") else {
                throw fail(["smtp", "url"], "must start with smtp:// or smtps://")
            }
            if scheme == "smtps" && smtp.tls == .off { throw fail(["smtp", "tls"], "\"off\" cannot be used with smtps:// (always TLS)") }
            do {
                _ = try MailAddress(smtp.from)
            } catch {
                throw fail(["smtp", "from"], error.message)
            }
            if smtp.burst < 1 { throw fail(["smtp", "burst"], "must be at least 1, not \(smtp.burst)") }
            if smtp.timeout <= .zero { throw fail(["smtp", "timeout"], "must be longer than zero") }
        }
        if let name = types.keys.sorted().first(where: { types[$0]?.handler == .smtp }), smtp == nil {
            throw fail(["types", name, "handler"], "\"smtp\" needs an [smtp] table (url, from)")
        }
        if let postgres {
            let lower = postgres.url.lowercased()
            if !(lower.hasPrefix("postgres://") || lower.hasPrefix("postgresql://")) {
                throw fail(["postgres", "url"], "must start with postgres:// (e.g. \"postgres://jobrouter@127.0.0.1:5432/app\")")
            }
            if PostgresSettings.redacted(postgres.url) != postgres.url {
                throw fail(["postgres", "url"], "holds a password; put it in JOBROUTER_POSTGRES_URL, PGPASSWORD or ~/.pgpass instead")
            }
            if postgres.pool < 1 { throw fail(["postgres", "pool"], "must be at least 1, not \(postgres.pool)") }
            if postgres.ledgerBuffer < 1000 {
                throw fail(["postgres", "ledger_buffer"], "must be at least 1000, not \(postgres.ledgerBuffer)")
            }
            if postgres.retain <= .zero { throw fail(["postgres", "retain"], "must be longer than zero") }
            if postgres.schema.isEmpty || !postgres.schema.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") })
                || postgres.schema.first?.isNumber == true {
                throw fail(["postgres", "schema"], "'\(postgres.schema)' is not a plain SQL identifier (letters, digits, _)")
            }
        }
        for name in schedules.keys.sorted() {
            guard let schedule = schedules[name] else { continue }
            let path = ["schedules", name]
            if name.isEmpty || name.contains(where: { $0.isWhitespace }) { throw fail(path, "a schedule name cannot be empty or hold white space") }
            guard types[schedule.type] != nil else {
                throw fail(path + ["type"], "unknown job type '\(schedule.type)'; known types: \(types.keys.sorted().joined(separator: ", "))")
            }
            do {
                _ = try Router(configuration: self).route(type: schedule.type, priority: schedule.priority)
            } catch {
                throw fail(path + ["priority"], "\(error)")
            }
            if let catchUp = schedule.catchUp, catchUp <= .zero { throw fail(path + ["catch_up"], "must be longer than zero") }
            if let unique = types[schedule.type]?.unique {
                do {
                    _ = try unique.key(for: schedule.payload, type: schedule.type)
                } catch {
                    throw fail(path + ["payload"], error.message)
                }
            }
        }
        let declared = declaredQueues
        for name in groups.keys.sorted() {
            guard let group = groups[name] else { continue }
            let path = ["groups", name]
            if group.queues.isEmpty { throw fail(path + ["queues"], "must name at least one queue") }
            var seen: Set<String> = []
            for queue in group.queues {
                if !seen.insert(queue).inserted {
                    throw fail(path + ["queues"], "queue '\(queue)' is listed twice")
                }
                if !declared.contains(queue) {
                    throw fail(path + ["queues"],
                               "no type routes to queue '\(queue)'; declared queues: \(declared.sorted().joined(separator: ", "))")
                }
            }
            if let scaling = group.scaling {
                let at = path + ["concurrency"]
                if scaling.min < 1 { throw fail(at + ["min"], "must be at least 1, not \(scaling.min)") }
                if scaling.max < scaling.min { throw fail(at + ["max"], "must not be less than min (\(scaling.min))") }
                if scaling.targetWait <= .zero { throw fail(at + ["target_wait"], "must be longer than zero") }
                if scaling.scaleDownAfter <= .zero { throw fail(at + ["scale_down_after"], "must be longer than zero") }
            }
            for queue in group.maxWait.keys.sorted() {
                guard group.queues.contains(queue) else {
                    throw fail(path + ["max_wait", queue], "'\(queue)' is not one of this group's queues (\(group.queues.joined(separator: ", ")))")
                }
                if queue == group.queues.first { throw fail(path + ["max_wait", queue], "the group's first queue is never passed over; bound a later one") }
                if let bound = group.maxWait[queue], bound < .seconds(1) { throw fail(path + ["max_wait", queue], "must be at least 1s") }
            }
            if group.agingSlots < 1 { throw fail(path + ["aging_slots"], "must be at least 1, not \(group.agingSlots)") }
            if group.burst < 1 { throw fail(path + ["burst"], "must be at least 1, not \(group.burst)") }
            if let rate = group.rateLimit, rate.interval < .milliseconds(1) { throw fail(path + ["rate_limit"], "over 1000/s is not supported") }
            if group.concurrency < 1 { throw fail(path + ["concurrency"], "must be at least 1, not \(group.concurrency)") }
            if group.concurrency > 10_000 { throw fail(path + ["concurrency"], "must be at most 10000, not \(group.concurrency)") }
            if group.shutdownTimeout < .zero { throw fail(path + ["shutdown_timeout"], "cannot be negative") }
            if group.lease < .seconds(1) { throw fail(path + ["lease"], "must be at least 1s") }
            if group.maxRecoveries < 0 { throw fail(path + ["max_recoveries"], "cannot be negative") }
        }
        if let problem = clusterProblem() { throw fail(problem.path, problem.message) }
    }
}
