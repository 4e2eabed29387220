import Foundation
import Storage

/// Delivery progress of one outbox message (mirrors `doorstep.type.v1.Delivery`).
public struct OutboxDelivery: Sendable, Hashable {
    /// Raw values are those of `doorstep.type.v1.DeliveryStatus`.
    public enum Status: Int, Sendable, Hashable {
        /// Written; not yet acknowledged by the receiver; retried with backoff.
        case pending = 1
        /// Acknowledged by the receiver.
        case delivered = 2
        /// Given up: rejected permanently, or the retry limit was reached.
        case failed = 3
    }

    /// Where the message stands.
    public var status: Status
    /// Attempts made so far (the successful one included).
    public var attempts: Int
    /// Error of the latest failed attempt; "" if none failed.
    public var lastError: String
    /// When the latest attempt was made; 0 = never.
    public var lastAttemptMs: Int64
    /// When the next attempt is due; 0 when delivered or failed.
    public var nextAttemptMs: Int64
    /// When the receiver acknowledged it; 0 unless delivered.
    public var deliveredMs: Int64
    /// What the receiver answered that its sink keeps (`OutboxSink.deliverForResult`, e.g.
    /// the id of what it created); "" if nothing or not delivered.
    public var result: String

    /// A delivery state as stored (tests and services rebuilding one).
    public init(status: Status, attempts: Int, lastError: String, lastAttemptMs: Int64, nextAttemptMs: Int64, deliveredMs: Int64,
                result: String = "") {
        self.result = result
        self.status = status
        self.attempts = attempts
        self.lastError = lastError
        self.lastAttemptMs = lastAttemptMs
        self.nextAttemptMs = nextAttemptMs
        self.deliveredMs = deliveredMs
    }
}

/// One message handed to the outbox: a unique id (the receiver's de-duplication key, the
/// same on every attempt), a topic naming what it is, and the bytes to deliver. The outbox
/// never looks inside the payload; its meaning belongs to the topic's producer and receiver.
public struct OutboxMessage: Sendable, Hashable {
    /// Unique across the database (the table's primary key); chosen by the producer, e.g.
    /// the id of the notice or event the message carries.
    public var id: String
    /// What the message is (e.g. "customer-notice"); a dispatcher serves a set of topics.
    public var topic: String
    /// The bytes delivered, unchanged (JSON for the webhook and log-file sinks).
    public var payload: [UInt8]
    /// When the producer created it (milliseconds since 1970); orders delivery.
    public var createdMs: Int64

    /// A message as the producer writes it.
    public init(id: String, topic: String, payload: [UInt8], createdMs: Int64) {
        self.id = id
        self.topic = topic
        self.payload = payload
        self.createdMs = createdMs
    }
}

/// The transactional outbox: a message is written in the same database transaction as the
/// change it announces (so a change is never committed without its message, nor a message
/// without its change), and `OutboxDispatcher` delivers it afterwards, at least once.
///
/// The `outbox` table lives in the service's own database and belongs to this module: a
/// service writes it only through ``enqueue(_:_:nowMs:)`` and reads it only through
/// ``delivery(_:id:)``, ``deliveries(_:ids:)`` and ``counts(_:)``. Rows are kept after
/// delivery (they are the record of when a receiver was told).
public enum Outbox {
    /// Adds the `outbox-v1` migration (the `outbox` table, and an index on
    /// `(status, next_attempt_ms)` for finding due messages) to a service's migrations.
    /// Call once per database, in the same place on every start (the name never changes).
    public static func addMigrations(to migrations: inout SQLDatabase.Migrations) {
        migrations.add("outbox-v1", sql: """
            CREATE TABLE outbox (
                id TEXT PRIMARY KEY NOT NULL,
                topic TEXT NOT NULL,
                payload BLOB NOT NULL,
                created_ms INTEGER NOT NULL,
                status INTEGER NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                last_error TEXT NOT NULL DEFAULT '',
                last_attempt_ms INTEGER NOT NULL DEFAULT 0,
                next_attempt_ms INTEGER NOT NULL,
                delivered_ms INTEGER NOT NULL DEFAULT 0
            );
            CREATE INDEX outbox_due ON outbox (status, next_attempt_ms);
            """)
        migrations.add("outbox-v2-result", sql: "ALTER TABLE outbox ADD COLUMN result TEXT NOT NULL DEFAULT ''")
        // Claims: which replica is delivering a message, and until when (see claim(_:topics:…)).
        migrations.add("outbox-v3-claims", sql: """
            ALTER TABLE outbox ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
            ALTER TABLE outbox ADD COLUMN claim_until_ms INTEGER NOT NULL DEFAULT 0
            """)
        // Insertion order breaks ties of created_ms: SQLite's rowid; on PostgreSQL a column of
        // the same name, numbered as rows are inserted.
        migrations.add("outbox-v4-row-order", sqlite: "", postgres: """
            ALTER TABLE outbox ADD COLUMN rowid BIGINT GENERATED BY DEFAULT AS IDENTITY;
            CREATE INDEX outbox_claim ON outbox (status, claim_until_ms)
            """)
    }

