import Compliance
import Events
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
    /// Retention of debtors' personal data, run by the accounts service itself: anonymises the
    /// debtors whose accounts are all closed and whose retention (pack `record-retention`,
    /// counted from the last account's closing) has passed, unless a hold covers them
    /// (``AccountsService/retentionPass(batch:)``). Metrics besides the job's:
    /// `doorstep_retention_erased_total{type="debtor"}` and `doorstep_retention_postponed_total`.
    public init(service: AccountsService, database: SQLDatabase, clock: ServiceClock, logger: Logger, interval: Duration) {
        self.init(database: database, clock: clock, logger: logger, interval: interval,
                  done: "debtors anonymised past their retention") { try await service.retentionPass() }
    }
}

extension AccountsService {
    /// Who erases: the service's retention job.
    static let retentionActor = TypeV1.Actor(role: .system, subject: "accounts/retention")

    /// `doorstep_retention_erased_total{type="debtor"}`.
    static let erasedDebtors = Counter(label: "doorstep_retention_erased_total", dimensions: [("type", "debtor")])
    /// `doorstep_retention_postponed_total`: postponements written to the audit.
    static let postponements = Counter(label: "doorstep_retention_postponed_total")

    /// One retention pass at the service clock's now: first the due time of every debtor whose
    /// accounts changed since (``AccountsStore/fillRetentionDue(batch:)``), then the debtors
    /// due, in batches of `batch` by due time, each in a write transaction that reads its
    /// accounts again: a debtor is anonymised only when every account is still closed, the
    /// date has passed and no active hold of reason COMPLAINT, DISPUTE or LEGAL_INSTRUCTION is
    /// on any of them. Idempotent: an erased debtor is never touched again, and a postponement
    /// is audited once per hold.
    public func retentionPass(batch: Int = 200) async throws -> RetentionTally {
        let now = clock.nowMs()
        let store = self.store
        _ = (Self.erasedDebtors, Self.postponements)  // exported from the first pass on, at 0
        try await store.fillRetentionDue(batch: 500)
        var tally = RetentionTally()
        var after: (dueMs: Int64, id: String)?
        while true {
            let cursor = after
            let due = try await store.database.read { db in try store.debtorsDue(db, nowMs: now, after: cursor, limit: batch) }
            guard let last = due.last else { break }
            after = last
            let done = try await store.database.write { db in
                var tally = RetentionTally()
                for debtor in due { tally = tally + (try store.retain(db, debtorID: debtor.id, nowMs: now)) }
                return tally
            }
            Self.erasedDebtors.increment(by: done.erased)
            Self.postponements.increment(by: done.postponed)
            tally = tally + done
            if due.count < batch { break }
        }
        return tally
    }

    // MARK: ListRetentionRecords

    /// Page tokens of ListRetentionRecords: the last sequence, bound to the debtor filter.
    static let retentionPageToken = KeysetPageToken(tag: "r1")

    func listRetentionRecords(_ request: AccountsV1.ListRetentionRecordsRequest,
                              _ context: ServerContext) async throws -> AccountsV1.ListRetentionRecordsResponse {
        let pageSize = try Validate.pageSize(request.pageSize, defaultSize: 100, max: 1000)
        if !request.debtorId.isEmpty { try Validate.resourceID(request.debtorId, field: "debtor_id", prefix: "dbt") }
        let binding = request.debtorId.isEmpty ? "*" : request.debtorId
        let after = try Self.retentionPageToken.sequence(after: request.pageToken, binding: binding)
        let store = self.store
        let debtorID = request.debtorId
        let rows = try await store.database.read { db in
            try store.retentionRecords(db, debtorID: debtorID, after: after, limit: pageSize + 1)
        }
        let page = Self.retentionPageToken.page(rows, pageSize: pageSize, binding: binding) { $0.sequence }
        return AccountsV1.ListRetentionRecordsResponse(records: page.rows, nextPageToken: page.next)
    }
}

