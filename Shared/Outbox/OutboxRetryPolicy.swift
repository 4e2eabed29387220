import Foundation

/// When to try a failed message again, and when to give up: exponential backoff with
/// jitter between attempts, up to a limit of attempts.
///
/// With the defaults the waits are 1 s, 2 s, 4 s … 256 s, then 5 min each, and the 20th
/// failure gives up: about an hour of trying, long enough to ride out a receiver's restart
/// or deployment, short enough that an operator hears of a dead receiver the same day.
public struct OutboxRetryPolicy: Sendable, Hashable {
    /// Wait after the first failure, in milliseconds (default 1 000); doubles with each
    /// further failure…
    public var initialBackoffMs: Int64 = 1_000
    /// …up to this, in milliseconds (default 300 000 = 5 min).
    public var maxBackoffMs: Int64 = 300_000
    /// Attempts before giving up (the message becomes FAILED); 0 = never give up.
    /// Default 20.
    public var maxAttempts: Int = 20
    /// Random spread of each wait, as a fraction (default 0.2 = ±20 %), so that messages
    /// that failed together (a receiver outage) do not all retry in the same instant.
    /// 0 makes the waits exact (tests).
    public var jitter: Double = 0.2

    /// The defaults as documented on each property.
    public init(initialBackoffMs: Int64 = 1_000, maxBackoffMs: Int64 = 300_000, maxAttempts: Int = 20, jitter: Double = 0.2) {
        self.initialBackoffMs = initialBackoffMs
        self.maxBackoffMs = maxBackoffMs
        self.maxAttempts = maxAttempts
        self.jitter = jitter
    }

    /// The wait, in milliseconds, after `attempts` failed attempts (1 = after the first
    /// failure): `initialBackoffMs × 2^(attempts − 1)`, capped at `maxBackoffMs`, then spread
    /// by ± `jitter`. Never negative.
    public func backoffMs(afterAttempts attempts: Int) -> Int64 {
        let exponent = min(max(attempts - 1, 0), 40)
        let base = min(Double(maxBackoffMs), Double(initialBackoffMs) * pow(2, Double(exponent)))
        let spread = jitter > 0 ? Double.random(in: -jitter...jitter) : 0
        return max(0, Int64((base * (1 + spread)).rounded()))
    }

    /// Whether the `attempts`-th failed attempt is the last one allowed.
    func givesUp(afterAttempts attempts: Int) -> Bool {
        maxAttempts > 0 && attempts >= maxAttempts
    }
}
