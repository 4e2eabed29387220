import Compliance
import Foundation
import Logging
import Metrics
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

extension RetentionSweep {
    /// Record retention, run by the visits service itself: erases the visits and complaints
    /// whose `retain_until_date` (pack `record-retention`) has passed and that no hold covers
    /// (``VisitsService/retentionPass(batch:)``); a pass fails when accounts is unreachable.
    /// Metrics besides the job's: `doorstep_retention_erased_total{type}` and
    /// `doorstep_retention_postponed_total`.
    public init(service: VisitsService, database: SQLDatabase, clock: ServiceClock, logger: Logger, interval: Duration) {
        self.init(database: database, clock: clock, logger: logger, interval: interval,
                  done: "records erased past their retention") { try await service.retentionPass() }
    }
}

extension VisitsService {
    /// Who erases: the service's retention job.
    static let retentionActor = TypeV1.Actor(role: .system, subject: "visits/retention")

    /// When a record kept until `date` may be erased: once that date has ended in every time
    /// zone, i.e. at 12:00 UTC on the next day (midnight at UTC-12, the last zone where the
    /// date ends). Never early, whatever the debtor's zone; at most 36 hours late. 0 (never)
    /// for a record without a retention date (a pack without `record-retention`).
    static func erasureDueMs(retainUntil date: TypeV1.Date?) -> Int64 {
        guard let date, let civil = CivilDate(date) else { return 0 }
        return civil.endedEverywhereMs
    }

    /// `doorstep_retention_erased_total{type="visit"|"complaint"}`.
    static let erasedVisits = Counter(label: "doorstep_retention_erased_total", dimensions: [("type", "visit")])
    static let erasedComplaints = Counter(label: "doorstep_retention_erased_total", dimensions: [("type", "complaint")])
    /// `doorstep_retention_postponed_total`: postponements written to the audit.
    static let postponements = Counter(label: "doorstep_retention_postponed_total")

    /// One retention pass at the service clock's now: visits, then complaints, each in batches
    /// of `batch` by due time. For each batch the holds of its accounts are asked of accounts
    /// first (once per account per pass); a record is erased only when accounts answered for
    /// its account and neither an OPEN complaint of this service nor an account hold of
    /// reason COMPLAINT, DISPUTE or LEGAL_INSTRUCTION nor a legal referral (stage LEGAL)
    /// covers it. When accounts cannot be asked (anything but NOT_FOUND) the pass stops there
    /// and throws: nothing more is erased until a later pass can ask. An account accounts does
    /// not know is left alone (``RetentionTally/unresolved``). Idempotent: an erased record is
    /// never touched again, and a postponement is audited once per hold.
    public func retentionPass(batch: Int = 200) async throws -> RetentionTally {
        let now = clock.nowMs()
        let store = self.store
        _ = (Self.erasedVisits, Self.erasedComplaints, Self.postponements)  // exported from the first pass on, at 0
        try await store.fillRetentionDue(batch: 500)
        var tally = RetentionTally()
        var verdicts: [String: AccountRetentionVerdict] = [:]
        for type in [VisitsV1.RetainedRecordType.visit, .complaint] {
            var after: (dueMs: Int64, id: String)?
            while true {
                let cursor = after
                let due = try await store.database.read { db in try store.dueForErasure(db, type, nowMs: now, after: cursor, limit: batch) }
                guard let last = due.last else { break }
                after = (last.dueMs, last.id)
                for accountID in Set(due.map(\.accountID)) where verdicts[accountID] == nil {
                    verdicts[accountID] = try await accountVerdict(accountID)
                }
                let known = verdicts
                let done = try await store.database.write { db in
                    var tally = RetentionTally()
                    for record in due {
                        tally = tally + (try store.retain(db, record, verdict: known[record.accountID] ?? .unknown, nowMs: now))
                    }
                    return tally
                }
                (type == .visit ? Self.erasedVisits : Self.erasedComplaints).increment(by: done.erased)
                Self.postponements.increment(by: done.postponed)
                tally = tally + done
                if due.count < batch { break }
            }
        }
        return tally
    }

