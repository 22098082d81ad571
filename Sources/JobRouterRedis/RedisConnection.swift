import CHiredis
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import JobRouter

/// One hiredis connection. Owns its `redisContext` and frees it in `deinit`.
///
/// Blocking and not `Sendable`: it lives on one ``RedisConnectionThread`` and is created there.
/// A call that fails with an error whose ``RedisError/closesConnection`` is `true` leaves it unusable;
/// its owner drops it and connects again.
public final class RedisConnection {
    private let context: UnsafeMutablePointer<redisContext>
    /// The server this is connected to.
    public let endpoint: RedisEndpoint
    private let timeout: Duration
    private var scriptHashes: [String: String] = [:]
    private var cachedClientID: Int64?

    /// Connects, authenticates and selects the database. `timeout` bounds the connect and every
    /// later read or write (a blocking command must wait less than this).
    public init(endpoint: RedisEndpoint, timeout: Duration) throws(RedisError) {
        signal(SIGPIPE, SIG_IGN) // a server that goes away must be an error, not the end of the process
        self.endpoint = endpoint
        self.timeout = timeout
        let tv = Self.timeval(timeout)
        guard let context = redisConnectWithTimeout(endpoint.host, Int32(endpoint.port), tv) else {
            throw RedisError(code: .connection, message: "cannot allocate a connection", server: endpoint.description)
        }
        if context.pointee.err != 0 {
            let message = Self.errorText(context)
            redisFree(context)
            throw RedisError(code: .connection, message: message, server: endpoint.description)
        }
        self.context = context
        // An authenticated connection must not leak into `exec` children (hiredis does not set it).
        _ = fcntl(context.pointee.fd, F_SETFD, FD_CLOEXEC)
        redisSetTimeout(context, tv)
        redisEnableKeepAlive(context)
        do {
            if let password = endpoint.password {
                let auth = endpoint.username.map { ["AUTH", $0, password] } ?? ["AUTH", password]
                try checkOK(try command(auth), "AUTH")
            }
            if endpoint.database != 0 {
                try checkOK(try command(["SELECT", String(endpoint.database)]), "SELECT")
            }
        } catch {
            // deinit frees the context; report the failure as a connection failure.
            throw RedisError(code: .connection, message: error.message, command: error.command, server: endpoint.description)
        }
    }

    deinit {
        redisFree(context)
    }

    /// Sends one command and waits for its reply. An error reply throws ``RedisError/Code/server``.
    public func command(_ arguments: [String]) throws(RedisError) -> RedisReply {
        try command(bytes: arguments.map { Array($0.utf8) })
    }

    /// Sends one command with binary-safe arguments and waits for its reply.
    public func command(bytes arguments: [[UInt8]]) throws(RedisError) -> RedisReply {
        try command(bytes: arguments, script: nil)
    }

