internal import CNGHTTP2

/// What both HTTP/2 sessions offer their channel handler: the bytes nghttp2 wants to send.
public protocol HTTP2OutputSource: AnyObject {
    /// Hands nghttp2's pending output to `body`, one buffer at a time, while `more()` says the
    /// channel can take it; returns true when output remains. Buffers are nghttp2's own and
    /// valid only during the call (copy them).
    func withPendingOutput(more: () -> Bool, _ body: (UnsafeRawBufferPointer) -> Void) throws -> Bool
}

extension HTTP2ConnectionError {
    /// An nghttp2 error code (negative) as an error with nghttp2's own text.
    init(nghttp2 code: Int) {
        self.init(code: code, description: String(cString: nghttp2_strerror(Int32(truncatingIfNeeded: code))))
    }
}

/// Feeds bytes read from the socket to a session (`nghttp2_session_mem_recv`).
func nghttp2Receive(_ session: OpaquePointer, _ bytes: UnsafeRawBufferPointer) throws {
    guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
    let rv = nghttp2_session_mem_recv(session, base.assumingMemoryBound(to: UInt8.self), bytes.count)
    if rv < 0 { throw HTTP2ConnectionError(nghttp2: rv) }
}

/// Drains `nghttp2_session_mem_send` into `body` while `more()`; returns whether output remains.
func nghttp2DrainOutput(
    _ session: OpaquePointer, more: () -> Bool, _ body: (UnsafeRawBufferPointer) -> Void
) throws -> Bool {
    while more() {
        var data: UnsafePointer<UInt8>?
        let length = nghttp2_session_mem_send(session, &data)
        if length < 0 { throw HTTP2ConnectionError(nghttp2: length) }
        guard length > 0, let data else { return false }
        body(UnsafeRawBufferPointer(start: data, count: length))
    }
    return nghttp2_session_want_write(session) != 0
}
