import HTTP2
import Synchronization
import Testing

/// HTTP/2 frame types, flags and error codes the tests write and read (RFC 9113 §6, §7).
enum Frame {
    static let data: UInt8 = 0, headers: UInt8 = 1, rstStream: UInt8 = 3, settings: UInt8 = 4
    static let goAway: UInt8 = 7, windowUpdate: UInt8 = 8
    static let endStream: UInt8 = 0x1, ack: UInt8 = 0x1, endHeaders: UInt8 = 0x4
    static let flowControlError: UInt32 = 3, refusedStream: UInt32 = 7, enhanceYourCalm: UInt32 = 11
    static let protocolError: UInt32 = 1
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    static func bytes(_ type: UInt8, flags: UInt8 = 0, stream: Int32 = 0, _ payload: [UInt8] = []) -> [UInt8] {
        let length = UInt32(payload.count)
        return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags]
            + bigEndian(UInt32(stream)) + payload
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    /// A request header block of HPACK literals without indexing (RFC 7541 §6.2.2): valid
    /// whatever the connection's HPACK state.
    static func requestBlock(_ extra: [(String, String)] = []) -> [UInt8] {
        let fields: [(String, String)] = [(":method", "POST"), (":scheme", "http"), (":path", "/pkg.Svc/Call"),
                                          (":authority", "test"), ("content-type", "application/grpc"),
                                          ("te", "trailers")] + extra
        var block: [UInt8] = []
        for (name, value) in fields {
            block.append(0x00)
            block.append(UInt8(name.utf8.count))
            block += name.utf8
            block.append(UInt8(value.utf8.count))
            block += value.utf8
        }
        return block
    }

    static func request(stream: Int32, endStream: Bool, _ extra: [(String, String)] = []) -> [UInt8] {
        bytes(headers, flags: endHeaders | (endStream ? Frame.endStream : 0), stream: stream, requestBlock(extra))
    }
}

/// One frame the server wrote.
struct WrittenFrame {
    let type: UInt8, flags: UInt8, streamID: Int32, payload: [UInt8]

    var errorCode: UInt32? {
        switch type {
        case Frame.rstStream where payload.count == 4: return Self.uint32(payload, at: 0)
        case Frame.goAway where payload.count >= 8: return Self.uint32(payload, at: 4)
        default: return nil
        }
    }

    var goAwayLastStream: Int32? {
        type == Frame.goAway && payload.count >= 8 ? Int32(bitPattern: Self.uint32(payload, at: 0) & 0x7FFF_FFFF) : nil
    }

    static func uint32(_ bytes: [UInt8], at index: Int) -> UInt32 {
        bytes[index..<index + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }
}

/// A hand-driven HTTP/2 client for a server session, in memory: it writes frames as bytes
/// (including what nghttp2's client would refuse to send) and reads what the server writes.
final class RawPeer {
    let server: HTTP2ServerSession
    var events: [HTTP2ServerEvent] = []
    var frames: [WrittenFrame] = []
    private var unparsed: [UInt8] = []

    init(_ configuration: HTTP2ServerConfiguration, now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) throws {
        server = try HTTP2ServerSession(configuration: configuration, now: now)
    }

    /// The client preface and an empty SETTINGS, then the ACK of the server's SETTINGS.
    func handshake() throws {
        try send(Frame.preface + Frame.bytes(Frame.settings))
        try send(Frame.bytes(Frame.settings, flags: Frame.ack))
    }

    /// Hands `bytes` to the server as one socket read, then collects what it writes.
    func send(_ bytes: [UInt8]) throws {
        events += try bytes.withUnsafeBytes { try server.receive($0) }
        var written: [UInt8] = []
        _ = try server.withPendingOutput(more: { true }) { written += $0 }
        events += server.takeEvents()
        unparsed += written
        while unparsed.count >= 9 {
            let length = Int(unparsed[0]) << 16 | Int(unparsed[1]) << 8 | Int(unparsed[2])
            guard unparsed.count >= 9 + length else { break }
            frames.append(WrittenFrame(type: unparsed[3], flags: unparsed[4],
                                       streamID: Int32(bitPattern: WrittenFrame.uint32(unparsed, at: 5) & 0x7FFF_FFFF),
                                       payload: Array(unparsed[9..<9 + length])))
            unparsed.removeFirst(9 + length)
        }
    }

