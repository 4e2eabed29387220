import Foundation
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

/// The end of collection: referral to litigation and write-off.
extension AccountsService {
    func referToLegal(_ request: AccountsV1.ReferToLegalRequest, _ context: ServerContext) async throws -> AccountsV1.Account {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc")
        if request.expectedVersion < 0 { throw RPCError.invalidArgument("expected_version", "must not be negative") }
        let reason = try Validate.text(request.reason, field: "reason", min: 1, max: 500)
        try Validate.text(request.lawFirm, field: "law_firm", min: 0, max: 200)
        try Validate.text(request.caseReference, field: "case_reference", min: 0, max: 64)
        let caller = try context.requireCaller()
        let now = clock.nowMs()
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        let configuration = self.configuration
        return try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            var account = try Self.accountForUpdate(db, store: store, id: request.accountId, expectedVersion: request.expectedVersion)
            let today = CivilDate.today(in: TimeZone(identifier: account.debtorTimeZone) ?? .gmt, nowMs: now)
            Self.refresh(&account, asOf: today, nowMs: now, configuration: configuration,
                         contacts: try store.contactStats(db, accountID: account.id))
            var violations: [TypeV1.Violation] = []
            if account.stage != .remote && account.stage != .field {
                violations.append(.init(ruleId: "account-stage", detail: "only REMOTE or FIELD accounts are referred; \(account.id) is \(account.stage.protoName ?? "?")", subjectId: account.id))
            }
            let minimum = configuration.collection.legalReferralMinDPD
            if account.daysPastDue < minimum {
                violations.append(.init(ruleId: "legal-referral-dpd", detail: "\(account.daysPastDue) days past due; referral needs \(minimum)", subjectId: account.id))
            }
            if let hold = account.holds.first(where: { $0.active && $0.reason != .legalInstruction }) {
                violations.append(.init(ruleId: "account-hold", detail: "hold \(hold.id) (\(hold.reason.protoName ?? "?")) is active", subjectId: hold.id))
            }
            guard violations.isEmpty else { throw RPCError.refused(violations) }
            let referral = AccountsV1.LegalReferral(
                referredMs: now, reason: reason, lawFirm: request.lawFirm, caseReference: request.caseReference,
                outstandingAtReferral: account.outstandingAmount, referredBy: caller.actor)
            account.legalReferral = referral
            let change = Self.stageChange(&account, to: StageDecision(stage: .legal, reason: "referred to litigation: \(reason)"),
                                          daysPastDue: Int(account.daysPastDue), nowMs: now, actor: caller.actor, requestID: request.requestId)
            account.version += 1
            account.updatedMs = now
            try store.update(db, account: account)
            try store.append(db, events: [
                Self.event(.referredToLegal, reason: reason, actor: caller.actor, requestID: request.requestId, details: .legalReferral(referral)),
                change,
            ], accountID: account.id, nowMs: now)
            return account
        }
    }

    func writeOff(_ request: AccountsV1.WriteOffRequest, _ context: ServerContext) async throws -> AccountsV1.Account {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc")
        if request.expectedVersion < 0 { throw RPCError.invalidArgument("expected_version", "must not be negative") }
        let reason = try Validate.text(request.reason, field: "reason", min: 1, max: 500)
        let caller = try context.requireCaller()
        let now = clock.nowMs()
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        let configuration = self.configuration
        return try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            var account = try Self.accountForUpdate(db, store: store, id: request.accountId, expectedVersion: request.expectedVersion)
            let today = CivilDate.today(in: TimeZone(identifier: account.debtorTimeZone) ?? .gmt, nowMs: now)
            Self.refresh(&account, asOf: today, nowMs: now, configuration: configuration,
                         contacts: try store.contactStats(db, accountID: account.id))
            if account.stage == .settled || account.stage == .writtenOff {
                throw RPCError.refused(rule: "account-stage", "account \(account.id) is \(account.stage.protoName ?? "?")", subjectID: account.id)
            }
            let minimum = configuration.collection.writeOffMinDPD
            if account.stage != .legal, account.daysPastDue < minimum {
                throw RPCError.refused(rule: "write-off-dpd", "\(account.daysPastDue) days past due; write-off needs \(minimum) (or LEGAL)",
                                       subjectID: account.id)
            }
            let record = AccountsV1.WriteOffRecord(writtenOffMs: now, amount: account.outstandingAmount, reason: reason, writtenOffBy: caller.actor)
            account.writeOff = record
            let change = Self.stageChange(&account, to: StageDecision(stage: .writtenOff, reason: "written off: \(reason)"),
                                          daysPastDue: Int(account.daysPastDue), nowMs: now, actor: caller.actor, requestID: request.requestId)
            account.version += 1
            account.updatedMs = now
            try store.update(db, account: account)
            try store.append(db, events: [
                Self.event(.writtenOff, reason: reason, actor: caller.actor, requestID: request.requestId, details: .writeOff(record)),
                change,
            ], accountID: account.id, nowMs: now)
            return account
        }
    }
}
