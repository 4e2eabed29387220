import Foundation
import Models
import Storage
import Validation

/// A service's log of domain events (CloudEvents 1.0, `doorstep.type.v1.Event`): written in
/// the transaction of the change it records, read by `WatchEvents` from a cursor.
///
/// The `events` table belongs to this module. Its `seq` column is the cursor and follows
/// commit order: an event is inserted as the very last step of its transaction
/// (``SQLSession/beforeCommit(_:)``), and on PostgreSQL under a transaction-scoped advisory
/// lock that every event-writing transaction takes there, so a transaction that got a
/// smaller `seq` has committed (and is visible) before another can take one. A reader that
/// has seen `seq` N can therefore never later find a new event below N: resuming after the
/// last cursor loses nothing and repeats nothing. The lock is held only from the insert to
/// the commit, after the transaction's other statements (and their row locks), so it never
/// waits while holding the lock for anything but the commit. On SQLite the one writer
/// orders everything anyway.
public final class EventLog: Sendable {
    /// CloudEvents `source` of this service's events, e.g. "/doorstep/accounts".
    public let source: String
    /// Woken after a transaction that wrote events commits (watchers of this process).
    let signal = EventSignal()

    public init(source: String) {
        self.source = source
    }

    /// Adds the `events-v1` migration to a service's migrations (once, at the end of its list,
    /// the name never changes).
    public static func addMigrations(to migrations: inout SQLDatabase.Migrations) {
        // SQLite's DDL, which SQLDialect writes for PostgreSQL (an identity column, BYTEA).
        migrations.add("events-v1", sql: """
            CREATE TABLE events (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL,
                type TEXT NOT NULL,
                subject TEXT NOT NULL,
                time_ms INTEGER NOT NULL,
                data_schema TEXT NOT NULL,
                data BLOB NOT NULL
            );
            CREATE INDEX events_type ON events (type, seq);
            CREATE INDEX events_subject ON events (subject, seq)
            """)
    }

    /// Adds `events-v2-horizon`: how far the log has been purged (``purge(_:olderThanMs:batch:)``).
    /// Call after ``addMigrations(to:)``, in the same place on every start.
    public static func addRetentionMigrations(to migrations: inout SQLDatabase.Migrations) {
        migrations.add("events-v2-horizon", sql: """
            CREATE TABLE events_horizon (id INTEGER PRIMARY KEY, purged_through BIGINT NOT NULL);
            INSERT INTO events_horizon (id, purged_through) VALUES (1, 0)
            """)
    }

    /// The cursor up to which events were purged (0 when none was): a consumer whose cursor is
    /// below it has missed events.
    public func purgedThrough(_ db: SQLSession) throws -> Int64 {
        try db.fetchValue(Int64.self, sql: "SELECT purged_through FROM events_horizon WHERE id = 1") ?? 0
    }

    /// Purges the oldest events written before `olderThanMs`, at most `batch`, in the caller's
    /// write transaction: always a prefix of the log (it stops at the first event that is not
    /// old enough), so the horizon is one cursor. Returns how many were purged.
    public func purge(_ db: SQLSession, olderThanMs: Int64, batch: Int) throws -> Int {
        let horizon = try purgedThrough(db)
        var last: Int64?
        for row in try db.fetchAll(sql: "SELECT seq, time_ms FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                                   arguments: [horizon, batch]) {
            let timeMs: Int64 = row["time_ms"]
            guard timeMs < olderThanMs else { break }
            last = row["seq"] as Int64
        }
        guard let last else { return 0 }
        let purged = try db.execute(sql: "DELETE FROM events WHERE seq > ? AND seq <= ?", arguments: [horizon, last])
        try db.execute(sql: "UPDATE events_horizon SET purged_through = ? WHERE id = 1", arguments: [last])
        return purged
    }

    /// Records an event in the caller's write transaction: `type` (e.g.
    /// "doorstep.accounts.account.stage_changed"), `subject` ("accounts/acc_…"), and `data`, the
    /// message it carries (stored in both encodings). `id` defaults to a new "evt_…". The row
    /// is written at the end of the transaction, with it or not at all. Throws when `data`
    /// cannot be encoded.
    public func append(_ db: SQLSession, type: String, subject: String, data: some ProtoMessage, id: String? = nil,
                       nowMs: Int64) throws {
        try append(db, type: type, subject: subject, data: data, encoded: try data.encode(), id: id, nowMs: nowMs)
    }

