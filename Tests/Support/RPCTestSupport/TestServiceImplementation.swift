import Logging
import Models
import NIOConcurrencyHelpers
import RPC
import RPCWire

/// The transport test service (proto/doorstep/testing/v1/test_service.proto).
public final class TestServiceImplementation: Sendable {
    /// Sleeps that ended because their task was cancelled (client cancel or deadline).
    public let cancelledSleeps = NIOLockedValueBox(0)
    /// Sleeps whose handler has started.
    public let startedSleeps = NIOLockedValueBox(0)
    /// Collect (client streaming) and Chat (bidirectional streaming).
    public let streaming = StreamingProbe()

    public init() {}

    public var definition: ServiceDefinition {
        var definition = ServiceDefinition()
        definition.unary(TestingV1.TestService.echo) { request, context in
            for entry in context.metadata where entry.name.hasPrefix("x-echo-") {
                context.response.addInitial(entry.name, entry.value)
                let trailerName = entry.name.hasSuffix("-bin")
                    ? String(entry.name.dropLast(4)) + "-trailer-bin" : entry.name + "-trailer"
                context.response.addTrailing(trailerName, entry.value)
            }
            return request
        }
        definition.unary(TestingV1.TestService.fail) { request, _ in
            throw RPCError(code: StatusCode(rawValue: Int(request.code)), message: request.message)
        }
        definition.unary(TestingV1.TestService.sleep) { [cancelledSleeps, startedSleeps] request, _ in
            startedSleeps.withLockedValue { $0 += 1 }
            do {
                try await Task.sleep(for: .milliseconds(Int(request.millis)))
            } catch {
                cancelledSleeps.withLockedValue { $0 += 1 }
                throw error
            }
            return TestingV1.Nothing()
        }
        definition.serverStreaming(TestingV1.TestService.count) { request, _, responses in
            for index in 0..<Int(request.count) {
                if index > 0, request.intervalMillis > 0 {
                    try await Task.sleep(for: .milliseconds(Int(request.intervalMillis)))
                }
                try await responses.send(TestingV1.Leaf(label: "leaf \(index)", amount: Int64(index)))
            }
        }
        definition.merge(streaming.definition)
        return definition
    }
}
