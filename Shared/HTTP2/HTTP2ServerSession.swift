internal import CNGHTTP2

/// Settings and defences of a server connection. Every number is a default an operator can
/// change.
public struct HTTP2ServerConfiguration: Sendable, Hashable {
    /// SETTINGS_MAX_CONCURRENT_STREAMS we advertise. nghttp2's default is unlimited. Default 256.
    public var maxConcurrentStreams: Int = 256
    /// SETTINGS_INITIAL_WINDOW_SIZE we advertise. Default 1 MiB.
    public var initialWindowSize: Int = 1 << 20
    /// Connection-level receive window. Default 4 MiB.
    public var connectionWindowSize: Int = 4 << 20
    /// SETTINGS_MAX_HEADER_LIST_SIZE we advertise and enforce (nghttp2 advertises but does
    /// not enforce it; we count in the header callback). Default 16 KiB.
    public var maxHeaderListSize: Int = 16 << 10
    /// Rapid-reset defence (CVE-2023-44487): token bucket of client RST_STREAMs
    /// (nghttp2_option_set_stream_reset_rate_limit). Default burst 1000, 33 per second.
    public var streamResetBurst: Int = 1000
    public var streamResetRatePerSecond: Int = 33
    /// CONTINUATION flood defence (CVE-2024-28182). Default 8 frames per header block.
    public var maxContinuations: Int = 8
    /// Stream errors a peer may cause (streams we reset, invalid frames) in a burst before
    /// GOAWAY ENHANCE_YOUR_CALM, and how many are forgiven per second (`PeerErrorBudget`).
    /// Defaults 200 and 10.
    public var peerErrorBurst: Int = 200
    public var peerErrorRefillPerSecond: Int = 10

    public init() {}

    /// The defaults above.
    public static let defaults = HTTP2ServerConfiguration()
}

/// What the peer did, as recorded by nghttp2's callbacks during `receive`.
public enum HTTP2ServerEvent: Sendable {
    /// A request's header block is complete. `endStream` when it has no body.
    case headers(streamID: Int32, headers: [(name: String, value: String)], endStream: Bool)
    /// Body bytes of a stream.
    case data(streamID: Int32, bytes: [UInt8], endStream: Bool)
    /// The stream's request half ended without data in the same frame (e.g. an empty DATA
    /// frame with END_STREAM, or trailers).
    case endStream(streamID: Int32)
    /// The stream is gone (answered, reset by either side, or refused). `errorCode` is the
    /// HTTP/2 error code, 0 when it closed normally.
    case streamClosed(streamID: Int32, errorCode: UInt32)
    /// A header block exceeded SETTINGS_MAX_HEADER_LIST_SIZE; the stream has been reset.
    case headerListTooLarge(streamID: Int32)
    /// The peer sent GOAWAY.
    case goAway(lastStreamID: Int32, errorCode: UInt32)
    /// A PING acknowledgement arrived (answers to our keepalive pings).
    case pingAck
}

/// Why the connection cannot continue.
public struct HTTP2ConnectionError: Error, Sendable, CustomStringConvertible {
    /// nghttp2's error code (negative), or 0 for our own defences.
    public let code: Int
    public let description: String
}

/// A server-side HTTP/2 connection state machine: libnghttp2 used sans-I/O. Bytes go in with
/// `receive`, events come out; responses are submitted; bytes to send are pulled with
/// `withPendingOutput`. It never touches a socket and must be used from one thread (the
/// connection's event loop).
///
/// Ownership rules (the C boundary lives in this module only: the two sessions and NGHTTP2IO.swift):
/// - `session` is created in `init` and deleted in `deinit`; nothing else frees it.
/// - nghttp2 callbacks reach this object through `user_data`, an unretained reference that
///   is valid because the session never outlives `self`.
/// - Callbacks only append to `events` (or fill a response buffer); the session is never
///   re-entered from a callback, except `nghttp2_submit_trailer` inside the data read
///   callback, which nghttp2 documents for exactly that use.
/// - Header name/value pointers are copied by nghttp2 at submit time (no NO_COPY flags).
/// - The bytes `withPendingOutput` exposes are nghttp2's buffer, valid until the next call
///   into the session: the closure must copy them.
public final class HTTP2ServerSession: HTTP2OutputSource {
    private var session: OpaquePointer?
    private let configuration: HTTP2ServerConfiguration

    /// Events recorded by the callbacks during the current `receive`.
    private var events: [HTTP2ServerEvent] = []
    /// Header blocks being received, with their running size for the list-size limit.
    private var incomingHeaders: [Int32: (headers: [(name: String, value: String)], size: Int)] = [:]
    /// Bodies being sent, per stream.
    private var outgoing: [Int32: OutgoingBody] = [:]
    /// Stream-level errors the peer may still cause (see configuration).
    private var errorBudget: PeerErrorBudget
    private let now: @Sendable () -> ContinuousClock.Instant
    /// True once the error budget ran out and GOAWAY was submitted.
    public private(set) var exhaustedErrorBudget = false

