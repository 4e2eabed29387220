import Compliance
import Foundation
import Models
import Validation

/// What a repayment-plan operation did to an account: the account with the changes applied
/// and the timeline events to append, in order. The events' id, sequence, occurred_ms and
/// account_id are left empty for the store to fill.
public struct PlanChange: Sendable {
    /// The account with its plans (and, when that changed, its stage) updated.
    public var account: AccountsV1.Account
    /// The plan proposed or accepted, as it now stands in `account.repaymentPlans`.
    public var plan: AccountsV1.RepaymentPlan
    /// PLAN_PROPOSED / PLAN_ACCEPTED, PLAN_SUPERSEDED for each plan it replaced, and
    /// STAGE_CHANGED when the account left FIELD.
    public var events: [AccountsV1.TimelineEvent]

    public init(account: AccountsV1.Account, plan: AccountsV1.RepaymentPlan, events: [AccountsV1.TimelineEvent]) {
        self.account = account
        self.plan = plan
        self.events = events
    }
}

/// Repayment plans (accounts.proto `ProposeRepaymentPlan`, `AcceptRepaymentPlan`,
/// `RepaymentPlan`, `PlanInstalment`, `PlanStatus`): a new schedule for the overdue amount,
/// with an optional reduction waived on completion. While an ACCEPTED plan is kept, field
/// stages are paused; a missed plan instalment breaks it and the stage rules resume. Pure:
/// the service loads the account and persists the result.
public enum PlanRules {
    /// Longest free-text note (accounts.proto `ProposeRepaymentPlanRequest.note`).
    public static let maxNoteLength = 500

    // MARK: Proposal

    /// Checks a ProposeRepaymentPlanRequest's fields in proto field order and reports the
    /// first invalid one as INVALID_ARGUMENT naming it, e.g.
    /// "instalments[2].due_date: must be after instalments[1].due_date". `currency`, when
    /// given, is the account's (every amount must be in it); `today`, when given, is the
    /// debtor-local date on the service clock (the first due date must not be before it).
    /// The number of instalments against the configured maximum is a FAILED_PRECONDITION
    /// (`plan-max-instalments`), checked by `propose`.
    public static func validate(
        _ request: AccountsV1.ProposeRepaymentPlanRequest, currency: String? = nil, today: CivilDate? = nil
    ) throws(DomainError) {
        _ = try validatedTerms(request, currency: currency, today: today)
    }

