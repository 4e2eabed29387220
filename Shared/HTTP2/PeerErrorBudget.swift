/// A token bucket of things a peer may cause on one connection before the server ends it with
/// GOAWAY ENHANCE_YOUR_CALM. `HTTP2ServerSession` keeps two: streams it must reset because of
/// what the peer sent on them (the "MadeYouReset" class, CVE-2025-8671, which the nghttp2 1.52
/// build here does not cover) and streams opened beyond SETTINGS_MAX_CONCURRENT_STREAMS. A
/// long-lived, well-behaved connection may make occasional mistakes: the budget refills over
/// time. The peer's own RST_STREAMs (cancellations) are not counted; the rapid-reset limit in
/// nghttp2 covers those.
public struct PeerErrorBudget: Sendable {
    /// Errors allowed in a burst.
    public let burst: Int
    /// Errors forgiven per second once spent.
    public let refillPerSecond: Int
    private var tokens: Double
    private var last: ContinuousClock.Instant?

    public init(burst: Int, refillPerSecond: Int) {
        self.burst = burst
        self.refillPerSecond = refillPerSecond
        self.tokens = Double(burst)
    }

    /// Records one error at `now`; false once the budget is exhausted (send GOAWAY).
    public mutating func spend(at now: ContinuousClock.Instant) -> Bool {
        if let last {
            let elapsed = now - last
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            tokens = min(Double(burst), tokens + seconds * Double(refillPerSecond))
        }
        last = now
        tokens -= 1
        return tokens >= 0
    }
}
