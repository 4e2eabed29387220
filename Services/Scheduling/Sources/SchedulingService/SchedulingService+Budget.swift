import Compliance
import Foundation
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

extension SchedulingService {
    /// GetContactBudget: what the rule pack still allows for a debtor on one debtor-local
    /// day — connected and unanswered calls and the weekly call count from accounts' contact
    /// counters (per debtor, every lender and agency combined), visits per account from
    /// scheduling's own live appointments — plus whether contact is lawful right now.
    ///
    /// Accounts stores a debtor's counters, computed over the whole debtor history, on the
    /// account whose contact was recorded last; the freshest summary is used. Counters of an
    /// earlier day count as zero for the asked day; the 7-day call count is the one known as
    /// of the latest contact (it can only overstate what is used on a later day).
    func getContactBudget(_ request: SchedulingV1.GetContactBudgetRequest, _ context: ServerContext) async throws -> SchedulingV1.ContactBudget {
        try Validate.resourceID(request.debtorId, field: "debtor_id", prefix: "dbt")
        let debtor = try await accounts.debtor(request.debtorId)
        let zone = TimeZone(identifier: debtor.timeZone) ?? .gmt
        let now = clock.nowMs()
        let today = CivilDate.today(in: zone, nowMs: now)
        var date = today
        if let asked = request.date, asked != TypeV1.Date() {
            date = try Validate.date(asked, field: "date")
            guard date >= today, date.days(since: today) <= 7 else {
                throw RPCError.invalidArgument("date", "must be between today (\(today)) and 7 days ahead")
            }
        }
        let accountsOfDebtor = try await accounts.accounts(ofDebtor: debtor.id)
        let pack = configuration.rulePack
        let dayStart = Self.midnight(of: date, in: zone)
        let dayEnd = Self.midnight(of: date.adding(days: 1), in: zone)
        let store = self.store
        let accountIDs = accountsOfDebtor.map(\.id)
        let visits = try await store.database.read { db in
            var result: [String: (day: Int, week: Int)] = [:]
            for id in accountIDs {
                let week = try store.liveBookings(db, account: id, fromMs: dayEnd - 7 * 86_400_000, toMs: dayEnd, excluding: nil)
                result[id] = (week.count { $0.windowStartMs >= dayStart }, week.count)
            }
            return result
        }

        var budget = SchedulingV1.ContactBudget(
            debtorId: debtor.id, date: date.proto, timeZone: zone.identifier, rulePackId: pack.id, rulePackVersion: pack.version,
            contactWindowStart: TypeV1.TimeOfDay(hours: Int32(pack.contactHoursStartMinutes / 60), minutes: Int32(pack.contactHoursStartMinutes % 60)),
            contactWindowEnd: TypeV1.TimeOfDay(hours: Int32(pack.contactHoursEndMinutes / 60), minutes: Int32(pack.contactHoursEndMinutes % 60)),
            computedMs: now)

        let freshest = accountsOfDebtor.compactMap(\.contactSummary).max {
            ($0.lastAttempt?.recordedMs ?? 0) < ($1.lastAttempt?.recordedMs ?? 0)
        }
        let sameDay = freshest.flatMap { $0.countsDate.flatMap(CivilDate.init) } == date
        func line(_ rule: RuleID, _ channel: TypeV1.ContactChannel, _ counted: String, limit: Int?, used: Int, periodDays: Int = 1,
                  account: String = "", emergencyContact: String = "") -> SchedulingV1.BudgetLine {
            guard let limit else {
                return SchedulingV1.BudgetLine(ruleId: rule.rawValue, channel: channel, counted: counted, accountId: account,
                                               emergencyContactId: emergencyContact, unlimited: true, periodDays: Int32(periodDays))
            }
            return SchedulingV1.BudgetLine(ruleId: rule.rawValue, channel: channel, counted: counted, accountId: account,
                                           emergencyContactId: emergencyContact, limit: Int32(limit), used: Int32(used),
                                           remaining: Int32(max(0, limit - used)), periodDays: Int32(periodDays))
        }
        budget.lines.append(line(.dailyConnectedCalls, .phone, "connected calls, all lenders and agencies, per day",
                                 limit: pack.dailyConnectedCallsPerDebtor, used: sameDay ? Int(freshest?.connectedCallsToday ?? 0) : 0))
        if let limit = pack.dailyCallAttemptsPerNumber {
            var numbers: [String: Int] = ["": 0]
            if sameDay, let freshest {
                for entry in freshest.unansweredCallsToday { numbers[entry.emergencyContactId, default: 0] += Int(entry.unansweredCalls) }
            }
            for contact in numbers.keys.sorted() {
                budget.lines.append(line(.dailyCallAttempts, .phone,
                                         contact.isEmpty ? "unanswered calls to the debtor's number, per day" : "unanswered calls to this emergency contact's number, per day",
                                         limit: limit, used: numbers[contact] ?? 0, emergencyContact: contact))
            }
        } else {
            budget.lines.append(line(.dailyCallAttempts, .phone, "unanswered calls per number, per day", limit: nil, used: 0))
        }
        if let limit = pack.weeklyCallAttempts {
            budget.lines.append(line(.weeklyCallAttempts, .phone, "calls to the debtor in any 7 days", limit: limit,
                                     used: Int(freshest?.callAttemptsLast7Days ?? 0), periodDays: 7))
        }
        budget.lines.append(line(.dailySMS, .sms, "text messages per day (the pack sets no limit)", limit: nil, used: 0))
        let dailyCap = configuration.visitRules.visitDailyCap ?? pack.visitDailyCap
        let weeklyCap = configuration.visitRules.visitWeeklyCap ?? pack.visitWeeklyCap
        for account in accountsOfDebtor.sorted(by: { $0.id < $1.id }) {
            let used = visits[account.id] ?? (0, 0)
            budget.lines.append(line(.visitDailyCap, .visit, "visits to this account per day", limit: dailyCap, used: used.day,
                                     account: account.id))
            budget.lines.append(line(.visitWeeklyCap, .visit, "visits to this account in the 7 days ending this day",
                                     limit: weeklyCap, used: used.week, periodDays: 7, account: account.id))
        }

        for account in accountsOfDebtor.sorted(by: { $0.id < $1.id }) {
            var blocking: [TypeV1.Violation] = []
            if account.onHold {
                blocking.append(RuleID.accountHold.violation(quoting: nil, subject: account.id, "account \(account.id) is on hold"))
            }
            if account.stage == .settled || account.stage == .writtenOff {
                blocking.append(RuleID.accountStage.violation(
                    quoting: nil, subject: account.id, "account \(account.id) is \(account.stage.protoName ?? "closed")"))
            }
            budget.accounts.append(SchedulingV1.AccountContactStatus(accountId: account.id, contactAllowed: blocking.isEmpty, blocking: blocking))
        }
        budget.thirdPartyContactAllowed = freshest?.debtorUnreachable ?? false

        // Lawful now: inside today's window, some channel left, some account open.
        let window = pack.contactWindow(on: date, in: zone)
        let channelLeft = budget.lines.contains { $0.accountId.isEmpty && ($0.unlimited || $0.remaining > 0) }
        let accountOpen = budget.accounts.contains(where: \.contactAllowed)
        let inWindow = window.contains(now)
        budget.contactAllowedNow = date == today && inWindow && channelLeft && accountOpen
        if !budget.contactAllowedNow && channelLeft && accountOpen {
            budget.nextAllowedMs = now < window.startMs ? window.startMs : 0
        }
        return budget
    }
}
