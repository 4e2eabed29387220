import Foundation
import GRDB
import Models
import RPCWire
import Storage
import Validation

/// The accounts service's SQLite schema and row mapping. Each resource is stored as its
/// protobuf encoding (`body`) beside the columns it is looked up by; a debtor's whole record
/// (national ID and phone numbers included) is sealed with AES-GCM, bound to its id.
/// Remote contact attempts about an account and how many connected (risk's contact factor).
struct ContactStats: Sendable, Hashable {
    var remote = 0
    var connected = 0
}

struct AccountsStore: Sendable {
    let database: SQLiteDatabase
    let cipher: DataCipher

    static var migrations: SQLiteDatabase.Migrations {
        var migrations = SQLiteDatabase.Migrations()
        migrations.add("accounts-v1", sql: """
            CREATE TABLE debtors (
                id TEXT PRIMARY KEY NOT NULL,
                external_id TEXT NOT NULL UNIQUE,
                region_code TEXT NOT NULL,
                sealed BLOB NOT NULL,
                version INTEGER NOT NULL,
                created_ms INTEGER NOT NULL,
                updated_ms INTEGER NOT NULL
            );
            CREATE TABLE accounts (
                id TEXT PRIMARY KEY NOT NULL,
                debtor_id TEXT NOT NULL REFERENCES debtors(id),
                lender_id TEXT NOT NULL,
                external_id TEXT NOT NULL,
                assigned_agency_id TEXT NOT NULL,
                stage INTEGER NOT NULL,
                body BLOB NOT NULL,
                version INTEGER NOT NULL,
                created_ms INTEGER NOT NULL,
                updated_ms INTEGER NOT NULL,
                UNIQUE (lender_id, external_id)
            );
            CREATE INDEX accounts_debtor ON accounts (debtor_id);
            CREATE INDEX accounts_agency ON accounts (assigned_agency_id);
            CREATE TABLE personal_data_access (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at_ms INTEGER NOT NULL,
                role TEXT NOT NULL,
                subject TEXT NOT NULL,
                agency_id TEXT NOT NULL,
                debtor_id TEXT NOT NULL,
                fields TEXT NOT NULL,
                reason TEXT NOT NULL
            );
            CREATE INDEX personal_data_access_debtor ON personal_data_access (debtor_id, at_ms);
            """)
        migrations.add("accounts-v2-timeline", sql: """
            CREATE TABLE timeline (
                account_id TEXT NOT NULL REFERENCES accounts(id),
                sequence INTEGER NOT NULL,
                event_type INTEGER NOT NULL,
                body BLOB NOT NULL,
                PRIMARY KEY (account_id, sequence)
            ) WITHOUT ROWID;
            """)
        // Visit candidates are looked up by stage and region.
        migrations.add("accounts-v3-region", sql: """
            ALTER TABLE accounts ADD COLUMN region_code TEXT NOT NULL DEFAULT '';
            CREATE INDEX accounts_stage_region ON accounts (stage, region_code);
            """)
        // Contact attempts of every account of a debtor: the contact policy counts them per
        // debtor. The number dialled is kept only as a keyed digest (compared, never read).
        migrations.add("accounts-v4-contacts", sql: """
            ALTER TABLE accounts ADD COLUMN evaluated_day INTEGER NOT NULL DEFAULT 0;
            CREATE TABLE contact_attempts (
                id TEXT PRIMARY KEY NOT NULL,
                account_id TEXT NOT NULL REFERENCES accounts(id),
                debtor_id TEXT NOT NULL,
                attempted_ms INTEGER NOT NULL,
                remote INTEGER NOT NULL,
                connected INTEGER NOT NULL,
                number_digest TEXT NOT NULL,
                body BLOB NOT NULL
            );
            CREATE INDEX contact_attempts_debtor ON contact_attempts (debtor_id, attempted_ms);
            CREATE INDEX contact_attempts_account ON contact_attempts (account_id);
            """)
        return migrations
    }

    // MARK: Debtors

