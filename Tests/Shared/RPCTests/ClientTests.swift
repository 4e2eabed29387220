import Foundation
import Logging
import Models
import NIOCore
import NIOPosix
import RPC
import RPCTestSupport
import RPCWire
import TestSupport
import Testing

/// The checks our client must pass against any correct server of the test service.
func runClientChecks(_ client: GRPCClient) async throws {
    let service = TestingV1.TestService.self

    // A rich message round-trips.
    let rich = TestingV1.AllKinds(fInt64: .min, fString: "上門催收·🙂", fBytes: Array(0...255), fLevel: .unrecognized(99),
                                  rLeaf: [.init(label: "x", amount: 1)], choice: .cText("選"))
    #expect(try await client.unary(service.echo, rich, timeout: .seconds(5)) == rich)

    // A server error reaches us with its code and exact (percent-decoded) message.
    let message = "規則 cn-2026.visit-hours: 22:00-08:00 100% refused"
    await #expect(throws: RPCError(code: .failedPrecondition, message: message)) {
        try await client.unary(service.fail, .init(code: 9, message: message), timeout: .seconds(5))
    }

    // An unknown method is UNIMPLEMENTED.
    let unknown = await client.rawCall(path: "/doorstep.testing.v1.TestService/Nope", request: [], timeout: .seconds(5))
    #expect(unknown.status.code == .unimplemented)

    // Metadata both ways, text and binary.
    var metadata = Metadata()
    metadata.add("x-echo-note", "hello")
    metadata.add("x-echo-blob-bin", binary: [0, 1, 255])
    let echoed = await client.rawCall(path: service.echo.path, request: try TestingV1.AllKinds(fInt32: 1).encode(),
                                      metadata: metadata, timeout: .seconds(5))
    #expect(echoed.status.code == .ok)
    #expect(echoed.initialMetadata["x-echo-note"] == "hello")
    #expect(echoed.trailingMetadata["x-echo-note-trailer"] == "hello")
    #expect(echoed.trailingMetadata.binaryValues("x-echo-blob-trailer-bin") == [[0, 1, 255]])

    // A deadline ends a slow call promptly.
    let started = ContinuousClock.now
    await expectRPCError(.deadlineExceeded) { () throws(RPCError) in
        _ = try await client.unary(service.sleep, .init(millis: 3000), timeout: .milliseconds(300))
    }
    #expect(ContinuousClock.now - started < .seconds(2))

    // Cancelling the calling task cancels the call.
    let sleeping = Task { try await client.unary(service.sleep, .init(millis: 5000), timeout: .seconds(10)) }
    try await Task.sleep(for: .milliseconds(200))
    sleeping.cancel()
    let cancelledAt = ContinuousClock.now
    let outcome = await sleeping.result
    #expect(ContinuousClock.now - cancelledAt < .seconds(2))
    if case .failure(let error as RPCError) = outcome { #expect(error.code == .cancelled) } else { Issue.record("not cancelled: \(outcome)") }

    // Server streaming.
    let leaves = try await client.serverStreamingCollect(service.count, .init(count: 5), timeout: .seconds(5))
    #expect(leaves.map(\.amount) == [0, 1, 2, 3, 4])

    // Many concurrent calls multiplexed on one connection.
    let values = try await withThrowingTaskGroup(of: Int64.self) { group in
        for index in 0..<100 {
            group.addTask { try await client.unary(service.echo, .init(fInt64: Int64(index)), timeout: .seconds(10)).fInt64 }
        }
        return try await group.reduce(into: []) { $0.append($1) }
    }
    #expect(values.sorted() == Array(0..<100))

    // Health.
    let health = try await client.unary(HealthV1.HealthService.check, .init(service: ""), timeout: .seconds(5))
    #expect(health.status == .serving)
}

@Suite("Our gRPC client")
struct ClientTests {
    @Test("against our own server", .timeLimit(.minutes(1)))
    func againstOurServer() async throws {
        let (server, address, _, _) = try await startTestServer()
        let client = GRPCClient(targets: [GRPCClient.Target(address)!])
        try await runClientChecks(client)
        await client.close()
        await server.shutdownGracefully()
    }

    @Test("over the in-process transport: the same results without sockets", .timeLimit(.minutes(1)))
    func inProcess() async throws {
        let service = TestServiceImplementation()
        let health = HealthService(services: [TestingV1.TestService.name])
        var definition = service.definition
        definition.merge(health.definition)
        health.setAll(.serving)
        let client = GRPCClient(inProcess: InProcessServer(services: definition, logger: Logger(label: "in-process-test")))
        try await runClientChecks(client)
        await client.close()
        let closed = await client.rawCall(path: TestingV1.TestService.echo.path, request: [])
        #expect(closed.status.code == .unavailable, "a closed client calls nothing")
    }

