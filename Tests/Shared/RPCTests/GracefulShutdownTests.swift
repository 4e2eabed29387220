import Logging
import Models
import RPC
import RPCTestSupport
import RPCWire
import TestSupport
import Testing

@Suite("Graceful shutdown")
struct GracefulShutdownTests {
    @Test("GOAWAY lets an in-flight call finish, then the server stops and refuses new calls",
          .timeLimit(.minutes(1)))
    func drainsInFlightCalls() async throws {
        let (server, address, service, _) = try await startTestServer()
        let client = GRPCClient(targets: [GRPCClient.Target(address)!])
        _ = try await client.unary(TestingV1.TestService.echo, .init(), timeout: .seconds(5))  // connection up

        let inFlight = Task { try await client.unary(TestingV1.TestService.sleep, .init(millis: 800), timeout: .seconds(10)) }
        for _ in 0..<100 where service.startedSleeps.withLockedValue({ $0 }) == 0 {
            try await Task.sleep(for: .milliseconds(20))
        }
        let started = ContinuousClock.now
        await server.shutdownGracefully()
        let drained = ContinuousClock.now - started

        // The call that was running when GOAWAY went out completed normally…
        #expect(try await inFlight.value == TestingV1.Nothing())
        // …the shutdown waited for it (about 600 ms more), not for the 30 s bound…
        #expect(drained >= .milliseconds(400) && drained < .seconds(5), "drained in \(drained)")
        #expect(server.connectionCount == 0)
        // …and nothing listens any more. (A generous deadline: the client's refused attempts and
        // their backoff took over 2 s on a loaded run; the point is UNAVAILABLE, not a hang.)
        let fresh = GRPCClient(targets: [GRPCClient.Target(address)!])
        await expectRPCError(.unavailable) { () throws(RPCError) in
            _ = try await fresh.unary(TestingV1.TestService.echo, .init(), timeout: .seconds(30))
        }
        await fresh.close()
        await client.close()
    }

    @Test("calls still running after the drain timeout are cut off, so shutdown is bounded",
          .timeLimit(.minutes(1)))
    func drainIsBounded() async throws {
        var configuration = GRPCServer.Configuration()
        configuration.drainTimeout = .milliseconds(300)
        let (server, address, service, _) = try await startTestServer(configuration: configuration)
        let client = GRPCClient(targets: [GRPCClient.Target(address)!])
        let slow = Task { try await client.unary(TestingV1.TestService.sleep, .init(millis: 20_000), timeout: .seconds(30)) }
        // The call is in its handler before the shutdown starts (bounded wait: slow under ASan).
        for _ in 0..<100 where service.startedSleeps.withLockedValue({ $0 }) == 0 {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(service.startedSleeps.withLockedValue { $0 } == 1)
        let started = ContinuousClock.now
        await server.shutdownGracefully()
        #expect(ContinuousClock.now - started < .seconds(3))
        await #expect(throws: RPCError.self) { try await slow.value }
        // The cut-off handler saw its task cancelled (bounded wait for it to run).
        for _ in 0..<100 where service.cancelledSleeps.withLockedValue({ $0 }) == 0 {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(service.cancelledSleeps.withLockedValue { $0 } == 1)
        await client.close()
    }
}
