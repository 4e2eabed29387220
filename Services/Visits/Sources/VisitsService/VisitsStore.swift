import Foundation
import GRDB
import Models
import Storage

/// The visits service's SQLite schema: visits (one per visited appointment) and complaints,
/// each row the resource's protobuf encoding beside its lookup and visibility columns.
/// Rows are written by CheckIn/RecordOutcome/CheckOut and FileComplaint.
struct VisitsStore: Sendable {
    let database: SQLiteDatabase

    static var migrations: SQLiteDatabase.Migrations {
        var migrations = SQLiteDatabase.Migrations()
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
        return migrations
    }

    func visit(_ db: Database, id: String) throws -> VisibleRecord<VisitsV1.Visit>? {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT body, agency_id FROM visits WHERE id = ?"), arguments: [id]) else {
            return nil
        }
        let body: Data = row["body"]
        let crew = try String.fetchAll(db.cachedStatement(sql: "SELECT collector_id FROM visit_crew WHERE visit_id = ?"), arguments: [id])
        return VisibleRecord(value: try VisitsV1.Visit(decoding: [UInt8](body)), agencyID: row["agency_id"], collectorIDs: Set(crew))
    }

    func complaint(_ db: Database, id: String) throws -> VisibleRecord<VisitsV1.Complaint>? {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT body, agency_id, collector_id FROM complaints WHERE id = ?"), arguments: [id]) else {
            return nil
        }
        let body: Data = row["body"]
        let collector: String = row["collector_id"]
        return VisibleRecord(value: try VisitsV1.Complaint(decoding: [UInt8](body)), agencyID: row["agency_id"],
                                collectorIDs: collector.isEmpty ? [] : [collector])
    }

    /// Writes a new visit with its crew (CheckIn creates it).
    func insert(_ db: Database, visit: VisitsV1.Visit) throws {
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

/// A stored resource with the columns that decide who may see it.
struct VisibleRecord<Value: Sendable>: Sendable {
    let value: Value
    let agencyID: String
    let collectorIDs: Set<String>
}
