import Events
import Foundation
import Models
import RPCWire
import Storage
import Validation
import Webhooks

/// The accounts service's SQLite schema and row mapping. Each resource is stored as its
/// protobuf encoding (`body`) beside the columns it is looked up by; a debtor's whole record
/// (national ID and phone numbers included) is sealed with AES-GCM, bound to its id.
/// Remote contact attempts about an account and how many connected (risk's contact factor),
/// and when its last visit took place (0 = never; visit candidates' cool-down).
struct ContactStats: Sendable, Hashable {
    var remote = 0
    var connected = 0
    var lastVisitMs: Int64 = 0
}

struct AccountsStore: Sendable {
    let database: SQLDatabase
    /// The service's domain events (written in the transactions of the changes; WatchEvents):
    /// one log per process, so a commit through any store value wakes every watcher at once.
    var events: EventLog { Self.eventLog }
    static let eventLog = EventLog(source: "/doorstep/accounts")
    let cipher: DataCipher
    /// The rules the visit-candidate ranking is computed with.
    let configuration: AccountsService.Configuration

    init(database: SQLDatabase, cipher: DataCipher, configuration: AccountsService.Configuration = .defaults) {
        self.database = database
        self.cipher = cipher
        self.configuration = configuration
    }

    static var migrations: SQLDatabase.Migrations {
        var migrations = SQLDatabase.Migrations()
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
        // Pages and stage runs go in insertion order: SQLite's rowid; on PostgreSQL a column
        // of the same name, numbered as rows are inserted (used for order only, never as an id).
        migrations.add("accounts-v5-row-order", sqlite: "", postgres: """
            ALTER TABLE accounts ADD COLUMN rowid BIGINT GENERATED BY DEFAULT AS IDENTITY;
            CREATE UNIQUE INDEX accounts_rowid ON accounts (rowid)
            """)
        // A value sealed with the data key the database was first opened with: a process (a
        // replica) with another key refuses to start instead of sealing rows the others
        // cannot open.
        migrations.add("accounts-v6-data-key-check", sql: """
            CREATE TABLE data_key_check (id TEXT PRIMARY KEY NOT NULL, sealed BLOB NOT NULL)
            """)
        // The visit-candidate ranking (`CandidateRank`), kept by every write of an account;
        // each account's contact statistics kept as counters (no aggregate per read); the
        // next day the stage engine has to look at each account (`EvaluationSchedule`; 0 =
        // at the next run). Existing databases: counters filled from the attempts, every
        // account evaluated at the next run; the ranking is filled at the service's start
        // while `ranking_backfill` holds its row (`AccountsService.backfillRanking`).
        migrations.add("accounts-v7-ranking", sql: """
            ALTER TABLE accounts ADD COLUMN remote_attempts INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE accounts ADD COLUMN connected_attempts INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE accounts ADD COLUMN last_visit_ms INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE accounts ADD COLUMN next_evaluation_day INTEGER NOT NULL DEFAULT 0;
            UPDATE accounts SET
                remote_attempts = (SELECT COALESCE(SUM(remote), 0) FROM contact_attempts c WHERE c.account_id = accounts.id),
                connected_attempts = (SELECT COALESCE(SUM(remote * connected), 0) FROM contact_attempts c WHERE c.account_id = accounts.id),
                last_visit_ms = (SELECT COALESCE(MAX(CASE WHEN remote = 0 THEN attempted_ms END), 0) FROM contact_attempts c
                                 WHERE c.account_id = accounts.id);
            CREATE TABLE visit_candidates (
                account_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts(id),
                debtor_id TEXT NOT NULL,
                region_code TEXT NOT NULL,
                agency_id TEXT NOT NULL,
                time_zone TEXT NOT NULL,
                expected_recovery INTEGER NOT NULL,
                overdue_since_day INTEGER NOT NULL,
                overdue_minor INTEGER NOT NULL,
                currency TEXT NOT NULL,
                risk_score INTEGER NOT NULL,
                risk_tier INTEGER NOT NULL,
                probability_bp INTEGER NOT NULL,
                version INTEGER NOT NULL,
                last_visit_ms INTEGER NOT NULL,
                candidate_from_ms INTEGER NOT NULL,
                valid_until_ms INTEGER NOT NULL
            );
            CREATE INDEX visit_candidates_rank ON visit_candidates (region_code, expected_recovery DESC, overdue_since_day, account_id);
            CREATE INDEX visit_candidates_stale ON visit_candidates (region_code, valid_until_ms);
            CREATE TABLE ranking_backfill (id TEXT PRIMARY KEY NOT NULL);
            INSERT INTO ranking_backfill (id) VALUES ('pending');
            """)
        // The stage engine's order: (next day, row); SQLite keeps the rowid in every index.
        migrations.add("accounts-v8-evaluation-order", sqlite: """
            CREATE INDEX accounts_next_evaluation ON accounts (next_evaluation_day)
            """, postgres: """
            CREATE INDEX accounts_next_evaluation ON accounts (next_evaluation_day, rowid)
            """)
        // Each debtor's change trail (ListDebtorChanges): who changed which fields, when and
        // why, never the values (`body` is a `DebtorChange`); `address_corrected` marks the
        // entries that re-checked the address (a wrong-address visit from before the last
        // one does not make the address unverified again).
        migrations.add("accounts-v9-debtor-changes", sql: """
            CREATE TABLE debtor_changes (
                debtor_id TEXT NOT NULL REFERENCES debtors(id),
                sequence INTEGER NOT NULL,
                changed_ms INTEGER NOT NULL,
                address_corrected INTEGER NOT NULL,
                body BLOB NOT NULL,
                PRIMARY KEY (debtor_id, sequence)
            ) WITHOUT ROWID;
            """)
        // Bulk loading (ImportAccounts, ImportPayments): per external key ("debtor" by its
        // external_id, "account" by lender_id and external_id, "payment" by account id and
        // the payment's external_id) the resource it names and a keyed digest of the last
        // record imported for it, so that the same record again is UNCHANGED without a write.
        migrations.add("accounts-v10-imports", sql: """
            CREATE TABLE import_keys (
                kind TEXT NOT NULL,
                external_key TEXT NOT NULL,
                resource_id TEXT NOT NULL,
                digest TEXT NOT NULL,
                PRIMARY KEY (kind, external_key)
            ) WITHOUT ROWID;
            """)
        // Placements of accounts with agencies (PlaceAccounts, RecallAccounts; `body` is a
        // `Placement`): the history, with at most one ACTIVE (state 1) placement per account
        // held by the partial unique index. The active one's agency is mirrored into
        // accounts.assigned_agency_id, which scoping, filters and the ranking read.
        migrations.add("accounts-v11-placements", sql: """
            CREATE TABLE placements (
                id TEXT PRIMARY KEY NOT NULL,
                account_id TEXT NOT NULL REFERENCES accounts(id),
                agency_id TEXT NOT NULL,
                state INTEGER NOT NULL,
                end_day INTEGER NOT NULL,
                placed_ms INTEGER NOT NULL,
                ended_ms INTEGER NOT NULL,
                body BLOB NOT NULL
            );
            CREATE UNIQUE INDEX placements_active ON placements (account_id) WHERE state = 1;
            CREATE INDEX placements_agency ON placements (agency_id, state);
            CREATE INDEX placements_account ON placements (account_id, placed_ms);
            """)
        // ListPersonalDataAccess filters by actor, agency and period as well as by debtor.
        migrations.add("accounts-v12-personal-data-access-filters", sql: """
            CREATE INDEX personal_data_access_subject ON personal_data_access (subject, id);
            CREATE INDEX personal_data_access_agency ON personal_data_access (agency_id, id);
            CREATE INDEX personal_data_access_time ON personal_data_access (at_ms);
            """)
        EventLog.addMigrations(to: &migrations)
        Webhooks.addMigrations(to: &migrations)
        // Retention (RetentionSweep.swift): when each debtor's personal data is due for
        // erasure (NULL = to be computed from its accounts, 0 = never: an account is open),
        // the hold that last postponed it, when it was erased; and the retention audit.
        migrations.add("accounts-v13-retention", sql: """
            ALTER TABLE debtors ADD COLUMN retention_due_ms INTEGER;
            ALTER TABLE debtors ADD COLUMN retention_hold TEXT NOT NULL DEFAULT '';
            ALTER TABLE debtors ADD COLUMN erased_ms INTEGER NOT NULL DEFAULT 0;
            CREATE INDEX debtors_retention ON debtors (retention_due_ms, id);
            CREATE TABLE retention_records (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                recorded_ms INTEGER NOT NULL,
                debtor_id TEXT NOT NULL,
                body BLOB NOT NULL
            );
            CREATE INDEX retention_records_debtor ON retention_records (debtor_id, id);
            """)
        EventLog.addRetentionMigrations(to: &migrations)
        return migrations
    }

