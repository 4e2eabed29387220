import Foundation
import Models
import Validation

/// What one stage-engine run did to one account: the account as it now stands and the
/// timeline events to append, in order (their id, sequence, occurred_ms and account_id are
/// left empty for the store to fill), with the counts EvaluateStagesResponse reports.
public struct StageEvaluation: Sendable {
    /// The account after the run.
    public var account: AccountsV1.Account
    /// PROMISE_KEPT / PROMISE_BROKEN, PLAN_BROKEN / PLAN_COMPLETED, then STAGE_CHANGED.
    public var events: [AccountsV1.TimelineEvent]
    /// The stage transitions made (0 or 1; see `StageEngine`), for grouping by from/to stage.
    public var stageChanges: [AccountsV1.StageChange]
    /// Number of stage transitions.
    public var transitions: Int
    /// Promises that became KEPT / BROKEN.
    public var promisesKept: Int
    public var promisesBroken: Int
    /// Plans broken by a missed instalment / completed.
    public var plansBroken: Int
    public var plansCompleted: Int

    public init(account: AccountsV1.Account, events: [AccountsV1.TimelineEvent] = [], stageChanges: [AccountsV1.StageChange] = [],
                transitions: Int = 0, promisesKept: Int = 0, promisesBroken: Int = 0, plansBroken: Int = 0, plansCompleted: Int = 0) {
        self.account = account
        self.events = events
        self.stageChanges = stageChanges
        self.transitions = transitions
        self.promisesKept = promisesKept
        self.promisesBroken = promisesBroken
        self.plansBroken = plansBroken
        self.plansCompleted = plansCompleted
    }
}

/// The stage engine (accounts.proto `EvaluateStages`, `Stage`; docs/DOMAIN.md
/// ("Domain rules")): evaluates one account as of a debtor-local date. Pure and deterministic: the service loads the
/// account, persists the result, appends the events and recomputes the risk score.
///
/// One run, in order:
/// 1. PENDING promises are resolved (`PromiseRules.resolve`): KEPT as soon as the payments
///    since their creation reach the amount, BROKEN once the promised date has passed;
///    `amount_paid` of those still pending is brought up to date.
/// 2. The ACCEPTED plan progresses (`PlanRules.progress`): a missed instalment breaks it, all
///    instalments paid complete it (its reduction is waived); either way it stops being the
///    active plan.
/// 3. Balances, days past due, bucket and oldest unpaid due date are recomputed as of the
///    date (`Delinquency.compute`).
/// 4. The stage, at most one transition per run:
///    - SETTLED and WRITTEN_OFF never change; LEGAL changes only to SETTLED.
///    - Nothing outstanding → SETTLED ("paid in full").
///    - FIELD: days past due below the field threshold cure it to the stage they call for;
///      otherwise, while an accepted plan is kept, it goes back to REMOTE (paused).
///    - CURRENT, REMINDER, REMOTE: days past due below the stage's threshold cure it back
///      (CURRENT below `reminderFromDPD`, REMINDER below `remoteFromDPD`).
///    - An active hold stops here: no stage advances while any hold stands (cures, settling
///      and the plan pause still apply).
///    - Days past due at or above a threshold advance the account straight to the stage
///      they call for, as ONE transition with the days past due and the threshold in its
///      reason (CURRENT → REMOTE at DPD 12 is one STAGE_CHANGED event, "DPD 12 (remote
///      collection from 8)"), the way OpenAccount places a new account: the timeline then
///      shows the stages the account was really in.
///    - REMOTE → FIELD only from REMOTE (never in the same run as entering REMOTE), when days
///      past due reach `fieldFromDPD` AND `unsuccessfulRemoteContacts` reach
///      `fieldMinUnsuccessfulRemoteContacts` AND no accepted plan is being kept.
///    Entering REMOTE from below resets `contact_summary.unsuccessful_remote_contacts` to 0
///    (the counter runs "since the account entered REMOTE"); leaving FIELD for REMOTE does
///    not (a pause or a cure keeps the contacts already made).
///
/// Idempotent: evaluating the result again for the same date (with the counter it now
/// holds) yields no events and no change. Accounts already evaluated for a later date are
/// for the caller to skip. The account can change without an event (balances, days past due,
/// `amount_paid` of pending promises and plan instalments): the caller persists it when it
/// differs from the input, and bumps `version` and `updated_ms` then.
public enum StageEngine {
    /// Who the engine's events are recorded as: ROLE_SYSTEM, subject "stage-engine".
    public static var actor: TypeV1.Actor { TypeV1.Actor(role: .system, subject: "stage-engine") }