/// When a debtor's personal data may be erased, from its accounts and the rule pack.
struct DebtorRetention: Sendable, Hashable {
    /// The latest of the accounts' closing dates (debtor-local) plus the pack's period for the
    /// account's product (`record-retention`: credit cards, every other product).
    var retainUntil: CivilDate
    /// When erasure is due: once `retainUntil` has ended in every time zone, i.e. at 12:00
    /// UTC on the next day (midnight at UTC-12, the last zone where the date ends). Never
    /// early, whatever the debtor's zone; at most 36 hours late (as visits).
    var dueMs: Int64

    /// The accounts' retention, or nil (never due) when the debtor has no account, when one is
    /// not closed (SETTLED or WRITTEN_OFF; an account in LEGAL is open) or when the pack sets no
    /// retention. An account closes when it enters its closed stage (`stage_entered_ms`; for a
    /// write-off its `written_off_ms`).
    static func of(_ accounts: [AccountsV1.Account], pack: RulePack) -> DebtorRetention? {
        guard let retention = pack.retention, !accounts.isEmpty else { return nil }
        var latest: CivilDate?
        for account in accounts {
            guard account.stage == .settled || account.stage == .writtenOff else { return nil }
            let closedMs = account.writeOff.map(\.writtenOffMs).flatMap { $0 > 0 ? $0 : nil } ?? account.stageEnteredMs
            let years = account.product == .creditCard ? retention.creditCardYears : retention.consumerFinanceYears
            let until = CivilDate.today(in: TimeZone(identifier: account.debtorTimeZone) ?? .gmt, nowMs: closedMs).adding(months: 12 * years)
            if latest.map({ until > $0 }) ?? true { latest = until }
        }
        guard let latest else { return nil }
        return DebtorRetention(retainUntil: latest, dueMs: latest.endedEverywhereMs)
    }
}

extension AccountsStore {
    /// Marks the account's debtor for its retention to be computed again: when an account is
    /// opened, or written while closed (it closed, or a hold on it was released). The pass
    /// reads the accounts again before erasing anything, so an account that reopens is never
    /// missed either.
    func retentionChanged(_ db: SQLSession, account: AccountsV1.Account) throws {
        if account.stage == .settled || account.stage == .writtenOff {
            try db.execute(sql: "UPDATE debtors SET retention_due_ms = NULL WHERE id = ?", arguments: [account.debtorId])
        } else {
            // Only a debtor that had a due date (every account closed) needs it computed again;
            // one already "never" (0) stays so, and the hot paths (payments, contacts) write
            // nothing to the debtor's row.
            try db.execute(sql: "UPDATE debtors SET retention_due_ms = NULL WHERE id = ? AND retention_due_ms IS NOT NULL AND retention_due_ms <> 0",
                           arguments: [account.debtorId])
        }
    }

    /// Computes `retention_due_ms` of the debtors not erased that have none (new, or whose
    /// accounts changed since the last pass; 0 = never).
    func fillRetentionDue(batch: Int) async throws {
        let pack = configuration.rulePack
        while true {
            let filled = try await database.write { db -> Int in
                let ids = try db.fetchValues(String.self, sql: "SELECT id FROM debtors WHERE retention_due_ms IS NULL AND erased_ms = 0 LIMIT ?",
                                             arguments: [batch])
                for id in ids {
                    // The debtor's row first: a concurrent closing waits for this transaction.
                    _ = try db.fetchOne(sql: "SELECT id FROM debtors WHERE id = ?\(db.dialect.lockForUpdate)", arguments: [id])
                    let retention = DebtorRetention.of(try accounts(db, debtorID: id), pack: pack)
                    try db.execute(sql: "UPDATE debtors SET retention_due_ms = ? WHERE id = ?", arguments: [retention?.dueMs ?? 0, id])
                }
                return ids.count
            }
            if filled < batch { break }
        }
    }

