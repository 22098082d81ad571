/// The Lua scripts behind every multi-step change to stored jobs: each runs atomically on the server.
enum RedisScripts {
    /// Takes up to ARGV[1] entries from KEYS in order: all it can from the first queue, then the next.
    /// Returns a flat array `queue, entry, queue, entry, …`. This is the claim step that leases will extend.
    static let claim = RedisScript(name: "claim", source: """
        local max = tonumber(ARGV[1])
        local out = {}
        local taken = 0
        for _, key in ipairs(KEYS) do
          if taken >= max then break end
          local items = redis.call('LPOP', key, max - taken)
          if items then
            for _, item in ipairs(items) do
              out[#out + 1] = key
              out[#out + 1] = item
            end
            taken = taken + #items
          end
        end
        return out
        """)

    /// Keeps a dead letter: KEYS[1] the index (sorted set by time), KEYS[2] the records (hash by id);
    /// ARGV: id, time in ms, record JSON.
    static let deadLetter = RedisScript(name: "dead-letter", source: """
        redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
        redis.call('ZADD', KEYS[1], tonumber(ARGV[2]), ARGV[1])
        return redis.call('ZCARD', KEYS[1])
        """)
}
