import Testing
@testable import JobRouterRedis

/// A claim token's place in the server's claim order (pure parsing; no server).
@Suite struct ClaimOrderTests {
    @Test func tokensOrderByClaimCallThenPosition() {
        #expect(RedisJobFetcher.order(of: "host-1:42:ab/42.3") == 42_000_003)
        #expect(RedisJobFetcher.order(of: "w/7.12") < RedisJobFetcher.order(of: "w/8.1"))
        #expect(RedisJobFetcher.order(of: "w/8.1") < RedisJobFetcher.order(of: "w/8.2"))
        // A worker id with a slash: the last one counts.
        #expect(RedisJobFetcher.order(of: "a/b/5.1") == 5_000_001)
    }

    @Test func anythingElseIsZero() {
        for token in ["", "w", "w/12", "w/1.2.3", "w/x.1", "w/.", "w/1." + String(repeating: "9", count: 7)] {
            #expect(RedisJobFetcher.order(of: token) == 0, "\(token)")
        }
    }
}
