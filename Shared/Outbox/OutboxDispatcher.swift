import Foundation
import GRDB
import Logging
import ServiceLifecycle
import Storage
import Synchronization

/// Why a delivery attempt failed.
public enum OutboxSinkError: Error, Sendable, Hashable {
    /// Worth trying again later (receiver down, timeout, 5xx, 429).
    case retryable(String)
    /// The receiver rejected the message for good (4xx other than 408/425/429); not retried.
    case permanent(String)

    var text: String {
        switch self {
        case .retryable(let text), .permanent(let text): text
        }
    }
}

/// Where an outbox delivers: a webhook, a log file, another service. `deliver` returns once
/// the receiver has acknowledged the message; it must be safe to call again with the same
/// message (delivery is at least once; receivers de-duplicate by `OutboxMessage.id`).
public protocol OutboxSink: Sendable {
    func deliver(_ message: OutboxMessage) async throws(OutboxSinkError)
}

/// Exponential backoff with jitter between attempts, and a limit.
public struct OutboxRetryPolicy: Sendable, Hashable {
    /// Wait after the first failure (default 1 s); doubles with each further failure…
    public var initialBackoffMs: Int64 = 1_000
    /// …up to this (default 5 min).
    public var maxBackoffMs: Int64 = 300_000
    /// Attempts before giving up (FAILED); 0 = never give up. Default 20 (about 1.3 hours
    /// of trying with the default backoff).
    public var maxAttempts: Int = 20
    /// Random spread of each wait, as a fraction (default 0.2 = ±20 %), so that messages
    /// failing together do not retry together.
    public var jitter: Double = 0.2

    public init(initialBackoffMs: Int64 = 1_000, maxBackoffMs: Int64 = 300_000, maxAttempts: Int = 20, jitter: Double = 0.2) {
        self.initialBackoffMs = initialBackoffMs
        self.maxBackoffMs = maxBackoffMs
        self.maxAttempts = maxAttempts
        self.jitter = jitter
    }

    /// The wait after `attempts` failed attempts (1 = the first failure), jitter applied.
    public func backoffMs(afterAttempts attempts: Int) -> Int64 {
        let exponent = min(max(attempts - 1, 0), 40)
        let base = min(Double(maxBackoffMs), Double(initialBackoffMs) * pow(2, Double(exponent)))
        let spread = jitter > 0 ? Double.random(in: -jitter...jitter) : 0
        return max(0, Int64((base * (1 + spread)).rounded()))
    }
}

/// Delivers the outbox's pending messages of some topics to a sink, oldest first, at least
/// once: a message is marked delivered (and `onDelivered` runs) in one write transaction
/// after the sink acknowledged it. A crash between the acknowledgement and that transaction
/// delivers the message again after restart, with the same id; nothing is ever lost, since
/// the message was committed with the change that wrote it. No transaction is held open
/// while the sink is called.
///
/// Runs as a swift-service-lifecycle `Service` (a pass, then sleep until the poll interval
/// or `wake()`), and exits on graceful shutdown.
public final class OutboxDispatcher: Service, Sendable {
    private let database: SQLiteDatabase
    private let topics: Set<String>
    private let sink: any OutboxSink
    private let policy: OutboxRetryPolicy
    private let batchSize: Int
    private let pollInterval: Duration
    private let nowMs: @Sendable () -> Int64
    private let logger: Logger
    private let onDelivered: @Sendable (Database, OutboxMessage, Int64) throws -> Void
    private let signal = WakeSignal()

    public init(
        database: SQLiteDatabase, topics: Set<String>, sink: any OutboxSink, policy: OutboxRetryPolicy = .init(),
        batchSize: Int = 50, pollInterval: Duration = .milliseconds(500), nowMs: @escaping @Sendable () -> Int64,
        logger: Logger, onDelivered: @escaping @Sendable (Database, OutboxMessage, Int64) throws -> Void = { _, _, _ in }
    ) {
        self.database = database
        self.topics = topics
        self.sink = sink
        self.policy = policy
        self.batchSize = max(1, batchSize)
        self.pollInterval = pollInterval
        self.nowMs = nowMs
        self.logger = logger
        self.onDelivered = onDelivered
    }

