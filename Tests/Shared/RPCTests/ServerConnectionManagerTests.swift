import NIOCore
@testable import RPC
import Testing

/// The server connection's idle, keepalive and drain rules as values: no socket, no timer.
@Suite("Server connection management (value)")
struct ServerConnectionManagerTests {
    static func manager() -> ServerConnectionManager { ServerConnectionManager(keepaliveTimeout: .seconds(20)) }

    @Test("idle: the timer runs only with no open stream; it closes an idle connection with a final GOAWAY")
    func idle() {
        var manager = Self.manager()
        #expect(manager.connectionStarted() == [.armIdleTimer])
        #expect(manager.streamOpened() == [.cancelIdleTimer])
        #expect(manager.streamOpened() == [], "only the first stream cancels the timer")
        #expect(manager.idleTimerFired() == [], "a late timer with streams open does nothing")
        #expect(manager.streamClosed() == [])
        #expect(manager.streamClosed() == [.armIdleTimer], "the last stream re-arms it")
        #expect(manager.idleTimerFired() == [.sendGoAway(graceful: false), .close])
        #expect(manager.closed)
        #expect(manager.idleTimerFired() == [] && manager.drainRequested() == [], "nothing after the close")
    }

    @Test("keepalive: one PING at a time; an answer clears it; no answer within the timeout closes")
    func keepalive() {
        var manager = Self.manager()
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        #expect(manager.keepaliveTimerFired(now: start) == [.sendPing])
        #expect(manager.keepaliveTimerFired(now: start + .seconds(5)) == [], "one outstanding PING, no second")
        manager.pingAcknowledged()
        #expect(manager.keepaliveTimerFired(now: start + .seconds(10)) == [.sendPing], "answered: the next one goes out")
        #expect(manager.keepaliveTimerFired(now: start + .seconds(30)) == [], "exactly at the timeout: still waiting")
        #expect(manager.keepaliveTimerFired(now: start + .seconds(30) + .nanoseconds(1)) == [.close])
        #expect(manager.closed)
        #expect(manager.keepaliveTimerFired(now: start + .seconds(60)) == [])
    }

    @Test("drain with calls in flight: a graceful GOAWAY once, then the final GOAWAY and close when the last call ends")
    func drainWithStreams() {
        var manager = Self.manager()
        _ = manager.connectionStarted()
        _ = manager.streamOpened()
        _ = manager.streamOpened()
        #expect(manager.drainRequested() == [.cancelIdleTimer, .sendGoAway(graceful: true)])
        #expect(manager.drainRequested() == [], "a second request changes nothing")
        #expect(manager.streamClosed() == [])
        #expect(!manager.closed)
        #expect(manager.streamClosed() == [.sendGoAway(graceful: false), .close], "no idle timer while draining")
        #expect(manager.closed)
    }

    @Test("drain with no call: notice and close at once")
    func drainIdle() {
        var manager = Self.manager()
        _ = manager.connectionStarted()
        #expect(manager.drainRequested() == [.cancelIdleTimer, .sendGoAway(graceful: true), .sendGoAway(graceful: false), .close])
    }

    @Test("a connection closed by the peer takes no more action")
    func closedByPeer() {
        var manager = Self.manager()
        _ = manager.streamOpened()
        manager.connectionClosed()
        #expect(manager.streamClosed() == [])
        #expect(manager.keepaliveTimerFired(now: .now()) == [])
        #expect(manager.drainRequested() == [])
    }
}