    /// Evaluates `account` as of `asOf` (the debtor-local date; the debtor's zone is
    /// `account.debtor_time_zone`, UTC when unknown). `nowMs` stamps resolutions, plan ends
    /// and `stage_entered_ms`. `unsuccessfulRemoteContacts` is the number of unsuccessful
    /// remote contacts recorded since the account entered REMOTE.
    public static func evaluate(
        _ account: AccountsV1.Account, asOf: CivilDate, nowMs: Int64, delinquency policyDPD: DelinquencyPolicy,
        policy: CollectionPolicy, unsuccessfulRemoteContacts: Int
    ) -> StageEvaluation {
        var evaluation = StageEvaluation(account: account)
        let zone = TimeZone(identifier: account.debtorTimeZone) ?? .gmt
        let actor = Self.actor

        resolvePromises(&evaluation, asOf: asOf, zone: zone, nowMs: nowMs, actor: actor)
        let completedPlan = progressPlans(&evaluation, asOf: asOf, zone: zone, nowMs: nowMs, actor: actor)

        let delinquency = Delinquency.compute(instalments: evaluation.account.instalments, asOf: asOf, policy: policyDPD)
        apply(delinquency, to: &evaluation.account, asOf: asOf)

        let planKept = evaluation.account.repaymentPlans.first { $0.status == .accepted }
        let onHold = evaluation.account.onHold || evaluation.account.holds.contains { $0.active }
        if let decision = nextStage(
            stage: evaluation.account.stage, delinquency: delinquency, keptPlanID: planKept?.id, completedPlan: completedPlan,
            onHold: onHold, unsuccessfulRemoteContacts: unsuccessfulRemoteContacts, delinquencyPolicy: policyDPD, policy: policy) {
            let change = AccountsV1.StageChange(fromStage: evaluation.account.stage, toStage: decision.stage,
                                                daysPastDue: Int32(clamping: delinquency.daysPastDue))
            if decision.stage == .remote, StageCure.rank(change.fromStage) < StageCure.rank(.remote) {
                evaluation.account.contactSummary?.unsuccessfulRemoteContacts = 0
            }
            evaluation.account.stage = decision.stage
            evaluation.account.stageReason = decision.reason
            evaluation.account.stageEnteredMs = nowMs
            evaluation.events.append(AccountsV1.TimelineEvent(
                eventType: .stageChanged, reason: decision.reason, actor: actor, details: .stageChange(change)))
            evaluation.stageChanges.append(change)
            evaluation.transitions += 1
        }
        return evaluation
    }

