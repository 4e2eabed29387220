import NIOCore

/// Connection management of one server connection as a value: when it is idle, when to
/// ping, when a ping went unanswered, and how a drain (graceful shutdown) ends. It does no
/// I/O and owns no timer: the channel handler reports events and performs the actions it
/// returns, so every rule here is tested as plain values (idle, keepalive, GOAWAY/drain)
/// apart from stream dispatch.
///
/// The rules:
/// - with no open stream the idle timer runs; when it fires with still none open, the
///   connection is sent GOAWAY and closed; a stream opening cancels it;
/// - every keepalive interval a PING is sent unless one is outstanding; one outstanding for
///   longer than the keepalive timeout closes the connection;
/// - a drain sends a graceful GOAWAY once and lets open streams finish; when the last one
///   closes (or at once, with none open) a final GOAWAY is sent and the connection closed.
struct ServerConnectionManager: Sendable {
    enum Action: Sendable, Hashable {
        case armIdleTimer
        case cancelIdleTimer
        case sendPing
        /// GOAWAY: graceful (a shutdown notice, streams may still finish) or final.
        case sendGoAway(graceful: Bool)
        case close
    }

    let keepaliveTimeout: TimeAmount
    private(set) var openStreams = 0
    private(set) var draining = false
    private(set) var closed = false
    private var pingSentAt: NIODeadline?

    init(keepaliveTimeout: TimeAmount) {
        self.keepaliveTimeout = keepaliveTimeout
    }

    /// The connection is up (no stream yet).
    mutating func connectionStarted() -> [Action] {
        closed ? [] : [.armIdleTimer]
    }

    /// A stream opened.
    mutating func streamOpened() -> [Action] {
        openStreams += 1
        return openStreams == 1 ? [.cancelIdleTimer] : []
    }

    /// A stream that `streamOpened` counted closed.
    mutating func streamClosed() -> [Action] {
        precondition(openStreams > 0, "a stream closed that was never opened")
        openStreams -= 1
        guard openStreams == 0, !closed else { return [] }
        if draining { return finish() }
        return [.armIdleTimer]
    }

    /// The idle timer fired.
    mutating func idleTimerFired() -> [Action] {
        guard openStreams == 0, !closed else { return [] }
        return finish()
    }

    /// The keepalive interval passed.
    mutating func keepaliveTimerFired(now: NIODeadline) -> [Action] {
        guard !closed else { return [] }
        if let sent = pingSentAt {
            if now - sent > keepaliveTimeout {
                closed = true
                return [.close]
            }
            return []
        }
        pingSentAt = now
        return [.sendPing]
    }

    /// The peer acknowledged our PING.
    mutating func pingAcknowledged() {
        pingSentAt = nil
    }

    /// Graceful shutdown was asked for.
    mutating func drainRequested() -> [Action] {
        guard !draining, !closed else { return [] }
        draining = true
        let notice: [Action] = [.cancelIdleTimer, .sendGoAway(graceful: true)]
        return openStreams == 0 ? notice + finish() : notice
    }

    /// The connection closed for another reason (the peer, an error): nothing more to do.
    mutating func connectionClosed() {
        closed = true
    }

    private mutating func finish() -> [Action] {
        closed = true
        return [.sendGoAway(graceful: false), .close]
    }
}
