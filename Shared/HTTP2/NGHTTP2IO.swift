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

/// Calls `body` with nghttp2 name/value structs pointing into `headers`' UTF-8 storage, valid
/// for the duration of the call (nghttp2 copies them at submit time).
func withNameValues<R>(_ headers: [(name: String, value: String)], _ body: (UnsafeBufferPointer<nghttp2_nv>) -> R) -> R {
    var storage: [UInt8] = []
    var ranges: [(Int, Int, Int, Int)] = []
    for (name, value) in headers {
        let nameStart = storage.count
        storage += name.utf8
        let valueStart = storage.count
        storage += value.utf8
        ranges.append((nameStart, valueStart - nameStart, valueStart, storage.count - valueStart))
    }
    storage.append(0)
    return storage.withUnsafeMutableBufferPointer { raw in
        let base = raw.baseAddress!
        let nva = ranges.map { nameStart, nameLength, valueStart, valueLength in
            nghttp2_nv(name: base + nameStart, value: base + valueStart,
                       namelen: nameLength, valuelen: valueLength, flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
        }
        return nva.withUnsafeBufferPointer(body)
    }
}
