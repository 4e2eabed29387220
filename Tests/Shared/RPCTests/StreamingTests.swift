import Logging
import Models
import NIOConcurrencyHelpers
import RPC
import RPCTestSupport
import RPCWire
import TestSupport
import Testing

@Suite("Client and bidirectional streaming")
struct StreamingTests {
    /// A server with the streaming methods and the rest of the test service.
    static func startServer() async throws -> (server: GRPCServer, address: String, probe: StreamingProbe) {
        let probe = StreamingProbe()
        var definition = TestServiceImplementation().definition
        definition.merge(probe.definition)
        var logger = Logger(label: "doorstep.test")
        logger.logLevel = .warning
        let server = GRPCServer(services: definition, logger: logger)
        let bound = try await server.start()
        return (server, "127.0.0.1:\(bound.port!)", probe)
    }

    @Test("a stock grpcio client: interleaving, half-close, reset, deadline, backpressure, malformed input", .timeLimit(.minutes(3)))
    func grpcioStreaming() async throws {
        let (server, address, probe) = try await Self.startServer()
        let script = repositoryRoot.appendingPathComponent("Tests/Shared/RPCTests/Interop/grpcio_streaming_checks.py").path
        let result = try await runProcessDetached("python3", [script, address])
        // The reset and the deadline reach their handlers as task cancellation, at once.
        var cancelled = 0
        for _ in 0..<100 {
            cancelled = probe.cancelled.withLockedValue { $0 }
            if cancelled >= 3 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        await server.shutdownGracefully()
        print(result.output)
        #expect(result.status == 0, "\(result.output)")
        #expect(!result.output.contains("FAIL"), "\(result.output)")
        for check in ["chat_interleaved", "collect_half_close", "chat_cancel", "chat_deadline", "collect_backpressure",
                      "chat_malformed_mid_stream", "concurrent_chats", "unary_after_streams"] {
            #expect(result.output.contains("ok \(check)\n"), "\(check) did not pass")
        }
        #expect(cancelled == 3, "handlers cancelled (reset, deadline, oversize message): \(cancelled)")
        // Collect (100 leaves, none, backpressure) and the chats that half-closed read to the end.
        #expect(probe.sawEnd.withLockedValue { $0 } == 24)
    }

    @Test("in process, a streaming method gets the one request message of the call, then the end")
    func inProcess() async throws {
        let probe = StreamingProbe()
        var logger = Logger(label: "doorstep.test")
        logger.logLevel = .warning
        let client = GRPCClient(inProcess: InProcessServer(services: probe.definition, logger: logger))
        let chat = await client.rawCall(path: TestingV1.TestService.chat.path,
                                        request: try TestingV1.Leaf(label: "a", amount: 7).encode())
        #expect(chat.status.isOK, "\(chat.status)")
        #expect(try chat.messages.map { try TestingV1.Leaf(decoding: $0) } == [TestingV1.Leaf(label: "echo:a", amount: 1)])
        let collect = await client.rawCall(path: TestingV1.TestService.collect.path,
                                           request: try TestingV1.Leaf(amount: 7).encode())
        #expect(try collect.messages.map { try TestingV1.Leaf(decoding: $0) } == [TestingV1.Leaf(label: "1", amount: 7)])
        let failed = await client.rawCall(path: TestingV1.TestService.collect.path,
                                          request: try TestingV1.Leaf(label: "fail:5").encode())
        #expect(failed.status.code == .notFound)
        #expect(probe.sawEnd.withLockedValue { $0 } == 2)
        await client.close()
    }
}
