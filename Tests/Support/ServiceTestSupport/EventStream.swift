import Models
import RPC
import RPCWire

/// An open WatchEvents call of a service under test, read as its events arrive, `count` at a
/// time (the suites of each service's events).
public final class EventStream {
    public let call: StreamingCall<TypeV1.WatchEventsRequest, TypeV1.Event>
    public var iterator: AsyncThrowingStream<TypeV1.Event, any Error>.AsyncIterator

    public init(_ client: GRPCClient, _ method: MethodDescriptor<TypeV1.WatchEventsRequest, TypeV1.Event>,
                _ request: TypeV1.WatchEventsRequest, metadata: Metadata) async throws {
        call = try await client.serverStreamingCall(method, request, metadata: metadata)
        iterator = call.responses.makeAsyncIterator()
    }

    /// The next `count` events (fewer only if the call ends first).
    public func take(_ count: Int) async throws -> [TypeV1.Event] {
        var events: [TypeV1.Event] = []
        while events.count < count, let event = try await iterator.next() { events.append(event) }
        return events
    }
}
