import Foundation
import Models
import RPCWire
import Testing
import Validation
@testable import AccountsService

@Suite("Promises to pay and repayment plans: requests, rules, outcomes")
struct PromisePlanTests {
    typealias F = CollectionFixtures

    static let today = F.date(2024, 3, 5)
    static let now = F.ms(today, 10)
    static let promiseID = "ptp_01HZY3V9Q6X1M8N2B4C7D5E0FG"
    static let planID = "rpl_01HZY3V9Q6X1M8N2B4C7D5E0FG"
    static let olderPlanID = "rpl_01HZY3V9Q6X1M8N2B4C7D5E0FA"

    /// The rule id of a refusal (FAILED_PRECONDITION "rule-id: detail" at the edge), after
    /// checking it is one.
    static func rule(_ error: DomainError?) -> String? {
        guard case .refusal(let rule, _, _)? = error else { return nil }
        return rule
    }

    // MARK: Promises: the request

    /// REMOTE, 600.00 CNY outstanding (300.00 overdue since 2024-01-31), balances as of today.
    static func promiseAccount(stage: AccountsV1.Stage = .remote) -> AccountsV1.Account {
        F.account(stage: stage, asOf: today)
    }

    static var promiseRequest: AccountsV1.RecordPromiseToPayRequest {
        AccountsV1.RecordPromiseToPayRequest(
            requestId: "req-ptp-1", accountId: F.accountID, amount: F.cny(10_000), promisedDate: F.date(2024, 3, 10).proto,
            note: "will pay after payday")
    }

    static func makePromise(_ request: AccountsV1.RecordPromiseToPayRequest,
                            account: AccountsV1.Account = promiseAccount()) throws(DomainError) -> AccountsV1.PromiseToPay {
        try PromiseRules.make(request, account: account, today: today, nowMs: now, id: promiseID, policy: .defaults)
    }

