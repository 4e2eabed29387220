import Compliance
import Models
import Validation

/// How a payment is applied to an account's schedule: to the oldest instalment with
/// something unpaid first, then the next (accounts.proto `RecordPayment`; docs/DOMAIN.md
/// ("Domain rules")). Pure: the service persists the result.
public enum PaymentAllocation {
    /// The schedule after applying `amountMinor` received on `paidDate`, and the parts applied
    /// per instalment (sequence, amount). An amount above what is outstanding is refused with
    /// `payment-exceeds-outstanding`, naming the outstanding amount; nothing is applied.
    public static func apply(
        _ amountMinor: Int64, currency: String, paidDate: CivilDate, to instalments: [AccountsV1.Instalment]
    ) throws(DomainError) -> (instalments: [AccountsV1.Instalment], allocations: [AccountsV1.PaymentAllocation]) {
        precondition(amountMinor > 0, "validated by the caller")
        let outstanding = instalments.reduce(Int64(0)) { $0 + unpaid($1) }
        guard amountMinor <= outstanding else {
            throw DomainError.refused(rule: RuleID.paymentExceedsOutstanding,
                                      "payment of \(amountMinor) exceeds the outstanding amount \(outstanding) \(currency)")
        }
        var schedule = instalments
        var allocations: [AccountsV1.PaymentAllocation] = []
        var remaining = amountMinor
        // Oldest first: by due date, then sequence (the schedule is kept in that order).
        for index in schedule.indices.sorted(by: { order(schedule[$0], schedule[$1]) }) where remaining > 0 {
            let open = unpaid(schedule[index])
            guard open > 0 else { continue }
            let applied = min(open, remaining)
            remaining -= applied
            let paid = (schedule[index].amountPaid?.amountMinor ?? 0) + applied
            schedule[index].amountPaid = TypeV1.Money(amountMinor: paid, currencyCode: currency)
            if paid == schedule[index].amountDue?.amountMinor ?? 0 {
                schedule[index].status = .paid
                schedule[index].paidDate = paidDate.proto
            } else {
                schedule[index].status = .partiallyPaid
            }
            allocations.append(AccountsV1.PaymentAllocation(
                instalmentSequence: schedule[index].sequence, amount: TypeV1.Money(amountMinor: applied, currencyCode: currency)))
        }
        return (schedule, allocations)
    }

    /// What is still owed on one instalment (nothing for PAID or WAIVED).
    static func unpaid(_ instalment: AccountsV1.Instalment) -> Int64 {
        switch instalment.status {
        case .paid, .waived: return 0
        default: return max(0, (instalment.amountDue?.amountMinor ?? 0) - (instalment.amountPaid?.amountMinor ?? 0))
        }
    }

    private static func order(_ a: AccountsV1.Instalment, _ b: AccountsV1.Instalment) -> Bool {
        let dueA = a.dueDate.flatMap(CivilDate.init) ?? CivilDate(dayNumber: .max / 2)
        let dueB = b.dueDate.flatMap(CivilDate.init) ?? CivilDate(dayNumber: .max / 2)
        return dueA == dueB ? a.sequence < b.sequence : dueA < dueB
    }
}

/// The stage an account moves to after a payment (accounts.proto `Stage`): paid in full →
/// SETTLED (except WRITTEN_OFF, which is terminal); otherwise a payment can only cure — move the account back to the stage its new
/// days past due call for (CURRENT at 0, REMINDER from 1, REMOTE from 8), never forward.
/// FIELD stays FIELD while days past due remain at or above the field threshold; LEGAL and
/// WRITTEN_OFF are not cured by a partial payment.
public enum StageCure {
    public static func afterPayment(
        stage: AccountsV1.Stage, delinquency: Delinquency, policy: DelinquencyPolicy
    ) -> StageDecision? {
        if delinquency.outstandingMinor == 0 {
            // WRITTEN_OFF is terminal: later payments are recoveries, the stage stays.
            return stage == .settled || stage == .writtenOff ? nil : StageDecision(stage: .settled, reason: "paid in full")
        }
        switch stage {
        case .legal, .writtenOff, .settled, .unspecified, .unrecognized: return nil
        case .field where delinquency.daysPastDue >= policy.fieldFromDPD: return nil
        case .current, .reminder, .remote, .field: break
        }
        let target = Delinquency.openingStage(daysPastDue: delinquency.daysPastDue, policy: policy).stage
        guard rank(target) < rank(stage) else { return nil }
        return StageDecision(stage: target, reason: "payment cured the account to \(delinquency.daysPastDue) days past due")
    }

    /// Order of the collection stages CURRENT < REMINDER < REMOTE < FIELD.
    static func rank(_ stage: AccountsV1.Stage) -> Int {
        switch stage {
        case .current: return 0
        case .reminder: return 1
        case .remote: return 2
        case .field: return 3
        default: return 4
        }
    }
}
