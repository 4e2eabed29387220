import Foundation
import Models
import Storage

/// The registry's reads and writes beyond registration: agency updates, the agency and
/// collector lists (keyset pages in registration order), what ListExpiring watches, and the
/// appointments an agency's suspension or exit cancels.
extension SchedulingStore {
    // MARK: Agencies

    func update(_ db: SQLSession, agency: SchedulingV1.Agency) throws {
        try db.execute(
            sql: "UPDATE agencies SET licence_number = ?, status = ?, body = ?, version = ?, updated_ms = ? WHERE id = ?",
            arguments: [agency.licenceNumber, agency.status.rawValue, Data(try agency.encode()), agency.version, agency.updatedMs,
                        agency.id])
    }

    /// Agencies matching a list filter, after the keyset `(createdMs, id)`, in (created_ms, id)
    /// order; at most `limit`. Regions served live in the record, so a region filter reads
    /// the rows in batches and keeps the matching ones.
    func agencies(_ db: SQLSession, filter: AgencyFilter, after: (createdMs: Int64, id: String)?, limit: Int) throws -> [SchedulingV1.Agency] {
        var result: [SchedulingV1.Agency] = []
        var cursor = after
        let batch = filter.regionCode.isEmpty ? limit : max(limit, 200)
        while result.count < limit {
            var clauses: [String] = []
            var arguments: [any SQLValueConvertible] = []
            if !filter.agencyID.isEmpty { clauses.append("id = ?"); arguments.append(filter.agencyID) }
            if filter.status != .unspecified { clauses.append("status = ?"); arguments.append(filter.status.rawValue) }
            if let cursor {
                clauses.append("(created_ms > ? OR (created_ms = ? AND id > ?))")
                arguments += [cursor.createdMs, cursor.createdMs, cursor.id]
            }
            let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            arguments.append(batch)
            let bodies = try db.fetchValues(Data.self, sql: "SELECT body FROM agencies \(whereClause) ORDER BY created_ms, id LIMIT ?",
                                           arguments: SQLArguments(arguments))
            for body in bodies {
                let agency = try SchedulingV1.Agency(decoding: [UInt8](body))
                cursor = (agency.createdMs, agency.id)
                if filter.regionCode.isEmpty || agency.regionsServed.contains(filter.regionCode) {
                    result.append(agency)
                    if result.count == limit { break }
                }
            }
            if bodies.count < batch { break }
        }
        return result
    }

    /// Agencies that have not EXITED (optionally only `agencyID`), and their collectors: what
    /// ListExpiring watches.
    func watchedRegistry(_ db: SQLSession, agencyID: String) throws -> (agencies: [SchedulingV1.Agency], collectors: [SchedulingV1.Collector]) {
        let exited = SchedulingV1.AgencyStatus.exited.rawValue
        let only = agencyID.isEmpty ? "" : " AND a.id = ?"
        let arguments: SQLArguments = agencyID.isEmpty ? [] : [agencyID]
        let agencies = try db.fetchValues(Data.self, sql: "SELECT a.body FROM agencies a WHERE a.status <> \(exited)\(only) ORDER BY a.id",
                                          arguments: arguments)
        let collectors = try db.fetchValues(Data.self, sql: """
            SELECT c.body FROM collectors c JOIN agencies a ON a.id = c.agency_id
            WHERE a.status <> \(exited)\(only) ORDER BY c.id
            """, arguments: arguments)
        return (try agencies.map { try SchedulingV1.Agency(decoding: [UInt8]($0)) },
                try collectors.map { try SchedulingV1.Collector(decoding: [UInt8]($0)) })
    }

    // MARK: Collectors

    /// Collectors matching a list filter, after the keyset `(createdMs, id)`, in
    /// (created_ms, id) order; at most `limit`.
    func collectors(_ db: SQLSession, filter: CollectorFilter, after: (createdMs: Int64, id: String)?, limit: Int) throws -> [SchedulingV1.Collector] {
        var clauses: [String] = []
        var arguments: [any SQLValueConvertible] = []
        if !filter.agencyID.isEmpty { clauses.append("agency_id = ?"); arguments.append(filter.agencyID) }
        if filter.status != .unspecified { clauses.append("status = ?"); arguments.append(filter.status.rawValue) }
        if !filter.regionCode.isEmpty { clauses.append("region_code = ?"); arguments.append(filter.regionCode) }
        if let after {
            clauses.append("(created_ms > ? OR (created_ms = ? AND id > ?))")
            arguments += [after.createdMs, after.createdMs, after.id]
        }
        let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        arguments.append(limit)
        let bodies = try db.fetchValues(Data.self, sql: "SELECT body FROM collectors \(whereClause) ORDER BY created_ms, id LIMIT ?",
                                       arguments: SQLArguments(arguments))
        return try bodies.map { try SchedulingV1.Collector(decoding: [UInt8]($0)) }
    }

    /// Ids of the agency's collectors working in `region`, at most `limit`, by id.
    func collectorIDs(_ db: SQLSession, agencyID: String, region: String, limit: Int) throws -> [String] {
        try db.fetchValues(String.self, sql: "SELECT id FROM collectors WHERE agency_id = ? AND region_code = ? ORDER BY id LIMIT ?",
                           arguments: [agencyID, region, limit])
    }

    // MARK: Appointments of an agency

    /// States of an appointment that has not happened yet and may still be cancelled.
    static var pendingStateList: String {
        [SchedulingV1.AppointmentState.proposed, .notified, .confirmed].map { String($0.rawValue) }.joined(separator: ",")
    }

    /// The agency's PROPOSED, NOTIFIED and CONFIRMED appointments starting after `afterMs`,
    /// by window start then id.
    func pendingAppointments(_ db: SQLSession, agencyID: String, startingAfterMs afterMs: Int64) throws -> [SchedulingV1.Appointment] {
        let bodies = try db.fetchValues(Data.self, sql: """
            SELECT body FROM appointments
            WHERE agency_id = ? AND window_start_ms > ? AND state IN (\(Self.pendingStateList))
            ORDER BY window_start_ms, id
            """, arguments: [agencyID, afterMs])
        return try bodies.map { try SchedulingV1.Appointment(decoding: [UInt8]($0)) }
    }

    /// Ids of the agency's PROPOSED, NOTIFIED and CONFIRMED appointments in `region` whose
    /// window ends after `afterMs`, at most `limit`, by window start then id.
    func pendingAppointmentIDs(_ db: SQLSession, agencyID: String, region: String, endingAfterMs afterMs: Int64, limit: Int) throws -> [String] {
        try db.fetchValues(String.self, sql: """
            SELECT id FROM appointments
            WHERE agency_id = ? AND region_code = ? AND window_end_ms > ? AND state IN (\(Self.pendingStateList))
            ORDER BY window_start_ms, id LIMIT ?
            """, arguments: [agencyID, region, afterMs, limit])
    }
}

/// Filters of ListAgencies, already restricted to what the caller may see. Empty strings and
/// UNSPECIFIED mean "any".
struct AgencyFilter: Sendable {
    var agencyID = ""
    var status: SchedulingV1.AgencyStatus = .unspecified
    var regionCode = ""
}

/// Filters of ListCollectors, already restricted to what the caller may see. Empty strings
/// and UNSPECIFIED mean "any".
struct CollectorFilter: Sendable {
    var agencyID = ""
    var status: SchedulingV1.CollectorStatus = .unspecified
    var regionCode = ""
}
