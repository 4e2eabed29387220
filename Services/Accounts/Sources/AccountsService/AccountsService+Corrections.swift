import Compliance
import Foundation
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

/// Corrections of a debtor's data (UpdateDebtor), the address a visit found wrong, and the
/// debtor's change trail (ListDebtorChanges): who changed which fields, when and why, never
/// the values.
extension AccountsService {
    // MARK: UpdateDebtor

    func updateDebtor(_ request: AccountsV1.UpdateDebtorRequest, _ context: ServerContext) async throws -> AccountsV1.Debtor {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.debtorId, field: "debtor_id", prefix: "dbt")
        if request.expectedVersion < 0 { throw RPCError.invalidArgument("expected_version", "must not be negative") }
        _ = try DebtorCorrection.updateMask(request.updateMask)
        guard request.debtor != nil else { throw RPCError.invalidArgument("debtor", "required: the new values") }
        try Validate.text(request.reason, field: "reason", min: 1, max: 500)
        let actor = try context.requireCaller().actor
        let now = clock.nowMs()
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        let configuration = self.configuration
        let updated = try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            guard let current = try store.debtor(db, id: request.debtorId) else {
                throw RPCError.notFound("debtor \(request.debtorId) not found")
            }
            guard current.erased == nil else {
                throw RPCError.refused(rule: RuleID.recordRetention, "debtor \(current.id) was anonymised past its retention",
                                       subjectID: current.id)
            }
            if request.expectedVersion != 0, request.expectedVersion != current.version {
                throw RPCError(code: .aborted, message: "stale version: expected \(request.expectedVersion), current \(current.version)")
            }
            let correction = try DebtorCorrection.corrected(
                current, with: request.debtor, mask: request.updateMask,
                newContactID: { IDGenerator.make(prefix: "emc", nowMs: now) })
            var debtor = correction.debtor
            let fields = correction.fields
            var changed = fields.map(\.rawValue)
            // The caller vouches for the address again: the debtor may be visited there.
            if debtor.addressUnverified, fields.contains(where: \.correctsAddress) {
                debtor.addressUnverified = false
                debtor.wrongAddressFinding = nil
                changed.append(DebtorCorrection.addressUnverifiedField)
            }
            debtor.version += 1
            debtor.updatedMs = now
            try store.update(db, debtor: debtor)
            try store.append(db, change: AccountsV1.DebtorChange(
                kind: .updated, changedMs: now, fields: changed, actor: actor, reason: request.reason, requestId: request.requestId,
                debtorVersion: debtor.version), debtorID: debtor.id)
            try Self.carryOver(db, from: current, to: debtor, store: store, configuration: configuration, nowMs: now, actor: actor,
                               requestID: request.requestId)
            return PersonalDataMask.masked(debtor)
        }
        context.logger.notice("debtor corrected", metadata: [
            "debtor-id": "\(request.debtorId)", "fields": "\(request.updateMask.joined(separator: ","))", "version": "\(updated.version)",
        ])
        return updated
    }

    /// Brings the debtor's accounts in step with the corrected debtor: each account whose
    /// region or debtor time zone differs takes the new one (and so moves to the new region's
    /// ranking, its dates judged in the new zone); a new phone recomputes the contact counters
    /// (attempts on the old number no longer count as the debtor's own). Each changed account
    /// gets a new version and a DEBTOR_UPDATED event naming what changed, never a value that
    /// is personal data.
    static func carryOver(_ db: SQLSession, from previous: AccountsV1.Debtor, to debtor: AccountsV1.Debtor, store: AccountsStore,
                          configuration: Configuration, nowMs: Int64, actor: TypeV1.Actor, requestID: String) throws {
        let region = debtor.address?.regionCode ?? ""
        let phoneChanged = previous.phone != debtor.phone
        guard region != (previous.address?.regionCode ?? "") || debtor.timeZone != previous.timeZone || phoneChanged else { return }
        let zone = TimeZone(identifier: debtor.timeZone) ?? .gmt
        let today = CivilDate.today(in: zone, nowMs: nowMs)
        var counts: ContactCounts?
        if phoneChanged {
            let past = try store.contactHistory(db, debtorID: debtor.id).map { PastContact($0.attempt, number: $0.numberDigest) }
            counts = ContactPolicy.summary(history: past, asOfMs: nowMs, zone: zone, pack: configuration.rulePack,
                                           debtorNumber: store.cipher.digest(debtor.phone, purpose: "contact-number"))
        }
        var after: Int64?
        while true {
            let page = try store.accounts(db, matching: AccountsStore.AccountQuery(debtorID: debtor.id), after: after, limit: 500)
            for (_, stored, contacts) in page {
                var account = stored
                var what: [String] = []
                if account.regionCode != region {
                    what.append("region \(account.regionCode) → \(region)")
                    account.regionCode = region
                }
                if account.debtorTimeZone != debtor.timeZone {
                    what.append("time zone \(account.debtorTimeZone) → \(debtor.timeZone)")
                    account.debtorTimeZone = debtor.timeZone
                }
                if let counts, var summary = account.contactSummary {
                    counts.apply(to: &summary)
                    if summary != account.contactSummary {
                        what.append("phone changed, contact counters recomputed")
                        account.contactSummary = summary
                    }
                }
                guard !what.isEmpty else { continue }
                account.version += 1
                account.updatedMs = nowMs
                var events = [event(.debtorUpdated, reason: "debtor \(debtor.id) corrected: \(what.joined(separator: "; "))", actor: actor,
                                    requestID: requestID)]
                if let tierChange = refresh(&account, asOf: today, nowMs: nowMs, configuration: configuration, contacts: contacts,
                                            actor: actor, requestID: requestID) {
                    events.append(tierChange)
                }
                try store.update(db, account: account, contacts: contacts, nowMs: nowMs)
                try store.append(db, events: events, accountID: account.id, nowMs: nowMs)
            }
            guard page.count == 500, let last = page.last else { return }
            after = last.row
        }
    }

    // MARK: A wrong address found at the door

    /// After a visit reported WRONG_ADDRESS (the visits service's VISIT contact attempt), in
    /// the same transaction: the debtor's address becomes unverified, with the visit that
    /// found it, and the trail records it with the caller (the visits service) as the actor.
    /// Nothing changes when the address is already unverified, or when it was corrected at or
    /// after the visit's time (the visit was to the old address).
    static func recordWrongAddress(_ db: SQLSession, debtor: AccountsV1.Debtor, attempt: AccountsV1.ContactAttempt, store: AccountsStore,
                                   nowMs: Int64, actor: TypeV1.Actor, requestID: String) throws {
        guard !debtor.addressUnverified else { return }
        if let corrected = try store.lastAddressCorrectionMs(db, debtorID: debtor.id), corrected >= attempt.attemptedMs { return }
        var debtor = debtor
        debtor.addressUnverified = true
        debtor.wrongAddressFinding = AccountsV1.WrongAddressFinding(
            visitId: attempt.visitId, accountId: attempt.accountId, visitedMs: attempt.attemptedMs, agencyId: attempt.agencyId,
            recordedMs: nowMs)
        debtor.version += 1
        debtor.updatedMs = nowMs
        try store.update(db, debtor: debtor)
        let day = CivilDate.today(in: TimeZone(identifier: debtor.timeZone) ?? .gmt, nowMs: attempt.attemptedMs)
        try store.append(db, change: AccountsV1.DebtorChange(
            kind: .addressFoundWrong, changedMs: nowMs, fields: [DebtorCorrection.addressUnverifiedField], actor: actor,
            reason: "visit \(attempt.visitId) on \(day) (account \(attempt.accountId)) found that the debtor does not live at the address",
            requestId: requestID, debtorVersion: debtor.version, visitId: attempt.visitId), debtorID: debtor.id)
    }

    // MARK: ListDebtorChanges

    func listDebtorChanges(_ request: AccountsV1.ListDebtorChangesRequest, _ context: ServerContext) async throws -> AccountsV1.ListDebtorChangesResponse {
        try Validate.resourceID(request.debtorId, field: "debtor_id", prefix: "dbt")
        let pageSize = try Validate.pageSize(request.pageSize, defaultSize: 100, max: 1000)
        var after: Int64 = 0
        if !request.pageToken.isEmpty {
            guard let token = DebtorChangesPageToken(request.pageToken), token.debtorID == request.debtorId else {
                throw RPCError.invalidArgument("page_token", "not a token of this debtor's changes")
            }
            after = token.afterSequence
        }
        let store = self.store
        let id = request.debtorId
        let startAfter = after
        let found = try await store.database.read { db -> [AccountsV1.DebtorChange]? in
            guard try db.fetchValue(Bool.self, sql: "SELECT EXISTS (SELECT 1 FROM debtors WHERE id = ?)", arguments: [id]) == true else {
                return nil
            }
            return try store.changes(db, debtorID: id, after: startAfter, limit: pageSize + 1)
        }
        guard let changes = found else { throw RPCError.notFound("debtor \(id) not found") }
        var response = AccountsV1.ListDebtorChangesResponse(changes: Array(changes.prefix(pageSize)))
        if changes.count > pageSize, let last = response.changes.last {
            response.nextPageToken = DebtorChangesPageToken(debtorID: id, afterSequence: last.sequence).text
        }
        return response
    }
}

/// A page token of ListDebtorChanges: the debtor and the last sequence returned (base64 of
/// "c1|debtor|sequence").
struct DebtorChangesPageToken {
    let debtorID: String
    let afterSequence: Int64

    init(debtorID: String, afterSequence: Int64) {
        self.debtorID = debtorID
        self.afterSequence = afterSequence
    }

    init?(_ text: String) {
        guard let fields = PageTokenText.decode(text, tag: "c1", count: 3), let sequence = Int64(fields[1]), sequence >= 0 else {
            return nil
        }
        self.init(debtorID: fields[0], afterSequence: sequence)
    }

    var text: String { PageTokenText.encode(["c1", debtorID, "\(afterSequence)"]) }
}