    /// The new PROPOSED plan of a ProposeRepaymentPlan request, or the first problem:
    /// INVALID_ARGUMENT naming the field (see `validate(_:currency:today:)`), then
    /// FAILED_PRECONDITION, in this order:
    /// - `account-stage`: the account is SETTLED or WRITTEN_OFF, or has no overdue amount;
    /// - `plan-sum`: the instalments plus the reduction differ from the overdue amount (the
    ///   message states it);
    /// - `plan-reduction-limit`: the reduction is above `policy.planMaxReductionBp` of the
    ///   overdue amount (rounded down to the minor unit);
    /// - `plan-max-instalments`: more than `policy.planMaxInstalments` instalments;
    /// - `plan-horizon`: the last due date is after today + `policy.planHorizonMonths`
    ///   calendar months (day clamped to the month's end).
    ///
    /// `account` has its overdue amount computed as of `today`; `id` is the new "rpl_…" id
    /// and `nowMs` becomes `proposed_ms`. Older proposals are superseded by
    /// `recordProposal(_:in:nowMs:actor:requestID:)`.
    public static func propose(
        _ request: AccountsV1.ProposeRepaymentPlanRequest, account: AccountsV1.Account, today: CivilDate, nowMs: Int64,
        id: String, policy: CollectionPolicy
    ) throws(DomainError) -> AccountsV1.RepaymentPlan {
        let currency = account.principal?.currencyCode ?? ""
        let terms = try validatedTerms(request, currency: currency, today: today)
        let reduction = request.reduction?.amountMinor ?? 0

        switch account.stage {
        case .settled, .writtenOff:
            throw DomainError.refused(rule: RuleID.accountStage, "account \(account.id) is \(account.stage.protoName ?? "closed")",
                                      subjectID: account.id)
        case .current, .reminder, .remote, .field, .legal, .unspecified, .unrecognized: break
        }
        let overdue = account.overdueAmount?.amountMinor ?? 0
        guard overdue > 0 else {
            throw DomainError.refused(rule: RuleID.accountStage, "account \(account.id) has no overdue amount", subjectID: account.id)
        }
        let instalmentsTotal = terms.reduce(Int64(0)) { saturatingAdd($0, $1.amount) }
        guard saturatingAdd(instalmentsTotal, reduction) == overdue else {
            throw DomainError.refused(
                rule: RuleID.planSum,
                "instalments (\(instalmentsTotal)) plus reduction (\(reduction)) must equal the overdue amount \(overdue) \(currency)",
                subjectID: account.id)
        }
        let maxReduction = share(of: overdue, bp: policy.planMaxReductionBp)
        guard reduction <= maxReduction else {
            throw DomainError.refused(
                rule: RuleID.planReductionLimit,
                "reduction \(reduction) exceeds \(percent(policy.planMaxReductionBp)) of the overdue amount \(overdue) \(currency) "
                    + "(at most \(maxReduction))",
                subjectID: account.id)
        }
        guard terms.count <= policy.planMaxInstalments else {
            throw DomainError.refused(
                rule: RuleID.planMaxInstalments, "\(terms.count) instalments; at most \(policy.planMaxInstalments)",
                subjectID: account.id)
        }
        let latest = addingMonths(policy.planHorizonMonths, to: today)
        if let last = terms.last?.dueDate, last > latest {
            throw DomainError.refused(
                rule: RuleID.planHorizon,
                "last instalment due \(last) is after \(latest), \(policy.planHorizonMonths) months from today (\(today))",
                subjectID: account.id)
        }

        var plan = AccountsV1.RepaymentPlan()
        plan.id = id
        plan.requestId = request.requestId
        plan.status = .proposed
        plan.instalments = terms.enumerated().map { index, term in
            AccountsV1.PlanInstalment(
                sequence: Int32(index + 1), dueDate: term.dueDate.proto,
                amount: TypeV1.Money(amountMinor: term.amount, currencyCode: currency),
                amountPaid: TypeV1.Money(amountMinor: 0, currencyCode: currency), status: .pending)
        }
        plan.reduction = reduction > 0 ? TypeV1.Money(amountMinor: reduction, currencyCode: currency) : nil
        plan.overdueAmountAtProposal = TypeV1.Money(amountMinor: overdue, currencyCode: currency)
        plan.sourceVisitId = request.sourceVisitId
        plan.note = request.note
        plan.proposedMs = nowMs
        return plan
    }

    /// Adds a proposed `plan` to `account`: every older PROPOSED plan becomes SUPERSEDED
    /// ("A newer proposal supersedes an older PROPOSED plan"); an ACCEPTED plan stays active
    /// until another is accepted. Events: PLAN_PROPOSED, then PLAN_SUPERSEDED per older
    /// proposal.
    public static func recordProposal(
        _ plan: AccountsV1.RepaymentPlan, in account: AccountsV1.Account, nowMs: Int64,
        actor: TypeV1.Actor? = nil, requestID: String = ""
    ) -> PlanChange {
        var account = account
        let currency = plan.overdueAmountAtProposal?.currencyCode ?? ""
        let total = plan.instalments.reduce(Int64(0)) { saturatingAdd($0, $1.amount?.amountMinor ?? 0) }
        var events = [event(
            .planProposed, plan: plan,
            reason: "repayment plan \(plan.id) proposed: \(plan.instalments.count) "
                + "\(plan.instalments.count == 1 ? "instalment" : "instalments") totalling \(total) \(currency), "
                + "reduction \(plan.reduction?.amountMinor ?? 0)",
            actor: actor, requestID: requestID)]
        for index in account.repaymentPlans.indices where account.repaymentPlans[index].status == .proposed {
            account.repaymentPlans[index].status = .superseded
            account.repaymentPlans[index].endedMs = nowMs
            events.append(event(.planSuperseded, plan: account.repaymentPlans[index],
                                reason: "repayment plan \(account.repaymentPlans[index].id) superseded by the newer proposal \(plan.id)",
                                actor: actor, requestID: requestID))
        }
        account.repaymentPlans.append(plan)
        return PlanChange(account: account, plan: plan, events: events)
    }

    // MARK: Acceptance

    /// Checks an AcceptRepaymentPlanRequest's fields in proto field order.
    public static func validate(_ request: AccountsV1.AcceptRepaymentPlanRequest) throws(DomainError) {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc")
        try Validate.resourceID(request.planId, field: "plan_id", prefix: "rpl")
        if request.expectedVersion < 0 { throw .invalidArgument("expected_version", "must not be negative") }
    }

