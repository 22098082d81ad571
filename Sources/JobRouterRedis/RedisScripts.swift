/// The Lua scripts behind every multi-step change to stored jobs. Each runs atomically on the
/// server, so a worker killed at any instant leaves every job in exactly one place: a queue, the
/// in-flight table (with a lease), the schedule, or the dead-letter store.
///
/// Times come from the server's clock (`TIME`), so leases and schedules agree across machines.
/// `ARGV[1]` is always the namespace; JobRouter's own key names are built from it. In a Redis
/// Cluster the namespace carries the hash tag of the queues a call is about (`NS` is then
/// `jobrouter:{mail}`), so every key a call touches is in that tag's slot.
///
/// Keys under the namespace `NS`:
/// - `NS:inflight` hash token → `\t queue \n worker \n max_recoveries \n job id \n entry` (the tab
///   marks the layout; records from before it, without the id, are still read)
/// - `NS:owners` sorted set owner → lease deadline (ms). An owner is one claim loop of one worker
///   process (`worker#n`); every claim token starts with its owner and a slash (`OWNER/SEQ.N`).
///   A claim sets its owner's deadline, heartbeats extend it, and when it passes, recovery takes
///   back every in-flight record of that owner. One lease per claim loop rather than one per
///   claim: a claim and its settle each cost Redis one sorted-set change fewer per job
///   (~1 µs of its ~7 per job at concurrency 64)
/// - `NS:owners:scan` hash owner → `deadline@run_id cursor`: how far recovery's pass over an
///   expired owner's records got (a look scans a bounded part of `NS:inflight`), for that lease
///   deadline, on that server (a cursor means nothing on another)
/// - `NS:leases` sorted set token → lease deadline (ms): the leases of claims made by JobRouter
///   before owner leases, still recovered when they expire; nothing writes it now
/// - `NS:lost` sorted set token → when recovery took it from its worker (ms; kept an hour), so a
///   late settle can tell "taken away" from "already settled by an earlier try of the same call"
/// - `NS:recoveries` hash job id → times recovered from a dead worker
/// - `NS:scheduled` sorted set `queue \n entry` → due time (ms)
/// - `NS:dead` sorted set key → time (ms). A key is the job id, or `id~N` when a record with that
///   id is already kept (two producers reusing an id never overwrite each other's dead record).
///   `NS:dead:jobs` hash key → record JSON (id, queue, type, attempt, reason), `NS:dead:raw` hash
///   key → the entry's exact bytes, `NS:dead:where` hash key → `queue \n type`, `NS:dead:trimmed`
///   counter, `NS:dead:seq` counter for `~N` suffixes
/// - `NS:count:inflight`, `NS:count:scheduled`, `NS:count:dead` hashes queue → count, and
///   `NS:count:dead-type` hash type → count: kept by the scripts so operator views are O(queues)
/// - `NS:workers` sorted set worker id → last heartbeat (ms); `NS:worker:ID` its description (expires)
/// - `NS:wake:QUEUE` list of wake-up tokens, one pushed with each job
/// - `NS:seq` counter for claim tokens and ids given to entries that had none
/// - `NS:relayed` sorted set outbox row key → when the relay pushed it (ms): rows pushed whose
///   deletion in PostgreSQL is not confirmed yet, so a relay that died in between pushes none twice
/// - `NS:batch:ID` the last input line of batch `ID` known to be enqueued (`enqueue --batch-id`)
/// - `NS:events` stream of attempt records (JSON objects: the attempt's fields, and `entry`, for
///   a record a worker made `{"payload": …}` only, for one a script made the job's whole entry),
///   one entry per script call: field `n` the number of records, then a field `r` per record, or
///   `L` (their lengths, comma-separated) and `R` (the records back to back) for the records a
///   worker sent together; written only when
///   a ledger consumes them, by the same script call that made each outcome durable; read by
///   the ledger shipper's consumer group `ledger`, which deletes what it has stored.
///   `NS:events:records` counts the records held; past the bound the oldest entries are dropped
///   and their records counted in `NS:events:dropped`
/// - `NS:throughput:MINUTE` hash (MINUTE: minutes since the epoch) `p|f \t q|t \t name` → jobs
///   processed or failed in that minute per queue and per type, added by every worker every few
///   seconds; expires 25 hours after its minute
enum RedisScripts {
    /// What the settle scripts need (``complete``): the namespace, counters, one command over many
    /// arguments, "gone", and the ledger's attempt records. Every `local function` costs the
    /// script a closure each time it runs, so the script run most often after claim carries
    /// only these.
    static let settlePrelude = """
        local ns = ARGV[1]
        local function decrement(hash, field, by)
          if redis.call('HINCRBY', hash, field, -by) <= 0 then redis.call('HDEL', hash, field) end
        end
        -- One command over many arguments (HSET/ZADD/HDEL/ZREM/HMGET with a key), in chunks that
        -- stay under Lua's unpack limit; returns HMGET's answers in order, and the sum of integer
        -- replies (how many ZREM or HDEL removed).
        local function many(command, key, args, step)
          local answers, total = {}, 0
          for i = 1, #args, step do
            local reply = redis.call(command, key, unpack(args, i, math.min(i + step - 1, #args)))
            if type(reply) == 'table' then
              for _, value in ipairs(reply) do answers[#answers + 1] = value end
            elseif type(reply) == 'number' then
              total = total + reply
            end
          end
          return answers, total
        end
        -- What a settle whose claim is gone answers: 0 taken away by recovery, 2 already settled.
        local function gone(token)
          if redis.call('ZSCORE', ns .. ':lost', token) then return 0 end
          return 2
        end
        -- Attempt records for the ledger (bound 0: no ledger, nothing written) are gathered by
        -- log_attempt (one record, field r) and log_attempts (records sent as one string with
        -- their lengths, fields L and R: one Lua string per call, not one per job) and written by
        -- flush_attempts as one stream entry per script call, whose field n says how many it holds.
        -- NS:events:records counts the records the stream holds; shipped entries are deleted, so all
        -- it holds is unshipped, and what the bound trims (oldest entries first) is dropped, counted.
        local attempts, attempt_count = {}, 0
        local function log_attempt(record, bound)
          if bound > 0 and record ~= '' then
            attempts[#attempts + 1] = 'r'
            attempts[#attempts + 1] = record
            attempt_count = attempt_count + 1
          end
        end
        local function log_attempts(lengths, records, count, bound)
          if bound > 0 and count > 0 then
            attempts[#attempts + 1] = 'L'
            attempts[#attempts + 1] = lengths
            attempts[#attempts + 1] = 'R'
            attempts[#attempts + 1] = records
            attempt_count = attempt_count + count
          end
        end
        -- How many records an entry holds (entries written before field n: one per field).
        local function entry_records(fields)
          if fields[1] == 'n' then return tonumber(fields[2]) or 0 end
          return #fields / 2
        end
        local function flush_attempts(bound)
          local count = attempt_count
          if count == 0 then return end
          local events = ns .. ':events'
          -- Counted first (one call, not a read and then a write): what the stream will hold.
          local held = redis.call('INCRBY', events .. ':records', count)
          while held > bound do
            local oldest = redis.call('XRANGE', events, '-', '+', 'COUNT', 1)[1]
            if not oldest then break end
            local n = entry_records(oldest[2])
            redis.call('XDEL', events, oldest[1])
            held = held - n
            redis.call('DECRBY', events .. ':records', n)
            redis.call('INCRBY', events .. ':dropped', n)
          end
          redis.call('XADD', events, '*', 'n', count, unpack(attempts))
          attempts, attempt_count = {}, 0
        end

        """

