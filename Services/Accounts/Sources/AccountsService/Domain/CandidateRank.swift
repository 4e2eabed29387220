import Compliance
import Foundation
import Models
import Validation

/// A FIELD account's entry in its region's visit-candidate ranking, as the store keeps it
/// (table `visit_candidates`, docs/ARCHITECTURE.md "The candidate ranking"): the figures
/// ListVisitCandidates orders and filters by, computed when the account or its contacts
/// change and by the stage engine, so a page is an index range scan.
///
/// The figures hold for a span of days: `validUntilMs` is the start of the first debtor-local
/// day on which they can differ (days past due still moving the risk score, an instalment
/// falling due); a read that finds an entry past it recomputes the entry first. Deferrals
/// (`promise-pending`, `plan-kept`, `visit-cool-down`) end at `candidateFromMs`, known in
/// advance, so no rewrite is needed when one ends.
struct CandidateRank: Sendable, Hashable {
    var accountID: String
    var debtorID: String
    var regionCode: String
    var agencyID: String
    var timeZone: String
    /// Ranking key, highest first.
    var expectedRecoveryMinor: Int64
    /// Ranking tie-break (days past due, highest first): the oldest unpaid due date when it
    /// is past, ``notOverdue`` otherwise (smaller = more days past due).
    var overdueSinceDay: Int
    var overdueMinor: Int64
    var currency: String
    var riskScore: Int32
    var riskTier: AccountsV1.RiskTier
    var paymentProbabilityBp: Int32
    var version: Int64
    var lastVisitMs: Int64
    /// When the account stops being deferred (0: not deferred; `Int64.max`: deferred with no
    /// end known, a kept plan whose every instalment is covered).
    var candidateFromMs: Int64
    /// When these figures may stop being those of the debtor's today.
    var validUntilMs: Int64

    static let notOverdue = 1 << 40
    static let never = Int64.max

    /// The entry of `stored` as of `nowMs`, or nil when it is no candidate at all (not in
    /// FIELD, or on hold). `contacts` are the account's recorded contact statistics.
    static func of(_ stored: AccountsV1.Account, contacts: ContactStats, nowMs: Int64,
                   configuration: AccountsService.Configuration) -> CandidateRank? {
        guard stored.stage == .field, !stored.onHold else { return nil }
        var account = stored
        let zone = TimeZone(identifier: account.debtorTimeZone) ?? .gmt
        let today = CivilDate.today(in: zone, nowMs: nowMs)
        AccountsService.refresh(&account, asOf: today, nowMs: nowMs, configuration: configuration, contacts: contacts)
        // A placement past its end date no longer places the entry with its agency.
        AccountsService.showPlacement(&account, today: today)
        let oldest = account.oldestUnpaidDueDate.flatMap(CivilDate.init)
        var candidateFrom: Int64 = 0
        if let deferral = VisitDeferral.of(account, today: today, zone: zone, nowMs: nowMs, lastVisitMs: contacts.lastVisitMs,
                                           pack: configuration.rulePack) {
            var from = deferral.datedUntil ?? today
            if deferral.candidateFrom == nil {
                // Kept plan: deferred until the day it would be broken with no further payment.
                guard let broken = planBreakDay(account, today: today, zone: zone, nowMs: nowMs) else {
                    return rank(account, contacts: contacts, candidateFrom: never, today: today, zone: zone,
                                oldest: oldest, configuration: configuration)
                }
                from = max(from, broken)
            }
            candidateFrom = from.startMs(in: zone)
        }
        return rank(account, contacts: contacts, candidateFrom: candidateFrom, today: today, zone: zone, oldest: oldest,
                    configuration: configuration)
    }

    private static func rank(_ account: AccountsV1.Account, contacts: ContactStats, candidateFrom: Int64, today: CivilDate,
                             zone: TimeZone, oldest: CivilDate?, configuration: AccountsService.Configuration) -> CandidateRank {
        let risk = account.risk
        var until = figuresChangeDay(account, today: today, risk: configuration.risk)
        // The day after the placement's end the entry leaves the agency's candidates.
        if let placement = account.placement, placement.state == .active, let end = placement.endDate.flatMap(CivilDate.init) {
            until = min(until, max(end.adding(days: 1), today.adding(days: 1)))
        }
        return CandidateRank(
            accountID: account.id, debtorID: account.debtorId, regionCode: account.regionCode, agencyID: account.assignedAgencyId,
            timeZone: account.debtorTimeZone, expectedRecoveryMinor: risk?.expectedRecovery?.amountMinor ?? 0,
            overdueSinceDay: account.daysPastDue > 0 ? (oldest?.dayNumber ?? notOverdue) : notOverdue,
            overdueMinor: account.overdueAmount?.amountMinor ?? 0, currency: account.principal?.currencyCode ?? "",
            riskScore: risk?.score ?? 0, riskTier: risk?.tier ?? .unspecified,
            paymentProbabilityBp: risk?.paymentProbability30dBp ?? 0, version: account.version,
            lastVisitMs: contacts.lastVisitMs, candidateFromMs: candidateFrom,
            validUntilMs: until.startMs(in: zone))
    }

    /// The first day after `today` on which the ranking figures (delinquency as of the day,
    /// hence the risk score and expected recovery) can differ with nothing recorded: the next
    /// day while days past due still move the score, else the day after the next due date.
    static func figuresChangeDay(_ account: AccountsV1.Account, today: CivilDate, risk: RiskScorecard) -> CivilDate {
        let dpd = Int(account.daysPastDue)
        if dpd > 0, dpd * risk.pointsPerDayPastDue < risk.maxDaysPastDuePoints { return today.adding(days: 1) }
        var next = today.adding(days: 3650)
        for instalment in account.instalments {
            guard let due = instalment.dueDate.flatMap(CivilDate.init) else { continue }
            let passes = due.adding(days: 1)
            if passes > today, passes < next { next = passes }
        }
        return next
    }

