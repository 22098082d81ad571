import Foundation
import Testing
@testable import JobRouter

/// `rate_limit` on types and groups, `max_wait`, and limiter keys.
struct RateLimitConfigurationTests {
    let base = """
        default_queue = "default"
        [types.hook]
        handler = "noop"
        priorities = { high = "hooks:high", low = "hooks:low" }
        default_priority = "low"
        [groups.hooks]
        queues = ["hooks:high", "hooks:low"]
        concurrency = 8

        """

    @Test func readsTypeGroupAndBoundSettings() throws {
        let keyed = try RouterConfiguration.parse(toml: base.replacingOccurrences(of: "default_priority = \"low\"", with: """
            default_priority = "low"
            rate_limit = { key = "tenant_id", limit = "50/s", burst = 5, default = "2/s" }
            """).replacingOccurrences(of: "concurrency = 8", with: """
            concurrency = 8
            rate_limit = "100/s"
            burst = 10
            max_wait = { "hooks:low" = "30s" }
            aging_slots = 2
            """))
        #expect(keyed.types["hook"]?.rateLimit == JobRateLimit(rate: RateLimit(count: 50, period: .seconds(1)), burst: 5, key: "tenant_id",
                                                               defaultRate: RateLimit(count: 2, period: .seconds(1))))
        let group = try #require(keyed.groups["hooks"])
        #expect(group.rateLimit == RateLimit(count: 100, period: .seconds(1)) && group.burst == 10)
        #expect(group.maxWait == ["hooks:low": .seconds(30)] && group.agingSlots == 2)
        #expect(keyed.limiters.map(\.name) == ["type:hook", "group:hooks"])
        #expect(keyed.limiters.first?.limit == "50/s per tenant_id, 2/s shared without it, burst 5")

        let plain = try RouterConfiguration.parse(toml: base.replacingOccurrences(of: "default_priority = \"low\"", with: """
            default_priority = "low"
            rate_limit = "10/s"
            burst = 5
            """))
        #expect(plain.types["hook"]?.rateLimit == JobRateLimit(rate: RateLimit(count: 10, period: .seconds(1)), burst: 5))
    }

    @Test func mistakesNameTheLineAndKeyPath() {
        func failure(_ type: String = "", group: String = "") -> String {
            let text = base.replacingOccurrences(of: "default_priority = \"low\"", with: "default_priority = \"low\"\n" + type)
                .replacingOccurrences(of: "concurrency = 8", with: "concurrency = 8\n" + group)
            return parseError(text)?.description ?? "parsed"
        }
        #expect(failure("rate_limit = \"fast\"") == "queues.toml:6: types.hook.rate_limit: bad rate 'fast'; write a count per unit: \"20/s\", \"600/min\", \"10000/h\"")
        #expect(failure("burst = 3").hasPrefix("queues.toml:6: types.hook.burst: set, but the type has no rate_limit"))
        #expect(failure("rate_limit = { key = \"t\" }").hasPrefix("queues.toml:6: types.hook.rate_limit.limit: missing"))
        #expect(failure("rate_limit = { key = \"@sender\", limit = \"1/s\" }").hasPrefix("queues.toml:6: types.hook.rate_limit.key: unknown '@sender'"))
        #expect(failure("rate_limit = { key = \"t\", limit = \"1/s\" }\nburst = 2").hasPrefix("queues.toml:7: types.hook.burst: with a keyed rate_limit"))
        #expect(failure(group: "max_wait = { \"nope\" = \"5m\" }").hasPrefix("queues.toml:10: groups.hooks.max_wait.nope: 'nope' is not one of this group's queues"))
        #expect(failure(group: "max_wait = { \"hooks:high\" = \"5m\" }").hasPrefix("queues.toml:10: groups.hooks.max_wait.\"hooks:high\": the group's first queue"))
        #expect(failure(group: "aging_slots = 0") == "queues.toml:10: groups.hooks.aging_slots: must be at least 1, not 0")
        #expect(failure(group: "rate_limit = \"5000/s\"").hasPrefix("queues.toml:10: groups.hooks.rate_limit: over 1000/s"))
    }

    @Test func limiterKeysFromPayloads() {
        let limit = JobRateLimit(rate: RateLimit(count: 5, period: .seconds(1)), key: "tenant.id")
        #expect(limit.limiter(for: .object(["tenant": .object(["id": .string("acme")])]))?.key == "acme")
        #expect(limit.limiter(for: .object(["tenant": .object(["id": .integer(7)])]))?.key == "7")
        #expect(limit.limiter(for: .object([:])) == nil, "no key and no default: not limited")
        var shared = limit
        shared.defaultRate = RateLimit(count: 1, period: .seconds(1))
        #expect(shared.limiter(for: .string("x"))?.key == "(default)")
        let long = JobRateLimit.value(of: "k", in: .object(["k": .string(String(repeating: "é", count: 5000))]))
        #expect((long?.utf8.count ?? 0) < 100)
        #expect(long != JobRateLimit.value(of: "k", in: .object(["k": .string(String(repeating: "é", count: 4999))])))
        let mail = JobRateLimit(rate: RateLimit(count: 5, period: .seconds(1)), key: "@recipient_domain")
        #expect(mail.limiter(for: .object(["to": .string("Ann <Ann@Example.ORG>")]))?.key == "example.org")
        #expect(mail.limiter(for: .object(["to": .array([.string("b@mail.test"), .string("c@other.test")])]))?.key == "mail.test")
        #expect(mail.limiter(for: .object(["to": .string("nobody")])) == nil)
    }
}
