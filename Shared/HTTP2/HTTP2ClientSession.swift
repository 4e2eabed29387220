internal import CNGHTTP2

/// Client connection settings.
public struct HTTP2ClientConfiguration: Sendable, Hashable {
    /// SETTINGS_INITIAL_WINDOW_SIZE we advertise. Default 1 MiB.
    public var initialWindowSize: Int = 1 << 20
    /// Connection-level receive window. Default 4 MiB.
    public var connectionWindowSize: Int = 4 << 20
    /// SETTINGS_MAX_HEADER_LIST_SIZE we advertise and enforce on responses. Default 64 KiB.
    public var maxHeaderListSize: Int = 64 << 10

    public init() {}

    public static let defaults = HTTP2ClientConfiguration()
}

/// What the server did, recorded by nghttp2's callbacks during `receive`.
public enum HTTP2ClientEvent: Sendable {
    /// A header block of a stream: the response headers, or (`isTrailers`) the trailers.
    case headers(streamID: Int32, headers: [(name: String, value: String)], isTrailers: Bool, endStream: Bool)
    /// Body bytes of a stream.
    case data(streamID: Int32, bytes: [UInt8])
    /// The stream is gone; `errorCode` is the HTTP/2 error code (0 = closed normally,
    /// 7 = REFUSED_STREAM: the server never processed it, safe to retry).
    case streamClosed(streamID: Int32, errorCode: UInt32)
    /// The server sent GOAWAY: streams above `lastStreamID` were not processed.
    case goAway(lastStreamID: Int32, errorCode: UInt32)
    /// A response header block exceeded our limit; the stream has been reset.
    case headerListTooLarge(streamID: Int32)
}

/// A client-side HTTP/2 connection state machine: libnghttp2 used sans-I/O, the mirror of
/// `HTTP2ServerSession` (same ownership rules, see there): bytes in → events out; requests
/// submitted; output pulled while the channel is writable.
public final class HTTP2ClientSession: HTTP2OutputSource {
    private var session: OpaquePointer?
    private let configuration: HTTP2ClientConfiguration
    private var events: [HTTP2ClientEvent] = []
    private var incomingHeaders: [Int32: (headers: [(name: String, value: String)], size: Int, isTrailers: Bool)] = [:]
    private var bodies: [Int32: (bytes: [UInt8], offset: Int)] = [:]
    /// Request bodies of streams opened with ``openStream(headers:)``: they grow as the
    /// caller appends messages and end when it finishes.
    private var streamingBodies: [Int32: StreamingBody] = [:]

    /// A request body still being written: bytes not yet handed to nghttp2 from `offset`.
    fileprivate final class StreamingBody {
        var buffer: [UInt8] = []
        var offset = 0
        var finished = false
        /// True while nghttp2 has been told to wait (NGHTTP2_ERR_DEFERRED).
        var deferred = false
    }

