import Compliance
import Foundation
import Models
import Validation

/// Promises to pay (accounts.proto `RecordPromiseToPay`, `PromiseToPay`, `PromiseStatus`):
/// which promises may be recorded, and when one is KEPT or BROKEN. Pure: the service loads
/// the account, persists the result and records the timeline events.
public enum PromiseRules {
    /// Longest free-text note (accounts.proto `RecordPromiseToPayRequest.note`).
    public static let maxNoteLength = 500

    /// Checks the request's fields in proto field order and reports the first invalid one as
    /// INVALID_ARGUMENT naming it (e.g. "promised_date: required"). `currency`, when given,
    /// is the account's: `amount` must be in it.
    ///
    /// That `source_contact_attempt_id` belongs to the account (NOT_FOUND otherwise) is for
    /// the caller to check: the account does not carry its contact attempts.
    public static func validate(_ request: AccountsV1.RecordPromiseToPayRequest, currency: String? = nil) throws(DomainError) {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc")
        if request.expectedVersion < 0 { throw .invalidArgument("expected_version", "must not be negative") }
        _ = try Validate.money(request.amount, field: "amount", currency: currency, allowZero: false)
        _ = try Validate.date(request.promisedDate, field: "promised_date")
        if !request.sourceVisitId.isEmpty {
            try Validate.resourceID(request.sourceVisitId, field: "source_visit_id", prefix: "vis")
        }
        if !request.sourceContactAttemptId.isEmpty {
            try Validate.resourceID(request.sourceContactAttemptId, field: "source_contact_attempt_id", prefix: "cta")
        }
        try Validate.text(request.note, field: "note", min: 0, max: maxNoteLength)
    }

    /// The new PENDING promise of a RecordPromiseToPay request, or the first problem:
    /// INVALID_ARGUMENT naming the field (see `validate(_:currency:)`), then
    /// FAILED_PRECONDITION, in this order:
    /// - `account-stage`: the account is CURRENT (nothing past due), SETTLED or WRITTEN_OFF
    ///   (promises are taken in REMINDER, REMOTE, FIELD and LEGAL);
    /// - `promise-amount`: more than the outstanding amount;
    /// - `promise-horizon`: `promised_date` before `today` or more than
    ///   `policy.promiseHorizonDays` after it (both ends inclusive are allowed).
    ///
    /// `account` has its outstanding amount computed as of `today`, the debtor-local date on
    /// the service clock; `id` is the new "ptp_…" id and `nowMs` becomes `created_ms`.
    public static func make(
        _ request: AccountsV1.RecordPromiseToPayRequest, account: AccountsV1.Account, today: CivilDate, nowMs: Int64,
        id: String, policy: CollectionPolicy
    ) throws(DomainError) -> AccountsV1.PromiseToPay {
        let currency = account.principal?.currencyCode ?? ""
        try validate(request, currency: currency)
        let amount = request.amount?.amountMinor ?? 0
        guard let promisedDate = request.promisedDate.flatMap(CivilDate.init) else {
            throw .invalidArgument("promised_date", "required")  // unreachable: validated above
        }

        switch account.stage {
        case .reminder, .remote, .field, .legal: break
        case .current, .settled, .writtenOff, .unspecified, .unrecognized:
            throw DomainError.refused(
                rule: RuleID.accountStage,
                "account \(account.id) is \(account.stage.protoName ?? "in an unknown stage"); promises are recorded in "
                    + "STAGE_REMINDER, STAGE_REMOTE, STAGE_FIELD or STAGE_LEGAL",
                subjectID: account.id)
        }
        let outstanding = account.outstandingAmount?.amountMinor ?? 0
        guard amount <= outstanding else {
            throw DomainError.refused(
                rule: RuleID.promiseAmount, "promised \(amount) exceeds the outstanding amount \(outstanding) \(currency)",
                subjectID: account.id)
        }
        guard promisedDate >= today else {
            throw DomainError.refused(
                rule: RuleID.promiseHorizon, "promised_date \(promisedDate) is before today (\(today))", subjectID: account.id)
        }
        let latest = today.adding(days: policy.promiseHorizonDays)
        guard promisedDate <= latest else {
            throw DomainError.refused(
                rule: RuleID.promiseHorizon,
                "promised_date \(promisedDate) is more than \(policy.promiseHorizonDays) days after today (\(today)); "
                    + "the latest allowed is \(latest)",
                subjectID: account.id)
        }

        var promise = AccountsV1.PromiseToPay()
        promise.id = id
        promise.requestId = request.requestId
        promise.amount = TypeV1.Money(amountMinor: amount, currencyCode: currency)
        promise.promisedDate = promisedDate.proto
        promise.sourceVisitId = request.sourceVisitId
        promise.sourceContactAttemptId = request.sourceContactAttemptId
        promise.status = .pending
        promise.amountPaid = TypeV1.Money(amountMinor: 0, currencyCode: currency)
        promise.createdMs = nowMs
        promise.note = request.note
        return promise
    }

    /// What counts toward a promise (accounts.proto `PromiseToPay.amount_paid`): the payments
    /// received at or after its creation (`received_ms >= created_ms`) up to the end of the
    /// promised date in the debtor's zone (inclusive: a payment at 23:59:59 local time on
    /// that date counts, one at 00:00 the next day does not).
    public static func amountPaid(
        toward promise: AccountsV1.PromiseToPay, payments: [AccountsV1.Payment], zone: TimeZone
    ) -> Int64 {
        guard let promisedDate = promise.promisedDate.flatMap(CivilDate.init) else { return 0 }
        var total: Int64 = 0
        for payment in payments where payment.receivedMs >= promise.createdMs {
            guard CivilDate.today(in: zone, nowMs: payment.receivedMs) <= promisedDate else { continue }
            let (sum, overflow) = total.addingReportingOverflow(max(0, payment.amount?.amountMinor ?? 0))
            total = overflow ? .max : sum
        }
        return total
    }

    /// A PENDING promise resolved as of `asOf` (the debtor-local date evaluated): KEPT as soon
    /// as the payments counted toward it (`amountPaid(toward:payments:zone:)`) reach the
    /// promised amount, BROKEN once `asOf` is after the promised date without that; nil while
    /// it stays PENDING (and for a promise already KEPT or BROKEN, which never changes again).
    /// The result has `amount_paid` updated and `resolved_ms` = `nowMs`, when Doorstep
    /// established the outcome.
    public static func resolve(
        _ promise: AccountsV1.PromiseToPay, payments: [AccountsV1.Payment], asOf: CivilDate, zone: TimeZone, nowMs: Int64
    ) -> AccountsV1.PromiseToPay? {
        guard promise.status == .pending, let promisedDate = promise.promisedDate.flatMap(CivilDate.init) else { return nil }
        let paid = amountPaid(toward: promise, payments: payments, zone: zone)
        var resolved = promise
        resolved.amountPaid = TypeV1.Money(amountMinor: paid, currencyCode: promise.amount?.currencyCode ?? "")
        if paid >= promise.amount?.amountMinor ?? 0 {
            resolved.status = .kept
        } else if asOf > promisedDate {
            resolved.status = .broken
        } else {
            return nil
        }
        resolved.resolvedMs = nowMs
        return resolved
    }
}