    @Test("a valid request makes a PENDING promise")
    func makesPromise() throws {
        var request = Self.promiseRequest
        request.sourceVisitId = "vis_01HZY3V9Q6X1M8N2B4C7D5E0FG"
        let promise = try Self.makePromise(request)
        #expect(promise == AccountsV1.PromiseToPay(
            id: Self.promiseID, requestId: "req-ptp-1", amount: F.cny(10_000), promisedDate: F.date(2024, 3, 10).proto,
            sourceVisitId: "vis_01HZY3V9Q6X1M8N2B4C7D5E0FG", status: .pending, amountPaid: F.cny(0), createdMs: Self.now,
            note: "will pay after payday"))
    }

    @Test("request validation names the exact field")
    func promiseValidation() {
        func expectInvalid(_ field: String, _ problem: String, _ change: (inout AccountsV1.RecordPromiseToPayRequest) -> Void) {
            var request = Self.promiseRequest
            change(&request)
            #expect(throws: DomainError.invalidArgument(field, problem)) { _ = try Self.makePromise(request) }
        }
        expectInvalid("request_id", "required") { $0.requestId = "" }
        expectInvalid("account_id", "not a valid acc_ id") { $0.accountId = "acc_1" }
        expectInvalid("expected_version", "must not be negative") { $0.expectedVersion = -1 }
        expectInvalid("amount", "required") { $0.amount = nil }
        expectInvalid("amount.amount_minor", "must be greater than 0") { $0.amount = F.cny(0) }
        expectInvalid("amount.amount_minor", "must not be negative") { $0.amount = F.cny(-5) }
        expectInvalid("amount.currency_code", "must be CNY, the account's currency") {
            $0.amount = TypeV1.Money(amountMinor: 100, currencyCode: "USD")
        }
        expectInvalid("promised_date", "required") { $0.promisedDate = nil }
        expectInvalid("promised_date", "not a valid date: 2023-02-29") { $0.promisedDate = TypeV1.Date(year: 2023, month: 2, day: 29) }
        expectInvalid("source_visit_id", "not a valid vis_ id") { $0.sourceVisitId = "visit-7" }
        expectInvalid("source_contact_attempt_id", "not a valid cta_ id") { $0.sourceContactAttemptId = "vis_01HZY3V9Q6X1M8N2B4C7D5E0FG" }
        expectInvalid("note", "must be at most 500 characters") { $0.note = String(repeating: "字", count: 501) }
        // Several mistakes: the first in field order is reported.
        expectInvalid("amount", "required") { $0.amount = nil; $0.note = String(repeating: "x", count: 501) }
    }

    @Test("account-stage: no promises on CURRENT, SETTLED or WRITTEN_OFF accounts", arguments: [
        (AccountsV1.Stage.current, false), (.reminder, true), (.remote, true), (.field, true), (.legal, true),
        (.settled, false), (.writtenOff, false),
    ])
    func promiseStage(stage: AccountsV1.Stage, allowed: Bool) throws {
        let account = Self.promiseAccount(stage: stage)
        if allowed {
            _ = try Self.makePromise(Self.promiseRequest, account: account)
        } else {
            let error = #expect(throws: DomainError.self) { _ = try Self.makePromise(Self.promiseRequest, account: account) }
            #expect(Self.rule(error) == "account-stage")
            #expect(error?.description == "account-stage: account \(F.accountID) is \(stage.protoName ?? ""); promises are recorded in "
                + "STAGE_REMINDER, STAGE_REMOTE, STAGE_FIELD or STAGE_LEGAL")
        }
    }

    @Test("promise-amount: at most the outstanding amount")
    func promiseAmount() throws {
        var request = Self.promiseRequest
        request.amount = F.cny(60_000)
        _ = try Self.makePromise(request)
        request.amount = F.cny(60_001)
        let error = #expect(throws: DomainError.self) { _ = try Self.makePromise(request) }
        #expect(Self.rule(error) == "promise-amount")
        #expect(error?.description == "promise-amount: promised 60001 exceeds the outstanding amount 60000 CNY")
    }

    @Test("promise-horizon: from today to today + 30 days, both included", arguments: [
        (-1, false), (0, true), (1, true), (30, true), (31, false), (365, false),
    ])
    func promiseHorizon(daysAhead: Int, allowed: Bool) throws {
        var request = Self.promiseRequest
        request.promisedDate = Self.today.adding(days: daysAhead).proto
        if allowed {
            #expect(try Self.makePromise(request).promisedDate == Self.today.adding(days: daysAhead).proto)
        } else {
            let error = #expect(throws: DomainError.self) { _ = try Self.makePromise(request) }
            #expect(Self.rule(error) == "promise-horizon")
        }
    }

    @Test("promise-horizon messages name the dates; the horizon is configuration")
    func promiseHorizonMessages() throws {
        var request = Self.promiseRequest
        request.promisedDate = F.date(2024, 3, 4).proto
        let early = #expect(throws: DomainError.self) { _ = try Self.makePromise(request) }
        #expect(early?.description == "promise-horizon: promised_date 2024-03-04 is before today (2024-03-05)")
        request.promisedDate = F.date(2024, 4, 5).proto   // 31 days ahead (March has 31 days)
        let late = #expect(throws: DomainError.self) { _ = try Self.makePromise(request) }
        #expect(late?.description == "promise-horizon: promised_date 2024-04-05 is more than 30 days after today (2024-03-05); "
            + "the latest allowed is 2024-04-04")
        let longer = CollectionPolicy(promiseHorizonDays: 31)
        _ = try PromiseRules.make(request, account: Self.promiseAccount(), today: Self.today, nowMs: Self.now, id: Self.promiseID,
                                  policy: longer)
    }

    // MARK: Promises: the outcome

    static func payment(_ amount: Int64, at receivedMs: Int64) -> AccountsV1.Payment {
        AccountsV1.Payment(id: "pay_\(receivedMs)", amount: F.cny(amount), receivedMs: receivedMs)
    }

    static var pendingPromise: AccountsV1.PromiseToPay {
        AccountsV1.PromiseToPay(id: promiseID, amount: F.cny(10_000), promisedDate: F.date(2024, 3, 10).proto, status: .pending,
                                amountPaid: F.cny(0), createdMs: F.ms(today, 10))
    }

    @Test("kept as soon as the payments since its creation reach the amount")
    func keptEarly() throws {
        let payments = [Self.payment(6_000, at: F.ms(F.date(2024, 3, 6))), Self.payment(4_000, at: F.ms(F.date(2024, 3, 7)))]
        #expect(PromiseRules.resolve(Self.pendingPromise, payments: [payments[0]], asOf: F.date(2024, 3, 6), zone: F.zone, nowMs: 1) == nil)
        let kept = PromiseRules.resolve(Self.pendingPromise, payments: payments, asOf: F.date(2024, 3, 7), zone: F.zone, nowMs: 77)
        #expect(kept?.status == .kept)
        #expect(kept?.amountPaid == F.cny(10_000))
        #expect(kept?.resolvedMs == 77)
        // Resolved promises never change again.
        let resolved = try #require(kept)
        #expect(PromiseRules.resolve(resolved, payments: [], asOf: F.date(2024, 4, 1), zone: F.zone, nowMs: 78) == nil)
    }

    @Test("the promised date counts to its last second, debtor-local", arguments: [
        // (local time of the paying instant, counted toward the promise)
        (CollectionFixtures.ms(PromisePlanTests.day(2024, 3, 10), 23, 59, 59), true),
        (CollectionFixtures.ms(PromisePlanTests.day(2024, 3, 11), 0, 0, 0), false),
        (CollectionFixtures.ms(PromisePlanTests.day(2024, 3, 5), 9, 59, 59), false),   // before the promise was made (10:00)
        (CollectionFixtures.ms(PromisePlanTests.day(2024, 3, 5), 10, 0, 0), true),
    ])
    func endOfPromisedDay(receivedMs: Int64, counted: Bool) {
        let payments = [Self.payment(10_000, at: receivedMs)]
        let resolved = PromiseRules.resolve(Self.pendingPromise, payments: payments, asOf: F.date(2024, 3, 11), zone: F.zone, nowMs: 9)
        #expect(resolved?.status == (counted ? AccountsV1.PromiseStatus.kept : AccountsV1.PromiseStatus.broken))
        #expect(resolved?.amountPaid == F.cny(counted ? 10_000 : 0))
    }

    @Test("the debtor's zone decides the date: 07:00 on the 11th in Shanghai is still the 10th in UTC")
    func debtorZone() throws {
        let payments = [Self.payment(10_000, at: F.ms(F.date(2024, 3, 11), 7))]
        let utc = try #require(TimeZone(identifier: "UTC"))
        #expect(PromiseRules.resolve(Self.pendingPromise, payments: payments, asOf: F.date(2024, 3, 11), zone: F.zone, nowMs: 1)?.status == .broken)
        #expect(PromiseRules.resolve(Self.pendingPromise, payments: payments, asOf: F.date(2024, 3, 11), zone: utc, nowMs: 1)?.status == .kept)
    }

    @Test("broken only once the promised date has passed")
    func brokenAfterDate() {
        let payments = [Self.payment(9_999, at: F.ms(F.date(2024, 3, 8)))]
        #expect(PromiseRules.resolve(Self.pendingPromise, payments: payments, asOf: F.date(2024, 3, 10), zone: F.zone, nowMs: 1) == nil)
        let broken = PromiseRules.resolve(Self.pendingPromise, payments: payments, asOf: F.date(2024, 3, 11), zone: F.zone, nowMs: 2)
        #expect(broken?.status == .broken)
        #expect(broken?.amountPaid == F.cny(9_999))
        #expect(broken?.resolvedMs == 2)
    }

    // MARK: Plans: the proposal

    /// REMOTE; 100.00 due 2024-01-31 and 2024-02-29 (both overdue today, 200.00) and 100.00 due
    /// 2024-06-30; balances as of today.
    static func planAccount(stage: AccountsV1.Stage = .remote, contacts: Int32 = 3) -> AccountsV1.Account {
        F.account(stage: stage, schedule: [(F.date(2024, 1, 31), 10_000), (F.date(2024, 2, 29), 10_000), (F.date(2024, 6, 30), 10_000)],
                  contacts: contacts, asOf: today)
    }

    static func term(_ date: CivilDate, _ amount: Int64) -> AccountsV1.PlanInstalmentTerm {
        AccountsV1.PlanInstalmentTerm(dueDate: date.proto, amount: F.cny(amount))
    }

    /// 80.00 on 2024-03-10 and 2024-04-10, 40.00 reduced: 200.00, the overdue amount.
    static var planRequest: AccountsV1.ProposeRepaymentPlanRequest {
        AccountsV1.ProposeRepaymentPlanRequest(
            requestId: "req-rpl-1", accountId: F.accountID,
            instalments: [term(F.date(2024, 3, 10), 8_000), term(F.date(2024, 4, 10), 8_000)], reduction: F.cny(4_000),
            note: "agreed at the door")
    }

    static func propose(_ request: AccountsV1.ProposeRepaymentPlanRequest, account: AccountsV1.Account = planAccount(),
                        policy: CollectionPolicy = .defaults, id: String = planID) throws(DomainError) -> AccountsV1.RepaymentPlan {
        try PlanRules.propose(request, account: account, today: today, nowMs: now, id: id, policy: policy)
    }

    @Test("a valid proposal makes a PROPOSED plan for the overdue amount")
    func proposes() throws {
        let plan = try Self.propose(Self.planRequest)
        #expect(plan.id == Self.planID)
        #expect(plan.requestId == "req-rpl-1")
        #expect(plan.status == .proposed)
        #expect(plan.instalments == [
            AccountsV1.PlanInstalment(sequence: 1, dueDate: F.date(2024, 3, 10).proto, amount: F.cny(8_000), amountPaid: F.cny(0), status: .pending),
            AccountsV1.PlanInstalment(sequence: 2, dueDate: F.date(2024, 4, 10).proto, amount: F.cny(8_000), amountPaid: F.cny(0), status: .pending),
        ])
        #expect(plan.reduction == F.cny(4_000))
        #expect(plan.overdueAmountAtProposal == F.cny(20_000))
        #expect(plan.proposedMs == Self.now)
        #expect(plan.acceptedMs == 0 && plan.endedMs == 0)
        #expect(plan.note == "agreed at the door")
    }

    @Test("request validation names the exact field")
    func planValidation() {
        func expectInvalid(_ field: String, _ problem: String, _ change: (inout AccountsV1.ProposeRepaymentPlanRequest) -> Void) {
            var request = Self.planRequest
            change(&request)
            #expect(throws: DomainError.invalidArgument(field, problem)) { _ = try Self.propose(request) }
        }
        expectInvalid("request_id", "must contain only [A-Za-z0-9._:-]") { $0.requestId = "req 1" }
        expectInvalid("account_id", "required") { $0.accountId = "" }
        expectInvalid("expected_version", "must not be negative") { $0.expectedVersion = -3 }
        expectInvalid("instalments", "required") { $0.instalments = [] }
        expectInvalid("instalments[0].due_date", "required") { $0.instalments[0].dueDate = nil }
        expectInvalid("instalments[0].due_date", "must not be before today (2024-03-05)") {
            $0.instalments[0].dueDate = F.date(2024, 3, 4).proto
        }
        expectInvalid("instalments[1].due_date", "not a valid date: 2024-04-31") {
            $0.instalments[1].dueDate = TypeV1.Date(year: 2024, month: 4, day: 31)
        }
        expectInvalid("instalments[2].due_date", "must be after instalments[1].due_date") {
            $0.instalments = [Self.term(F.date(2024, 3, 10), 5_000), Self.term(F.date(2024, 4, 10), 5_000),
                              Self.term(F.date(2024, 4, 10), 6_000)]
        }
        expectInvalid("instalments[1].due_date", "must be after instalments[0].due_date") {
            $0.instalments[1].dueDate = F.date(2024, 3, 9).proto
        }
        expectInvalid("instalments[1].amount", "required") { $0.instalments[1].amount = nil }
        expectInvalid("instalments[0].amount.amount_minor", "must be greater than 0") { $0.instalments[0].amount = F.cny(0) }
        expectInvalid("instalments[1].amount.currency_code", "must be CNY, the account's currency") {
            $0.instalments[1].amount = TypeV1.Money(amountMinor: 8_000, currencyCode: "HKD")
        }
        expectInvalid("reduction.amount_minor", "must not be negative") { $0.reduction = F.cny(-1) }
        expectInvalid("reduction.currency_code", "must be CNY, the account's currency") {
            $0.reduction = TypeV1.Money(amountMinor: 4_000, currencyCode: "USD")
        }
        expectInvalid("source_visit_id", "not a valid vis_ id") { $0.sourceVisitId = "vis_" }
        expectInvalid("note", "must be at most 500 characters") { $0.note = String(repeating: "n", count: 501) }
    }

    @Test("account-stage: SETTLED, WRITTEN_OFF, or nothing overdue")
    func planStage() throws {
        for stage in [AccountsV1.Stage.settled, .writtenOff] {
            let error = #expect(throws: DomainError.self) { _ = try Self.propose(Self.planRequest, account: Self.planAccount(stage: stage)) }
            #expect(Self.rule(error) == "account-stage")
        }
        let current = F.account(stage: .current, schedule: [(F.date(2024, 6, 30), 10_000)], asOf: Self.today)
        let error = #expect(throws: DomainError.self) { _ = try Self.propose(Self.planRequest, account: current) }
        #expect(error?.description == "account-stage: account \(F.accountID) has no overdue amount")
        // LEGAL accounts may still agree a plan.
        _ = try Self.propose(Self.planRequest, account: Self.planAccount(stage: .legal))
    }

    @Test("plan-sum: instalments plus reduction must equal the overdue amount, which the message states")
    func planSum() {
        var request = Self.planRequest
        request.instalments[1].amount = F.cny(7_000)
        let error = #expect(throws: DomainError.self) { _ = try Self.propose(request) }
        #expect(Self.rule(error) == "plan-sum")
        #expect(error?.description == "plan-sum: instalments (15000) plus reduction (4000) must equal the overdue amount 20000 CNY")
        request.reduction = nil
        request.instalments = [Self.term(F.date(2024, 3, 10), 20_001)]
        let over = #expect(throws: DomainError.self) { _ = try Self.propose(request) }
        #expect(Self.rule(over) == "plan-sum")
    }

    @Test("plan-reduction-limit: at most 20 % of the overdue amount by default", arguments: [
        (Int64(4_000), true), (4_001, false), (0, true),
    ])
    func planReduction(reduction: Int64, allowed: Bool) throws {
        var request = Self.planRequest
        request.reduction = F.cny(reduction)
        request.instalments = [Self.term(F.date(2024, 3, 10), 10_000), Self.term(F.date(2024, 4, 10), 10_000 - reduction)]
        if allowed {
            let plan = try Self.propose(request)
            #expect(plan.reduction == (reduction > 0 ? F.cny(reduction) : nil))
        } else {
            let error = #expect(throws: DomainError.self) { _ = try Self.propose(request) }
            #expect(error?.description == "plan-reduction-limit: reduction 4001 exceeds 20 % of the overdue amount 20000 CNY (at most 4000)")
        }
    }

    /// `count` monthly instalments from 2024-03-10 summing to 200.00.
    static func monthly(_ count: Int) -> [AccountsV1.PlanInstalmentTerm] {
        (0..<count).map { index in
            let amount = Int64(20_000 / count) + (index == count - 1 ? Int64(20_000 % count) : 0)
            return term(PlanRules.addingMonths(index, to: F.date(2024, 3, 10)), amount)
        }
    }

    @Test("plan-max-instalments: at most 24 by default")
    func planMaxInstalments() throws {
        var request = Self.planRequest
        request.reduction = nil
        request.instalments = Self.monthly(24)   // the last due 2026-02-10, inside the horizon
        #expect(try Self.propose(request).instalments.count == 24)
        request.instalments = Self.monthly(25)
        let error = #expect(throws: DomainError.self) { _ = try Self.propose(request) }
        #expect(error?.description == "plan-max-instalments: 25 instalments; at most 24")
        #expect(try Self.propose(request, policy: CollectionPolicy(planMaxInstalments: 25, planHorizonMonths: 36)).instalments.count == 25)
    }

    @Test("plan-horizon: the last due date at most 24 months ahead, month ends clamped")
    func planHorizon() throws {
        var request = Self.planRequest
        request.reduction = nil
        request.instalments = [Self.term(F.date(2026, 3, 5), 20_000)]
        _ = try Self.propose(request)
        request.instalments = [Self.term(F.date(2026, 3, 6), 20_000)]
        let error = #expect(throws: DomainError.self) { _ = try Self.propose(request) }
        #expect(error?.description == "plan-horizon: last instalment due 2026-03-06 is after 2026-03-05, 24 months from today (2024-03-05)")
    }

    @Test("calendar months: the day is clamped to the end of the month, leap years included", arguments: [
        (PromisePlanTests.day(2024, 1, 31), 1, PromisePlanTests.day(2024, 2, 29)),
        (PromisePlanTests.day(2023, 1, 31), 1, PromisePlanTests.day(2023, 2, 28)),
        (PromisePlanTests.day(2024, 2, 29), 24, PromisePlanTests.day(2026, 2, 28)),
        (PromisePlanTests.day(2024, 2, 29), 48, PromisePlanTests.day(2028, 2, 29)),
        (PromisePlanTests.day(2024, 12, 31), 2, PromisePlanTests.day(2025, 2, 28)),
        (PromisePlanTests.day(2024, 3, 5), 24, PromisePlanTests.day(2026, 3, 5)),
        (PromisePlanTests.day(2024, 3, 31), -1, PromisePlanTests.day(2024, 2, 29)),
        (PromisePlanTests.day(2024, 5, 15), 0, PromisePlanTests.day(2024, 5, 15)),
    ])
    func addingMonths(from: CivilDate, months: Int, expected: CivilDate) {
        #expect(PlanRules.addingMonths(months, to: from) == expected)
    }

    static func day(_ year: Int, _ month: Int, _ day: Int) -> CivilDate { CollectionFixtures.date(year, month, day) }

    @Test("a newer proposal supersedes an older PROPOSED plan, not the ACCEPTED one")
    func newerProposalSupersedes() throws {
        var account = Self.planAccount()
        let accepted = F.acceptedPlan(id: "rpl_01HZY3V9Q6X1M8N2B4C7D5E0F0", [(F.date(2024, 3, 6), 20_000)], acceptedMs: F.ms(F.date(2024, 3, 1)))
        var older = try Self.propose(Self.planRequest, id: Self.olderPlanID)
        older.proposedMs = Self.now - 1000
        account.repaymentPlans = [accepted, older]
        let plan = try Self.propose(Self.planRequest)
        let change = PlanRules.recordProposal(plan, in: account, nowMs: Self.now, requestID: "req-rpl-1")
        #expect(change.account.repaymentPlans.map(\.status) == [.accepted, .superseded, .proposed])
        #expect(change.account.repaymentPlans[1].endedMs == Self.now)
        #expect(change.events.map(\.eventType) == [.planProposed, .planSuperseded])
        #expect(change.events.allSatisfy { $0.requestId == "req-rpl-1" })
        #expect(change.events[1].details == .repaymentPlan(change.account.repaymentPlans[1]))
    }

    // MARK: Plans: acceptance

    static func proposed(on account: AccountsV1.Account = planAccount()) throws -> AccountsV1.Account {
        let plan = try Self.propose(Self.planRequest, account: account)
        return PlanRules.recordProposal(plan, in: account, nowMs: now).account
    }

    @Test("accepting makes the plan active and takes a FIELD account back to REMOTE")
    func accepts() throws {
        let account = try Self.proposed(on: Self.planAccount(stage: .field))
        let actor = TypeV1.Actor(role: .service, subject: "visits")
        let change = try PlanRules.accept(Self.planID, account: account, nowMs: Self.now + 5, actor: actor, requestID: "req-acc")
        #expect(change.plan.status == .accepted)
        #expect(change.plan.acceptedMs == Self.now + 5)
        #expect(change.account.activePlanId == Self.planID)
        #expect(change.account.stage == .remote)
        #expect(change.account.stageReason == "repayment plan \(Self.planID) accepted: field visits paused while it is kept")
        #expect(change.account.stageEnteredMs == Self.now + 5)
        #expect(change.account.contactSummary?.unsuccessfulRemoteContacts == 3)   // a pause keeps the count
        #expect(change.events.map(\.eventType) == [.planAccepted, .stageChanged])
        #expect(change.events[1].details == .stageChange(AccountsV1.StageChange(fromStage: .field, toStage: .remote, daysPastDue: 34)))
        #expect(change.events.allSatisfy { $0.actor == actor && $0.requestId == "req-acc" })

        // Not PROPOSED any more: plan-state.
        let error = #expect(throws: DomainError.self) { _ = try PlanRules.accept(Self.planID, account: change.account, nowMs: Self.now + 6) }
        #expect(Self.rule(error) == "plan-state")
        #expect(error?.description == "plan-state: plan \(Self.planID) is PLAN_STATUS_ACCEPTED; only a PLAN_STATUS_PROPOSED plan can be accepted")
    }

    @Test("accepting a plan supersedes the ACCEPTED one")
    func acceptSupersedes() throws {
        var account = try Self.proposed()
        let previous = F.acceptedPlan(id: Self.olderPlanID, [(F.date(2024, 3, 20), 20_000)], acceptedMs: F.ms(F.date(2024, 3, 1)))
        account.repaymentPlans.insert(previous, at: 0)
        account.activePlanId = Self.olderPlanID
        let change = try PlanRules.accept(Self.planID, account: account, nowMs: Self.now + 5)
        #expect(change.account.repaymentPlans.map(\.status) == [.superseded, .accepted])
        #expect(change.account.repaymentPlans[0].endedMs == Self.now + 5)
        #expect(change.account.activePlanId == Self.planID)
        #expect(change.account.stage == .remote)
        #expect(change.events.map(\.eventType) == [.planAccepted, .planSuperseded])
    }

    @Test("plan-stale: the overdue amount changed since the proposal; unknown plan: NOT_FOUND")
    func acceptStaleOrUnknown() throws {
        var account = try Self.proposed()
        let missing = #expect(throws: DomainError.self) { _ = try PlanRules.accept(Self.olderPlanID, account: account, nowMs: Self.now) }
        #expect(missing == .notFound("plan \(Self.olderPlanID) not found on account \(F.accountID)"))
        try F.pay(&account, 1_000, at: Self.now)
        F.withBalances(&account, asOf: Self.today)
        let error = #expect(throws: DomainError.self) { _ = try PlanRules.accept(Self.planID, account: account, nowMs: Self.now) }
        #expect(Self.rule(error) == "plan-stale")
        #expect(error?.description == "plan-stale: the overdue amount is 19000 CNY, 20000 when plan \(Self.planID) was proposed; propose again")
    }

    @Test("accept request validation names the exact field")
    func acceptValidation() {
        let valid = AccountsV1.AcceptRepaymentPlanRequest(requestId: "r1", accountId: F.accountID, planId: Self.planID)
        #expect(throws: Never.self) { try PlanRules.validate(valid) }
        var request = valid
        request.planId = "plan-1"
        #expect(throws: DomainError.invalidArgument("plan_id", "not a valid rpl_ id")) { try PlanRules.validate(request) }
        request = valid
        request.expectedVersion = -1
        #expect(throws: DomainError.invalidArgument("expected_version", "must not be negative")) { try PlanRules.validate(request) }
    }

    // MARK: Plans: progress

    static var acceptedPlan: AccountsV1.RepaymentPlan {
        F.acceptedPlan(id: planID, [(F.date(2024, 3, 10), 8_000), (F.date(2024, 4, 10), 8_000)], acceptedMs: F.ms(today, 11),
                       reduction: 4_000)
    }

    static func progress(_ payments: [AccountsV1.Payment], asOf: CivilDate)
        -> (plan: AccountsV1.RepaymentPlan, event: AccountsV1.TimelineEventType?) {
        PlanRules.progress(acceptedPlan, payments: payments, asOf: asOf, zone: F.zone, nowMs: 99)
    }

    @Test("plan instalments: pending until due, paid when covered, missed when the due date passed uncovered")
    func planProgress() {
        // Nothing paid, due today: pending.
        var result = Self.progress([], asOf: F.date(2024, 3, 10))
        #expect(result.event == nil)
        #expect(result.plan.instalments.map(\.status) == [.pending, .pending])

        // Paid by the last second of the due date (debtor-local): kept.
        result = Self.progress([Self.payment(8_000, at: F.ms(F.date(2024, 3, 10), 23, 59, 59))], asOf: F.date(2024, 3, 11))
        #expect(result.event == nil)
        #expect(result.plan.status == .accepted)
        #expect(result.plan.instalments.map(\.status) == [.paid, .pending])

        // Partly paid in time, the rest applied in plan order.
        result = Self.progress([Self.payment(5_000, at: F.ms(F.date(2024, 3, 8))), Self.payment(5_000, at: F.ms(F.date(2024, 3, 9)))],
                               asOf: F.date(2024, 3, 9))
        #expect(result.plan.instalments.map(\.amountPaid) == [F.cny(8_000), F.cny(2_000)])
        #expect(result.plan.instalments.map(\.status) == [.paid, .pending])

        // Paid a second late: missed, and the plan is broken even though it is covered now.
        result = Self.progress([Self.payment(8_000, at: F.ms(F.date(2024, 3, 11), 0, 0, 0))], asOf: F.date(2024, 3, 11))
        #expect(result.event == .planBroken)
        #expect(result.plan.status == .broken)
        #expect(result.plan.endedMs == 99)
        #expect(result.plan.instalments.map(\.status) == [.missed, .pending])
        #expect(result.plan.instalments[0].amountPaid == F.cny(8_000))

        // Payments before acceptance do not count.
        result = Self.progress([Self.payment(16_000, at: F.ms(Self.today, 10, 59, 59))], asOf: F.date(2024, 3, 11))
        #expect(result.event == .planBroken)

        // Everything paid: completed, whatever the date.
        result = Self.progress([Self.payment(16_000, at: F.ms(F.date(2024, 3, 6)))], asOf: F.date(2024, 3, 6))
        #expect(result.event == .planCompleted)
        #expect(result.plan.status == .completed)
        #expect(result.plan.instalments.map(\.status) == [.paid, .paid])

        // Not ACCEPTED: unchanged.
        var proposed = Self.acceptedPlan
        proposed.status = .proposed
        let unchanged = PlanRules.progress(proposed, payments: [], asOf: F.date(2025, 1, 1), zone: F.zone, nowMs: 1)
        #expect(unchanged.plan == proposed)
        #expect(unchanged.event == nil)
    }

    @Test("completion waives the reduction on the instalments overdue at the proposal only")
    func waiver() throws {
        var account = Self.planAccount()
        account.repaymentPlans = [Self.acceptedPlan]
        try F.pay(&account, 16_000, at: F.ms(F.date(2024, 3, 6)))
        var completed = Self.acceptedPlan
        completed.status = .completed
        let waived = PlanRules.waiveReduction(of: completed, in: &account, zone: F.zone)
        #expect(waived == 4_000)
        #expect(account.instalments.map(\.status) == [.paid, .waived, .unpaid])
        #expect(account.waivedAmount == F.cny(4_000))
        F.withBalances(&account, asOf: F.date(2024, 3, 7))
        #expect(account.outstandingAmount == F.cny(10_000))   // the June instalment is still owed
        #expect(account.overdueAmount == F.cny(0))
    }
}