    /// Checks that `cipher` holds the data key this database's personal data is sealed
    /// with (the first process to open it records a value sealed with its key). Returns false
    /// for another key.
    func verifyDataKey() async throws -> Bool {
        let cipher = self.cipher
        let probe = Array("doorstep data key check".utf8)
        return try await database.write { db in
            if let sealed = try db.fetchValue(Data.self, sql: "SELECT sealed FROM data_key_check WHERE id = 'data-key'") {
                return (try? cipher.open(sealed, context: "data-key-check")) == probe
            }
            try db.execute(sql: "INSERT INTO data_key_check (id, sealed) VALUES ('data-key', ?)",
                           arguments: [try cipher.seal(probe, context: "data-key-check")])
            return true
        }
    }

    // MARK: Debtors

    func debtorExists(_ db: SQLSession, externalID: String) throws -> Bool {
        try db.fetchValue(Bool.self, sql: "SELECT EXISTS (SELECT 1 FROM debtors WHERE external_id = ?)", arguments: [externalID]) ?? false
    }

    func insert(_ db: SQLSession, debtor: AccountsV1.Debtor) throws {
        try insert(db, debtor: debtor, sealed: try seal(debtor))
    }

    /// The debtor's row as stored: its encoding sealed under the data key, bound to its id.
    func seal(_ debtor: AccountsV1.Debtor) throws -> Data {
        try cipher.seal(try debtor.encode(), context: debtor.id)
    }