    /// The stage transition `stage` makes as of `delinquency` (step 4 of `StageEngine`), or
    /// nil when it stays. `keptPlanID` is the ACCEPTED plan still being kept, if any;
    /// `completedPlan` a plan that completed in this run (named in the SETTLED reason).
    public static func nextStage(
        stage: AccountsV1.Stage, delinquency: Delinquency, keptPlanID: String?, completedPlan: AccountsV1.RepaymentPlan? = nil,
        onHold: Bool, unsuccessfulRemoteContacts: Int, delinquencyPolicy: DelinquencyPolicy, policy: CollectionPolicy
    ) -> StageDecision? {
        switch stage {
        case .settled, .writtenOff, .unspecified, .unrecognized: return nil
        case .legal, .current, .reminder, .remote, .field: break
        }
        if delinquency.outstandingMinor <= 0 {
            let reason = completedPlan.map { "paid in full: repayment plan \($0.id) completed" } ?? "paid in full"
            return StageDecision(stage: .settled, reason: reason)
        }
        if stage == .legal { return nil }

        let dpd = delinquency.daysPastDue
        let called = ladder(daysPastDue: dpd, policy: delinquencyPolicy)
        if stage == .field {
            if dpd < delinquencyPolicy.fieldFromDPD {
                return StageDecision(stage: called.stage, reason: "cured: DPD \(dpd) (field visits from \(delinquencyPolicy.fieldFromDPD))")
            }
            if let keptPlanID {
                return StageDecision(stage: .remote, reason: "repayment plan \(keptPlanID) is being kept: field visits paused")
            }
            return nil
        }
        if StageCure.rank(called.stage) < StageCure.rank(stage) {
            let threshold = stage == .remote
                ? "remote collection from \(delinquencyPolicy.remoteFromDPD)"
                : "reminders from \(delinquencyPolicy.reminderFromDPD)"
            return StageDecision(stage: called.stage, reason: "cured: DPD \(dpd) (\(threshold))")
        }
        if onHold { return nil }
        if StageCure.rank(called.stage) > StageCure.rank(stage) {
            return called
        }
        if stage == .remote, dpd >= delinquencyPolicy.fieldFromDPD,
           unsuccessfulRemoteContacts >= policy.fieldMinUnsuccessfulRemoteContacts, keptPlanID == nil {
            return StageDecision(
                stage: .field,
                reason: "DPD \(dpd) and \(unsuccessfulRemoteContacts) unsuccessful remote \(unsuccessfulRemoteContacts == 1 ? "contact" : "contacts")")
        }
        return nil
    }

    /// The stage days past due alone call for, below FIELD: CURRENT, REMINDER from
    /// `reminderFromDPD`, REMOTE from `remoteFromDPD`, with the reason an advance records.
    static func ladder(daysPastDue dpd: Int, policy: DelinquencyPolicy) -> StageDecision {
        if dpd >= policy.remoteFromDPD {
            return StageDecision(stage: .remote, reason: "DPD \(dpd) (remote collection from \(policy.remoteFromDPD))")
        }
        if dpd >= policy.reminderFromDPD, dpd > 0 {
            return StageDecision(stage: .reminder, reason: "DPD \(dpd) (reminders from \(policy.reminderFromDPD))")
        }
        return StageDecision(stage: .current, reason: dpd == 0 ? "nothing past due" : "DPD \(dpd) (reminders from \(policy.reminderFromDPD))")
    }

    /// Sets the account's delinquency fields (accounts.proto `Account` fields 10-15) from
    /// `delinquency`, amounts in the account's currency.
    public static func apply(_ delinquency: Delinquency, to account: inout AccountsV1.Account, asOf: CivilDate) {
        let currency = account.principal?.currencyCode ?? ""
        account.outstandingAmount = TypeV1.Money(amountMinor: delinquency.outstandingMinor, currencyCode: currency)
        account.overdueAmount = TypeV1.Money(amountMinor: delinquency.overdueMinor, currencyCode: currency)
        account.daysPastDue = Int32(clamping: delinquency.daysPastDue)
        account.bucket = delinquency.bucket
        account.oldestUnpaidDueDate = delinquency.oldestUnpaidDueDate?.proto
        account.asOfDate = asOf.proto
    }

    // MARK: Steps