    /// Reads an in-flight record (recovery, and ``complete`` for recovery counts).
    static let recordParser = """
        -- In-flight records start with a tab (no queue name holds white space), then queue, worker,
        -- max_recoveries, id and entry, one per line. One without the tab is from a JobRouter before
        -- ids were fixed at claim (no id line) and is still read.
        local function parse_record(record, token)
          local new = string.sub(record, 1, 1) == '\t'
          local start = new and 2 or 1
          local a = string.find(record, '\\n', start, true)
          local b = string.find(record, '\\n', a + 1, true)
          local c = string.find(record, '\\n', b + 1, true)
          local queue, worker, max = string.sub(record, start, a - 1), string.sub(record, a + 1, b - 1), tonumber(string.sub(record, b + 1, c - 1))
          if new then
            local d = string.find(record, '\\n', c + 1, true)
            return queue, worker, max, string.sub(record, c + 1, d - 1), string.sub(record, d + 1)
          end
          local entry = string.sub(record, c + 1)
          local ok, job = pcall(cjson.decode, entry)
          if ok and type(job) == 'table' and type(job.id) == 'string' and job.id ~= '' then return queue, worker, max, job.id, entry end
          return queue, worker, max, 'claim-' .. token, entry
        end

        """

    /// Functions every script shares.
    static let prelude = settlePrelude + recordParser + """
        local function now_ms()
          local t = redis.call('TIME')
          return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        end
        -- The claim's lease is its owner's (`NS:owners`), which stays while the owner holds others.
        local function release(token, queue)
          if redis.call('HDEL', ns .. ':inflight', token) == 0 then return false end
          decrement(ns .. ':count:inflight', queue, 1)
          return true
        end
        local function forget_dead(key)
          local where = redis.call('HGET', ns .. ':dead:where', key)
          redis.call('HDEL', ns .. ':dead:jobs', key)
          redis.call('HDEL', ns .. ':dead:raw', key)
          redis.call('HDEL', ns .. ':dead:where', key)
          if where then
            local cut = string.find(where, '\\n', 1, true)
            decrement(ns .. ':count:dead', string.sub(where, 1, cut - 1), 1)
            local kind = string.sub(where, cut + 1)
            if kind ~= '' then decrement(ns .. ':count:dead-type', kind, 1) end
          end
        end
        -- A record built here (recovery, entries kept aside by a claim) from an entry that may not
        -- be a job at all: only fields of the right kind are taken from it.
        local function script_record(id, claim, outcome, queue, worker, entry, reason, now, keep_entry)
          local record = {id = id, claim = claim, outcome = outcome, queue = queue, worker = worker, finished_at = now / 1000}
          if reason then record.error = reason end
          local ok, job = pcall(cjson.decode, entry)
          if not ok or type(job) ~= 'table' then return cjson.encode(record) end
          if type(job.type) == 'string' then record.type = job.type end
          if type(job.priority) == 'string' then record.priority = job.priority end
          if type(job.attempt) == 'number' and job.attempt == math.floor(job.attempt) and job.attempt >= 1 and job.attempt < 2^31 then
            record.attempt = job.attempt
          end
          local at = job.enqueued_at
          if type(at) == 'number' and at >= 0 and at < 4102444800 then record.enqueued_at = at end
          if type(at) == 'string' and string.match(at, '^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d[%.%d]*Z$') then record.enqueued_at = at end
          local text = cjson.encode(record)
          if keep_entry then return string.sub(text, 1, -2) .. ',"entry":' .. entry .. '}' end
          return text
        end
        -- Per-limiter figures for `status` and /metrics: permits per minute (`a:MINUTE`, the last
        -- three kept), jobs deferred (`deferred`), in `NS:limiter:NAME`, kept a day after last use.
        local function limiter_admitted(name, at, by)
          local stats = ns .. ':limiter:' .. name
          local minute = math.floor(at / 60000)
          redis.call('HINCRBY', stats, 'a:' .. minute, by)
          redis.call('HDEL', stats, 'a:' .. (minute - 3))
          redis.call('PEXPIRE', stats, 86400000)
        end
        local function bury(id, queue, kind, record, raw, now, max_dead)
          local key = id
          if redis.call('HSETNX', ns .. ':dead:jobs', key, record) == 0 then
            key = id .. '~' .. redis.call('INCR', ns .. ':dead:seq')
            redis.call('HSET', ns .. ':dead:jobs', key, record)
          end
          redis.call('HSET', ns .. ':dead:raw', key, raw)
          redis.call('HSET', ns .. ':dead:where', key, queue .. '\\n' .. kind)
          redis.call('ZADD', ns .. ':dead', now, key)
          redis.call('HINCRBY', ns .. ':count:dead', queue, 1)
          if kind ~= '' then redis.call('HINCRBY', ns .. ':count:dead-type', kind, 1) end
          redis.call('HDEL', ns .. ':recoveries', id)
          local excess = redis.call('ZCARD', ns .. ':dead') - max_dead
          if excess > 0 then
            local old = redis.call('ZPOPMIN', ns .. ':dead', excess)
            for i = 1, #old, 2 do forget_dead(old[i]) end
            redis.call('INCRBY', ns .. ':dead:trimmed', excess)
          end
          return key
        end

        """

