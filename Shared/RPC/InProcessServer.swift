import Logging
import RPCWire
import Synchronization

/// A server reached without sockets or HTTP/2, in the same process: a call passes the same
/// interceptors (``ServerPipeline``: deadline, authentication, role, scope, …) and the same
/// handlers as over the network, with its request and responses encoded and decoded as on
/// the wire, its metadata and status carried as a client would see them. What it leaves
/// out is only the transport: HTTP/2 framing, flow control, the connection's credential
/// cache and its limits. Reach it with `GRPCClient(inProcess:)`.
///
/// A client- or bidirectional-streaming method is called as the client's calls are made:
/// with one request message, then the end of the client's input; its handler sees a request
/// stream of that one message.
///
/// For tests: a service suite can run over it as well as over loopback, and is then
/// independent of ports and sockets.
public final class InProcessServer: Sendable {
    private let services: ServiceDefinition
    private let pipeline: ServerPipeline
    private let logger: Logger
    private let metrics: RPCMetrics
    private let calls = Atomic<Int32>(0)
    /// Number of this server in the process (its call ids are `<server>-<call>`).
    private let number = InProcessServer.counter.add(1, ordering: .relaxed).newValue
    private static let counter = Atomic<UInt64>(1 << 32)

    public init(services: ServiceDefinition, authenticator: (any Authenticator)? = nil,
                interceptors: [any ServerInterceptor] = [], logger: Logger) {
        self.services = services
        self.pipeline = .standard(authenticator: authenticator, extra: interceptors)
        self.logger = logger
        self.metrics = RPCMetrics(methods: services.methods)
    }

    /// Runs one call to its end: the status, metadata and response messages a client gets.
    func call(path: String, request: [UInt8], metadata: Metadata, timeout: Duration?) async -> ClientCallResult {
        guard let registered = services.methods[path] else {
            return ClientCallResult(status: Status(code: .unimplemented, message: "unknown method \(path)"))
        }
        let metrics = self.metrics.method(path)
        metrics.start()
        var head = CallHead(path: path, method: registered, metadata: metadata, timeout: timeout.map(GRPCTimeout.format))
        do {
            try pipeline.admit(&head)
        } catch {
            let status = Status(error)
            metrics.finished(status, after: .zero, logger: logger, peer: "in-process", caller: head.caller)
            return ClientCallResult(status: status)
        }
        let context = ServerContext(head: head, peer: "in-process", connectionNumber: number,
                                    streamID: calls.add(1, ordering: .relaxed).newValue, logger: logger)
        let started = ContinuousClock.now
        let deadline = head.deadline
        let outcome = await withTaskGroup(of: (status: Status, messages: [[UInt8]])?.self) { group in
            group.addTask { await Self.run(registered, request: request, context: context) }
            if let deadline {
                group.addTask {
                    try? await Task.sleep(until: deadline, clock: .continuous)
                    return Task.isCancelled ? nil : (Status(code: .deadlineExceeded, message: "deadline exceeded"), [])
                }
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? (Status(code: .cancelled, message: "the call was cancelled"), [])
        }
        metrics.finished(outcome.status, after: ContinuousClock.now - started, logger: logger, peer: "in-process",
                         context: context)
        let (initial, trailing) = context.response.snapshot()
        var status = outcome.status
        for entry in trailing { status.metadata.add(entry) }
        var result = ClientCallResult(status: status)
        result.initialMetadata = initial
        result.trailingMetadata = status.metadata
        result.messages = outcome.status.isOK || registered.isServerStreaming ? outcome.messages : []
        return result
    }

    /// Runs the handler: the response (or responses) and OK, or the status of its error.
    private static func run(_ method: RegisteredMethod, request: [UInt8], context: ServerContext) async
        -> (status: Status, messages: [[UInt8]]) {
        switch method.kind {
        case .unary(let handler):
            do {
                return (.ok, [try await handler(request, context)])
            } catch {
                return (Status(RPCError(from: error)), [])
            }
        case .serverStreaming(let handler):
            let sent = Mutex<[[UInt8]]>([])
            do {
                try await handler(request, context) { message in sent.withLock { $0.append(message) } }
                return (.ok, sent.withLock { $0 })
            } catch {
                return (Status(RPCError(from: error)), sent.withLock { $0 })
            }
        case .clientStreaming(let handler):
            do {
                return (.ok, [try await handler(RequestStream(InboundMessages(complete: [request])), context)])
            } catch {
                return (Status(RPCError(from: error)), [])
            }
        case .bidirectionalStreaming(let handler):
            let sent = Mutex<[[UInt8]]>([])
            do {
                try await handler(RequestStream(InboundMessages(complete: [request])), context) { message in
                    sent.withLock { $0.append(message) }
                }
                return (.ok, sent.withLock { $0 })
            } catch {
                return (Status(RPCError(from: error)), sent.withLock { $0 })
            }
        }
    }
}

extension RegisteredMethod {
    /// True when the server answers with a stream of messages (server or bidirectional
    /// streaming): the messages sent before an error still reach the client.
    var isServerStreaming: Bool {
        switch kind {
        case .serverStreaming, .bidirectionalStreaming: return true
        case .unary, .clientStreaming: return false
        }
    }

    /// The `grpc_type` of its calls in the metrics.
    var callType: MethodMetrics.CallType {
        switch kind {
        case .unary: return .unary
        case .serverStreaming: return .serverStream
        case .clientStreaming: return .clientStream
        case .bidirectionalStreaming: return .bidiStream
        }
    }
}
