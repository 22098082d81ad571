/// Scripts for cron ticks, unique locks, chains, batches and paused queues.
///
/// Keys under the namespace `NS` (besides those in ``RedisScripts``):
/// - `NS:cron:NAME` hash: `tick` (the last tick that made a job, ms), `id` (that job), `at` (when, ms)
/// - `NS:unique:TYPE:VALUES` the id of the job holding a type's unique lock (expires after `for`)
/// - `NS:batchjobs:ID` hash of a batch with a callback: `total`, `pending`, `succeeded`, `dead`,
///   `sealed` (every job is in), `created` (ms), `fired` (ms, once the callback went), the callback's
///   `queue`, `type`, `priority`, `payload`; `NS:batchjobs:ID:dead` list of dead job ids;
///   `NS:batchjobs:ID:counted` set of job ids counted (a job re-run from the dead letters counts
///   once); `NS:batchjobs` sorted set of open batches by creation time
/// - `NS:paused` set of paused queues: claims skip them (and drop their wake-up tokens)
/// - `NS:rate:type:TYPE[:KEY]` a type's GCRA state (per key value for keyed limits), expiring once
///   its permits are spent; `NS:limiter:NAME` its figures (see `limiter_admitted`);
///   `NS:limiter:NAME:keys:MINUTE` a HyperLogLog of the key values seen that minute (3 min)
extension RedisScripts {
    /// Counting batch outcomes and firing a batch's callback once.
    static let batchPrelude = """
        local function batch_fire(b, now)
          local key = ns .. ':batchjobs:' .. b
          local f = redis.call('HMGET', key, 'sealed', 'pending', 'fired', 'total', 'succeeded', 'dead', 'queue', 'type', 'priority', 'payload')
          if f[1] ~= '1' or tonumber(f[2] or '1') > 0 or f[3] then return nil end
          local ids = redis.call('LRANGE', key .. ':dead', 0, 999)
          local dead_ids = '[]'
          if #ids > 0 then dead_ids = cjson.encode(ids) end
          local id = new_id(now, redis.call('INCR', ns .. ':seq'), 0)
          local priority = 'null'
          if f[9] and f[9] ~= '' then priority = cjson.encode(f[9]) end
          local payload = '{"batch":' .. cjson.encode(b) .. ',"total":' .. f[4] .. ',"succeeded":' .. f[5] .. ',"dead":' .. f[6]
            .. ',"dead_ids":' .. dead_ids .. ',"payload":' .. f[10] .. '}'
          local entry = '{"id":"' .. id .. '","type":' .. cjson.encode(f[8]) .. ',"priority":' .. priority .. ',"queue":'
            .. cjson.encode(f[7]) .. ',"payload":' .. payload .. ',"attempt":1,"enqueued_at":' .. string.format('%.3f', now / 1000) .. '}'
          redis.call('RPUSH', f[7], entry)
          redis.call('RPUSH', ns .. ':wake:' .. f[7], '1')
          redis.call('HSET', key, 'fired', now, 'callback', id)
          redis.call('ZREM', ns .. ':batchjobs', b)
          redis.call('DEL', key .. ':counted')
          redis.call('PEXPIRE', key, 604800000)
          redis.call('PEXPIRE', key .. ':dead', 604800000)
          return id
        end
        local function batch_count(b, id, dead, now)
          local key = ns .. ':batchjobs:' .. b
          if redis.call('EXISTS', key) == 0 or redis.call('HEXISTS', key, 'fired') == 1 then return end
          if redis.call('SADD', key .. ':counted', id) == 0 then return end
          redis.call('HINCRBY', key, 'pending', -1)
          if dead then
            redis.call('HINCRBY', key, 'dead', 1)
            redis.call('RPUSH', key .. ':dead', id)
          else
            redis.call('HINCRBY', key, 'succeeded', 1)
          end
          batch_fire(b, now)
        end
        local function release_unique(lock, id)
          if lock ~= '' and redis.call('GET', lock) == id then redis.call('DEL', lock) end
        end
        -- What a dying entry holds (its unique lock, its batch), read from the entry itself.
        local function entry_dies(entry, id, now)
          local ok, job = pcall(cjson.decode, entry)
          if not ok or type(job) ~= 'table' then return end
          if type(job.unique) == 'table' and job.unique['until'] == 'done' and type(job.unique.key) == 'string' and type(job.type) == 'string' then
            release_unique(ns .. ':unique:' .. job.type .. ':' .. job.unique.key, id)
          end
          if type(job.batch) == 'string' and job.batch ~= '' then batch_count(job.batch, id, true, now) end
        end

        """