    /// ``append(_:type:subject:data:id:nowMs:)`` with `data` already encoded (`encoded`, the
    /// bytes the caller wrote elsewhere in the same transaction, e.g. the timeline's row).
    public func append<Message: ProtoMessage>(_ db: SQLSession, type: String, subject: String, data _: Message, encoded: [UInt8],
                                              id: String? = nil, nowMs: Int64) throws {
        let row = Row(id: id ?? IDGenerator.make(prefix: "evt", nowMs: nowMs), type: type, subject: subject, timeMs: nowMs,
                      schema: Message.protoMessageName, data: encoded)
        let signal = self.signal
        db.beforeCommit { db in
            if db.firstTime("events.lock") {
                // Cursors in commit order (see the type's documentation). One lock per log: the
                // services may share a database, each in a schema of its own.
                if db.dialect == .postgres {
                    _ = try db.fetchOne(sql: "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.events'))")
                }
                db.afterCommit { signal.notify() }
            }
            // The transaction's events are gathered and inserted together, in order, by a step
            // deferred after every step deferred so far (a transaction that writes hundreds, an
            // import's, pays a few statements instead of one each).
            let pending = db.local("events.pending") { PendingRows() }
            if pending.rows.isEmpty { db.beforeCommit { db in try pending.insert(db) } }
            pending.rows.append(row)
        }
    }

    /// Events of a transaction waiting for their insert.
    private final class PendingRows {
        var rows: [Row] = []

        /// Inserts the rows in order, in statements of up to 128 rows (``RowBatchStatements``).
        func insert(_ db: SQLSession) throws {
            try Self.inserts.execute(db, rows) { row in [row.id, row.type, row.subject, row.timeMs, row.schema, Data(row.data)] }
            rows.removeAll()
        }

        private static let inserts = RowBatchStatements(
            prefix: "INSERT INTO events (id, type, subject, time_ms, data_schema, data) VALUES ", tuple: "(?, ?, ?, ?, ?, ?)")
    }

    /// Replaces the data of every event about `subject` with `data` (the erased record's
    /// tombstone, the same message type), in the caller's transaction: erasing a record erases
    /// the copies of it its events carried. The events themselves (type, time, order) stay.
    /// Returns how many events were redacted.
    @discardableResult
    public func redact(_ db: SQLSession, subject: String, data: some ProtoMessage) throws -> Int {
        try db.execute(sql: "UPDATE events SET data = ?, data_schema = ? WHERE subject = ?",
                       arguments: [Data(try data.encode()), Swift.type(of: data).protoMessageName, subject])
    }

    /// Rewrites the data of each event about `subject` that carries an `M` with `redacted(data)`
    /// (its own copy, e.g. one account's timeline event without its notes), in the caller's
    /// transaction; events whose data it returns unchanged are not written. The events
    /// themselves (type, time, order) stay. Returns how many events were rewritten.
    @discardableResult
    public func redact<M: ProtoMessage & Equatable>(_ db: SQLSession, subject: String, each type: M.Type,
                                                    _ redacted: (M) throws -> M) throws -> Int {
        var rewritten = 0
        for row in try db.fetchAll(sql: "SELECT seq, data FROM events WHERE subject = ? AND data_schema = ?",
                                   arguments: [subject, M.protoMessageName]) {
            let data: Data = row["data"]
            let seq: Int64 = row["seq"]
            let message = try M(decoding: [UInt8](data))
            let kept = try redacted(message)
            guard kept != message else { continue }
            try db.execute(sql: "UPDATE events SET data = ? WHERE seq = ?", arguments: [Data(try kept.encode()), seq])
            rewritten += 1
        }
        return rewritten
    }

    /// Up to `limit` events after cursor `after`, oldest first, of the `types` given (empty:
    /// all; see ``TypeFilter``).
    public func events(_ db: SQLSession, after: Int64, types: TypeFilter, limit: Int) throws -> [TypeV1.Event] {
        var sql = "SELECT seq, id, type, subject, time_ms, data_schema, data FROM events WHERE seq > ?"
        var arguments: SQLArguments = [after]
        if let (clause, values) = types.sql {
            sql += " AND (\(clause))"
            arguments += values
        }
        sql += " ORDER BY seq LIMIT ?"
        arguments += [limit]
        return try db.fetchAll(sql: sql, arguments: arguments).map { row in
            let seq: Int64 = row["seq"]
            let timeMs: Int64 = row["time_ms"]
            let data: Data = row["data"]
            let schema: String = row["data_schema"]
            return TypeV1.Event(
                cursor: String(seq), id: row["id"], source: source, specVersion: "1.0", type: row["type"],
                subject: row["subject"], time: Self.rfc3339(ms: timeMs), timeMs: timeMs,
                dataContentType: "application/json", dataSchema: schema, dataJson: try Self.json(data, schema: schema),
                data: [UInt8](data))
        }
    }

