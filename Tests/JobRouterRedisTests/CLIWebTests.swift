import Foundation
import JobRouter
import Testing

/// `jobrouter web` through the binary: what it refuses before it serves anything.
@Suite(.timeLimit(.minutes(1)))
struct CLIWebTests {
    @Test func aListenAddressBeyondLoopbackWithoutATokenIsRefusedInOneLine() async throws {
        let keys = TestKeys()
        let config = try CLIHardeningTests().writeConfig(keys, try CLIHardeningTests().header(keys) + """

            [types.ping]
            handler = "noop"
            [web]
            listen = "0.0.0.0:0"
            """)
        let refused = try await runCLI(["web", "--config", config], environment: ["JOBROUTER_WEB_TOKEN": ""])
        #expect(refused.status == 1)
        #expect(refused.err.contains("refusing to listen on 0.0.0.0:0 without JOBROUTER_WEB_TOKEN"), "\(refused.err)")
        #expect(refused.err.split(separator: "\n").count == 1, "\(refused.err)")
        let badAddress = try await runCLI(["web", "--config", config, "--listen", "nowhere:"])
        #expect(badAddress.status == 1 && badAddress.err.contains("--listen"), "\(badAddress.err)")
    }
}
