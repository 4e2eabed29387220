import Logging
import Metrics
import ServiceLifecycle
import Storage
import Synchronization

/// Delivers the outbox's pending messages of some topics to a sink, oldest first, retrying
/// failures with exponential backoff (``OutboxRetryPolicy``).
///
/// Delivery is **at least once**. A message is marked delivered — and `onDelivered` runs —
/// in one write transaction after the sink acknowledged it; if the process crashes (or the
/// database refuses the write) between the acknowledgement and that commit, the message is
/// still pending and is delivered again later, with the same id. Receivers therefore
/// de-duplicate by `OutboxMessage.id`. Nothing is lost: the message was committed with the
/// change that wrote it, and stays pending until delivered or given up.
///
/// No transaction is held open while the sink is called (a slow receiver never blocks the
/// service's writers): a pass reads the due messages, then for each one calls the sink and
/// records the outcome in a short transaction of its own.
///
/// Outcomes:
/// - acknowledged: DELIVERED (`delivered_ms`, one more attempt, `next_attempt_ms` 0), and
///   `onDelivered` in the same transaction. If `onDelivered` (or that transaction) throws,
///   nothing of it is kept: the message stays pending, the failure counts as a retryable
///   attempt ("delivered but not recorded: …"), and the message is delivered again after
///   the backoff, as if the receiver had failed.
/// - retryable failure: one more attempt, `last_error`, next attempt after the backoff;
///   FAILED (`next_attempt_ms` 0) once the policy's attempt limit is reached. Logged as a
///   warning; giving up is logged as an error.
/// - permanent failure: FAILED at once, logged as an error.
///
/// Whenever a message becomes FAILED, `onFailed` runs in the transaction that records it,
/// with the last error (so the owner can write the failure on its record once). If it
/// throws, the failed attempt is not recorded and the message stays due.
///
/// Any number of dispatchers — one per replica of the service — may serve the same topics
/// on one database: a pass first **claims** its due messages for this replica
/// (``ReplicaIdentity``) until `claimLease` runs out, so two replicas never deliver the same
/// message at the same time. A replica killed mid-delivery leaves its claims behind; they
/// run out and another replica delivers those messages, with the same id. Choose a lease
/// longer than a batch takes to deliver: a claim that runs out mid-batch lets another replica
/// deliver that message as well — a second delivery with the same id, which receivers
/// de-duplicate, so still correct, only wasteful.
///
/// Runs as a swift-service-lifecycle `Service`: a pass, then a wait until the poll interval
/// passes or ``wake()`` is called; it ends on graceful shutdown (after the message in hand)
/// or cancellation.
public final class OutboxDispatcher: Service, Sendable {
    private let database: SQLDatabase
    private let topics: Set<String>
    private let sink: any OutboxSink
    private let policy: OutboxRetryPolicy
    private let batchSize: Int
    private let pollInterval: Duration
    private let claimLease: Duration
    private let holder: String
    private let nowMs: @Sendable () -> Int64
    private let logger: Logger
    private let onDelivered: @Sendable (SQLSession, OutboxMessage, Int64) throws -> Void
    private let onFailed: @Sendable (SQLSession, OutboxMessage, String, Int64) throws -> Void
    private let signal = WakeSignal()
    private let metrics: OutboxMetrics

    /// - Parameters:
    ///   - database: the service's database, migrated with ``Outbox/addMigrations(to:)``;
    ///     the caller owns it and closes it after the dispatcher has stopped.
    ///   - topics: the topics this dispatcher delivers; other messages are left alone.
    ///   - sink: where messages go; the caller owns it (e.g. shuts a ``WebhookSink`` down).
    ///   - policy: backoff and attempt limit (default: see ``OutboxRetryPolicy``).
    ///   - batchSize: at most this many messages per pass (default 50, at least 1).
    ///   - pollInterval: the longest wait between passes when not woken (default 500 ms);
    ///     it bounds how late a retry runs after its backoff ends.
    ///   - claimLease: how long a pass's claim on its messages lasts (default 60 s).
    ///   - holder: the claimant's name (default ``ReplicaIdentity/current``).
    ///   - nowMs: the clock (milliseconds since 1970), injected so tests control backoff.
    ///   - sinkName: the `sink` label of the outbox metrics (default: the topics, joined
    ///     by commas).
    ///   - logger: failures, give-ups and database errors.
    ///   - onDelivered: runs inside the write transaction that marks a message delivered,
    ///     with the message and the delivery time; what it writes commits together with
    ///     DELIVERED, and if it throws neither is kept (see the type's comment). It must not
    ///     call the sink or wait on anything but the database.
    ///   - onFailed: runs inside the write transaction that marks a message FAILED (given up
    ///     or rejected for good), with the message, the last error and the time; the same
    ///     rules as `onDelivered`.
    public init(
        database: SQLDatabase, topics: Set<String>, sink: any OutboxSink, policy: OutboxRetryPolicy = .init(),
        batchSize: Int = 50, pollInterval: Duration = .milliseconds(500), claimLease: Duration = .seconds(60),
        holder: String = ReplicaIdentity.current, nowMs: @escaping @Sendable () -> Int64, sinkName: String? = nil,
        logger: Logger, onDelivered: @escaping @Sendable (SQLSession, OutboxMessage, Int64) throws -> Void = { _, _, _ in },
        onFailed: @escaping @Sendable (SQLSession, OutboxMessage, String, Int64) throws -> Void = { _, _, _, _ in }
    ) {
        self.database = database
        self.topics = topics
        self.sink = sink
        self.policy = policy
        self.batchSize = max(1, batchSize)
        self.pollInterval = pollInterval
        self.claimLease = claimLease
        self.holder = holder
        self.nowMs = nowMs
        self.logger = logger
        self.onDelivered = onDelivered
        self.onFailed = onFailed
        self.metrics = OutboxMetrics(sink: sinkName ?? topics.sorted().joined(separator: ","))
    }

