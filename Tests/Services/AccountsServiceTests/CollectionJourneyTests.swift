import Foundation
import Models
import RPC
import RPCWire
import Testing
import Validation
@testable import AccountsService

/// One account through collection over gRPC: remote contacts under the rule pack, the stage
/// engine, visit candidates, a promise, a plan that pauses field visits, legal and write-off
/// preconditions, and a recovery after write-off.
@Suite("A collection journey over gRPC", .serialized)
struct CollectionJourneyTests {
    static let day: Int64 = 86_400_000

    static func date(_ civil: CivilDate) -> TypeV1.Date { civil.proto }
    static func cny(_ amount: Int64) -> TypeV1.Money { TypeV1.Money(amountMinor: amount, currencyCode: "CNY") }

    @Test("contacts → FIELD → candidate → promise → plan pauses FIELD → legal/write-off rules → recovery", .timeLimit(.minutes(1)))
    func journey() async throws {
        let harness = try await AccountsHarness()
        let platform = try await harness.metadata(.platform)
        let service = try await harness.metadata(.service)
        let account = try await harness.openAccount()
        #expect(account.stage == .remote && account.daysPastDue == 38)
        let now = harness.clock.now  // 08:00 in Shanghai

        func contact(_ id: String, at ms: Int64, outcome: AccountsV1.ContactOutcome = .noAnswer) async throws(RPCError) -> AccountsV1.Account {
            try await harness.client.unary(AccountsV1.AccountsService.recordContactAttempt, AccountsV1.RecordContactAttemptRequest(
                requestId: id, accountId: account.id, channel: .phone, outcome: outcome, attemptedMs: ms), metadata: service)
        }
        // 07:00 debtor-local: refused by cn-2026 contact hours, naming the rule and the pack.
        let early = await #expect(throws: RPCError.self) { _ = try await contact("c0", at: now - 3_600_000) }
        #expect(early?.code == .failedPrecondition)
        #expect(early?.message.hasPrefix("contact-hours:") == true, "\(early?.message ?? "")")
        let refusal = try TypeV1.RpcStatus(decoding: try #require(early?.details)).details.first
        #expect(refusal?.typeUrl == "type.googleapis.com/doorstep.type.v1.Refusal")
        #expect(try TypeV1.Refusal(decoding: refusal?.value ?? []).rulePackId == "cn-2026")
        // A phone outcome on an SMS: INVALID_ARGUMENT naming the field.
        let mismatch = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(AccountsV1.AccountsService.recordContactAttempt, AccountsV1.RecordContactAttemptRequest(
                requestId: "cx", accountId: account.id, channel: .sms, outcome: .noAnswer, attemptedMs: now), metadata: service)
        }
        #expect(mismatch?.message.hasPrefix("outcome:") == true)
        var contacted = account
        for n in 1...3 { contacted = try await contact("c\(n)", at: now + Int64(n) * 60_000) }
        #expect(contacted.contactSummary?.unsuccessfulRemoteContacts == 3)
        #expect(contacted.contactSummary?.callAttemptsToday == 3)
        // The contact factor now shows in the risk reasons: 0 of 3 reached the debtor.
        #expect(contacted.risk?.factors.contains { $0.code == .contactSuccess } == true)

        // The stage engine: DPD 38 and 3 unsuccessful remote contacts → FIELD; a second run changes nothing.
        let run = try await harness.client.unary(AccountsV1.AccountsService.evaluateStages,
                                                 AccountsV1.EvaluateStagesRequest(requestId: "eval-1"), metadata: service)
        #expect(run.accountsEvaluated == 1)
        #expect(run.transitions == [AccountsV1.StageTransitionCount(fromStage: .remote, toStage: .field, accounts: 1)])
        let again = try await harness.client.unary(AccountsV1.AccountsService.evaluateStages,
                                                   AccountsV1.EvaluateStagesRequest(requestId: "eval-2"), metadata: service)
        #expect(again.transitions.isEmpty)
        let future = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(AccountsV1.AccountsService.evaluateStages, AccountsV1.EvaluateStagesRequest(
                requestId: "eval-3", asOfDate: TypeV1.Date(year: 2027, month: 1, day: 1)), metadata: service)
        }
        #expect(future?.message == "as_of_date: after the service clock's date")
        var field = try await harness.client.unary(AccountsV1.AccountsService.getAccount,
                                                   AccountsV1.GetAccountRequest(accountId: account.id), metadata: platform)
        #expect(field.stage == .field)
        #expect(field.stageReason == "DPD 38 and 3 unsuccessful remote contacts")

