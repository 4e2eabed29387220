import Compliance
import Foundation
import Models
import RPC
import RPCWire
import Testing
import Validation
@testable import AccountsService

/// A visited debtor is not visited again at once: an account whose debtor promised to pay,
/// or that was visited within the rule pack's cool-down, is not a visit candidate
/// (`ListVisitCandidates`) but is listed as deferred with its rules, until the promised date
/// has passed and the cool-down has run out. The last visit is what visits reported to
/// accounts (a VISIT contact attempt, as the visits outbox delivers it).
@Suite("Visit candidates: deferred after a visit, a promise or a kept plan", .serialized)
struct VisitCandidateDeferralTests {
    static let day: Int64 = 86_400_000
    static let shanghai = TimeZone(identifier: "Asia/Shanghai")!

    /// An account of `harness` in FIELD (38 days past due, three undelivered reminders, the
    /// stage engine run).
    static func fieldAccount(_ harness: AccountsHarness, _ suffix: String) async throws -> AccountsV1.Account {
        let service = try await harness.metadata(.service)
        let opened = try await harness.openAccount(suffix)
        for attempt in 1...3 {
            _ = try await harness.client.unary(AccountsV1.AccountsService.recordContactAttempt, AccountsV1.RecordContactAttemptRequest(
                requestId: "sms-\(suffix)-\(attempt)", accountId: opened.id, channel: .sms, outcome: .smsUndelivered,
                attemptedMs: harness.clock.now + Int64(attempt) * 60_000 - 10 * 60_000), metadata: service)
        }
        _ = try await harness.client.unary(AccountsV1.AccountsService.evaluateStages,
                                           AccountsV1.EvaluateStagesRequest(requestId: "eval-\(suffix)"), metadata: service)
        let account = try await harness.client.unary(AccountsV1.AccountsService.getAccount,
                                                     AccountsV1.GetAccountRequest(accountId: opened.id), metadata: service)
        try #require(account.stage == .field, "\(account.stageReason)")
        return account
    }

    /// What visits delivers to accounts for a visit: the VISIT contact attempt at check-in
    /// time and, for a promise made at the door, the promise (role service, visit request ids).
    static func visit(_ harness: AccountsHarness, _ account: AccountsV1.Account, outcome: AccountsV1.ContactOutcome = .visitMetDebtor,
                      promisedDate: CivilDate? = nil) async throws -> (visitID: String, atMs: Int64) {
        let service = try await harness.metadata(.service)
        let visitID = IDGenerator.make(prefix: "vis", nowMs: harness.clock.now)
        let at = harness.clock.now - 30 * 60_000
        _ = try await harness.client.unary(AccountsV1.AccountsService.recordContactAttempt, AccountsV1.RecordContactAttemptRequest(
            requestId: "\(visitID).contact", accountId: account.id, channel: .visit, outcome: outcome, attemptedMs: at,
            visitId: visitID), metadata: service)
        if let promisedDate {
            _ = try await harness.client.unary(AccountsV1.AccountsService.recordPromiseToPay, AccountsV1.RecordPromiseToPayRequest(
                requestId: "\(visitID).promise", accountId: account.id, amount: TypeV1.Money(amountMinor: 10_000, currencyCode: "CNY"),
                promisedDate: promisedDate.proto, sourceVisitId: visitID), metadata: service)
        }
        return (visitID, at)
    }

    static func list(_ harness: AccountsHarness, deferred: Bool = true) async throws -> AccountsV1.ListVisitCandidatesResponse {
        try await harness.client.unary(AccountsV1.AccountsService.listVisitCandidates,
                                       AccountsV1.ListVisitCandidatesRequest(regionCode: "310115", includeDeferred: deferred),
                                       metadata: try await harness.metadata(.service))
    }