    /// What accounts says of the account's holds. Throws when accounts cannot be asked.
    func accountVerdict(_ accountID: String) async throws -> AccountRetentionVerdict {
        let account: AccountsV1.Account
        do {
            account = try await peers.account(accountID)
        } catch {
            guard error.code == .notFound else { throw error }
            logger.warning("retention: account unknown to accounts; its records are kept", metadata: ["account_id": "\(accountID)"])
            return .unknown
        }
        let postponing: Set<AccountsV1.HoldReason> = [.complaint, .dispute, .legalInstruction]
        if let hold = account.holds.first(where: { $0.active && postponing.contains($0.reason) }) {
            let note = [hold.reason.protoName ?? "", hold.note].filter { !$0.isEmpty }.joined(separator: ": ")
            return .held(VisitsV1.RetentionHold(kind: .accountHold, id: hold.id, note: note))
        }
        if account.stage == .legal {
            let referral = account.legalReferral
            let note = ["referred to litigation", referral?.caseReference ?? "", referral?.lawFirm ?? ""].filter { !$0.isEmpty }
                .joined(separator: ", ")
            return .held(VisitsV1.RetentionHold(kind: .legalReferral, id: "", note: note))
        }
        return .clear
    }

    // MARK: ListRetentionRecords

    /// Page tokens of ListRetentionRecords: the last sequence, bound to the account filter.
    static let retentionPageToken = KeysetPageToken(tag: "r1")

    func listRetentionRecords(_ request: VisitsV1.ListRetentionRecordsRequest,
                              _ context: ServerContext) async throws -> VisitsV1.ListRetentionRecordsResponse {
        let pageSize = try Validate.pageSize(request.pageSize, defaultSize: 100, max: 1000)
        if !request.accountId.isEmpty { try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc") }
        let binding = request.accountId.isEmpty ? "*" : request.accountId
        let after = try Self.retentionPageToken.sequence(after: request.pageToken, binding: binding)
        let store = self.store
        let accountID = request.accountId
        let rows = try await store.database.read { db in
            try store.retentionRecords(db, accountID: accountID, after: after, limit: pageSize + 1)
        }
        let page = Self.retentionPageToken.page(rows, pageSize: pageSize, binding: binding) { $0.sequence }
        return VisitsV1.ListRetentionRecordsResponse(records: page.rows, nextPageToken: page.next)
    }
}

/// What accounts says about erasing an account's records.
enum AccountRetentionVerdict: Sendable {
    /// No hold of accounts' covers the account.
    case clear
    /// This hold covers it.
    case held(VisitsV1.RetentionHold)
    /// Accounts does not know the account: keep its records.
    case unknown
}

/// A record due for erasure, as the retention pass walks them.
struct DueRecord: Sendable {
    let type: VisitsV1.RetainedRecordType
    let id: String
    let accountID: String
    let dueMs: Int64
}

extension VisitsStore {
    private static func table(_ type: VisitsV1.RetainedRecordType) -> String { type == .complaint ? "complaints" : "visits" }

    /// Computes `retention_due_ms` of the records that have none yet (new since the last
    /// pass, or written before retention existed), from their `retain_until_date`.
    func fillRetentionDue(batch: Int) async throws {
        for table in ["visits", "complaints"] {
            while true {
                let filled = try await database.write { db -> Int in
                    let rows = try db.fetchAll(sql: "SELECT id, body FROM \(table) WHERE retention_due_ms IS NULL LIMIT ?", arguments: [batch])
                    for row in rows {
                        let body: Data = row["body"]
                        let date = table == "visits" ? try VisitsV1.Visit(decoding: [UInt8](body)).retainUntilDate
                            : try VisitsV1.Complaint(decoding: [UInt8](body)).retainUntilDate
                        let id: String = row["id"]
                        _ = try db.execute(sql: "UPDATE \(table) SET retention_due_ms = ? WHERE id = ?",
                                           arguments: [VisitsService.erasureDueMs(retainUntil: date), id])
                    }
                    return rows.count
                }
                if filled < batch { break }
            }
        }
    }