    /// Accepts the PROPOSED plan `planID`: it becomes ACCEPTED and the account's active plan;
    /// any previously ACCEPTED plan becomes SUPERSEDED; an account in FIELD goes back to
    /// REMOTE (field stages are paused while the plan is kept). Refusals: NOT_FOUND (no such
    /// plan on the account); FAILED_PRECONDITION `plan-state` (the plan is not PROPOSED),
    /// `plan-stale` (the overdue amount, computed as of today in `account`, differs from the
    /// amount at proposal). Events: PLAN_ACCEPTED, PLAN_SUPERSEDED per replaced plan, and
    /// STAGE_CHANGED when the account left FIELD; `actor` and `requestID` are stamped on each.
    ///
    /// The counter of unsuccessful remote contacts is left as it is: leaving FIELD for a plan
    /// is a pause, so a broken plan resumes FIELD without new remote contacts.
    public static func accept(
        _ planID: String, account: AccountsV1.Account, nowMs: Int64, actor: TypeV1.Actor? = nil, requestID: String = ""
    ) throws(DomainError) -> PlanChange {
        var account = account
        guard let index = account.repaymentPlans.firstIndex(where: { $0.id == planID }) else {
            throw DomainError.notFound("plan \(planID) not found on account \(account.id)")
        }
        let proposed = account.repaymentPlans[index]
        guard proposed.status == .proposed else {
            throw DomainError.refused(
                rule: RuleID.planState,
                "plan \(planID) is \(proposed.status.protoName ?? "in an unknown state"); only a PLAN_STATUS_PROPOSED plan can be accepted",
                subjectID: planID)
        }
        let overdueNow = account.overdueAmount?.amountMinor ?? 0
        let overdueThen = proposed.overdueAmountAtProposal?.amountMinor ?? 0
        guard overdueNow == overdueThen else {
            throw DomainError.refused(
                rule: RuleID.planStale,
                "the overdue amount is \(overdueNow) \(account.overdueAmount?.currencyCode ?? ""), \(overdueThen) when plan \(planID) "
                    + "was proposed; propose again",
                subjectID: planID)
        }

        account.repaymentPlans[index].status = .accepted
        account.repaymentPlans[index].acceptedMs = nowMs
        let accepted = account.repaymentPlans[index]
        var events = [event(.planAccepted, plan: accepted, reason: "repayment plan \(planID) accepted",
                            actor: actor, requestID: requestID)]
        for other in account.repaymentPlans.indices where other != index && account.repaymentPlans[other].status == .accepted {
            account.repaymentPlans[other].status = .superseded
            account.repaymentPlans[other].endedMs = nowMs
            events.append(event(.planSuperseded, plan: account.repaymentPlans[other],
                                reason: "repayment plan \(account.repaymentPlans[other].id) superseded by the accepted plan \(planID)",
                                actor: actor, requestID: requestID))
        }
        account.activePlanId = planID
        if account.stage == .field {
            let change = AccountsV1.StageChange(fromStage: .field, toStage: .remote, daysPastDue: account.daysPastDue)
            let reason = "repayment plan \(planID) accepted: field visits paused while it is kept"
            account.stage = .remote
            account.stageReason = reason
            account.stageEnteredMs = nowMs
            events.append(AccountsV1.TimelineEvent(eventType: .stageChanged, reason: reason, actor: actor, requestId: requestID,
                                                   details: .stageChange(change)))
        }
        return PlanChange(account: account, plan: accepted, events: events)
    }

    // MARK: Progress