    /// The first day after `today` on which the accepted plan of `account` is no longer kept
    /// if no further payment arrives; nil when every instalment is already covered.
    static func planBreakDay(_ account: AccountsV1.Account, today: CivilDate, zone: TimeZone, nowMs: Int64) -> CivilDate? {
        guard let plan = account.repaymentPlans.first(where: { $0.id == account.activePlanId && $0.status == .accepted })
        else { return nil }
        let days = plan.instalments.compactMap { $0.dueDate.flatMap(CivilDate.init)?.adding(days: 1) }.filter { $0 > today }.sorted()
        for day in days where PlanRules.progress(plan, payments: account.payments, asOf: day, zone: zone, nowMs: nowMs).plan.status != .accepted {
            return day
        }
        return nil
    }

    /// Days past due as of `today` from the stored tie-break.
    func daysPastDue(today: CivilDate) -> Int {
        overdueSinceDay == Self.notOverdue ? 0 : max(0, today.dayNumber - overdueSinceDay)
    }
}

/// When the stage engine next has to look at an account (column `next_evaluation_day`): the
/// first debtor-local day on which evaluating it can do anything — resolve a promise, miss a
/// plan instalment, move a stage or a risk tier — with nothing recorded meanwhile, and for a
/// FIELD account the day its ranking figures change (the run keeps the ranking current). Every
/// recorded change (a mutation) sets it to that day itself, so the next run looks again.
/// Conservative by construction: a day listed here may turn out to change nothing; a day
/// that changes something is never missed (a test compares the streamed run with a pass
/// over every account).
enum EvaluationSchedule {
    /// Never: SETTLED and WRITTEN_OFF accounts.
    static let never = Int(Int32.max)

    /// The next day after `day` (the day `account` was just evaluated for, its delinquency
    /// and risk as of that day, with `contacts`) on which to evaluate it again.
    static func nextDay(after day: CivilDate, account: AccountsV1.Account, contacts: ContactStats, delinquency: DelinquencyPolicy,
                        risk: RiskScorecard) -> Int {
        let d = day.dayNumber
        var next = never
        func consider(_ candidate: Int) { next = min(next, max(candidate, d + 1)) }
        // A placement expires the day after its end date (AccountsService.expirePlacement),
        // whatever the stage.
        if let placement = account.placement, placement.state == .active, let end = placement.endDate.flatMap(CivilDate.init) {
            consider(end.dayNumber + 1)
        }
        if account.stage == .settled || account.stage == .writtenOff { return next }
        for promise in account.promises where promise.status == .pending {
            // Broken the day after its date (kept only by a payment, which is recorded).
            consider((promise.promisedDate.flatMap(CivilDate.init)?.dayNumber ?? d) + 1)
        }
        for plan in account.repaymentPlans where plan.status == .accepted {
            for instalment in plan.instalments {
                guard let due = instalment.dueDate.flatMap(CivilDate.init), due.dayNumber + 1 > d else { continue }
                consider(due.dayNumber + 1)
            }
        }
        for instalment in account.instalments {
            // Falling due changes the overdue amount, the on-time history and may start days past due.
            guard let due = instalment.dueDate.flatMap(CivilDate.init), due.dayNumber + 1 > d else { continue }
            consider(due.dayNumber + 1)
        }
        let dpd = Int(account.daysPastDue)
        if dpd > 0 {
            if let tierDay = tierChangeDay(after: day, account: account, contacts: contacts, delinquency: delinquency, risk: risk) {
                consider(tierDay)
            }
            if account.stage == .field { consider(CandidateRank.figuresChangeDay(account, today: day, risk: risk).dayNumber) }
            if let oldest = account.oldestUnpaidDueDate.flatMap(CivilDate.init) {
                for threshold in [delinquency.reminderFromDPD, delinquency.remoteFromDPD, delinquency.fieldFromDPD] where threshold > dpd {
                    consider(oldest.dayNumber + threshold)
                }
            }
        }
        return next
    }

    /// The first day after `day` on which days past due alone move the risk score into
    /// another tier, before the next due date (which is a day of its own) and while the
    /// days-past-due points still grow; nil when they do not.
    static func tierChangeDay(after day: CivilDate, account: AccountsV1.Account, contacts: ContactStats,
                              delinquency: DelinquencyPolicy, risk: RiskScorecard) -> Int? {
        let dpd = Int(account.daysPastDue)
        guard risk.pointsPerDayPastDue > 0, dpd * risk.pointsPerDayPastDue < risk.maxDaysPastDuePoints else { return nil }
        let asOf = Delinquency.compute(instalments: account.instalments, asOf: day, policy: delinquency)
        var inputs = RiskScorecard.inputs(of: account, delinquency: asOf, today: day, remoteAttempts: contacts.remote,
                                          connectedAttempts: contacts.connected)
        let tier = RiskScorecard.tier(score: risk.score(inputs))
        let nextDue = account.instalments.compactMap { $0.dueDate.flatMap(CivilDate.init)?.dayNumber }.filter { $0 >= day.dayNumber }.min()
        let capDays = (risk.maxDaysPastDuePoints + risk.pointsPerDayPastDue - 1) / risk.pointsPerDayPastDue - dpd
        let horizon = min(capDays, (nextDue ?? Int.max) - day.dayNumber)
        guard horizon >= 1 else { return nil }
        for ahead in 1...horizon {
            inputs.daysPastDue = dpd + ahead
            if RiskScorecard.tier(score: risk.score(inputs)) != tier { return day.dayNumber + ahead }
        }
        return nil
    }
}