    public init(configuration: HTTP2ClientConfiguration = .defaults) throws {
        self.configuration = configuration
        var callbacks: OpaquePointer?
        guard nghttp2_session_callbacks_new(&callbacks) == 0, let callbacks else {
            throw HTTP2ConnectionError(code: -901, description: "nghttp2_session_callbacks_new failed")
        }
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, clientOnBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, clientOnHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, clientOnFrameRecv)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, clientOnDataChunk)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, clientOnStreamClose)

        let userData = Unmanaged.passUnretained(self).toOpaque()
        var created: OpaquePointer?
        let rv = nghttp2_session_client_new(&created, callbacks, userData)
        guard rv == 0, let created else {
            throw HTTP2ConnectionError(nghttp2: Int(rv))
        }
        session = created
        var settings = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue),
                                   value: UInt32(configuration.initialWindowSize)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
                                   value: UInt32(configuration.maxHeaderListSize)),
        ]
        var rc = nghttp2_submit_settings(created, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count)
        if rc == 0, configuration.connectionWindowSize > 65_535 {
            rc = nghttp2_session_set_local_window_size(
                created, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32(configuration.connectionWindowSize))
        }
        guard rc == 0 else {
            throw HTTP2ConnectionError(nghttp2: Int(rc))
        }
    }

    deinit {
        if let session { nghttp2_session_del(session) }
    }

    /// Feeds bytes read from the socket; returns what happened (with any events still
    /// pending from earlier output).
    public func receive(_ bytes: UnsafeRawBufferPointer) throws -> [HTTP2ClientEvent] {
        if let session { try nghttp2Receive(session, bytes) }
        return takeEvents()
    }

    /// Events recorded since the last call; sending output produces some too (a stream we
    /// reset closes while nghttp2 writes the RST_STREAM), so call this after
    /// `withPendingOutput`.
    public func takeEvents() -> [HTTP2ClientEvent] {
        guard !events.isEmpty else { return [] }
        let result = events
        events.removeAll(keepingCapacity: true)
        return result
    }

    /// Submits a request with a complete body (the stream's request half ends with it).
    /// Returns the new stream id, or throws when no stream can be opened (e.g. after GOAWAY).
    public func request(headers: [(name: String, value: String)], body: [UInt8]) throws -> Int32 {
        let streamID = try submitRequest(headers: headers)
        bodies[streamID] = (body, 0)
        return streamID
    }

    /// Opens a stream whose request body is written later (``appendBody(streamID:_:)``,
    /// ``finishBody(streamID:)``): client- and bidirectional-streaming calls. Returns the new
    /// stream id, or throws when no stream can be opened (e.g. after GOAWAY).
    public func openStream(headers: [(name: String, value: String)]) throws -> Int32 {
        let streamID = try submitRequest(headers: headers)
        streamingBodies[streamID] = StreamingBody()
        return streamID
    }

    /// Submits HEADERS of a new request whose body the data provider reads (`bodies` or
    /// `streamingBodies`, filled by the caller); the new stream id.
    private func submitRequest(headers: [(name: String, value: String)]) throws -> Int32 {
        guard let session else { throw HTTP2ConnectionError(code: -902, description: "session closed") }
        var provider = nghttp2_data_provider()
        provider.read_callback = clientOnDataRead
        let streamID = withNameValues(headers) { nva in
            nghttp2_submit_request(session, nil, nva.baseAddress, nva.count, &provider, nil)
        }
        guard streamID > 0 else { throw HTTP2ConnectionError(nghttp2: Int(streamID)) }
        return streamID
    }

    /// Appends bytes to a streaming request body (ignored once the stream is gone).
    public func appendBody(streamID: Int32, _ bytes: [UInt8]) {
        guard let body = streamingBodies[streamID], !body.finished else { return }
        body.buffer += bytes
        resumeIfDeferred(streamID, body)
    }

    /// Ends a streaming request body (END_STREAM after what was appended).
    public func finishBody(streamID: Int32) {
        guard let body = streamingBodies[streamID], !body.finished else { return }
        body.finished = true
        resumeIfDeferred(streamID, body)
    }

    /// Bytes of a streaming request body not yet handed to nghttp2 (what the server's flow
    /// control holds back); 0 once the stream is gone.
    public func pendingBodyBytes(streamID: Int32) -> Int {
        guard let body = streamingBodies[streamID] else { return 0 }
        return body.buffer.count - body.offset
    }

    private func resumeIfDeferred(_ streamID: Int32, _ body: StreamingBody) {
        guard body.deferred, let session else { return }
        body.deferred = false
        nghttp2_session_resume_data(session, streamID)
    }

    /// Cancels a stream (RST_STREAM CANCEL).
    public func cancel(streamID: Int32) {
        guard let session else { return }
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, NGHTTP2_CANCEL.rawValue)
    }

    /// Sends GOAWAY (we are closing).
    public func goAway() {
        guard let session else { return }
        nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, NGHTTP2_NO_ERROR.rawValue, nil, 0)
    }

    /// See `HTTP2ServerSession.withPendingOutput`.
    public func withPendingOutput(more: () -> Bool, _ body: (UnsafeRawBufferPointer) -> Void) throws -> Bool {
        guard let session else { return false }
        return try nghttp2DrainOutput(session, more: more, body)
    }

    // MARK: Callbacks (recording only)

    fileprivate func beginHeaders(_ streamID: Int32, isTrailers: Bool) {
        incomingHeaders[streamID] = ([], 0, isTrailers)
    }

    fileprivate func header(_ streamID: Int32, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Bool {
        guard var entry = incomingHeaders[streamID] else { return true }
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
                events.append(.headers(streamID: streamID, headers: entry.headers, isTrailers: entry.isTrailers,
                                       endStream: endStream))
            }
        case NGHTTP2_GOAWAY.rawValue:
            events.append(.goAway(lastStreamID: goAwayLastStream, errorCode: goAwayError))
        default:
            break
        }
    }

    fileprivate func dataChunk(_ streamID: Int32, _ bytes: UnsafeRawBufferPointer) {
        events.append(.data(streamID: streamID, bytes: Array(bytes)))
    }

    fileprivate func streamClosed(_ streamID: Int32, errorCode: UInt32) {
        incomingHeaders[streamID] = nil
        bodies[streamID] = nil
        streamingBodies[streamID] = nil
        events.append(.streamClosed(streamID: streamID, errorCode: errorCode))
    }

    fileprivate func readBody(_ streamID: Int32, _ buffer: UnsafeMutablePointer<UInt8>, _ capacity: Int,
                              _ flags: UnsafeMutablePointer<UInt32>) -> Int {
        if let streaming = streamingBodies[streamID] {
            return readStreamingBody(streaming, buffer, capacity, flags)
        }
        guard var body = bodies[streamID] else {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            return 0
        }
        let count = min(capacity, body.bytes.count - body.offset)
        if count > 0 {
            body.bytes.withUnsafeBufferPointer { buffer.update(from: $0.baseAddress! + body.offset, count: count) }
            body.offset += count
        }
        if body.offset == body.bytes.count {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            bodies[streamID] = nil
        } else {
            bodies[streamID] = body
        }
        return count
    }
}

