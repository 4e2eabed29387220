import Foundation
import Models
import Validation

/// What each outcome code requires (visits.proto `VisitOutcomeCode`) and the consequences it
/// sends to accounts.
public enum OutcomeRules {
    /// Codes for which the debtor was met, so willingness and ability are assessed.
    static let debtorMet: Set<VisitsV1.VisitOutcomeCode> = [
        .metDebtor, .promiseToPay, .repaymentPlanAgreed, .paid, .refused, .hardship, .dispute,
    ]

    /// Checks a RecordOutcome request field by field; the first problem is INVALID_ARGUMENT
    /// naming the field.
    public static func validate(_ request: VisitsV1.RecordOutcomeRequest) throws(DomainError) {
        switch request.code {
        case .unspecified: throw .invalidArgument("code", "required")
        case .unrecognized(let value): throw .invalidArgument("code", "unknown value \(value)")
        default: break
        }
        if case .unrecognized(let value) = request.willingness { throw .invalidArgument("willingness", "unknown value \(value)") }
        if case .unrecognized(let value) = request.ability { throw .invalidArgument("ability", "unknown value \(value)") }
        let code = request.code.protoName ?? "this code"
        if debtorMet.contains(request.code) {
            guard request.willingness != .unspecified else { throw .invalidArgument("willingness", "required for outcome \(code)") }
            guard request.ability != .unspecified else { throw .invalidArgument("ability", "required for outcome \(code)") }
        } else {
            guard request.willingness == .unspecified else { throw .invalidArgument("willingness", "must be unset for outcome \(code)") }
            guard request.ability == .unspecified else { throw .invalidArgument("ability", "must be unset for outcome \(code)") }
        }
        _ = try Validate.text(request.notes, field: "notes", min: 0, max: 2000)
        if containsIdentifyingNumber(request.notes) {
            throw .invalidArgument("notes", "must not contain phone or national ID numbers")
        }
        switch (request.code, request.arrangement) {
        case (.promiseToPay, .promise(let promise)?):
            _ = try Validate.money(promise.amount, field: "promise.amount", currency: nil, allowZero: false)
            _ = try Validate.date(promise.promisedDate, field: "promise.promised_date")
        case (.promiseToPay, _):
            throw .invalidArgument("promise", "required for outcome \(code)")
        case (.repaymentPlanAgreed, .plan(let plan)?):
            guard (1...24).contains(plan.instalments.count) else { throw .invalidArgument("plan.instalments", "1-24 instalments required") }
            var previous: CivilDate? = nil
            let currency = plan.instalments.first?.amount?.currencyCode
            for (index, instalment) in plan.instalments.enumerated() {
                let due = try Validate.date(instalment.dueDate, field: "plan.instalments[\(index)].due_date")
                if let previous, due <= previous {
                    throw .invalidArgument("plan.instalments[\(index)].due_date", "must be after the previous instalment's")
                }
                previous = due
                _ = try Validate.money(instalment.amount, field: "plan.instalments[\(index)].amount", currency: currency, allowZero: false)
            }
            if let reduction = plan.reduction {
                _ = try Validate.money(reduction, field: "plan.reduction", currency: currency, allowZero: true)
            }
        case (.repaymentPlanAgreed, _):
            throw .invalidArgument("plan", "required for outcome \(code)")
        case (_, .promise?):
            throw .invalidArgument("promise", "must be empty for outcome \(code)")
        case (_, .plan?):
            throw .invalidArgument("plan", "must be empty for outcome \(code)")
        default:
            break
        }
        if let payment = request.reportedPayment {
            guard request.code == .paid else { throw .invalidArgument("reported_payment", "only for outcome VISIT_OUTCOME_CODE_PAID") }
            _ = try Validate.money(payment, field: "reported_payment", currency: nil, allowZero: false)
        }
    }