    /// Step 1: resolves PENDING promises, brings `amount_paid` of the others still pending up
    /// to date, and records PROMISE_KEPT / PROMISE_BROKEN.
    static func resolvePromises(_ evaluation: inout StageEvaluation, asOf: CivilDate, zone: TimeZone, nowMs: Int64,
                                actor: TypeV1.Actor) {
        let payments = evaluation.account.payments
        for index in evaluation.account.promises.indices where evaluation.account.promises[index].status == .pending {
            let promise = evaluation.account.promises[index]
            guard let resolved = PromiseRules.resolve(promise, payments: payments, asOf: asOf, zone: zone, nowMs: nowMs) else {
                let paid = PromiseRules.amountPaid(toward: promise, payments: payments, zone: zone)
                if paid != promise.amountPaid?.amountMinor ?? 0 {
                    evaluation.account.promises[index].amountPaid =
                        TypeV1.Money(amountMinor: paid, currencyCode: promise.amount?.currencyCode ?? "")
                }
                continue
            }
            evaluation.account.promises[index] = resolved
            let amount = resolved.amount?.amountMinor ?? 0
            let currency = resolved.amount?.currencyCode ?? ""
            let paid = resolved.amountPaid?.amountMinor ?? 0
            let date = resolved.promisedDate.flatMap(CivilDate.init).map { "\($0)" } ?? "?"
            let kept = resolved.status == .kept
            let reason = kept
                ? "promise \(resolved.id) of \(amount) \(currency) by \(date) kept: \(paid) paid"
                : "promise \(resolved.id) of \(amount) \(currency) by \(date) broken: \(paid) paid by the promised date"
            evaluation.events.append(AccountsV1.TimelineEvent(
                eventType: kept ? .promiseKept : .promiseBroken, reason: reason, actor: actor, details: .promise(resolved)))
            if kept { evaluation.promisesKept += 1 } else { evaluation.promisesBroken += 1 }
        }
    }

    /// Step 2: progresses every ACCEPTED plan, records PLAN_BROKEN / PLAN_COMPLETED, clears
    /// `active_plan_id` when the active plan ended and waives a completed plan's reduction.
    /// Returns the plan completed in this run, if any.
    static func progressPlans(_ evaluation: inout StageEvaluation, asOf: CivilDate, zone: TimeZone, nowMs: Int64,
                              actor: TypeV1.Actor) -> AccountsV1.RepaymentPlan? {
        var completed: AccountsV1.RepaymentPlan?
        let payments = evaluation.account.payments
        for index in evaluation.account.repaymentPlans.indices where evaluation.account.repaymentPlans[index].status == .accepted {
            let (plan, outcome) = PlanRules.progress(
                evaluation.account.repaymentPlans[index], payments: payments, asOf: asOf, zone: zone, nowMs: nowMs)
            evaluation.account.repaymentPlans[index] = plan
            guard let outcome else { continue }
            if evaluation.account.activePlanId == plan.id { evaluation.account.activePlanId = "" }
            let reason: String
            if outcome == .planBroken {
                let missed = plan.instalments.first { $0.status == .missed }
                let due = missed?.dueDate.flatMap(CivilDate.init).map { "\($0)" } ?? "?"
                reason = "repayment plan \(plan.id) broken: instalment \(missed?.sequence ?? 0) of "
                    + "\(missed?.amount?.amountMinor ?? 0) \(missed?.amount?.currencyCode ?? "") due \(due) missed"
                evaluation.plansBroken += 1
            } else {
                let waived = PlanRules.waiveReduction(of: plan, in: &evaluation.account, zone: zone)
                reason = "repayment plan \(plan.id) completed: \(plan.instalments.count) "
                    + "\(plan.instalments.count == 1 ? "instalment" : "instalments") paid"
                    + (waived > 0 ? ", \(waived) \(plan.reduction?.currencyCode ?? "") waived" : "")
                evaluation.plansCompleted += 1
                completed = plan
            }
            evaluation.events.append(AccountsV1.TimelineEvent(
                eventType: outcome, reason: reason, actor: actor, details: .repaymentPlan(plan)))
        }
        return completed
    }
}
