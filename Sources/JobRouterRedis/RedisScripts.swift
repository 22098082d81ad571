/// The Lua scripts behind every multi-step change to stored jobs. Each runs atomically on the
/// server, so a worker killed at any instant leaves every job in exactly one place: a queue, the
/// in-flight table (with a lease), the schedule, or the dead-letter store.
///
/// Times come from the server's clock (`TIME`), so leases and schedules agree across machines.
/// `ARGV[1]` is always the namespace; JobRouter's own key names are built from it (so these
/// scripts are for a single Redis server, not Redis Cluster).
///
/// Keys under the namespace `NS`:
/// - `NS:inflight` hash token → `queue \n worker \n max_recoveries \n entry`
/// - `NS:leases` sorted set token → lease deadline (ms)
/// - `NS:recoveries` hash job id → times recovered from a dead worker
/// - `NS:scheduled` sorted set `queue \n entry` → due time (ms)
/// - `NS:dead` sorted set id → time (ms); `NS:dead:jobs` hash id → record; `NS:dead:trimmed` counter
/// - `NS:workers` sorted set worker id → last heartbeat (ms); `NS:worker:ID` its description (expires)
/// - `NS:wake:QUEUE` list of wake-up tokens, one pushed with each job
/// - `NS:seq` counter for claim tokens
enum RedisScripts {
    /// Functions every script shares.
    private static let prelude = """
        local ns = ARGV[1]
        local function now_ms()
          local t = redis.call('TIME')
          return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        end
        local function parse_record(record)
          local a = string.find(record, '\\n', 1, true)
          local b = string.find(record, '\\n', a + 1, true)
          local c = string.find(record, '\\n', b + 1, true)
          return string.sub(record, 1, a - 1), string.sub(record, a + 1, b - 1),
                 tonumber(string.sub(record, b + 1, c - 1)), string.sub(record, c + 1)
        end
        local function release(token)
          if redis.call('HDEL', ns .. ':inflight', token) == 0 then return false end
          redis.call('ZREM', ns .. ':leases', token)
          return true
        end
        local function bury(id, record, now, max_dead)
          redis.call('HSET', ns .. ':dead:jobs', id, record)
          redis.call('ZADD', ns .. ':dead', now, id)
          redis.call('HDEL', ns .. ':recoveries', id)
          local excess = redis.call('ZCARD', ns .. ':dead') - max_dead
          if excess > 0 then
            local old = redis.call('ZPOPMIN', ns .. ':dead', excess)
            for i = 1, #old, 2 do redis.call('HDEL', ns .. ':dead:jobs', old[i]) end
            redis.call('INCRBY', ns .. ':dead:trimmed', excess)
          end
        end

        """

    private static func script(_ name: String, _ body: String) -> RedisScript {
        RedisScript(name: name, source: prelude + body)
    }

    /// Pushes entries to the tail of one queue with one wake-up token each.
    /// KEYS[1] queue; ARGV[2...] entries.
    static let push = script("push", """
        local count = #ARGV - 1
        redis.call('RPUSH', KEYS[1], unpack(ARGV, 2))
        local tokens = {}
        for i = 1, count do tokens[i] = '1' end
        redis.call('RPUSH', ns .. ':wake:' .. KEYS[1], unpack(tokens))
        return count
        """)

    /// Takes up to ARGV[2] entries from KEYS (queues in priority order: all it can from the first,
    /// then the next) and records each as in flight with a lease. A queue found empty has its
    /// wake-up tokens cleared. ARGV: ns, max, worker, max_recoveries, lease ms.
    /// Returns `token, queue, entry, token, queue, entry, …`.
    static let claim = script("claim", """
        local max = tonumber(ARGV[2])
        local deadline = now_ms() + tonumber(ARGV[5])
        local out = {}
        local taken = 0
        local seq = nil
        for _, queue in ipairs(KEYS) do
          if taken >= max then break end
          local items = redis.call('LPOP', queue, max - taken)
          if items then
            if not seq then seq = redis.call('INCR', ns .. ':seq') end
            for _, item in ipairs(items) do
              taken = taken + 1
              local token = ARGV[3] .. '/' .. seq .. '.' .. taken
              redis.call('HSET', ns .. ':inflight', token, queue .. '\\n' .. ARGV[3] .. '\\n' .. ARGV[4] .. '\\n' .. item)
              redis.call('ZADD', ns .. ':leases', deadline, token)
              out[#out + 1] = token
              out[#out + 1] = queue
              out[#out + 1] = item
            end
          end
          if taken < max then redis.call('DEL', ns .. ':wake:' .. queue) end
        end
        return out
        """)