    /// An ACCEPTED plan's instalments as of `asOf` (the debtor-local date evaluated), and
    /// PLAN_BROKEN or PLAN_COMPLETED when the plan ended; any other plan is returned unchanged
    /// with no event.
    ///
    /// Counting (accounts.proto `PlanInstalment`, `PlanInstalmentStatus`): the payments
    /// received at or after acceptance (`received_ms >= accepted_ms`) are applied in plan
    /// order, so `amount_paid` of instalment k is what their total leaves after instalments
    /// 1…k-1. Instalment k is
    /// - MISSED when its due date is before `asOf` and the payments received by the end of
    ///   that date (debtor-local, `zone`) do not cover instalments 1…k — even if a later
    ///   payment covers it now: the due date passed without it being covered;
    /// - PAID when all counted payments cover instalments 1…k;
    /// - PENDING otherwise (not yet due, or due today and not yet fully paid).
    /// A MISSED instalment breaks the plan (BROKEN); every instalment PAID completes it
    /// (COMPLETED). Either way `ended_ms` = `nowMs`; the caller clears `active_plan_id` and,
    /// on completion, waives the reduction (`waiveReduction(of:in:zone:)`).
    public static func progress(
        _ plan: AccountsV1.RepaymentPlan, payments: [AccountsV1.Payment], asOf: CivilDate, zone: TimeZone, nowMs: Int64
    ) -> (plan: AccountsV1.RepaymentPlan, event: AccountsV1.TimelineEventType?) {
        guard plan.status == .accepted else { return (plan, nil) }
        let counted: [(date: CivilDate, amount: Int64)] = payments
            .filter { $0.receivedMs >= plan.acceptedMs }
            .map { (date: CivilDate.today(in: zone, nowMs: $0.receivedMs), amount: max(0, $0.amount?.amountMinor ?? 0)) }
        let total = counted.reduce(Int64(0)) { saturatingAdd($0, $1.amount) }

        var updated = plan
        var coveredBefore: Int64 = 0
        var missed = false
        var allPaid = true
        for index in updated.instalments.indices {
            let amount = max(0, updated.instalments[index].amount?.amountMinor ?? 0)
            let coveredThrough = saturatingAdd(coveredBefore, amount)
            let applied = min(amount, max(0, total - coveredBefore))
            let currency = updated.instalments[index].amount?.currencyCode ?? ""
            updated.instalments[index].amountPaid = TypeV1.Money(amountMinor: applied, currencyCode: currency)
            let status: AccountsV1.PlanInstalmentStatus
            if let due = updated.instalments[index].dueDate.flatMap(CivilDate.init), due < asOf,
               counted.reduce(Int64(0), { $1.date <= due ? saturatingAdd($0, $1.amount) : $0 }) < coveredThrough {
                status = .missed
            } else if total >= coveredThrough {
                status = .paid
            } else {
                status = .pending
            }
            updated.instalments[index].status = status
            if status == .missed { missed = true }
            if status != .paid { allPaid = false }
            coveredBefore = coveredThrough
        }
        if missed {
            updated.status = .broken
            updated.endedMs = nowMs
            return (updated, .planBroken)
        }
        if allPaid {
            updated.status = .completed
            updated.endedMs = nowMs
            return (updated, .planCompleted)
        }
        return (updated, nil)
    }

    /// Waives a completed plan's reduction (accounts.proto `PlanStatus.PLAN_STATUS_COMPLETED`:
    /// "the reduction (if any) is waived"): the unpaid remainders of the instalments that
    /// were overdue at the proposal (due before its debtor-local date), oldest first, each
    /// marked WAIVED while its whole remainder fits in what is left of the reduction. Adds
    /// the amount waived to `waived_amount` and returns it (0 without a reduction).
    ///
    /// Payments are allocated oldest first, so once the plan's instalments are paid the
    /// remainders of those instalments are exactly the reduction (less any payment beyond
    /// the plan). A remainder larger than what is left of the reduction is not waived in
    /// part: it stays owed.
    @discardableResult
    public static func waiveReduction(
        of plan: AccountsV1.RepaymentPlan, in account: inout AccountsV1.Account, zone: TimeZone
    ) -> Int64 {
        var remaining = max(0, plan.reduction?.amountMinor ?? 0)
        guard remaining > 0 else { return 0 }
        let proposalDate = CivilDate.today(in: zone, nowMs: plan.proposedMs)
        let order = account.instalments.indices.sorted { a, b in
            let dueA = account.instalments[a].dueDate.flatMap(CivilDate.init)
            let dueB = account.instalments[b].dueDate.flatMap(CivilDate.init)
            if dueA == dueB { return account.instalments[a].sequence < account.instalments[b].sequence }
            guard let dueA else { return false }
            guard let dueB else { return true }
            return dueA < dueB
        }
        var waived: Int64 = 0
        for index in order {
            guard let due = account.instalments[index].dueDate.flatMap(CivilDate.init), due < proposalDate else { break }
            let open = PaymentAllocation.unpaid(account.instalments[index])
            guard open > 0 else { continue }
            guard open <= remaining else { break }
            account.instalments[index].status = .waived
            remaining -= open
            waived += open
        }
        if waived > 0 {
            let currency = account.principal?.currencyCode ?? plan.reduction?.currencyCode ?? ""
            let before = account.waivedAmount?.amountMinor ?? 0
            account.waivedAmount = TypeV1.Money(amountMinor: saturatingAdd(before, waived), currencyCode: currency)
        }
        return waived
    }

