import Compliance
import Events
import Foundation
import Models
import Outbox
import Storage
import Webhooks

/// The scheduling service's SQLite schema: the agency whitelist, collectors (their
/// suspensions inside the record), appointments with one row per crew member for the
/// double-booking and capacity queries, and the customer-notice outbox. Each resource row
/// holds its protobuf encoding beside the columns it is looked up by.
struct SchedulingStore: Sendable {
    let database: SQLDatabase
    /// The service's domain events (written in the transactions of the changes; WatchEvents).
    /// One log per process: a sweep's own store wakes the same watchers as the service's.
    var events: EventLog { Self.eventLog }
    static let eventLog = EventLog(source: "/doorstep/scheduling")

    /// States whose appointment still takes (or took) place: they count against capacity,
    /// double-booking and visit caps. CANCELLED and MISSED free everything.
    static let liveStates: [SchedulingV1.AppointmentState] = [.proposed, .notified, .confirmed, .completed]
    static var liveStateList: String { liveStates.map { String($0.rawValue) }.joined(separator: ",") }

    static var migrations: SQLDatabase.Migrations {
        var migrations = SQLDatabase.Migrations()
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
        migrations.add("scheduling-v2-appointments", sql: """
            CREATE INDEX collectors_region ON collectors (region_code, status);
            CREATE TABLE appointments (
                id TEXT PRIMARY KEY NOT NULL,
                account_id TEXT NOT NULL,
                debtor_id TEXT NOT NULL,
                agency_id TEXT NOT NULL,
                region_code TEXT NOT NULL,
                state INTEGER NOT NULL,
                window_start_ms INTEGER NOT NULL,
                window_end_ms INTEGER NOT NULL,
                body BLOB NOT NULL,
                version INTEGER NOT NULL,
                created_ms INTEGER NOT NULL,
                updated_ms INTEGER NOT NULL
            );
            CREATE INDEX appointments_account ON appointments (account_id, window_start_ms);
            CREATE INDEX appointments_debtor ON appointments (debtor_id, window_start_ms);
            CREATE INDEX appointments_region ON appointments (region_code, window_start_ms);
            CREATE INDEX appointments_agency ON appointments (agency_id, window_start_ms);
            CREATE INDEX appointments_window ON appointments (window_start_ms, id);
            CREATE INDEX appointments_due ON appointments (state, window_end_ms);
            CREATE TABLE appointment_crew (
                appointment_id TEXT NOT NULL REFERENCES appointments(id),
                collector_id TEXT NOT NULL,
                window_start_ms INTEGER NOT NULL,
                window_end_ms INTEGER NOT NULL,
                state INTEGER NOT NULL,
                PRIMARY KEY (appointment_id, collector_id)
            );
            CREATE INDEX appointment_crew_collector ON appointment_crew (collector_id, window_start_ms);
            """)
        Outbox.addMigrations(to: &migrations)
        EventLog.addMigrations(to: &migrations)
        // What the expiry-warnings job has warned of (ExpiryWarnings.swift): one row per
        // licence, inspection or certification, last valid day and threshold.
        migrations.add("scheduling-v3-expiry-warnings", sql: """
            CREATE TABLE expiry_warnings (
                kind INTEGER NOT NULL,
                resource_id TEXT NOT NULL,
                last_valid_day INTEGER NOT NULL,
                threshold_days INTEGER NOT NULL,
                warned_ms INTEGER NOT NULL,
                PRIMARY KEY (kind, resource_id, last_valid_day, threshold_days)
            );
            """)
        Webhooks.addMigrations(to: &migrations)
        EventLog.addRetentionMigrations(to: &migrations)
        return migrations
    }

    // MARK: Agencies

    /// Whether an agency other than `excluding` has the licence number.
    func licenceTaken(_ db: SQLSession, _ licence: String, excluding: String = "") throws -> Bool {
        try db.fetchValue(Bool.self, sql: "SELECT EXISTS (SELECT 1 FROM agencies WHERE licence_number = ? AND id <> ?)",
                          arguments: [licence, excluding]) ?? false
    }

