internal import CNGHTTP2

/// Settings and defences of a server connection. Every number is a default an operator can
/// change.
public struct HTTP2ServerConfiguration: Sendable, Hashable {
    /// SETTINGS_MAX_CONCURRENT_STREAMS we advertise. A stream the peer opens beyond it gets
    /// RST_STREAM(REFUSED_STREAM), never reaches the handler, and the connection stays
    /// (RFC 9113 §5.1.2). Default 256.
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
    /// MadeYouReset defence (CVE-2025-8671): streams we must reset because of what the peer
    /// sent on them (flow-control violations, malformed or inconsistent requests, header lists
    /// over the limit) in a burst before GOAWAY ENHANCE_YOUR_CALM and closing the connection,
    /// and how many are forgiven per second (`PeerErrorBudget`, checked after every frame). A
    /// conforming client causes none, and each may have started a handler; at 10 a peer
    /// pacing one per round trip is cut off within 11 round trips. Defaults 10 and 1.
    public var peerResetBurst: Int = 10
    public var peerResetRefillPerSecond: Int = 1
    /// Streams the peer opens beyond `maxConcurrentStreams` (each refused) in a burst before
    /// GOAWAY ENHANCE_YOUR_CALM and closing the connection, and how many are forgiven per
    /// second. A refusal costs a header block's decoding and a RST_STREAM, no handler; 200
    /// covers a client that opens its default 100 streams before our SETTINGS reach it.
    /// Defaults 200 and 10.
    public var streamRefusalBurst: Int = 200
    public var streamRefusalRefillPerSecond: Int = 10

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
    /// The stream is gone (answered, or reset by either side). `errorCode` is the HTTP/2
    /// error code, 0 when it closed normally. Streams refused beyond the concurrency limit
    /// produce no event at all.
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
///
/// Concurrent streams: nghttp2 1.52 treats a stream beyond an acknowledged
/// SETTINGS_MAX_CONCURRENT_STREAMS as a connection error (GOAWAY PROTOCOL_ERROR), and offers
/// no way to enforce a value other than the one it sends. So nghttp2 is given a higher limit
/// (`maxConcurrentStreams + streamRefusalBurst + 1`), the SETTINGS frame it produces is rewritten
/// to advertise `maxConcurrentStreams`, and this session refuses the streams in between itself
/// with RST_STREAM(REFUSED_STREAM). A peer past nghttp2's own limit still gets its connection
/// error, so nghttp2 never holds more streams than that.
public final class HTTP2ServerSession: HTTP2OutputSource {
    private var session: OpaquePointer?
    private let configuration: HTTP2ServerConfiguration

    /// Events recorded by the callbacks during the current `receive`.
    private var events: [HTTP2ServerEvent] = []
    /// Header blocks being received, with their running size for the list-size limit.
    private var incomingHeaders: [Int32: (headers: [(name: String, value: String)], size: Int)] = [:]
    /// Bodies being sent, per stream.
    private var outgoing: [Int32: OutgoingBody] = [:]
    /// Streams the peer may still make us reset (MadeYouReset), and streams it may still open
    /// beyond the limit (see configuration).
    private var resetBudget: PeerErrorBudget
    private var refusalBudget: PeerErrorBudget
    private let now: @Sendable () -> ContinuousClock.Instant
    /// Set by a callback when a budget ran out; acted on after the frame (callbacks never
    /// re-enter nghttp2).
    private var budgetRanOut = false
    /// True once a budget ran out: GOAWAY ENHANCE_YOUR_CALM is on its way, no further frame
    /// of the peer is processed, and the connection ends once the GOAWAY is written.
    public private(set) var exhaustedErrorBudget = false
    /// Streams reported with `.headers` that have not closed yet: at most
    /// `maxConcurrentStreams`.
    private var acceptedStreams: Set<Int32> = []
    /// Streams opened beyond the limit: refused, and none of their events is reported.
    private var refusedStreams: Set<Int32> = []
    /// Refused streams whose RST_STREAM(REFUSED_STREAM) is submitted after the current frame.
    private var refusalsToSubmit: [Int32] = []
    /// Streams whose RST_STREAM is already accounted for when nghttp2 sends it: counted when
    /// the peer's frame arrived, or reset for our own reasons. Emptied when all output is out.
    private var resetsAccountedFor: Set<Int32> = []
    /// Where the peer's frames end: the session is fed one frame at a time.
    private var inboundFrames = InboundFrameBoundaries()
    /// Our SETTINGS frame (the server preface), taken from nghttp2 in `init` and rewritten to
    /// advertise `maxConcurrentStreams`; written before any other output.
    private var serverPreface: [UInt8] = []

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
        self.resetBudget = PeerErrorBudget(burst: configuration.peerResetBurst,
                                           refillPerSecond: configuration.peerResetRefillPerSecond)
        self.refusalBudget = PeerErrorBudget(burst: configuration.streamRefusalBurst,
                                             refillPerSecond: configuration.streamRefusalRefillPerSecond)

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
        nghttp2_option_set_max_deflate_dynamic_table_size(options, 4096)