    /// In a cluster, a `-ASK` reply (the slot is being migrated and the key is on the new node
    /// already) is followed once: `ASKING` and the same command on that node (with `script` loaded
    /// there first). A `-MOVED` reply marks the slot map stale and closes this connection (see
    /// ``RedisError/closesConnection``): the next connection goes to the slot's new primary.
    private func command(bytes arguments: [[UInt8]], script: RedisScript?) throws(RedisError) -> RedisReply {
        let name = Self.commandName(arguments)
        let raw = Self.withArgv(arguments) { argc, argv, lengths in
            redisCommandArgv(context, argc, argv, lengths)
        }
        guard let raw else { throw connectionError(name) }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(raw) }
        let value = RedisReply(reply)
        if case .error(let message) = value {
            if let cluster = endpoint.cluster {
                if message.hasPrefix("ASK "), let target = Self.redirectTarget(message) {
                    return try ask(target, arguments, script: script)
                }
                let error = RedisError(code: .server, message: message, command: name, server: endpoint.description)
                if error.isRedirect || message.hasPrefix("CLUSTERDOWN") { ClusterSlotMap.shared(cluster.seeds).markStale() }
                throw error
            }
            throw RedisError(code: .server, message: message, command: name, server: endpoint.description)
        }
        return value
    }

    /// Runs `arguments` once on `target` after `ASKING` (the `-ASK` redirection of a migrating slot).
    private func ask(_ target: SentinelTarget.Address, _ arguments: [[UInt8]], script: RedisScript?) throws(RedisError) -> RedisReply {
        var node = endpoint
        node.host = target.host
        node.port = target.port
        node.cluster = nil
        let connection = try RedisConnection(endpoint: node, timeout: timeout)
        if let script { _ = try connection.command(["SCRIPT", "LOAD", script.source]) }
        _ = try connection.command(["ASKING"])
        return try connection.command(bytes: arguments)
    }

    /// Sends every command before reading any reply (one round trip), then returns the replies in
    /// order. Error replies are returned as ``RedisReply/error(_:)``, not thrown, so the caller sees
    /// which command failed.
    public func pipeline(_ commands: [[[UInt8]]]) throws(RedisError) -> [RedisReply] {
        for arguments in commands {
            let status = Self.withArgv(arguments) { argc, argv, lengths in
                redisAppendCommandArgv(context, argc, argv, lengths)
            }
            if status != REDIS_OK { throw connectionError(Self.commandName(arguments)) }
        }
        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        for arguments in commands {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
                throw connectionError(Self.commandName(arguments))
            }
            replies.append(RedisReply(raw.assumingMemoryBound(to: redisReply.self)))
            freeReplyObject(raw)
        }
        if let cluster = endpoint.cluster {
            // The slot moved: nothing of it runs here any more. Said as the redirect it is.
            for case .error(let message) in replies {
                let error = RedisError(code: .server, message: message, command: Self.commandName(commands[0]), server: endpoint.description)
                if error.isRedirect {
                    ClusterSlotMap.shared(cluster.seeds).markStale()
                    throw error
                }
            }
        }
        return replies
    }

    /// Runs a Lua script by its SHA1, loading it first on this connection (and again after the
    /// server lost it, e.g. on restart or `SCRIPT FLUSH`).
    public func evaluate(_ script: RedisScript, keys: [String], arguments: [[UInt8]]) throws(RedisError) -> RedisReply {
        for _ in 0..<2 {
            let hash: String
            if let known = scriptHashes[script.name] {
                hash = known
            } else {
                let loaded = try command(["SCRIPT", "LOAD", script.source])
                guard case .string(let bytes) = loaded else {
                    throw RedisError(code: .unexpectedReply, message: "SCRIPT LOAD returned no hash", command: "SCRIPT LOAD")
                }
                hash = String(decoding: bytes, as: UTF8.self)
                scriptHashes[script.name] = hash
            }
            let call = [Array("EVALSHA".utf8), Array(hash.utf8), Array(String(keys.count).utf8)]
                + keys.map { Array($0.utf8) } + arguments
            do {
                return try command(bytes: call, script: script)
            } catch where error.code == .server && error.message.hasPrefix("NOSCRIPT") {
                scriptHashes[script.name] = nil
            } catch {
                throw RedisError(code: error.code, message: error.message, command: "script \(script.name)", server: error.server)
            }
        }
        throw RedisError(code: .server, message: "the server keeps losing the script", command: "script \(script.name)")
    }

    /// Most script calls written before their replies are read: bounds what one bulk enqueue holds
    /// in hiredis' buffers and in the server's query buffer (16 calls of up to 1,000 jobs each).
    public static let pipelineDepth = 16

    /// Runs a script once per call, ``pipelineDepth`` calls per round trip (loading it first if
    /// needed). Throws the first error reply.
    public func evaluatePipelined(_ script: RedisScript, _ calls: [(keys: [String], arguments: [[UInt8]])]) throws(RedisError) {
        guard !calls.isEmpty else { return }
        if calls.count > Self.pipelineDepth {
            for start in stride(from: 0, to: calls.count, by: Self.pipelineDepth) {
                try evaluatePipelined(script, Array(calls[start..<min(start + Self.pipelineDepth, calls.count)]))
            }
            return
        }
        if scriptHashes[script.name] == nil {
            _ = try evaluate(script, keys: calls[0].keys, arguments: calls[0].arguments)
            try evaluatePipelined(script, Array(calls.dropFirst()))
            return
        }
        let hash = Array((scriptHashes[script.name] ?? "").utf8)
        let commands = calls.map { call in
            [Array("EVALSHA".utf8), hash, Array(String(call.keys.count).utf8)] + call.keys.map { Array($0.utf8) } + call.arguments
        }
        for (index, reply) in try pipeline(commands).enumerated() {
            if case .error(let message) = reply {
                if endpoint.cluster != nil, message.hasPrefix("ASK "), let target = Self.redirectTarget(message) {
                    // This call was not run here (a migrating slot): run it on the node named.
                    if case .error(let again) = try ask(target, commands[index], script: script) {
                        throw RedisError(code: .server, message: again, command: "script \(script.name)", server: "\(target)")
                    }
                    continue
                }
                if message.hasPrefix("NOSCRIPT") { scriptHashes[script.name] = nil }
                let error = RedisError(code: .server, message: message, command: "script \(script.name)", server: endpoint.description)
                if let cluster = endpoint.cluster, error.isRedirect || message.hasPrefix("CLUSTERDOWN") {
                    ClusterSlotMap.shared(cluster.seeds).markStale()
                }
                throw error
            }
        }
    }

    /// This connection's id on the server (`CLIENT ID`), for `CLIENT UNBLOCK` from another connection.
    public func clientID() throws(RedisError) -> Int64 {
        if let cachedClientID { return cachedClientID }
        let id = try command(["CLIENT", "ID"]).integer(for: "CLIENT ID")
        cachedClientID = id
        return id
    }

    // MARK: hiredis plumbing

    private func checkOK(_ reply: RedisReply, _ name: String) throws(RedisError) {
        guard case .status("OK") = reply else {
            throw RedisError(code: .unexpectedReply, message: "expected OK", command: name, server: endpoint.description)
        }
    }

    private func connectionError(_ name: String) -> RedisError {
        let code: RedisError.Code = context.pointee.err == REDIS_ERR_PROTOCOL ? .protocol : .io
        return RedisError(code: code, message: Self.errorText(context), command: name, server: endpoint.description)
    }

    private static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        let text = withUnsafeBytes(of: context.pointee.errstr) { buffer in
            String(decoding: buffer.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        switch (Int32(context.pointee.err), text) {
        case (REDIS_ERR_EOF, _): return "the server closed the connection"
        case (_, "Resource temporarily unavailable"): return "timed out waiting for the server"
        case (_, ""): return "error \(context.pointee.err)"
        default: return text
        }
    }

    private static func commandName(_ arguments: [[UInt8]]) -> String {
        arguments.first.map { String(decoding: $0, as: UTF8.self).uppercased() } ?? ""
    }

    private static func timeval(_ duration: Duration) -> Glibc.timeval {
        let micros = max(duration.inMilliseconds, 1) * 1000
        return Glibc.timeval(tv_sec: Int(micros / 1_000_000), tv_usec: Int(micros % 1_000_000))
    }

    /// Lays the arguments out in one buffer and calls `body` with hiredis's argc/argv/argvlen.
    private static func withArgv<Result>(
        _ arguments: [[UInt8]],
        _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> Result
    ) -> Result {
        let total = arguments.reduce(0) { $0 + $1.count }
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(total, 1), alignment: 1)
        defer { storage.deallocate() }
        var pointers: [UnsafePointer<CChar>?] = []
        var lengths: [Int] = []
        pointers.reserveCapacity(arguments.count)
        lengths.reserveCapacity(arguments.count)
        var offset = 0
        for argument in arguments {
            argument.withUnsafeBytes { bytes in
                if let base = bytes.baseAddress { (storage + offset).copyMemory(from: base, byteCount: bytes.count) }
            }
            pointers.append(UnsafePointer((storage + offset).assumingMemoryBound(to: CChar.self)))
            lengths.append(argument.count)
            offset += argument.count
        }
        return pointers.withUnsafeMutableBufferPointer { argv in
            lengths.withUnsafeBufferPointer { lengthBuffer in
                // Both buffers hold at least one element: every command has a name.
                body(Int32(arguments.count), argv.baseAddress!, lengthBuffer.baseAddress!)
            }
        }
    }
}

@available(*, unavailable)
extension RedisConnection: Sendable {}

/// A Lua script run with `EVALSHA`.
public struct RedisScript: Sendable {
    /// A short name for errors and the hash cache.
    public var name: String
    /// The Lua source.
    public var source: String

    /// Makes a script.
    public init(name: String, source: String) {
        self.name = name
        self.source = source
    }
}