    /// Records of `type` not yet erased whose erasure is due at `nowMs`, after the keyset
    /// (due, id), in that order; at most `limit`.
    func dueForErasure(_ db: SQLSession, _ type: VisitsV1.RetainedRecordType, nowMs: Int64, after: (dueMs: Int64, id: String)?,
                       limit: Int) throws -> [DueRecord] {
        var sql = "SELECT id, account_id, retention_due_ms FROM \(Self.table(type)) WHERE erased_ms = 0 AND retention_due_ms > 0 AND retention_due_ms <= ?"
        var arguments: SQLArguments = [nowMs]
        if let after {
            sql += " AND (retention_due_ms > ? OR (retention_due_ms = ? AND id > ?))"
            arguments.append(contentsOf: [after.dueMs, after.dueMs, after.id])
        }
        arguments.append(limit)
        return try db.fetchAll(sql: sql + " ORDER BY retention_due_ms, id LIMIT ?", arguments: arguments).map { row in
            DueRecord(type: type, id: row["id"], accountID: row["account_id"], dueMs: row["retention_due_ms"])
        }
    }

    /// Erases one due record, or audits the hold that postpones it (once per hold), inside the
    /// caller's write transaction.
    func retain(_ db: SQLSession, _ record: DueRecord, verdict: AccountRetentionVerdict, nowMs: Int64) throws -> RetentionTally {
        var tally = RetentionTally()
        let table = Self.table(record.type)
        guard let row = try db.fetchOne(sql: "SELECT body, erased_ms, retention_hold FROM \(table) WHERE id = ?", arguments: [record.id]),
              (row["erased_ms"] as Int64) == 0 else { return tally }
        let body: Data = row["body"]
        var visit: VisitsV1.Visit?
        var complaint: VisitsV1.Complaint?
        if record.type == .visit { visit = try VisitsV1.Visit(decoding: [UInt8](body)) } else { complaint = try VisitsV1.Complaint(decoding: [UInt8](body)) }
        var audit = VisitsV1.RetentionRecord(
            recordType: record.type, recordId: record.id, accountId: record.accountID,
            retainUntilDate: visit?.retainUntilDate ?? complaint?.retainUntilDate, ruleId: RuleID.recordRetention.rawValue,
            rulePackId: visit?.rulePackId ?? complaint?.rulePackId ?? "", rulePackVersion: visit?.rulePackVersion ?? complaint?.rulePackVersion ?? "",
            actor: VisitsService.retentionActor, recordedMs: nowMs)

        // The holds: this service's own OPEN complaints on the account first, then accounts'.
        var hold: VisitsV1.RetentionHold?
        if let open = try db.fetchValue(String.self, sql: """
            SELECT id FROM complaints WHERE account_id = ? AND status = ? AND erased_ms = 0 ORDER BY received_ms, id LIMIT 1
            """, arguments: [record.accountID, VisitsV1.ComplaintStatus.open.rawValue]) {
            hold = VisitsV1.RetentionHold(kind: .openComplaint, id: open, note: "complaint \(open) is OPEN")
        } else {
            switch verdict {
            case .clear: break
            case .held(let accountHold): hold = accountHold
            case .unknown:
                tally.unresolved = 1
                return tally
            }
        }
        if let hold {
            tally.held = 1
            let key = "\(hold.kind.rawValue):\(hold.id)"
            guard (row["retention_hold"] as String) != key else { return tally }
            audit.action = .postponed
            audit.hold = hold
            try insert(db, audit: audit)
            _ = try db.execute(sql: "UPDATE \(table) SET retention_hold = ? WHERE id = ?", arguments: [key, record.id])
            tally.postponed = 1
            return tally
        }

        let erasure = VisitsV1.Erasure(erasedMs: nowMs, erasedBy: VisitsService.retentionActor, ruleId: RuleID.recordRetention.rawValue,
                                       rulePackId: audit.rulePackId, rulePackVersion: audit.rulePackVersion,
                                       retainUntilDate: audit.retainUntilDate)
        let effects: [VisitsV1.Effect]
        let tombstone: [UInt8]
        if let visit {
            effects = visit.effects
            let erased = Self.tombstone(visit, erasure, nowMs: nowMs)
            tombstone = try erased.encode()
            // The visit's events carried copies of it: they carry the tombstone now, and the
            // erasure is an event of its own (consumers erase their copies too).
            let subject = "visits/\(visit.id)"
            try VisitsStore.eventLog.redact(db, subject: subject, data: erased)
            try VisitsStore.eventLog.append(db, type: "doorstep.visits.visit.erased", subject: subject, data: erased, nowMs: nowMs)
            for chained in try db.fetchAll(sql: "SELECT sequence, payload FROM chain_records WHERE account_id = ? AND visit_id = ?",
                                           arguments: [visit.accountId, visit.id]) {
                let payload: Data = chained["payload"]
                let sequence: Int64 = chained["sequence"]
                _ = try db.execute(sql: "UPDATE chain_records SET payload = ? WHERE account_id = ? AND sequence = ?",
                                   arguments: [Data(try EvidenceChain.stripped([UInt8](payload))), visit.accountId, sequence])
            }
        } else if let complaint {
            effects = complaint.effects
            let erased = Self.tombstone(complaint, erasure, nowMs: nowMs)
            tombstone = try erased.encode()
            let subject = "complaints/\(complaint.id)"
            try VisitsStore.eventLog.redact(db, subject: subject, data: erased)
            try VisitsStore.eventLog.append(db, type: "doorstep.visits.complaint.erased", subject: subject, data: erased, nowMs: nowMs)
        } else {
            return tally
        }
        _ = try db.execute(sql: "UPDATE \(table) SET body = ?, version = version + 1, updated_ms = ?, erased_ms = ? WHERE id = ?",
                           arguments: [Data(tombstone), nowMs, nowMs, record.id])
        // The consequences' requests (promise terms, notes) go too, once no longer pending.
        for effect in effects {
            _ = try db.execute(sql: "DELETE FROM outbox WHERE id = ? AND status <> 1", arguments: [effect.requestId])
        }
        audit.action = .erased
        try insert(db, audit: audit)
        tally.erased = 1
        return tally
    }

