import Models
import NIOConcurrencyHelpers
import RPC
import RPCWire

/// TestService.Collect (client streaming) and TestService.Chat (bidirectional streaming), as
/// proto/doorstep/testing/v1/test_service.proto describes them, recording what the handlers
/// saw.
public final class StreamingProbe: Sendable {
    /// Handlers that ended because their call was cancelled (client reset, deadline).
    public let cancelled = NIOLockedValueBox(0)
    /// Handlers that read their request stream to its end (the client half-closed).
    public let sawEnd = NIOLockedValueBox(0)

    public init() {}

    public var definition: ServiceDefinition {
        var definition = ServiceDefinition()
        definition.clientStreaming(TestingV1.TestService.collect) { [self] requests, _ in
            try await observing {
                var count = 0
                var sum: Int64 = 0
                for try await leaf in requests {
                    if try await Self.control(leaf) { continue }
                    count += 1
                    sum += leaf.amount
                }
                sawEnd.withLockedValue { $0 += 1 }
                return TestingV1.Leaf(label: "\(count)", amount: sum)
            }
        }
        definition.bidirectionalStreaming(TestingV1.TestService.chat) { [self] requests, _, responses in
            try await observing {
                var count: Int64 = 0
                for try await leaf in requests {
                    if leaf.label == "end" { return }
                    if try await Self.control(leaf) { continue }
                    count += 1
                    try await responses.send(TestingV1.Leaf(label: "echo:" + leaf.label, amount: count))
                }
                sawEnd.withLockedValue { $0 += 1 }
            }
        }
        return definition
    }

    /// "hold:N" sleeps N ms, "fail:N" fails with code N; true when `leaf` was one of them.
    private static func control(_ leaf: TestingV1.Leaf) async throws -> Bool {
        if leaf.label.hasPrefix("hold:"), let millis = Int(leaf.label.dropFirst(5)) {
            try await Task.sleep(for: .milliseconds(millis))
            return true
        }
        if leaf.label.hasPrefix("fail:"), let code = Int(leaf.label.dropFirst(5)) {
            throw RPCError(code: StatusCode(rawValue: code), message: "failed as asked")
        }
        return false
    }

    private func observing<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            if error is CancellationError { cancelled.withLockedValue { $0 += 1 } }
            throw error
        }
    }
}
