import Foundation
import Models
import RPC
import RPCWire
import Synchronization

/// A consumer of a service's WatchEvents as a lender's integration would write one: it keeps
/// every event it receives, and when the stream breaks (a disconnect, the service killed) it
/// reconnects after the last cursor it kept. `disconnect()` breaks the stream on purpose.
final class EventWatcher: Sendable {
    let method: MethodDescriptor<TypeV1.WatchEventsRequest, TypeV1.Event>
    let client: GRPCClient
    let metadata: Metadata
    private struct State {
        var events: [TypeV1.Event] = []
        var call: StreamingCall<TypeV1.WatchEventsRequest, TypeV1.Event>?
        var reconnects = 0
        var stopped = false
    }
    private let state = Mutex(State())
    private let loop = Mutex<Task<Void, Never>?>(nil)

    init(_ method: MethodDescriptor<TypeV1.WatchEventsRequest, TypeV1.Event>, addresses: String, metadata: Metadata) {
        self.method = method
        self.client = GRPCClient(targets: GRPCClient.Target.list(addresses)!)
        self.metadata = metadata
        let task = Task { [self] in await run() }
        loop.withLock { $0 = task }
    }

    /// Every event received so far, in order.
    var events: [TypeV1.Event] { state.withLock { $0.events } }
    /// How many times the stream broke and was resumed.
    var reconnects: Int { state.withLock { $0.reconnects } }

    private func run() async {
        while !state.withLock({ $0.stopped }) {
            let after = state.withLock { $0.events.last?.cursor ?? "" }
            do {
                let call = try await client.serverStreamingCall(method, TypeV1.WatchEventsRequest(afterCursor: after), metadata: metadata)
                state.withLock { $0.call = call }
                for try await event in call.responses {
                    state.withLock { $0.events.append(event) }
                }
            } catch {
                // Broken (disconnected, the service gone, or cancelled): resume below.
            }
            state.withLock {
                $0.call = nil
                $0.reconnects += 1
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Breaks the current stream (as a network cut would); the watcher resumes by itself.
    func disconnect() {
        state.withLock { $0.call }?.cancel()
    }

    /// Stops watching.
    func stop() async {
        state.withLock { $0.stopped = true }
        disconnect()
        await loop.withLock { $0 }?.value
        await client.close()
    }

    /// The whole log as a fresh reader sees it now: every event from the start, read until the
    /// stream stays quiet for `quiet`.
    static func wholeLog(_ method: MethodDescriptor<TypeV1.WatchEventsRequest, TypeV1.Event>, addresses: String,
                         metadata: Metadata, quiet: Duration = .seconds(2)) async throws -> [TypeV1.Event] {
        let client = GRPCClient(targets: GRPCClient.Target.list(addresses)!)
        let call = try await client.serverStreamingCall(method, TypeV1.WatchEventsRequest(), metadata: metadata)
        let collected = Mutex<[TypeV1.Event]>([])
        let reader = Task {
            for try await event in call.responses { collected.withLock { $0.append(event) } }
        }
        var count = -1
        while count != collected.withLock({ $0.count }) {
            count = collected.withLock { $0.count }
            try await Task.sleep(for: quiet)
        }
        call.cancel()
        _ = await reader.result
        await client.close()
        return collected.withLock { $0 }
    }
}