    /// Finishes claims: ARGV: ns, token, job id, token, job id, …
    /// Returns 1 per claim that was still this worker's, 0 per claim lost (lease expired and recovered).
    static let complete = script("complete", """
        local out = {}
        for i = 2, #ARGV, 2 do
          if release(ARGV[i]) then
            redis.call('HDEL', ns .. ':recoveries', ARGV[i + 1])
            out[#out + 1] = 1
          else
            out[#out + 1] = 0
          end
        end
        return out
        """)

    /// Moves a claimed job to the schedule for a later attempt. ARGV: ns, token, delay ms, queue, entry.
    static let retry = script("retry", """
        if not release(ARGV[2]) then return 0 end
        redis.call('ZADD', ns .. ':scheduled', now_ms() + tonumber(ARGV[3]), ARGV[4] .. '\\n' .. ARGV[5])
        return 1
        """)

    /// Puts claimed jobs back at the head of their queues, the first given ending up first.
    /// ARGV: ns, token, queue, entry, token, queue, entry, … Returns how many were still this worker's.
    static let requeue = script("requeue", """
        local count = 0
        for i = #ARGV - 2, 2, -3 do
          if release(ARGV[i]) then
            redis.call('LPUSH', ARGV[i + 1], ARGV[i + 2])
            redis.call('RPUSH', ns .. ':wake:' .. ARGV[i + 1], '1')
            count = count + 1
          end
        end
        return count
        """)

    /// Keeps a job that cannot run. ARGV: ns, token ('' for none), id, record, max_dead.
    /// Returns 0 when the token was no longer this worker's (someone else owns the job now).
    static let deadLetter = script("dead-letter", """
        if ARGV[2] ~= '' and not release(ARGV[2]) then return 0 end
        bury(ARGV[3], ARGV[4], now_ms(), tonumber(ARGV[5]))
        return 1
        """)

    /// Adds entries to the schedule. ARGV: ns, 'in' or 'at', ms, queue, entry, queue, entry, …
    static let schedule = script("schedule", """
        local due = tonumber(ARGV[3])
        if ARGV[2] == 'in' then due = now_ms() + due end
        for i = 4, #ARGV, 2 do
          redis.call('ZADD', ns .. ':scheduled', due, ARGV[i] .. '\\n' .. ARGV[i + 1])
        end
        return due
        """)

    /// Moves due scheduled entries to the tail of their queues; each moves exactly once however many
    /// processes run this. ARGV: ns, limit. Returns {moved, ms until the next due entry or -1}.
    static let moveDue = script("move-due", """
        local now = now_ms()
        local due = redis.call('ZRANGEBYSCORE', ns .. ':scheduled', '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
        for _, member in ipairs(due) do
          redis.call('ZREM', ns .. ':scheduled', member)
          local cut = string.find(member, '\\n', 1, true)
          local queue = string.sub(member, 1, cut - 1)
          redis.call('RPUSH', queue, string.sub(member, cut + 1))
          redis.call('RPUSH', ns .. ':wake:' .. queue, '1')
        end
        local next = redis.call('ZRANGE', ns .. ':scheduled', 0, 0, 'WITHSCORES')
        local wait = -1
        if next[2] then wait = math.max(0, tonumber(next[2]) - now) end
        return {#due, wait}
        """)

    /// Puts jobs whose lease expired (their worker stopped heartbeating) back at the head of their
    /// queue, or dead-letters them as poison once recovered more than their group's max_recoveries.
    /// ARGV: ns, limit, max_dead. Returns {recovered, poisoned}.
    static let recover = script("recover", """
        local now = now_ms()
        local expired = redis.call('ZRANGEBYSCORE', ns .. ':leases', '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
        local recovered, poisoned = 0, 0
        for _, token in ipairs(expired) do
          local record = redis.call('HGET', ns .. ':inflight', token)
          release(token)
          if record then
            local queue, worker, max_recoveries, entry = parse_record(record)
            local ok, job = pcall(cjson.decode, entry)
            local id = nil
            if ok and type(job) == 'table' and type(job.id) == 'string' then id = job.id end
            local count = 0
            if id then count = redis.call('HINCRBY', ns .. ':recoveries', id, 1) end
            if id and count > max_recoveries then
              local reason = 'poison: its worker stopped while running it ' .. count .. ' times (max_recoveries ' .. max_recoveries .. ')'
              local dead = {id = id, queue = queue, reason = reason, raw = entry}
              if type(job.type) == 'string' then dead.type = job.type end
              if type(job.attempt) == 'number' then dead.attempt = job.attempt end
              bury(id, cjson.encode(dead), now, tonumber(ARGV[3]))
              poisoned = poisoned + 1
            else
              redis.call('LPUSH', queue, entry)
              redis.call('RPUSH', ns .. ':wake:' .. queue, '1')
              recovered = recovered + 1
            end
          end
        end
        return {recovered, poisoned}
        """)

