import Compliance
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
        try Self.validateMutation(requestID: request.requestId, accountID: request.accountId, expectedVersion: request.expectedVersion)
        let reason = try Validate.text(request.reason, field: "reason", min: 1, max: 500)
        try Validate.text(request.lawFirm, field: "law_firm", min: 0, max: 200)
        try Validate.text(request.caseReference, field: "case_reference", min: 0, max: 64)
        return try await mutateAccount(request, requestID: request.requestId, accountID: request.accountId,
                                       expectedVersion: request.expectedVersion, context: context) { account, scope in
            var violations: [TypeV1.Violation] = []
            if account.stage != .remote && account.stage != .field {
                violations.append(RuleID.accountStage.violation(quoting: nil, subject: account.id, "only REMOTE or FIELD accounts are referred; \(account.id) is \(account.stage.protoName ?? "?")"))
            }
            let minimum = scope.configuration.collection.legalReferralMinDPD
            if account.daysPastDue < minimum {
                violations.append(RuleID.legalReferralDPD.violation(quoting: nil, subject: account.id, "\(account.daysPastDue) days past due; referral needs \(minimum)"))
            }
            if let hold = account.holds.first(where: { $0.active && $0.reason != .legalInstruction }) {
                violations.append(RuleID.accountHold.violation(quoting: nil, subject: hold.id, "hold \(hold.id) (\(hold.reason.protoName ?? "?")) is active"))
            }
            guard violations.isEmpty else { throw RPCError.refused(violations) }
            let referral = AccountsV1.LegalReferral(
                referredMs: scope.nowMs, reason: reason, lawFirm: request.lawFirm, caseReference: request.caseReference,
                outstandingAtReferral: account.outstandingAmount, referredBy: scope.actor)
            account.legalReferral = referral
            let change = Self.stageChange(&account, to: StageDecision(stage: .legal, reason: "referred to litigation: \(reason)"),
                                          daysPastDue: Int(account.daysPastDue), nowMs: scope.nowMs, actor: scope.actor,
                                          requestID: scope.requestID)
            return .changed([scope.event(.referredToLegal, reason: reason, details: .legalReferral(referral)), change])
        }
    }

    func writeOff(_ request: AccountsV1.WriteOffRequest, _ context: ServerContext) async throws -> AccountsV1.Account {
        try Self.validateMutation(requestID: request.requestId, accountID: request.accountId, expectedVersion: request.expectedVersion)
        let reason = try Validate.text(request.reason, field: "reason", min: 1, max: 500)
        return try await mutateAccount(request, requestID: request.requestId, accountID: request.accountId,
                                       expectedVersion: request.expectedVersion, context: context) { account, scope in
            if account.stage == .settled || account.stage == .writtenOff {
                throw RPCError.refused(rule: RuleID.accountStage, "account \(account.id) is \(account.stage.protoName ?? "?")", subjectID: account.id)
            }
            let minimum = scope.configuration.collection.writeOffMinDPD
            if account.stage != .legal, account.daysPastDue < minimum {
                throw RPCError.refused(rule: RuleID.writeOffDPD, "\(account.daysPastDue) days past due; write-off needs \(minimum) (or LEGAL)",
                                       subjectID: account.id)
            }
            let record = AccountsV1.WriteOffRecord(writtenOffMs: scope.nowMs, amount: account.outstandingAmount, reason: reason,
                                                   writtenOffBy: scope.actor)
            account.writeOff = record
            let change = Self.stageChange(&account, to: StageDecision(stage: .writtenOff, reason: "written off: \(reason)"),
                                          daysPastDue: Int(account.daysPastDue), nowMs: scope.nowMs, actor: scope.actor,
                                          requestID: scope.requestID)
            return .changed([scope.event(.writtenOff, reason: reason, details: .writeOff(record)), change])
        }
    }
}
