import HTTP2
import NIOCore
import NIOSSL
import NIOTLS
import RPCWire
import TransportSecurity

/// What a finished call returned: status, metadata and response messages.
struct ClientCallResult: Sendable {
    var status: Status
    var initialMetadata = Metadata()
    var trailingMetadata = Metadata()
    var messages: [[UInt8]] = []
    /// True when the server never processed the request (REFUSED_STREAM, or above a GOAWAY's
    /// last stream id, or the connection failed before sending): safe to retry anywhere.
    var unprocessed = false
    /// True when no connection was tried because every address is in backoff after failing.
    var everyAddressInBackoff = false
}

/// One client HTTP/2 connection: joins the socket to an nghttp2 client session. Runs on the
/// channel's event loop; calls are started and cancelled through `NIOLoopBound`.
final class GRPCClientConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let session: HTTP2ClientSession
    private let authority: String
    /// "https" over TLS, "http" over plaintext HTTP/2.
    private let scheme: String
    /// Why the connection failed, when it did (a TLS handshake's error), for the calls' status.
    private(set) var failure: String?
    private let maxReceiveMessageSize: Int
    private var context: ChannelHandlerContext?
    private var calls: [Int32: Call] = [:]
    private var streamsByToken: [UInt64: Int32] = [:]
    private(set) var isUsable = true

    private final class Call {
        let token: UInt64
        let promise: EventLoopPromise<ClientCallResult>
        var result = ClientCallResult(status: Status(code: .unknown))
        var deframer: MessageDeframer
        var httpStatus: Int?
        var sawTrailers = false
        var failed: RPCError?
        /// Streaming calls: each response message as it arrives (not kept in the result).
        var onMessage: (([UInt8]) -> Void)?
        /// Streaming calls: a send waiting for the request body to drain below the limit.
        var sendWaiters: [EventLoopPromise<Void>] = []

        init(token: UInt64, promise: EventLoopPromise<ClientCallResult>, maxMessageSize: Int) {
            self.token = token
            self.promise = promise
            self.deframer = MessageDeframer(maxMessageSize: maxMessageSize)
        }
    }

    init(authority: String, scheme: String = "http", maxReceiveMessageSize: Int, configuration: HTTP2ClientConfiguration) throws {
        self.authority = authority
        self.scheme = scheme
        self.maxReceiveMessageSize = maxReceiveMessageSize
        self.session = try HTTP2ClientSession(configuration: configuration)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        flushOutput()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        isUsable = false
        failAll(RPCError(code: .unavailable, message: "connection to \(authority) closed\(failure.map { ": \($0)" } ?? "")"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        isUsable = false
        if failure == nil, error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError || error is ServerNameMismatch {
            failure = "TLS handshake failed (\(error))"
        }
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted(let negotiated) = event,
           negotiated != grpcApplicationProtocol {
            isUsable = false
            failure = "TLS handshake failed (the server did not negotiate HTTP/2, ALPN h2)"
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let events: [HTTP2ClientEvent]
        do {
            events = try buffer.withUnsafeReadableBytes { try session.receive($0) }
        } catch {
            isUsable = false
            failAll(RPCError(code: .unavailable, message: "HTTP/2 protocol error from \(authority): \(error)"))
            context.close(promise: nil)
            return
        }
        for event in events { handle(event) }
        flushOutput()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { flushOutput() }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Calls

    /// Starts a call; the promise completes when the stream ends (never fails: errors are
    /// carried in the result's status).
    func start(
        token: UInt64, path: String, metadata: Metadata, timeout: Duration?, message: [UInt8],
        promise: EventLoopPromise<ClientCallResult>
    ) {
        open(token: token, promise: promise, onMessage: nil) {
            try session.request(headers: requestHeaders(path: path, metadata: metadata, timeout: timeout),
                                body: MessageFraming.frame(message))
        }
    }

    /// Request bytes of a streaming call held back (not yet accepted by the server's flow
    /// control) past which a send waits.
    static let streamingSendLimit = 64 << 10

    /// Starts a streaming call: headers now, request messages with
    /// ``send(token:message:promise:)``, response messages to `onMessage` as they arrive; the
    /// promise completes when the stream ends (never fails: errors are in the status). With
    /// `request` (a server-streaming call), that one message goes with the headers and the
    /// sending side is closed.
    func startStreaming(
        token: UInt64, path: String, metadata: Metadata, timeout: Duration?, request: [UInt8]?,
        onMessage: @escaping ([UInt8]) -> Void, promise: EventLoopPromise<ClientCallResult>
    ) {
        open(token: token, promise: promise, onMessage: onMessage) {
            let headers = requestHeaders(path: path, metadata: metadata, timeout: timeout)
            if let request { return try session.request(headers: headers, body: MessageFraming.frame(request)) }
            return try session.openStream(headers: headers)
        }
    }

    /// Opens a call's stream with `submit` and records the call; a connection that can take
    /// no new stream completes the promise at once with UNAVAILABLE, marked unprocessed (the
    /// client may try another connection).
    private func open(token: UInt64, promise: EventLoopPromise<ClientCallResult>, onMessage: (([UInt8]) -> Void)?,
                      _ submit: () throws -> Int32) {
        func refuse(_ message: String) {
            var result = ClientCallResult(status: Status(code: .unavailable, message: message))
            result.unprocessed = true
            promise.succeed(result)
        }
        guard isUsable else {
            refuse(failure.map { "connection to \(authority) closed: \($0)" } ?? "connection to \(authority) is closing")
            return
        }
        do {
            let streamID = try submit()
            let call = Call(token: token, promise: promise, maxMessageSize: maxReceiveMessageSize)
            call.onMessage = onMessage
            calls[streamID] = call
            streamsByToken[token] = streamID
        } catch {
            refuse("cannot open a stream: \(error)")
        }
        flushOutput()
    }

    /// Sends one request message of a streaming call; `promise` completes once the call's
    /// held-back request bytes are under ``streamingSendLimit`` (backpressure), or fails when
    /// the call is over.
    func send(token: UInt64, message: [UInt8], promise: EventLoopPromise<Void>) {
        guard let streamID = streamsByToken[token], let call = calls[streamID], call.failed == nil else {
            promise.fail(RPCError(code: .cancelled, message: "the call is over"))
            return
        }
        session.appendBody(streamID: streamID, MessageFraming.frame(message))
        flushOutput()
        if session.pendingBodyBytes(streamID: streamID) < Self.streamingSendLimit {
            promise.succeed(())
        } else {
            call.sendWaiters.append(promise)
        }
    }

    /// Ends the request messages of a streaming call (half-close).
    func finishSending(token: UInt64) {
        guard let streamID = streamsByToken[token] else { return }
        session.finishBody(streamID: streamID)
        flushOutput()
    }

    /// Resumes the sends waiting on streams whose held-back bytes went under the limit.
    private func releaseSendWaiters() {
        for (streamID, call) in calls where !call.sendWaiters.isEmpty
            && session.pendingBodyBytes(streamID: streamID) < Self.streamingSendLimit {
            let waiters = call.sendWaiters
            call.sendWaiters = []
            for waiter in waiters { waiter.succeed(()) }
        }
    }

    private func requestHeaders(path: String, metadata: Metadata, timeout: Duration?) -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = [
            (":method", "POST"), (":scheme", scheme), (":path", path), (":authority", authority),
            ("content-type", "application/grpc"), ("te", "trailers"), ("user-agent", "doorstep-grpc/1"),
        ]
        if let timeout { headers.append(("grpc-timeout", GRPCTimeout.format(timeout))) }
        for entry in metadata where Metadata.isValidName(entry.name) && !Metadata.isReserved(entry.name) {
            headers.append((entry.name, Metadata.headerValue(entry.value)))
        }
        return headers
    }

    /// Cancels a call (RST_STREAM CANCEL) and completes it with `status`.
    func cancel(token: UInt64, status: RPCError) {
        guard let streamID = streamsByToken[token], let call = calls[streamID] else { return }
        session.cancel(streamID: streamID)
        call.failed = status
        flushOutput()
    }

    private func handle(_ event: HTTP2ClientEvent) {
        switch event {
        case .headers(let streamID, let headers, let isTrailers, _):
            guard let call = calls[streamID] else { return }
            let decoded = StatusTrailers.decode(headers)
            if let http = decoded.httpStatus { call.httpStatus = http }
            if let status = decoded.status {
                // Trailers, or a Trailers-Only response.
                call.sawTrailers = true
                call.result.status = status
                call.result.trailingMetadata = decoded.metadata
                // A streaming call the server ended while we were still sending: our side ends
                // too (END_STREAM), which closes the stream and completes the call now.
                if call.onMessage != nil { session.finishBody(streamID: streamID) }
            } else if !isTrailers {
                call.result.initialMetadata = decoded.metadata
            }
        case .data(let streamID, let bytes):
            guard let call = calls[streamID], call.failed == nil else { return }
            do {
                try bytes.withUnsafeBytes { buffer in
                    try call.deframer.process(buffer) { message in
                        if let onMessage = call.onMessage { onMessage(Array(message)) } else { call.result.messages.append(Array(message)) }
                    }
                }
            } catch {
                call.failed = (error as? DeframingError)?.rpcError ?? RPCError(code: .internal, message: "\(error)")
                session.cancel(streamID: streamID)
            }
        case .streamClosed(let streamID, let errorCode):
            guard let call = calls.removeValue(forKey: streamID) else { return }
            streamsByToken[call.token] = nil
            complete(call, errorCode: errorCode)
        case .goAway(let lastStreamID, _):
            isUsable = false
            // Streams above the last one the server processed will be closed by nghttp2
            // with REFUSED_STREAM-like semantics; mark them retryable.
            for (streamID, call) in calls where streamID > lastStreamID {
                call.result.unprocessed = true
            }
        case .headerListTooLarge(let streamID):
            calls[streamID]?.failed = RPCError(code: .resourceExhausted, message: "response headers too large")
        }
    }

    private func complete(_ call: Call, errorCode: UInt32) {
        let waiters = call.sendWaiters
        call.sendWaiters = []
        for waiter in waiters { waiter.fail(RPCError(code: .cancelled, message: "the call is over")) }
        var result = call.result
        if let failed = call.failed {
            result.status = Status(failed)
        } else if !call.sawTrailers {
            if errorCode == 7 {  // REFUSED_STREAM: the server did not process the request.
                result.unprocessed = true
                result.status = Status(code: .unavailable, message: "stream refused by \(authority)")
            } else if let http = call.httpStatus, http != 200 {
                result.status = Status(code: StatusCode(httpStatus: http), message: "HTTP status \(http) from \(authority)")
            } else {
                result.status = Status(code: errorCode == 8 ? .cancelled : .unavailable,
                                         message: "stream reset by \(authority) (HTTP/2 error \(errorCode))")
            }
        } else if let http = call.httpStatus, http != 200, result.status.code == .ok {
            result.status = Status(code: StatusCode(httpStatus: http), message: "HTTP status \(http)")
        } else if result.status.code == .ok {
            do {
                try call.deframer.finish()
            } catch {
                result.status = Status(error.rpcError)
            }
        }
        call.promise.succeed(result)
    }

    private func failAll(_ status: RPCError) {
        let pending = calls
        calls.removeAll()
        streamsByToken.removeAll()
        for call in pending.values {
            let waiters = call.sendWaiters
            call.sendWaiters = []
            for waiter in waiters { waiter.fail(status) }
            var result = call.result
            result.status = Status(status)
            call.promise.succeed(result)
        }
    }

    private func flushOutput() {
        guard let context else { return }
        do {
            try context.writePendingOutput(of: session)
        } catch {
            context.close(promise: nil)
            return
        }
        // Streams that ended or were reset by what we just wrote (e.g. a cancelled call).
        for event in session.takeEvents() { handle(event) }
        releaseSendWaiters()
    }
}