    /// Ids for entries that came without one: ULID layout (10 characters of milliseconds, then 16
    /// from the claim's sequence number and position), so they sort by time like JobRouter's own.
    static let identify = """
        local alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
        local function base32(value, width)
          local out = {}
          for i = width, 1, -1 do
            local digit = value % 32
            out[i] = string.sub(alphabet, digit + 1, digit + 1)
            value = (value - digit) / 32
          end
          return table.concat(out)
        end
        local function new_id(now, seq, n)
          return base32(now, 10) .. base32(seq, 11) .. base32(n, 5)
        end
        -- The entry's id, and the entry to store: one without an id gets one written into it (and
        -- an enqueued_at), so every later run, recovery and dead letter of it names the same job.
        local function identify(item, now, seq, n)
          -- JobRouter's own entries start with their id: plain finds, no pattern (this runs per job).
          if string.sub(item, 1, 7) == '{"id":"' then
            local close = string.find(item, '"', 8, true)
            if close and close > 8 then
              local id = string.sub(item, 8, close - 1)
              if not string.find(id, '\\\\', 1, true) then return id, item end
            end
          end
          local id
          local function usable(given) return type(given) == 'string' and given ~= '' and not string.find(given, '\\n', 1, true) end
          local head, rest = string.match(item, '^(%s*{)(.*)$')
          local ok, job = pcall(cjson.decode, item)
          if not head or not ok or type(job) ~= 'table' then return new_id(now, seq, n), item end
          local given = job.id
          if usable(given) then return given, item end
          if type(given) == 'number' and given == math.floor(given) and math.abs(given) < 2^53 then
            return string.format('%.0f', given), item
          end
          id = new_id(now, seq, n)
          -- Some other value: the worker dead-letters the entry under the new id, unchanged.
          if given ~= nil and given ~= cjson.null then return id, item end
          local extra = '"id":"' .. id .. '"'
          if job.enqueued_at == nil or job.enqueued_at == cjson.null then
            extra = extra .. ',"enqueued_at":' .. string.format('%.3f', now / 1000)
          end
          if string.match(rest, '^%s*}') then return id, head .. extra .. rest end
          return id, head .. extra .. ',' .. rest
        end

        """

    static func script(_ name: String, _ body: String) -> RedisScript {
        RedisScript(name: name, source: prelude + body)
    }

    /// Pushes entries to the tails of their queues with one wake-up token each, in one step: a
    /// chunk of a batch whose jobs go to several queues (interleaved priorities) is one call.
    /// KEYS: the queues, then (optional) a batch's progress key and (optional, after it) the hash of
    /// a batch with a callback, whose counts grow by the jobs pushed; ARGV: ns, the batch's last input
    /// line in this call ('' for none), progress ttl ms, how many queues (n), n counts, then the
    /// entries grouped by queue in KEYS order (each group in input order). Recording progress in
    /// the same step makes a batch re-run exact.
    static let push = script("push", """
        local n = tonumber(ARGV[4])
        local at = 5 + n
        for q = 1, n do
          local count = tonumber(ARGV[4 + q])
          if count > 0 then
            redis.call('RPUSH', KEYS[q], unpack(ARGV, at, at + count - 1))
            local tokens = {}
            for i = 1, count do tokens[i] = '1' end
            redis.call('RPUSH', ns .. ':wake:' .. KEYS[q], unpack(tokens))
            at = at + count
          end
        end
        if KEYS[n + 1] and ARGV[2] ~= '' then redis.call('SET', KEYS[n + 1], ARGV[2], 'PX', tonumber(ARGV[3])) end
        -- A batch with a callback: its jobs count as pending from the step that pushes them.
        if KEYS[n + 2] then
          redis.call('HINCRBY', KEYS[n + 2], 'total', at - 5 - n)
          redis.call('HINCRBY', KEYS[n + 2], 'pending', at - 5 - n)
        end
        return at - 5 - n
        """)

