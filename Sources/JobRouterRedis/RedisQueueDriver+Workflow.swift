import FoundationEssentials
import JobRouter

/// Cron ticks, unique locks, chains, batches and paused queues (see ``RedisScripts`` for the keys).
extension RedisQueueDriver {
    /// `NS:unique:TYPE:VALUES`: the lock a unique job holds.
    func uniqueKey(_ job: JobEnvelope) -> String? {
        job.unique.map { "\(namespace):unique:\(job.type):\($0.key)" }
    }

    /// `NS:batchjobs:ID`.
    func batchKey(_ id: String) -> String { "\(namespace):batchjobs:\(id)" }

    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    public func fireCronTick(_ name: String, tick: Date, job: JobEnvelope) async throws -> CronTickResult {
        if cluster != nil { return try await shard(forQueue: job.queue).fireCronTick(name, tick: tick, job: job) }
        var keys = ["\(namespace):cron:\(name)", job.queue, "\(namespace):wake:\(job.queue)"]
        if let lock = uniqueKey(job) { keys.append(lock) }
        let arguments = [bytes(String(Self.milliseconds(since1970: tick))), bytes(job.id.rawValue), bytes(job.jsonText),
                         bytes(String(job.unique?.lifetimeMilliseconds ?? 0))]
        return try await commands.run { [keys] connection throws(RedisError) -> CronTickResult in
            let reply = try connection.evaluate(RedisScripts.cronTick, keys: keys, arguments: arguments).array(for: "cron-tick") ?? []
            let code = try reply.first?.integer(for: "cron-tick") ?? 0
            let id = reply.count > 1 ? JobID(rawValue: try reply[1].text(for: "cron-tick")) : job.id
            switch code {
            case 1: return .fired(id)
            case 2: return .duplicate(id)
            default: return .taken
            }
        }
    }

    public func cronStates(_ names: [String]) async throws -> [String: CronScheduleState] {
        if let cluster { return try await everyShard(cluster, { try await $0.cronStates(names) }) { $0.tick > $1.tick ? $0 : $1 } }
        let commands = names.map { [bytes("HMGET"), bytes("\(namespace):cron:\($0)"), bytes("tick"), bytes("id"), bytes("at")] }
        let replies = try await self.commands.run { connection throws(RedisError) in try connection.pipeline(commands) }
        var states: [String: CronScheduleState] = [:]
        for (name, reply) in zip(names, replies) {
            let fields = try reply.array(for: "HMGET") ?? []
            guard fields.count == 3, case .string(let tick) = fields[0], case .string(let id) = fields[1],
                  case .string(let at) = fields[2], let tickMS = Int64(String(decoding: tick, as: UTF8.self)),
                  let atMS = Int64(String(decoding: at, as: UTF8.self)) else { continue }
            states[name] = CronScheduleState(tick: Date(timeIntervalSince1970: Double(tickMS) / 1000),
                                             jobID: JobID(rawValue: String(decoding: id, as: UTF8.self)),
                                             firedAt: Date(timeIntervalSince1970: Double(atMS) / 1000))
        }
        return states
    }

    public func pushUnique(_ job: JobEnvelope, due: Date?) async throws -> JobID? {
        if cluster != nil { return try await shard(forQueue: job.queue).pushUnique(job, due: due) }
        guard let lock = uniqueKey(job), let mark = job.unique else {
            try await push([job])
            return nil
        }
        let keys = [lock, job.queue, "\(namespace):wake:\(job.queue)", "\(namespace):scheduled", "\(namespace):count:scheduled"]
            + (job.batch.map { [batchKey($0)] } ?? [])
        let arguments = [bytes(job.id.rawValue), bytes(job.jsonText), bytes(String(mark.lifetimeMilliseconds)),
                         bytes(due == nil ? "now" : "at"), bytes(String(due.map { Self.milliseconds(since1970: $0) } ?? 0)),
                         bytes(job.queue)]
        return try await commands.run { connection throws(RedisError) -> JobID? in
            let reply = try connection.evaluate(RedisScripts.pushUnique, keys: keys, arguments: arguments).array(for: "push-unique") ?? []
            try self.confirmReplicated(connection)
            guard reply.count == 2 else {
                throw RedisError(code: .unexpectedReply, message: "expected a code and an id", command: "push-unique")
            }
            if try reply[0].integer(for: "push-unique") == 1 { return nil }
            return JobID(rawValue: try reply[1].text(for: "push-unique"))
        }
    }