    func insert(_ db: SQLSession, agency: SchedulingV1.Agency) throws {
        try db.execute(
            sql: """
                INSERT INTO agencies (id, licence_number, status, body, version, created_ms, updated_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [agency.id, agency.licenceNumber, agency.status.rawValue, Data(try agency.encode()),
                        agency.version, agency.createdMs, agency.updatedMs])
    }

    func agency(_ db: SQLSession, id: String) throws -> SchedulingV1.Agency? {
        guard let body = try db.fetchValue(Data.self, sql: "SELECT body FROM agencies WHERE id = ?", arguments: [id]) else { return nil }
        return try SchedulingV1.Agency(decoding: [UInt8](body))
    }

    func agencies(_ db: SQLSession, ids: some Sequence<String>) throws -> [String: SchedulingV1.Agency] {
        var result: [String: SchedulingV1.Agency] = [:]
        for id in Set(ids) { if let agency = try agency(db, id: id) { result[id] = agency } }
        return result
    }

    // MARK: Collectors

    /// Whether a collector other than `excluding` has the certification number.
    func certificationTaken(_ db: SQLSession, _ number: String, excluding: String = "") throws -> Bool {
        try db.fetchValue(Bool.self, sql: "SELECT EXISTS (SELECT 1 FROM collectors WHERE certification_number = ? AND id <> ?)",
                          arguments: [number, excluding]) ?? false
    }

    func insert(_ db: SQLSession, collector: SchedulingV1.Collector) throws {
        try db.execute(
            sql: """
                INSERT INTO collectors (id, agency_id, certification_number, region_code, status, body, version, created_ms, updated_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [collector.id, collector.agencyId, collector.certificationNumber, collector.regionCode,
                        collector.status.rawValue, Data(try collector.encode()), collector.version,
                        collector.createdMs, collector.updatedMs])
    }

    func update(_ db: SQLSession, collector: SchedulingV1.Collector) throws {
        try db.execute(
            sql: """
                UPDATE collectors SET certification_number = ?, region_code = ?, status = ?, body = ?, version = ?, updated_ms = ?
                WHERE id = ?
                """,
            arguments: [collector.certificationNumber, collector.regionCode, collector.status.rawValue, Data(try collector.encode()),
                        collector.version, collector.updatedMs, collector.id])
    }

    func collector(_ db: SQLSession, id: String) throws -> SchedulingV1.Collector? {
        guard let body = try db.fetchValue(Data.self, sql: "SELECT body FROM collectors WHERE id = ?", arguments: [id]) else { return nil }
        return try SchedulingV1.Collector(decoding: [UInt8](body))
    }

    /// Collectors of a region (optionally of one agency), by id.
    func collectors(_ db: SQLSession, region: String, agencyID: String?) throws -> [SchedulingV1.Collector] {
        let bodies: [Data]
        if let agencyID {
            bodies = try db.fetchValues(Data.self, sql: "SELECT body FROM collectors WHERE region_code = ? AND agency_id = ? ORDER BY id",
                                       arguments: [region, agencyID])
        } else {
            bodies = try db.fetchValues(Data.self, sql: "SELECT body FROM collectors WHERE region_code = ? ORDER BY id", arguments: [region])
        }
        return try bodies.map { try SchedulingV1.Collector(decoding: [UInt8]($0)) }
    }

    // MARK: Appointments

    func appointment(_ db: SQLSession, id: String) throws -> SchedulingV1.Appointment? {
        guard let body = try db.fetchValue(Data.self, sql: "SELECT body FROM appointments WHERE id = ?", arguments: [id]) else { return nil }
        return try SchedulingV1.Appointment(decoding: [UInt8](body))
    }

    func insert(_ db: SQLSession, appointment: SchedulingV1.Appointment) throws {
        try db.execute(
            sql: """
                INSERT INTO appointments (id, account_id, debtor_id, agency_id, region_code, state, window_start_ms,
                                          window_end_ms, body, version, created_ms, updated_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [appointment.id, appointment.accountId, appointment.debtorId, appointment.agencyId,
                        appointment.regionCode, appointment.state.rawValue, appointment.windowStartMs,
                        appointment.windowEndMs, Data(try appointment.encode()), appointment.version,
                        appointment.createdMs, appointment.updatedMs])
        try writeCrew(db, appointment)
    }

    func update(_ db: SQLSession, appointment: SchedulingV1.Appointment) throws {
        try db.execute(
            sql: """
                UPDATE appointments SET agency_id = ?, state = ?, window_start_ms = ?, window_end_ms = ?, body = ?,
                                        version = ?, updated_ms = ?
                WHERE id = ?
                """,
            arguments: [appointment.agencyId, appointment.state.rawValue, appointment.windowStartMs, appointment.windowEndMs,
                        Data(try appointment.encode()), appointment.version, appointment.updatedMs, appointment.id])
        try db.execute(sql: "DELETE FROM appointment_crew WHERE appointment_id = ?", arguments: [appointment.id])
        try writeCrew(db, appointment)
    }

    private func writeCrew(_ db: SQLSession, _ appointment: SchedulingV1.Appointment) throws {
        for member in appointment.crewCollectorIds {
            try db.execute(
                sql: """
                    INSERT INTO appointment_crew (appointment_id, collector_id, window_start_ms, window_end_ms, state)
                    VALUES (?, ?, ?, ?, ?)
                    """,
                arguments: [appointment.id, member, appointment.windowStartMs, appointment.windowEndMs, appointment.state.rawValue])
        }
    }

    /// Live appointments of any of `collectors` with a window touching [fromMs, toMs),
    /// except `excluding`.
    func liveBookings(_ db: SQLSession, collectors: [String], fromMs: Int64, toMs: Int64, excluding: String?) throws -> [BookedVisit] {
        guard !collectors.isEmpty else { return [] }
        let marks = collectors.map { _ in "?" }.joined(separator: ",")
        var arguments: [any SQLValueConvertible] = collectors
        arguments += [toMs, fromMs, excluding ?? ""]
        let bodies = try db.fetchValues(Data.self, sql: """
            SELECT DISTINCT a.body FROM appointment_crew c JOIN appointments a ON a.id = c.appointment_id
            WHERE c.collector_id IN (\(marks)) AND c.window_start_ms < ? AND c.window_end_ms > ?
              AND c.state IN (\(Self.liveStateList)) AND c.appointment_id <> ?
            """, arguments: SQLArguments(arguments))
        return try bodies.map { try Self.booked(SchedulingV1.Appointment(decoding: [UInt8]($0))) }
    }

    /// Live appointments of an account with a window starting in [fromMs, toMs), except
    /// `excluding`.
    func liveBookings(_ db: SQLSession, account: String, fromMs: Int64, toMs: Int64, excluding: String?) throws -> [BookedVisit] {
        let bodies = try db.fetchValues(Data.self, sql: """
            SELECT body FROM appointments
            WHERE account_id = ? AND window_start_ms >= ? AND window_start_ms < ? AND state IN (\(Self.liveStateList)) AND id <> ?
            """, arguments: [account, fromMs, toMs, excluding ?? ""])
        return try bodies.map { try Self.booked(SchedulingV1.Appointment(decoding: [UInt8]($0))) }
    }

    static func booked(_ appointment: SchedulingV1.Appointment) -> BookedVisit {
        BookedVisit(appointmentID: appointment.id, accountID: appointment.accountId, crew: appointment.crewCollectorIds,
                    windowStartMs: appointment.windowStartMs, windowEndMs: appointment.windowEndMs,
                    location: appointment.address?.location)
    }

    /// Appointments matching a list filter, after the keyset `(startMs, id)`, in
    /// (window_start_ms, id) order; at most `limit`.
    func list(_ db: SQLSession, filter: AppointmentFilter, after: (startMs: Int64, id: String)?, limit: Int) throws -> [SchedulingV1.Appointment] {
        var clauses: [String] = []
        var arguments: [any SQLValueConvertible] = []
        if !filter.accountID.isEmpty { clauses.append("a.account_id = ?"); arguments.append(filter.accountID) }
        if !filter.agencyID.isEmpty { clauses.append("a.agency_id = ?"); arguments.append(filter.agencyID) }
        if !filter.regionCode.isEmpty { clauses.append("a.region_code = ?"); arguments.append(filter.regionCode) }
        if !filter.collectorID.isEmpty {
            clauses.append("EXISTS (SELECT 1 FROM appointment_crew c WHERE c.appointment_id = a.id AND c.collector_id = ?)")
            arguments.append(filter.collectorID)
        }
        if !filter.states.isEmpty {
            clauses.append("a.state IN (\(filter.states.map { String($0.rawValue) }.joined(separator: ",")))")
        }
        if filter.windowFromMs > 0 { clauses.append("a.window_end_ms > ?"); arguments.append(filter.windowFromMs) }
        if filter.windowToMs > 0 { clauses.append("a.window_start_ms < ?"); arguments.append(filter.windowToMs) }
        if let after {
            clauses.append("(a.window_start_ms > ? OR (a.window_start_ms = ? AND a.id > ?))")
            arguments += [after.startMs, after.startMs, after.id]
        }
        let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        arguments.append(limit)
        let bodies = try db.fetchValues(Data.self, sql: "SELECT a.body FROM appointments a \(whereClause) ORDER BY a.window_start_ms, a.id LIMIT ?",
                                       arguments: SQLArguments(arguments))
        return try bodies.map { try SchedulingV1.Appointment(decoding: [UInt8]($0)) }
    }

    /// Ids of NOTIFIED or CONFIRMED appointments whose window ended before `endedBeforeMs`.
    func overdue(_ db: SQLSession, endedBeforeMs: Int64, limit: Int) throws -> [String] {
        try db.fetchValues(String.self, sql: """
            SELECT id FROM appointments WHERE state IN (\(SchedulingV1.AppointmentState.notified.rawValue), \(SchedulingV1.AppointmentState.confirmed.rawValue))
              AND window_end_ms < ? ORDER BY window_end_ms LIMIT ?
            """, arguments: [endedBeforeMs, limit])
    }
}

/// Filters of ListAppointments (and of day planning), already restricted to what the
/// caller may see. Empty strings and lists mean "any".
struct AppointmentFilter: Sendable {
    var accountID = ""
    var collectorID = ""
    var agencyID = ""
    var regionCode = ""
    var states: [SchedulingV1.AppointmentState] = []
    var windowFromMs: Int64 = 0
    var windowToMs: Int64 = 0
}
