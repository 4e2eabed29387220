import Crypto
import Foundation
import Models
import RPCWire

/// Request-id idempotency (AIP-155, types.proto "Idempotency"): the same `request_id` with
/// the same request returns the first successful response and acts once; the same id with a
/// different request is INVALID_ARGUMENT (field `request_id`). A failed request leaves no
/// record (its transaction rolled back), so its retry is processed afresh.
///
/// Ids are scoped to the method. The fingerprint covers the encoded request and the
/// caller's identity, so one caller can never replay another caller's response.
/// Responses are kept at least the retention period (default 24 h), then purged.
public enum Idempotency {
    static var migrations: SQLDatabase.Migrations {
        var migrations = SQLDatabase.Migrations()
        migrations.add("doorstep-idempotency-v1", sql: """
            CREATE TABLE doorstep_idempotency (
                method TEXT NOT NULL,
                request_id TEXT NOT NULL,
                fingerprint BLOB NOT NULL,
                response BLOB NOT NULL,
                created_ms INTEGER NOT NULL,
                PRIMARY KEY (method, request_id)
            ) WITHOUT ROWID;
            CREATE INDEX doorstep_idempotency_created ON doorstep_idempotency (created_ms);
            """)
        return migrations
    }

    /// What identifies one request: its method, its id, and a hash of its content and caller.
    public struct Key: Sendable {
        public let method: String
        public let requestID: String
        public let fingerprint: Data

        /// `request` is the request as the client sent it (encoded deterministically);
        /// `caller` the caller's identity (role, subject, agency, collector).
        public init<Request: ProtoMessage>(method: String, requestID: String, request: Request, caller: String) throws(RPCError) {
            self.method = method
            self.requestID = requestID
            var hash = SHA256()
            do {
                try request.withEncodedBytes { hash.update(bufferPointer: $0) }
            } catch let error as WireError {
                throw RPCError(code: .invalidArgument, message: "\(error.field.map { "\($0): " } ?? "")\(error)")
            } catch {
                throw RPCError.internal("internal error")
            }
            hash.update(data: Data("\u{1F}\(caller)".utf8))
            self.fingerprint = Data(hash.finalize())
        }
    }

    /// In a write transaction: the remembered response of `key`, nil when it is new, or
    /// INVALID_ARGUMENT when the id was used for a different request.
    public static func lookup<Response: ProtoMessage>(_ db: SQLSession, _ key: Key, as _: Response.Type) throws -> Response? {
        guard let row = try db.fetchOne(sql: "SELECT fingerprint, response FROM doorstep_idempotency WHERE method = ? AND request_id = ?",
                                        arguments: [key.method, key.requestID])
        else { return nil }
        let fingerprint: Data = row["fingerprint"]
        guard fingerprint == key.fingerprint else {
            throw RPCError.invalidArgument("request_id", "already used for a different request; use a new request_id")
        }
        let response: Data = row["response"]
        return try Response(decoding: [UInt8](response))
    }

    /// In the same write transaction as the change: remembers the response of `key`.
    public static func remember<Response: ProtoMessage>(_ db: SQLSession, _ key: Key, response: Response, nowMs: Int64) throws {
        try db.execute(
            sql: "INSERT INTO doorstep_idempotency (method, request_id, fingerprint, response, created_ms) VALUES (?, ?, ?, ?, ?)",
            arguments: [key.method, key.requestID, key.fingerprint, Data(try response.encode()), nowMs])
    }

    /// Runs `body` once per key: a retry gets the first response without running it again.
    ///
    /// On SQLite the lookup, the body and the record share one write transaction (one writer:
    /// nothing can come between them). On PostgreSQL a lookup that finds nothing inside a
    /// SERIALIZABLE transaction takes a predicate lock on the index page where the key would
    /// be, and every concurrent request whose new key lands on that page then counts as a
    /// conflict: two payments to different accounts failed each other by the thousand under
    /// load. So the lookup runs first, on its own; the transaction then runs the body and
    /// records the response with `ON CONFLICT DO NOTHING` — no read of the table at all. The
    /// rare loser of a race between two first tries of one key finds the winner's row there,
    /// rolls its own work back and returns the winner's response (or INVALID_ARGUMENT when
    /// the winner's request differed); a loser whose body failed (it saw the winner's work,
    /// e.g. the debtor already created) looks again and returns the winner's response too.
    public static func perform<Response: ProtoMessage>(
        in database: SQLDatabase, key: Key, nowMs: Int64,
        _ body: @escaping @Sendable (SQLSession) throws -> Response
    ) async throws -> Response {
        guard database.dialect == .postgres else {
            return try await database.write { db in
                if let remembered = try lookup(db, key, as: Response.self) { return remembered }
                let response = try body(db)
                try remember(db, key, response: response, nowMs: nowMs)
                return response
            }
        }
        if let remembered = try await database.readPoint({ db in try lookup(db, key, as: Response.self) }) { return remembered }
        do {
            return try await database.write { db in
                let response = try body(db)
                let recorded = try db.fetchOne(
                    sql: """
                        INSERT INTO doorstep_idempotency (method, request_id, fingerprint, response, created_ms) VALUES (?, ?, ?, ?, ?)
                        ON CONFLICT (method, request_id) DO NOTHING RETURNING created_ms
                        """,
                    arguments: [key.method, key.requestID, key.fingerprint, Data(try response.encode()), nowMs])
                guard recorded == nil, let remembered = try lookup(db, key, as: Response.self) else { return response }
                throw RememberedMeanwhile(response: remembered)
            }
        } catch let meanwhile as RememberedMeanwhile<Response> {
            return meanwhile.response
        } catch {
            // A first try of the same id may have committed between the lookup and this
            // transaction, and the body refused because of what it did (e.g. ALREADY_EXISTS
            // for the debtor it created): its response is the answer.
            if let remembered = try await database.readPoint({ db in try lookup(db, key, as: Response.self) }) { return remembered }
            throw error
        }
    }

    /// Rolls back a first try that lost the race to record its key: the winner's response.
    private struct RememberedMeanwhile<Response: ProtoMessage>: Error {
        let response: Response
    }

    /// Forgets responses older than `retentionMs`; returns how many.
    @discardableResult
    public static func purge(in database: SQLDatabase, nowMs: Int64, retentionMs: Int64) async throws -> Int {
        // Row locks: a serializable scan of the whole age range would conflict with every
        // request remembered meanwhile.
        try await database.write(isolation: .rowLocks) { db in
            try db.execute(sql: "DELETE FROM doorstep_idempotency WHERE created_ms < ?", arguments: [nowMs - retentionMs])
        }
    }
}
