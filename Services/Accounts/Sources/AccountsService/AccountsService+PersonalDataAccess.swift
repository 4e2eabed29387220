import Foundation
import Models
import RPC
import RPCWire
import Storage
import Validation

/// ListPersonalDataAccess: the compliance officer's read of the audit of unmasked personal
/// data (table `personal_data_access`, written by every GetDebtor that reveals, in the same
/// transaction as the read). The audit holds who, for which agency, which fields, when and
/// why — never the values.
extension AccountsService {
    func listPersonalDataAccess(_ request: AccountsV1.ListPersonalDataAccessRequest,
                                _ context: ServerContext) async throws -> AccountsV1.ListPersonalDataAccessResponse {
        let filter = try PersonalDataAccessFilter(request)
        let pageSize = try Validate.pageSize(request.pageSize, defaultSize: 100, max: 1000)
        var after: Int64 = 0
        if !request.pageToken.isEmpty {
            guard let token = ListPageToken(request.pageToken), token.filter == filter.digest else {
                throw RPCError.invalidArgument("page_token", "not a token of this query")
            }
            after = token.afterRow
        }
        let store = self.store
        let startAfter = after
        let rows = try await store.database.read { db in
            try store.personalDataAccess(db, filter: filter, after: startAfter, limit: pageSize + 1)
        }
        var response = AccountsV1.ListPersonalDataAccessResponse(accesses: Array(rows.prefix(pageSize)))
        if rows.count > pageSize, let last = response.accesses.last {
            response.nextPageToken = ListPageToken(afterRow: last.sequence, filter: filter.digest).text
        }
        return response
    }
}

/// The filters of a ListPersonalDataAccess request, checked.
struct PersonalDataAccessFilter: Sendable {
    var debtorID = ""
    var actorSubject = ""
    var agencyID = ""
    var startMs: Int64?
    var endMs: Int64?

    /// No filter: every read.
    init() {}

    init(_ request: AccountsV1.ListPersonalDataAccessRequest) throws(DomainError) {
        if !request.debtorId.isEmpty { try Validate.resourceID(request.debtorId, field: "debtor_id", prefix: "dbt") }
        if !request.actorSubject.isEmpty { _ = try Validate.text(request.actorSubject, field: "actor_subject", min: 1, max: 128) }
        if !request.agencyId.isEmpty { try Validate.resourceID(request.agencyId, field: "agency_id", prefix: "agy") }
        debtorID = request.debtorId
        actorSubject = request.actorSubject
        agencyID = request.agencyId
        startMs = try Validate.instantMs(request.startMs, field: "start_ms", required: false)
        endMs = try Validate.instantMs(request.endMs, field: "end_ms", required: false)
        if let startMs, let endMs, endMs <= startMs {
            throw .invalidArgument("end_ms", "must be after start_ms")
        }
    }

    /// What a page token is bound to: the same filters, or the token is refused.
    var digest: String {
        ListPageToken.digest(["pda", debtorID, actorSubject, agencyID, "\(startMs ?? 0)", "\(endMs ?? 0)"].joined(separator: "\u{1F}"))
    }
}

extension AccountsStore {
    /// Audited reads after `after` (their sequence), oldest first, at most `limit`.
    func personalDataAccess(_ db: SQLSession, filter: PersonalDataAccessFilter, after: Int64,
                            limit: Int) throws -> [AccountsV1.PersonalDataAccess] {
        var conditions = ["id > ?"]
        var arguments: SQLArguments = [after]
        if !filter.debtorID.isEmpty {
            conditions.append("debtor_id = ?")
            arguments.append(filter.debtorID)
        }
        if !filter.actorSubject.isEmpty {
            conditions.append("subject = ?")
            arguments.append(filter.actorSubject)
        }
        if !filter.agencyID.isEmpty {
            conditions.append("agency_id = ?")
            arguments.append(filter.agencyID)
        }
        if let start = filter.startMs {
            conditions.append("at_ms >= ?")
            arguments.append(start)
        }
        if let end = filter.endMs {
            conditions.append("at_ms < ?")
            arguments.append(end)
        }
        arguments.append(limit)
        return try db.fetchAll(
            sql: """
                SELECT id, at_ms, role, subject, agency_id, debtor_id, fields, reason FROM personal_data_access
                WHERE \(conditions.joined(separator: " AND ")) ORDER BY id LIMIT ?
                """,
            arguments: arguments
        ).map { row in
            let fields: String = row["fields"]
            let role: String = row["role"]
            return AccountsV1.PersonalDataAccess(
                sequence: row["id"], debtorId: row["debtor_id"],
                actor: TypeV1.Actor(role: TypeV1.Role(protoName: role) ?? .unspecified, subject: row["subject"], agencyId: row["agency_id"]),
                fields: fields.split(separator: ",").map(String.init), reason: row["reason"], accessedMs: row["at_ms"])
        }
    }
}

