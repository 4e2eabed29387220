import Foundation
import GRDB
import Models
import Storage

/// The scheduling service's SQLite schema: the agency whitelist and collectors, each row
/// the resource's protobuf encoding beside its lookup columns.
struct SchedulingStore: Sendable {
    let database: SQLiteDatabase

    static var migrations: SQLiteDatabase.Migrations {
        var migrations = SQLiteDatabase.Migrations()
        migrations.add("scheduling-v1", sql: """
            CREATE TABLE agencies (
                id TEXT PRIMARY KEY NOT NULL,
                licence_number TEXT NOT NULL UNIQUE,
                status INTEGER NOT NULL,
                body BLOB NOT NULL,
                version INTEGER NOT NULL,
                created_ms INTEGER NOT NULL,
                updated_ms INTEGER NOT NULL
            );
            CREATE TABLE collectors (
                id TEXT PRIMARY KEY NOT NULL,
                agency_id TEXT NOT NULL REFERENCES agencies(id),
                certification_number TEXT NOT NULL UNIQUE,
                region_code TEXT NOT NULL,
                status INTEGER NOT NULL,
                body BLOB NOT NULL,
                version INTEGER NOT NULL,
                created_ms INTEGER NOT NULL,
                updated_ms INTEGER NOT NULL
            );
            CREATE INDEX collectors_agency ON collectors (agency_id);
            """)
        return migrations
    }

    func licenceTaken(_ db: Database, _ licence: String) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM agencies WHERE licence_number = ?)"), arguments: [licence]) ?? false
    }

    func certificationTaken(_ db: Database, _ number: String) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM collectors WHERE certification_number = ?)"), arguments: [number]) ?? false
    }

    func insert(_ db: Database, agency: SchedulingV1.Agency) throws {
        try db.execute(
            sql: """
                INSERT INTO agencies (id, licence_number, status, body, version, created_ms, updated_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [agency.id, agency.licenceNumber, agency.status.rawValue, Data(try agency.encode()),
                        agency.version, agency.createdMs, agency.updatedMs])
    }

    func agency(_ db: Database, id: String) throws -> SchedulingV1.Agency? {
        guard let body = try Data.fetchOne(db.cachedStatement(sql: "SELECT body FROM agencies WHERE id = ?"), arguments: [id]) else { return nil }
        return try SchedulingV1.Agency(decoding: [UInt8](body))
    }

    func insert(_ db: Database, collector: SchedulingV1.Collector) throws {
        try db.execute(
            sql: """
                INSERT INTO collectors (id, agency_id, certification_number, region_code, status, body, version, created_ms, updated_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [collector.id, collector.agencyId, collector.certificationNumber, collector.regionCode,
                        collector.status.rawValue, Data(try collector.encode()), collector.version,
                        collector.createdMs, collector.updatedMs])
    }
}
