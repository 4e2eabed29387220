import Models
import RPC
import RPCTestSupport
import Testing

@Suite("A server's concurrent-stream limit")
struct StreamLimitTests {
    @Test("our client with more calls in flight than the server's stream limit gets every one answered, each run once",
          .timeLimit(.minutes(1)))
    func moreCallsThanStreams() async throws {
        var configuration = GRPCServer.Configuration()
        configuration.http2.maxConcurrentStreams = 2
        let (server, address, service, _) = try await startTestServer(configuration: configuration)
        let client = GRPCClient(targets: [GRPCClient.Target(address)!])
        // Twenty 100 ms sleeps at once on a fresh connection: streams the client opens before it
        // learns the limit are refused (and retried), and at most two run at a time.
        let started = ContinuousClock.now
        let answered = try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<20 {
                group.addTask {
                    _ = try await client.unary(TestingV1.TestService.sleep, .init(millis: 100), timeout: .seconds(20))
                }
            }
            var count = 0
            for try await _ in group { count += 1 }
            return count
        }
        let elapsed = ContinuousClock.now - started
        await client.close()
        await server.shutdownGracefully()
        #expect(answered == 20)
        // A refused stream never reaches a handler: exactly one handler ran per call.
        #expect(service.startedSleeps.withLockedValue { $0 } == 20)
        #expect(elapsed >= .milliseconds(950), "20 sleeps of 100 ms, two at a time, took \(elapsed)")
    }
}