    public func uniqueStarted(_ job: JobEnvelope) async throws {
        if cluster != nil { return try await shard(forQueue: job.queue).uniqueStarted(job) }
        guard let lock = uniqueKey(job), let mark = job.unique, mark.until != .done else { return }
        let arguments = [bytes(job.id.rawValue), bytes(mark.until.rawValue), bytes(String(mark.lifetimeMilliseconds))]
        _ = try await commands.run { connection throws(RedisError) in
            try connection.evaluate(RedisScripts.uniqueStarted, keys: [lock], arguments: arguments)
        }
    }

    public func complete(_ claim: ClaimedEntry, attempt: AttemptRecord?, finishing job: JobEnvelope) async throws -> SettleResult {
        if let cluster { return try await clusterCompleteFlow(cluster, claim, attempt: attempt, finishing: job) }
        let lock = job.unique?.until == .done ? uniqueKey(job) ?? "" : ""
        var arguments = [bytes(namespace), bytes(attempt == nil ? "0" : String(ledgerBuffer)), bytes(claim.token), bytes(claim.jobID.rawValue),
                         bytes(claim.queue), attempt?.jsonBytes ?? [], bytes(lock), bytes(job.batch ?? "")]
        let now = Date()
        for step in job.then {
            let next = step.envelope(now: now)
            arguments.append(bytes(next.queue))
            arguments.append(bytes(next.jsonText))
        }
        return try await commands.run { [arguments] connection throws(RedisError) in
            Self.settleResult(try connection.evaluate(RedisScripts.completeFlow, keys: [], arguments: arguments).integer(for: "complete-flow"))
        }
    }

    public func openBatch(_ id: String, callback: JobEnvelope) async throws {
        if let cluster {
            try await shard(forQueue: callback.queue).openBatch(id, callback: callback)
            if let tag = ClusterLayout.hashTag(of: callback.queue) { cluster.batchTags.withLock { $0[id] = String(tag) } }
            return
        }
        let payload = callback.payload.jsonText
        let arguments = [bytes(id), bytes(callback.queue), bytes(callback.type), bytes(callback.priority ?? ""), bytes(payload)]
        let keys = [batchKey(id), "\(namespace):batchjobs"]
        _ = try await commands.run { connection throws(RedisError) in
            try connection.evaluate(RedisScripts.batchOpen, keys: keys, arguments: arguments)
        }
    }

    public func sealBatch(_ id: String) async throws -> JobID? {
        if let cluster { return try await batchShard(cluster, id).sealBatch(id) }
        let arguments = [bytes(namespace), bytes(id)]
        return try await commands.run { connection throws(RedisError) -> JobID? in
            let id = try connection.evaluate(RedisScripts.batchSeal, keys: [], arguments: arguments).text(for: "batch-seal")
            return id.isEmpty ? nil : JobID(rawValue: id)
        }
    }

    public func batches(limit: Int) async throws -> [BatchStatus] {
        if let cluster {
            var all: [BatchStatus] = []
            for shard in cluster.all { all += try await shard.batches(limit: limit) }
            return Array(all.sorted { $0.created < $1.created }.prefix(limit))
        }
        let index = "\(namespace):batchjobs"
        let ids = try await commands.run { connection throws(RedisError) -> [String] in
            try (connection.command(["ZRANGE", index, "0", String(max(limit, 1) - 1)]).array(for: "ZRANGE") ?? []).map { reply throws(RedisError) in
                try reply.text(for: "ZRANGE")
            }
        }
        let fields = ["total", "pending", "succeeded", "dead", "sealed", "created", "type"]
        let commands = ids.map { [bytes("HMGET"), bytes(batchKey($0))] + fields.map(bytes) }
        let replies = try await self.commands.run { connection throws(RedisError) in try connection.pipeline(commands) }
        var out: [BatchStatus] = []
        for (id, reply) in zip(ids, replies) {
            let values = try (reply.array(for: "HMGET") ?? []).map { value -> String in
                if case .string(let text) = value { return String(decoding: text, as: UTF8.self) }
                return ""
            }
            guard values.count == fields.count else { continue }
            out.append(BatchStatus(id: id, total: Int(values[0]) ?? 0, pending: Int(values[1]) ?? 0, succeeded: Int(values[2]) ?? 0,
                                   dead: Int(values[3]) ?? 0, sealed: values[4] == "1",
                                   created: Date(timeIntervalSince1970: (Double(values[5]) ?? 0) / 1000), callbackType: values[6]))
        }
        return out
    }