    /// Inserts a debtor already sealed (``seal(_:)``, e.g. outside the write transaction).
    func insert(_ db: SQLSession, debtor: AccountsV1.Debtor, sealed: Data) throws {
        try db.execute(
            sql: """
                INSERT INTO debtors (id, external_id, region_code, sealed, version, created_ms, updated_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [debtor.id, debtor.externalId, debtor.address?.regionCode ?? "", sealed,
                        debtor.version, debtor.createdMs, debtor.updatedMs])
    }

    /// The debtor with full personal data, or nil.
    func debtor(_ db: SQLSession, id: String) throws -> AccountsV1.Debtor? {
        guard let sealed = try db.fetchValue(Data.self, sql: "SELECT sealed FROM debtors WHERE id = ?", arguments: [id]) else {
            return nil
        }
        return try AccountsV1.Debtor(decoding: try cipher.open(sealed, context: id))
    }

    /// Several debtors with full personal data, by id (those that exist).
    func debtors(_ db: SQLSession, ids: [String]) throws -> [String: AccountsV1.Debtor] {
        guard !ids.isEmpty else { return [:] }
        var debtors: [String: AccountsV1.Debtor] = [:]
        for row in try db.fetchAll(sql: "SELECT id, sealed FROM debtors WHERE id IN (\(ids.map { _ in "?" }.joined(separator: ",")))",
                                   arguments: SQLArguments(ids)) {
            let id: String = row["id"]
            let sealed: Data = row["sealed"]
            debtors[id] = try AccountsV1.Debtor(decoding: try cipher.open(sealed, context: id))
        }
        return debtors
    }

    /// Writes a changed debtor (its version already incremented by the caller), sealed again.
    func update(_ db: SQLSession, debtor: AccountsV1.Debtor) throws {
        try db.execute(
            sql: "UPDATE debtors SET region_code = ?, sealed = ?, version = ?, updated_ms = ? WHERE id = ?",
            arguments: [debtor.address?.regionCode ?? "", try cipher.seal(try debtor.encode(), context: debtor.id),
                        debtor.version, debtor.updatedMs, debtor.id])
    }

    /// Appends an entry to the debtor's change trail, numbered after the last one; returns it
    /// with its sequence.
    @discardableResult
    func append(_ db: SQLSession, change: AccountsV1.DebtorChange, debtorID: String) throws -> AccountsV1.DebtorChange {
        var change = change
        change.sequence = (try db.fetchValue(Int64.self, sql: "SELECT COALESCE(MAX(sequence), 0) FROM debtor_changes WHERE debtor_id = ?",
                                             arguments: [debtorID]) ?? 0) + 1
        let corrected = change.kind == .updated && change.fields.contains { DebtorCorrection.Field(rawValue: $0)?.correctsAddress == true }
        try db.execute(
            sql: "INSERT INTO debtor_changes (debtor_id, sequence, changed_ms, address_corrected, body) VALUES (?, ?, ?, ?, ?)",
            arguments: [debtorID, change.sequence, change.changedMs, corrected, Data(try change.encode())])
        return change
    }

    /// Up to `limit` entries of the debtor's trail after `sequence`, oldest first.
    func changes(_ db: SQLSession, debtorID: String, after sequence: Int64, limit: Int) throws -> [AccountsV1.DebtorChange] {
        try db.fetchValues(Data.self, sql: "SELECT body FROM debtor_changes WHERE debtor_id = ? AND sequence > ? ORDER BY sequence LIMIT ?",
                           arguments: [debtorID, sequence, limit])
            .map { try AccountsV1.DebtorChange(decoding: [UInt8]($0)) }
    }

    /// When the debtor's address was last corrected (UpdateDebtor naming it), or nil if never.
    func lastAddressCorrectionMs(_ db: SQLSession, debtorID: String) throws -> Int64? {
        try db.fetchValue(Int64.self, sql: "SELECT MAX(changed_ms) FROM debtor_changes WHERE debtor_id = ? AND address_corrected = 1",
                          arguments: [debtorID])
    }

    /// Writes a line to the personal-data access log (who, what, when, why).
    func auditPersonalDataRead(_ db: SQLSession, debtorID: String, actor: TypeV1.Actor, fields: [String], reason: String, atMs: Int64) throws {
        try db.execute(
            sql: """
                INSERT INTO personal_data_access (at_ms, role, subject, agency_id, debtor_id, fields, reason)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [atMs, actor.role.protoName ?? "\(actor.role.rawValue)", actor.subject, actor.agencyId, debtorID,
                        fields.joined(separator: ","), reason])
    }

    // MARK: Accounts