    /// Debtors not erased whose erasure is due at `nowMs`, after the keyset (due, id), in that
    /// order; at most `limit`.
    func debtorsDue(_ db: SQLSession, nowMs: Int64, after: (dueMs: Int64, id: String)?, limit: Int) throws -> [(dueMs: Int64, id: String)] {
        var sql = "SELECT id, retention_due_ms FROM debtors WHERE erased_ms = 0 AND retention_due_ms > 0 AND retention_due_ms <= ?"
        var arguments: SQLArguments = [nowMs]
        if let after {
            sql += " AND (retention_due_ms > ? OR (retention_due_ms = ? AND id > ?))"
            arguments += [after.dueMs, after.dueMs, after.id]
        }
        arguments += [limit]
        return try db.fetchAll(sql: sql + " ORDER BY retention_due_ms, id LIMIT ?", arguments: arguments).map { row in
            (row["retention_due_ms"], row["id"])
        }
    }

    /// Anonymises one due debtor, or audits the hold that postpones it (once per hold), inside
    /// the caller's write transaction. Reads the debtor's accounts again first: one that
    /// reopened, or a later closing, only moves the due time.
    func retain(_ db: SQLSession, debtorID: String, nowMs: Int64) throws -> RetentionTally {
        var tally = RetentionTally()
        guard let row = try db.fetchOne(sql: "SELECT erased_ms, retention_hold FROM debtors WHERE id = ?\(db.dialect.lockForUpdate)",
                                        arguments: [debtorID]),
              (row["erased_ms"] as Int64) == 0 else { return tally }
        let pack = configuration.rulePack
        let accounts = try accounts(db, debtorID: debtorID)
        let computed = DebtorRetention.of(accounts, pack: pack)
        guard let retention = computed, retention.dueMs <= nowMs else {
            try db.execute(sql: "UPDATE debtors SET retention_due_ms = ? WHERE id = ?", arguments: [computed?.dueMs ?? 0, debtorID])
            return tally
        }
        var audit = AccountsV1.RetentionRecord(
            debtorId: debtorID, accountIds: accounts.map(\.id), retainUntilDate: retention.retainUntil.proto,
            ruleId: RuleID.recordRetention.rawValue, rulePackId: pack.id, rulePackVersion: pack.version,
            actor: AccountsService.retentionActor, recordedMs: nowMs)

        // The holds (as visits'): a complaint, a dispute or a legal instruction on any of the
        // accounts postpones the erasure; HARDSHIP does not.
        let postponing: Set<AccountsV1.HoldReason> = [.complaint, .dispute, .legalInstruction]
        for account in accounts {
            guard let hold = account.holds.first(where: { $0.active && postponing.contains($0.reason) }) else { continue }
            tally.held = 1
            let key = "\(account.id):\(hold.id)"
            guard (row["retention_hold"] as String) != key else { return tally }
            audit.action = .postponed
            audit.hold = AccountsV1.RetentionHold(kind: .accountHold, id: hold.id, note: hold.reason.protoName ?? "", accountId: account.id)
            try insert(db, audit: audit)
            try db.execute(sql: "UPDATE debtors SET retention_hold = ? WHERE id = ?", arguments: [key, debtorID])
            tally.postponed = 1
            return tally
        }

        guard let debtor = try debtor(db, id: debtorID) else { return tally }
        let erasure = AccountsV1.Erasure(erasedMs: nowMs, erasedBy: AccountsService.retentionActor, ruleId: RuleID.recordRetention.rawValue,
                                         rulePackId: pack.id, rulePackVersion: pack.version, retainUntilDate: audit.retainUntilDate)
        let tombstone = Self.tombstone(debtor, erasure, nowMs: nowMs)
        try update(db, debtor: tombstone)

        // The change trail keeps who changed which fields and when, not why.
        for change in try db.fetchAll(sql: "SELECT sequence, body FROM debtor_changes WHERE debtor_id = ?", arguments: [debtorID]) {
            let body: Data = change["body"]
            var kept = try AccountsV1.DebtorChange(decoding: [UInt8](body))
            kept.reason = ""
            try db.execute(sql: "UPDATE debtor_changes SET body = ? WHERE debtor_id = ? AND sequence = ?",
                           arguments: [Data(try kept.encode()), debtorID, change["sequence"] as Int64])
        }
        // Contact attempts: no notes, no digest of the number dialled.
        for attempt in try db.fetchAll(sql: "SELECT id, body FROM contact_attempts WHERE debtor_id = ?", arguments: [debtorID]) {
            let body: Data = attempt["body"]
            let kept = Self.anonymised(try AccountsV1.ContactAttempt(decoding: [UInt8](body)))
            try db.execute(sql: "UPDATE contact_attempts SET body = ?, number_digest = '' WHERE id = ?",
                           arguments: [Data(try kept.encode()), attempt["id"] as String])
        }
        // The accounts keep the lender's books (amounts, dates, statuses, ids), not the words
        // written about the person; so do their timelines, placements and events.
        for account in accounts {
            var kept = Self.anonymised(account)
            kept.version += 1
            kept.updatedMs = nowMs
            try update(db, account: kept, contacts: try contactStats(db, accountID: account.id), nowMs: nowMs)
            for event in try db.fetchAll(sql: "SELECT sequence, body FROM timeline WHERE account_id = ?", arguments: [account.id]) {
                let body: Data = event["body"]
                let stored = try AccountsV1.TimelineEvent(decoding: [UInt8](body))
                let anonymised = Self.anonymised(stored)
                guard anonymised != stored else { continue }
                try db.execute(sql: "UPDATE timeline SET body = ? WHERE account_id = ? AND sequence = ?",
                               arguments: [Data(try anonymised.encode()), account.id, event["sequence"] as Int64])
            }
            try events.redact(db, subject: "accounts/\(account.id)", each: AccountsV1.TimelineEvent.self) { Self.anonymised($0) }
            for placement in try db.fetchAll(sql: "SELECT id, body FROM placements WHERE account_id = ?", arguments: [account.id]) {
                let body: Data = placement["body"]
                let kept = Self.anonymised(try AccountsV1.Placement(decoding: [UInt8](body)))
                try db.execute(sql: "UPDATE placements SET body = ? WHERE id = ?", arguments: [Data(try kept.encode()), placement["id"] as String])
            }
        }
        // The import's digest of the debtor's record was computed from the personal data.
        try db.execute(sql: "UPDATE import_keys SET digest = '' WHERE kind = 'debtor' AND resource_id = ?", arguments: [debtorID])
        try db.execute(sql: "UPDATE debtors SET erased_ms = ?, retention_due_ms = ?, retention_hold = '' WHERE id = ?",
                       arguments: [nowMs, retention.dueMs, debtorID])
        // The erasure is an event of its own: consumers erase their copies too.
        let subject = "debtors/\(debtorID)"
        try events.redact(db, subject: subject, data: tombstone)
        try events.append(db, type: "doorstep.accounts.debtor.erased", subject: subject, data: tombstone, nowMs: nowMs)
        audit.action = .erased
        try insert(db, audit: audit)
        tally.erased = 1
        return tally
    }