    /// The visit as its tombstone: what shows that it existed and under which rule it was
    /// erased; no debtor, no check-ins, outcome, check-out, chain records or effects.
    static func tombstone(_ visit: VisitsV1.Visit, _ erasure: VisitsV1.Erasure, nowMs: Int64) -> VisitsV1.Visit {
        var kept = VisitsV1.Visit()
        kept.id = visit.id
        kept.appointmentId = visit.appointmentId
        kept.accountId = visit.accountId
        kept.agencyId = visit.agencyId
        kept.crewCollectorIds = visit.crewCollectorIds
        kept.windowStartMs = visit.windowStartMs
        kept.windowEndMs = visit.windowEndMs
        kept.state = visit.state
        kept.retainUntilDate = visit.retainUntilDate
        kept.rulePackId = visit.rulePackId
        kept.rulePackVersion = visit.rulePackVersion
        kept.version = visit.version + 1
        kept.createdMs = visit.createdMs
        kept.updatedMs = nowMs
        kept.erased = erasure
        return kept
    }

    /// The complaint as its tombstone: ids, dates, status and flags stay; the debtor, the
    /// customer's words, the finding, the extension's reason, the timeline and effects go.
    static func tombstone(_ complaint: VisitsV1.Complaint, _ erasure: VisitsV1.Erasure, nowMs: Int64) -> VisitsV1.Complaint {
        var kept = complaint
        kept.debtorId = ""
        kept.complaintText = ""
        kept.finding = ""
        kept.slaExtension?.reason = ""
        kept.timeline = []
        kept.effects = []
        kept.holdId = ""
        kept.version = complaint.version + 1
        kept.updatedMs = nowMs
        kept.erased = erasure
        return kept
    }

    func insert(_ db: SQLSession, audit: VisitsV1.RetentionRecord) throws {
        _ = try db.execute(sql: "INSERT INTO retention_records (recorded_ms, account_id, record_id, body) VALUES (?, ?, ?, ?)",
                           arguments: [audit.recordedMs, audit.accountId, audit.recordId, Data(try audit.encode())])
    }

    /// The retention audit after `after` (its sequence), oldest first, at most `limit`.
    func retentionRecords(_ db: SQLSession, accountID: String, after: Int64, limit: Int) throws -> [VisitsV1.RetentionRecord] {
        var sql = "SELECT id, body FROM retention_records WHERE id > ?"
        var arguments: SQLArguments = [after]
        if !accountID.isEmpty {
            sql += " AND account_id = ?"
            arguments.append(accountID)
        }
        arguments.append(limit)
        return try db.fetchAll(sql: sql + " ORDER BY id LIMIT ?", arguments: arguments).map { row in
            let body: Data = row["body"]
            var record = try VisitsV1.RetentionRecord(decoding: [UInt8](body))
            record.sequence = row["id"]
            return record
        }
    }
}