    // MARK: Helpers

    /// One validated instalment term.
    struct Term: Sendable, Hashable {
        var dueDate: CivilDate
        var amount: Int64
    }

    /// The request's terms after checking every field in proto field order.
    static func validatedTerms(
        _ request: AccountsV1.ProposeRepaymentPlanRequest, currency: String?, today: CivilDate?
    ) throws(DomainError) -> [Term] {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc")
        if request.expectedVersion < 0 { throw .invalidArgument("expected_version", "must not be negative") }
        guard !request.instalments.isEmpty else { throw .invalidArgument("instalments", "required") }
        var terms: [Term] = []
        terms.reserveCapacity(request.instalments.count)
        for (index, entry) in request.instalments.enumerated() {
            let field = "instalments[\(index)]"
            let due = try Validate.date(entry.dueDate, field: "\(field).due_date")
            if let previous = terms.last {
                guard due > previous.dueDate else {
                    throw .invalidArgument("\(field).due_date", "must be after instalments[\(index - 1)].due_date")
                }
            } else if let today, due < today {
                throw .invalidArgument("\(field).due_date", "must not be before today (\(today))")
            }
            let amount = try Validate.money(entry.amount, field: "\(field).amount", currency: currency, allowZero: false)
            terms.append(Term(dueDate: due, amount: amount))
        }
        if request.reduction != nil {
            _ = try Validate.money(request.reduction, field: "reduction", currency: currency, allowZero: true)
        }
        if !request.sourceVisitId.isEmpty {
            try Validate.resourceID(request.sourceVisitId, field: "source_visit_id", prefix: "vis")
        }
        try Validate.text(request.note, field: "note", min: 0, max: maxNoteLength)
        return terms
    }

    static func event(
        _ type: AccountsV1.TimelineEventType, plan: AccountsV1.RepaymentPlan, reason: String, actor: TypeV1.Actor?, requestID: String
    ) -> AccountsV1.TimelineEvent {
        AccountsV1.TimelineEvent(eventType: type, reason: reason, actor: actor, requestId: requestID, details: .repaymentPlan(plan))
    }

    /// `bp` basis points of `amount`, rounded down, without overflow for `bp` in 0...10000.
    static func share(of amount: Int64, bp: Int) -> Int64 {
        let basis = Int64(max(0, bp))
        return amount / 10_000 * basis + amount % 10_000 * basis / 10_000
    }

    /// Basis points for people: 2000 → "20 %", 1250 → "12.5 %".
    static func percent(_ bp: Int) -> String {
        let whole = bp / 100, fraction = bp % 100
        guard fraction != 0 else { return "\(whole) %" }
        let digits = fraction % 10 == 0 ? "\(fraction / 10)" : (fraction < 10 ? "0\(fraction)" : "\(fraction)")
        return "\(whole).\(digits) %"
    }

    /// `date` plus `months` calendar months, the day clamped to the end of the target month
    /// (2024-01-31 + 1 = 2024-02-29; 2024-02-29 + 24 = 2026-02-28).
    static func addingMonths(_ months: Int, to date: CivilDate) -> CivilDate {
        // Walk month by month from the first of `date`'s month by whole days: total, also
        // outside `CivilDate.validYears` (the failable initialiser's range).
        var first = date.adding(days: 1 - date.day)
        var year = date.year, month = date.month
        var remaining = max(-120_000, min(120_000, months))
        while remaining > 0 {
            first = first.adding(days: CivilDate.daysInMonth(year: year, month: month))
            (year, month) = month == 12 ? (year + 1, 1) : (year, month + 1)
            remaining -= 1
        }
        while remaining < 0 {
            (year, month) = month == 1 ? (year - 1, 12) : (year, month - 1)
            first = first.adding(days: -CivilDate.daysInMonth(year: year, month: month))
            remaining += 1
        }
        return first.adding(days: min(date.day, CivilDate.daysInMonth(year: year, month: month)) - 1)
    }

    static func saturatingAdd(_ a: Int64, _ b: Int64) -> Int64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? (b > 0 ? .max : .min) : sum
    }
}
