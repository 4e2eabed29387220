import Events
import Foundation
import Models
import Outbox
import Storage
import Webhooks

/// The visits service's SQLite schema: visits (one per visited appointment) and complaints,
/// each row the resource's protobuf encoding beside its lookup and visibility columns.
/// Rows are written by CheckIn/RecordOutcome/CheckOut and FileComplaint.
struct VisitsStore: Sendable {
    let database: SQLDatabase
    /// The service's domain events (written in the transactions of the changes; WatchEvents).
    /// One log per process: a sweep's own store wakes the same watchers as the service's.
    var events: EventLog { Self.eventLog }
    static let eventLog = EventLog(source: "/doorstep/visits")

    static var migrations: SQLDatabase.Migrations {
        var migrations = SQLDatabase.Migrations()
        migrations.add("visits-v1", sql: """
            CREATE TABLE visits (
                id TEXT PRIMARY KEY NOT NULL,
                appointment_id TEXT NOT NULL UNIQUE,
                account_id TEXT NOT NULL,
                agency_id TEXT NOT NULL,
                state INTEGER NOT NULL,
                body BLOB NOT NULL,
                version INTEGER NOT NULL,
                created_ms INTEGER NOT NULL,
                updated_ms INTEGER NOT NULL
            );
            CREATE INDEX visits_account ON visits (account_id);
            CREATE INDEX visits_agency ON visits (agency_id);
            CREATE TABLE visit_crew (
                visit_id TEXT NOT NULL REFERENCES visits(id),
                collector_id TEXT NOT NULL,
                PRIMARY KEY (visit_id, collector_id)
            ) WITHOUT ROWID;
            CREATE INDEX visit_crew_collector ON visit_crew (collector_id);
            CREATE TABLE complaints (
                id TEXT PRIMARY KEY NOT NULL,
                account_id TEXT NOT NULL,
                visit_id TEXT NOT NULL,
                collector_id TEXT NOT NULL,
                agency_id TEXT NOT NULL,
                status INTEGER NOT NULL,
                body BLOB NOT NULL,
                version INTEGER NOT NULL,
                created_ms INTEGER NOT NULL,
                updated_ms INTEGER NOT NULL
            );
            CREATE INDEX complaints_agency ON complaints (agency_id);
            """)
        migrations.add("visits-v2-chain", sql: """
            CREATE INDEX visits_created ON visits (created_ms, id);
            CREATE TABLE chain_records (
                account_id TEXT NOT NULL,
                sequence INTEGER NOT NULL,
                visit_id TEXT NOT NULL,
                kind INTEGER NOT NULL,
                appended_ms INTEGER NOT NULL,
                previous_sha256 BLOB NOT NULL,
                payload BLOB NOT NULL,
                record_sha256 BLOB NOT NULL,
                PRIMARY KEY (account_id, sequence)
            ) WITHOUT ROWID;
            """)
        Outbox.addMigrations(to: &migrations)
        migrations.add("visits-v3-complaints", sql: """
            ALTER TABLE complaints ADD COLUMN sla_due_ms INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE complaints ADD COLUMN received_ms INTEGER NOT NULL DEFAULT 0;
            CREATE INDEX complaints_due ON complaints (sla_due_ms, id);
            CREATE INDEX complaints_account ON complaints (account_id);
            """)
        migrations.add("visits-v4-sla-breach", sql: """
            ALTER TABLE complaints ADD COLUMN sla_breach_noted INTEGER NOT NULL DEFAULT 0;
            """)
        EventLog.addMigrations(to: &migrations)
        // Retention (RetentionSweep.swift): when each record is due for erasure (NULL = not
        // computed yet, 0 = never), the hold that last postponed it, when it was erased; and
        // the retention audit.
        migrations.add("visits-v5-retention", sql: """
            ALTER TABLE visits ADD COLUMN retention_due_ms INTEGER;
            ALTER TABLE visits ADD COLUMN retention_hold TEXT NOT NULL DEFAULT '';
            ALTER TABLE visits ADD COLUMN erased_ms INTEGER NOT NULL DEFAULT 0;
            CREATE INDEX visits_retention ON visits (retention_due_ms, id);
            ALTER TABLE complaints ADD COLUMN retention_due_ms INTEGER;
            ALTER TABLE complaints ADD COLUMN retention_hold TEXT NOT NULL DEFAULT '';
            ALTER TABLE complaints ADD COLUMN erased_ms INTEGER NOT NULL DEFAULT 0;
            CREATE INDEX complaints_retention ON complaints (retention_due_ms, id);
            CREATE TABLE retention_records (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                recorded_ms INTEGER NOT NULL,
                account_id TEXT NOT NULL,
                record_id TEXT NOT NULL,
                body BLOB NOT NULL
            );
            CREATE INDEX retention_records_account ON retention_records (account_id, id);
            """)
        Webhooks.addMigrations(to: &migrations)
        EventLog.addRetentionMigrations(to: &migrations)
        return migrations
    }