    /// Takes up to ARGV[2] entries from KEYS (queues in priority order: all it can from the first,
    /// then the next) and records each as in flight, under its owner's lease (set to run `lease
    /// ms` from now). A queue found empty has its wake-up tokens cleared. An entry over max_payload
    /// is dead-lettered here, never sent to the worker. ARGV: ns, max, worker, max_recoveries, lease
    /// ms, max_payload, max_dead, ledger bound (0: none; with one, an entry kept aside is a
    /// `malformed` attempt record), owner (the claim loop: `worker#n`; the worker when absent).
    /// Returns the call's token prefix (`OWNER/SEQ.`, '' when nothing was taken), then for each
    /// queue that gave entries, `queue, how many` and a pair per entry: `id, entry`, or for one
    /// kept aside here a line break and its dead-letter key, then the reason (no id holds a line
    /// break); for a queue key that is not a list, `queue, '!', error`. The N-th pair of the call
    /// (from 1, kept-aside ones counted) is claim `prefix .. N`: no token is sent, nor a queue per
    /// entry.
    static let claim = RedisScript(name: "claim", source: prelude + identify + """
        -- A claim's number within its call, written without Lua's number formatting (one sprintf
        -- per job otherwise: 3.5 % of Redis' CPU in a drain).
        local char = string.char
        local function decimal(n)
          if n < 10 then return char(48 + n) end
          if n < 100 then return char(48 + (n - n % 10) / 10, 48 + n % 10) end
          return tostring(n)
        end
        local out = {''}
        local max = tonumber(ARGV[2])
        local max_payload = tonumber(ARGV[6])
        local now = now_ms()
        -- Formatted once: a number handed to redis.call is formatted again on every use.
        local deadline = tostring(now + tonumber(ARGV[5]))
        local taken = 0
        local seq = nil
        local owner = ARGV[9] or ARGV[3]
        local held = false
        -- Paused queues (`jobrouter pause`) are skipped, their wake-up tokens dropped.
        local paused = redis.call('EXISTS', ns .. ':paused') == 1
        for _, queue in ipairs(KEYS) do
          if taken >= max then break end
          local skip = paused and redis.call('SISMEMBER', ns .. ':paused', queue) == 1
          if skip then redis.call('DEL', ns .. ':wake:' .. queue) else
          -- A key that is not a list must not end the script half-way (what it popped before would
          -- sit in flight with nobody to run it): it is reported, and the other queues go on.
          local popped, items = pcall(redis.call, 'LPOP', queue, max - taken)
          if not popped then
            out[#out + 1] = queue
            out[#out + 1] = '!'
            out[#out + 1] = tostring(items['err'] or items)
            items = nil
          end
          if items then
            -- Per job only what differs: the token's prefix (its owner's, the call's number) is
            -- built once per call.
            if not seq then
              seq = redis.call('INCR', ns .. ':seq')
              out[1] = owner .. '/' .. seq .. '.'
            end
            local prefix = out[1]
            local here = 0
            local records = {}
            local head = '\t' .. queue .. '\\n' .. ARGV[3] .. '\\n' .. ARGV[4] .. '\\n'
            local n = #out
            out[n + 1], out[n + 2] = queue, tostring(#items)
            n = n + 2
            for _, item in ipairs(items) do
              taken = taken + 1
              if #item > max_payload then
                local id = new_id(now, seq, taken)
                local reason = 'entry is ' .. #item .. ' bytes, over max_payload (' .. max_payload .. ' bytes); kept unread'
                local record = cjson.encode({id = id, queue = queue, reason = reason})
                local key = bury(id, queue, '', record, item, now, tonumber(ARGV[7]))
                out[n + 1], out[n + 2] = '\\n' .. key, reason
                n = n + 2
                log_attempt(script_record(id, key, 'malformed', queue, ARGV[3], '', reason, now, false), tonumber(ARGV[8] or '0'))
              else
                local token = prefix .. decimal(taken)
                local id, entry = identify(item, now, seq, taken)
                local at = here * 2
                records[at + 1], records[at + 2] = token, head .. id .. '\\n' .. entry
                here = here + 1
                out[n + 1], out[n + 2] = id, entry
                n = n + 2
              end
            end
            if here > 0 then
              many('HSET', ns .. ':inflight', records, 4000)
              redis.call('HINCRBY', ns .. ':count:inflight', queue, here)
              held = true
            end
          end
          if taken < max then redis.call('DEL', ns .. ':wake:' .. queue) end
          end
        end
        -- The owner's lease runs from now: one per call, however many it took.
        if held then redis.call('ZADD', ns .. ':owners', deadline, owner) end
        flush_attempts(tonumber(ARGV[8] or '0'))
        return out
        """)

    /// Finishes claims: ARGV: ns, ledger bound (0: none), the attempt records' lengths (comma-
    /// separated), the records back to back, how many values each claim sends (1: its token; 2: its
    /// token and the length of its attempt record, '0' for none), then the claims grouped by queue:
    /// queue, how many, and their values. Returns, when every claim was held (the usual call), how
    /// many there were, all now finished; otherwise per claim, in that order, 1 (done), 0 (its lease
    /// expired and recovery took it) or 2 (already settled, or named twice). A record goes to the
    /// ledger only with a claim it finished. Per claim only its token (and record length) is sent:
    /// each argument is a Redis string and a Lua string made and freed, in the script run most
    /// often after claim.
    static let complete = RedisScript(name: "complete", source: settlePrelude + recordParser + """
        local bound = tonumber(ARGV[2])
        local stride = tonumber(ARGV[5])
        local inflight = ns .. ':inflight'
        -- First only the tokens, where each queue's start among them and how many, and how many
        -- carry a record: nothing per claim that the usual call does not need.
        local all, groups, recorded = {}, {}, 0
        do
          local i, n = 6, 0
          while i <= #ARGV do
            local queue, count = ARGV[i], tonumber(ARGV[i + 1])
            i = i + 2
            groups[#groups + 1], groups[#groups + 2], groups[#groups + 3] = queue, n + 1, count
            for _ = 1, count do
              n = n + 1
              all[n] = ARGV[i]
              if stride == 2 and ARGV[i + 1] ~= '0' and (tonumber(ARGV[i + 1]) or 0) > 0 then recorded = recorded + 1 end
              i = i + stride
            end
          end
        end
        -- Recovered jobs' recovery counts are kept by job id, which only the in-flight records
        -- hold: read before the records go, and only while some recovered job is unfinished (the
        -- counts' hash exists; most drains never read one).
        if redis.call('EXISTS', ns .. ':recoveries') == 1 then
          local ids = {}
          for k, record in ipairs(many('HMGET', inflight, all, 4000)) do
            if record then
              local _, _, _, id = parse_record(record, all[k])
              ids[#ids + 1] = id
            end
          end
          if #ids > 0 then many('HDEL', ns .. ':recoveries', ids, 4000) end
        end
        -- A claim is held while its in-flight record is (its lease is its owner's). The records go
        -- in one HDEL per queue: when every one removes all of its queue's claims (nearly always),
        -- each claim was held and none is named twice (a repeated token is removed once), so all
        -- are finished with no check per claim, and the answer is their number.
        local removed, total = {}, 0
        for g = 1, #groups, 3 do
          local first, last = groups[g + 1], groups[g + 1] + groups[g + 2] - 1
          local count = 0
          for i = first, last, 4000 do
            count = count + redis.call('HDEL', inflight, unpack(all, i, math.min(i + 3999, last)))
          end
          if count > 0 then decrement(ns .. ':count:inflight', groups[g], count) end
          removed[g], total = count, total + count
        end
        if total == #all then
          log_attempts(ARGV[3], ARGV[4], recorded, bound)
          flush_attempts(bound)
          return #all
        end
        -- Otherwise each claim is answered on its own, from what is known once the records are
        -- gone: one taken by recovery (`NS:lost`) 0; one named before in this call 2; any other by
        -- its queue's HDEL, 2 when it removed none (an earlier try of this call settled them all),
        -- else 1. When it removed some of them, which is not known: that is a settle retried after
        -- a lost reply, sent with new ones, and its claim is answered 1 too, its record sent again
        -- (the ledger keeps one per job and claim).
        local out, lengths, seen, queue_of = {}, {}, {}, {}
        do
          local i, j = 6, 0
          for g = 1, #groups, 3 do
            i = i + 2
            for _ = 1, groups[g + 2] do
              j = j + 1
              local token = all[j]
              if stride == 2 then lengths[j] = ARGV[i + 1] end
              if seen[token] then
                out[j] = 2
              elseif gone(token) == 0 then
                out[j] = 0
              else
                seen[token] = true
                queue_of[j] = g
              end
              i = i + stride
            end
          end
        end
        local recorded, all_settled = 0, true
        for j = 1, #all do
          local g = queue_of[j]
          if g then out[j] = removed[g] == 0 and 2 or 1 end
          local length = lengths[j]
          if length and length ~= '0' and (tonumber(length) or 0) > 0 then
            if out[j] == 1 then recorded = recorded + 1 else all_settled = false end
          end
        end
        if all_settled then
          log_attempts(ARGV[3], ARGV[4], recorded, bound)
        else
          local at = 1
          for j = 1, #all do
            local length = tonumber(lengths[j] or '0') or 0
            if length > 0 and out[j] == 1 then log_attempt(string.sub(ARGV[4], at, at + length - 1), bound) end
            at = at + length
          end
        end
        flush_attempts(bound)
        return out
        """)

