/// Where the frames of a client's byte stream end: the 24-octet connection preface, then
/// frames of a 9-octet header (RFC 9113 §4.1: a 24-bit payload length first) and a payload.
///
/// The server session feeds nghttp2 one frame at a time with it, so its defences act between
/// two frames instead of after a whole socket read: once a peer is over a budget, not one
/// more of its frames is processed (a 64 KiB read can hold hundreds of small frames). It only
/// counts octets; nghttp2 still validates everything, and a peer whose bytes make no sense
/// gets nghttp2's connection error on the first piece.
public struct InboundFrameBoundaries: Sendable {
    /// RFC 9113 §3.4: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".
    public static let prefaceLength = 24
    public static let frameHeaderLength = 9

    private var prefaceRemaining = InboundFrameBoundaries.prefaceLength
    /// Octets of the current frame header seen so far (0 to 9).
    private var headerSeen = 0
    /// The payload length, assembled from the first three header octets.
    private var payloadLength = 0
    /// Payload octets of the current frame still to come once its header is complete.
    private var payloadRemaining = 0

    public init() {}

    /// The length of the leading part of `bytes` that ends where the preface or the current
    /// frame ends, or `bytes.count` when it ends inside one; consumes that part. Never 0 for
    /// non-empty `bytes`.
    public mutating func lengthToNextBoundary(in bytes: UnsafeRawBufferPointer) -> Int {
        if prefaceRemaining > 0 {
            let taken = min(prefaceRemaining, bytes.count)
            prefaceRemaining -= taken
            return taken
        }
        var index = 0
        while index < bytes.count {
            if headerSeen < Self.frameHeaderLength {
                if headerSeen < 3 { payloadLength = payloadLength << 8 | Int(bytes[index]) }
                headerSeen += 1
                index += 1
                if headerSeen == Self.frameHeaderLength {
                    payloadRemaining = payloadLength
                    payloadLength = 0
                    if payloadRemaining == 0 {
                        headerSeen = 0
                        return index
                    }
                }
            } else {
                let taken = min(payloadRemaining, bytes.count - index)
                payloadRemaining -= taken
                index += taken
                if payloadRemaining == 0 {
                    headerSeen = 0
                    return index
                }
            }
        }
        return index
    }
}