    /// True when `text` holds a number of 11 or more digits: a mobile number (11) or a
    /// resident ID (18, whose first 17 are digits). Full-width digits (０-９) count as digits,
    /// and one space, ideographic space or hyphen between digits does not end the number, so
    /// "138 1234 5678", "138-1234-5678" and "１３８１２３４５６７８" are found; any other
    /// character ends it ("尾号 5678，分机 1234567890" holds no such number).
    static func containsIdentifyingNumber(_ text: String) -> Bool {
        var digits = 0
        var afterSeparator = false
        for scalar in text.unicodeScalars {
            if ("0"..."9").contains(scalar) || ("\u{FF10}"..."\u{FF19}").contains(scalar) {
                digits += 1
                afterSeparator = false
                if digits >= 11 { return true }
            } else if digits > 0, !afterSeparator, [" ", "\u{3000}", "-", "\u{FF0D}", "\u{2010}", "\u{2011}"].contains(scalar) {
                afterSeparator = true
            } else {
                digits = 0
                afterSeparator = false
            }
        }
        return false
    }

    /// One consequence to queue: the effect as shown on the visit and what the outbox sends.
    struct QueuedEffect {
        var effect: VisitsV1.Effect
        var envelope: EffectEnvelope
    }

    /// The consequences of an outcome: a VISIT contact attempt always; a promise, a plan
    /// (proposed then accepted) or a hold when the code says so. Request ids are derived from
    /// the visit id, so a retried delivery is acted on once.
    static func effects(of outcome: VisitsV1.VisitOutcome, visit: VisitsV1.Visit, nowMs: Int64) throws -> [QueuedEffect] {
        var queued: [QueuedEffect] = []
        func add<Request: ProtoMessage>(_ kind: VisitsV1.EffectKind, _ suffix: String, method: String, _ request: Request) throws {
            let effect = VisitsV1.Effect(kind: kind, targetService: "accounts", requestId: "\(visit.id).\(suffix)", createdMs: nowMs)
            queued.append(QueuedEffect(effect: effect, envelope: EffectEnvelope(
                service: "accounts", method: method, request: Data(try request.encode()), kind: kind.rawValue)))
        }
        let contactOutcome: AccountsV1.ContactOutcome = switch outcome.code {
        case .notHome: .visitNotHome
        case .wrongAddress: .visitWrongAddress
        case .thirdPartyOnly: .visitThirdPartyOnly
        default: .visitMetDebtor
        }
        try add(.contactAttempt, "contact", method: AccountsV1.AccountsService.recordContactAttempt.path,
                AccountsV1.RecordContactAttemptRequest(
                    requestId: "\(visit.id).contact", accountId: visit.accountId, channel: .visit, outcome: contactOutcome,
                    attemptedMs: visit.checkIns.first?.checkedInMs ?? nowMs, agencyId: visit.agencyId, visitId: visit.id))
        switch (outcome.code, outcome.arrangement) {
        case (.promiseToPay, .promise(let promise)?):
            try add(.promiseToPay, "promise", method: AccountsV1.AccountsService.recordPromiseToPay.path,
                    AccountsV1.RecordPromiseToPayRequest(requestId: "\(visit.id).promise", accountId: visit.accountId,
                                                         amount: promise.amount, promisedDate: promise.promisedDate,
                                                         sourceVisitId: visit.id))
        case (.repaymentPlanAgreed, .plan(let plan)?):
            try add(.repaymentPlan, "plan", method: AccountsV1.AccountsService.proposeRepaymentPlan.path,
                    AccountsV1.ProposeRepaymentPlanRequest(
                        requestId: "\(visit.id).plan", accountId: visit.accountId,
                        instalments: plan.instalments.map { AccountsV1.PlanInstalmentTerm(dueDate: $0.dueDate, amount: $0.amount) },
                        reduction: plan.reduction, sourceVisitId: visit.id))
        case (.hardship, _), (.dispute, _):
            try add(.placeHold, "hold", method: AccountsV1.AccountsService.placeHold.path,
                    AccountsV1.PlaceHoldRequest(requestId: "\(visit.id).hold", accountId: visit.accountId,
                                                reason: outcome.code == .hardship ? .hardship : .dispute,
                                                note: "reported at visit \(visit.id)"))
        default:
            break
        }
        return queued
    }
}
