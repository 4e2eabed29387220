/// PROTOCOL-HTTP2: Length-Prefixed-Message → Compressed-Flag (1 byte) Message-Length
/// (4 bytes, big-endian) Message.
public enum MessageFraming {
    /// The 5-byte prefix of an uncompressed message of `length` bytes.
    public static func prefix(length: Int) -> (UInt8, UInt8, UInt8, UInt8, UInt8) {
        let n = UInt32(truncatingIfNeeded: length)
        return (0, UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF))
    }

    /// An uncompressed framed message.
    public static func frame(_ message: some Collection<UInt8>) -> [UInt8] {
        let p = prefix(length: message.count)
        return [p.0, p.1, p.2, p.3, p.4] + message
    }
}

/// Why a stream's DATA could not be split into messages.
public enum DeframingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A message announced as larger than the receive limit (RESOURCE_EXHAUSTED).
    case messageTooLarge(size: Int, limit: Int)
    /// Compressed-Flag 1 although the call negotiated no compression (INTERNAL).
    case compressedWithoutEncoding
    /// A Compressed-Flag other than 0 or 1 (INTERNAL).
    case invalidCompressedFlag(UInt8)
    /// The stream ended inside a message (INTERNAL).
    case truncatedMessage(received: Int, expected: Int)

    public var description: String {
        switch self {
        case .messageTooLarge(let size, let limit):
            return "received message of \(size) bytes exceeds the limit of \(limit) bytes"
        case .compressedWithoutEncoding: return "compressed message without a grpc-encoding"
        case .invalidCompressedFlag(let flag): return "invalid compressed flag \(flag)"
        case .truncatedMessage(let received, let expected):
            return "stream ended inside a message (\(received) of \(expected) bytes)"
        }
    }

    /// The status a call ends with for this error.
    public var rpcError: RPCError {
        switch self {
        case .messageTooLarge: return RPCError(code: .resourceExhausted, message: description)
        default: return RPCError(code: .internal, message: description)
        }
    }
}

/// Splits the DATA of one stream into messages as it arrives, in chunks of any size. The
/// size limit is checked on the announced length, before any of the message is buffered.
/// Whole messages inside a chunk are handed out without copying.
public struct MessageDeframer: Sendable {
    public let maxMessageSize: Int
    private var pending: [UInt8] = []

    public init(maxMessageSize: Int) {
        self.maxMessageSize = maxMessageSize
    }

    /// True when part of a message has been received and the rest has not.
    public var hasPartialMessage: Bool { !pending.isEmpty }

    /// Feeds one chunk; calls `onMessage` for every message completed by it, in order. The
    /// buffer passed to `onMessage` is valid only during that call.
    public mutating func process(
        _ chunk: UnsafeRawBufferPointer, onMessage: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        var rest = chunk
        // Complete a pending message from the front of the chunk: first its prefix, then its body.
        while !pending.isEmpty, !rest.isEmpty {
            let take = min(try bytesNeeded(), rest.count)
            pending.append(contentsOf: rest.prefix(take))
            rest = UnsafeRawBufferPointer(rebasing: rest.dropFirst(take))
            if try bytesNeeded() == 0 {
                let message = pending
                pending.removeAll(keepingCapacity: true)
                try message.withUnsafeBytes { try onMessage(UnsafeRawBufferPointer(rebasing: $0.dropFirst(5))) }
            }
        }
        guard pending.isEmpty else { return }
        while rest.count >= 5 {
            let length = try messageLength(rest)
            guard rest.count >= 5 + length else { break }
            try onMessage(UnsafeRawBufferPointer(rebasing: rest[5..<(5 + length)]))
            rest = UnsafeRawBufferPointer(rebasing: rest.dropFirst(5 + length))
        }
        pending.append(contentsOf: rest)
        _ = try bytesNeeded()
    }

    /// Called at the end of the stream: throws if it ended inside a message.
    public func finish() throws(DeframingError) {
        guard pending.isEmpty else {
            let expected = pending.count >= 5 ? ((try? bytesNeeded()) ?? 0) + pending.count : 5
            throw .truncatedMessage(received: pending.count, expected: expected)
        }
    }

    /// How many more bytes the pending message needs (validating its prefix once complete).
    private func bytesNeeded() throws(DeframingError) -> Int {
        if let flag = pending.first { try Self.checkFlag(flag) }
        guard pending.count >= 5 else { return 5 - pending.count }
        let length = try pending.withUnsafeBytes { buffer in
            Result { () throws(DeframingError) in try messageLength(buffer) }
        }.get()
        return 5 + length - pending.count
    }

    /// Reads a message prefix: the flag must be 0 and the announced length within the limit.
    private static func checkFlag(_ flag: UInt8) throws(DeframingError) {
        switch flag {
        case 0: return
        case 1: throw .compressedWithoutEncoding
        default: throw .invalidCompressedFlag(flag)
        }
    }

    private func messageLength(_ bytes: UnsafeRawBufferPointer) throws(DeframingError) -> Int {
        try Self.checkFlag(bytes[0])
        let length = Int(bytes[1]) << 24 | Int(bytes[2]) << 16 | Int(bytes[3]) << 8 | Int(bytes[4])
        guard length <= maxMessageSize else { throw .messageTooLarge(size: length, limit: maxMessageSize) }
        return length
    }
}