    @Test("against a stock grpcio server: the same results", .timeLimit(.minutes(1)))
    func againstGrpcio() async throws {
        let process = try ChildProcess("python3", [repositoryRoot.appendingPathComponent("Tests/Shared/RPCTests/Interop/grpcio_test_server.py").path],
                                       standardOutput: .pipe, standardError: .inherit)
        defer { process.signal(SIGTERM); process.wait() }
        let line = try #require(await firstLineDetached(from: process.standardOutput!))
        let address = try #require(line.split(separator: " ").last.map(String.init))
        let client = GRPCClient(targets: [GRPCClient.Target(address)!])
        try await runClientChecks(client)
        await client.close()
    }

    @Test("an address nobody listens on is UNAVAILABLE; an idempotent call moves to another replica")
    func unavailableAndFailover() async throws {
        let (server, address, _, _) = try await startTestServer()
        // A port that was just bound and released has no listener.
        let (closed, closedAddress, _, _) = try await startTestServer()
        await closed.shutdownGracefully()
        let deadOnly = GRPCClient(targets: [GRPCClient.Target(closedAddress)!])
        // A generous deadline: the point is UNAVAILABLE rather than a hang (a loaded CI run took
        // over 5 s for the three refused attempts and their backoff).
        await expectRPCError(.unavailable) { () throws(RPCError) in
            _ = try await deadOnly.unary(TestingV1.TestService.echo, .init(), timeout: .seconds(30))
        }
        await deadOnly.close()

        let both = GRPCClient(targets: [GRPCClient.Target(closedAddress)!, GRPCClient.Target(address)!])
        for index in 0..<10 {
            let echoed = try await both.unary(TestingV1.TestService.echo, .init(fInt32: Int32(index)), timeout: .seconds(5),
                                              idempotent: true)
            #expect(echoed.fInt32 == Int32(index))
        }
        await both.close()
        await server.shutdownGracefully()
    }

    @Test("a server that closes every connection as it opens (a TLS port dialled in plaintext): UNAVAILABLE naming the closed connection, every time",
          .timeLimit(.minutes(1)))
    func closedAtOnce() async throws {
        final class CloseAtOnce: ChannelInboundHandler, Sendable {
            typealias InboundIn = ByteBuffer
            func channelActive(context: ChannelHandlerContext) { context.close(promise: nil) }
        }
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.pipeline.addHandler(CloseAtOnce()) }
            .bind(host: "127.0.0.1", port: 0).get()
        let address = "127.0.0.1:\(listener.localAddress!.port!)"
        // A new client each time: one whose address is in backoff after a failure says so
        // instead of connecting. Two faults showed here: the channel closed, and its handlers
        // gone, before the connect completed ("cannot connect … (notFound)"); and a transparent
        // retry that found the address in backoff replacing the failure with "no reachable
        // address" (the doorstep tool then asked whether the service runs, not whether it
        // requires TLS).
        for _ in 0..<50 {
            let client = GRPCClient(targets: [GRPCClient.Target(address)!])
            do {
                _ = try await client.unary(TestingV1.TestService.echo, .init(), timeout: .seconds(10))
                Issue.record("a call succeeded on a connection the server closed")
            } catch {
                // "… closed at once", "… closed" or "… is closing", by timing; never "no
                // reachable address" (a retry that found the address in backoff).
                #expect(error.code == .unavailable, "\(error)")
                #expect(error.message.hasPrefix("connection to \(address) ")
                        && (error.message.contains(" closed") || error.message.hasSuffix(" is closing")), "\(error.message)")
            }
            await client.close()
        }
        try await listener.close()
    }

    @Test("targets parse from HOST:PORT lists")
    func targets() {
        #expect(GRPCClient.Target("127.0.0.1:50051") == GRPCClient.Target(host: "127.0.0.1", port: 50051))
        #expect(GRPCClient.Target("[::1]:8080") == GRPCClient.Target(host: "::1", port: 8080))
        #expect(GRPCClient.Target("host") == nil)
        #expect(GRPCClient.Target("host:99999") == nil)
        #expect(GRPCClient.Target.list("a:1, b:2")?.count == 2)
        #expect(GRPCClient.Target.list("a:1,,b") == nil)
    }
}

/// Expects `body` to fail with an `RPCError` of `code`.
func expectRPCError(_ code: StatusCode, sourceLocation: SourceLocation = #_sourceLocation,
                    _ body: () async throws(RPCError) -> Void) async {
    do {
        try await body()
        Issue.record("expected \(code), but the call succeeded", sourceLocation: sourceLocation)
    } catch {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    }
}
