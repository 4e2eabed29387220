import Foundation
import Models
import RPCWire
import Testing
import Validation
@testable import AccountsService

/// Accounts, payments and clocks for the stage-engine, promise and plan tests. The debtor
/// lives in Asia/Shanghai (UTC+8, no daylight saving), so local times are easy to place.
enum CollectionFixtures {
    static let zone = TimeZone(identifier: "Asia/Shanghai")!
    static let accountID = "acc_01HZY3V9Q6X1M8N2B4C7D5E0FG"

    static func date(_ year: Int, _ month: Int, _ day: Int) -> CivilDate { CivilDate(year: year, month: month, day: day)! }
    static func cny(_ amount: Int64) -> TypeV1.Money { TypeV1.Money(amountMinor: amount, currencyCode: "CNY") }

    /// The instant of `hour:minute:second` local time in Asia/Shanghai on `date`.
    static func ms(_ date: CivilDate, _ hour: Int = 12, _ minute: Int = 0, _ second: Int = 0) -> Int64 {
        (Int64(date.dayNumber) * 86_400 + Int64(hour * 3600 + minute * 60 + second) - 8 * 3600) * 1000
    }

    /// 300.00 CNY due 2024-01-31 and 300.00 CNY due 2024-06-30, nothing paid.
    static let defaultSchedule: [(CivilDate, Int64)] = [(date(2024, 1, 31), 30_000), (date(2024, 6, 30), 30_000)]

    /// An account in `stage` with `schedule` unpaid, `contacts` unsuccessful remote contacts
    /// on record, and balances computed as of `asOf` when given.
    static func account(
        stage: AccountsV1.Stage, schedule: [(CivilDate, Int64)] = defaultSchedule, contacts: Int32 = 0, asOf: CivilDate? = nil
    ) -> AccountsV1.Account {
        var account = AccountsV1.Account()
        account.id = accountID
        account.debtorId = "dbt_01HZY3V9Q6X1M8N2B4C7D5E0FG"
        account.principal = cny(schedule.reduce(0) { $0 + $1.1 })
        account.openedDate = date(2023, 12, 1).proto
        account.instalments = schedule.enumerated().map { index, entry in
            AccountsV1.Instalment(sequence: Int32(index + 1), dueDate: entry.0.proto, amountDue: cny(entry.1), amountPaid: cny(0),
                                  status: .unpaid)
        }
        account.stage = stage
        account.stageReason = "set up by the test"
        account.stageEnteredMs = ms(date(2024, 1, 1))
        account.debtorTimeZone = "Asia/Shanghai"
        account.waivedAmount = cny(0)
        account.contactSummary = AccountsV1.ContactSummary(unsuccessfulRemoteContacts: contacts)
        account.version = 1
        if let asOf { withBalances(&account, asOf: asOf) }
        return account
    }

    /// Sets outstanding, overdue, days past due and bucket as of `asOf` (as the service does
    /// before calling the rules).
    static func withBalances(_ account: inout AccountsV1.Account, asOf: CivilDate) {
        StageEngine.apply(Delinquency.compute(instalments: account.instalments, asOf: asOf, policy: .defaults), to: &account, asOf: asOf)
    }

    /// Records a payment as RecordPayment does: allocated oldest first, appended to `payments`.
    static func pay(_ account: inout AccountsV1.Account, _ amount: Int64, at receivedMs: Int64) throws {
        let paidDate = CivilDate.today(in: zone, nowMs: receivedMs)
        let (schedule, allocations) = try PaymentAllocation.apply(amount, currency: "CNY", paidDate: paidDate, to: account.instalments)
        account.instalments = schedule
        account.payments.append(AccountsV1.Payment(
            id: "pay_\(account.payments.count)", amount: cny(amount), receivedMs: receivedMs,
            externalId: "ext-\(account.payments.count)", allocations: allocations, recordedMs: receivedMs))
    }

    /// One engine run as the daily job makes it (02:00 local), with the default policies and
    /// the account's own counter of unsuccessful remote contacts.
    static func evaluate(_ account: AccountsV1.Account, asOf: CivilDate, policy: CollectionPolicy = .defaults) -> StageEvaluation {
        StageEngine.evaluate(account, asOf: asOf, nowMs: ms(asOf, 2), delinquency: .defaults, policy: policy,
                             unsuccessfulRemoteContacts: Int(account.contactSummary?.unsuccessfulRemoteContacts ?? 0))
    }

