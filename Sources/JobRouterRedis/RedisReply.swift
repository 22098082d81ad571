import CHiredis

/// A Redis reply, copied out of hiredis's reply object.
public enum RedisReply: Sendable, Equatable {
    /// A bulk string (binary safe).
    case string([UInt8])
    /// A status reply such as `OK`.
    case status(String)
    /// An integer.
    case integer(Int64)
    /// An array of replies.
    case array([RedisReply])
    /// A nil reply (missing key, timed-out blocking pop).
    case null
    /// An error reply.
    case error(String)

    /// The integer, when this is one.
    public var integerValue: Int? {
        if case .integer(let value) = self { return Int(value) }
        return nil
    }

    /// An array's bulk strings as text (invalid UTF-8 repaired), skipping anything else.
    public var textValues: [String] {
        guard case .array(let items) = self else { return [] }
        return items.compactMap { item in
            if case .string(let bytes) = item { return String(decoding: bytes, as: UTF8.self) }
            return nil
        }
    }

    init(_ reply: UnsafePointer<redisReply>) {
        let value = reply.pointee
        switch value.type {
        case REDIS_REPLY_STRING:
            self = .string(value.str.map { pointer in
                Array(UnsafeRawBufferPointer(start: pointer, count: value.len))
            } ?? [])
        case REDIS_REPLY_STATUS:
            self = .status(value.str.map { String(cString: $0) } ?? "")
        case REDIS_REPLY_ERROR:
            self = .error(value.str.map { String(cString: $0) } ?? "")
        case REDIS_REPLY_INTEGER:
            self = .integer(Int64(value.integer))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisReply] = []
            elements.reserveCapacity(value.elements)
            for index in 0..<value.elements {
                if let element = value.element?[index] {
                    elements.append(RedisReply(element))
                } else {
                    elements.append(.null)
                }
            }
            self = .array(elements)
        default:
            self = .null
        }
    }

    /// The integer, or an ``RedisError/Code/unexpectedReply`` error.
    func integer(for command: String) throws(RedisError) -> Int64 {
        guard case .integer(let value) = self else { throw unexpected(command, "an integer") }
        return value
    }

    /// The elements of an array reply; `nil` for a nil reply.
    func array(for command: String) throws(RedisError) -> [RedisReply]? {
        switch self {
        case .array(let elements): return elements
        case .null: return nil
        default: throw unexpected(command, "an array")
        }
    }

    /// The bytes of a bulk string.
    func bytes(for command: String) throws(RedisError) -> [UInt8] {
        guard case .string(let bytes) = self else { throw unexpected(command, "a string") }
        return bytes
    }

    /// The bytes of a bulk string, as UTF-8 text.
    func text(for command: String) throws(RedisError) -> String {
        String(decoding: try bytes(for: command), as: UTF8.self)
    }

    private func unexpected(_ command: String, _ wanted: String) -> RedisError {
        RedisError(code: .unexpectedReply, message: "expected \(wanted), got \(kind)", command: command)
    }

    private var kind: String {
        switch self {
        case .string: return "a string"
        case .status(let status): return "status \(status)"
        case .integer: return "an integer"
        case .array: return "an array"
        case .null: return "nil"
        case .error(let message): return "error \(message)"
        }
    }
}