    /// Moves a claimed job to the schedule for a later attempt. ARGV: ns, token, claim's queue,
    /// delay ms, queue, entry, ledger bound, attempt record. Returns 1, or what ``complete``
    /// returns for a claim that is gone.
    static let retry = script("retry", """
        if not release(ARGV[2], ARGV[3]) then return gone(ARGV[2]) end
        if redis.call('ZADD', ns .. ':scheduled', now_ms() + tonumber(ARGV[4]), ARGV[5] .. '\\n' .. ARGV[6]) == 1 then
          redis.call('HINCRBY', ns .. ':count:scheduled', ARGV[5], 1)
        end
        log_attempt(ARGV[8] or '', tonumber(ARGV[7] or '0'))
        flush_attempts(tonumber(ARGV[7] or '0'))
        return 1
        """)

    /// Puts claimed jobs back at the head of their queues, the first given ending up first.
    /// ARGV: ns, ledger bound, then per claim token, queue, entry, attempt record ('' for none).
    /// Returns how many were still this worker's.
    static let requeue = script("requeue", """
        local count = 0
        local bound = tonumber(ARGV[2])
        for i = #ARGV - 3, 3, -4 do
          if release(ARGV[i], ARGV[i + 1]) then
            redis.call('LPUSH', ARGV[i + 1], ARGV[i + 2])
            redis.call('RPUSH', ns .. ':wake:' .. ARGV[i + 1], '1')
            log_attempt(ARGV[i + 3], bound)
            count = count + 1
          end
        end
        flush_attempts(bound)
        return count
        """)

    /// Keeps a job that cannot run. ARGV: ns, token ('' for none), queue, id, type ('' unknown),
    /// record, raw entry, max_dead, ledger bound, attempt record. Returns {1, key}, or {0 or 2}
    /// when the claim was gone.
    /// ARGV[11] and ARGV[12] (optional): the unique lock the job holds and its batch ('' for none).
    static let deadLetter = script("dead-letter", identify + batchPrelude + """
        if ARGV[2] ~= '' and not release(ARGV[2], ARGV[3]) then return {gone(ARGV[2])} end
        local now = now_ms()
        local key = bury(ARGV[4], ARGV[3], ARGV[5], ARGV[6], ARGV[7], now, tonumber(ARGV[8]))
        release_unique(ARGV[11] or '', ARGV[4])
        if (ARGV[12] or '') ~= '' then batch_count(ARGV[12], ARGV[4], true, now) end
        log_attempt(ARGV[10] or '', tonumber(ARGV[9] or '0'))
        flush_attempts(tonumber(ARGV[9] or '0'))
        return {1, key}
        """)

    /// Pushes jobs relayed from an outbox, each at most once: `NS:relayed` (sorted set: row key →
    /// when pushed, ms) remembers what was pushed until the relay confirms it deleted the rows
    /// (``confirmRelayed``), or `window` passes. ARGV: ns, window ms, then per job: key, queue,
    /// entry, due ms ('' for now), job id, unique lock key ('' for none), lock lifetime ms. A due
    /// job goes to the schedule. Returns per job 1 (pushed), 0 (pushed before) or 2 (a unique job
    /// whose lock another job holds: not pushed).
    static let pushRelayed = script("push-relayed", """
        local now = now_ms()
        local relayed = ns .. ':relayed'
        redis.call('ZREMRANGEBYSCORE', relayed, '-inf', now - tonumber(ARGV[2]))
        local keys = {}
        for i = 3, #ARGV, 7 do keys[#keys + 1] = ARGV[i] end
        local seen = many('ZMSCORE', relayed, keys, 4000)
        -- One ZADD for the new keys and one RPUSH per queue (entries, then wake-up tokens), in order.
        local out, marks, lists, order, scheduled, taken = {}, {}, {}, {}, {}, {}
        for j, key in ipairs(keys) do
          local i = 3 + (j - 1) * 7
          local lock = ARGV[i + 5]
          local holder = lock ~= '' and redis.call('GET', lock) or nil
          if seen[j] or taken[key] then
            out[j] = 0
          elseif holder then
            -- A unique job whose lock another job holds: not pushed (the row is done), like an
            -- enqueue told `duplicate`.
            taken[key] = true
            out[j] = holder == ARGV[i + 4] and 0 or 2
            marks[#marks + 1] = now
            marks[#marks + 1] = key
          else
            taken[key] = true
            out[j] = 1
            marks[#marks + 1] = now
            marks[#marks + 1] = key
            if lock ~= '' then redis.call('SET', lock, ARGV[i + 4], 'PX', tonumber(ARGV[i + 6])) end
            local queue, entry, due = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
            if due ~= '' and tonumber(due) > now then
              if redis.call('ZADD', ns .. ':scheduled', tonumber(due), queue .. '\\n' .. entry) == 1 then
                scheduled[queue] = (scheduled[queue] or 0) + 1
              end
            else
              if not lists[queue] then
                lists[queue] = {}
                order[#order + 1] = queue
              end
              local list = lists[queue]
              list[#list + 1] = entry
            end
          end
        end
        if #marks > 0 then many('ZADD', relayed, marks, 4000) end
        for _, queue in ipairs(order) do
          local entries = lists[queue]
          many('RPUSH', queue, entries, 4000)
          local tokens = {}
          for k = 1, #entries do tokens[k] = '1' end
          many('RPUSH', ns .. ':wake:' .. queue, tokens, 4000)
        end
        for queue, count in pairs(scheduled) do redis.call('HINCRBY', ns .. ':count:scheduled', queue, count) end
        return out
        """)