extension HTTP2ClientSession {
    /// Fills nghttp2's buffer from a streaming body; defers while it is empty and not finished.
    fileprivate func readStreamingBody(_ body: StreamingBody, _ buffer: UnsafeMutablePointer<UInt8>, _ capacity: Int,
                                       _ flags: UnsafeMutablePointer<UInt32>) -> Int {
        let count = min(capacity, body.buffer.count - body.offset)
        if count > 0 {
            body.buffer.withUnsafeBufferPointer { buffer.update(from: $0.baseAddress! + body.offset, count: count) }
            body.offset += count
        }
        if body.offset == body.buffer.count {
            body.buffer.removeAll(keepingCapacity: true)
            body.offset = 0
            if body.finished {
                flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            } else if count == 0 {
                body.deferred = true
                return Int(NGHTTP2_ERR_DEFERRED.rawValue)
            }
        } else if body.offset > 1 << 16, body.offset * 2 > body.buffer.count {
            body.buffer.removeFirst(body.offset)
            body.offset = 0
        }
        return count
    }
}

private func clientOwner(_ userData: UnsafeMutableRawPointer?) -> HTTP2ClientSession {
    Unmanaged<HTTP2ClientSession>.fromOpaque(userData!).takeUnretainedValue()
}

private let clientOnBeginHeaders: nghttp2_on_begin_headers_callback = { _, frame, userData in
    guard let frame, frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue) else { return 0 }
    let category = frame.pointee.headers.cat
    guard category == NGHTTP2_HCAT_RESPONSE || category == NGHTTP2_HCAT_HEADERS else { return 0 }
    clientOwner(userData).beginHeaders(frame.pointee.hd.stream_id, isTrailers: category == NGHTTP2_HCAT_HEADERS)
    return 0
}

private let clientOnHeader: nghttp2_on_header_callback = { _, frame, name, nameLength, value, valueLength, _, userData in
    guard let frame else { return 0 }
    let accepted = clientOwner(userData).header(
        frame.pointee.hd.stream_id,
        name: UnsafeRawBufferPointer(start: name, count: nameLength),
        value: UnsafeRawBufferPointer(start: value, count: valueLength))
    return accepted ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue
}

private let clientOnFrameRecv: nghttp2_on_frame_recv_callback = { _, frame, userData in
    guard let frame else { return 0 }
    let hd = frame.pointee.hd
    let isGoAway = hd.type == UInt8(NGHTTP2_GOAWAY.rawValue)
    clientOwner(userData).frameReceived(
        type: hd.type, flags: hd.flags, streamID: hd.stream_id,
        goAwayLastStream: isGoAway ? frame.pointee.goaway.last_stream_id : 0,
        goAwayError: isGoAway ? frame.pointee.goaway.error_code : 0)
    return 0
}

private let clientOnDataChunk: nghttp2_on_data_chunk_recv_callback = { _, _, streamID, data, length, userData in
    clientOwner(userData).dataChunk(streamID, UnsafeRawBufferPointer(start: data, count: length))
    return 0
}

private let clientOnStreamClose: nghttp2_on_stream_close_callback = { _, streamID, errorCode, userData in
    clientOwner(userData).streamClosed(streamID, errorCode: errorCode)
    return 0
}

private let clientOnDataRead: nghttp2_data_source_read_callback = { _, streamID, buffer, length, flags, _, userData in
    guard let buffer, let flags else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
    return clientOwner(userData).readBody(streamID, buffer, length, flags)
}