    func visit(_ db: SQLSession, id: String) throws -> VisibleRecord<VisitsV1.Visit>? {
        guard let row = try db.fetchOne(sql: "SELECT body, agency_id FROM visits WHERE id = ?", arguments: [id]) else {
            return nil
        }
        let body: Data = row["body"]
        let crew = try db.fetchValues(String.self, sql: "SELECT collector_id FROM visit_crew WHERE visit_id = ?", arguments: [id])
        return VisibleRecord(value: try VisitsV1.Visit(decoding: [UInt8](body)), agencyID: row["agency_id"], collectorIDs: Set(crew))
    }

    func complaint(_ db: SQLSession, id: String) throws -> VisibleRecord<VisitsV1.Complaint>? {
        guard let row = try db.fetchOne(sql: "SELECT body, agency_id, collector_id FROM complaints WHERE id = ?", arguments: [id]) else {
            return nil
        }
        let body: Data = row["body"]
        let collector: String = row["collector_id"]
        return VisibleRecord(value: try VisitsV1.Complaint(decoding: [UInt8](body)), agencyID: row["agency_id"],
                                collectorIDs: collector.isEmpty ? [] : [collector])
    }

    /// Writes a new visit with its crew (CheckIn creates it).
    func insert(_ db: SQLSession, visit: VisitsV1.Visit) throws {
        try db.execute(
            sql: """
                INSERT INTO visits (id, appointment_id, account_id, agency_id, state, body, version, created_ms, updated_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [visit.id, visit.appointmentId, visit.accountId, visit.agencyId, visit.state.rawValue,
                        Data(try visit.encode()), visit.version, visit.createdMs, visit.updatedMs])
        for collector in Set(visit.crewCollectorIds) {
            try db.execute(sql: "INSERT INTO visit_crew (visit_id, collector_id) VALUES (?, ?)", arguments: [visit.id, collector])
        }
    }
}

extension VisitsStore {
    /// The visit of an appointment, if any crew member checked in.
    func visit(_ db: SQLSession, appointmentID: String) throws -> VisitsV1.Visit? {
        guard let body = try db.fetchValue(Data.self, sql: "SELECT body FROM visits WHERE appointment_id = ?",
                                           arguments: [appointmentID]) else { return nil }
        return try VisitsV1.Visit(decoding: [UInt8](body))
    }

    func update(_ db: SQLSession, visit: VisitsV1.Visit) throws {
        try db.execute(sql: "UPDATE visits SET state = ?, body = ?, version = ?, updated_ms = ? WHERE id = ?",
                       arguments: [visit.state.rawValue, Data(try visit.encode()), visit.version, visit.updatedMs, visit.id])
    }

    /// Visits matching a list filter (already restricted to the caller), after the keyset
    /// (created_ms, id), in that order; at most `limit`. Outcome codes are filtered on the
    /// decoded record.
    func list(_ db: SQLSession, filter: VisitsV1.ListVisitsRequest, after: (createdMs: Int64, id: String)?, limit: Int) throws -> [VisitsV1.Visit] {
        var clauses: [String] = []
        var arguments: [any SQLValueConvertible] = []
        if !filter.accountId.isEmpty { clauses.append("v.account_id = ?"); arguments.append(filter.accountId) }
        if !filter.appointmentId.isEmpty { clauses.append("v.appointment_id = ?"); arguments.append(filter.appointmentId) }
        if !filter.agencyId.isEmpty { clauses.append("v.agency_id = ?"); arguments.append(filter.agencyId) }
        if !filter.collectorId.isEmpty {
            clauses.append("EXISTS (SELECT 1 FROM visit_crew c WHERE c.visit_id = v.id AND c.collector_id = ?)")
            arguments.append(filter.collectorId)
        }
        let states = filter.states.filter { $0 != .unspecified }
        if !states.isEmpty { clauses.append("v.state IN (\(states.map { String($0.rawValue) }.joined(separator: ",")))") }
        if filter.checkedInFromMs > 0 { clauses.append("v.created_ms >= ?"); arguments.append(filter.checkedInFromMs) }
        if filter.checkedInToMs > 0 { clauses.append("v.created_ms < ?"); arguments.append(filter.checkedInToMs) }
        if let after {
            clauses.append("(v.created_ms > ? OR (v.created_ms = ? AND v.id > ?))")
            arguments += [after.createdMs, after.createdMs, after.id]
        }
        let codes = Set(filter.outcomeCodes.filter { $0 != .unspecified })
        let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        var result: [VisitsV1.Visit] = []
        try db.scan(sql: "SELECT v.body FROM visits v \(whereClause) ORDER BY v.created_ms, v.id",
                    arguments: SQLArguments(arguments), batchSize: max(limit, 64)) { row in
            let body: Data = row["body"]
            let visit = try VisitsV1.Visit(decoding: [UInt8](body))
            if codes.isEmpty || codes.contains(visit.outcome?.code ?? .unspecified) { result.append(visit) }
            return result.count < limit
        }
        return result
    }
}

extension VisitsStore {
    /// The account's most recent visit, if any.
    func latestVisit(_ db: SQLSession, accountID: String) throws -> VisitsV1.Visit? {
        guard let body = try db.fetchValue(Data.self, sql: "SELECT body FROM visits WHERE account_id = ? ORDER BY created_ms DESC LIMIT 1",
                                           arguments: [accountID]) else { return nil }
        return try VisitsV1.Visit(decoding: [UInt8](body))
    }

    /// The agency of the collector's most recent visit (a collector belongs to one agency), or
    /// nil when visits has never seen the collector.
    func agencyID(_ db: SQLSession, collectorID: String) throws -> String? {
        try db.fetchValue(String.self, sql: """
            SELECT v.agency_id FROM visit_crew c JOIN visits v ON v.id = c.visit_id
            WHERE c.collector_id = ? ORDER BY v.created_ms DESC LIMIT 1
            """, arguments: [collectorID])
    }

    func visits(_ db: SQLSession, agencyID: String) throws -> [VisitsV1.Visit] {
        try db.fetchValues(Data.self, sql: "SELECT body FROM visits WHERE agency_id = ?", arguments: [agencyID])
            .map { try VisitsV1.Visit(decoding: [UInt8]($0)) }
    }

    func complaints(_ db: SQLSession, agencyID: String) throws -> [VisitsV1.Complaint] {
        try db.fetchValues(Data.self, sql: "SELECT body FROM complaints WHERE agency_id = ?", arguments: [agencyID])
            .map { try VisitsV1.Complaint(decoding: [UInt8]($0)) }
    }

    func insert(_ db: SQLSession, complaint: VisitsV1.Complaint) throws {
        try db.execute(sql: """
            INSERT INTO complaints (id, account_id, visit_id, collector_id, agency_id, status, body, version, created_ms, updated_ms,
                                    sla_due_ms, received_ms)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [complaint.id, complaint.accountId, complaint.visitId, complaint.collectorId, complaint.agencyId,
                             complaint.status.rawValue, Data(try complaint.encode()), complaint.version, complaint.createdMs,
                             complaint.updatedMs, complaint.slaDueMs, complaint.receivedMs])
    }

