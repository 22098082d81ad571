import FoundationEssentials

/// A type's `rate_limit`: a shared GCRA (the same limiter as `[smtp] rate_limit`), one per type or
/// one per distinct value of a payload key.
///
/// `rate_limit = "10/s"` (and `burst = 5` on the type), or
/// `rate_limit = { key = "tenant_id", limit = "5/s", burst = 5, default = "1/s" }`. A job over its
/// limit is not run and holds no slot: it is **deferred**, moved to the schedule at the time its
/// limiter allows (a permit reserved for it then), attempt unchanged, no backoff used.
public struct JobRateLimit: Sendable, Equatable {
    /// Jobs per period.
    public var rate: RateLimit
    /// Jobs that may go at once before the steady rate applies (default 1).
    public var burst: Int
    /// The payload path whose value picks the limiter (`"tenant_id"`, `"account.id"`), or
    /// `"@recipient_domain"`: the domain of the first `to` address, lowercased. `nil`: one limiter
    /// for the whole type.
    public var key: String?
    /// The limit shared by the jobs that lack the key; `nil`: they are not limited.
    public var defaultRate: RateLimit?

    /// Makes a limit.
    public init(rate: RateLimit, burst: Int = 1, key: String? = nil, defaultRate: RateLimit? = nil) {
        self.rate = rate
        self.burst = burst
        self.key = key
        self.defaultRate = defaultRate
    }

    /// The limiter a job with `payload` goes through: the key part of its name and the rate, or
    /// `nil` when it is not limited (it lacks the key and there is no `default`).
    public func limiter(for payload: JSONValue) -> (key: String, rate: RateLimit)? {
        guard let key else { return ("", rate) }
        if let value = Self.value(of: key, in: payload) { return (value, rate) }
        return defaultRate.map { ("(default)", $0) }
    }

    /// Keys longer than this are shortened to a prefix and a hash of the whole value.
    static let longestKey = 128

    /// The key value at `path`: strings as they are, other JSON values as their JSON text (so `7`
    /// and `"7"` are the same tenant), long values shortened to a prefix and a 64-bit hash; `null`
    /// counts as missing.
    static func value(of path: String, in payload: JSONValue) -> String? {
        var text: String
        if path == "@recipient_domain" {
            guard let domain = recipientDomain(payload) else { return nil }
            text = domain
        } else {
            var value = payload
            for part in path.split(separator: ".", omittingEmptySubsequences: false) {
                guard let next = value[String(part)] else { return nil }
                value = next
            }
            switch value {
            case .null: return nil
            case .string(let string): text = string
            default: text = value.jsonText
            }
        }
        guard text.utf8.count > longestKey else { return text }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(decoding: text.utf8.prefix(64), as: UTF8.self) + "~" + String(hash, radix: 16)
    }

    /// The domain of the first `to` address of a mail payload, lowercased.
    static func recipientDomain(_ payload: JSONValue) -> String? {
        var to = payload["to"]
        if case .array(let list)? = to { to = list.first }
        guard let address = to?.stringValue else { return nil }
        // `Name <user@example.org>` or `user@example.org`.
        var text = Substring(address)
        if let open = text.lastIndex(of: "<") { text = text[text.index(after: open)...] }
        if let close = text.firstIndex(of: ">") { text = text[..<close] }
        guard let at = text.lastIndex(of: "@") else { return nil }
        let domain = text[text.index(after: at)...].trimmingBlanks().lowercased()
        return domain.isEmpty ? nil : domain
    }
}

extension RouterConfiguration {
    /// Every limiter this configuration declares, by the name its figures are kept under
    /// (`type:NAME`, `group:NAME`, `smtp`), with what it limits, in a fixed order.
    public var limiters: [(name: String, limit: String)] {
        var out: [(String, String)] = []
        for name in types.keys.sorted() {
            guard let limit = types[name]?.rateLimit else { continue }
            var text = "\(limit.rate)"
            if let key = limit.key {
                text += " per \(key)"
                text += limit.defaultRate.map { ", \($0) shared without it" } ?? ", unlimited without it"
            }
            out.append(("type:\(name)", text + ", burst \(limit.burst)"))
        }
        for name in groups.keys.sorted() {
            guard let group = groups[name], let rate = group.rateLimit else { continue }
            out.append(("group:\(name)", "\(rate), burst \(group.burst)"))
        }
        if let smtp, let rate = smtp.rateLimit { out.append(("smtp", "\(rate), burst \(smtp.burst)")) }
        return out
    }
}