    /// An ACCEPTED plan of `instalments` (due date, amount), accepted at `acceptedMs`.
    static func acceptedPlan(id: String, _ instalments: [(CivilDate, Int64)], acceptedMs: Int64, reduction: Int64 = 0) -> AccountsV1.RepaymentPlan {
        AccountsV1.RepaymentPlan(
            id: id, status: .accepted,
            instalments: instalments.enumerated().map { index, entry in
                AccountsV1.PlanInstalment(sequence: Int32(index + 1), dueDate: entry.0.proto, amount: cny(entry.1),
                                          amountPaid: cny(0), status: .pending)
            },
            reduction: reduction > 0 ? cny(reduction) : nil,
            overdueAmountAtProposal: cny(instalments.reduce(reduction) { $0 + $1.1 }),
            proposedMs: acceptedMs - 60_000, acceptedMs: acceptedMs)
    }
}

/// One row of the stage-transition table.
struct TransitionCase: Sendable {
    var from: AccountsV1.Stage
    var asOf: CivilDate
    var contacts: Int32
    var to: AccountsV1.Stage?
    var reason: String?
}

@Suite("Stage engine: transitions, holds, plans, promises, idempotence")
struct StageEngineTests {
    typealias F = CollectionFixtures

    // Due 2024-01-31 (2024 is a leap year): DPD 1 on Feb 1, 7 on Feb 7, 8 on Feb 8, 30 on
    // Mar 1 (29 days of February), 31 on Mar 2.
    static let transitions: [TransitionCase] = [
        TransitionCase(from: .current, asOf: F.date(2024, 1, 31), contacts: 0, to: nil, reason: nil),  // due today: not overdue
        TransitionCase(from: .current, asOf: F.date(2024, 2, 1), contacts: 0, to: .reminder, reason: "DPD 1 (reminders from 1)"),
        TransitionCase(from: .reminder, asOf: F.date(2024, 2, 7), contacts: 0, to: nil, reason: nil),
        TransitionCase(from: .reminder, asOf: F.date(2024, 2, 8), contacts: 0, to: .remote, reason: "DPD 8 (remote collection from 8)"),
        // Late first run: one transition straight to the stage the DPD calls for.
        TransitionCase(from: .current, asOf: F.date(2024, 2, 12), contacts: 0, to: .remote, reason: "DPD 12 (remote collection from 8)"),
        TransitionCase(from: .remote, asOf: F.date(2024, 3, 2), contacts: 3, to: .field, reason: "DPD 31 and 3 unsuccessful remote contacts"),
        TransitionCase(from: .remote, asOf: F.date(2024, 3, 1), contacts: 3, to: nil, reason: nil),   // DPD 30
        TransitionCase(from: .remote, asOf: F.date(2024, 3, 2), contacts: 2, to: nil, reason: nil),
        TransitionCase(from: .remote, asOf: F.date(2024, 4, 15), contacts: 7, to: .field, reason: "DPD 75 and 7 unsuccessful remote contacts"),
        // Never into FIELD without passing through REMOTE first, however late.
        TransitionCase(from: .current, asOf: F.date(2024, 3, 20), contacts: 5, to: .remote, reason: "DPD 49 (remote collection from 8)"),
        TransitionCase(from: .reminder, asOf: F.date(2024, 3, 20), contacts: 5, to: .remote, reason: "DPD 49 (remote collection from 8)"),
        TransitionCase(from: .field, asOf: F.date(2024, 5, 1), contacts: 0, to: nil, reason: nil),
        // Terminal and litigation stages are left alone.
        TransitionCase(from: .legal, asOf: F.date(2024, 9, 1), contacts: 9, to: nil, reason: nil),
        TransitionCase(from: .writtenOff, asOf: F.date(2024, 9, 1), contacts: 9, to: nil, reason: nil),
        TransitionCase(from: .settled, asOf: F.date(2024, 9, 1), contacts: 9, to: nil, reason: nil),
    ]