    /// Adds entries to the schedule. ARGV: ns, 'in' or 'at', ms, queue, entry, queue, entry, …
    static let schedule = script("schedule", """
        local due = tonumber(ARGV[3])
        if ARGV[2] == 'in' then due = now_ms() + due end
        local added = {}
        for i = 4, #ARGV, 2 do
          if redis.call('ZADD', ns .. ':scheduled', due, ARGV[i] .. '\\n' .. ARGV[i + 1]) == 1 then
            added[ARGV[i]] = (added[ARGV[i]] or 0) + 1
          end
        end
        for queue, count in pairs(added) do redis.call('HINCRBY', ns .. ':count:scheduled', queue, count) end
        return due
        """)

    /// Moves due scheduled entries to the tail of their queues; each moves exactly once however many
    /// processes run this. ARGV: ns, limit. Returns {moved, ms until the next due entry or -1}.
    static let moveDue = script("move-due", """
        local now = now_ms()
        local due = redis.call('ZRANGEBYSCORE', ns .. ':scheduled', '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
        local moved = {}
        for _, member in ipairs(due) do
          redis.call('ZREM', ns .. ':scheduled', member)
          local cut = string.find(member, '\\n', 1, true)
          local queue = string.sub(member, 1, cut - 1)
          redis.call('RPUSH', queue, string.sub(member, cut + 1))
          redis.call('RPUSH', ns .. ':wake:' .. queue, '1')
          moved[queue] = (moved[queue] or 0) + 1
        end
        for queue, count in pairs(moved) do decrement(ns .. ':count:scheduled', queue, count) end
        local next = redis.call('ZRANGE', ns .. ':scheduled', 0, 0, 'WITHSCORES')
        local wait = -1
        if next[2] then wait = math.max(0, tonumber(next[2]) - now) end
        return {#due, wait}
        """)

    /// Puts jobs whose lease expired (their worker stopped heartbeating) back at the head of their
    /// queue, or dead-letters them as poison once recovered more than their group's max_recoveries.
    /// Every entry has an id from its claim, so entries that came without one are counted too.
    /// Takes at most `limit` jobs: those of expired claims made before owner leases (`NS:leases`),
    /// then every in-flight record of each owner whose lease expired (found by their token's
    /// prefix; the owner's lease goes once none is left). ARGV: ns, limit, max_dead, ledger bound
    /// (0: none), ledger keeps payloads ('1'/'0'): each job taken back is a `recovered` (or
    /// poison: `dead`) attempt record of the worker that lost it; pages of the in-flight table to
    /// scan at most (1,000 records each; default 5). Returns {{id, queue, …} recovered, {id,
    /// queue, …} poisoned}.
    static let recover = script("recover", identify + batchPrelude + """
        local now = now_ms()
        local limit = tonumber(ARGV[2])
        local recovered, poisoned = {}, {}
        local bound, keep = tonumber(ARGV[4] or '0'), ARGV[5] == '1'
        local taken = 0
        local function take(token, record)
          taken = taken + 1
          local queue, worker, max_recoveries, id, entry = parse_record(record, token)
          release(token, queue)
          redis.call('ZADD', ns .. ':lost', now, token)
          local count = redis.call('HINCRBY', ns .. ':recoveries', id, 1)
          if count > max_recoveries then
            local reason = 'poison: its worker stopped while running it ' .. count .. ' times (max_recoveries ' .. max_recoveries .. ')'
            local dead = {id = id, queue = queue, reason = reason}
            local kind = ''
            local ok, job = pcall(cjson.decode, entry)
            if ok and type(job) == 'table' then
              if type(job.type) == 'string' then kind = job.type; dead.type = job.type end
              if type(job.attempt) == 'number' then dead.attempt = job.attempt end
            end
            bury(id, queue, kind, cjson.encode(dead), entry, now, tonumber(ARGV[3]))
            entry_dies(entry, id, now)
            if bound > 0 then log_attempt(script_record(id, token, 'dead', queue, worker, entry, reason, now, keep), bound) end
            poisoned[#poisoned + 1] = id
            poisoned[#poisoned + 1] = queue
          else
            redis.call('LPUSH', queue, entry)
            redis.call('RPUSH', ns .. ':wake:' .. queue, '1')
            if bound > 0 then
              log_attempt(script_record(id, token, 'recovered', queue, worker, entry,
                'its worker stopped heartbeating (lease expired); put back at the head of its queue', now, keep), bound)
            end
            recovered[#recovered + 1] = id
            recovered[#recovered + 1] = queue
          end
        end
        for _, token in ipairs(redis.call('ZRANGEBYSCORE', ns .. ':leases', '-inf', now, 'LIMIT', 0, limit)) do
          local record = redis.call('HGET', ns .. ':inflight', token)
          if record then take(token, record) end
          redis.call('ZREM', ns .. ':leases', token)
        end
        -- An owner's claims are the in-flight records under its prefix: scanned once per owner
        -- that stopped (rare), not kept in a list per owner that every claim and settle would
        -- write. A look scans at most `pages` pages of the in-flight table (~0.7 µs per record
        -- there), so the server never stalls long however many jobs are in flight; the scan goes
        -- on at the next look from where it stopped (`NS:owners:scan` owner → its place),
        -- unless the owner's lease changed meanwhile (it claimed again: records may have been
        -- added behind the cursor), and then starts over. It starts over too on another server
        -- (`deadline@run_id cursor`): a cursor is a place in one server's hash table, whose layout
        -- a restart or a failover changes (its hash seed is random), so a pass carried on there
        -- would skip records (a reaper from before reads no deadline in that, and starts over). A
        -- full pass finds every record the owner held (none is added while its lease stays
        -- expired), and then its lease goes.
        local pages = tonumber(ARGV[6] or '5')
        local expired = redis.call('ZRANGEBYSCORE', ns .. ':owners', '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
        -- This server's run_id, read (`INFO`, ~8 µs) only for a pass that resumes or is left.
        local server = nil
        local function server_id()
          server = server or string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or '?'
          return server
        end
        for o = 1, #expired, 2 do
          if taken >= limit or pages <= 0 then break end
          local owner, deadline = expired[o], expired[o + 1]
          local pattern = string.gsub(owner, '[%*%?%[%]\\\\]', '\\\\%0') .. '/*'
          local cursor = '0'
          local saved = redis.call('HGET', ns .. ':owners:scan', owner)
          if saved then
            local at, on, from = string.match(saved, '^([^@ ]+)@(%S+) (%d+)$')
            if at == deadline and on == server_id() then cursor = from end
          end
          local left = false
          repeat
            local from = cursor
            local page = redis.call('HSCAN', ns .. ':inflight', cursor, 'MATCH', pattern, 'COUNT', 1000)
            pages = pages - 1
            cursor = page[1]
            local found = page[2]
            for i = 1, #found, 2 do
              -- Stopped mid-page: the next look reads this page again (what was taken is gone).
              if taken >= limit then left = true; cursor = from; break end
              -- A page may name a field twice (the hash resized mid-scan): taken once.
              if redis.call('HEXISTS', ns .. ':inflight', found[i]) == 1 then take(found[i], found[i + 1]) end
            end
          until cursor == '0' or left or pages <= 0
          if cursor == '0' and not left then
            redis.call('ZREM', ns .. ':owners', owner)
            redis.call('HDEL', ns .. ':owners:scan', owner)
          else
            redis.call('HSET', ns .. ':owners:scan', owner, deadline .. '@' .. server_id() .. ' ' .. cursor)
          end
        end
        redis.call('ZREMRANGEBYSCORE', ns .. ':lost', '-inf', now - 3600000)
        flush_attempts(bound)
        return {recovered, poisoned}
        """)