    func debtorExists(_ db: Database, externalID: String) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM debtors WHERE external_id = ?)"), arguments: [externalID]) ?? false
    }

    func insert(_ db: Database, debtor: AccountsV1.Debtor) throws {
        try db.execute(
            sql: """
                INSERT INTO debtors (id, external_id, region_code, sealed, version, created_ms, updated_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [debtor.id, debtor.externalId, debtor.address?.regionCode ?? "",
                        try cipher.seal(try debtor.encode(), context: debtor.id),
                        debtor.version, debtor.createdMs, debtor.updatedMs])
    }

    /// The debtor with full personal data, or nil.
    func debtor(_ db: Database, id: String) throws -> AccountsV1.Debtor? {
        guard let sealed = try Data.fetchOne(db.cachedStatement(sql: "SELECT sealed FROM debtors WHERE id = ?"), arguments: [id]) else {
            return nil
        }
        return try AccountsV1.Debtor(decoding: try cipher.open(sealed, context: id))
    }

    /// Writes a line to the personal-data access log (who, what, when, why).
    func auditPersonalDataRead(_ db: Database, debtorID: String, actor: TypeV1.Actor, fields: [String], reason: String, atMs: Int64) throws {
        try db.execute(
            sql: """
                INSERT INTO personal_data_access (at_ms, role, subject, agency_id, debtor_id, fields, reason)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [atMs, actor.role.protoName ?? "\(actor.role.rawValue)", actor.subject, actor.agencyId, debtorID,
                        fields.joined(separator: ","), reason])
    }

    // MARK: Accounts

    func accountExists(_ db: Database, lenderID: String, externalID: String) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM accounts WHERE lender_id = ? AND external_id = ?)"),
            arguments: [lenderID, externalID]) ?? false
    }

    func insert(_ db: Database, account: AccountsV1.Account) throws {
        try db.execute(
            sql: """
                INSERT INTO accounts (id, debtor_id, lender_id, external_id, assigned_agency_id, stage, region_code, body, version,
                                      created_ms, updated_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [account.id, account.debtorId, account.lenderId, account.externalId, account.assignedAgencyId,
                        account.stage.rawValue, account.regionCode, Data(try account.encode()), account.version,
                        account.createdMs, account.updatedMs])
    }

    /// Writes a changed account (its version already incremented by the caller).
    func update(_ db: Database, account: AccountsV1.Account) throws {
        try db.execute(
            sql: "UPDATE accounts SET stage = ?, region_code = ?, body = ?, version = ?, updated_ms = ? WHERE id = ?",
            arguments: [account.stage.rawValue, account.regionCode, Data(try account.encode()), account.version, account.updatedMs,
                         account.id])
    }

    /// Appends events to an account's timeline, numbering them after the last one.
    func append(_ db: Database, events: [AccountsV1.TimelineEvent], accountID: String, nowMs: Int64) throws {
        var sequence = try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT COALESCE(MAX(sequence), 0) FROM timeline WHERE account_id = ?"),
            arguments: [accountID]) ?? 0
        for var event in events {
            sequence += 1
            event.id = IDGenerator.make(prefix: "evt", nowMs: nowMs)
            event.accountId = accountID
            event.sequence = sequence
            event.occurredMs = nowMs
            try db.execute(
                sql: "INSERT INTO timeline (account_id, sequence, event_type, body) VALUES (?, ?, ?, ?)",
                arguments: [accountID, sequence, event.eventType.rawValue, Data(try event.encode())])
        }
    }

    /// Up to `limit` events after `sequence`, oldest first, optionally of some types only.
    func timeline(_ db: Database, accountID: String, after sequence: Int64, types: [Int32], limit: Int) throws -> [AccountsV1.TimelineEvent] {
        var sql = "SELECT body FROM timeline WHERE account_id = ? AND sequence > ?"
        var arguments: StatementArguments = [accountID, sequence]
        if !types.isEmpty {
            sql += " AND event_type IN (\(types.map { _ in "?" }.joined(separator: ",")))"
            arguments += StatementArguments(types)
        }
        sql += " ORDER BY sequence LIMIT ?"
        arguments += [limit]
        return try Data.fetchAll(db, sql: sql, arguments: arguments).map { try AccountsV1.TimelineEvent(decoding: [UInt8]($0)) }
    }

    /// The SQL-side filters of ListAccounts (the others depend on today's date or the body).
    struct AccountQuery: Sendable {
        var debtorID = ""
        var lenderID = ""
        var externalID = ""
        var assignedAgencyID = ""
        var stages: [Int32] = []
    }

    /// Up to `limit` accounts in creation (insertion) order after the row `after`, each with
    /// its row number (rows are never deleted, so row numbers only grow).
    func accounts(_ db: Database, matching query: AccountQuery, after: Int64?, limit: Int) throws -> [(row: Int64, account: AccountsV1.Account)] {
        var conditions: [String] = []
        var arguments = StatementArguments()
        func add(_ condition: String, _ values: [any DatabaseValueConvertible]) {
            conditions.append(condition)
            arguments += StatementArguments(values)
        }
        if !query.debtorID.isEmpty { add("debtor_id = ?", [query.debtorID]) }
        if !query.lenderID.isEmpty { add("lender_id = ?", [query.lenderID]) }
        if !query.externalID.isEmpty { add("external_id = ?", [query.externalID]) }
        if !query.assignedAgencyID.isEmpty { add("assigned_agency_id = ?", [query.assignedAgencyID]) }
        if !query.stages.isEmpty { add("stage IN (\(query.stages.map { _ in "?" }.joined(separator: ",")))", query.stages) }
        if let after { add("rowid > ?", [after]) }
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        arguments += [limit]
        return try Row.fetchAll(db, sql: "SELECT rowid, body FROM accounts \(filter) ORDER BY rowid LIMIT ?", arguments: arguments)
            .map { row in
                let body: Data = row["body"]
                return (row["rowid"], try AccountsV1.Account(decoding: [UInt8](body)))
            }
    }

    /// Accounts for the stage engine: the given ids, or the next `limit` non-terminal accounts
    /// after row `after`; each with its row and the last day (day number) it was evaluated for.
    func accountsForEvaluation(_ db: Database, ids: [String], after: Int64, limit: Int) throws -> [(row: Int64, evaluatedDay: Int, account: AccountsV1.Account)] {
        let rows: [Row]
        if ids.isEmpty {
            rows = try Row.fetchAll(
                db.cachedStatement(sql: "SELECT rowid, evaluated_day, body FROM accounts WHERE rowid > ? AND stage NOT IN (?, ?) ORDER BY rowid LIMIT ?"),
                arguments: [after, AccountsV1.Stage.settled.rawValue, AccountsV1.Stage.writtenOff.rawValue, limit])
        } else {
            rows = try Row.fetchAll(
                db, sql: "SELECT rowid, evaluated_day, body FROM accounts WHERE id IN (\(ids.map { _ in "?" }.joined(separator: ","))) ORDER BY rowid",
                arguments: StatementArguments(ids))
        }
        return try rows.map { row in
            let body: Data = row["body"]
            return (row["rowid"], row["evaluated_day"], try AccountsV1.Account(decoding: [UInt8](body)))
        }
    }

    /// Marks the day an account was evaluated for.
    func setEvaluatedDay(_ db: Database, accountID: String, day: Int) throws {
        try db.cachedStatement(sql: "UPDATE accounts SET evaluated_day = ? WHERE id = ?").execute(arguments: [day, accountID])
    }

    /// Records a contact attempt; `numberDigest` identifies the number dialled or texted.
    func insert(_ db: Database, attempt: AccountsV1.ContactAttempt, debtorID: String, remote: Bool, connected: Bool,
                numberDigest: String) throws {
        try db.execute(
            sql: """
                INSERT INTO contact_attempts (id, account_id, debtor_id, attempted_ms, remote, connected, number_digest, body)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [attempt.id, attempt.accountId, debtorID, attempt.attemptedMs, remote, connected, numberDigest,
                        Data(try attempt.encode())])
    }

    /// The debtor's latest attempts (all accounts), oldest first, with the number digests.
    func contactHistory(_ db: Database, debtorID: String, limit: Int = 1000) throws -> [(attempt: AccountsV1.ContactAttempt, numberDigest: String)] {
        try Row.fetchAll(
            db.cachedStatement(sql: """
                SELECT body, number_digest FROM (
                    SELECT body, number_digest, attempted_ms, id FROM contact_attempts WHERE debtor_id = ?
                    ORDER BY attempted_ms DESC, id DESC LIMIT ?) ORDER BY attempted_ms, id
                """),
            arguments: [debtorID, limit]
        ).map { row in
            let body: Data = row["body"]
            return (try AccountsV1.ContactAttempt(decoding: [UInt8](body)), row["number_digest"])
        }
    }

    /// Remote attempts about one account, and how many reached someone (the risk factor).
    func contactStats(_ db: Database, accountID: String) throws -> ContactStats {
        let row = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT COALESCE(SUM(remote), 0) AS remote, COALESCE(SUM(remote AND connected), 0) AS connected FROM contact_attempts WHERE account_id = ?"),
            arguments: [accountID])
        return ContactStats(remote: row?["remote"] ?? 0, connected: row?["connected"] ?? 0)
    }

    /// Every account in `stage` whose debtor lives in `region`.
    func accounts(_ db: Database, stage: AccountsV1.Stage, region: String) throws -> [AccountsV1.Account] {
        try Data.fetchAll(db.cachedStatement(sql: "SELECT body FROM accounts WHERE stage = ? AND region_code = ?"),
                          arguments: [stage.rawValue, region])
            .map { try AccountsV1.Account(decoding: [UInt8]($0)) }
    }

    /// The stored account (delinquency as of when it was last written), or nil.
    func account(_ db: Database, id: String) throws -> AccountsV1.Account? {
        guard let body = try Data.fetchOne(db.cachedStatement(sql: "SELECT body FROM accounts WHERE id = ?"), arguments: [id]) else {
            return nil
        }
        return try AccountsV1.Account(decoding: [UInt8](body))
    }
}
