import Compliance
import Models
import Testing
import Validation
@testable import AccountsService

@Suite("Payments: oldest instalment first, overpayment refused, stages cured")
struct PaymentRulesTests {
    static func date(_ y: Int, _ m: Int, _ d: Int) -> CivilDate { CivilDate(year: y, month: m, day: d)! }
    static func cny(_ amount: Int64) -> TypeV1.Money { TypeV1.Money(amountMinor: amount, currencyCode: "CNY") }

    /// Three instalments of 100 due Jan 31, Feb 29 (leap year), Mar 31 2024; the first partly paid (30).
    static var schedule: [AccountsV1.Instalment] {
        [
            AccountsV1.Instalment(sequence: 1, dueDate: date(2024, 1, 31).proto, amountDue: cny(100), amountPaid: cny(30), status: .partiallyPaid),
            AccountsV1.Instalment(sequence: 2, dueDate: date(2024, 2, 29).proto, amountDue: cny(100), amountPaid: cny(0), status: .unpaid),
            AccountsV1.Instalment(sequence: 3, dueDate: date(2024, 3, 31).proto, amountDue: cny(100), amountPaid: cny(0), status: .unpaid),
        ]
    }

    @Test("a payment fills the oldest unpaid instalment first and spills into the next")
    func oldestFirst() throws {
        let (after, allocations) = try PaymentAllocation.apply(120, currency: "CNY", paidDate: Self.date(2024, 3, 5), to: Self.schedule)
        #expect(allocations == [
            AccountsV1.PaymentAllocation(instalmentSequence: 1, amount: Self.cny(70)),
            AccountsV1.PaymentAllocation(instalmentSequence: 2, amount: Self.cny(50)),
        ])
        #expect(after[0].status == .paid && after[0].amountPaid == Self.cny(100) && after[0].paidDate == Self.date(2024, 3, 5).proto)
        #expect(after[1].status == .partiallyPaid && after[1].amountPaid == Self.cny(50) && after[1].paidDate == nil)
        #expect(after[2] == Self.schedule[2])
        // Days past due now run from Feb 29 (the oldest unpaid), across the leap day.
        let delinquency = Delinquency.compute(instalments: after, asOf: Self.date(2024, 3, 5), policy: .defaults)
        #expect(delinquency.daysPastDue == 5)
        #expect(delinquency.overdueMinor == 50)
        #expect(delinquency.outstandingMinor == 150)
    }

    @Test("more than the outstanding amount is refused naming the rule and the amount; exactly all of it is accepted")
    func overpayment() throws {
        let error = #expect(throws: DomainError.self) {
            _ = try PaymentAllocation.apply(271, currency: "CNY", paidDate: Self.date(2024, 3, 5), to: Self.schedule)
        }
        #expect(error == .refused(rule: RuleID.paymentExceedsOutstanding, "payment of 271 exceeds the outstanding amount 270 CNY"))
        #expect(error?.description == "payment-exceeds-outstanding: payment of 271 exceeds the outstanding amount 270 CNY")
        let (after, allocations) = try PaymentAllocation.apply(270, currency: "CNY", paidDate: Self.date(2024, 4, 1), to: Self.schedule)
        #expect(allocations.map(\.instalmentSequence) == [1, 2, 3])
        #expect(after.allSatisfy { $0.status == .paid })
    }

    @Test("waived and paid instalments are skipped")
    func skipsClosedInstalments() throws {
        var schedule = Self.schedule
        schedule[0].status = .waived
        let (_, allocations) = try PaymentAllocation.apply(10, currency: "CNY", paidDate: Self.date(2024, 3, 5), to: schedule)
        #expect(allocations == [AccountsV1.PaymentAllocation(instalmentSequence: 2, amount: Self.cny(10))])
    }

    static func delinquency(dpd: Int, outstanding: Int64 = 100) -> Delinquency {
        Delinquency(outstandingMinor: outstanding, overdueMinor: dpd > 0 ? outstanding : 0, daysPastDue: dpd,
                    bucket: DelinquencyPolicy.defaults.bucket(daysPastDue: dpd), oldestUnpaidDueDate: nil)
    }

    @Test("cure: back to the stage the new days past due call for, never forward", arguments: [
        (AccountsV1.Stage.remote, 0, AccountsV1.Stage?.some(.current)),
        (.remote, 5, .reminder),
        (.remote, 8, nil),
        (.reminder, 0, .current),
        (.reminder, 3, nil),
        (.current, 0, nil),
        (.field, 30, .remote),
        (.field, 31, nil),
        (.field, 3, .reminder),
        (.legal, 0, nil),
        (.writtenOff, 0, nil),
    ])
    func cure(stage: AccountsV1.Stage, dpd: Int, expected: AccountsV1.Stage?) {
        let decision = StageCure.afterPayment(stage: stage, delinquency: Self.delinquency(dpd: dpd), policy: .defaults)
        #expect(decision?.stage == expected)
        if expected != nil { #expect(decision?.reason == "payment cured the account to \(dpd) days past due") }
    }

    @Test("paying everything settles from any stage but SETTLED and WRITTEN_OFF (terminal: a recovery)", arguments: [
        AccountsV1.Stage.current, .reminder, .remote, .field, .legal,
    ])
    func settles(stage: AccountsV1.Stage) {
        let decision = StageCure.afterPayment(stage: stage, delinquency: Self.delinquency(dpd: 0, outstanding: 0), policy: .defaults)
        #expect(decision == StageDecision(stage: .settled, reason: "paid in full"))
        #expect(StageCure.afterPayment(stage: .settled, delinquency: Self.delinquency(dpd: 0, outstanding: 0), policy: .defaults) == nil)
        #expect(StageCure.afterPayment(stage: .writtenOff, delinquency: Self.delinquency(dpd: 0, outstanding: 0), policy: .defaults) == nil)
    }
}