    /// Claims one tick of a cron schedule: makes its job unless a job was made for this tick or a
    /// later one. KEYS: the schedule's hash, the queue, its wake-up list, and (for a unique type)
    /// the lock; ARGV: tick ms, job id, entry, lock lifetime ms. Returns {1, id} (made), {0} (the
    /// tick was taken already) or {2, id} (the tick is taken, but a job holding the unique lock
    /// exists: that id).
    static let cronTick = RedisScript(name: "cron-tick", source: """
        local last = tonumber(redis.call('HGET', KEYS[1], 'tick') or '-1')
        if last >= tonumber(ARGV[1]) then return {0} end
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        if KEYS[4] then
          local held = redis.call('GET', KEYS[4])
          if held then
            redis.call('HSET', KEYS[1], 'tick', ARGV[1], 'id', held, 'at', now, 'duplicate', '1')
            return {2, held}
          end
          redis.call('SET', KEYS[4], ARGV[2], 'PX', tonumber(ARGV[4]))
        end
        redis.call('HSET', KEYS[1], 'tick', ARGV[1], 'id', ARGV[2], 'at', now, 'duplicate', '0')
        redis.call('RPUSH', KEYS[2], ARGV[3])
        redis.call('RPUSH', KEYS[3], '1')
        return {1, ARGV[2]}
        """)

    /// Enqueues a job of a unique type unless its lock is held. KEYS: the lock, the queue, its
    /// wake-up list, `NS:scheduled`, `NS:count:scheduled`, and (optional) the hash of the batch it
    /// counts toward; ARGV: id, entry, lock lifetime ms, when
    /// ('now', 'in' or 'at'), ms, queue name. Returns {1, id} (pushed) or {0, the holder's id}.
    static let pushUnique = RedisScript(name: "push-unique", source: """
        local held = redis.call('GET', KEYS[1])
        if held then return {0, held} end
        redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[3]))
        if ARGV[4] == 'now' then
          redis.call('RPUSH', KEYS[2], ARGV[2])
          redis.call('RPUSH', KEYS[3], '1')
        else
          local due = tonumber(ARGV[5])
          if ARGV[4] == 'in' then
            local t = redis.call('TIME')
            due = due + tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
          end
          if redis.call('ZADD', KEYS[4], due, ARGV[6] .. '\\n' .. ARGV[2]) == 1 then redis.call('HINCRBY', KEYS[5], ARGV[6], 1) end
        end
        if KEYS[6] then
          redis.call('HINCRBY', KEYS[6], 'total', 1)
          redis.call('HINCRBY', KEYS[6], 'pending', 1)
        end
        return {1, ARGV[1]}
        """)

    /// A unique job started: releases its lock (`start`) or sets it to expire `for` from now
    /// (`ttl`), if this job still holds it. KEYS: the lock; ARGV: id, 'start' or 'ttl', lifetime ms.
    static let uniqueStarted = RedisScript(name: "unique-started", source: """
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        if ARGV[2] == 'start' then return redis.call('DEL', KEYS[1]) end
        return redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
        """)

    /// Finishes one claim whose job has more to do on success: releases its unique lock
    /// (`until = "done"`), pushes its `then` jobs and counts it for its batch, in the step that
    /// marks it succeeded. ARGV: ns, ledger bound, token, id, queue, attempt record, lock key ('' for
    /// none), batch ('' for none), then per next job: queue, entry. Returns what ``complete`` returns.
    static let completeFlow = RedisScript(name: "complete-flow", source: prelude + identify + batchPrelude + """
        local bound = tonumber(ARGV[2])
        local token, id, queue = ARGV[3], ARGV[4], ARGV[5]
        if not release(token, queue) then return gone(token) end
        redis.call('HDEL', ns .. ':recoveries', id)
        log_attempt(ARGV[6], bound)
        release_unique(ARGV[7], id)
        for i = 9, #ARGV, 2 do
          redis.call('RPUSH', ARGV[i], ARGV[i + 1])
          redis.call('RPUSH', ns .. ':wake:' .. ARGV[i], '1')
        end
        if ARGV[8] ~= '' then batch_count(ARGV[8], id, false, now_ms()) end
        flush_attempts(bound)
        return 1
        """)