    /// The response body of one stream, handed to nghttp2 by the data read callback.
    private final class OutgoingBody {
        var buffer: [UInt8]
        var offset = 0
        /// Trailers to send after the body; nil while the body may still grow (streaming).
        var trailers: [(name: String, value: String)]?
        /// True while nghttp2 has been told to wait (NGHTTP2_ERR_DEFERRED).
        var deferred = false

        init(buffer: [UInt8], trailers: [(name: String, value: String)]?) {
            self.buffer = buffer
            self.trailers = trailers
        }
    }

    /// `now` is the clock of the error budget (injectable for tests).
    public init(
        configuration: HTTP2ServerConfiguration = .defaults,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }
    ) throws {
        self.configuration = configuration
        self.now = now
        self.errorBudget = PeerErrorBudget(burst: configuration.peerErrorBurst,
                                           refillPerSecond: configuration.peerErrorRefillPerSecond)

        var callbacks: OpaquePointer?
        guard nghttp2_session_callbacks_new(&callbacks) == 0, let callbacks else {
            throw HTTP2ConnectionError(code: -901, description: "nghttp2_session_callbacks_new failed")
        }
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrameRecv)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onDataChunk)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose)
        nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks, onInvalidFrame)
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, onFrameSend)

        var options: OpaquePointer?
        guard nghttp2_option_new(&options) == 0, let options else {
            throw HTTP2ConnectionError(code: -901, description: "nghttp2_option_new failed")
        }
        defer { nghttp2_option_del(options) }
        nghttp2_option_set_stream_reset_rate_limit(
            options, UInt64(configuration.streamResetBurst), UInt64(configuration.streamResetRatePerSecond))
        nghttp2_option_set_max_continuations(options, configuration.maxContinuations)
        // Our own number of concurrent streams is enforced by nghttp2 once advertised.
        nghttp2_option_set_max_deflate_dynamic_table_size(options, 4096)

        let userData = Unmanaged.passUnretained(self).toOpaque()
        var created: OpaquePointer?
        let rv = nghttp2_session_server_new2(&created, callbacks, userData, options)
        guard rv == 0, let created else {
            throw HTTP2ConnectionError(nghttp2: Int(rv))
        }
        session = created

        var settings = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue),
                                   value: UInt32(configuration.maxConcurrentStreams)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue),
                                   value: UInt32(configuration.initialWindowSize)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
                                   value: UInt32(configuration.maxHeaderListSize)),
        ]
        try check(nghttp2_submit_settings(created, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count))
        if configuration.connectionWindowSize > 65_535 {
            try check(nghttp2_session_set_local_window_size(
                created, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32(configuration.connectionWindowSize)))
        }
    }

    deinit {
        if let session { nghttp2_session_del(session) }
    }

    private func check(_ rv: Int32) throws {
        guard rv == 0 else {
            throw HTTP2ConnectionError(nghttp2: Int(rv))
        }
    }

    // MARK: Input

    /// Feeds bytes read from the socket (whole reads, not single bytes: nghttp2's
    /// CONTINUATION counter can trip on partial frame headers) and returns what happened
    /// (with any events still pending from earlier output).
    public func receive(_ bytes: UnsafeRawBufferPointer) throws -> [HTTP2ServerEvent] {
        if let session { try nghttp2Receive(session, bytes) }
        return takeEvents()
    }

    /// Events recorded since the last call: sending output also produces some (a stream we
    /// end or reset closes while nghttp2 writes its last frame), so call this after
    /// `withPendingOutput` too.
    public func takeEvents() -> [HTTP2ServerEvent] {
        guard !events.isEmpty else { return [] }
        let result = events
        events.removeAll(keepingCapacity: true)
        return result
    }

    /// Records an error the peer caused; past the budget, submits GOAWAY ENHANCE_YOUR_CALM.
    private func peerCausedError() {
        guard !exhaustedErrorBudget, let session else { return }
        if !errorBudget.spend(at: now()) {
            exhaustedErrorBudget = true
            nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue),
                                  nghttp2_session_get_last_proc_stream_id(session),
                                  NGHTTP2_ENHANCE_YOUR_CALM.rawValue, nil, 0)
        }
    }

    // MARK: Output

    /// Submits a response: HEADERS, the body as DATA, then trailers. A nil `body` with
    /// trailers merged into `headers` is a Trailers-Only response (one HEADERS frame with
    /// END_STREAM). With `trailers` nil the stream stays open for `appendBody`/`finish`.
    public func respond(
        streamID: Int32, headers: [(name: String, value: String)], body: [UInt8]?,
        trailers: [(name: String, value: String)]?
    ) {
        guard let session else { return }
        guard let body else {
            _ = withNameValues(headers) { nva in
                nghttp2_submit_response(session, streamID, nva.baseAddress, nva.count, nil)
            }
            return
        }
        let outgoingBody = OutgoingBody(buffer: body, trailers: trailers)
        outgoing[streamID] = outgoingBody
        var provider = nghttp2_data_provider()
        provider.read_callback = onDataRead
        let rv = withNameValues(headers) { nva in
            nghttp2_submit_response(session, streamID, nva.baseAddress, nva.count, &provider)
        }
        if rv != 0 { outgoing[streamID] = nil }
    }

    /// Appends bytes to an open streaming response body.
    public func appendBody(streamID: Int32, _ bytes: [UInt8]) {
        guard let session, let body = outgoing[streamID] else { return }
        body.buffer += bytes
        resumeIfDeferred(session, streamID, body)
    }

    /// Ends an open streaming response with trailers.
    public func finish(streamID: Int32, trailers: [(name: String, value: String)]) {
        guard let session, let body = outgoing[streamID] else { return }
        body.trailers = trailers
        resumeIfDeferred(session, streamID, body)
    }

    private func resumeIfDeferred(_ session: OpaquePointer, _ streamID: Int32, _ body: OutgoingBody) {
        if body.deferred {
            body.deferred = false
            nghttp2_session_resume_data(session, streamID)
        }
    }

    /// Resets a stream (RST_STREAM) with an HTTP/2 error code (e.g. 8 = CANCEL).
    public func reset(streamID: Int32, errorCode: UInt32) {
        guard let session else { return }
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, errorCode)
    }

    /// Sends GOAWAY. `graceful` first announces the last stream id 2^31-1 (the shutdown
    /// notice), so in-flight and racing requests are still served; a later non-graceful
    /// call names the real last stream.
    public func goAway(graceful: Bool, errorCode: UInt32 = 0) {
        guard let session else { return }
        if graceful {
            nghttp2_submit_shutdown_notice(session)
        } else {
            nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue),
                                  nghttp2_session_get_last_proc_stream_id(session), errorCode, nil, 0)
        }
    }

    /// Sends a PING (keepalive); its ACK arrives as `.pingAck`.
    public func ping() {
        guard let session else { return }
        nghttp2_submit_ping(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nil)
    }

    /// Hands the bytes nghttp2 wants to send to `body`, one buffer at a time, while `more()`
    /// says the channel can take them (the caller's writability: never buffer unboundedly,
    /// CVE-2019-9517). Returns true when nghttp2 still has output after the loop stopped.
    public func withPendingOutput(more: () -> Bool, _ body: (UnsafeRawBufferPointer) -> Void) throws -> Bool {
        guard let session else { return false }
        return try nghttp2DrainOutput(session, more: more, body)
    }

    /// False once both sides are done with the connection (GOAWAY exchanged and no streams).
    public var wantsIO: Bool {
        guard let session else { return false }
        return nghttp2_session_want_read(session) != 0 || nghttp2_session_want_write(session) != 0
    }


    // MARK: Callbacks (recording only)

    fileprivate func beginHeaders(_ streamID: Int32) {
        incomingHeaders[streamID] = ([], 0)
    }

    /// Returns false when the header list exceeds the limit (the stream is then reset).
    fileprivate func header(_ streamID: Int32, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Bool {
        guard var entry = incomingHeaders[streamID] else { return true }
        // RFC 9113 §6.5.2: the size of an entry is name + value + 32 octets.
        entry.size += name.count + value.count + 32
        guard entry.size <= configuration.maxHeaderListSize else {
            incomingHeaders[streamID] = nil
            events.append(.headerListTooLarge(streamID: streamID))
            return false
        }
        entry.headers.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        incomingHeaders[streamID] = entry
        return true
    }

    fileprivate func frameReceived(type: UInt8, flags: UInt8, streamID: Int32, goAwayLastStream: Int32, goAwayError: UInt32) {
        let endStream = flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        switch UInt32(type) {
        case NGHTTP2_HEADERS.rawValue:
            if let entry = incomingHeaders.removeValue(forKey: streamID) {
                events.append(.headers(streamID: streamID, headers: entry.headers, endStream: endStream))
            } else if endStream {
                events.append(.endStream(streamID: streamID))  // trailers from the client
            }
        case NGHTTP2_DATA.rawValue:
            if endStream { events.append(.endStream(streamID: streamID)) }
        case NGHTTP2_GOAWAY.rawValue:
            events.append(.goAway(lastStreamID: goAwayLastStream, errorCode: goAwayError))
        case NGHTTP2_PING.rawValue:
            if flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0 { events.append(.pingAck) }
        default:
            break
        }
    }

    fileprivate func dataChunk(_ streamID: Int32, _ bytes: UnsafeRawBufferPointer) {
        events.append(.data(streamID: streamID, bytes: Array(bytes), endStream: false))
    }

    fileprivate func streamClosed(_ streamID: Int32, errorCode: UInt32) {
        incomingHeaders[streamID] = nil
        outgoing[streamID] = nil
        events.append(.streamClosed(streamID: streamID, errorCode: errorCode))
    }

    fileprivate func invalidFrame() {
        peerCausedError()
    }

    /// A frame went out: an RST_STREAM of ours (other than CANCEL/NO_ERROR, which we send for
    /// our own reasons) means the peer made a stream fail.
    fileprivate func frameSent(type: UInt8, errorCode: UInt32) {
        if UInt32(type) == NGHTTP2_RST_STREAM.rawValue, errorCode != NGHTTP2_CANCEL.rawValue,
           errorCode != NGHTTP2_NO_ERROR.rawValue {
            peerCausedError()
        }
    }

    /// Fills nghttp2's buffer from a stream's body; sends trailers at the end.
    fileprivate func readBody(
        _ session: OpaquePointer, _ streamID: Int32, _ buffer: UnsafeMutablePointer<UInt8>, _ capacity: Int,
        _ flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        guard let body = outgoing[streamID] else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
        let count = min(capacity, body.buffer.count - body.offset)
        if count > 0 {
            body.buffer.withUnsafeBufferPointer { source in
                buffer.update(from: source.baseAddress! + body.offset, count: count)
            }
            body.offset += count
        }
        if body.offset == body.buffer.count {
            body.buffer.removeAll(keepingCapacity: true)
            body.offset = 0
            if let trailers = body.trailers {
                flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue | NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
                let rv = withNameValues(trailers) { nva in
                    nghttp2_submit_trailer(session, streamID, nva.baseAddress, nva.count)
                }
                if rv != 0 { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
            } else if count == 0 {
                body.deferred = true
                return Int(NGHTTP2_ERR_DEFERRED.rawValue)
            }
        }
        return count
    }
}

// MARK: - C callbacks: recover the session object from user_data and record.

private func owner(_ userData: UnsafeMutableRawPointer?) -> HTTP2ServerSession {
    Unmanaged<HTTP2ServerSession>.fromOpaque(userData!).takeUnretainedValue()
}

private let onBeginHeaders: nghttp2_on_begin_headers_callback = { _, frame, userData in
    guard let frame, frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue),
          frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST else { return 0 }
    owner(userData).beginHeaders(frame.pointee.hd.stream_id)
    return 0
}