    /// The proto3 JSON of stored `data`, a `schema` message: rendered when read, not stored (the
    /// writer's transaction stays short; a consumer that reads only `data` pays little for it).
    static func json(_ data: Data, schema: String) throws -> String {
        guard let type = ContractRegistry.messageTypes[schema] else {
            throw EventLogError(message: "event data of unknown type \(schema)")
        }
        let message = try data.withUnsafeBytes { bytes in try type.init(decodingStored: bytes) }
        return message.jsonText()
    }

    /// The cursor of the newest event (0 when the log is empty).
    public func lastCursor(_ db: SQLSession) throws -> Int64 {
        try db.fetchValue(Int64.self, sql: "SELECT MAX(seq) FROM events") ?? 0
    }

    /// How many events the log holds (metrics, tests).
    public func count(_ db: SQLSession) throws -> Int {
        try db.fetchValue(Int.self, sql: "SELECT COUNT(*) FROM events") ?? 0
    }

    /// `ms` as RFC 3339 in UTC with milliseconds ("2026-12-07T08:30:00.000Z").
    static func rfc3339(ms: Int64) -> String {
        let millis = Int((ms % 1000 + 1000) % 1000)
        let seconds = Int((ms - Int64(millis)) / 1000)
        let days = (seconds >= 0 ? seconds : seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let date = CivilDate(dayNumber: days)
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let milli = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        let year = date.year < 1000 ? String(repeating: "0", count: 4 - String(date.year).count) + String(date.year) : String(date.year)
        return "\(year)-\(two(date.month))-\(two(date.day))T\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60)).\(milli)Z"
    }

    /// An event as it is inserted.
    private struct Row {
        var id: String
        var type: String
        var subject: String
        var timeMs: Int64
        var schema: String
        var data: [UInt8]
    }
}

/// Which event types a watcher wants: exact types and prefixes ("doorstep.scheduling.appointment.*").
public struct TypeFilter: Sendable, Equatable {
    public var exact: [String]
    public var prefixes: [String]

    /// Every type.
    public static let all = TypeFilter(exact: [], prefixes: [])

    public init(exact: [String], prefixes: [String]) {
        self.exact = exact
        self.prefixes = prefixes
    }

    /// Reads `WatchEventsRequest.types`: at most 50, each 1...200 characters of [a-z0-9._],
    /// optionally ending in ".*" (a prefix); throws the field's problem as a message.
    public init(parsing types: [String]) throws(TypeFilterError) {
        guard types.count <= 50 else { throw TypeFilterError(message: "at most 50 types, got \(types.count)") }
        var exact: [String] = []
        var prefixes: [String] = []
        for (index, type) in types.enumerated() {
            let isPrefix = type.hasSuffix(".*")
            let name = isPrefix ? String(type.dropLast(1)) : type
            guard (1...200).contains(type.utf8.count), !name.isEmpty,
                  name.utf8.allSatisfy({ (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2E || $0 == 0x5F })
            else {
                throw TypeFilterError(message: "types[\(index)]: \"\(type.prefix(60))\" is not an event type "
                                      + "(1-200 characters of a-z, 0-9, '.', '_', optionally ending in \".*\")")
            }
            if isPrefix { prefixes.append(name) } else { exact.append(name) }
        }
        self.init(exact: exact, prefixes: prefixes)
    }

    /// Whether `type` passes.
    public func matches(_ type: String) -> Bool {
        (exact.isEmpty && prefixes.isEmpty) || exact.contains(type) || prefixes.contains { type.hasPrefix($0) }
    }

    /// The WHERE clause and its arguments; nil for every type.
    var sql: (String, SQLArguments)? {
        guard !exact.isEmpty || !prefixes.isEmpty else { return nil }
        var clauses: [String] = []
        var arguments: SQLArguments = []
        if !exact.isEmpty {
            clauses.append("type IN (\(SQLDialect.placeholders(exact.count)))")
            arguments += SQLArguments(exact)
        }
        for prefix in prefixes {
            // A range instead of LIKE: '_' is a LIKE wildcard, and the range uses the index.
            clauses.append("(type >= ? AND type < ?)")
            arguments += [prefix, prefix + "\u{7F}"]
        }
        return (clauses.joined(separator: " OR "), arguments)
    }
}

/// An event that cannot be read (data of a type this build does not know).
public struct EventLogError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Why a type filter was refused.
public struct TypeFilterError: Error, Sendable {
    public let message: String
}