    @Test("every transition with its reason, recorded as a STAGE_CHANGED event by the system", arguments: StageEngineTests.transitions)
    func transition(_ row: TransitionCase) {
        let account = F.account(stage: row.from, contacts: row.contacts)
        let result = F.evaluate(account, asOf: row.asOf)
        let dpd = row.asOf.days(since: F.date(2024, 1, 31))
        #expect(result.account.daysPastDue == Int32(max(0, dpd)))
        #expect(result.account.asOfDate == row.asOf.proto)
        guard let to = row.to else {
            #expect(result.events.isEmpty)
            #expect(result.transitions == 0)
            #expect(result.account.stage == row.from)
            #expect(result.account.stageEnteredMs == account.stageEnteredMs)
            return
        }
        #expect(result.transitions == 1)
        #expect(result.account.stage == to)
        #expect(result.account.stageReason == row.reason)
        #expect(result.account.stageEnteredMs == F.ms(row.asOf, 2))
        let change = AccountsV1.StageChange(fromStage: row.from, toStage: to, daysPastDue: Int32(dpd))
        #expect(result.stageChanges == [change])
        #expect(result.events == [AccountsV1.TimelineEvent(
            eventType: .stageChanged, reason: row.reason ?? "", actor: TypeV1.Actor(role: .system, subject: "stage-engine"),
            details: .stageChange(change))])
        // The store fills these in.
        #expect(result.events.allSatisfy { $0.id.isEmpty && $0.sequence == 0 && $0.occurredMs == 0 && $0.accountId.isEmpty })
    }

    @Test("FIELD needs both: days past due at the threshold and enough unsuccessful remote contacts",
          arguments: [(30, Int32(2), false), (30, 3, false), (31, 2, false), (31, 3, true), (60, 2, false), (60, 4, true)])
    func fieldThresholds(dpd: Int, contacts: Int32, entersField: Bool) {
        let account = F.account(stage: .remote, contacts: contacts)
        let result = F.evaluate(account, asOf: F.date(2024, 1, 31).adding(days: dpd))
        #expect(result.account.stage == (entersField ? AccountsV1.Stage.field : AccountsV1.Stage.remote))
        if entersField {
            #expect(result.account.stageReason == "DPD \(dpd) and \(contacts) unsuccessful remote contacts")
        }
    }

    @Test("the FIELD contact threshold is configuration")
    func fieldContactsConfigurable() {
        let account = F.account(stage: .remote, contacts: 1)
        let policy = CollectionPolicy(fieldMinUnsuccessfulRemoteContacts: 1)
        let result = F.evaluate(account, asOf: F.date(2024, 3, 2), policy: policy)
        #expect(result.account.stage == .field)
        #expect(result.account.stageReason == "DPD 31 and 1 unsuccessful remote contact")
    }

    static let monthEndCases: [(CivilDate, CivilDate, Int, AccountsV1.Bucket)] = [
        (F.date(2024, 1, 31), F.date(2024, 3, 1), 30, .m1),    // leap February: 29 days
        (F.date(2024, 1, 31), F.date(2024, 3, 2), 31, .m2),
        (F.date(2023, 1, 31), F.date(2023, 3, 2), 30, .m1),    // common February: 28 days
        (F.date(2023, 1, 31), F.date(2023, 3, 3), 31, .m2),
        (F.date(2024, 2, 29), F.date(2024, 3, 1), 1, .m1),
        (F.date(2023, 12, 31), F.date(2024, 3, 30), 90, .m3),
        (F.date(2023, 12, 31), F.date(2024, 3, 31), 91, .m4Plus),
    ]

    @Test("days past due across month ends and leap years", arguments: StageEngineTests.monthEndCases)
    func monthEnds(due: CivilDate, asOf: CivilDate, dpd: Int, bucket: AccountsV1.Bucket) {
        let account = F.account(stage: .remote, schedule: [(due, 10_000), (F.date(2025, 1, 1), 10_000)])
        let result = F.evaluate(account, asOf: asOf)
        #expect(result.account.daysPastDue == Int32(dpd))
        #expect(result.account.bucket == bucket)
        #expect(result.account.oldestUnpaidDueDate == due.proto)
        #expect(result.account.overdueAmount == F.cny(10_000))
        #expect(result.account.outstandingAmount == F.cny(20_000))
    }

    @Test("a hold stops every advance; balances and days past due still update")
    func holdBlocksAdvance() {
        let hold = AccountsV1.Hold(id: "hld_1", reason: .complaint, complaintId: "cmp_1", active: true)
        for (stage, asOf, contacts) in [(AccountsV1.Stage.current, F.date(2024, 2, 1), Int32(0)),
                                        (.reminder, F.date(2024, 2, 20), 0),
                                        (.remote, F.date(2024, 3, 10), 5)] {
            var account = F.account(stage: stage, contacts: contacts)
            account.holds = [hold]
            account.onHold = true
            let result = F.evaluate(account, asOf: asOf)
            #expect(result.events.isEmpty, "\(stage) on \(asOf)")
            #expect(result.account.stage == stage)
            #expect(result.account.daysPastDue == Int32(asOf.days(since: F.date(2024, 1, 31))))
            // Released: the same evaluation advances.
            account.holds[0].active = false
            account.onHold = false
            #expect(F.evaluate(account, asOf: asOf).transitions == 1)
        }
    }

    @Test("a hold does not stop a cure or settling")
    func holdAllowsCureAndSettle() throws {
        let hold = AccountsV1.Hold(id: "hld_1", reason: .dispute, active: true)
        var account = F.account(stage: .remote)
        account.holds = [hold]
        account.onHold = true
        try F.pay(&account, 30_000, at: F.ms(F.date(2024, 2, 20)))
        let cured = F.evaluate(account, asOf: F.date(2024, 2, 21))
        #expect(cured.account.stage == .current)
        #expect(cured.account.stageReason == "cured: DPD 0 (remote collection from 8)")
        try F.pay(&account, 30_000, at: F.ms(F.date(2024, 2, 20)))
        let settled = F.evaluate(account, asOf: F.date(2024, 2, 21))
        #expect(settled.account.stage == .settled)
        #expect(settled.account.stageReason == "paid in full")
        #expect(settled.stageChanges == [AccountsV1.StageChange(fromStage: .remote, toStage: .settled, daysPastDue: 0)])
    }

    @Test("cures: days past due falling below a threshold move the account back")
    func cures() throws {
        // Two overdue instalments; paying the first moves the oldest unpaid due date to Feb 29.
        var account = F.account(stage: .field, schedule: [(F.date(2024, 1, 31), 10_000), (F.date(2024, 2, 29), 10_000),
                                                          (F.date(2024, 6, 30), 10_000)], contacts: 4)
        try F.pay(&account, 10_000, at: F.ms(F.date(2024, 3, 9)))
        let result = F.evaluate(account, asOf: F.date(2024, 3, 10))
        #expect(result.account.daysPastDue == 10)
        #expect(result.account.stage == .remote)
        #expect(result.account.stageReason == "cured: DPD 10 (field visits from 31)")
        // A cure out of FIELD keeps the contacts already made.
        #expect(result.account.contactSummary?.unsuccessfulRemoteContacts == 4)

        var reminder = F.account(stage: .reminder)
        try F.pay(&reminder, 30_000, at: F.ms(F.date(2024, 2, 3)))
        let current = F.evaluate(reminder, asOf: F.date(2024, 2, 4))
        #expect(current.account.stage == .current)
        #expect(current.account.stageReason == "cured: DPD 0 (reminders from 1)")
    }

    @Test("SETTLED, WRITTEN_OFF and LEGAL never advance; LEGAL paid in full settles")
    func terminal() throws {
        for stage in [AccountsV1.Stage.settled, .writtenOff, .legal] {
            let result = F.evaluate(F.account(stage: stage, contacts: 9), asOf: F.date(2024, 12, 1))
            #expect(result.events.isEmpty)
            #expect(result.account.stage == stage)
            #expect(result.account.daysPastDue == 305)
        }
        var legal = F.account(stage: .legal)
        try F.pay(&legal, 60_000, at: F.ms(F.date(2024, 6, 1)))
        #expect(F.evaluate(legal, asOf: F.date(2024, 6, 2)).account.stage == .settled)
        var writtenOff = F.account(stage: .writtenOff)
        try F.pay(&writtenOff, 60_000, at: F.ms(F.date(2024, 6, 1)))
        #expect(F.evaluate(writtenOff, asOf: F.date(2024, 6, 2)).account.stage == .writtenOff)
    }

    @Test("entering REMOTE from below restarts the count of unsuccessful remote contacts")
    func remoteEntryResetsContacts() {
        let result = F.evaluate(F.account(stage: .reminder, contacts: 5), asOf: F.date(2024, 3, 20))
        #expect(result.account.stage == .remote)
        #expect(result.account.contactSummary?.unsuccessfulRemoteContacts == 0)
        // So the next run, the same day, does not move it on to FIELD.
        #expect(F.evaluate(result.account, asOf: F.date(2024, 3, 20)).events.isEmpty)
    }

    // MARK: Plans

    static let planID = "rpl_01HZY3V9Q6X1M8N2B4C7D5E0FG"

    @Test("a kept plan pauses FIELD; a missed plan instalment breaks it and FIELD resumes")
    func planPausesAndResumes() throws {
        var account = F.account(stage: .field, contacts: 3)
        account.repaymentPlans = [F.acceptedPlan(id: Self.planID, [(F.date(2024, 3, 15), 10_000), (F.date(2024, 4, 15), 20_000)],
                                                 acceptedMs: F.ms(F.date(2024, 3, 10)))]
        account.activePlanId = Self.planID

        // Kept (nothing due yet): FIELD → REMOTE.
        let paused = F.evaluate(account, asOf: F.date(2024, 3, 11))
        #expect(paused.account.stage == .remote)
        #expect(paused.account.stageReason == "repayment plan \(Self.planID) is being kept: field visits paused")
        #expect(paused.account.contactSummary?.unsuccessfulRemoteContacts == 3)
        #expect(paused.plansBroken == 0)
        // While kept, DPD and contacts alone do not bring FIELD back.
        let stillPaused = F.evaluate(paused.account, asOf: F.date(2024, 3, 15))
        #expect(stillPaused.events.isEmpty)
        #expect(stillPaused.account.stage == .remote)

        // Due 2024-03-15, unpaid on the 16th: the plan breaks and the stage rules resume.
        let broken = F.evaluate(stillPaused.account, asOf: F.date(2024, 3, 16))
        #expect(broken.plansBroken == 1)
        #expect(broken.events.map(\.eventType) == [.planBroken, .stageChanged])
        #expect(broken.events.first?.reason == "repayment plan \(Self.planID) broken: instalment 1 of 10000 CNY due 2024-03-15 missed")
        #expect(broken.account.activePlanId.isEmpty)
        #expect(broken.account.repaymentPlans[0].status == .broken)
        #expect(broken.account.repaymentPlans[0].endedMs == F.ms(F.date(2024, 3, 16), 2))
        #expect(broken.account.repaymentPlans[0].instalments.map(\.status) == [.missed, .pending])
        #expect(broken.account.stage == .field)
        #expect(broken.account.stageReason == "DPD 45 and 3 unsuccessful remote contacts")
        #expect(F.evaluate(broken.account, asOf: F.date(2024, 3, 16)).events.isEmpty)
    }

    @Test("a plan instalment paid by the end of its due date keeps the plan")
    func planInstalmentPaidOnTime() throws {
        var account = F.account(stage: .remote, contacts: 3)
        account.repaymentPlans = [F.acceptedPlan(id: Self.planID, [(F.date(2024, 3, 15), 10_000), (F.date(2024, 4, 15), 20_000)],
                                                 acceptedMs: F.ms(F.date(2024, 3, 10)))]
        account.activePlanId = Self.planID
        try F.pay(&account, 10_000, at: F.ms(F.date(2024, 3, 15), 23, 59, 59))
        let result = F.evaluate(account, asOf: F.date(2024, 3, 16))
        #expect(result.events.isEmpty)
        #expect(result.account.stage == .remote)
        #expect(result.account.activePlanId == Self.planID)
        #expect(result.account.repaymentPlans[0].instalments.map(\.status) == [.paid, .pending])
        #expect(result.account.repaymentPlans[0].instalments.map(\.amountPaid) == [F.cny(10_000), F.cny(0)])
    }

    @Test("a completed plan waives its reduction; with nothing left the account settles")
    func planCompletes() throws {
        var account = F.account(stage: .remote, schedule: [(F.date(2024, 1, 31), 10_000), (F.date(2024, 2, 29), 10_000)], contacts: 3)
        account.repaymentPlans = [F.acceptedPlan(id: Self.planID, [(F.date(2024, 3, 10), 8_000), (F.date(2024, 4, 10), 8_000)],
                                                 acceptedMs: F.ms(F.date(2024, 3, 5)), reduction: 4_000)]
        account.activePlanId = Self.planID
        try F.pay(&account, 8_000, at: F.ms(F.date(2024, 3, 10)))
        try F.pay(&account, 8_000, at: F.ms(F.date(2024, 4, 9)))
        let result = F.evaluate(account, asOf: F.date(2024, 4, 11))
        #expect(result.plansCompleted == 1)
        #expect(result.events.map(\.eventType) == [.planCompleted, .stageChanged])
        #expect(result.events.first?.reason == "repayment plan \(Self.planID) completed: 2 instalments paid, 4000 CNY waived")
        #expect(result.account.repaymentPlans[0].status == .completed)
        #expect(result.account.activePlanId.isEmpty)
        #expect(result.account.instalments.map(\.status) == [.paid, .waived])
        #expect(result.account.waivedAmount == F.cny(4_000))
        #expect(result.account.outstandingAmount == F.cny(0))
        #expect(result.account.stage == .settled)
        #expect(result.account.stageReason == "paid in full: repayment plan \(Self.planID) completed")
        #expect(F.evaluate(result.account, asOf: F.date(2024, 4, 11)).events.isEmpty)
    }

    // MARK: Promises

    static func promise(amount: Int64, by date: CivilDate, createdMs: Int64) -> AccountsV1.PromiseToPay {
        AccountsV1.PromiseToPay(id: "ptp_1", amount: F.cny(amount), promisedDate: date.proto, status: .pending,
                                amountPaid: F.cny(0), createdMs: createdMs)
    }

    @Test("promises: kept when paid by the end of the promised date, broken once it has passed")
    func promises() throws {
        var account = F.account(stage: .remote)
        account.promises = [Self.promise(amount: 10_000, by: F.date(2024, 3, 10), createdMs: F.ms(F.date(2024, 3, 5)))]

        let pending = F.evaluate(account, asOf: F.date(2024, 3, 10))
        #expect(pending.events.isEmpty)
        #expect(pending.account.promises[0].status == .pending)

        let broken = F.evaluate(account, asOf: F.date(2024, 3, 11))
        #expect(broken.promisesBroken == 1)
        #expect(broken.events.map(\.eventType) == [.promiseBroken])
        #expect(broken.events[0].reason == "promise ptp_1 of 10000 CNY by 2024-03-10 broken: 0 paid by the promised date")
        #expect(broken.events[0].details == .promise(broken.account.promises[0]))
        #expect(broken.account.promises[0].resolvedMs == F.ms(F.date(2024, 3, 11), 2))
        #expect(F.evaluate(broken.account, asOf: F.date(2024, 3, 11)).events.isEmpty)

        var paid = account
        try F.pay(&paid, 4_000, at: F.ms(F.date(2024, 3, 6)))
        let partly = F.evaluate(paid, asOf: F.date(2024, 3, 7))
        #expect(partly.events.isEmpty)
        #expect(partly.account.promises[0].amountPaid == F.cny(4_000))   // brought up to date while pending
        try F.pay(&paid, 6_000, at: F.ms(F.date(2024, 3, 10), 23, 59, 59))
        let kept = F.evaluate(paid, asOf: F.date(2024, 3, 11))
        #expect(kept.promisesKept == 1)
        #expect(kept.events.map(\.eventType) == [.promiseKept])
        #expect(kept.events[0].reason == "promise ptp_1 of 10000 CNY by 2024-03-10 kept: 10000 paid")
        #expect(kept.account.promises[0].status == .kept)
        #expect(kept.account.promises[0].amountPaid == F.cny(10_000))
    }

    // MARK: Idempotence

    static let idempotenceDates: [CivilDate] = [
        F.date(2024, 1, 31), F.date(2024, 2, 1), F.date(2024, 2, 8), F.date(2024, 3, 2), F.date(2024, 3, 11), F.date(2024, 3, 16),
        F.date(2024, 7, 1),
    ]

    @Test("re-running the same date changes nothing and records nothing", arguments: StageEngineTests.idempotenceDates)
    func idempotent(asOf: CivilDate) throws {
        var account = F.account(stage: .current, contacts: 3)
        account.promises = [Self.promise(amount: 5_000, by: F.date(2024, 3, 10), createdMs: F.ms(F.date(2024, 1, 1)))]
        account.repaymentPlans = [F.acceptedPlan(id: Self.planID, [(F.date(2024, 3, 15), 10_000)], acceptedMs: F.ms(F.date(2024, 1, 1)))]
        account.activePlanId = Self.planID
        // Walk the account through a few days, then evaluate `asOf` twice.
        var current = account
        for day in [F.date(2024, 2, 1), F.date(2024, 2, 8), F.date(2024, 3, 2)] where day < asOf {
            current = F.evaluate(current, asOf: day).account
        }
        let first = F.evaluate(current, asOf: asOf)
        let second = F.evaluate(first.account, asOf: asOf)
        #expect(second.events.isEmpty)
        #expect(second.transitions == 0 && second.promisesKept == 0 && second.promisesBroken == 0)
        #expect(second.plansBroken == 0 && second.plansCompleted == 0)
        #expect(second.account == first.account)
    }
}
