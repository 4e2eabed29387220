import Events
import Foundation
import Models
import Storage

/// A subscription as stored (the secret sealed).
struct StoredSubscription: Sendable {
    var id: String
    var url: String
    var types: [String]
    var sealedSecret: Data
    var state: TypeV1.WebhookSubscriptionState
    var pausedReason: String
    /// The seq of the last event the receiver acknowledged.
    var deliveredSeq: Int64
    var failedAttempts: Int
    var lastError: String
    var lastAttemptMs: Int64
    var lastDeliveredMs: Int64
    var nextAttemptMs: Int64
    var createdMs: Int64

    init(row: SQLRow) {
        id = row["id"]
        url = row["url"]
        let joined: String = row["types"]
        types = joined.split(separator: " ").map(String.init)
        sealedSecret = row["secret"]
        let state: Int = row["state"]
        self.state = state == 2 ? .paused : .active
        pausedReason = row["paused_reason"]
        deliveredSeq = row["delivered_seq"]
        failedAttempts = row["failed_attempts"]
        lastError = row["last_error"]
        lastAttemptMs = row["last_attempt_ms"]
        lastDeliveredMs = row["last_delivered_ms"]
        nextAttemptMs = row["next_attempt_ms"]
        createdMs = row["created_ms"]
    }

    var filter: TypeFilter { (try? TypeFilter(parsing: types)) ?? .all }

    /// The contract's view: never the secret.
    func proto(pending: Int) -> TypeV1.WebhookSubscription {
        TypeV1.WebhookSubscription(
            id: id, url: url, types: types, state: state, pausedReason: pausedReason, cursor: String(deliveredSeq),
            failedAttempts: Int32(clamping: failedAttempts), lastError: lastError, lastAttemptMs: lastAttemptMs,
            lastDeliveredMs: lastDeliveredMs, nextAttemptMs: nextAttemptMs, createdMs: createdMs, pendingEvents: Int64(pending))
    }
}

/// The `webhook_subscriptions` table of a service (this module's; each service adds the
/// migration to its list).
enum WebhookSubscriptionStore {
    static let columns = """
        id, url, types, secret, state, paused_reason, delivered_seq, failed_attempts, last_error, last_attempt_ms,
        last_delivered_ms, next_attempt_ms, created_ms
        """

    static func addMigrations(to migrations: inout SQLDatabase.Migrations) {
        migrations.add("webhook-subscriptions-v1", sql: """
            CREATE TABLE webhook_subscriptions (
                id TEXT PRIMARY KEY NOT NULL,
                url TEXT NOT NULL,
                types TEXT NOT NULL,
                secret BLOB NOT NULL,
                state INTEGER NOT NULL,
                paused_reason TEXT NOT NULL,
                delivered_seq INTEGER NOT NULL,
                failed_attempts INTEGER NOT NULL,
                last_error TEXT NOT NULL,
                last_attempt_ms INTEGER NOT NULL,
                last_delivered_ms INTEGER NOT NULL,
                next_attempt_ms INTEGER NOT NULL,
                created_ms INTEGER NOT NULL
            )
            """)
        // A value sealed with the first webhook key used: a replica started with another key
        // refuses to start rather than seal secrets the others cannot open.
        migrations.add("webhook-subscriptions-v2-key-check", sql: """
            CREATE TABLE webhook_key_check (id TEXT PRIMARY KEY NOT NULL, sealed BLOB NOT NULL)
            """)
    }

    static func insert(_ db: SQLSession, id: String, url: String, types: [String], sealedSecret: Data, deliveredSeq: Int64,
                       nowMs: Int64) throws {
        try db.execute(sql: """
            INSERT INTO webhook_subscriptions (\(columns))
            VALUES (?, ?, ?, ?, 1, '', ?, 0, '', 0, 0, 0, ?)
            """, arguments: [id, url, types.joined(separator: " "), sealedSecret, deliveredSeq, nowMs])
    }

