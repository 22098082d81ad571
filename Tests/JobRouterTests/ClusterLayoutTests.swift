import JobRouter
import Testing

/// `[redis] cluster`: every queue carries a hash tag, and a group's queues share one; `check`
/// names the line and the names to change.
@Suite struct ClusterLayoutTests {
    static let base = """
        default_queue = "{misc}default"
        [redis]
        cluster = ["127.0.0.1:7000", "127.0.0.1:7001"]

        [types.email]
        handler = "exec"
        command = ["true"]
        priorities = { high = "{mail}emails:high", low = "{mail}emails:low" }

        [types.report]
        handler = "exec"
        command = ["true"]
        priorities = { normal = "{reports}reports" }

        [groups.mail]
        queues = ["{mail}emails:high", "{mail}emails:low"]

        [groups.reports]
        queues = ["{reports}reports"]
        """

    @Test func aTaggedLayoutIsAccepted() throws {
        let configuration = try RouterConfiguration.parse(toml: Self.base, file: "queues.toml")
        #expect(configuration.clusterTags() == ["mail", "misc", "reports"])
        #expect(ClusterLayout.namespace("jobrouter", tag: "mail") == "jobrouter:{mail}")
    }

    @Test func aGroupWhoseQueuesSpanSlotsIsRefused() {
        let toml = Self.base.replacingOccurrences(of: #"queues = ["{reports}reports"]"#, with: #"queues = ["{reports}reports", "{misc}default"]"#)
        let error = parseError(toml)
        #expect(error?.description.hasPrefix("queues.toml:19: groups.reports.queues: '{reports}reports' and '{misc}default' have different hash tags") == true,
                "\(String(describing: error))")
        #expect(error?.description.contains("rename '{misc}default' to '{reports}default'") == true)
    }

    @Test func anUntaggedQueueIsRefused() {
        let toml = Self.base.replacingOccurrences(of: "{mail}emails:low", with: "emails:low")
        let error = parseError(toml)
        #expect(error?.description.hasPrefix("queues.toml:8: types.email.priorities.low: queue 'emails:low' has no hash tag") == true,
                "\(String(describing: error))")
    }

    @Test func clusterAndSentinelsAreExclusive() {
        let toml = Self.base.replacingOccurrences(of: "[redis]\n", with: "[redis]\nsentinels = [\"127.0.0.1:26379\"]\nmaster = \"jobs\"\n")
        #expect(parseError(toml)?.description.contains("redis.cluster: set together with redis.sentinels") == true)
    }

    @Test func hashTagsFollowRedisRules() {
        #expect(ClusterLayout.hashTag(of: "{mail}emails") == "mail")
        #expect(ClusterLayout.hashTag(of: "{}emails") == nil)
        #expect(ClusterLayout.hashTag(of: "a{b}{c}") == "b")
        #expect(ClusterLayout.hashTag(of: "plain") == nil)
        #expect(ClusterLayout.slot(of: "foo") == 12182)
        #expect(ClusterLayout.slot(of: "{user1000}.following") == ClusterLayout.slot(of: "{user1000}.followers"))
    }
}