    /// Records a worker process as alive and extends the leases of the jobs it runs.
    /// ARGV: ns, worker id, description JSON, description ttl ms, lease ms, token, token, …
    static let heartbeat = script("heartbeat", """
        local now = now_ms()
        redis.call('ZADD', ns .. ':workers', now, ARGV[2])
        redis.call('SET', ns .. ':worker:' .. ARGV[2], ARGV[3], 'PX', tonumber(ARGV[4]))
        redis.call('ZREMRANGEBYSCORE', ns .. ':workers', '-inf', now - 86400000)
        local deadline = now + tonumber(ARGV[5])
        local renewed = 0
        for i = 6, #ARGV do
          if redis.call('ZADD', ns .. ':leases', 'XX', 'CH', deadline, ARGV[i]) == 1 then renewed = renewed + 1 end
        end
        return renewed
        """)

    /// Sends a dead job back to its queue. ARGV: ns, id, queue, entry. Returns 0 when there is no such record.
    static let resurrect = script("resurrect", """
        if redis.call('HDEL', ns .. ':dead:jobs', ARGV[2]) == 0 then return 0 end
        redis.call('ZREM', ns .. ':dead', ARGV[2])
        redis.call('RPUSH', ARGV[3], ARGV[4])
        redis.call('RPUSH', ns .. ':wake:' .. ARGV[3], '1')
        return 1
        """)

    /// Deletes dead records older than ARGV[2] ms since the epoch. Returns how many.
    static let purgeDead = script("purge-dead", """
        local ids = redis.call('ZRANGEBYSCORE', ns .. ':dead', '-inf', '(' .. ARGV[2])
        for _, id in ipairs(ids) do
          redis.call('HDEL', ns .. ':dead:jobs', id)
          redis.call('ZREM', ns .. ':dead', id)
        end
        return #ids
        """)

    /// GCRA rate limit: takes one permit from `NS:rate:KEY` or returns how many ms to wait.
    /// ARGV: ns, key, interval ms (period / count), burst. Up to `burst` permits go at once, then one
    /// per interval: no window of one period holds more than count + burst - 1.
    static let rateLimit = script("rate-limit", """
        local key = ns .. ':rate:' .. ARGV[2]
        local interval = tonumber(ARGV[3])
        local tolerance = interval * (tonumber(ARGV[4]) - 1)
        local now = now_ms()
        local tat = tonumber(redis.call('GET', key) or now)
        if tat < now then tat = now end
        local allowed_at = tat - tolerance
        if now < allowed_at then return allowed_at - now end
        redis.call('SET', key, tat + interval, 'PX', math.ceil(tat + interval - now + tolerance) + 1000)
        return 0
        """)

    /// Gives back one rate-limit permit. ARGV: ns, key, interval ms.
    static let rateRefund = script("rate-refund", """
        local key = ns .. ':rate:' .. ARGV[2]
        local tat = tonumber(redis.call('GET', key))
        if not tat then return 0 end
        local now = now_ms()
        local earlier = tat - tonumber(ARGV[3])
        if earlier <= now then redis.call('DEL', key) else redis.call('SET', key, earlier, 'KEEPTTL') end
        return 1
        """)

    /// Counts per queue (KEYS): depth, head entry, in flight, scheduled, dead; then the workers.
    /// Returns {{queue, depth, head or false, inflight, scheduled, dead}…}, {{worker, heartbeat ms, description or false}…}, now ms, trimmed.
    static let stats = script("stats", """
        local inflight, scheduled, dead = {}, {}, {}
        for _, record in ipairs(redis.call('HVALS', ns .. ':inflight')) do
          local queue = string.sub(record, 1, string.find(record, '\\n', 1, true) - 1)
          inflight[queue] = (inflight[queue] or 0) + 1
        end
        for _, member in ipairs(redis.call('ZRANGE', ns .. ':scheduled', 0, -1)) do
          local queue = string.sub(member, 1, string.find(member, '\\n', 1, true) - 1)
          scheduled[queue] = (scheduled[queue] or 0) + 1
        end
        for _, record in ipairs(redis.call('HVALS', ns .. ':dead:jobs')) do
          local ok, value = pcall(cjson.decode, record)
          if ok and type(value) == 'table' and type(value.queue) == 'string' then
            dead[value.queue] = (dead[value.queue] or 0) + 1
          end
        end
        local queues = {}
        for _, queue in ipairs(KEYS) do
          queues[#queues + 1] = {queue, redis.call('LLEN', queue), redis.call('LINDEX', queue, 0),
                                 inflight[queue] or 0, scheduled[queue] or 0, dead[queue] or 0}
        end
        local workers = {}
        local listed = redis.call('ZRANGE', ns .. ':workers', 0, -1, 'WITHSCORES')
        for i = 1, #listed, 2 do
          workers[#workers + 1] = {listed[i], listed[i + 1], redis.call('GET', ns .. ':worker:' .. listed[i])}
        end
        return {queues, workers, now_ms(), tonumber(redis.call('GET', ns .. ':dead:trimmed') or '0')}
        """)
}