    static func get(_ db: SQLSession, id: String) throws -> StoredSubscription? {
        try db.fetchOne(sql: "SELECT \(columns) FROM webhook_subscriptions WHERE id = ?", arguments: [id]).map(StoredSubscription.init)
    }

    /// Oldest first (ids are time-ordered ULIDs), after `afterID`.
    static func list(_ db: SQLSession, afterID: String, limit: Int) throws -> [StoredSubscription] {
        try db.fetchAll(sql: "SELECT \(columns) FROM webhook_subscriptions WHERE id > ? ORDER BY id LIMIT ?",
                        arguments: [afterID, limit]).map(StoredSubscription.init)
    }

    static func active(_ db: SQLSession) throws -> [StoredSubscription] {
        try db.fetchAll(sql: "SELECT \(columns) FROM webhook_subscriptions WHERE state = 1 ORDER BY id").map(StoredSubscription.init)
    }

    static func pausedCount(_ db: SQLSession) throws -> Int {
        try db.fetchValue(Int.self, sql: "SELECT COUNT(*) FROM webhook_subscriptions WHERE state = 2") ?? 0
    }

    static func delete(_ db: SQLSession, id: String) throws {
        try db.execute(sql: "DELETE FROM webhook_subscriptions WHERE id = ?", arguments: [id])
    }

    static func pause(_ db: SQLSession, id: String, reason: String) throws {
        try db.execute(sql: "UPDATE webhook_subscriptions SET state = 2, paused_reason = ?, next_attempt_ms = 0 WHERE id = ?",
                       arguments: [reason, id])
    }

    /// Active again from where it stopped, with a clean failure count; from the oldest kept
    /// event when the events after its cursor were purged meanwhile (`purgedThrough`).
    static func resume(_ db: SQLSession, id: String, purgedThrough: Int64) throws {
        try db.execute(sql: """
            UPDATE webhook_subscriptions SET state = 1, paused_reason = '', failed_attempts = 0, next_attempt_ms = 0,
                delivered_seq = CASE WHEN delivered_seq < ? THEN ? ELSE delivered_seq END
            WHERE id = ? AND state = 2
            """, arguments: [purgedThrough, purgedThrough, id])
    }

    /// The receiver acknowledged the event at `seq`: the cursor moves there. False when the
    /// subscription was deleted or paused meanwhile, or another delivery got further (then
    /// this one stops).
    static func delivered(_ db: SQLSession, id: String, seq: Int64, nowMs: Int64) throws -> Bool {
        try db.execute(sql: """
            UPDATE webhook_subscriptions
            SET delivered_seq = ?, failed_attempts = 0, next_attempt_ms = 0, last_attempt_ms = ?, last_delivered_ms = ?
            WHERE id = ? AND state = 1 AND delivered_seq < ?
            """, arguments: [seq, nowMs, nowMs, id, seq]) > 0
    }

    /// An attempt failed: the failure count grows, the next attempt is due after
    /// `backoffMs(count)`, and at `maxAttempts` the subscription is paused. Returns the count,
    /// nil when the subscription is gone or no longer active.
    static func failed(_ db: SQLSession, id: String, error: String, nowMs: Int64, maxAttempts: Int,
                       backoffMs: (Int) -> Int64) throws -> (attempts: Int, paused: Bool)? {
        guard let current = try get(db, id: id), current.state == .active else { return nil }
        let attempts = current.failedAttempts + 1
        let pause = attempts >= maxAttempts
        try db.execute(sql: """
            UPDATE webhook_subscriptions
            SET failed_attempts = ?, last_error = ?, last_attempt_ms = ?, next_attempt_ms = ?, state = ?, paused_reason = ?
            WHERE id = ?
            """, arguments: [attempts, String(error.prefix(500)), nowMs, pause ? 0 : nowMs + backoffMs(attempts), pause ? 2 : 1,
                             pause ? "receiver failed \(attempts) times in a row: \(error.prefix(300))" : "", id])
        return (attempts, pause)
    }
}