    func resets(_ code: UInt32) -> [Int32] {
        frames.filter { $0.type == Frame.rstStream && $0.errorCode == code }.map(\.streamID)
    }

    var goAway: WrittenFrame? { frames.first { $0.type == Frame.goAway } }

    var openedStreams: [Int32] {
        events.compactMap { if case .headers(let id, _, _) = $0 { return id }; return nil }
    }

    func reportsAnything(about streamID: Int32) -> Bool {
        events.contains { event in
            switch event {
            case .headers(let id, _, _), .data(let id, _, _), .endStream(let id), .streamClosed(let id, _),
                 .headerListTooLarge(let id):
                return id == streamID
            case .goAway, .pingAck:
                return false
            }
        }
    }
}

/// A clock the test moves by hand.
final class ManualClock: Sendable {
    private let current = Mutex(ContinuousClock.now)
    var now: ContinuousClock.Instant { current.withLock { $0 } }
    func advance(by duration: Duration) { current.withLock { $0 += duration } }
}

@Suite("Where the peer's frames end")
struct InboundFrameBoundariesTests {
    /// The preface, then frames with payloads of 0, 6, 1, 16 384 and 3 octets.
    static let stream: (bytes: [UInt8], boundaries: [Int]) = {
        var bytes = Frame.preface
        var boundaries = [bytes.count]
        for (index, length) in [0, 6, 1, 16_384, 3].enumerated() {
            bytes += Frame.bytes(UInt8(index), stream: Int32(index), (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            boundaries.append(bytes.count)
        }
        return (bytes, boundaries)
    }()

    @Test("every piece ends at a frame boundary or at the end of its read, however the reads split",
          arguments: [1, 2, 7, 9, 10, 100, 16_393, 100_000])
    func pieces(readSize: Int) {
        let (bytes, boundaries) = Self.stream
        var splitter = InboundFrameBoundaries()
        var pieceEnds: [Int] = []
        var readEnds: [Int] = []
        var readStart = 0
        while readStart < bytes.count {
            let readEnd = min(readStart + readSize, bytes.count)
            readEnds.append(readEnd)
            var offset = readStart
            bytes[readStart..<readEnd].withUnsafeBytes { read in
                while offset < readEnd {
                    let length = splitter.lengthToNextBoundary(in: UnsafeRawBufferPointer(rebasing: read[(offset - readStart)...]))
                    #expect(length > 0)
                    offset += length
                    pieceEnds.append(offset)
                }
            }
            readStart = readEnd
        }
        #expect(pieceEnds == Array(Set(boundaries + readEnds)).sorted())
    }
}

@Suite("HTTP/2 server defences")
struct ServerDefenceTests {
    static func limited(_ streams: Int) -> HTTP2ServerConfiguration {
        var configuration = HTTP2ServerConfiguration()
        configuration.maxConcurrentStreams = streams
        return configuration
    }

    @Test("the SETTINGS frame advertises the configured MAX_CONCURRENT_STREAMS")
    func advertisedLimit() throws {
        let peer = try RawPeer(Self.limited(4))
        try peer.handshake()
        let settings = try #require(peer.frames.first)
        #expect(settings.type == Frame.settings && settings.flags == 0)
        let entries = stride(from: 0, to: settings.payload.count, by: 6).map { index in
            (id: Int(settings.payload[index]) << 8 | Int(settings.payload[index + 1]),
             value: WrittenFrame.uint32(settings.payload, at: index + 2))
        }
        #expect(entries.filter { $0.id == 3 }.map(\.value) == [4])
        #expect(entries.first { $0.id == 4 }?.value == 1 << 20)
    }

    @Test("streams beyond the acknowledged limit get REFUSED_STREAM; the others and the connection carry on")
    func refusedBeyondLimit() throws {
        let peer = try RawPeer(Self.limited(4))
        try peer.handshake()
        // Six streams in one read, each left open; the refused ones also send DATA at once.
        var burst: [UInt8] = []
        for stream: Int32 in [1, 3, 5, 7, 9, 11] {
            burst += Frame.request(stream: stream, endStream: false)
            burst += Frame.bytes(Frame.data, stream: stream, [0, 0, 0, 0, 1, 8])
        }
        try peer.send(burst)
        #expect(peer.openedStreams == [1, 3, 5, 7])
        #expect(peer.resets(Frame.refusedStream) == [9, 11])
        #expect(!peer.reportsAnything(about: 9) && !peer.reportsAnything(about: 11))
        #expect(peer.goAway == nil && peer.server.wantsIO)

        // Stream 1 completes; then a new stream is accepted on the same connection.
        try peer.send(Frame.bytes(Frame.data, flags: Frame.endStream, stream: 1))
        peer.server.respond(streamID: 1, headers: [(":status", "200")], body: [0, 0, 0, 0, 0],
                            trailers: [("grpc-status", "0")])
        try peer.send([])
        #expect(peer.events.contains { if case .streamClosed(1, 0) = $0 { return true }; return false })
        try peer.send(Frame.request(stream: 13, endStream: true))
        #expect(peer.openedStreams == [1, 3, 5, 7, 13])
        #expect(peer.resets(Frame.refusedStream) == [9, 11])
        #expect(peer.goAway == nil)
    }

    @Test("a peer that keeps opening streams beyond the limit is cut off after the refusal burst, at that very frame")
    func refusalFlood() throws {
        var configuration = Self.limited(1)
        configuration.streamRefusalBurst = 5
        let peer = try RawPeer(configuration)
        try peer.handshake()
        try peer.send((0..<20).flatMap { Frame.request(stream: 2 * Int32($0) + 1, endStream: false) })
        #expect(peer.openedStreams == [1])
        // Stream 1 accepted, streams 3…11 refused within the burst of 5, stream 13 over it.
        let goAway = try #require(peer.goAway)
        #expect(goAway.errorCode == Frame.enhanceYourCalm)
        #expect(goAway.goAwayLastStream == 13)
        #expect(peer.server.exhaustedErrorBudget)
        #expect(!peer.server.wantsIO)
    }

    /// HEADERS and a complete request, then a WINDOW_UPDATE that overflows the stream's send
    /// window: nghttp2 resets the stream with FLOW_CONTROL_ERROR and reports an invalid frame.
    static func windowOverflow(_ stream: Int32) -> [UInt8] {
        Frame.request(stream: stream, endStream: false) + Frame.bytes(Frame.data, flags: Frame.endStream, stream: stream, [0, 0, 0, 0, 0])
            + Frame.bytes(Frame.windowUpdate, stream: stream, Frame.bigEndian(0x7FFF_FFFF))
    }

    /// More DATA than the content-length said: nghttp2 resets the stream with PROTOCOL_ERROR
    /// without reporting an invalid frame.
    static func contentLengthExceeded(_ stream: Int32) -> [UInt8] {
        Frame.request(stream: stream, endStream: false, [("content-length", "2")])
            + Frame.bytes(Frame.data, flags: Frame.endStream, stream: stream, [0, 0, 0, 0, 0])
    }

    @Test("MadeYouReset in one read: cut off right after the frame that exceeds the reset burst")
    func provokedResetFlood() throws {
        var configuration = HTTP2ServerConfiguration()
        configuration.peerResetBurst = 3
        let peer = try RawPeer(configuration)
        try peer.handshake()
        try peer.send((0..<50).flatMap { Self.windowOverflow(2 * Int32($0) + 1) })
        let goAway = try #require(peer.goAway)
        #expect(goAway.errorCode == Frame.enhanceYourCalm)
        // Three resets allowed, the fourth stream (7) exceeds the burst: nothing after it is read.
        #expect(goAway.goAwayLastStream == 7)
        #expect(peer.openedStreams == [1, 3, 5, 7])
        #expect(!peer.server.wantsIO)
    }

    @Test("MadeYouReset one stream at a time: each reset counts once, however nghttp2 learns of it; the budget refills",
          arguments: [false, true])
    func provokedResetsPaced(dataPath: Bool) throws {
        var configuration = HTTP2ServerConfiguration()
        configuration.peerResetBurst = 3
        configuration.peerResetRefillPerSecond = 1
        let clock = ManualClock()
        let peer = try RawPeer(configuration, now: { clock.now })
        try peer.handshake()
        let provoke = dataPath ? Self.contentLengthExceeded : Self.windowOverflow
        let code = dataPath ? Frame.protocolError : Frame.flowControlError
        for stream: Int32 in [1, 3, 5] { try peer.send(provoke(stream)) }
        #expect(peer.resets(code) == [1, 3, 5])
        #expect(peer.goAway == nil)
        // A second later one reset is forgiven.
        clock.advance(by: .seconds(1))
        try peer.send(provoke(7))
        #expect(peer.resets(code) == [1, 3, 5, 7])
        #expect(peer.goAway == nil)
        try peer.send(provoke(9))
        #expect(peer.goAway?.errorCode == Frame.enhanceYourCalm)
        #expect(!peer.server.wantsIO)
    }

    @Test("cancellations by the client and its normal calls are not counted against it")
    func ordinaryTrafficIsFree() throws {
        var configuration = HTTP2ServerConfiguration()
        configuration.peerResetBurst = 1
        configuration.streamRefusalBurst = 1
        let peer = try RawPeer(configuration)
        try peer.handshake()
        for stream in stride(from: Int32(1), through: 39, by: 2) {
            try peer.send(Frame.request(stream: stream, endStream: false)
                          + Frame.bytes(Frame.rstStream, stream: stream, Frame.bigEndian(8)))
        }
        for stream in stride(from: Int32(41), through: 59, by: 2) {
            try peer.send(Frame.request(stream: stream, endStream: true))
            peer.server.respond(streamID: stream, headers: [(":status", "200")], body: [0, 0, 0, 0, 0],
                                trailers: [("grpc-status", "0")])
            try peer.send([])
        }
        #expect(peer.goAway == nil && peer.server.wantsIO)
        #expect(peer.openedStreams.count == 30)
    }

    @Test("nghttp2's client gets REFUSED_STREAM for the requests it sent before learning the limit")
    func clientSeesRefusals() throws {
        let pair = try SessionPair(server: Self.limited(2))
        // Before any exchange the client assumes nghttp2's default of 100 streams.
        let streams = try (0..<5).map { _ in try pair.client.request(headers: requestHeaders, body: [0, 0, 0, 0, 0]) }
        try pair.exchange()
        let refused = pair.clientEvents.compactMap { event -> Int32? in
            if case .streamClosed(let id, 7) = event { return id }
            return nil
        }
        #expect(refused == Array(streams[2...]))
        for stream in streams[..<2] {
            pair.server.respond(streamID: stream, headers: [(":status", "200")], body: [0, 0, 0, 0, 0],
                                trailers: [("grpc-status", "0")])
        }
        let retried = try pair.client.request(headers: requestHeaders, body: [0, 0, 0, 0, 0])
        try pair.exchange()
        for stream in streams[..<2] {
            #expect(pair.clientEvents.contains { if case .streamClosed(stream, 0) = $0 { return true }; return false })
        }
        #expect(pair.serverEvents.contains { if case .headers(retried, _, _) = $0 { return true }; return false })
    }
}