    /// Starts a pass now instead of at the next poll (call after committing a message).
    public func wake() { signal.fire() }

    /// One pass: tries every due message (up to the batch size) once; returns how many were
    /// delivered. Database errors are logged and the pass ends (the next one retries).
    @discardableResult
    public func dispatchDue() async -> Int {
        let now = nowMs()
        let topics = self.topics
        let batchSize = self.batchSize
        let due: [OutboxMessage]
        do {
            due = try await database.read { db in try Outbox.due(db, topics: topics, nowMs: now, limit: batchSize) }
        } catch {
            logger.warning("outbox read failed", metadata: ["error": "\(error)"])
            return 0
        }
        var delivered = 0
        for message in due {
            if Task.isCancelled { break }
            do {
                try await sink.deliver(message)
                let at = nowMs()
                let onDelivered = self.onDelivered
                try await database.write { db in
                    try Outbox.markDelivered(db, id: message.id, nowMs: at)
                    try onDelivered(db, message, at)
                }
                delivered += 1
            } catch let failure as OutboxSinkError {
                await recordFailure(message, failure)
            } catch {
                // The sink acknowledged but recording it failed: the message stays pending and
                // is delivered again (same id) on a later pass.
                logger.warning("outbox: recording a delivery failed; it will be delivered again",
                               metadata: ["id": "\(message.id)", "topic": "\(message.topic)", "error": "\(error)"])
            }
        }
        return delivered
    }

    private func recordFailure(_ message: OutboxMessage, _ failure: OutboxSinkError) async {
        let now = nowMs()
        let policy = self.policy
        do {
            let attempts = try await database.read { db in try Outbox.attempts(db, id: message.id) } + 1
            var next: Int64? = now + policy.backoffMs(afterAttempts: attempts)
            if case .permanent = failure { next = nil }
            if policy.maxAttempts > 0 && attempts >= policy.maxAttempts { next = nil }
            let nextAttempt = next
            try await database.write { db in
                try Outbox.markFailedAttempt(db, id: message.id, error: failure.text, nowMs: now, nextAttemptMs: nextAttempt)
            }
            if let next {
                logger.warning("outbox delivery failed; will retry",
                               metadata: ["id": "\(message.id)", "topic": "\(message.topic)", "attempts": "\(attempts)",
                                          "error": "\(failure.text)", "next-attempt-ms": "\(next)"])
            } else {
                logger.error("outbox delivery given up",
                             metadata: ["id": "\(message.id)", "topic": "\(message.topic)", "attempts": "\(attempts)",
                                        "error": "\(failure.text)"])
            }
        } catch {
            logger.warning("outbox: recording a failed attempt failed", metadata: ["id": "\(message.id)", "error": "\(error)"])
        }
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let delivered = await dispatchDue()
            if delivered >= batchSize { continue }  // more may be due
            // Graceful shutdown cancels the wait; the loop condition then ends the run.
            await cancelWhenGracefulShutdown { [signal, pollInterval] in
                await signal.wait(timeout: pollInterval)
            }
        }
    }
}

/// A wake-up flag: `wait` returns when `fire` was called (since the last wait) or after the
/// timeout, whichever comes first.
final class WakeSignal: Sendable {
    private struct State {
        var fired = false
        var waiter: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())

    func fire() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.fired = true
            return nil
        }
        waiter?.resume()
    }

    func wait(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { state -> Bool in
                        if state.fired {
                            state.fired = false
                            return true
                        }
                        state.waiter = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
            group.addTask { [self] in
                try? await Task.sleep(for: timeout)
                fire()
            }
            await group.next()
            group.cancelAll()
        }
        // A timeout that fired after the wake-up leaves the flag set: clear it.
        state.withLock { $0.fired = false }
    }
}
