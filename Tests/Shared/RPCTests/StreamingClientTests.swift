import Models
import NIOConcurrencyHelpers
import RPC
import RPCWire
import Testing

/// `GRPCClient.streamingCall` against the test service's Collect (client streaming) and Chat
/// (bidirectional) over loopback HTTP/2: messages in order both ways, the half-close, the
/// server's status, cancellation, and a sender held back by flow control instead of queueing.
@Suite("GRPCClient streaming calls", .timeLimit(.minutes(2)))
struct StreamingClientTests {
    @Test("Chat: 2,000 messages sent while their echoes are read; half-close ends the responses with OK")
    func chat() async throws {
        let (server, address, _) = try await StreamingTests.startServer()
        let client = GRPCClient(targets: [GRPCClient.Target(address)!])
        let call = try await client.streamingCall(TestingV1.TestService.chat)
        let reader = Task { () throws -> [TestingV1.Leaf] in
            var echoes: [TestingV1.Leaf] = []
            for try await leaf in call.responses { echoes.append(leaf) }
            return echoes
        }
        for index in 1...2_000 { try await call.send(TestingV1.Leaf(label: "m\(index)")) }
        call.finish()
        let echoes = try await reader.value
        #expect(echoes.map(\.label) == (1...2_000).map { "echo:m\($0)" })
        #expect(echoes.last?.amount == 2_000)
        await client.close()
        await server.shutdownGracefully()
    }

    @Test("Collect through streamingCall: one response after the half-close")
    func collect() async throws {
        let (server, address, _) = try await StreamingTests.startServer()
        let client = GRPCClient(targets: [GRPCClient.Target(address)!])
        let call = try await client.streamingCall(TestingV1.TestService.collect)
        for amount in 1...100 { try await call.send(TestingV1.Leaf(label: "x", amount: Int64(amount))) }
        call.finish()
        var responses: [TestingV1.Leaf] = []
        for try await leaf in call.responses { responses.append(leaf) }
        #expect(responses == [TestingV1.Leaf(label: "100", amount: 5_050)])
        await client.close()
        await server.shutdownGracefully()
    }

    @Test("serverStreamingCall: Count's leaves arrive in order; a refusal at the headers (trailers-only, here an unknown method) is the status the responses throw, on each of 2,000 calls")
    func serverStreaming() async throws {
        let (server, address, _) = try await StreamingTests.startServer()
        let client = GRPCClient(targets: [GRPCClient.Target(address)!])
        let call = try await client.serverStreamingCall(TestingV1.TestService.count, TestingV1.CountRequest(count: 5))
        var labels: [String] = []
        for try await leaf in call.responses { labels.append(leaf.label) }
        #expect(labels.count == 5)
        // The server answers an unknown method as soon as it reads the headers. The request
        // must already be on its way: a call ended before its request was sent would be
        // reported as "the call is over" rather than as the server's UNIMPLEMENTED.
        let unknown = MethodDescriptor<TestingV1.CountRequest, TestingV1.Leaf>(
            service: TestingV1.TestService.name, method: "NoSuchMethod", isServerStreaming: true)
        let codes = try await withThrowingTaskGroup(of: StatusCode?.self) { group in
            for _ in 0..<2_000 {
                group.addTask {
                    do {
                        let refused = try await client.serverStreamingCall(unknown, TestingV1.CountRequest(count: 1))
                        for try await _ in refused.responses {}
                        return nil
                    } catch let error as RPCError {
                        return error.code
                    }
                }
            }
            var codes: [StatusCode?] = []
            for try await code in group { codes.append(code) }
            return codes
        }
        #expect(codes.filter { $0 != .unimplemented }.isEmpty, "\(Set(codes.map { String(describing: $0) }))")
        await client.close()
        await server.shutdownGracefully()
    }

    @Test("the server's error status ends the responses with that RPCError; a later send throws that status")
    func serverError() async throws {
        let (server, address, _) = try await StreamingTests.startServer()
        let client = GRPCClient(targets: [GRPCClient.Target(address)!])
        let call = try await client.streamingCall(TestingV1.TestService.chat)
        try await call.send(TestingV1.Leaf(label: "a"))
        try await call.send(TestingV1.Leaf(label: "fail:9"))
        var labels: [String] = []
        do {
            for try await leaf in call.responses { labels.append(leaf.label) }
            Issue.record("the responses ended without the error")
        } catch let error as RPCError {
            #expect(error.code == .failedPrecondition)
        }
        #expect(labels == ["echo:a"])
        // The send learns why the call is over: the server's status, not a bare "the call is over".
        let late = await #expect(throws: RPCError.self) { try await call.send(TestingV1.Leaf(label: "late")) }
        #expect(late?.code == .failedPrecondition, "\(String(describing: late))")
        await client.close()
        await server.shutdownGracefully()
    }

    @Test("cancel: the responses throw CANCELLED and the handler is cancelled")
    func cancel() async throws {
        let (server, address, probe) = try await StreamingTests.startServer()
        let client = GRPCClient(targets: [GRPCClient.Target(address)!])
        let call = try await client.streamingCall(TestingV1.TestService.chat)
        try await call.send(TestingV1.Leaf(label: "hold:5000"))
        try await Task.sleep(for: .milliseconds(100))
        call.cancel()
        do {
            for try await _ in call.responses {}
            Issue.record("the responses ended without an error")
        } catch let error as RPCError {
            #expect(error.code == .cancelled)
        }
        for _ in 0..<100 where probe.cancelled.withLockedValue({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(probe.cancelled.withLockedValue { $0 } == 1)
        await client.close()
        await server.shutdownGracefully()
    }

    @Test("a handler that does not read holds the sender back: what is sent stays bounded, then everything arrives")
    func backpressure() async throws {
        let (server, address, _) = try await StreamingTests.startServer()
        let client = GRPCClient(targets: [GRPCClient.Target(address)!])
        let call = try await client.streamingCall(TestingV1.TestService.collect)
        let sent = NIOLockedValueBox(0)
        let payload = String(repeating: "x", count: 64 << 10)
        // The handler sleeps 1.5 s before it reads the rest: 1,000 leaves of 64 KiB (64 MiB)
        // cannot all be accepted meanwhile.
        try await call.send(TestingV1.Leaf(label: "hold:1500"))
        let sender = Task {
            for _ in 1...1_000 {
                try await call.send(TestingV1.Leaf(label: payload, amount: 1))
                sent.withLockedValue { $0 += 1 }
            }
            call.finish()
        }
        try await Task.sleep(for: .milliseconds(1_000))
        let early = sent.withLockedValue { $0 }
        #expect(early < 400, "\(early) leaves of 64 KiB sent while the handler was not reading")
        try await sender.value
        var responses: [TestingV1.Leaf] = []
        for try await leaf in call.responses { responses.append(leaf) }
        #expect(responses.first?.amount == 1_000)
        await client.close()
        await server.shutdownGracefully()
    }
}
