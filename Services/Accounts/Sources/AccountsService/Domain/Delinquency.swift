import Models
import Validation

/// The days-past-due thresholds of the stage engine and the delinquency buckets
/// (docs/DOMAIN.md ("Domain rules"); accounts.proto `Stage`, `Bucket`). Every number is
/// configuration.
public struct DelinquencyPolicy: Sendable, Hashable {
    /// First DPD of the REMINDER stage (early warning, automated reminders). Default 1.
    public var reminderFromDPD: Int
    /// First DPD of the REMOTE stage (SMS and phone collection). Default 8.
    public var remoteFromDPD: Int
    /// First DPD at which an account in REMOTE may enter FIELD (given enough recorded
    /// unsuccessful remote contacts). Default 31.
    public var fieldFromDPD: Int
    /// Last DPD of bucket M1 (M1 = 1...30). Default 30.
    public var m1MaxDPD: Int
    /// Last DPD of bucket M2 (M2 = 31...60). Default 60.
    public var m2MaxDPD: Int
    /// Last DPD of bucket M3 (M3 = 61...90; M4+ above). Default 90.
    public var m3MaxDPD: Int

    public init(
        reminderFromDPD: Int = 1,
        remoteFromDPD: Int = 8,
        fieldFromDPD: Int = 31,
        m1MaxDPD: Int = 30,
        m2MaxDPD: Int = 60,
        m3MaxDPD: Int = 90
    ) {
        self.reminderFromDPD = reminderFromDPD
        self.remoteFromDPD = remoteFromDPD
        self.fieldFromDPD = fieldFromDPD
        self.m1MaxDPD = m1MaxDPD
        self.m2MaxDPD = m2MaxDPD
        self.m3MaxDPD = m3MaxDPD
    }

    /// Reminder from DPD 1, remote from 8, field from 31; buckets M1 1-30, M2 31-60,
    /// M3 61-90, M4+ 91 and more.
    public static var defaults: DelinquencyPolicy { DelinquencyPolicy() }

    /// The bucket of `daysPastDue`: CURRENT for 0 (or less), then M1, M2, M3, M4+.
    public func bucket(daysPastDue: Int) -> AccountsV1.Bucket {
        switch daysPastDue {
        case ...0: return .current
        case ...m1MaxDPD: return .m1
        case ...m2MaxDPD: return .m2
        case ...m3MaxDPD: return .m3
        default: return .m4Plus
        }
    }
}

/// A stage with the reason it was chosen, as recorded on the account's timeline.
public struct StageDecision: Sendable, Hashable {
    public var stage: AccountsV1.Stage
    /// For people, e.g. "opened with 12 days past due (remote collection from 8)".
    public var reason: String

    public init(stage: AccountsV1.Stage, reason: String) {
        self.stage = stage
        self.reason = reason
    }
}

/// Where an account stands on a given date: what is still owed, what is overdue, for how
/// many days, and in which bucket (accounts.proto `Account` fields 10-14).
public struct Delinquency: Sendable, Equatable {
    /// Still owed: the unpaid part of every instalment that is neither PAID nor WAIVED.
    public var outstandingMinor: Int64
    /// The unpaid part of the instalments due before the as-of date.
    public var overdueMinor: Int64
    /// The as-of date minus the oldest unpaid due date before it; 0 when nothing is overdue.
    public var daysPastDue: Int
    /// The bucket of `daysPastDue`.
    public var bucket: AccountsV1.Bucket
    /// Due date of the oldest instalment with something unpaid (due or not yet due); nil
    /// when nothing is unpaid.
    public var oldestUnpaidDueDate: CivilDate?

    public init(outstandingMinor: Int64, overdueMinor: Int64, daysPastDue: Int, bucket: AccountsV1.Bucket, oldestUnpaidDueDate: CivilDate?) {
        self.outstandingMinor = outstandingMinor
        self.overdueMinor = overdueMinor
        self.daysPastDue = daysPastDue
        self.bucket = bucket
        self.oldestUnpaidDueDate = oldestUnpaidDueDate
    }

    /// The delinquency of a schedule as of `asOf` (the debtor-local "today").
    ///
    /// An instalment is unpaid while `amount_due - amount_paid > 0` and its status is not
    /// PAID or WAIVED. It is overdue from the day after its due date: one due today is not
    /// yet overdue (accounts.proto `Instalment.due_date`). Days past due count from the
    /// oldest unpaid instalment that is overdue.
    public static func compute(instalments: [AccountsV1.Instalment], asOf: CivilDate, policy: DelinquencyPolicy) -> Delinquency {
        var outstanding: Int64 = 0
        var overdue: Int64 = 0
        var oldestUnpaid: CivilDate?
        for instalment in instalments {
            switch instalment.status {
            case .paid, .waived: continue
            case .unspecified, .unpaid, .partiallyPaid, .unrecognized: break
            }
            // Both clamped at 0 so that the difference cannot overflow.
            let due = max(0, instalment.amountDue?.amountMinor ?? 0)
            let paid = max(0, instalment.amountPaid?.amountMinor ?? 0)
            let unpaid = due - paid
            guard unpaid > 0 else { continue }
            outstanding = saturatingAdd(outstanding, unpaid)
            guard let dueDate = instalment.dueDate.flatMap({ CivilDate($0) }) else { continue }
            if dueDate < asOf {
                overdue = saturatingAdd(overdue, unpaid)
            }
            if oldestUnpaid.map({ dueDate < $0 }) ?? true {
                oldestUnpaid = dueDate
            }
        }
        let daysPastDue = oldestUnpaid.map { $0 < asOf ? asOf.days(since: $0) : 0 } ?? 0
        return Delinquency(
            outstandingMinor: outstanding,
            overdueMinor: overdue,
            daysPastDue: daysPastDue,
            bucket: policy.bucket(daysPastDue: daysPastDue),
            oldestUnpaidDueDate: oldestUnpaid
        )
    }

    /// The stage a new account starts in (OpenAccount): CURRENT with nothing past due (or
    /// below `reminderFromDPD`), REMINDER from `reminderFromDPD`, REMOTE from
    /// `remoteFromDPD`. Never FIELD, however late: FIELD needs unsuccessful remote contacts
    /// recorded in REMOTE first (accounts.proto `Stage.STAGE_FIELD`; docs/DOMAIN.md
    /// ("Domain rules")).
    public static func openingStage(daysPastDue: Int, policy: DelinquencyPolicy) -> StageDecision {
        if daysPastDue <= 0 {
            return StageDecision(stage: .current, reason: "opened with nothing past due")
        }
        let late = "opened with \(daysPastDue) \(daysPastDue == 1 ? "day" : "days") past due"
        if daysPastDue < policy.reminderFromDPD {
            return StageDecision(stage: .current, reason: "\(late) (reminders from \(policy.reminderFromDPD))")
        }
        if daysPastDue < policy.remoteFromDPD {
            return StageDecision(stage: .reminder, reason: "\(late) (reminders from \(policy.reminderFromDPD))")
        }
        return StageDecision(stage: .remote, reason: "\(late) (remote collection from \(policy.remoteFromDPD))")
    }

    private static func saturatingAdd(_ a: Int64, _ b: Int64) -> Int64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? (b > 0 ? .max : .min) : sum
    }
}