    /// Records a worker process as alive and extends the leases of its claim loops that hold
    /// claims (each token names its owner). ARGV: ns, worker id, description JSON, description
    /// ttl ms, lease ms, token, token, … Returns how many owners' leases were extended.
    static let heartbeat = script("heartbeat", """
        local now = now_ms()
        redis.call('ZADD', ns .. ':workers', now, ARGV[2])
        redis.call('SET', ns .. ':worker:' .. ARGV[2], ARGV[3], 'PX', tonumber(ARGV[4]))
        redis.call('ZREMRANGEBYSCORE', ns .. ':workers', '-inf', now - 86400000)
        local deadline = now + tonumber(ARGV[5])
        local renewed, owners = 0, {}
        for i = 6, #ARGV do
          local owner = string.match(ARGV[i], '^(.*)/')
          if owner and not owners[owner] then
            owners[owner] = true
            -- Only a lease that is still there: one recovery took has nothing left to extend.
            renewed = renewed + redis.call('ZADD', ns .. ':owners', 'XX', 'CH', deadline, owner)
          end
        end
        return renewed
        """)

    /// A worker process that stopped cleanly: no longer listed as live, and its claim loops' leases
    /// end now, so a claim it could not put back (the server away at its stop) is recovered at the
    /// next look rather than when the lease would have run out; an owner with none left is removed
    /// by that look. ARGV: ns, worker id.
    static let workerStopped = RedisScript(name: "worker-stopped", source: """
        local ns, id = ARGV[1], ARGV[2]
        redis.call('ZREM', ns .. ':workers', id)
        redis.call('DEL', ns .. ':worker:' .. id)
        local mine = id .. '#'
        for _, owner in ipairs(redis.call('ZRANGE', ns .. ':owners', 0, -1)) do
          if string.sub(owner, 1, #mine) == mine then redis.call('ZADD', ns .. ':owners', 'XX', 0, owner) end
        end
        return 1
        """)

    /// Sends a dead job to a queue. ARGV: ns, key, queue, entry. Returns 0 when there is no such record.
    /// ARGV[5..7] (optional): a unique job's lock, its id and the lock's lifetime ms: the lock is
    /// taken again when free (a job holding it meanwhile keeps it; the retry goes in all the same).
    static let resurrect = script("resurrect", """
        if redis.call('HEXISTS', ns .. ':dead:jobs', ARGV[2]) == 0 then return 0 end
        forget_dead(ARGV[2])
        redis.call('ZREM', ns .. ':dead', ARGV[2])
        if (ARGV[5] or '') ~= '' then redis.call('SET', ARGV[5], ARGV[6], 'PX', tonumber(ARGV[7]), 'NX') end
        redis.call('RPUSH', ARGV[3], ARGV[4])
        redis.call('RPUSH', ns .. ':wake:' .. ARGV[3], '1')
        return 1
        """)

    /// Deletes up to ARGV[3] dead records older than ARGV[2] ms since the epoch. Returns how many.
    /// Runs a scheduled job now (to the tail of its queue) or deletes it. ARGV: ns, due ms, job id,
    /// 'run' or 'delete'. Returns 1, or 0 when it is no longer scheduled at that time.
    static let scheduledAction = script("scheduled-action", """
        local scheduled = ns .. ':scheduled'
        for _, member in ipairs(redis.call('ZRANGEBYSCORE', scheduled, ARGV[2], ARGV[2])) do
          local cut = string.find(member, '\\n', 1, true)
          if cut then
            local queue, entry = string.sub(member, 1, cut - 1), string.sub(member, cut + 1)
            local ok, job = pcall(cjson.decode, entry)
            if ok and type(job) == 'table' and job.id == ARGV[3] then
              redis.call('ZREM', scheduled, member)
              decrement(ns .. ':count:scheduled', queue, 1)
              if ARGV[4] == 'run' then
                redis.call('RPUSH', queue, entry)
                redis.call('RPUSH', ns .. ':wake:' .. queue, '1')
              end
              return 1
            end
          end
        end
        return 0
        """)

