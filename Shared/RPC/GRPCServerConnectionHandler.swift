import HTTP2
import Logging
import NIOCore
import NIOSSL
import NIOTLS
import RPCWire
import Synchronization
import TransportSecurity

/// Serves gRPC on one HTTP/2 connection: the channel handler that joins the socket to the
/// nghttp2 session (sans-I/O) and to the handlers (async tasks).
///
/// Everything here runs on the connection's event loop. Handlers run in tasks that capture
/// only Sendable values and hand their results back with `eventLoop.execute` through a
/// `NIOLoopBound` reference to this handler.
final class GRPCServerConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Sent down the pipeline (as a user inbound event) to start a graceful shutdown.
    struct GracefulShutdown: Sendable {}

    private let session: HTTP2ServerSession
    private let shared: GRPCServer.Shared
    private var streams: [Int32: ServerStream] = [:]
    private var flushScheduled = false
    /// Idle, keepalive and drain decisions (a value; this handler performs its actions).
    private var manager: ServerConnectionManager
    private var idleTimer: Scheduled<Void>?
    private var keepaliveTimer: RepeatedTask?
    private var writabilityWaiters: [CheckedContinuation<Void, any Error>] = []
    /// Streaming handlers whose stream has more than `streamedBacklogLimit` bytes waiting for
    /// the peer's flow control: each waits here until nghttp2 has taken enough of them, or the
    /// stream ends. A peer that does not read a stream therefore stops its handler (and, for a
    /// bidirectional call, the reading of its requests) instead of growing its buffer.
    private var backlogWaiters: [Int32: CheckedContinuation<Void, any Error>] = [:]
    /// Unsent response bytes one stream may hold before its handler waits (256 KiB).
    static let streamedBacklogLimit = 256 << 10
    private var peer = "unknown"
    /// The connection's event loop as a task executor: handlers run there (no thread hand-off
    /// per call; they must not block).
    private var taskExecutor: EventLoopTaskExecutor?
    /// Number of this connection in the process (call ids are `<connection>-<stream>`).
    private let connectionNumber = GRPCServerConnectionHandler.connectionCounter.add(1, ordering: .relaxed).newValue
    private static let connectionCounter = Atomic<UInt64>(0)
    /// The last verified `authorization` value of this connection and its caller: clients send
    /// the same token on every call, so it is verified once per connection (until it expires;
    /// ``AuthenticationInterceptor``).
    private var lastAuthentication: Authentication?
    /// Who the TLS client certificate names, once the handshake verified it (mutual TLS).
    private var clientCertificate: CertificateIdentity?
    /// Request messages of this connection's streaming calls not yet taken by their
    /// handlers (made with the first streaming call).
    private var inboundBudget: InboundBudget?
    /// True while the socket is not read because `inboundBudget` is exceeded.
    private var readingPaused = false

    /// The state of one call.
    private final class ServerStream {
        let method: RegisteredMethod
        let metrics: MethodMetrics
        let context: ServerContext
        var deframer: MessageDeframer
        var request: [UInt8]?
        /// The request messages of a client- or bidirectional-streaming call, on their way
        /// to its handler (nil for unary and server-streaming calls).
        var inbound: InboundMessages?
        var task: Task<Void, Never>?
        var deadlineTimer: Scheduled<Void>?
        var headersSent = false
        var finished = false
        let started = ContinuousClock.now

        init(method: RegisteredMethod, metrics: MethodMetrics, context: ServerContext, maxMessageSize: Int) {
            self.method = method
            self.metrics = metrics
            self.context = context
            self.deframer = MessageDeframer(maxMessageSize: maxMessageSize)
        }
    }

    init(shared: GRPCServer.Shared) throws {
        self.shared = shared
        self.session = try HTTP2ServerSession(configuration: shared.configuration.http2)
        self.manager = ServerConnectionManager(keepaliveTimeout: shared.configuration.keepaliveTimeout)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        peer = context.channel.remoteAddress.map { "\($0)" } ?? "unknown"
        taskExecutor = EventLoopTaskExecutor(eventLoop: context.eventLoop)
        perform(manager.connectionStarted(), context: context)
        let interval = shared.configuration.keepaliveInterval
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let contextBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        keepaliveTimer = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            let handler = loopBound.value
            // Not reading (backpressure): a PING's answer could not be seen.
            guard !handler.readingPaused else { return }
            let actions = handler.manager.keepaliveTimerFired(now: .now())
            if actions.contains(.close) {
                handler.shared.logger.debug("closing connection: keepalive ping not answered", metadata: ["peer": "\(handler.peer)"])
            }
            handler.perform(actions, context: contextBound.value)
        }
        flushOutput(context: context)  // our SETTINGS
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        manager.connectionClosed()
        idleTimer?.cancel()
        keepaliveTimer?.cancel()
        for stream in streams.values {
            stream.deadlineTimer?.cancel()
            stream.task?.cancel()
            stream.inbound?.discard()
            abandoned(stream)
        }
        streams.removeAll()
        inboundBudget = nil  // (its drained callback refers to this handler)
        for waiter in writabilityWaiters { waiter.resume(throwing: CancellationError()) }
        writabilityWaiters.removeAll()
        for waiter in backlogWaiters.values { waiter.resume(throwing: CancellationError()) }
        backlogWaiters.removeAll()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let events: [HTTP2ServerEvent]
        do {
            events = try buffer.withUnsafeReadableBytes { try session.receive($0) }
        } catch {
            shared.logger.debug("closing connection after an HTTP/2 protocol error", metadata: [
                "peer": "\(peer)", "error": "\(error)",
            ])
            flushOutput(context: context)
            context.close(promise: nil)
            return
        }
        for event in events { handle(event, context: context) }
        flushOutput(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            flushOutput(context: context)
            let waiters = writabilityWaiters
            writabilityWaiters.removeAll()
            for waiter in waiters { waiter.resume() }
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is GracefulShutdown {
            perform(manager.drainRequested(), context: context)
        } else if let event = event as? TLSUserEvent, case .handshakeCompleted(let negotiated) = event {
            // gRPC is HTTP/2 only: a client that did not negotiate h2 by ALPN is closed
            // before it sends anything (RFC 9113 §3.3; grpc-go and grpc++ do the same).
            guard negotiated == grpcApplicationProtocol else {
                shared.logger.notice("closing TLS connection: the client did not negotiate HTTP/2 (ALPN h2)", metadata: [
                    "peer": "\(peer)", "alpn": "\(negotiated ?? "none")",
                ])
                context.close(promise: nil)
                return
            }
            if let tls = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self) {
                clientCertificate = tls.peerCertificate.flatMap(CertificateIdentity.init)
            }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is NIOSSLError || error is BoringSSLError {
            // Plaintext to a TLS port, a certificate from another CA, no client certificate…
            shared.logger.info("TLS handshake failed; connection closed", metadata: ["peer": "\(peer)", "error": "\(error)"])
        } else {
            shared.logger.debug("connection error", metadata: ["peer": "\(peer)", "error": "\(error)"])
        }
        context.close(promise: nil)
    }

    // MARK: HTTP/2 events

    private func handle(_ event: HTTP2ServerEvent, context: ChannelHandlerContext) {
        switch event {
        case .headers(let streamID, let headers, let endStream):
            openStream(streamID, headers: headers, endStream: endStream, context: context)
        case .data(let streamID, let bytes, _):
            guard let stream = streams[streamID], !stream.finished else { return }
            do {
                try bytes.withUnsafeBytes { buffer in
                    try stream.deframer.process(buffer) { message in
                        if let inbound = stream.inbound {
                            inbound.push(Array(message))
                            return
                        }
                        guard stream.request == nil else {
                            throw RPCError(code: .internal, message: "more than one request message for \(stream.method.path)")
                        }
                        stream.request = Array(message)
                    }
                }
            } catch {
                finish(streamID, stream, with: Status((error as? DeframingError)?.rpcError ?? RPCError(from: error)), context: context)
            }
            if stream.inbound != nil { syncReading(context: context) }
        case .endStream(let streamID):
            guard let stream = streams[streamID], !stream.finished else { return }
            if let inbound = stream.inbound {
                endInput(streamID, stream, inbound, context: context)
            } else {
                startCall(streamID, stream, context: context)
            }
        case .streamClosed(let streamID, _):
            if let stream = streams.removeValue(forKey: streamID) {
                stream.deadlineTimer?.cancel()
                stream.task?.cancel()
                stream.inbound?.discard()
                abandoned(stream)
                perform(manager.streamClosed(), context: context)
            }
        case .headerListTooLarge(let streamID):
            shared.logger.debug("header list too large; stream reset", metadata: ["peer": "\(peer)", "stream": "\(streamID)"])
        case .goAway:
            break
        case .pingAck:
            manager.pingAcknowledged()
        }
    }

    /// A call whose stream ended before its status was sent (the client reset it, or the
    /// connection went away): counted and logged as CANCELLED, as grpc-go's interceptors see it.
    private func abandoned(_ stream: ServerStream) {
        guard !stream.finished else { return }
        stream.finished = true
        recordFinished(stream, Status(code: .cancelled, message: "the stream ended before the call finished"))
    }

    /// The metrics and the access-log line of a call that ends now with `status`.
    private func recordFinished(_ stream: ServerStream, _ status: Status) {
        stream.metrics.finished(status, after: ContinuousClock.now - stream.started, logger: shared.logger, peer: peer,
                                context: stream.context)
    }

    private func openStream(
        _ streamID: Int32, headers: [(name: String, value: String)], endStream: Bool, context: ChannelHandlerContext
    ) {
        var method = "", path = "", contentType = "", encoding: String?, timeout: String?
        let metadata = Metadata(headers: headers) { name, value in
            switch name {
            case ":method": method = value
            case ":path": path = value
            case "content-type": contentType = value
            case "grpc-encoding": encoding = value
            case "grpc-timeout": timeout = value
            default: return false
            }
            return true
        }
        // PROTOCOL-HTTP2: requests are POSTs with content-type application/grpc[+proto|;…].
        guard method == "POST" else {
            respondHTTPError(streamID, status: 405, message: "gRPC requires POST")
            return
        }
        guard contentType == "application/grpc" || contentType.hasPrefix("application/grpc+")
            || contentType.hasPrefix("application/grpc;") else {
            respondHTTPError(streamID, status: 415, message: "content-type must be application/grpc")
            return
        }
        if let encoding, encoding != "identity" {
            respondTrailersOnly(streamID, Status(code: .unimplemented, message: "grpc-encoding \(encoding) is not supported"),
                                extraHeaders: [("grpc-accept-encoding", "identity")])
            return
        }
        guard let registered = shared.services.methods[path] else {
            respondTrailersOnly(streamID, Status(code: .unimplemented, message: "unknown method \(path)"))
            return
        }
        let metrics = shared.metrics.method(path)
        metrics.start()
        // The interceptors (deadline, authentication, role, scope, …) before any handler.
        var head = CallHead(path: path, method: registered, metadata: metadata, timeout: timeout,
                            connectionAuthentication: lastAuthentication, clientCertificate: clientCertificate)
        do {
            try shared.pipeline.admit(&head)
        } catch {
            let status = Status(error)
            metrics.finished(status, after: .zero, logger: shared.logger, peer: peer, caller: head.caller)
            respondTrailersOnly(streamID, status)
            return
        }
        lastAuthentication = head.connectionAuthentication
        let deadline = head.deadline
        let serverContext = ServerContext(head: head, peer: peer, connectionNumber: connectionNumber, streamID: streamID,
                                          logger: shared.logger, shuttingDown: shared.shuttingDown)
        let stream = ServerStream(method: registered, metrics: metrics, context: serverContext,
                                  maxMessageSize: shared.configuration.maxReceiveMessageSize)
        streams[streamID] = stream
        perform(manager.streamOpened(), context: context)
        if let deadline {
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let contextBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            let remaining = deadline - .now
            let nanoseconds = remaining.components.seconds * 1_000_000_000 + remaining.components.attoseconds / 1_000_000_000
            stream.deadlineTimer = context.eventLoop.scheduleTask(in: .nanoseconds(max(nanoseconds, 0))) {
                let handler = loopBound.value
                guard let stream = handler.streams[streamID], !stream.finished else { return }
                stream.task?.cancel()
                handler.finish(streamID, stream, with: Status(code: .deadlineExceeded, message: "deadline exceeded"),
                               context: contextBound.value)
            }
        }
        switch registered.kind {
        case .clientStreaming, .bidirectionalStreaming:
            startStreamingCall(streamID, stream, context: context)
            if endStream, let inbound = stream.inbound { endInput(streamID, stream, inbound, context: context) }
        case .unary, .serverStreaming:
            if endStream { startCall(streamID, stream, context: context) }
        }
    }

    /// The request is complete: run the handler in a task.
    private func startCall(_ streamID: Int32, _ stream: ServerStream, context: ChannelHandlerContext) {
        guard stream.task == nil else { return }
        do {
            try stream.deframer.finish()
        } catch {
            finish(streamID, stream, with: Status(error.rpcError), context: context)
            return
        }
        guard let request = stream.request else {
            finish(streamID, stream, with: Status(code: .internal, message: "no request message for \(stream.method.path)"),
                   context: context)
            return
        }
        let serverContext = stream.context
        switch stream.method.kind {
        case .unary(let call):
            stream.task = runReturningOne(streamID, context: context) { try await call(request, serverContext) }
        case .serverStreaming(let call):
            let send = responseSender(streamID, context: context)
            stream.task = runStreamingOut(streamID, context: context) { try await call(request, serverContext, send) }
        case .clientStreaming, .bidirectionalStreaming:
            preconditionFailure("streaming calls start with their headers (startStreamingCall)")
        }
    }

    /// A client- or bidirectional-streaming call was admitted: its handler runs from now on,
    /// reading the request messages as they arrive.
    private func startStreamingCall(_ streamID: Int32, _ stream: ServerStream, context: ChannelHandlerContext) {
        let inbound = InboundMessages(budget: budget(context: context))
        stream.inbound = inbound
        let requests = RequestStream(inbound)
        let serverContext = stream.context
        switch stream.method.kind {
        case .clientStreaming(let call):
            stream.task = runReturningOne(streamID, context: context) { try await call(requests, serverContext) }
        case .bidirectionalStreaming(let call):
            let send = responseSender(streamID, context: context)
            stream.task = runStreamingOut(streamID, context: context) { try await call(requests, serverContext, send) }
        case .unary, .serverStreaming:
            preconditionFailure("\(stream.method.path) is not client-streaming")
        }
    }

    /// Runs a handler that answers with one message (unary, client-streaming) in a task on
    /// the connection's executor; its response or error ends the call on the event loop.
    private func runReturningOne(
        _ streamID: Int32, context: ChannelHandlerContext, _ body: @escaping @Sendable () async throws -> [UInt8]
    ) -> Task<Void, Never> {
        let eventLoop = context.eventLoop
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        let contextBound = NIOLoopBound(context, eventLoop: eventLoop)
        return Task(executorPreference: taskExecutor) {
            let result: Result<[UInt8], RPCError>
            do {
                result = .success(try await body())
            } catch {
                result = .failure(RPCError(from: error))
            }
            eventLoop.execute {
                let handler = loopBound.value
                guard let stream = handler.streams[streamID], !stream.finished else { return }
                switch result {
                case .success(let response):
                    handler.finish(streamID, stream, response: response, context: contextBound.value)
                case .failure(let error):
                    handler.finish(streamID, stream, with: Status(error), context: contextBound.value)
                }
            }
        }
    }

    /// Runs a handler that sends its own messages (server-streaming, bidirectional) in a task;
    /// its return (OK) or error ends the call on the event loop.
    private func runStreamingOut(
        _ streamID: Int32, context: ChannelHandlerContext, _ body: @escaping @Sendable () async throws -> Void
    ) -> Task<Void, Never> {
        let eventLoop = context.eventLoop
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        let contextBound = NIOLoopBound(context, eventLoop: eventLoop)
        return Task(executorPreference: taskExecutor) {
            let status: Status
            do {
                try await body()
                status = .ok
            } catch {
                status = Status(RPCError(from: error))
            }
            eventLoop.execute {
                let handler = loopBound.value
                guard let stream = handler.streams[streamID], !stream.finished else { return }
                handler.finish(streamID, stream, with: status, context: contextBound.value)
            }
        }
    }

    /// The client half-closed a streaming call: the handler reads to the end of its input
    /// (a message cut short is the client's error, as for a unary call).
    private func endInput(_ streamID: Int32, _ stream: ServerStream, _ inbound: InboundMessages, context: ChannelHandlerContext) {
        do {
            try stream.deframer.finish()
        } catch {
            finish(streamID, stream, with: Status(error.rpcError), context: context)
            return
        }
        inbound.finish()
    }

    /// The streaming call's input is over (it finished, or failed): drops what its handler
    /// did not read and stops the handler if it still runs.
    private func endInbound(_ stream: ServerStream) {
        guard let inbound = stream.inbound else { return }
        stream.inbound = nil
        inbound.discard()
        stream.task?.cancel()
    }

    /// This connection's budget of unread streaming request messages; when it drains, the
    /// connection reads again.
    private func budget(context: ChannelHandlerContext) -> InboundBudget {
        if let inboundBudget { return inboundBudget }
        let eventLoop = context.eventLoop
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        let contextBound = NIOLoopBound(context, eventLoop: eventLoop)
        let budget = InboundBudget(limit: shared.configuration.maxBufferedStreamingRequestBytes) {
            eventLoop.execute { loopBound.value.syncReading(context: contextBound.value) }
        }
        inboundBudget = budget
        return budget
    }

    /// Stops or resumes reading from the socket as the budget says (TCP backpressure: see
    /// ``InboundBudget``).
    private func syncReading(context: ChannelHandlerContext) {
        guard let inboundBudget else { return }
        let pause = inboundBudget.isExceeded
        guard pause != readingPaused else { return }
        readingPaused = pause
        shared.logger.trace(pause ? "streaming handlers are behind: not reading" : "reading again", metadata: ["peer": "\(peer)"])
        try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: !pause)
    }

    /// The function a streaming handler sends its responses with: it waits while the
    /// connection cannot take more.
    private func responseSender(_ streamID: Int32, context: ChannelHandlerContext) -> @Sendable ([UInt8]) async throws -> Void {
        let eventLoop = context.eventLoop
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        let contextBound = NIOLoopBound(context, eventLoop: eventLoop)
        return { message in
            try await withCheckedThrowingContinuation { continuation in
                eventLoop.execute {
                    loopBound.value.sendStreamed(streamID, message, continuation, context: contextBound.value)
                }
            }
        }
    }

    /// Sends one message of a server- or bidirectional-streaming call; resumes the handler
    /// once the connection can take more.
    private func sendStreamed(
        _ streamID: Int32, _ message: [UInt8], _ continuation: CheckedContinuation<Void, any Error>,
        context: ChannelHandlerContext
    ) {
        guard let stream = streams[streamID], !stream.finished else {
            continuation.resume(throwing: CancellationError())
            return
        }
        let framed = MessageFraming.frame(message)
        if stream.headersSent {
            session.appendBody(streamID: streamID, framed)
        } else {
            stream.headersSent = true
            session.respond(streamID: streamID, headers: Self.headers(stream.context.response.initial), body: framed,
                            trailers: nil)
        }
        scheduleFlush(context: context)
        if session.pendingBodyBytes(streamID: streamID) > Self.streamedBacklogLimit {
            backlogWaiters[streamID] = continuation  // resumed by `resumeBacklogWaiters` after a flush
        } else if context.channel.isWritable {
            continuation.resume()
        } else {
            writabilityWaiters.append(continuation)
        }
    }

    /// Resumes the streaming handlers whose backlog nghttp2 has taken (the peer opened its
    /// window and the socket took the bytes), and fails those whose stream has ended.
    private func resumeBacklogWaiters() {
        guard !backlogWaiters.isEmpty else { return }
        for (streamID, waiter) in backlogWaiters {
            guard let stream = streams[streamID], !stream.finished else {
                backlogWaiters[streamID] = nil
                waiter.resume(throwing: CancellationError())
                continue
            }
            if session.pendingBodyBytes(streamID: streamID) <= Self.streamedBacklogLimit {
                backlogWaiters[streamID] = nil
                waiter.resume()
            }
        }
    }

    // MARK: Responses

    private static let responseHeaders: [(name: String, value: String)] = [
        (":status", "200"), ("content-type", "application/grpc"),
    ]
    private static let okTrailers = StatusTrailers.encode(.ok)

    /// A unary (or client-streaming) call succeeded.
    private func finish(_ streamID: Int32, _ stream: ServerStream, response: [UInt8], context: ChannelHandlerContext) {
        stream.finished = true
        stream.deadlineTimer?.cancel()
        endInbound(stream)
        recordFinished(stream, .ok)
        let (initial, trailing) = stream.context.response.snapshot()
        session.respond(streamID: streamID, headers: Self.headers(initial), body: MessageFraming.frame(response),
                        trailers: trailing.isEmpty ? Self.okTrailers : StatusTrailers.encode(.ok, extra: trailing))
        scheduleFlush(context: context)
    }

    /// A call ended with `status` (OK for a finished stream, or an error). The one place a
    /// call's status is written: in the trailers after responses, or Trailers-Only.
    private func finish(_ streamID: Int32, _ stream: ServerStream, with status: Status, context: ChannelHandlerContext) {
        stream.finished = true
        stream.deadlineTimer?.cancel()
        endInbound(stream)
        recordFinished(stream, status)
        if stream.headersSent {
            session.finish(streamID: streamID, trailers: StatusTrailers.encode(status, extra: stream.context.response.trailing))
        } else {
            respondTrailersOnly(streamID, status, metadata: stream.context.response.trailing)
        }
        scheduleFlush(context: context)
    }

    /// Response headers with the handler's initial metadata.
    private static func headers(_ metadata: Metadata) -> [(name: String, value: String)] {
        guard !metadata.isEmpty else { return responseHeaders }
        return responseHeaders + StatusTrailers.encode(metadata: metadata)
    }

    /// PROTOCOL-HTTP2 Trailers-Only: one HEADERS frame with the status, ending the stream.
    private func respondTrailersOnly(
        _ streamID: Int32, _ status: Status, extraHeaders: [(name: String, value: String)] = [],
        metadata: Metadata = Metadata()
    ) {
        session.respond(streamID: streamID, headers: Self.responseHeaders + extraHeaders + StatusTrailers.encode(status, extra: metadata),
                        body: nil, trailers: nil)
    }

    /// A request that is not gRPC at all (PROTOCOL-HTTP2: an HTTP status, with a gRPC
    /// status for clients that look).
    private func respondHTTPError(_ streamID: Int32, status: Int, message: String) {
        session.respond(streamID: streamID, headers: [(":status", String(status)), ("content-type", "application/grpc")]
                            + StatusTrailers.encode(Status(code: .internal, message: message)),
                        body: nil, trailers: nil)
    }

    // MARK: Output

    /// Coalesces the output of responses completed in the same event-loop tick into one flush.
    private func scheduleFlush(context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let contextBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            loopBound.value.flushScheduled = false
            loopBound.value.flushOutput(context: contextBound.value)
        }
    }

    /// Writes what nghttp2 has to send, then handles the streams that output ended.
    private func flushOutput(context: ChannelHandlerContext) {
        do {
            try context.writePendingOutput(of: session)
        } catch {
            context.close(promise: nil)
            return
        }
        // Streams that ended or were reset by what we just wrote.
        for event in session.takeEvents() { handle(event, context: context) }
        resumeBacklogWaiters()
        if !session.wantsIO {
            if session.exhaustedErrorBudget, context.channel.isActive {
                shared.logger.debug("closing connection: too many streams reset or refused (GOAWAY ENHANCE_YOUR_CALM)",
                                    metadata: ["peer": "\(peer)"])
            }
            context.close(promise: nil)
        }
    }

    // MARK: Idle, keepalive, shutdown

    /// Performs what the connection manager decided.
    private func perform(_ actions: [ServerConnectionManager.Action], context: ChannelHandlerContext) {
        for action in actions {
            switch action {
            case .armIdleTimer:
                idleTimer?.cancel()
                let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
                let contextBound = NIOLoopBound(context, eventLoop: context.eventLoop)
                idleTimer = context.eventLoop.scheduleTask(in: shared.configuration.idleTimeout) {
                    let handler = loopBound.value
                    let actions = handler.manager.idleTimerFired()
                    if !actions.isEmpty {
                        handler.shared.logger.debug("closing idle connection", metadata: ["peer": "\(handler.peer)"])
                    }
                    handler.perform(actions, context: contextBound.value)
                }
            case .cancelIdleTimer:
                idleTimer?.cancel()
                idleTimer = nil
            case .sendPing:
                session.ping()
                flushOutput(context: context)
            case .sendGoAway(let graceful):
                session.goAway(graceful: graceful)
                flushOutput(context: context)
            case .close:
                context.close(promise: nil)
            }
        }
    }
}