    /// The debtor as its tombstone: id, the lender's external id (the lender reconciles its
    /// books by it; it names no-one to anyone but the lender), the address's region code, the
    /// time zone, version and dates, with `erased`. Name, national id, phone numbers, address
    /// text and location, emergency contacts and the wrong-address finding go.
    static func tombstone(_ debtor: AccountsV1.Debtor, _ erasure: AccountsV1.Erasure, nowMs: Int64) -> AccountsV1.Debtor {
        var kept = AccountsV1.Debtor()
        kept.id = debtor.id
        kept.externalId = debtor.externalId
        kept.address = TypeV1.Address(regionCode: debtor.address?.regionCode ?? "")
        kept.timeZone = debtor.timeZone
        kept.version = debtor.version + 1
        kept.createdMs = debtor.createdMs
        kept.updatedMs = nowMs
        kept.erased = erasure
        return kept
    }

    /// The account without free text: its stage reason, and the notes and reasons of its
    /// payments, promises, plans, holds, legal referral (with the law firm and case
    /// reference), write-off, placement and last contact attempt.
    static func anonymised(_ account: AccountsV1.Account) -> AccountsV1.Account {
        var kept = account
        kept.stageReason = ""
        for index in kept.payments.indices { kept.payments[index].note = "" }
        for index in kept.promises.indices { kept.promises[index].note = "" }
        for index in kept.repaymentPlans.indices { kept.repaymentPlans[index].note = "" }
        kept.holds = kept.holds.map(anonymised)
        kept.legalReferral = kept.legalReferral.map(anonymised)
        kept.writeOff?.reason = ""
        kept.placement = kept.placement.map(anonymised)
        if let attempt = kept.contactSummary?.lastAttempt { kept.contactSummary?.lastAttempt = anonymised(attempt) }
        return kept
    }

