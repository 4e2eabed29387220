import HTTP2
import Testing

/// A client and a server session wired back to back in memory: each one's output is the
/// other's input, so protocol logic is tested without sockets.
final class SessionPair {
    let client: HTTP2ClientSession
    let server: HTTP2ServerSession
    var serverEvents: [HTTP2ServerEvent] = []
    var clientEvents: [HTTP2ClientEvent] = []

    init(server configuration: HTTP2ServerConfiguration = .defaults) throws {
        client = try HTTP2ClientSession()
        server = try HTTP2ServerSession(configuration: configuration)
    }

    /// Moves bytes both ways until neither side has anything to send.
    func exchange() throws {
        for _ in 0..<64 {
            var moved = false
            var toServer: [UInt8] = []
            _ = try client.withPendingOutput(more: { true }) { toServer += $0 }
            clientEvents += client.takeEvents()
            if !toServer.isEmpty {
                moved = true
                serverEvents += try toServer.withUnsafeBytes { try server.receive($0) }
            }
            var toClient: [UInt8] = []
            _ = try server.withPendingOutput(more: { true }) { toClient += $0 }
            serverEvents += server.takeEvents()
            if !toClient.isEmpty {
                moved = true
                clientEvents += try toClient.withUnsafeBytes { try client.receive($0) }
            }
            if !moved { return }
        }
        Issue.record("the sessions never went quiet")
    }
}

let requestHeaders: [(name: String, value: String)] = [
    (":method", "POST"), (":scheme", "http"), (":path", "/pkg.Svc/Call"), (":authority", "test"),
    ("content-type", "application/grpc"), ("te", "trailers"),
]

@Suite("HTTP/2 sessions in memory")
struct InMemorySessionTests {
    @Test("a request and a response with trailers")
    func requestResponse() throws {
        let pair = try SessionPair()
        let streamID = try pair.client.request(headers: requestHeaders, body: [0, 0, 0, 0, 2, 8, 1])
        try pair.exchange()
        let received = pair.serverEvents.compactMap { event -> [UInt8]? in
            if case .data(let id, let bytes, _) = event, id == streamID { return bytes }
            return nil
        }.flatMap { $0 }
        #expect(received == [0, 0, 0, 0, 2, 8, 1])
        #expect(pair.serverEvents.contains { if case .endStream(streamID) = $0 { return true }; return false })
        #expect(pair.serverEvents.contains { event in
            if case .headers(streamID, let headers, _) = event { return headers.contains { $0 == (":path", "/pkg.Svc/Call") } }
            return false
        })

        pair.server.respond(streamID: streamID, headers: [(":status", "200")], body: [0, 0, 0, 0, 0],
                            trailers: [("grpc-status", "0")])
        try pair.exchange()
        let trailers = pair.clientEvents.compactMap { event -> [(name: String, value: String)]? in
            if case .headers(streamID, let headers, true, true) = event { return headers }
            return nil
        }
        #expect(trailers.first?.first.map { $0 == ("grpc-status", "0") } == true)
        #expect(pair.clientEvents.contains { if case .streamClosed(streamID, 0) = $0 { return true }; return false })
        // The server saw the stream close too (this event is produced while it sends).
        #expect(pair.serverEvents.contains { if case .streamClosed(streamID, 0) = $0 { return true }; return false })
    }

    @Test("a streaming response waits for data, then ends with trailers")
    func streaming() throws {
        let pair = try SessionPair()
        let streamID = try pair.client.request(headers: requestHeaders, body: [0, 0, 0, 0, 0])
        try pair.exchange()
        pair.server.respond(streamID: streamID, headers: [(":status", "200")], body: [1], trailers: nil)
        try pair.exchange()
        pair.server.appendBody(streamID: streamID, [2, 3])
        try pair.exchange()
        pair.server.finish(streamID: streamID, trailers: [("grpc-status", "0")])
        try pair.exchange()
        let body = pair.clientEvents.compactMap { event -> [UInt8]? in
            if case .data(streamID, let bytes) = event { return bytes }
            return nil
        }.flatMap { $0 }
        #expect(body == [1, 2, 3])
        #expect(pair.clientEvents.contains { if case .streamClosed(streamID, 0) = $0 { return true }; return false })
    }

    @Test("a client cancel reaches the server as a closed stream, and closes the client's stream")
    func cancel() throws {
        let pair = try SessionPair()
        let streamID = try pair.client.request(headers: requestHeaders, body: [0, 0, 0, 0, 0])
        try pair.exchange()
        pair.client.cancel(streamID: streamID)
        try pair.exchange()
        #expect(pair.clientEvents.contains { if case .streamClosed(streamID, 8) = $0 { return true }; return false })
        #expect(pair.serverEvents.contains { if case .streamClosed(streamID, 8) = $0 { return true }; return false })
    }

    @Test("a header list over the server's limit resets only that stream")
    func headerListLimit() throws {
        var configuration = HTTP2ServerConfiguration()
        configuration.maxHeaderListSize = 1024
        let pair = try SessionPair(server: configuration)
        let big = try pair.client.request(headers: requestHeaders + [("x-big", String(repeating: "a", count: 2000))], body: [])
        let small = try pair.client.request(headers: requestHeaders, body: [])
        try pair.exchange()
        #expect(pair.serverEvents.contains { if case .headerListTooLarge(big) = $0 { return true }; return false })
        #expect(pair.serverEvents.contains { if case .headers(small, _, _) = $0 { return true }; return false })
    }
}

@Suite("Peer error budget")
struct PeerErrorBudgetTests {
    @Test("a burst is allowed, the next error is not, and time refills the budget")
    func budget() {
        let start = ContinuousClock.now
        var budget = PeerErrorBudget(burst: 3, refillPerSecond: 10)
        let burst = (0..<4).map { _ in budget.spend(at: start) }
        #expect(burst == [true, true, true, false])
        // 250 ms later 2.5 tokens have come back; the overdraft of 1 leaves room for one more.
        let later = budget.spend(at: start + .milliseconds(250))
        #expect(later)

        var fresh = PeerErrorBudget(burst: 3, refillPerSecond: 10)
        for _ in 0..<3 { _ = fresh.spend(at: start) }
        // A minute later the budget is full again, but never above the burst.
        let refilled = (0..<4).map { _ in fresh.spend(at: start + .seconds(60)) }
        #expect(refilled == [true, true, true, false])
    }
}
