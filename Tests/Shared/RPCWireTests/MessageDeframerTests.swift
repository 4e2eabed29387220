import RPCWire
import Testing

/// Feeds `chunks` to a deframer and collects the messages.
func deframe(_ chunks: [[UInt8]], limit: Int = 1 << 20) throws -> [[UInt8]] {
    var deframer = MessageDeframer(maxMessageSize: limit)
    var messages: [[UInt8]] = []
    for chunk in chunks {
        try chunk.withUnsafeBytes { buffer in
            try deframer.process(buffer) { messages.append(Array($0)) }
        }
    }
    try deframer.finish()
    return messages
}

@Suite("Length-prefixed message deframing")
struct MessageDeframerTests {
    static let messages: [[UInt8]] = [[1, 2, 3], [], Array(repeating: 0xAB, count: 300), [0]]
    static let stream: [UInt8] = messages.flatMap { MessageFraming.frame($0) }

    @Test("many messages in one buffer")
    func oneBuffer() throws {
        #expect(try deframe([Self.stream]) == Self.messages)
    }

    @Test("drip-fed one byte at a time")
    func dripFed() throws {
        #expect(try deframe(Self.stream.map { [$0] }) == Self.messages)
    }

    @Test("split into two chunks at every position")
    func everySplit() throws {
        for cut in 0...Self.stream.count {
            #expect(try deframe([Array(Self.stream[..<cut]), Array(Self.stream[cut...])]) == Self.messages, "cut at \(cut)")
        }
    }

    @Test("one message per buffer, and empty chunks")
    func onePerBuffer() throws {
        let chunks = Self.messages.map { MessageFraming.frame($0) } + [[]]
        #expect(try deframe(chunks) == Self.messages)
    }

    @Test("a message over the limit is refused from its prefix alone, at the exact boundary")
    func sizeLimit() throws {
        #expect(try deframe([MessageFraming.frame([UInt8](repeating: 1, count: 10))], limit: 10).count == 1)
        var deframer = MessageDeframer(maxMessageSize: 10)
        let prefixOnly: [UInt8] = [0, 0, 0, 0, 11]
        #expect(throws: DeframingError.messageTooLarge(size: 11, limit: 10)) {
            try prefixOnly.withUnsafeBytes { try deframer.process($0) { _ in } }
        }
        // A 4 GiB announcement is refused without waiting for (or buffering) its body.
        var huge = MessageDeframer(maxMessageSize: 4 << 20)
        #expect(throws: DeframingError.messageTooLarge(size: 0xFFFF_FFFF, limit: 4 << 20)) {
            try [UInt8]([0, 0xFF, 0xFF, 0xFF, 0xFF]).withUnsafeBytes { try huge.process($0) { _ in } }
        }
    }

    @Test("a compressed flag without grpc-encoding, or an invalid flag, is refused")
    func flags() {
        #expect(throws: DeframingError.compressedWithoutEncoding) { try deframe([[1, 0, 0, 0, 0]]) }
        #expect(throws: DeframingError.invalidCompressedFlag(7)) { try deframe([[7, 0, 0, 0, 0]]) }
        #expect(throws: DeframingError.compressedWithoutEncoding) { try deframe([[0, 0, 0, 0, 1, 9], [1], [0, 0]]) }
    }

    @Test("a stream ending inside a prefix or a body is truncated")
    func truncated() {
        #expect(throws: DeframingError.truncatedMessage(received: 3, expected: 5)) { try deframe([[0, 0, 0]]) }
        #expect(throws: DeframingError.truncatedMessage(received: 7, expected: 9)) { try deframe([[0, 0, 0, 0, 4, 1, 2]]) }
    }

    @Test("error statuses follow the gRPC conventions")
    func statuses() {
        #expect(DeframingError.messageTooLarge(size: 2, limit: 1).rpcError.code == .resourceExhausted)
        #expect(DeframingError.compressedWithoutEncoding.rpcError.code == .internal)
    }
}

@Suite("Deframing large messages in HTTP/2-sized chunks")
struct LargeMessageDeframerTests {
    @Test("a message over the limit is refused on its first chunk")
    func oversizeInChunks() {
        let message = MessageFraming.frame([UInt8](repeating: 7, count: 5 << 20))
        var deframer = MessageDeframer(maxMessageSize: 4 << 20)
        var delivered = 0
        #expect(throws: DeframingError.messageTooLarge(size: 5 << 20, limit: 4 << 20)) {
            for start in stride(from: 0, to: message.count, by: 16_384) {
                let chunk = Array(message[start..<min(start + 16_384, message.count)])
                try chunk.withUnsafeBytes { try deframer.process($0) { _ in delivered += 1 } }
            }
        }
        #expect(delivered == 0)
    }

    @Test("a message at the limit passes in chunks")
    func atLimitInChunks() throws {
        let message = MessageFraming.frame([UInt8](repeating: 7, count: 1 << 20))
        var deframer = MessageDeframer(maxMessageSize: 1 << 20)
        var sizes: [Int] = []
        for start in stride(from: 0, to: message.count, by: 16_384) {
            let chunk = Array(message[start..<min(start + 16_384, message.count)])
            try chunk.withUnsafeBytes { try deframer.process($0) { sizes.append($0.count) } }
        }
        try deframer.finish()
        #expect(sizes == [1 << 20])
    }
}