        let userData = Unmanaged.passUnretained(self).toOpaque()
        var created: OpaquePointer?
        let rv = nghttp2_session_server_new2(&created, callbacks, userData, options)
        guard rv == 0, let created else {
            throw HTTP2ConnectionError(nghttp2: Int(rv))
        }
        session = created

        // nghttp2 enforces a higher limit: room for the refused streams it holds until their
        // RST_STREAM is written (the refusal burst, and the one refusal that exceeds it). The
        // frame on the wire says maxConcurrentStreams.
        let nghttp2StreamLimit = UInt32(clamping: configuration.maxConcurrentStreams + max(configuration.streamRefusalBurst, 0) + 1)
        var settings = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue),
                                   value: nghttp2StreamLimit),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue),
                                   value: UInt32(configuration.initialWindowSize)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
                                   value: UInt32(configuration.maxHeaderListSize)),
        ]
        try check(nghttp2_submit_settings(created, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count))
        // The SETTINGS frame is the first output (nothing else was submitted): take it now.
        var frame: UnsafePointer<UInt8>?
        let frameLength = nghttp2_session_mem_send(created, &frame)
        guard frameLength > 0, let frame,
              let preface = Self.advertising(
                maxConcurrentStreams: UInt32(clamping: configuration.maxConcurrentStreams),
                inSettingsFrame: UnsafeRawBufferPointer(start: frame, count: frameLength))
        else {
            throw HTTP2ConnectionError(code: -902, description: "nghttp2's first output is not our SETTINGS frame")
        }
        serverPreface = preface
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

    /// A copy of `frame`, a SETTINGS frame without ACK holding a MAX_CONCURRENT_STREAMS entry,
    /// with that entry's value replaced by `maxConcurrentStreams` (the frame keeps its length,
    /// so the peer's SETTINGS ACK still acknowledges what nghttp2 sent). Nil for anything else.
    static func advertising(maxConcurrentStreams: UInt32, inSettingsFrame frame: UnsafeRawBufferPointer) -> [UInt8]? {
        var bytes = Array(frame)
        let header = InboundFrameBoundaries.frameHeaderLength
        guard bytes.count >= header else { return nil }
        let length = Int(bytes[0]) << 16 | Int(bytes[1]) << 8 | Int(bytes[2])
        guard bytes.count == header + length, length % 6 == 0,
              bytes[3] == UInt8(NGHTTP2_SETTINGS.rawValue), bytes[4] == 0,
              bytes[5...8].allSatisfy({ $0 == 0 }) else { return nil }
        var replaced = false
        // RFC 9113 §6.5.1: entries of a 16-bit identifier and a 32-bit value.
        for entry in stride(from: header, to: bytes.count, by: 6)
        where Int(bytes[entry]) << 8 | Int(bytes[entry + 1]) == Int(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue) {
            for index in 0..<4 {
                bytes[entry + 2 + index] = UInt8(truncatingIfNeeded: maxConcurrentStreams >> (24 - 8 * index))
            }
            replaced = true
        }
        return replaced ? bytes : nil
    }

    // MARK: Input

    /// Feeds bytes read from the socket and returns what happened (with any events still
    /// pending from earlier output). nghttp2 gets them one frame at a time (never less:
    /// its CONTINUATION counter can trip on partial frame headers, so only a read's last
    /// piece may end inside a frame), and the defences act after each frame: refused streams
    /// get their RST_STREAM, and once a budget has run out the rest is not processed.
    public func receive(_ bytes: UnsafeRawBufferPointer) throws -> [HTTP2ServerEvent] {
        guard let session else { return takeEvents() }
        var start = 0
        while start < bytes.count, !exhaustedErrorBudget {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[start...])
            let end = start + inboundFrames.lengthToNextBoundary(in: rest)
            try nghttp2Receive(session, UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
            start = end
            for streamID in refusalsToSubmit {
                nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID,
                                          NGHTTP2_REFUSED_STREAM.rawValue)
            }
            refusalsToSubmit.removeAll()
            cutOffIfOverBudget(session)
        }
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

    /// Records a stream reset the peer provoked (called from callbacks: only counts).
    private func peerProvokedReset() {
        if !resetBudget.spend(at: now()) { budgetRanOut = true }
    }

    /// Records a stream opened beyond the limit (called from callbacks: only counts).
    private func peerExceededStreamLimit() {
        if !refusalBudget.spend(at: now()) { budgetRanOut = true }
    }

    /// Once a budget has run out: GOAWAY ENHANCE_YOUR_CALM, after which nghttp2 ignores all
    /// input, drops the frames still queued, and wants no more I/O once the GOAWAY is written
    /// (the handler then closes the connection, which cancels the peer's calls).
    private func cutOffIfOverBudget(_ session: OpaquePointer) {
        guard budgetRanOut, !exhaustedErrorBudget else { return }
        exhaustedErrorBudget = true
        nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM.rawValue)
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

    /// Bytes of an open streaming response not yet handed to nghttp2 (what the peer's flow
    /// control holds back, or what the socket has not taken yet); 0 once the stream is gone.
    public func pendingBodyBytes(streamID: Int32) -> Int {
        guard let body = outgoing[streamID] else { return 0 }
        return body.buffer.count - body.offset
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

    /// Resets a stream (RST_STREAM) with an HTTP/2 error code (e.g. 8 = CANCEL). Our own
    /// decision: not counted against the peer.
    public func reset(streamID: Int32, errorCode: UInt32) {
        guard let session else { return }
        resetsAccountedFor.insert(streamID)
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
        if !serverPreface.isEmpty {
            guard more() else { return true }
            serverPreface.withUnsafeBytes(body)
            serverPreface = []
        }
        // `more` runs between two frames nghttp2 writes: a reset it just sent may have
        // exhausted a budget, and the GOAWAY then goes out instead of the frames still queued.
        let remains = try nghttp2DrainOutput(session, more: {
            cutOffIfOverBudget(session)
            return more()
        }, body)
        if !remains { resetsAccountedFor.removeAll() }
        return remains
    }

    /// False once both sides are done with the connection (GOAWAY exchanged and no streams,
    /// or our GOAWAY ENHANCE_YOUR_CALM written).
    public var wantsIO: Bool {
        guard let session else { return false }
        return !serverPreface.isEmpty || nghttp2_session_want_read(session) != 0
            || nghttp2_session_want_write(session) != 0
    }


    // MARK: Callbacks (recording only)

    /// A request stream opens: accepted while fewer than `maxConcurrentStreams` are open,
    /// refused otherwise (RFC 9113 §5.1.2: REFUSED_STREAM, the peer may retry it).
    fileprivate func beginHeaders(_ streamID: Int32) {
        if acceptedStreams.count < configuration.maxConcurrentStreams {
            acceptedStreams.insert(streamID)
            incomingHeaders[streamID] = ([], 0)
        } else {
            refusedStreams.insert(streamID)
            refusalsToSubmit.append(streamID)
            peerExceededStreamLimit()
        }
    }

    /// Returns false when the header list exceeds the limit (the stream is then reset).
    fileprivate func header(_ streamID: Int32, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Bool {
        guard var entry = incomingHeaders[streamID] else { return true }
        // RFC 9113 §6.5.2: the size of an entry is name + value + 32 octets.
        entry.size += name.count + value.count + 32
        guard entry.size <= configuration.maxHeaderListSize else {
            incomingHeaders[streamID] = nil
            events.append(.headerListTooLarge(streamID: streamID))
            resetsAccountedFor.insert(streamID)
            peerProvokedReset()
            return false
        }
        entry.headers.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        incomingHeaders[streamID] = entry
        return true
    }

    fileprivate func frameReceived(type: UInt8, flags: UInt8, streamID: Int32, goAwayLastStream: Int32, goAwayError: UInt32) {
        guard !refusedStreams.contains(streamID) else { return }
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
        guard !refusedStreams.contains(streamID) else { return }
        events.append(.data(streamID: streamID, bytes: Array(bytes), endStream: false))
    }

    fileprivate func streamClosed(_ streamID: Int32, errorCode: UInt32) {
        if refusedStreams.remove(streamID) != nil { return }
        acceptedStreams.remove(streamID)
        incomingHeaders[streamID] = nil
        outgoing[streamID] = nil
        events.append(.streamClosed(streamID: streamID, errorCode: errorCode))
    }

    /// nghttp2 found a frame invalid: a stream error (nghttp2 queued a RST_STREAM for the
    /// stream, counted now so the cut-off comes right after this frame), its own refusal of
    /// a stream beyond its limit before our SETTINGS were acknowledged, or a connection
    /// error (nghttp2 ends the connection itself).
    fileprivate func invalidFrame(streamID: Int32, libraryError: Int32) {
        if libraryError == NGHTTP2_ERR_REFUSED_STREAM.rawValue {
            peerExceededStreamLimit()
        } else {
            resetsAccountedFor.insert(streamID)
            peerProvokedReset()
        }
    }

    /// A frame went out. An RST_STREAM other than NO_ERROR, CANCEL and REFUSED_STREAM (ours
    /// to send, refusals counted when the stream arrived) means the peer made the stream fail:
    /// counted here unless it was when the peer's frame arrived (nghttp2 resets some streams,
    /// e.g. DATA beyond the content-length or the flow-control window, without telling).
    fileprivate func frameSent(type: UInt8, streamID: Int32, errorCode: UInt32) {
        guard UInt32(type) == NGHTTP2_RST_STREAM.rawValue, errorCode != NGHTTP2_CANCEL.rawValue,
              errorCode != NGHTTP2_NO_ERROR.rawValue, errorCode != NGHTTP2_REFUSED_STREAM.rawValue else { return }
        if resetsAccountedFor.remove(streamID) == nil {
            peerProvokedReset()
        }
    }

    /// Fills nghttp2's buffer from a stream's body; sends trailers at the end.
    fileprivate func readBody(
        _ session: OpaquePointer, _ streamID: Int32, _ buffer: UnsafeMutablePointer<UInt8>, _ capacity: Int,
        _ flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        guard let body = outgoing[streamID] else {
            resetsAccountedFor.insert(streamID)  // nghttp2 resets the stream: our failure, not the peer's
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
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
                if rv != 0 {
                    resetsAccountedFor.insert(streamID)
                    return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
                }
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

private let onInvalidFrame: nghttp2_on_invalid_frame_recv_callback = { _, frame, libraryError, userData in
    owner(userData).invalidFrame(streamID: frame?.pointee.hd.stream_id ?? 0, libraryError: libraryError)
    return 0
}

private let onFrameSend: nghttp2_on_frame_send_callback = { _, frame, userData in
    guard let frame else { return 0 }
    let type = frame.pointee.hd.type
    let errorCode = type == UInt8(NGHTTP2_RST_STREAM.rawValue) ? frame.pointee.rst_stream.error_code : 0
    owner(userData).frameSent(type: type, streamID: frame.pointee.hd.stream_id, errorCode: errorCode)
    return 0
}

private let onDataRead: nghttp2_data_source_read_callback = { session, streamID, buffer, length, flags, _, userData in
    guard let session, let buffer, let flags else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
    return owner(userData).readBody(session, streamID, buffer, length, flags)
}