    /// The timeline event without its reason and its details' free text.
    static func anonymised(_ event: AccountsV1.TimelineEvent) -> AccountsV1.TimelineEvent {
        var kept = event
        kept.reason = ""
        switch event.details {
        case .payment(var payment)?:
            payment.note = ""
            kept.details = .payment(payment)
        case .contactAttempt(let attempt)?: kept.details = .contactAttempt(anonymised(attempt))
        case .promise(var promise)?:
            promise.note = ""
            kept.details = .promise(promise)
        case .repaymentPlan(var plan)?:
            plan.note = ""
            kept.details = .repaymentPlan(plan)
        case .hold(let hold)?: kept.details = .hold(anonymised(hold))
        case .legalReferral(let referral)?: kept.details = .legalReferral(anonymised(referral))
        case .writeOff(var record)?:
            record.reason = ""
            kept.details = .writeOff(record)
        case .placement(let placement)?: kept.details = .placement(anonymised(placement))
        case .stageChange?, .risk?, nil: break
        }
        return kept
    }

    static func anonymised(_ attempt: AccountsV1.ContactAttempt) -> AccountsV1.ContactAttempt {
        var kept = attempt
        kept.note = ""
        return kept
    }

    static func anonymised(_ hold: AccountsV1.Hold) -> AccountsV1.Hold {
        var kept = hold
        kept.note = ""
        kept.releaseNote = ""
        return kept
    }

    static func anonymised(_ referral: AccountsV1.LegalReferral) -> AccountsV1.LegalReferral {
        var kept = referral
        kept.reason = ""
        kept.lawFirm = ""
        kept.caseReference = ""
        return kept
    }

    static func anonymised(_ placement: AccountsV1.Placement) -> AccountsV1.Placement {
        var kept = placement
        kept.reason = ""
        kept.endReason = ""
        return kept
    }

    func insert(_ db: SQLSession, audit: AccountsV1.RetentionRecord) throws {
        try db.execute(sql: "INSERT INTO retention_records (recorded_ms, debtor_id, body) VALUES (?, ?, ?)",
                       arguments: [audit.recordedMs, audit.debtorId, Data(try audit.encode())])
    }

    /// The retention audit after `after` (its sequence), oldest first, at most `limit`.
    func retentionRecords(_ db: SQLSession, debtorID: String, after: Int64, limit: Int) throws -> [AccountsV1.RetentionRecord] {
        var sql = "SELECT id, body FROM retention_records WHERE id > ?"
        var arguments: SQLArguments = [after]
        if !debtorID.isEmpty {
            sql += " AND debtor_id = ?"
            arguments += [debtorID]
        }
        arguments += [limit]
        return try db.fetchAll(sql: sql + " ORDER BY id LIMIT ?", arguments: arguments).map { row in
            let body: Data = row["body"]
            var record = try AccountsV1.RetentionRecord(decoding: [UInt8](body))
            record.sequence = row["id"]
            return record
        }
    }
}