    /// Writes `message` inside the caller's write transaction, pending and due at `nowMs`:
    /// it is committed or rolled back with the caller's change. A second message with the
    /// same id throws (a primary-key violation, a `StorageError`), which rolls back the
    /// caller's change too. Call the dispatcher's `wake()` after the transaction commits for prompt delivery.
    public static func enqueue(_ db: SQLSession, _ message: OutboxMessage, nowMs: Int64) throws {
        try db.execute(
            sql: """
                INSERT INTO outbox (id, topic, payload, created_ms, status, next_attempt_ms)
                VALUES (?, ?, ?, ?, ?, ?)
                """,
            arguments: [message.id, message.topic, Data(message.payload), message.createdMs,
                        OutboxDelivery.Status.pending.rawValue, nowMs])
    }

    /// The delivery state of message `id`, or nil when there is no such message.
    public static func delivery(_ db: SQLSession, id: String) throws -> OutboxDelivery? {
        try deliveries(db, ids: [id])[id]
    }

    /// The delivery states of the messages among `ids` that exist, keyed by id (ids not in
    /// the outbox are absent).
    public static func deliveries(_ db: SQLSession, ids: [String]) throws -> [String: OutboxDelivery] {
        var result: [String: OutboxDelivery] = [:]
        for id in ids {
            guard let row = try db.fetchOne(sql: "SELECT status, attempts, last_error, last_attempt_ms, next_attempt_ms, delivered_ms, result FROM outbox WHERE id = ?",
                arguments: [id]) else { continue }
            result[id] = OutboxDelivery(
                status: OutboxDelivery.Status(rawValue: row["status"]) ?? .pending, attempts: row["attempts"],
                lastError: row["last_error"], lastAttemptMs: row["last_attempt_ms"], nextAttemptMs: row["next_attempt_ms"],
                deliveredMs: row["delivered_ms"], result: row["result"])
        }
        return result
    }

    /// How many messages are pending, delivered and failed (for metrics and operators).
    public static func counts(_ db: SQLSession) throws -> (pending: Int, delivered: Int, failed: Int) {
        var counts = (pending: 0, delivered: 0, failed: 0)
        for row in try db.fetchAll(sql: "SELECT status, COUNT(*) AS n FROM outbox GROUP BY status") {
            let n: Int = row["n"]
            switch OutboxDelivery.Status(rawValue: row["status"]) {
            case .pending: counts.pending = n
            case .delivered: counts.delivered = n
            case .failed: counts.failed = n
            case nil: break
            }
        }
        return counts
    }

    /// The pending messages of `topics`: how many, and when the oldest was written (nil
    /// when none is pending).
    public static func backlog(_ db: SQLSession, topics: Set<String>) throws -> (pending: Int, oldestCreatedMs: Int64?) {
        guard !topics.isEmpty else { return (0, nil) }
        var arguments: [any SQLValueConvertible] = [OutboxDelivery.Status.pending.rawValue]
        arguments += topics.sorted()
        guard let row = try db.fetchOne(sql: """
            SELECT COUNT(*) AS n, MIN(created_ms) AS oldest FROM outbox
            WHERE status = ? AND topic IN (\(SQLDialect.placeholders(topics.count)))
            """, arguments: SQLArguments(arguments)) else { return (0, nil) }
        let pending: Int = row["n"]
        let oldest: Int64? = row["oldest"]
        return (pending, pending > 0 ? oldest : nil)
    }