    func accountExists(_ db: SQLSession, lenderID: String, externalID: String) throws -> Bool {
        try db.fetchValue(Bool.self, sql: "SELECT EXISTS (SELECT 1 FROM accounts WHERE lender_id = ? AND external_id = ?)",
            arguments: [lenderID, externalID]) ?? false
    }

    /// Inserts a new account (evaluated at the next stage-engine run) and its ranking entry.
    /// `newDebtor`: its debtor was inserted in
    /// this transaction (its retention date, never computed, needs no reset).
    /// `body`: the account's encoding when the caller has it.
    func insert(_ db: SQLSession, account: AccountsV1.Account, nowMs: Int64, newDebtor: Bool = false, body: [UInt8]? = nil) throws {
        try db.execute(
            sql: """
                INSERT INTO accounts (id, debtor_id, lender_id, external_id, assigned_agency_id, stage, region_code, body, version,
                                      created_ms, updated_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [account.id, account.debtorId, account.lenderId, account.externalId, account.assignedAgencyId,
                        account.stage.rawValue, account.regionCode, Data(try body ?? account.encode()), account.version,
                        account.createdMs, account.updatedMs])
        try keepRank(db, account: account, contacts: ContactStats(), nowMs: nowMs, isNew: true)
        if !newDebtor { try retentionChanged(db, account: account) }
    }

    /// Writes a changed account (its version already incremented by the caller) and its
    /// ranking entry. `evaluated`: the day the stage engine evaluated it for and its next look
    /// (``EvaluationSchedule``); nil for any other change, which the next run looks at.
    func update(_ db: SQLSession, account: AccountsV1.Account, contacts: ContactStats, nowMs: Int64,
                evaluated: (day: Int, nextDay: Int)? = nil) throws {
        let body = Data(try account.encode())
        if let evaluated {
            try db.execute(
                sql: """
                    UPDATE accounts SET stage = ?, region_code = ?, assigned_agency_id = ?, body = ?, version = ?, updated_ms = ?,
                        evaluated_day = ?, next_evaluation_day = ? WHERE id = ?
                    """,
                arguments: [account.stage.rawValue, account.regionCode, account.assignedAgencyId, body, account.version,
                            account.updatedMs, evaluated.day, evaluated.nextDay, account.id])
        } else {
            try db.execute(
                sql: """
                    UPDATE accounts SET stage = ?, region_code = ?, assigned_agency_id = ?, body = ?, version = ?, updated_ms = ?,
                        next_evaluation_day = 0 WHERE id = ?
                    """,
                arguments: [account.stage.rawValue, account.regionCode, account.assignedAgencyId, body, account.version,
                            account.updatedMs, account.id])
        }
        try keepRank(db, account: account, contacts: contacts, nowMs: nowMs)
        try retentionChanged(db, account: account)
    }

    /// Brings the account's ranking entry up to date: written for a FIELD account on no hold,
    /// removed otherwise.
    /// `isNew`: the account was inserted in this transaction (it has no entry to remove).
    func keepRank(_ db: SQLSession, account: AccountsV1.Account, contacts: ContactStats, nowMs: Int64, isNew: Bool = false) throws {
        guard let rank = CandidateRank.of(account, contacts: contacts, nowMs: nowMs, configuration: configuration) else {
            if !isNew { try db.execute(sql: "DELETE FROM visit_candidates WHERE account_id = ?", arguments: [account.id]) }
            return
        }
        try db.execute(
            sql: """
                INSERT INTO visit_candidates (account_id, debtor_id, region_code, agency_id, time_zone, expected_recovery,
                    overdue_since_day, overdue_minor, currency, risk_score, risk_tier, probability_bp, version, last_visit_ms,
                    candidate_from_ms, valid_until_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (account_id) DO UPDATE SET debtor_id = excluded.debtor_id, region_code = excluded.region_code,
                    agency_id = excluded.agency_id, time_zone = excluded.time_zone, expected_recovery = excluded.expected_recovery,
                    overdue_since_day = excluded.overdue_since_day, overdue_minor = excluded.overdue_minor,
                    currency = excluded.currency, risk_score = excluded.risk_score, risk_tier = excluded.risk_tier,
                    probability_bp = excluded.probability_bp, version = excluded.version, last_visit_ms = excluded.last_visit_ms,
                    candidate_from_ms = excluded.candidate_from_ms, valid_until_ms = excluded.valid_until_ms
                """,
            arguments: [rank.accountID, rank.debtorID, rank.regionCode, rank.agencyID, rank.timeZone, rank.expectedRecoveryMinor,
                        rank.overdueSinceDay, rank.overdueMinor, rank.currency, rank.riskScore, rank.riskTier.rawValue,
                        rank.paymentProbabilityBp, rank.version, rank.lastVisitMs, rank.candidateFromMs, rank.validUntilMs])
    }

    /// Appends events to an account's timeline, numbering them after the last one.
    func append(_ db: SQLSession, events: [AccountsV1.TimelineEvent], accountID: String, nowMs: Int64) throws {
        var sequence = try db.fetchValue(Int64.self, sql: "SELECT COALESCE(MAX(sequence), 0) FROM timeline WHERE account_id = ?",
            arguments: [accountID]) ?? 0
        for var event in events {
            sequence += 1
            event.id = IDGenerator.make(prefix: "evt", nowMs: nowMs)
            event.accountId = accountID
            event.sequence = sequence
            event.occurredMs = nowMs
            let body = try event.encode()
            try db.execute(
                sql: "INSERT INTO timeline (account_id, sequence, event_type, body) VALUES (?, ?, ?, ?)",
                arguments: [accountID, sequence, event.eventType.rawValue, Data(body)])
            try publish(db, event, encoded: body)
        }
    }

    /// Writes a timeline event to the service's event log too, in the same transaction: type
    /// "doorstep.accounts.account.<what>" (the event type's name, e.g. `stage_changed`),
    /// subject "accounts/<id>", the timeline event (`encoded`, as the timeline stores it) as data
    /// and its id as the event's.
    func publish(_ db: SQLSession, _ event: AccountsV1.TimelineEvent, encoded: [UInt8]) throws {
        try events.append(db, type: Self.eventType(event.eventType), subject: "accounts/\(event.accountId)", data: event,
                          encoded: encoded, id: event.id, nowMs: event.occurredMs)
    }

    /// The CloudEvents type of a timeline event type: its name in lower case, without the
    /// account prefix the resource already says (ACCOUNT_OPENED → "doorstep.accounts.account.opened",
    /// STAGE_CHANGED → "doorstep.accounts.account.stage_changed").
    static func eventType(_ type: AccountsV1.TimelineEventType) -> String {
        var name = (type.protoName ?? "TIMELINE_EVENT_TYPE_\(type.rawValue)").dropFirst("TIMELINE_EVENT_TYPE_".count).lowercased()
        if name.hasPrefix("account_") { name.removeFirst("account_".count) }
        return "doorstep.accounts.account." + name
    }

    /// Up to `limit` events after `sequence`, oldest first, optionally of some types only.
    func timeline(_ db: SQLSession, accountID: String, after sequence: Int64, types: [Int32], limit: Int) throws -> [AccountsV1.TimelineEvent] {
        var sql = "SELECT body FROM timeline WHERE account_id = ? AND sequence > ?"
        var arguments: SQLArguments = [accountID, sequence]
        if !types.isEmpty {
            sql += " AND event_type IN (\(types.map { _ in "?" }.joined(separator: ",")))"
            arguments += SQLArguments(types)
        }
        sql += " ORDER BY sequence LIMIT ?"
        arguments += [limit]
        return try db.fetchValues(Data.self, sql: sql, arguments: arguments).map { try AccountsV1.TimelineEvent(decoding: [UInt8]($0)) }
    }

    /// The SQL-side filters of ListAccounts (the others depend on today's date or the body).
    struct AccountQuery: Sendable {
        var debtorID = ""
        var lenderID = ""
        var externalID = ""
        var assignedAgencyID = ""
        var regionCode = ""
        var stages: [Int32] = []
    }

    /// Up to `limit` accounts in creation (insertion) order after the row `after`, each with
    /// its row number (rows are never deleted, so row numbers only grow) and its contact
    /// statistics.
    func accounts(_ db: SQLSession, matching query: AccountQuery, after: Int64?, limit: Int) throws
        -> [(row: Int64, account: AccountsV1.Account, contacts: ContactStats)] {
        var conditions: [String] = []
        var arguments = SQLArguments()
        func add(_ condition: String, _ values: [any SQLValueConvertible]) {
            conditions.append(condition)
            arguments += SQLArguments(values)
        }
        if !query.debtorID.isEmpty { add("debtor_id = ?", [query.debtorID]) }
        if !query.lenderID.isEmpty { add("lender_id = ?", [query.lenderID]) }
        if !query.externalID.isEmpty { add("external_id = ?", [query.externalID]) }
        if !query.assignedAgencyID.isEmpty { add("assigned_agency_id = ?", [query.assignedAgencyID]) }
        if !query.regionCode.isEmpty { add("region_code = ?", [query.regionCode]) }
        if !query.stages.isEmpty { add("stage IN (\(query.stages.map { _ in "?" }.joined(separator: ",")))", query.stages) }
        if let after { add("rowid > ?", [after]) }
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        arguments += [limit]
        return try db.fetchAll(
            sql: "SELECT rowid, body, remote_attempts, connected_attempts, last_visit_ms FROM accounts \(filter) ORDER BY rowid LIMIT ?",
            arguments: arguments
        ).map { row in
            let body: Data = row["body"]
            return (row["rowid"], try AccountsV1.Account(decoding: [UInt8](body)), Self.contactStats(row))
        }
    }

    /// One account as the stage engine reads it.
    struct EvaluationRow: Sendable {
        /// Where it stands in the run's order: its next evaluation day and row.
        var nextDay: Int
        var row: Int64
        /// The last day (day number) it was evaluated for.
        var evaluatedDay: Int
        var account: AccountsV1.Account
        var contacts: ContactStats
    }

    /// Which accounts a stage-engine run reads.
    enum EvaluationSelection: Sendable {
        /// These accounts, whatever their schedule.
        case ids([String])
        /// The accounts whose next evaluation day is at most `throughDay`, in (day, row)
        /// order after the cursor.
        case due(throughDay: Int, afterDay: Int, afterRow: Int64)
        /// Every account not SETTLED or WRITTEN_OFF, in row order after `afterRow`.
        case every(afterRow: Int64)
    }

    /// Locks the rows it returns on PostgreSQL (the run writes them at READ COMMITTED).
    func accountsForEvaluation(_ db: SQLSession, _ selection: EvaluationSelection, limit: Int) throws -> [EvaluationRow] {
        let columns = "rowid, next_evaluation_day, evaluated_day, body, remote_attempts, connected_attempts, last_visit_ms"
        let rows: [SQLRow]
        switch selection {
        case .ids(let ids):
            rows = try db.fetchAll(sql: "SELECT \(columns) FROM accounts WHERE id IN (\(ids.map { _ in "?" }.joined(separator: ","))) ORDER BY rowid\(db.dialect.lockForUpdate)",
                                   arguments: SQLArguments(ids))
        case .due(let through, let day, let row):
            // Two index seeks, never a scan from the index's start: the rest of the cursor's
            // day, then the days after it.
            var due = day > through ? [] : try db.fetchAll(sql: """
                    SELECT \(columns) FROM accounts WHERE next_evaluation_day = ? AND rowid > ?
                    ORDER BY next_evaluation_day, rowid LIMIT ?\(db.dialect.lockForUpdate)
                    """,
                arguments: [day, row, limit])
            if due.count < limit {
                due += try db.fetchAll(sql: """
                    SELECT \(columns) FROM accounts WHERE next_evaluation_day > ? AND next_evaluation_day <= ?
                    ORDER BY next_evaluation_day, rowid LIMIT ?\(db.dialect.lockForUpdate)
                    """,
                    arguments: [day, through, limit - due.count])
            }
            rows = due
        case .every(let after):
            rows = try db.fetchAll(sql: "SELECT \(columns) FROM accounts WHERE rowid > ? AND stage NOT IN (?, ?) ORDER BY rowid LIMIT ?\(db.dialect.lockForUpdate)",
                arguments: [after, AccountsV1.Stage.settled.rawValue, AccountsV1.Stage.writtenOff.rawValue, limit])
        }
        return try rows.map { row in
            let body: Data = row["body"]
            let account = try body.withUnsafeBytes { bytes throws(WireError) in try AccountsV1.Account(decodingStored: bytes) }
            return EvaluationRow(nextDay: row["next_evaluation_day"], row: row["rowid"], evaluatedDay: row["evaluated_day"],
                                 account: account, contacts: Self.contactStats(row))
        }
    }

    /// Marks the day an account was evaluated for and the next day to look at it, when the
    /// account itself did not change.
    func setEvaluated(_ db: SQLSession, accountID: String, day: Int, nextDay: Int) throws {
        try db.execute(sql: "UPDATE accounts SET evaluated_day = ?, next_evaluation_day = ? WHERE id = ?",
                       arguments: [day, nextDay, accountID])
    }

    /// Records a contact attempt; `numberDigest` identifies the number dialled or texted.
    func insert(_ db: SQLSession, attempt: AccountsV1.ContactAttempt, debtorID: String, remote: Bool, connected: Bool,
                numberDigest: String) throws {
        try db.execute(
            sql: """
                INSERT INTO contact_attempts (id, account_id, debtor_id, attempted_ms, remote, connected, number_digest, body)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [attempt.id, attempt.accountId, debtorID, attempt.attemptedMs, remote, connected, numberDigest,
                        Data(try attempt.encode())])
        try db.execute(
            sql: """
                UPDATE accounts SET remote_attempts = remote_attempts + ?, connected_attempts = connected_attempts + ?,
                    last_visit_ms = CASE WHEN ? > last_visit_ms THEN ? ELSE last_visit_ms END
                WHERE id = ?
                """,
            arguments: [remote ? 1 : 0, remote && connected ? 1 : 0, remote ? Int64(0) : attempt.attemptedMs,
                        remote ? Int64(0) : attempt.attemptedMs, attempt.accountId])
    }

    /// The debtor's latest attempts (all accounts), oldest first, with the number digests.
    func contactHistory(_ db: SQLSession, debtorID: String, limit: Int = 1000) throws -> [(attempt: AccountsV1.ContactAttempt, numberDigest: String)] {
        try db.fetchAll(sql: """
                SELECT body, number_digest FROM (
                    SELECT body, number_digest, attempted_ms, id FROM contact_attempts WHERE debtor_id = ?
                    ORDER BY attempted_ms DESC, id DESC LIMIT ?) AS latest ORDER BY attempted_ms, id
                """,
            arguments: [debtorID, limit]
        ).map { row in
            let body: Data = row["body"]
            return (try AccountsV1.ContactAttempt(decoding: [UInt8](body)), row["number_digest"])
        }
    }

    /// Remote attempts about one account, how many reached someone (the risk factor), and
    /// when the last visit attempt took place (the only attempts that are not remote are
    /// visits, reported by the visits service with the crew's check-in time).
    /// Kept as counters on the account's row by ``insert(_:attempt:debtorID:remote:connected:numberDigest:)``.
    func contactStats(_ db: SQLSession, accountID: String) throws -> ContactStats {
        let row = try db.fetchOne(sql: "SELECT remote_attempts, connected_attempts, last_visit_ms FROM accounts WHERE id = ?",
                                  arguments: [accountID])
        return row.map(Self.contactStats) ?? ContactStats()
    }

    static func contactStats(_ row: SQLRow) -> ContactStats {
        ContactStats(remote: row["remote_attempts"], connected: row["connected_attempts"], lastVisitMs: row["last_visit_ms"])
    }

    /// Every account in `stage` whose debtor lives in `region`, with its contact statistics.
    func accounts(_ db: SQLSession, stage: AccountsV1.Stage, region: String) throws -> [(AccountsV1.Account, ContactStats)] {
        try db.fetchAll(sql: "SELECT body, remote_attempts, connected_attempts, last_visit_ms FROM accounts WHERE stage = ? AND region_code = ?",
                        arguments: [stage.rawValue, region])
            .map { row in
                let body: Data = row["body"]
                return (try AccountsV1.Account(decoding: [UInt8](body)), Self.contactStats(row))
            }
    }

    // MARK: The candidate ranking

    /// The ranking's filters (ListVisitCandidates).
    struct CandidateFilter: Sendable {
        var region: String
        /// Only accounts assigned to this agency ("" = any).
        var agencyID = ""
        var minimumExpectedRecovery: Int64 = 0
        var excluded: [String] = []
    }

    private func filterClause(_ filter: CandidateFilter) -> (sql: String, arguments: SQLArguments) {
        var sql = "region_code = ?"
        var arguments: SQLArguments = [filter.region]
        if !filter.agencyID.isEmpty {
            sql += " AND agency_id = ?"
            arguments += [filter.agencyID]
        }
        if !filter.excluded.isEmpty {
            sql += " AND account_id NOT IN (\(filter.excluded.map { _ in "?" }.joined(separator: ",")))"
            arguments += SQLArguments(filter.excluded)
        }
        return (sql, arguments)
    }

    /// Entries of the region whose figures are older than the debtor's today (at most `limit`).
    func staleRanks(_ db: SQLSession, region: String, nowMs: Int64, limit: Int) throws -> [String] {
        try db.fetchValues(String.self, sql: "SELECT account_id FROM visit_candidates WHERE region_code = ? AND valid_until_ms <= ? LIMIT ?",
                           arguments: [region, nowMs, limit])
    }

    /// Recomputes the entries of these accounts from the stored accounts.
    func refreshRanks(_ db: SQLSession, accountIDs: [String], nowMs: Int64) throws {
        guard !accountIDs.isEmpty else { return }
        let rows = try db.fetchAll(
            sql: "SELECT body, remote_attempts, connected_attempts, last_visit_ms FROM accounts WHERE id IN (\(accountIDs.map { _ in "?" }.joined(separator: ",")))",
            arguments: SQLArguments(accountIDs))
        for row in rows {
            let body: Data = row["body"]
            try keepRank(db, account: try AccountsV1.Account(decoding: [UInt8](body)), contacts: Self.contactStats(row), nowMs: nowMs)
        }
    }

    /// One page of candidates (not deferred as of `nowMs`), best first: expected recovery,
    /// then days past due (the oldest overdue date first), then id.
    func rankedCandidates(_ db: SQLSession, _ filter: CandidateFilter, nowMs: Int64, offset: Int, limit: Int) throws -> [CandidateRank] {
        let (conditions, filterArguments) = filterClause(filter)
        var arguments = filterArguments
        arguments += [filter.minimumExpectedRecovery, nowMs, limit, offset]
        return try db.fetchAll(sql: """
                SELECT * FROM visit_candidates
                WHERE \(conditions) AND expected_recovery >= ? AND candidate_from_ms <= ?
                ORDER BY expected_recovery DESC, overdue_since_day, account_id LIMIT ? OFFSET ?
                """,
            arguments: arguments
        ).map(Self.rank)
    }

    /// The accounts of the region deferred as of `nowMs`, with their contact statistics.
    func deferredCandidates(_ db: SQLSession, _ filter: CandidateFilter, nowMs: Int64) throws -> [(AccountsV1.Account, ContactStats)] {
        let (conditions, filterArguments) = filterClause(filter)
        var arguments = filterArguments
        arguments += [nowMs]
        return try db.fetchAll(sql: """
                SELECT a.body, a.remote_attempts, a.connected_attempts, a.last_visit_ms
                FROM visit_candidates v JOIN accounts a ON a.id = v.account_id
                WHERE \(conditions.replacingOccurrences(of: "region_code", with: "v.region_code")) AND v.candidate_from_ms > ?
                ORDER BY v.account_id
                """,
            arguments: arguments
        ).map { row in
            let body: Data = row["body"]
            return (try AccountsV1.Account(decoding: [UInt8](body)), Self.contactStats(row))
        }
    }

    private static func rank(_ row: SQLRow) -> CandidateRank {
        CandidateRank(
            accountID: row["account_id"], debtorID: row["debtor_id"], regionCode: row["region_code"], agencyID: row["agency_id"],
            timeZone: row["time_zone"], expectedRecoveryMinor: row["expected_recovery"], overdueSinceDay: row["overdue_since_day"],
            overdueMinor: row["overdue_minor"], currency: row["currency"], riskScore: row["risk_score"],
            riskTier: AccountsV1.RiskTier(rawValue: row["risk_tier"]), paymentProbabilityBp: row["probability_bp"],
            version: row["version"], lastVisitMs: row["last_visit_ms"], candidateFromMs: row["candidate_from_ms"], validUntilMs: row["valid_until_ms"])
    }

    /// The stored account (delinquency as of when it was last written), or nil.
    func account(_ db: SQLSession, id: String) throws -> AccountsV1.Account? {
        guard let body = try db.fetchValue(Data.self, sql: "SELECT body FROM accounts WHERE id = ?", arguments: [id]) else {
            return nil
        }
        return try AccountsV1.Account(decoding: [UInt8](body))
    }

    /// GetAccount's lookup: the stored account with its contact statistics, or nil, in one
    /// statement whose row is read in place. The stored bytes are compared with the ones
    /// `cache` decoded last for this id, and decoded (without the checks input from outside
    /// gets) only when they differ.
    func accountForRead(_ db: SQLSession, id: String, cache: StoredAccountCache) throws -> StoredAccountRead? {
        try db.readFirstRow(sql: "SELECT body, remote_attempts, connected_attempts, last_visit_ms FROM accounts WHERE id = ?",
                            arguments: [id]) { row in
            StoredAccountRead(entry: try row.withBytes(0) { bytes in try cache.entry(id: id, bytes: bytes) },
                              contacts: ContactStats(remote: row[1], connected: row[2], lastVisitMs: row[3]))
        }
    }

    /// GetAccount's lookup for several reads at once (``PointReadBatcher``): the same columns
    /// as ``accountForRead(_:id:cache:)`` for each of `ids` in one statement, a row per id as
    /// asked (an id asked twice is looked up twice), in order; nil where there is no account,
    /// a failure where a stored body does not decode (that read only).
    func accountsForRead(_ db: SQLSession, ids: [String], cache: StoredAccountCache) throws -> [Result<StoredAccountRead, any Error>?] {
        if ids.count == 1 { return [try accountForRead(db, id: ids[0], cache: cache).map { .success($0) }] }
        var results = [Result<StoredAccountRead, any Error>?](repeating: nil, count: ids.count)
        let sql: String
        let arguments: SQLArguments
        if db.dialect == .postgres, !ids.contains(where: { $0.utf8.contains(UInt8(ascii: ",")) }) {
            // One parameter and one statement text whatever the count: the server parses and
            // plans a short statement instead of a VALUES list of every key (GetAccount's ids
            // never hold a comma: ``Validate/resourceID(_:field:prefix:)``; the VALUES list
            // takes any). ORDINALITY numbers from 1. (The comma is looked for in the UTF-8
            // bytes: `String.contains(_:)` with a string goes through Foundation, 1 % of a
            // PostgreSQL GetAccount's CPU.)
            sql = "SELECT k.n - 1, a.body, a.remote_attempts, a.connected_attempts, a.last_visit_ms "
                + "FROM unnest(string_to_array(?, ',')) WITH ORDINALITY AS k(id, n) JOIN accounts a ON a.id = k.id"
            arguments = [ids.joined(separator: ",")]
        } else {
            var keys: SQLArguments = []
            for (position, id) in ids.enumerated() {
                keys.append(position)
                keys.append(id)
            }
            sql = "WITH k(n, id) AS (VALUES \(Self.keyRows(ids.count))) SELECT k.n, a.body, a.remote_attempts, "
                + "a.connected_attempts, a.last_visit_ms FROM k JOIN accounts a ON a.id = k.id"
            arguments = keys
        }
        // Each body is compared with (or decoded from) the answer's own buffer, not a copy.
        try db.readRows(sql: sql, arguments: arguments) { row in
            let position: Int = row[0]
            guard results.indices.contains(position) else {
                throw StorageError(reason: .failed, detail: "a batched account read answered position \(position) for \(ids.count) keys")
            }
            results[position] = Result {
                StoredAccountRead(entry: try row.withBytes(1) { bytes in try cache.entry(id: ids[position], bytes: bytes) },
                                  contacts: ContactStats(remote: row[2], connected: row[3], lastVisitMs: row[4]))
            }
        }
        return results
    }

    /// `(?, ?), (?, ?), …` for `count` keys (position, id).
    private static func keyRows(_ count: Int) -> String {
        var text = "(?, ?)"
        text.reserveCapacity(count * 8)
        for _ in 1..<count { text += ", (?, ?)" }
        return text
    }
}