    @Test("a visit with a promise: not a candidate until the promised date has passed (and the pack's cool-down, here 2 days)",
          .timeLimit(.minutes(1)))
    func promiseAtTheDoor() async throws {
        var configuration = AccountsService.Configuration()
        configuration.rulePack.visitCoolDownDays = 2
        let harness = try await AccountsHarness(configuration: configuration)
        // 10:00 in Shanghai.
        harness.clock.set(harness.clock.now + 2 * 3_600_000)
        let account = try await Self.fieldAccount(harness, "p")
        let other = try await Self.fieldAccount(harness, "q")
        #expect(Set(try await Self.list(harness).candidates.map(\.accountId)) == [account.id, other.id])

        // Visited today (day 0); the debtor promised to pay by day 3.
        let today = CivilDate.today(in: Self.shanghai, nowMs: harness.clock.now)
        let visit = try await Self.visit(harness, account, promisedDate: today.adding(days: 3))
        var listed = try await Self.list(harness)
        #expect(listed.candidates.map(\.accountId) == [other.id], "the visited account is no candidate")
        let deferred = try #require(listed.deferred.first)
        #expect(listed.deferred.count == 1)
        #expect(deferred.accountId == account.id)
        #expect(deferred.reasons.map(\.ruleId) == ["promise-pending", "visit-cool-down"])
        #expect(deferred.reasons[0].detail.contains(today.adding(days: 3).description), "\(deferred.reasons[0].detail)")
        #expect(deferred.reasons[1].ruleText == RulePacks.cn2026.rule(.visitCoolDown)?.text)
        #expect(!deferred.reasons[1].ruleSource.isEmpty)
        #expect(deferred.candidateFromDate == today.adding(days: 4).proto)
        // Only asked for: a plain list carries no deferred accounts.
        #expect(try await Self.list(harness, deferred: false).deferred.isEmpty)

        // Day 2: the cool-down is over, the promise still pending.
        harness.clock.set(harness.clock.now + 2 * Self.day)
        listed = try await Self.list(harness)
        #expect(listed.candidates.map(\.accountId) == [other.id])
        #expect(listed.deferred.map(\.accountId) == [account.id])
        #expect(listed.deferred.first?.reasons.map(\.ruleId) == ["promise-pending"])
        #expect(listed.deferred.first?.candidateFromDate == today.adding(days: 4).proto)

        // Day 3, the promised date itself: still pending.
        harness.clock.set(harness.clock.now + Self.day)
        #expect(try await Self.list(harness).candidates.map(\.accountId) == [other.id])

        // Day 4: the promised date has passed unpaid; the account is a candidate again, with
        // its last visit.
        harness.clock.set(harness.clock.now + Self.day)
        listed = try await Self.list(harness)
        #expect(Set(listed.candidates.map(\.accountId)) == [account.id, other.id])
        #expect(listed.deferred.isEmpty)
        #expect(listed.candidates.first { $0.accountId == account.id }?.lastVisitMs == visit.atMs)
        #expect(listed.candidates.first { $0.accountId == other.id }?.lastVisitMs == 0)
        await harness.close()
    }

    @Test("a visit without a promise: not a candidate for the default 7-day cool-down; a promise kept by payment ends its deferral",
          .timeLimit(.minutes(1)))
    func coolDownAndKeptPromise() async throws {
        let harness = try await AccountsHarness()
        harness.clock.set(harness.clock.now + 2 * 3_600_000)
        let visited = try await Self.fieldAccount(harness, "v")
        let promised = try await Self.fieldAccount(harness, "w")
        let today = CivilDate.today(in: Self.shanghai, nowMs: harness.clock.now)
        _ = try await Self.visit(harness, visited, outcome: .visitNotHome)
        // A promise taken by phone (no visit): deferred by the promise alone.
        _ = try await harness.client.unary(AccountsV1.AccountsService.recordPromiseToPay, AccountsV1.RecordPromiseToPayRequest(
            requestId: "ptp-w", accountId: promised.id, amount: TypeV1.Money(amountMinor: 10_000, currencyCode: "CNY"),
            promisedDate: today.adding(days: 10).proto), metadata: try await harness.metadata(.service))
        var listed = try await Self.list(harness)
        #expect(listed.candidates.isEmpty)
        #expect(listed.deferred.map(\.accountId) == [visited.id, promised.id].sorted())
        let coolDown = try #require(listed.deferred.first { $0.accountId == visited.id })
        #expect(coolDown.reasons.map(\.ruleId) == ["visit-cool-down"])
        #expect(coolDown.candidateFromDate == today.adding(days: 7).proto)
        #expect(listed.deferred.first { $0.accountId == promised.id }?.reasons.map(\.ruleId) == ["promise-pending"])

        // The promise is kept (paid in full): it no longer defers the account.
        harness.clock.set(harness.clock.now + 2 * 3_600_000)
        _ = try await harness.pay(promised, 10_000, requestID: "pay-w")
        // Day 6: the visited account is still cooling down; day 7 it is a candidate again.
        harness.clock.set(harness.clock.now - 2 * 3_600_000 + 6 * Self.day)
        listed = try await Self.list(harness)
        #expect(listed.deferred.map(\.accountId) == [visited.id])
        #expect(listed.candidates.map(\.accountId) == [promised.id])
        harness.clock.set(harness.clock.now + Self.day)
        listed = try await Self.list(harness)
        #expect(listed.deferred.isEmpty)
        #expect(Set(listed.candidates.map(\.accountId)) == [visited.id, promised.id])
        await harness.close()
    }