/// ExportDebtorRecord: a subject-access export of everything accounts holds about one debtor,
/// read in the write transaction that records the export in the personal-data access log (one
/// snapshot; no export without its record), then streamed part by part.
extension AccountsService {
    /// Parts one export may hold; a larger record is refused (RESOURCE_EXHAUSTED).
    static let maxExportParts = 200_000

    func exportDebtorRecord(_ request: AccountsV1.ExportDebtorRecordRequest, _ context: ServerContext,
                            _ responses: ResponseStream<AccountsV1.DebtorRecordPart>) async throws {
        try Validate.resourceID(request.debtorId, field: "debtor_id", prefix: "dbt")
        let reason = try Validate.text(request.accessReason, field: "access_reason", min: 1, max: 500)
        let actor = try context.requireCaller().actor
        let store = self.store
        let id = request.debtorId
        let now = clock.nowMs()
        let parts = try await store.database.write { db -> [AccountsV1.DebtorRecordPart] in
            guard var debtor = try store.debtor(db, id: id) else { throw RPCError.notFound("debtor \(id) not found") }
            try store.auditPersonalDataRead(db, debtorID: id, actor: actor, fields: ["export"], reason: reason, atMs: now)
            debtor.personalDataMasked = false
            var parts = [AccountsV1.DebtorRecordPart(part: .debtor(debtor))]
            func add(_ more: [AccountsV1.DebtorRecordPart]) throws {
                parts += more
                guard parts.count <= Self.maxExportParts else {
                    throw RPCError(code: .resourceExhausted, message: "the record of debtor \(id) has more than \(Self.maxExportParts) parts; "
                                   + "read its accounts one by one with GetAccount and GetAccountTimeline")
                }
            }
            let accounts = try store.accounts(db, debtorID: id)
            try add(accounts.map { .init(part: .account($0)) })
            for account in accounts {
                var after: Int64 = 0
                while case let events = try store.timeline(db, accountID: account.id, after: after, types: [], limit: 1000), let last = events.last {
                    try add(events.map { .init(part: .timelineEvent($0)) })
                    after = last.sequence
                }
            }
            try add(try store.contactAttempts(db, debtorID: id).map { .init(part: .contactAttempt($0)) })
            var afterChange: Int64 = 0
            while case let changes = try store.changes(db, debtorID: id, after: afterChange, limit: 1000), let last = changes.last {
                try add(changes.map { .init(part: .debtorChange($0)) })
                afterChange = last.sequence
            }
            var filter = PersonalDataAccessFilter()
            filter.debtorID = id
            var afterAccess: Int64 = 0
            while case let accesses = try store.personalDataAccess(db, filter: filter, after: afterAccess, limit: 1000), let last = accesses.last {
                try add(accesses.map { .init(part: .personalDataAccess($0)) })
                afterAccess = last.sequence
            }
            return parts
        }
        context.logger.notice("debtor record exported", metadata: ["debtor-id": "\(id)", "parts": "\(parts.count)", "reason": "\(reason)"])
        for part in parts { try await responses.send(part) }
    }
}

extension AccountsStore {
    /// Every account of the debtor in full, oldest first.
    func accounts(_ db: SQLSession, debtorID: String) throws -> [AccountsV1.Account] {
        try db.fetchAll(sql: "SELECT body FROM accounts WHERE debtor_id = ? ORDER BY created_ms, id", arguments: [debtorID]).map { row in
            let body: Data = row["body"]
            return try AccountsV1.Account(decoding: [UInt8](body))
        }
    }

    /// Every contact attempt about the debtor's accounts, oldest first.
    func contactAttempts(_ db: SQLSession, debtorID: String) throws -> [AccountsV1.ContactAttempt] {
        try db.fetchAll(sql: "SELECT body FROM contact_attempts WHERE debtor_id = ? ORDER BY attempted_ms, id", arguments: [debtorID]).map { row in
            let body: Data = row["body"]
            return try AccountsV1.ContactAttempt(decoding: [UInt8](body))
        }
    }
}
