import HTTP2
import Models
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RPCWire
import TransportSecurity

/// A gRPC client for one service with one or more replicas: every target is resolved to
/// every address it names (``AddressResolver``, as stock gRPC's `dns` resolver: a name with
/// several replicas behind it reaches all of them), one multiplexed HTTP/2 connection per
/// address (opened on first use, reopened with backoff after failures, the names resolved
/// again when a connection fails), calls spread round-robin over the addresses, deadlines
/// sent as `grpc-timeout` and enforced locally.
///
/// Retries: a request the server provably did not process (refused stream, above a GOAWAY's
/// last stream, connection failure before sending) is retried transparently; a call that
/// may have been processed is retried only when the caller marks it idempotent (e.g. a
/// mutation carrying a `request_id`), and only for UNAVAILABLE.
public final class GRPCClient: Sendable {
    /// An address of one replica.
    public struct Target: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// Parses `HOST:PORT` or `[IPv6]:PORT`.
        public init?(_ text: String) {
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
                  (0...65_535).contains(port) else { return nil }
            var host = String(text[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty else { return nil }
            self.init(host: host, port: port)
        }

        /// Parses a comma-separated list of targets (several replicas: docs/OPERATIONS.md).
        public static func list(_ text: String) -> [Target]? {
            let targets = text.split(separator: ",").map { part in
                Target(String(part.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed()))
            }
            guard !targets.isEmpty, targets.allSatisfy({ $0 != nil }) else { return nil }
            return targets.compactMap { $0 }
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    public struct Configuration: Sendable {
        /// Time allowed to open a connection. Default 5 s.
        public var connectTimeout: TimeAmount = .seconds(5)
        /// Largest response message accepted. Default 4 MiB.
        public var maxReceiveMessageSize: Int = 4 << 20
        /// Attempts per call, first included, where a retry is allowed. Default 3.
        public var maxAttempts: Int = 3
        /// Backoff between attempts and reconnections: doubles from this… Default 100 ms.
        public var initialBackoff: Duration = .milliseconds(100)
        /// …up to this. Default 5 s.
        public var maxBackoff: Duration = .seconds(5)
        /// HTTP/2 settings.
        public var http2: HTTP2ClientConfiguration = .defaults
        /// Shortest time between two resolutions of the targets' names after connection
        /// failures (stock gRPC's minimum time between resolutions). Default 1 s.
        public var minResolutionInterval: Duration = .seconds(1)
        /// TLS to the servers (their CA, this client's certificate for mutual TLS, the name
        /// expected); nil = plaintext HTTP/2. Default nil.
        public var tls: ClientTLS?

        public init() {}

        public static let defaults = Configuration()
    }

    private struct Connection: Sendable {
        let channel: any Channel
        let handler: NIOLoopBound<GRPCClientConnectionHandler>
    }

    /// One address of a target, and its connection. A class so that a call can update the
    /// endpoint it picked even after a new resolution reordered the list. `@unchecked
    /// Sendable`: its mutable fields are read and written only under `state`'s lock.
    private final class Endpoint: @unchecked Sendable {
        let target: Target
        let address: SocketAddress?
        var connection: EventLoopFuture<Connection>?
        var failures = 0
        var retryAfter: ContinuousClock.Instant?

        init(target: Target, address: SocketAddress?) {
            self.target = target
            self.address = address
        }

        var description: String { address.map { "\(target) (\($0))" } ?? target.description }
    }

    private struct State {
        var endpoints: [Endpoint] = []
        var next = 0
        var nextToken: UInt64 = 0
        var closed = false
        /// When the names were last resolved; a failure after `minResolutionInterval` asks again.
        var resolvedAt: ContinuousClock.Instant?
        var resolveAgain = true
        var resolving: Task<Void, Never>?
    }

    public let targets: [Target]
    private let configuration: Configuration
    private let group: any EventLoopGroup
    private let resolver: any AddressResolver
    private let state: NIOLockedValueBox<State>
    /// The server every call goes to, without sockets, when made with ``init(inProcess:configuration:)``.
    private let inProcess: InProcessServer?

    public init(targets: [Target], configuration: Configuration = .defaults,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                resolver: any AddressResolver = SystemAddressResolver()) {
        precondition(!targets.isEmpty, "a client needs at least one target")
        self.targets = targets
        self.configuration = configuration
        self.group = group
        self.resolver = resolver
        self.state = NIOLockedValueBox(State())
        self.inProcess = nil
    }

    /// A client of a server in the same process, reached without sockets or HTTP/2 (for
    /// tests: the same interceptors, handlers, encoding and statuses; see ``InProcessServer``).
    public init(inProcess server: InProcessServer, configuration: Configuration = .defaults) {
        self.targets = [Target(host: "in-process", port: 0)]
        self.configuration = configuration
        self.group = MultiThreadedEventLoopGroup.singleton
        self.resolver = SystemAddressResolver()
        self.state = NIOLockedValueBox(State())
        self.inProcess = server
    }

    /// Calls a unary method. Throws `RPCError` (the server's status, or UNAVAILABLE /
    /// DEADLINE_EXCEEDED / CANCELLED from the transport).
    public func unary<Request, Response>(
        _ method: MethodDescriptor<Request, Response>, _ request: Request,
        metadata: Metadata = Metadata(), timeout: Duration? = nil, idempotent: Bool = false
    ) async throws(RPCError) -> Response {
        let result = try await call(path: method.path, type: .unary, request: request, metadata: metadata,
                                    timeout: timeout, idempotent: idempotent)
        guard result.messages.count == 1 else {
            throw RPCError(code: .internal, message: "\(method.path) returned \(result.messages.count) messages to a unary call")
        }
        do {
            return try Response(decoding: result.messages[0])
        } catch {
            throw RPCError(code: .internal, message: "malformed \(Response.protoMessageName) from the server: \(error)")
        }
    }

    /// Calls a server-streaming method and returns every response (the stream is read to its
    /// end; suited to bounded streams).
    public func serverStreamingCollect<Request, Response>(
        _ method: MethodDescriptor<Request, Response>, _ request: Request,
        metadata: Metadata = Metadata(), timeout: Duration? = nil
    ) async throws(RPCError) -> [Response] {
        let result = try await call(path: method.path, type: .serverStream, request: request, metadata: metadata,
                                    timeout: timeout, idempotent: false)
        var responses: [Response] = []
        for message in result.messages {
            do {
                responses.append(try Response(decoding: message))
            } catch {
                throw RPCError(code: .internal, message: "malformed \(Response.protoMessageName) from the server: \(error)")
            }
        }
        return responses
    }

    /// Calls a server-streaming method whose responses are read as they arrive, e.g. an
    /// open-ended stream such as WatchEvents: the request is sent and the sending side closed;
    /// read ``StreamingCall/responses``, and ``StreamingCall/cancel()`` to stop. Not available
    /// on a client made with ``init(inProcess:configuration:)``.
    public func serverStreamingCall<Request, Response>(
        _ method: MethodDescriptor<Request, Response>, _ request: Request, metadata: Metadata = Metadata(),
        timeout: Duration? = nil
    ) async throws(RPCError) -> StreamingCall<Request, Response> {
        guard method.isServerStreaming, !method.isClientStreaming else {
            throw RPCError(code: .invalidArgument, message: "\(method.path) is not a server-streaming method")
        }
        let bytes = try GRPCClient.encoded(request)
        // The request goes with the headers, half-closed, in one write (as a unary call's):
        // a server that refuses at the headers (trailers-only) can then never end the call
        // before its request is sent, which a separate send would report as "the call is
        // over" instead of the server's status.
        return try await openStreamingCall(method, metadata: metadata, timeout: timeout, request: bytes)
    }

    /// Opens a bidirectional-streaming call (also suits a client-streaming method): request
    /// messages are sent with ``StreamingCall/send(_:)`` (which waits while the server's flow
    /// control holds back more than a few tens of KiB, so a fast sender does not queue its
    /// whole input in memory), ``StreamingCall/finish()`` half-closes, and the responses are
    /// read from ``StreamingCall/responses`` as they arrive; that sequence ends when the call
    /// ends with OK and throws its `RPCError` otherwise. Not retried: a call that failed may
    /// have been partly processed (the caller resumes it, e.g. from its last acknowledged
    /// message). Not available on a client made with ``init(inProcess:configuration:)``.
    public func streamingCall<Request, Response>(
        _ method: MethodDescriptor<Request, Response>, metadata: Metadata = Metadata(), timeout: Duration? = nil
    ) async throws(RPCError) -> StreamingCall<Request, Response> {
        guard method.isClientStreaming || method.isServerStreaming else {
            throw RPCError(code: .invalidArgument, message: "\(method.path) is a unary method")
        }
        return try await openStreamingCall(method, metadata: metadata, timeout: timeout, request: nil)
    }

    /// A request's bytes; a message that cannot be encoded is the caller's INVALID_ARGUMENT.
    static func encoded(_ request: some ProtoMessage) throws(RPCError) -> [UInt8] {
        do {
            return try request.encode()
        } catch {
            throw RPCError(code: .invalidArgument, message: "\(error.field.map { "\($0): " } ?? "")\(error)")
        }
    }

    /// Opens a streaming call; with `request`, that encoded message is sent with the headers
    /// and the sending side closed.
    private func openStreamingCall<Request, Response>(
        _ method: MethodDescriptor<Request, Response>, metadata: Metadata, timeout: Duration?, request: [UInt8]?
    ) async throws(RPCError) -> StreamingCall<Request, Response> {
        guard inProcess == nil else {
            throw RPCError(code: .unimplemented, message: "streaming calls need a server reached over HTTP/2")
        }
        let connection = try await nextConnection()
        let token = state.withLockedValue { state -> UInt64 in
            state.nextToken += 1
            return state.nextToken
        }
        let metrics = RPCMetrics.client(method.path, type: !method.isClientStreaming ? .serverStream
                                        : method.isServerStreaming ? .bidiStream : .clientStream)
        metrics.start()
        let started = ContinuousClock.now
        let (responses, continuation) = AsyncThrowingStream<Response, any Error>.makeStream()
        let eventLoop = connection.channel.eventLoop
        let handler = connection.handler
        let promise = eventLoop.makePromise(of: ClientCallResult.self)
        let timer = timeout.map { timeout in
            eventLoop.scheduleTask(in: .nanoseconds(Self.nanoseconds(timeout))) {
                handler.value.cancel(token: token, status: RPCError(code: .deadlineExceeded, message: "deadline exceeded"))
            }
        }
        promise.futureResult.whenSuccess { result in
            timer?.cancel()
            metrics.record(code: result.status.code, duration: ContinuousClock.now - started)
            if let error = result.status.error { continuation.finish(throwing: error) } else { continuation.finish() }
        }
        let path = method.path
        eventLoop.execute {
            handler.value.startStreaming(token: token, path: path, metadata: metadata, timeout: timeout, request: request, onMessage: { bytes in
                do {
                    continuation.yield(try Response(decoding: bytes))
                } catch {
                    handler.value.cancel(token: token, status: RPCError(
                        code: .internal, message: "malformed \(Response.protoMessageName) from the server: \(error)"))
                }
            }, promise: promise)
        }
        return StreamingCall(responses: responses, eventLoop: eventLoop, handler: handler, token: token,
                             outcome: promise.futureResult)
    }

    /// Calls a method by path with an already-encoded request (for tools such as
    /// `doorstep call`); returns the status, metadata and raw response messages.
    public func rawCall(path: String, request: [UInt8], metadata: Metadata = Metadata(), timeout: Duration? = nil)
        async -> (status: Status, initialMetadata: Metadata, trailingMetadata: Metadata, messages: [[UInt8]]) {
        let result = await attempts(path: path, type: .unary, bytes: request, metadata: metadata, timeout: timeout,
                                    idempotent: false)
        return (result.status, result.initialMetadata, result.trailingMetadata, result.messages)
    }

    private func call<Request: ProtoMessage>(
        path: String, type: MethodMetrics.CallType, request: Request, metadata: Metadata, timeout: Duration?,
        idempotent: Bool
    ) async throws(RPCError) -> ClientCallResult {
        let bytes = try GRPCClient.encoded(request)
        let result = await attempts(path: path, type: type, bytes: bytes, metadata: metadata, timeout: timeout,
                                    idempotent: idempotent)
        if let error = result.status.error { throw error }
        return result
    }

    /// A call, with its retries, counted once in the `grpc_client_*` metrics.
    private func attempts(
        path: String, type: MethodMetrics.CallType, bytes: [UInt8], metadata: Metadata, timeout: Duration?,
        idempotent: Bool
    ) async -> ClientCallResult {
        let metrics = RPCMetrics.client(path, type: type)
        metrics.start()
        let started = ContinuousClock.now
        let result = await attempts(path: path, bytes: bytes, metadata: metadata, timeout: timeout, idempotent: idempotent)
        metrics.record(code: result.status.code, duration: ContinuousClock.now - started)
        return result
    }

    private func attempts(
        path: String, bytes: [UInt8], metadata: Metadata, timeout: Duration?, idempotent: Bool
    ) async -> ClientCallResult {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        var attemptNumber = 0
        var previous: ClientCallResult?
        while true {
            attemptNumber += 1
            let remaining = deadline.map { $0 - .now }
            if let remaining, remaining <= .zero {
                return ClientCallResult(status: Status(code: .deadlineExceeded, message: "deadline exceeded"))
            }
            var result = await self.attempt(path: path, bytes: bytes, metadata: metadata, timeout: remaining)
            // A retry that found every address in backoff says less than the failure that put
            // them there ("connection to … closed at once" rather than "no reachable address").
            if result.everyAddressInBackoff, let previous { result = previous }
            let retryable = result.unprocessed || (idempotent && result.status.code == .unavailable)
            guard !result.status.isOK, retryable, attemptNumber < configuration.maxAttempts, !Task.isCancelled else {
                return result
            }
            previous = result
            var pause = backoff(attemptNumber)
            if let deadline { pause = min(pause, deadline - .now) }
            if pause > .zero { try? await Task.sleep(for: pause) }
        }
    }

    private func backoff(_ attempt: Int) -> Duration {
        let base = configuration.initialBackoff * (1 << min(attempt - 1, 16))
        let capped = min(base, configuration.maxBackoff)
        return capped * Double.random(in: 0.5...1.0)  // jitter
    }

    private func attempt(path: String, bytes: [UInt8], metadata: Metadata, timeout: Duration?) async -> ClientCallResult {
        if let inProcess {
            guard !state.withLockedValue({ $0.closed }) else { return ClientCallResult(status: Status(code: .unavailable, message: "the client is closed")) }
            return await inProcess.call(path: path, request: bytes, metadata: metadata, timeout: timeout)
        }
        let connection: Connection
        do {
            connection = try await nextConnection()
        } catch {
            var result = ClientCallResult(status: Status(error))
            result.unprocessed = true
            result.everyAddressInBackoff = error.message.hasPrefix(Self.noReachableAddress)
            return result
        }
        let token = state.withLockedValue { state -> UInt64 in
            state.nextToken += 1
            return state.nextToken
        }
        let eventLoop = connection.channel.eventLoop
        let handler = connection.handler
        let promise = eventLoop.makePromise(of: ClientCallResult.self)
        eventLoop.execute {
            handler.value.start(token: token, path: path, metadata: metadata, timeout: timeout, message: bytes, promise: promise)
        }
        let timer = timeout.map { timeout in
            eventLoop.scheduleTask(in: .nanoseconds(Self.nanoseconds(timeout))) {
                handler.value.cancel(token: token, status: RPCError(code: .deadlineExceeded, message: "deadline exceeded"))
            }
        }
        defer { timer?.cancel() }
        return await withTaskCancellationHandler {
            do {
                return try await promise.futureResult.get()
            } catch {
                return ClientCallResult(status: Status(code: .unavailable, message: "\(error)"))
            }
        } onCancel: {
            eventLoop.execute {
                handler.value.cancel(token: token, status: RPCError(code: .cancelled, message: "cancelled by the caller"))
            }
        }
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// Resolves every target when the client has no addresses yet, or when a connection
    /// failed and `minResolutionInterval` has passed since the last resolution. One resolution
    /// at a time: concurrent callers wait for it. Addresses still named keep their connection
    /// and backoff; addresses no longer named are closed. A target that does not resolve
    /// keeps its previous addresses (a DNS hiccup does not drop a working replica); one never
    /// resolved is tried by name, so the connection attempt reports why it fails.
    private func resolveIfNeeded() async {
        let now = ContinuousClock.now
        let task: Task<Void, Never>? = state.withLockedValue { state in
            if let running = state.resolving { return running }
            let due = state.endpoints.isEmpty
                || (state.resolveAgain && state.resolvedAt.map { now - $0 >= configuration.minResolutionInterval } ?? true)
            guard due, !state.closed else { return nil }
            let targets = self.targets
            let resolver = self.resolver
            let task = Task {
                var resolved: [(Target, [SocketAddress]?)] = []
                for target in targets {
                    resolved.append((target, try? await resolver.resolve(host: target.host, port: target.port)))
                }
                self.install(resolved)
            }
            state.resolving = task
            return task
        }
        await task?.value
    }

    /// Replaces the endpoints with those of a resolution (see ``resolveIfNeeded()``).
    private func install(_ resolved: [(Target, [SocketAddress]?)]) {
        let dropped: [EventLoopFuture<Connection>] = state.withLockedValue { state in
            var kept: [Endpoint] = []
            for (target, addresses) in resolved {
                let previous = state.endpoints.filter { $0.target == target }
                guard let addresses else {
                    kept += previous.isEmpty ? [Endpoint(target: target, address: nil)] : previous
                    continue
                }
                for address in addresses {
                    kept.append(previous.first { $0.address == address } ?? Endpoint(target: target, address: address))
                }
            }
            let keptIDs = Set(kept.map(ObjectIdentifier.init))
            let dropped = state.endpoints.filter { !keptIDs.contains(ObjectIdentifier($0)) }.compactMap(\.connection)
            state.endpoints = kept
            state.resolvedAt = .now
            state.resolveAgain = false
            state.resolving = nil
            return dropped
        }
        for future in dropped {
            future.whenSuccess { connection in connection.channel.close(promise: nil) }
        }
    }

    /// The next address's connection, round-robin, skipping addresses in backoff. Opening a
    /// connection is single-flight per address: calls that arrive while it is being opened
    /// wait for that one connection instead of each opening their own.
    private func nextConnection() async throws(RPCError) -> Connection {
        await resolveIfNeeded()
        let now = ContinuousClock.now
        let pick: (endpoint: Endpoint, future: EventLoopFuture<Connection>, opened: Bool)? = state.withLockedValue { state in
            guard !state.closed, !state.endpoints.isEmpty else { return nil }
            for offset in 0..<state.endpoints.count {
                let index = (state.next + offset) % state.endpoints.count
                let endpoint = state.endpoints[index]
                if let retryAfter = endpoint.retryAfter, retryAfter > now { continue }
                state.next = index + 1
                if let existing = endpoint.connection { return (endpoint, existing, false) }
                let future = openConnection(endpoint)
                endpoint.connection = future
                return (endpoint, future, true)
            }
            state.resolveAgain = true
            return nil
        }
        guard let pick else {
            throw RPCError(code: .unavailable, message: Self.noReachableAddress + targets.map(\.description).joined(separator: ", "))
        }
        /// Forgets a failed connection; one that failed or closed as soon as it opened puts
        /// the address in backoff and asks for the names to be resolved again.
        func failed() {
            state.withLockedValue { state in
                if pick.endpoint.connection === pick.future { pick.endpoint.connection = nil }
                if pick.opened {
                    pick.endpoint.failures += 1
                    pick.endpoint.retryAfter = .now + backoff(pick.endpoint.failures)
                    state.resolveAgain = true
                }
            }
        }
        do {
            let connection = try await pick.future.get()
            if connection.channel.isActive {
                if pick.opened { state.withLockedValue { _ in pick.endpoint.failures = 0; pick.endpoint.retryAfter = nil } }
                return connection
            }
            // Closed since (GOAWAY, idle timeout, peer restart): forget it and open another.
            failed()
            if pick.opened {
                // Why, when the connection knows (a TLS handshake that failed).
                let handler = connection.handler
                let failure = try? await connection.channel.eventLoop.submit { handler.value.failure }.get()
                throw RPCError(code: .unavailable, message: "connection to \(pick.endpoint.description) closed"
                                   + (failure.flatMap { $0 }.map { ": \($0)" } ?? " at once"))
            }
            return try await nextConnection()
        } catch let error as RPCError {
            throw error
        } catch {
            failed()
            throw RPCError(code: .unavailable, message: "cannot connect to \(pick.endpoint.description): \(error)")
        }
    }

    /// How the error of a call that found every address in backoff begins.
    private static let noReachableAddress = "no reachable address among "

    /// Starts opening a connection to `endpoint` (not waiting for it).
    private func openConnection(_ endpoint: Endpoint) -> EventLoopFuture<Connection> {
        let target = endpoint.target
        let configuration = self.configuration
        // The handler the initializer adds to each channel, kept rather than looked up after
        // the connect: a server that closes at once (a TLS port dialled in plaintext) can have
        // the channel closed, and its handlers removed, by the time the connect completes.
        // By channel: a name dialled with happy eyeballs initializes a channel per attempt.
        let made = NIOLockedValueBox<[(channel: any Channel, handler: NIOLoopBound<GRPCClientConnectionHandler>)]>([])
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls = configuration.tls {
                        try channel.pipeline.syncOperations.addHandlers(try tls.makeHandlers(host: target.host))
                    }
                    let handler = try GRPCClientConnectionHandler(
                        authority: target.description, scheme: configuration.tls == nil ? "http" : "https",
                        maxReceiveMessageSize: configuration.maxReceiveMessageSize,
                        configuration: configuration.http2)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    made.withLockedValue { $0.append((channel, NIOLoopBound(handler, eventLoop: channel.eventLoop))) }
                }
            }
        let connected = endpoint.address.map { bootstrap.connect(to: $0) } ?? bootstrap.connect(host: target.host, port: target.port)
        return connected.flatMapThrowing { channel in
            // TCP self-connect: connecting to a loopback port nobody listens on, inside the
            // ephemeral range, the kernel may pick that very port as the source and connect the
            // socket to itself (a simultaneous open); the "server" would then be our own echo.
            // Treated as the refusal it stands for (Go's net package does the same).
            if let local = channel.localAddress, let remote = channel.remoteAddress, local == remote {
                channel.close(promise: nil)
                throw SelfConnected(address: "\(remote)")
            }
            guard let handler = made.withLockedValue({ made in made.first { $0.channel === channel }?.handler }) else {
                throw ChannelError.ioOnClosedChannel
            }
            return Connection(channel: channel, handler: handler)
        }
    }

    /// Closes every connection; later calls fail with UNAVAILABLE.
    public func close() async {
        let futures = state.withLockedValue { state -> [EventLoopFuture<Connection>] in
            state.closed = true
            state.resolving?.cancel()
            return state.endpoints.compactMap(\.connection)
        }
        for future in futures {
            if let connection = try? await future.get() { try? await connection.channel.close() }
        }
    }
}

/// A connection that reached its own socket (TCP self-connect): nothing listens at `address`.
struct SelfConnected: Error, CustomStringConvertible {
    let address: String
    var description: String { "connection refused (the socket connected to itself: nothing listens at \(address))" }
}

/// A client- or bidirectional-streaming call in progress (``GRPCClient/streamingCall(_:metadata:timeout:)``).
public struct StreamingCall<Request: ProtoMessage, Response: ProtoMessage>: Sendable {
    /// The response messages as they arrive; ends when the call ends with OK, throws its
    /// `RPCError` otherwise. Read it once.
    public let responses: AsyncThrowingStream<Response, any Error>
    fileprivate let eventLoop: any EventLoop
    fileprivate let handler: NIOLoopBound<GRPCClientConnectionHandler>
    fileprivate let token: UInt64
    /// The call's end (completed on the event loop when its stream closes).
    fileprivate let outcome: EventLoopFuture<ClientCallResult>

    /// Sends one request message; waits while the server holds back more than
    /// `GRPCClientConnectionHandler.streamingSendLimit` bytes of the call's requests. Once the
    /// call is over, throws its status (the server's refusal, the deadline, the connection's
    /// error), or CANCELLED "the call is over" when it ended with OK.
    public func send(_ request: Request) async throws(RPCError) {
        let bytes = try GRPCClient.encoded(request)
        let promise = eventLoop.makePromise(of: Void.self)
        let (handler, token) = (self.handler, self.token)
        eventLoop.execute { handler.value.send(token: token, message: bytes, promise: promise) }
        do {
            try await promise.futureResult.get()
        } catch {
            // A call that failed locally (cancelled, past its deadline) completes when its
            // RST_STREAM closes the stream, at once; one the server ended has completed.
            if let status = (try? await outcome.get())?.status.error { throw status }
            throw RPCError(from: error)
        }
    }

    /// No more request messages (half-close); the responses continue until the server ends
    /// the call.
    public func finish() {
        let (handler, token) = (self.handler, self.token)
        eventLoop.execute { handler.value.finishSending(token: token) }
    }

    /// Cancels the call (RST_STREAM CANCEL); `responses` throws CANCELLED.
    public func cancel() {
        let (handler, token) = (self.handler, self.token)
        eventLoop.execute { handler.value.cancel(token: token, status: RPCError(code: .cancelled, message: "cancelled by the caller")) }
    }
}