    /// Starts a pass now instead of at the next poll. Call after the transaction that
    /// enqueued a message has committed. Never blocks; a wake-up while a pass is running
    /// makes the next pass start right after it.
    public func wake() { signal.fire() }

    /// One pass: claims the due messages of the dispatcher's topics (pending, next attempt
    /// not after now, unclaimed), oldest first, up to the batch size, and tries each once;
    /// returns how many were delivered. A database error ends the pass (logged; the next pass retries). Stops
    /// early, after the message in hand, when the task is cancelled or shutting down.
    @discardableResult
    public func dispatchDue() async -> Int {
        let now = nowMs()
        let topics = self.topics
        let batchSize = self.batchSize
        let holder = self.holder
        let until = now + claimLease.milliseconds
        let due: [OutboxMessage]
        do {
            // Row locks, not serializable: the claim reads every due row, and as a predicate
            // that read would make each concurrent enqueue (a booking, an outcome) lose a race.
            due = try await database.write(isolation: .rowLocks) { db in
                try Outbox.claim(db, topics: topics, nowMs: now, limit: batchSize, holder: holder, untilMs: until)
            }
        } catch {
            logger.warning("outbox: claiming due messages failed; retrying next pass", metadata: ["error": "\(error)"])
            return 0
        }
        var delivered = 0
        for (index, message) in due.enumerated() {
            if Task.isCancelled || Task.isShuttingDownGracefully {
                await release(Array(due[index...]))
                break
            }
            let result: String
            do {
                result = try await sink.deliverForResult(message)
            } catch {
                await recordFailure(message, error)
                continue
            }
            if await recordDelivery(message, result: result) {
                delivered += 1
                metrics.delivered.increment()
            }
        }
        await publishBacklog()
        return delivered
    }

    /// Sets the backlog gauges from the database: at most once a second, and after a pass.
    private func publishBacklog() async {
        guard metrics.backlogDue() else { return }
        let topics = self.topics
        do {
            let backlog = try await database.read { db in try Outbox.backlog(db, topics: topics) }
            metrics.publish(pending: backlog.pending, oldestAgeMs: backlog.oldestCreatedMs.map { max(0, nowMs() - $0) })
        } catch {
            logger.debug("outbox: reading the backlog for metrics failed", metadata: ["error": "\(error)"])
        }
    }

    /// Gives up this replica's claims on messages it will not try in this pass (it is
    /// stopping), so another replica need not wait for them to run out.
    private func release(_ messages: [OutboxMessage]) async {
        let holder = self.holder
        do {
            try await database.write(isolation: .rowLocks) { db in try Outbox.release(db, ids: messages.map(\.id), holder: holder) }
        } catch {
            logger.warning("outbox: releasing claims failed; they run out by themselves", metadata: ["error": "\(error)"])
        }
    }

    /// Marks `message` delivered and runs `onDelivered`, in one transaction. Returns false
    /// when that transaction failed (then the attempt is recorded as a retryable failure)
    /// or the message was no longer pending.
    private func recordDelivery(_ message: OutboxMessage, result: String) async -> Bool {
        let at = nowMs()
        let onDelivered = self.onDelivered
        do {
            return try await database.write { db -> Bool in
                guard try Outbox.markDelivered(db, id: message.id, nowMs: at, result: result) else { return false }
                try onDelivered(db, message, at)
                return true
            }
        } catch {
            // The receiver has it but it is not recorded: it stays pending and is delivered
            // again (same id) after the backoff.
            await recordFailure(message, .retryable("delivered but not recorded: \(error)"))
            return false
        }
    }