private let onHeader: nghttp2_on_header_callback = { _, frame, name, nameLength, value, valueLength, _, userData in
    guard let frame else { return 0 }
    let accepted = owner(userData).header(
        frame.pointee.hd.stream_id,
        name: UnsafeRawBufferPointer(start: name, count: nameLength),
        value: UnsafeRawBufferPointer(start: value, count: valueLength))
    return accepted ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue
}

private let onFrameRecv: nghttp2_on_frame_recv_callback = { _, frame, userData in
    guard let frame else { return 0 }
    let hd = frame.pointee.hd
    let isGoAway = hd.type == UInt8(NGHTTP2_GOAWAY.rawValue)
    owner(userData).frameReceived(
        type: hd.type, flags: hd.flags, streamID: hd.stream_id,
        goAwayLastStream: isGoAway ? frame.pointee.goaway.last_stream_id : 0,
        goAwayError: isGoAway ? frame.pointee.goaway.error_code : 0)
    return 0
}

private let onDataChunk: nghttp2_on_data_chunk_recv_callback = { _, _, streamID, data, length, userData in
    owner(userData).dataChunk(streamID, UnsafeRawBufferPointer(start: data, count: length))
    return 0
}

private let onStreamClose: nghttp2_on_stream_close_callback = { _, streamID, errorCode, userData in
    owner(userData).streamClosed(streamID, errorCode: errorCode)
    return 0
}

private let onInvalidFrame: nghttp2_on_invalid_frame_recv_callback = { _, _, _, userData in
    owner(userData).invalidFrame()
    return 0
}

private let onFrameSend: nghttp2_on_frame_send_callback = { _, frame, userData in
    guard let frame else { return 0 }
    let type = frame.pointee.hd.type
    let errorCode = type == UInt8(NGHTTP2_RST_STREAM.rawValue) ? frame.pointee.rst_stream.error_code : 0
    owner(userData).frameSent(type: type, errorCode: errorCode)
    return 0
}

private let onDataRead: nghttp2_data_source_read_callback = { session, streamID, buffer, length, flags, _, userData in
    guard let session, let buffer, let flags else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
    return owner(userData).readBody(session, streamID, buffer, length, flags)
}