    func update(_ db: SQLSession, complaint: VisitsV1.Complaint) throws {
        try db.execute(sql: "UPDATE complaints SET status = ?, body = ?, version = ?, updated_ms = ?, sla_due_ms = ? WHERE id = ?",
                       arguments: [complaint.status.rawValue, Data(try complaint.encode()), complaint.version, complaint.updatedMs,
                                   complaint.slaDueMs, complaint.id])
    }

    /// Open complaints past their SLA due time whose breach is not on their timeline yet,
    /// most overdue first; at most `limit`.
    func unnotedBreaches(_ db: SQLSession, nowMs: Int64, limit: Int) throws -> [String] {
        try db.fetchValues(String.self, sql: """
            SELECT id FROM complaints WHERE status = ? AND sla_due_ms < ? AND sla_breach_noted = 0 ORDER BY sla_due_ms, id LIMIT ?
            """, arguments: [VisitsV1.ComplaintStatus.open.rawValue, nowMs, limit])
    }

    func noteBreach(_ db: SQLSession, complaintID: String) throws {
        try db.execute(sql: "UPDATE complaints SET sla_breach_noted = 1 WHERE id = ?", arguments: [complaintID])
    }

    /// Complaints matching a list filter (already restricted to the caller), by
    /// (sla_due_ms, id) after the keyset; at most `limit`.
    func listComplaints(_ db: SQLSession, filter: VisitsV1.ListComplaintsRequest, nowMs: Int64, after: (createdMs: Int64, id: String)?,
                        limit: Int) throws -> [VisitsV1.Complaint] {
        var clauses: [String] = []
        var arguments: [any SQLValueConvertible] = []
        if !filter.accountId.isEmpty { clauses.append("account_id = ?"); arguments.append(filter.accountId) }
        if !filter.collectorId.isEmpty { clauses.append("collector_id = ?"); arguments.append(filter.collectorId) }
        if !filter.agencyId.isEmpty { clauses.append("agency_id = ?"); arguments.append(filter.agencyId) }
        let statuses = filter.statuses.filter { $0 != .unspecified }
        if !statuses.isEmpty { clauses.append("status IN (\(statuses.map { String($0.rawValue) }.joined(separator: ",")))") }
        if filter.overdueOnly {
            clauses.append("status = \(VisitsV1.ComplaintStatus.open.rawValue) AND sla_due_ms < ?")
            arguments.append(nowMs)
        }
        if filter.receivedFromMs > 0 { clauses.append("received_ms >= ?"); arguments.append(filter.receivedFromMs) }
        if filter.receivedToMs > 0 { clauses.append("received_ms < ?"); arguments.append(filter.receivedToMs) }
        if let after {
            clauses.append("(sla_due_ms > ? OR (sla_due_ms = ? AND id > ?))")
            arguments += [after.createdMs, after.createdMs, after.id]
        }
        let categories = Set(filter.categories.filter { $0 != .unspecified })
        let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        var result: [VisitsV1.Complaint] = []
        try db.scan(sql: "SELECT body FROM complaints \(whereClause) ORDER BY sla_due_ms, id",
                    arguments: SQLArguments(arguments), batchSize: max(limit, 64)) { row in
            let body: Data = row["body"]
            let complaint = try VisitsV1.Complaint(decoding: [UInt8](body))
            if categories.isEmpty || categories.contains(complaint.category) { result.append(complaint) }
            return result.count < limit
        }
        return result
    }
}

/// A stored resource with the columns that decide who may see it.
struct VisibleRecord<Value: Sendable>: Sendable {
    let value: Value
    let agencyID: String
    let collectorIDs: Set<String>
}
