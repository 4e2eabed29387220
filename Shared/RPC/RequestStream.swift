import Models
import NIOCore
import RPCWire
import Synchronization

/// The request messages of a client- or bidirectional-streaming call, in the order the
/// client sent them, delivered as they arrive. Iterate it once.
///
/// The sequence ends when the client half-closes its side of the call. A message that does
/// not decode throws INVALID_ARGUMENT (naming the field); once the call is over (the client
/// reset the stream, the deadline passed, the connection went away) the next read throws
/// `CancellationError`.
///
/// Messages the handler has not taken yet wait in a buffer bounded per connection
/// (``GRPCServer/Configuration/maxBufferedStreamingRequestBytes``): a handler that reads
/// slowly slows its client down instead of growing the server's memory.
public struct RequestStream<Message: Sendable>: AsyncSequence, Sendable {
    public typealias Element = Message

    let source: InboundMessages
    let transform: @Sendable ([UInt8]) throws -> Message

    public struct AsyncIterator: AsyncIteratorProtocol {
        let source: InboundMessages
        let transform: @Sendable ([UInt8]) throws -> Message

        /// The next request message; nil once the client has half-closed and every message
        /// was read.
        public mutating func next() async throws -> Message? {
            guard let bytes = try await source.next() else { return nil }
            return try transform(bytes)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(source: source, transform: transform)
    }
}

extension RequestStream where Message == [UInt8] {
    /// The raw (encoded) messages of `source`.
    init(_ source: InboundMessages) {
        self.init(source: source, transform: { $0 })
    }

    /// The same messages decoded as `Request` (INVALID_ARGUMENT for one that does not decode).
    func decoding<Request: ProtoMessage>(_: Request.Type) -> RequestStream<Request> {
        RequestStream<Request>(source: source, transform: { try decodeRequest(Request.self, $0) })
    }
}

/// The queue between the event loop that receives a streaming call's request messages and
/// the task that runs its handler. The event loop pushes, finishes (the client half-closed)
/// or discards (the call is over); the handler's task takes. Queued messages are counted in
/// the connection's ``InboundBudget`` until they are taken; a message that arrives while the
/// handler is already waiting is handed over without being queued.
final class InboundMessages: Sendable {
    private enum End {
        /// The client half-closed: the queued messages, then the end.
        case finished
        /// The call is over: queued messages are dropped, reads throw this.
        case failed(any Error)
    }

    private struct State {
        var messages = CircularBuffer<[UInt8]>()
        var end: End?
        var waiter: CheckedContinuation<[UInt8]?, any Error>?
    }

    private let state: Mutex<State>
    /// The connection's budget; nil in process (no socket to stop reading from).
    private let budget: InboundBudget?

    /// What a queued message counts for in the budget: its bytes plus the cost of holding it
    /// (so that a flood of empty messages is bounded too).
    static func weight(of message: [UInt8]) -> Int { message.count + 64 }

    init(budget: InboundBudget?) {
        self.state = Mutex(State())
        self.budget = budget
    }

    /// Messages that are all there already: `messages`, then the end (a call made in process).
    init(complete messages: [[UInt8]]) {
        self.state = Mutex(State(messages: CircularBuffer(messages), end: .finished))
        self.budget = nil
    }

    /// A message arrived.
    func push(_ message: [UInt8]) {
        let waiter: CheckedContinuation<[UInt8]?, any Error>? = state.withLock { state in
            guard state.end == nil else { return nil }
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.messages.append(message)
            budget?.add(Self.weight(of: message))
            return nil
        }
        waiter?.resume(returning: message)
    }

    /// The client half-closed: the handler reads what is queued, then the end.
    func finish() {
        let waiter: CheckedContinuation<[UInt8]?, any Error>? = state.withLock { state in
            guard state.end == nil else { return nil }
            state.end = .finished
            let waiter = state.waiter
            state.waiter = nil
            return waiter
        }
        waiter?.resume(returning: nil)
    }

    /// The call is over: drops what is queued (returning it to the budget); the handler's
    /// next read throws `CancellationError`.
    func discard() {
        let waiter: CheckedContinuation<[UInt8]?, any Error>? = state.withLock { state in
            if case .failed = state.end { return nil }
            state.end = .failed(CancellationError())
            let dropped = state.messages.reduce(0) { $0 + Self.weight(of: $1) }
            state.messages.removeAll()
            if dropped > 0 { budget?.remove(dropped) }
            let waiter = state.waiter
            state.waiter = nil
            return waiter
        }
        waiter?.resume(throwing: CancellationError())
    }

    /// The next message; nil at the end. Throws `CancellationError` when the call is over or
    /// the reading task is cancelled.
    func next() async throws -> [UInt8]? {
        if let ready = state.withLock({ take(&$0) }) { return try ready.get() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let ready: Result<[UInt8]?, any Error>? = state.withLock { state in
                    if let ready = take(&state) { return ready }
                    // Checked under the lock: a cancellation handler that ran before this
                    // point found no waiter to resume.
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                let waiter = state.waiter
                state.waiter = nil
                return waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// A queued message (returned to the budget), the end, or nil when the reader must wait.
    private func take(_ state: inout State) -> Result<[UInt8]?, any Error>? {
        if let message = state.messages.popFirst() {
            budget?.remove(Self.weight(of: message))
            return .success(message)
        }
        switch state.end {
        case .finished: return .success(nil)
        case .failed(let error): return .failure(error)
        case nil: return nil
        }
    }
}

/// The request bytes one connection's streaming calls have received but their handlers have
/// not taken yet. Past `limit` the connection stops reading from its socket; once the
/// handlers have brought it down to half the limit, it reads again.
///
/// Why at the socket: libnghttp2 acknowledges DATA (WINDOW_UPDATE) as soon as it has read
/// it, so HTTP/2 flow control alone would let a fast client fill the server's memory while a
/// handler is slow. Not reading stops the WINDOW_UPDATEs too, so the client's windows run
/// out and TCP holds it back. The cost is the connection's other streams waiting as well,
/// as they would behind a full receive window; what is held per connection is at most
/// `limit`, plus what one socket read cycle delivered, plus one message.
final class InboundBudget: Sendable {
    let limit: Int
    private let buffered = Atomic<Int>(0)
    private let exceeded = Atomic<Bool>(false)
    /// Called (from any thread) when the budget went back under half the limit: the
    /// connection should read again.
    private let onDrained: @Sendable () -> Void

    init(limit: Int, onDrained: @escaping @Sendable () -> Void) {
        self.limit = limit
        self.onDrained = onDrained
    }

    /// True while the connection should not read.
    var isExceeded: Bool { exceeded.load(ordering: .sequentiallyConsistent) }

    /// Bytes queued (on the connection's event loop).
    func add(_ bytes: Int) {
        let total = buffered.add(bytes, ordering: .sequentiallyConsistent).newValue
        guard total > limit else { return }
        exceeded.store(true, ordering: .sequentiallyConsistent)
        // A reader may have taken enough between the add and the store, and seen nothing
        // to resume: look again.
        if buffered.load(ordering: .sequentiallyConsistent) <= limit / 2 {
            _ = exceeded.compareExchange(expected: true, desired: false, ordering: .sequentiallyConsistent)
        }
    }

    /// Bytes taken by a handler, or dropped with a call that ended.
    func remove(_ bytes: Int) {
        let total = buffered.subtract(bytes, ordering: .sequentiallyConsistent).newValue
        if total <= limit / 2,
           exceeded.compareExchange(expected: true, desired: false, ordering: .sequentiallyConsistent).exchanged {
            onDrained()
        }
    }
}