    /// Claims up to `limit` due messages of `topics` for `holder` until `untilMs`: pending,
    /// `next_attempt_ms <= nowMs`, and not claimed by anyone (or their claim ran out), oldest
    /// first (by creation, then insertion), so a backlog drains in the order it was written.
    /// Runs in a write transaction with row locks (`SQLDatabase.Isolation.rowLocks`): on
    /// PostgreSQL rows another replica is claiming are skipped (`FOR UPDATE SKIP LOCKED`) and
    /// the rows taken are locked until commit, so two replicas never hold the same message; a
    /// replica that dies holding claims loses them when they run out.
    static func claim(_ db: SQLSession, topics: Set<String>, nowMs: Int64, limit: Int, holder: String,
                      untilMs: Int64) throws -> [OutboxMessage] {
        guard !topics.isEmpty else { return [] }
        var arguments: [any SQLValueConvertible] = [OutboxDelivery.Status.pending.rawValue, nowMs, nowMs]
        arguments += topics.sorted()
        arguments.append(limit)
        let messages = try db.fetchAll(sql: """
            SELECT id, topic, payload, created_ms FROM outbox
            WHERE status = ? AND next_attempt_ms <= ? AND claim_until_ms <= ? AND topic IN (\(SQLDialect.placeholders(topics.count)))
            ORDER BY created_ms, rowid LIMIT ?\(db.dialect.skipLocked)
            """, arguments: SQLArguments(arguments)).map { row in
            let payload: Data = row["payload"]
            return OutboxMessage(id: row["id"], topic: row["topic"], payload: [UInt8](payload), createdMs: row["created_ms"])
        }
        guard !messages.isEmpty else { return [] }
        var claim: [any SQLValueConvertible] = [holder, untilMs]
        claim += messages.map(\.id)
        try db.execute(sql: "UPDATE outbox SET claimed_by = ?, claim_until_ms = ? WHERE id IN (\(SQLDialect.placeholders(messages.count)))",
                       arguments: SQLArguments(claim))
        return messages
    }

    /// Drops `holder`'s claims on the messages `ids` (still pending; due again at once).
    static func release(_ db: SQLSession, ids: [String], holder: String) throws {
        guard !ids.isEmpty else { return }
        var arguments: [any SQLValueConvertible] = ids
        arguments.append(holder)
        try db.execute(sql: "UPDATE outbox SET claimed_by = '', claim_until_ms = 0 WHERE id IN (\(SQLDialect.placeholders(ids.count))) AND claimed_by = ?",
                       arguments: SQLArguments(arguments))
    }

    /// Who holds message `id` and until when ("" and 0 when nobody does).
    public static func claim(_ db: SQLSession, id: String) throws -> (holder: String, untilMs: Int64)? {
        try db.fetchOne(sql: "SELECT claimed_by, claim_until_ms FROM outbox WHERE id = ?", arguments: [id])
            .map { ($0["claimed_by"], $0["claim_until_ms"]) }
    }

    /// Marks pending message `id` delivered at `nowMs` (one more attempt, no next one).
    /// Returns false when it was not pending (already delivered or given up), so that the
    /// caller does not announce the delivery twice.
    static func markDelivered(_ db: SQLSession, id: String, nowMs: Int64, result: String = "") throws -> Bool {
        try db.execute(sql: """
            UPDATE outbox SET status = ?, attempts = attempts + 1, last_attempt_ms = ?, next_attempt_ms = 0, delivered_ms = ?, result = ?,
                claimed_by = '', claim_until_ms = 0
            WHERE id = ? AND status = ?
            """, arguments: [OutboxDelivery.Status.delivered.rawValue, nowMs, nowMs, String(result.prefix(200)), id,
                             OutboxDelivery.Status.pending.rawValue]) > 0
    }

    /// What became of a failed attempt: the attempts made so far, and when the next one is
    /// due (nil = given up, the message is FAILED).
    struct FailedAttempt: Sendable {
        var attempts: Int
        var nextAttemptMs: Int64?
    }

    /// Records a failed attempt of pending message `id` at `nowMs`: one more attempt, the
    /// error (first 500 characters), and either the next attempt after the policy's backoff
    /// or, for a permanent failure or the last allowed attempt, FAILED. Returns nil (and
    /// changes nothing) when the message is not pending.
    static func recordFailedAttempt(_ db: SQLSession, id: String, failure: OutboxSinkError, nowMs: Int64,
                                    policy: OutboxRetryPolicy) throws -> FailedAttempt? {
        guard let previous = try db.fetchValue(Int.self, sql: "SELECT attempts FROM outbox WHERE id = ? AND status = ?",
                                              arguments: [id, OutboxDelivery.Status.pending.rawValue]) else { return nil }
        let attempts = previous + 1
        var givesUp = policy.givesUp(afterAttempts: attempts)
        if case .permanent = failure { givesUp = true }
        let nextAttemptMs: Int64? = givesUp ? nil : nowMs + policy.backoffMs(afterAttempts: attempts)
        let status: OutboxDelivery.Status = givesUp ? .failed : .pending
        let storedNextAttemptMs: Int64 = nextAttemptMs ?? 0
        let lastError = String(failure.text.prefix(500))
        try db.execute(sql: """
            UPDATE outbox SET status = ?, attempts = ?, last_error = ?, last_attempt_ms = ?, next_attempt_ms = ?,
                claimed_by = '', claim_until_ms = 0
            WHERE id = ?
            """, arguments: [status.rawValue, attempts, lastError, nowMs, storedNextAttemptMs, id])
        return FailedAttempt(attempts: attempts, nextAttemptMs: nextAttemptMs)
    }
}