    public func setPaused(_ queues: [String], _ paused: Bool) async throws -> Int {
        if cluster != nil {
            var changed = 0
            for group in try byShard(queues, queue: { $0 }) { changed += try await group.shard.setPaused(group.items, paused) }
            return changed
        }
        let arguments = [bytes(namespace), bytes(paused ? "pause" : "resume")]
        return try await commands.run { connection throws(RedisError) in
            Int(try connection.evaluate(RedisScripts.pause, keys: queues, arguments: arguments).integer(for: "pause"))
        }
    }

    public func pausedQueues() async throws -> Set<String> {
        if let cluster {
            var all: Set<String> = []
            for shard in cluster.all { all.formUnion(try await shard.pausedQueues()) }
            return all
        }
        let key = "\(namespace):paused"
        return try await commands.run { connection throws(RedisError) -> Set<String> in
            Set(try (connection.command(["SMEMBERS", key]).array(for: "SMEMBERS") ?? []).map { reply throws(RedisError) in
                try reply.text(for: "SMEMBERS")
            })
        }
    }

    public func headWaits(of queues: [String]) async throws -> [String: Date] {
        if cluster != nil { return try await perQueueShard(queues) { try await $0.headWaits(of: $1) } }
        let commands = queues.map { [bytes("LINDEX"), bytes($0), bytes("0")] }
        let replies = try await self.commands.run { connection throws(RedisError) in try connection.pipeline(commands) }
        var waits: [String: Date] = [:]
        for (queue, reply) in zip(queues, replies) {
            guard case .string(let entry) = reply, let job = try? JobEnvelope.decode(Data(entry), queue: queue) else { continue }
            waits[queue] = job.waitingSince
        }
        return waits
    }

    public func admit(_ claim: ClaimedEntry, job: JobEnvelope, limiter: LimiterChoice) async throws -> RateAdmission {
        if cluster != nil { return try await shard(forQueue: claim.queue).admit(claim, job: job, limiter: limiter) }
        var deferred = job
        deferred.ratePermit = true
        let arguments = [bytes(namespace), bytes(claim.token), bytes(claim.queue), bytes(limiter.state),
                         bytes(String(max(limiter.rate.interval.inMilliseconds, 1))), bytes(String(limiter.burst)), bytes(limiter.name),
                         bytes(limiter.keyValue ?? ""), bytes(deferred.jsonText)]
        return try await commands.run { connection throws(RedisError) -> RateAdmission in
            let reply = try connection.evaluate(RedisScripts.rateAdmit, keys: [], arguments: arguments).array(for: "rate-admit") ?? []
            guard let code = try reply.first?.integer(for: "rate-admit") else {
                throw RedisError(code: .unexpectedReply, message: "expected a code", command: "rate-admit")
            }
            if code == 1 && reply.count == 1 { return .run }
            if reply.count == 2 { return .deferred(.milliseconds(try reply[1].integer(for: "rate-admit"))) }
            return .lost
        }
    }

    public func limiterStatistics(_ names: [String], now: Date) async throws -> [String: LimiterStatistics] {
        if let cluster {
            return try await everyShard(cluster, { try await $0.limiterStatistics(names, now: now) }) { a, b in
                LimiterStatistics(lastMinute: a.lastMinute + b.lastMinute, thisMinute: a.thisMinute + b.thisMinute,
                                  deferred: a.deferred + b.deferred, keysActive: a.keysActive + b.keysActive)
            }
        }
        let minute = Int64(now.timeIntervalSince1970 / 60)
        var commands: [[[UInt8]]] = []
        for name in names {
            let stats = "\(namespace):limiter:\(name)"
            commands.append([bytes("HMGET"), bytes(stats), bytes("a:\(minute - 1)"), bytes("a:\(minute)"), bytes("deferred")])
            commands.append([bytes("PFCOUNT"), bytes("\(stats):keys:\(minute - 1)"), bytes("\(stats):keys:\(minute)")])
        }
        let replies = try await self.commands.run { [commands] connection throws(RedisError) in try connection.pipeline(commands) }
        var out: [String: LimiterStatistics] = [:]
        for (index, name) in names.enumerated() where index * 2 + 1 < replies.count {
            let fields = try (replies[index * 2].array(for: "HMGET") ?? []).map { value -> Int in
                if case .string(let text) = value { return Int(String(decoding: text, as: UTF8.self)) ?? 0 }
                return 0
            }
            guard fields.count == 3 else { continue }
            let keys = Int(try replies[index * 2 + 1].integer(for: "PFCOUNT"))
            out[name] = LimiterStatistics(lastMinute: fields[0], thisMinute: fields[1], deferred: fields[2], keysActive: keys)
        }
        return out
    }
}