    /// Finds a job waiting in a queue or in the schedule by its id, looking at most at the first
    /// ARGV[3] entries of each (bounded: this blocks the server while it looks). KEYS: the
    /// queues; ARGV: ns, id, limit. Returns {'queue', queue, position, entry} or
    /// {'scheduled', queue, due ms, entry}, or {} when not found there.
    static let locate = script("locate", """
        local needle = '"id":' .. cjson.encode(ARGV[2])
        local limit = tonumber(ARGV[3])
        for _, queue in ipairs(KEYS) do
          local ok, entries = pcall(redis.call, 'LRANGE', queue, 0, limit - 1)
          if ok then
            for position, entry in ipairs(entries) do
              if string.find(entry, needle, 1, true) then return {'queue', queue, tostring(position - 1), entry} end
            end
          end
        end
        local members = redis.call('ZRANGE', ns .. ':scheduled', 0, limit - 1, 'WITHSCORES')
        for i = 1, #members, 2 do
          if string.find(members[i], needle, 1, true) then
            local cut = string.find(members[i], '\\n', 1, true)
            if cut then return {'scheduled', string.sub(members[i], 1, cut - 1), members[i + 1], string.sub(members[i], cut + 1)} end
          end
        end
        return {}
        """)

    /// Deletes one dead record. ARGV: ns, key. Returns 1, or 0 when there was none.
    static let forgetDead = script("forget-dead", """
        if redis.call('ZREM', ns .. ':dead', ARGV[2]) == 0 then return 0 end
        forget_dead(ARGV[2])
        return 1
        """)

    static let purgeDead = script("purge-dead", """
        local keys = redis.call('ZRANGEBYSCORE', ns .. ':dead', '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
        for _, key in ipairs(keys) do
          forget_dead(key)
          redis.call('ZREM', ns .. ':dead', key)
        end
        return #keys
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
        limiter_admitted(ARGV[2], now, 1)
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
        limiter_admitted(ARGV[2], now, -1)
        return 1
        """)

    /// Figures per queue (KEYS), from the counters the other scripts keep: O(queues + workers),
    /// whatever the number of jobs. A key that is not a list is reported by its type, untouched.
    /// Returns {{queue, depth or -1, head's enqueued_at or type or false, inflight, scheduled, dead,
    /// head's due_at or false}…}, {{worker, heartbeat ms, description or false}…}, now ms, trimmed,
    /// {type, dead, type, dead…}. The head's times are its own members, read by decoding it (its
    /// payload may have members of the same names): one entry per queue.
    static let stats = script("stats", """
        local function count(hash, field) return tonumber(redis.call('HGET', ns .. hash, field) or '0') end
        local queues = {}
        for _, queue in ipairs(KEYS) do
          local kind = redis.call('TYPE', queue)['ok']
          local depth, head, due = -1, kind, false
          if kind == 'list' or kind == 'none' then
            depth = redis.call('LLEN', queue)
            head = false
            local first = redis.call('LINDEX', queue, 0)
            local ok, job = false, nil
            if first then ok, job = pcall(cjson.decode, first) end
            if ok and type(job) == 'table' then
              local at = job.enqueued_at
              if type(at) == 'string' then head = at elseif type(at) == 'number' then head = string.format('%.3f', at) end
              if type(job.due_at) == 'string' then due = job.due_at end
            end
          end
          queues[#queues + 1] = {queue, depth, head, count(':count:inflight', queue), count(':count:scheduled', queue),
                                 count(':count:dead', queue), due}
        end
        local workers = {}
        local listed = redis.call('ZRANGE', ns .. ':workers', 0, -1, 'WITHSCORES')
        for i = 1, #listed, 2 do
          workers[#workers + 1] = {listed[i], listed[i + 1], redis.call('GET', ns .. ':worker:' .. listed[i])}
        end
        return {queues, workers, now_ms(), tonumber(redis.call('GET', ns .. ':dead:trimmed') or '0'),
                redis.call('HGETALL', ns .. ':count:dead-type')}
        """)

    /// Adds per-minute throughput counts. KEYS: one minute hash each; ARGV: ns, ttl seconds, then
    /// for each key in order: how many field/increment pairs follow, and the pairs.
    static let addThroughput = script("add-throughput", """
        local ttl = tonumber(ARGV[2])
        local at = 3
        for _, key in ipairs(KEYS) do
          local n = tonumber(ARGV[at])
          for i = 1, n do
            redis.call('HINCRBY', key, ARGV[at + 2 * i - 1], ARGV[at + 2 * i])
          end
          at = at + 1 + 2 * n
          if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ttl) end
        end
        return #KEYS
        """)

    /// Reads per-minute throughput. KEYS: the minute hashes; returns each one's HGETALL, in order.
    static let readThroughput = RedisScript(name: "read-throughput", source: """
        local result = {}
        for i, key in ipairs(KEYS) do result[i] = redis.call('HGETALL', key) end
        return result
        """)

    /// Forgets stored attempt records: acknowledges the entries for the consumer group and deletes
    /// them, taking their records off the count. KEYS: the stream, its record counter. ARGV: per
    /// entry its id and how many records it holds (-1: read from the entry).
    static let acknowledgeAttempts = RedisScript(name: "ack-attempts", source: """
        local ids = {}
        for i = 1, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
        redis.call('XACK', KEYS[1], 'ledger', unpack(ids))
        local deleted = 0
        for i = 1, #ARGV, 2 do
          local n = tonumber(ARGV[i + 1]) or -1
          if n < 0 then
            -- Not known to the caller: field n says (before it: one record per field).
            local entry = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])[1]
            n = 0
            if entry then
              n = #entry[2] / 2
              if entry[2][1] == 'n' then n = tonumber(entry[2][2]) or 0 end
            end
          end
          if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then deleted = deleted + n end
        end
        if deleted > 0 and redis.call('DECRBY', KEYS[2], deleted) < 0 then redis.call('SET', KEYS[2], 0) end
        return #ids
        """)
}
