import Compliance
import Foundation
import Models
import Validation

/// Why a FIELD account on no hold is not a visit candidate for now (docs/DOMAIN.md "Visit
/// candidates and day plans"): a visit would press a debtor who has just promised, who is
/// keeping a plan, or who was visited days ago. Pure: the account (delinquency refreshed),
/// the debtor's today and the last visit of the account.
///
/// - `promise-pending`: a PENDING promise whose promised date is today or later; deferred
///   until the day after the latest such date.
/// - `plan-kept`: the accepted plan is still in good standing as of today (no instalment
///   missed, `PlanRules.progress`); deferred while it is, with no end date.
/// - `visit-cool-down` (pack `visit_cool_down_days`, default 7): the account's last visit
///   took place on day D and today is before D + the cool-down; 0 turns it off.
struct VisitDeferral: Sendable, Hashable {
    /// Every reason that holds, each naming its rule.
    var reasons: [TypeV1.Violation]
    /// The first debtor-local date on which none of the reasons holds, as far as is known
    /// now; nil while a plan is kept (the plan decides).
    var candidateFrom: CivilDate?
    /// The first date on which the dated reasons (promise, cool-down) no longer hold; nil
    /// when only a kept plan defers.
    var datedUntil: CivilDate?

    /// The deferral of `account` as of `today` (debtor-local, in `zone`), or nil when it is a
    /// candidate. `lastVisitMs` is when the account's last visit took place (0 = never).
    static func of(_ account: AccountsV1.Account, today: CivilDate, zone: TimeZone, nowMs: Int64, lastVisitMs: Int64,
                   pack: RulePack) -> VisitDeferral? {
        var reasons: [TypeV1.Violation] = []
        var until: CivilDate? = nil
        var open = false
        let pending = account.promises.compactMap { promise -> (AccountsV1.PromiseToPay, CivilDate)? in
            guard promise.status == .pending, let date = promise.promisedDate.flatMap(CivilDate.init), date >= today else { return nil }
            return (promise, date)
        }
        if let latest = pending.max(by: { $0.1 < $1.1 }) {
            reasons.append(RuleID.promisePending.violation(
                quoting: pack, subject: latest.0.id,
                "promise \(latest.0.id) to pay by \(latest.1) is pending"))
            until = latest.1.adding(days: 1)
        }
        if !account.activePlanId.isEmpty,
           let plan = account.repaymentPlans.first(where: { $0.id == account.activePlanId && $0.status == .accepted }),
           PlanRules.progress(plan, payments: account.payments, asOf: today, zone: zone, nowMs: nowMs).plan.status == .accepted {
            reasons.append(RuleID.planKept.violation(quoting: pack, subject: plan.id, "repayment plan \(plan.id) is being kept"))
            open = true
        }
        if lastVisitMs > 0, pack.visitCoolDownDays > 0 {
            let visited = CivilDate.today(in: zone, nowMs: lastVisitMs)
            let end = visited.adding(days: pack.visitCoolDownDays)
            if today < end {
                reasons.append(RuleID.visitCoolDown.violation(
                    quoting: pack, subject: account.id,
                    "visited on \(visited); \(pack.id) allows the next visit from \(end)"))
                until = max(until ?? end, end)
            }
        }
        guard !reasons.isEmpty else { return nil }
        return VisitDeferral(reasons: reasons, candidateFrom: open ? nil : until, datedUntil: until)
    }
}