    @Test("the rules one by one: pending promise, kept plan, cool-down (0 turns it off)")
    func deferralRules() throws {
        let today = try #require(CivilDate(year: 2026, month: 3, day: 10))
        let nowMs: Int64 = 1_773_108_000_000  // 2026-03-10T10:00 Shanghai
        let cny = { (amount: Int64) in TypeV1.Money(amountMinor: amount, currencyCode: "CNY") }
        var account = AccountsV1.Account(id: "acc_1", stage: .field)
        #expect(VisitDeferral.of(account, today: today, zone: Self.shanghai, nowMs: nowMs, lastVisitMs: 0, pack: RulePacks.cn2026) == nil)

        // A pending promise for today defers until tomorrow; a broken or kept one does not.
        account.promises = [AccountsV1.PromiseToPay(id: "ptp_1", amount: cny(100), promisedDate: today.proto, status: .pending),
                            AccountsV1.PromiseToPay(id: "ptp_0", amount: cny(100), promisedDate: today.adding(days: 5).proto, status: .broken)]
        let promise = try #require(VisitDeferral.of(account, today: today, zone: Self.shanghai, nowMs: nowMs, lastVisitMs: 0,
                                                    pack: RulePacks.cn2026))
        #expect(promise.reasons.map(\.ruleId) == ["promise-pending"])
        #expect(promise.reasons.first?.subjectId == "ptp_1")
        #expect(promise.candidateFrom == today.adding(days: 1))
        #expect(VisitDeferral.of(account, today: today.adding(days: 1), zone: Self.shanghai, nowMs: nowMs + Self.day, lastVisitMs: 0,
                                 pack: RulePacks.cn2026) == nil, "a pending promise whose date has passed defers nothing")
        account.promises = []

        // An accepted plan in good standing defers with no end date; once an instalment is
        // missed it does not.
        account.activePlanId = "rpl_1"
        account.repaymentPlans = [AccountsV1.RepaymentPlan(
            id: "rpl_1", status: .accepted,
            instalments: [AccountsV1.PlanInstalment(sequence: 1, dueDate: today.adding(days: 3).proto, amount: cny(5_000))],
            acceptedMs: nowMs - Self.day)]
        let plan = try #require(VisitDeferral.of(account, today: today, zone: Self.shanghai, nowMs: nowMs, lastVisitMs: 0,
                                                 pack: RulePacks.cn2026))
        #expect(plan.reasons.map(\.ruleId) == ["plan-kept"])
        #expect(plan.candidateFrom == nil)
        #expect(VisitDeferral.of(account, today: today.adding(days: 4), zone: Self.shanghai, nowMs: nowMs + 4 * Self.day,
                                 lastVisitMs: 0, pack: RulePacks.cn2026) == nil, "a missed plan instalment ends the deferral")
        account.activePlanId = ""
        account.repaymentPlans = []

        // The cool-down counts debtor-local days from the day of the visit: visited at 23:30
        // on the 9th (Shanghai), a candidate again on the 16th.
        let lateVisit = nowMs - 10 * 3_600_000 - 30 * 60_000
        let coolDown = try #require(VisitDeferral.of(account, today: today, zone: Self.shanghai, nowMs: nowMs, lastVisitMs: lateVisit,
                                                     pack: RulePacks.cn2026))
        #expect(coolDown.reasons.map(\.ruleId) == ["visit-cool-down"])
        #expect(coolDown.candidateFrom == today.adding(days: 6))
        #expect(VisitDeferral.of(account, today: today.adding(days: 6), zone: Self.shanghai, nowMs: nowMs, lastVisitMs: lateVisit,
                                 pack: RulePacks.cn2026) == nil)
        var off = RulePacks.cn2026
        off.visitCoolDownDays = 0
        #expect(VisitDeferral.of(account, today: today, zone: Self.shanghai, nowMs: nowMs, lastVisitMs: lateVisit, pack: off) == nil)
    }
}