    /// Records a failed attempt (next attempt after the backoff, or FAILED) and logs it.
    private func recordFailure(_ message: OutboxMessage, _ failure: OutboxSinkError) async {
        let now = nowMs()
        let policy = self.policy
        let onFailed = self.onFailed
        let outcome: Outbox.FailedAttempt?
        do {
            outcome = try await database.write { db in
                let outcome = try Outbox.recordFailedAttempt(db, id: message.id, failure: failure, nowMs: now, policy: policy)
                if let outcome, outcome.nextAttemptMs == nil { try onFailed(db, message, failure.text, now) }
                return outcome
            }
        } catch {
            logger.warning("outbox: recording a failed attempt failed; the message stays due",
                           metadata: ["id": "\(message.id)", "topic": "\(message.topic)", "error": "\(error)"])
            return
        }
        guard let outcome else { return }  // no longer pending: nothing to record
        if outcome.nextAttemptMs == nil { metrics.failed.increment() } else { metrics.retries.increment() }
        if let next = outcome.nextAttemptMs {
            logger.warning("outbox: delivery failed; will retry",
                           metadata: ["id": "\(message.id)", "topic": "\(message.topic)", "attempts": "\(outcome.attempts)",
                                      "error": "\(failure.text)", "next-attempt-ms": "\(next)"])
        } else {
            logger.error("outbox: delivery given up; the message is FAILED",
                         metadata: ["id": "\(message.id)", "topic": "\(message.topic)", "attempts": "\(outcome.attempts)",
                                    "error": "\(failure.text)"])
        }
    }

    /// Passes until graceful shutdown or cancellation: a pass, then (unless the pass filled
    /// a whole batch, when more may be due at once) a wait for the poll interval or a
    /// ``wake()``. Returns normally when asked to stop.
    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let delivered = await dispatchDue()
            if delivered >= batchSize { continue }
            // Graceful shutdown cancels the wait; the loop condition then ends the run.
            await cancelWhenGracefulShutdown { [signal, pollInterval] in
                await signal.wait(timeout: pollInterval)
            }
        }
    }
}

/// A wake-up flag for one waiting task: ``wait(timeout:)`` returns when ``fire()`` was
/// called since the previous wait returned, on the timeout, or when the waiting task is
/// cancelled — whichever comes first.
final class WakeSignal: Sendable {
    private struct State {
        var fired = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    /// Wakes the waiter, or makes the next wait return at once.
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

    /// Waits for a ``fire()``, at most `timeout`; one waiter at a time.
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
            // The timer; cancellation ends its sleep early, so it also releases the waiter
            // when the waiting task is cancelled.
            group.addTask { [self] in
                try? await Task.sleep(for: timeout)
                fire()
            }
            await group.next()
            group.cancelAll()
        }
        // The timer fires once more when it is cancelled after a wake-up: forget that, so
        // the next wait really waits. (A real wake-up lost here came before the pass that
        // follows, which sees its message anyway.)
        state.withLock { $0.fired = false }
    }
}

/// An outbox dispatcher's metrics, labelled by its sink: `doorstep_outbox_pending`,
/// `doorstep_outbox_oldest_pending_age_seconds` (0 when nothing is pending),
/// `doorstep_outbox_delivered_total`, `doorstep_outbox_failed_total` (given up) and
/// `doorstep_outbox_retries_total` (failed attempts that will be retried). The gauges count
/// every pending message of the sink's topics in the database, whichever replica wrote it.
final class OutboxMetrics: Sendable {
    let delivered: Counter
    let failed: Counter
    let retries: Counter
    private let pending: Gauge
    private let oldestAge: Gauge
    private let lastBacklog = Mutex<ContinuousClock.Instant?>(nil)

    init(sink: String) {
        let labels = [("sink", sink)]
        delivered = Counter(label: "doorstep_outbox_delivered_total", dimensions: labels)
        failed = Counter(label: "doorstep_outbox_failed_total", dimensions: labels)
        retries = Counter(label: "doorstep_outbox_retries_total", dimensions: labels)
        pending = Gauge(label: "doorstep_outbox_pending", dimensions: labels)
        oldestAge = Gauge(label: "doorstep_outbox_oldest_pending_age_seconds", dimensions: labels)
    }

    /// True at most once a second (a busy dispatcher passes far more often).
    func backlogDue() -> Bool {
        let now = ContinuousClock.now
        return lastBacklog.withLock { last in
            if let last, now - last < .seconds(1) { return false }
            last = now
            return true
        }
    }

    func publish(pending count: Int, oldestAgeMs: Int64?) {
        pending.record(count)
        oldestAge.record(Double(oldestAgeMs ?? 0) / 1000)
    }
}