    /// Opens a batch with a callback (once: a re-run of the same batch id finds it open).
    /// KEYS: the batch's hash, `NS:batchjobs`; ARGV: batch id, callback queue, type, priority ('' for
    /// none), payload JSON. Returns 1 when opened now, 0 when it existed.
    static let batchOpen = RedisScript(name: "batch-open", source: """
        if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        redis.call('HSET', KEYS[1], 'total', 0, 'pending', 0, 'succeeded', 0, 'dead', 0, 'sealed', 0, 'created', now,
          'queue', ARGV[2], 'type', ARGV[3], 'priority', ARGV[4], 'payload', ARGV[5])
        redis.call('ZADD', KEYS[2], now, ARGV[1])
        return 1
        """)

    /// Marks a batch complete (every job is in) and fires its callback if every job has finished.
    /// ARGV: ns, batch id. Returns the callback's id when it fired now, else ''.
    static let batchSeal = script("batch-seal", identify + batchPrelude + """
        local key = ns .. ':batchjobs:' .. ARGV[2]
        if redis.call('EXISTS', key) == 0 then return '' end
        redis.call('HSET', key, 'sealed', 1)
        return batch_fire(ARGV[2], now_ms()) or ''
        """)

    /// Pauses or resumes queues. KEYS: the queues; ARGV: ns, 'pause' or 'resume'. Resuming pushes
    /// wake-up tokens for what waits (up to 100 per queue), so blocked workers look at once.
    static let pause = script("pause", """
        local changed = 0
        for _, queue in ipairs(KEYS) do
          if ARGV[2] == 'pause' then
            changed = changed + redis.call('SADD', ns .. ':paused', queue)
            redis.call('DEL', ns .. ':wake:' .. queue)
          elseif redis.call('SREM', ns .. ':paused', queue) == 1 then
            changed = changed + 1
            local ok, length = pcall(redis.call, 'LLEN', queue)
            local waiting = ok and math.min(length, 100) or 0
            if waiting > 0 then
              local tokens = {}
              for i = 1, waiting do tokens[i] = '1' end
              redis.call('RPUSH', ns .. ':wake:' .. queue, unpack(tokens))
            end
          end
        end
        return changed
        """)
}

extension RedisScripts {
    /// Lets a claimed job of a rate-limited type run, or defers it: one GCRA step on its limiter.
    /// Within the limit the permit is taken and the job runs. Over it, the next permit is reserved
    /// for this job and the job moves from in flight to the schedule at the time that permit is
    /// valid (attempt unchanged; the stored entry says it holds a permit, so it runs when it comes
    /// back). ARGV: ns, token, queue, limiter state key (after `NS:rate:`), interval ms, burst,
    /// limiter name (figures), key value ('' for none), entry to schedule. Returns {1} (run),
    /// {2, ms deferred} or {0 or 2} as a settle whose claim is gone.
    static let rateAdmit = script("rate-admit", """
        local token, queue = ARGV[2], ARGV[3]
        if redis.call('HEXISTS', ns .. ':inflight', token) == 0 then return {gone(token)} end
        local now = now_ms()
        local key = ns .. ':rate:' .. ARGV[4]
        local interval = tonumber(ARGV[5])
        local tolerance = interval * (tonumber(ARGV[6]) - 1)
        local tat = tonumber(redis.call('GET', key) or now)
        if tat < now then tat = now end
        local allowed_at = tat - tolerance
        redis.call('SET', key, tat + interval, 'PX', math.ceil(tat + interval - now + tolerance) + 1000)
        if ARGV[8] ~= '' then
          local keys = ns .. ':limiter:' .. ARGV[7] .. ':keys:' .. math.floor(now / 60000)
          redis.call('PFADD', keys, ARGV[8])
          redis.call('PEXPIRE', keys, 180000)
        end
        if now >= allowed_at then
          limiter_admitted(ARGV[7], now, 1)
          return {1}
        end
        limiter_admitted(ARGV[7], allowed_at, 1)
        redis.call('HINCRBY', ns .. ':limiter:' .. ARGV[7], 'deferred', 1)
        release(token, queue)
        if redis.call('ZADD', ns .. ':scheduled', allowed_at, queue .. '\\n' .. ARGV[9]) == 1 then
          redis.call('HINCRBY', ns .. ':count:scheduled', queue, 1)
        end
        return {2, allowed_at - now}
        """)
}