        // A visit candidate in its region, masked, ranked.
        let candidates = try await harness.client.unary(AccountsV1.AccountsService.listVisitCandidates,
                                                        AccountsV1.ListVisitCandidatesRequest(regionCode: "310115"), metadata: service)
        #expect(candidates.candidates.map(\.accountId) == [account.id])
        #expect(candidates.candidates.first?.phoneMasked == "138****5678")
        #expect(candidates.candidates.first?.rank == 1)
        #expect(candidates.candidates.first?.address?.location != nil)
        let none = try await harness.client.unary(AccountsV1.AccountsService.listVisitCandidates,
                                                  AccountsV1.ListVisitCandidatesRequest(regionCode: "110105"), metadata: service)
        #expect(none.candidates.isEmpty)
        let noRegion = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(AccountsV1.AccountsService.listVisitCandidates,
                                               AccountsV1.ListVisitCandidatesRequest(), metadata: service)
        }
        #expect(noRegion?.message == "region_code: required")

        // A promise within the horizon; one beyond it is refused.
        let today = CivilDate.today(in: TimeZone(identifier: "Asia/Shanghai")!, nowMs: now)
        let promised = try await harness.client.unary(AccountsV1.AccountsService.recordPromiseToPay, AccountsV1.RecordPromiseToPayRequest(
            requestId: "ptp-1", accountId: account.id, amount: Self.cny(50_000), promisedDate: Self.date(today.adding(days: 5))),
            metadata: service)
        #expect(promised.promises.first?.status == .pending)
        let tooFar = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(AccountsV1.AccountsService.recordPromiseToPay, AccountsV1.RecordPromiseToPayRequest(
                requestId: "ptp-2", accountId: account.id, amount: Self.cny(50_000), promisedDate: Self.date(today.adding(days: 31))),
                metadata: service)
        }
        #expect(tooFar?.message.hasPrefix("promise-horizon:") == true)

        // A plan for the overdue 2,000.00 CNY; accepting it pauses FIELD.
        let wrongSum = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(AccountsV1.AccountsService.proposeRepaymentPlan, AccountsV1.ProposeRepaymentPlanRequest(
                requestId: "plan-0", accountId: account.id,
                instalments: [AccountsV1.PlanInstalmentTerm(dueDate: Self.date(today.adding(days: 10)), amount: Self.cny(150_000))]),
                metadata: service)
        }
        #expect(wrongSum?.message.hasPrefix("plan-sum:") == true)
        let proposed = try await harness.client.unary(AccountsV1.AccountsService.proposeRepaymentPlan, AccountsV1.ProposeRepaymentPlanRequest(
            requestId: "plan-1", accountId: account.id, instalments: [
                AccountsV1.PlanInstalmentTerm(dueDate: Self.date(today.adding(days: 10)), amount: Self.cny(100_000)),
                AccountsV1.PlanInstalmentTerm(dueDate: Self.date(today.adding(days: 40)), amount: Self.cny(100_000)),
            ]), metadata: service)
        let plan = try #require(proposed.repaymentPlans.last)
        #expect(plan.status == .proposed)
        let accepted = try await harness.client.unary(AccountsV1.AccountsService.acceptRepaymentPlan, AccountsV1.AcceptRepaymentPlanRequest(
            requestId: "accept-1", accountId: account.id, planId: plan.id), metadata: service)
        #expect(accepted.activePlanId == plan.id)
        #expect(accepted.stage == .remote)
        let paused = try await harness.client.unary(AccountsV1.AccountsService.listVisitCandidates,
                                                    AccountsV1.ListVisitCandidatesRequest(regionCode: "310115"), metadata: service)
        #expect(paused.candidates.isEmpty)

        // Legal and write-off need more days past due.
        let legal = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(AccountsV1.AccountsService.referToLegal, AccountsV1.ReferToLegalRequest(
                requestId: "legal-1", accountId: account.id, reason: "no payment"), metadata: platform)
        }
        #expect(legal?.message.hasPrefix("legal-referral-dpd:") == true, "\(legal?.message ?? "")")
        let early2 = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(AccountsV1.AccountsService.writeOff, AccountsV1.WriteOffRequest(
                requestId: "wo-1", accountId: account.id, reason: "uncollectable"), metadata: platform)
        }
        #expect(early2?.message.hasPrefix("write-off-dpd:") == true)

        // 200 days on, nothing paid: the promise and the plan broke; write-off is allowed.
        harness.clock.set(now + 200 * Self.day)
        let later = try await harness.client.unary(AccountsV1.AccountsService.evaluateStages,
                                                   AccountsV1.EvaluateStagesRequest(requestId: "eval-4"), metadata: service)
        #expect(later.promisesBroken == 1)
        #expect(later.plansBroken == 1)
        field = try await harness.client.unary(AccountsV1.AccountsService.getAccount,
                                               AccountsV1.GetAccountRequest(accountId: account.id), metadata: platform)
        #expect(field.daysPastDue == 238)
        #expect(field.bucket == .m4Plus)
        // The broken plan resumed the stage rules: back in FIELD, now referable to litigation.
        #expect(field.stage == .field, "\(field.stage)")
        let referred = try await harness.client.unary(AccountsV1.AccountsService.referToLegal, AccountsV1.ReferToLegalRequest(
            requestId: "legal-2", accountId: account.id, reason: "no payment after 238 days", lawFirm: "Fangda"), metadata: platform)
        #expect(referred.stage == .legal)
        #expect(referred.legalReferral?.outstandingAtReferral == Self.cny(300_000))
        #expect(referred.legalReferral?.referredBy?.role == .platform)
        let legalCandidates = try await harness.client.unary(AccountsV1.AccountsService.listVisitCandidates,
                                                             AccountsV1.ListVisitCandidatesRequest(regionCode: "310115"), metadata: service)
        #expect(legalCandidates.candidates.isEmpty, "no field activity in LEGAL")
        let written = try await harness.client.unary(AccountsV1.AccountsService.writeOff, AccountsV1.WriteOffRequest(
            requestId: "wo-2", accountId: account.id, reason: "uncollectable"), metadata: platform)
        #expect(written.stage == .writtenOff)
        #expect(written.writeOff?.amount == Self.cny(300_000))
        let timeline = try await harness.client.unary(AccountsV1.AccountsService.getAccountTimeline, AccountsV1.GetAccountTimelineRequest(
            accountId: account.id, eventTypes: [.stageChanged]), metadata: platform)
        #expect(timeline.events.compactMap { event -> AccountsV1.Stage? in
            if case .stageChange(let change) = event.details { return change.toStage } else { return nil }
        } == [.remote, .field, .remote, .field, .legal, .writtenOff])
        // A later payment is recorded as a recovery; the stage stays WRITTEN_OFF.
        let recovered = try await harness.pay(written, 300_000, requestID: "recovery")
        #expect(recovered.stage == .writtenOff)
        #expect(recovered.outstandingAmount?.amountMinor == 0)
        await harness.close()
    }
}
