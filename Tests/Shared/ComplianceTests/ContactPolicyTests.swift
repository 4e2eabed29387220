import Compliance
import Foundation
import Models
import Testing
import Validation

// MARK: - Fixtures

/// 2026-03-02 (a Monday) 00:00 in Asia/Shanghai, which is UTC+8 all year (no daylight
/// saving since 1991): 2026-03-01T16:00:00Z. Checked against Foundation's calendar below.
private let shanghaiMarch2: Int64 = 1_772_380_800_000

/// An instant on the Shanghai wall clock, `day` days after 2026-03-02.
private func shanghai(day: Int = 0, _ hour: Int, _ minute: Int = 0, second: Int = 0, millis: Int = 0) -> Int64 {
    shanghaiMarch2 + Int64(day) * 86_400_000 + Int64(hour) * 3_600_000 + Int64(minute) * 60_000
        + Int64(second) * 1000 + Int64(millis)
}

/// Midnight UTC at the start of a 2026 date (2026 is not a leap year).
private func utcMidnight2026(_ month: Int, _ day: Int) -> Int64 {
    let daysBeforeMonth = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334]
    return 1_767_225_600_000 + Int64(daysBeforeMonth[month - 1] + day - 1) * 86_400_000   // 2026-01-01T00:00Z
}

/// An instant on the New York wall clock in 2026: UTC-5 (EST) until 2026-03-08 02:00 and
/// from 2026-11-01 02:00 EDT, UTC-4 (EDT) between. (The repeated hour 01:00-02:00 of
/// 2026-11-01 is never used.) Checked against Foundation's calendar below.
private func newYork(_ month: Int, _ day: Int, _ hour: Int, _ minute: Int = 0) -> Int64 {
    let daylight = (month, day, hour) >= (3, 8, 2) && (month, day, hour) < (11, 1, 2)
    return utcMidnight2026(month, day) + Int64(hour + (daylight ? 4 : 5)) * 3_600_000 + Int64(minute) * 60_000
}

/// An instant on the London wall clock in June 2026 (UTC+1, BST).
private func londonJune(_ day: Int, _ hour: Int, _ minute: Int = 0) -> Int64 {
    utcMidnight2026(6, day) + Int64(hour - 1) * 3_600_000 + Int64(minute) * 60_000
}

/// An instant on the wall clock of `zone`, computed by Foundation's calendar: checks the
/// fixed-offset helpers above against the system's time-zone data.
private func instant(
    _ zone: TimeZone, _ year: Int, _ month: Int, _ day: Int, _ hour: Int, _ minute: Int
) throws -> Int64 {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = zone
    let components = DateComponents(year: year, month: month, day: day, hour: hour, minute: minute)
    let date = try #require(calendar.date(from: components))
    return Int64((date.timeIntervalSince1970 * 1000).rounded())
}

// A missing zone falls back to a wrong zone, so every test using it fails (see
// `zonesAvailable`) instead of crashing.
private let shanghaiZone = TimeZone(identifier: "Asia/Shanghai") ?? .gmt
private let newYorkZone = TimeZone(identifier: "America/New_York") ?? .gmt
private let londonZone = TimeZone(identifier: "Europe/London") ?? .gmt

private let ownNumber = "+8613800000001"
private let newOwnNumber = "+8613800000002"
private let contactNumber = "+8613900000001"
private let contactID = "emc_01HZY3V9Q6X1M8N2B4C7D5E0FG"
private let otherContactID = "emc_01HZY3V9Q6X1M8N2B4C7D5E0FH"
private let otherContactNumber = "+8613900000002"

private let cn = RulePacks.cn2026
private let us = RulePacks.usRegF
private let uk = RulePacks.ukConc

/// A recorded call: to the debtor's own number, or to an emergency contact's.
private func call(_ ms: Int64, _ outcome: AccountsV1.ContactOutcome, to contact: String = "", number: String? = nil) -> PastContact {
    PastContact(attemptedMs: ms, channel: .phone, outcome: outcome, emergencyContactID: contact,
                number: number ?? (contact.isEmpty ? ownNumber : contactNumber))
}

/// A recorded SMS.
private func sms(_ ms: Int64, _ outcome: AccountsV1.ContactOutcome, to contact: String = "", number: String? = nil) -> PastContact {
    PastContact(attemptedMs: ms, channel: .sms, outcome: outcome, emergencyContactID: contact,
                number: number ?? (contact.isEmpty ? ownNumber : contactNumber))
}

private func proposed(_ contact: PastContact, agreed: Bool = false) -> ProposedContact {
    ProposedContact(attemptedMs: contact.attemptedMs, channel: contact.channel, outcome: contact.outcome,
                    emergencyContactID: contact.emergencyContactID, number: contact.number, debtorAgreedTime: agreed)
}

private func ruleIDs(
    _ attempt: ProposedContact, _ history: [PastContact], _ pack: RulePack, _ zone: TimeZone,
    debtorNumber: String? = nil
) -> [String] {
    ContactPolicy.violations(of: attempt, history: history, pack: pack, debtorTimeZone: zone, debtorNumber: debtorNumber)
        .map(\.ruleId)
}

// MARK: - Rule packs

@Suite("Rule packs: numbers, rules, texts and sources")
struct RulePackTests {
    @Test("the time zones the tests use are available")
    func zonesAvailable() {
        #expect(TimeZone(identifier: "Asia/Shanghai") != nil)
        #expect(TimeZone(identifier: "America/New_York") != nil)
        #expect(TimeZone(identifier: "Europe/London") != nil)
    }

    @Test("the fixed-offset fixtures agree with Foundation's calendar", arguments: [
        (3, 2, 10, 0), (3, 8, 1, 59), (3, 8, 3, 0), (3, 8, 20, 59), (3, 9, 8, 0), (10, 31, 21, 0), (11, 1, 8, 0),
    ])
    func fixtures(month: Int, day: Int, hour: Int, minute: Int) throws {
        let shanghaiMidnight = try instant(shanghaiZone, 2026, 3, 2, 0, 0)
        #expect(shanghaiMidnight == shanghaiMarch2)
        let newYorkTime = try instant(newYorkZone, 2026, month, day, hour, minute)
        #expect(newYorkTime == newYork(month, day, hour, minute))
        let londonTime = try instant(londonZone, 2026, 6, 1, 8, 0)
        #expect(londonTime == londonJune(1, 8, 0))
    }

    @Test("cn-2026 carries the numbers of its rule table (docs/DOMAIN.md, \"Regulation as code\")")
    func chinaNumbers() throws {
        #expect(cn.id == "cn-2026")
        #expect(cn.version == "2026.1")
        #expect(cn.contactHoursStartMinutes == 480)
        #expect(cn.contactHoursEndMinutes == 1320)
        #expect(cn.debtorAgreedTimeOverridesContactHours)
        #expect(cn.dailyConnectedCallsPerDebtor == 3)
        #expect(cn.dailyCallAttemptsPerNumber == 6)
        #expect(cn.weeklyCallAttempts == nil)
        #expect(cn.quietDaysAfterConversation == nil)
        #expect(cn.thirdPartyAfterConsecutiveFailures == 3)
        #expect(cn.crewSize == 2)
        #expect(cn.advanceNoticeHours == 24)
        #expect(cn.visitDailyCap == 1)
        #expect(cn.visitWeeklyCap == 2)
        #expect(cn.inspectionValidityMonths == 12)
        let retention = try #require(cn.retention)
        #expect(retention.consumerFinanceYears == 5)
        #expect(retention.creditCardYears == 2)
        #expect(retention.impactAssessmentYears == 3)
        let sla = try #require(cn.complaintSLA)
        #expect(sla.standardDays == 15)
        #expect(sla.complexDays == 30)
        #expect(sla.extensionDays == 30)
        #expect(sla.maxExtensions == 1)
    }

    @Test("us-regf carries Regulation F's numbers and no daily limits")
    func usNumbers() {
        #expect(us.id == "us-regf")
        #expect(us.contactHoursStartMinutes == 480)
        #expect(us.contactHoursEndMinutes == 1260)
        #expect(us.weeklyCallAttempts == 7)
        #expect(us.quietDaysAfterConversation == 7)
        #expect(us.dailyConnectedCallsPerDebtor == nil)
        #expect(us.dailyCallAttemptsPerNumber == nil)
        #expect(us.retention == nil)
        #expect(us.complaintSLA == nil)
    }

    @Test("uk-conc: 08:00-21:00 and no frequency limits")
    func ukNumbers() {
        #expect(uk.id == "uk-conc")
        #expect(uk.contactWindowText == "08:00-21:00")
        #expect(uk.dailyConnectedCallsPerDebtor == nil)
        #expect(uk.dailyCallAttemptsPerNumber == nil)
        #expect(uk.weeklyCallAttempts == nil)
        #expect(uk.quietDaysAfterConversation == nil)
    }

    @Test("packs are found by id", arguments: ["cn-2026", "us-regf", "uk-conc"])
    func named(id: String) throws {
        let pack = try #require(RulePacks.named(id))
        #expect(pack.id == id)
    }

    @Test("an unknown pack id finds nothing")
    func unknown() {
        #expect(RulePacks.named("cn-2025") == nil)
        #expect(RulePacks.named("") == nil)
        #expect(RulePacks.all.map(\.id) == ["cn-2026", "us-regf", "uk-conc"])
    }

    @Test("a pack has a rule, with text and source, exactly for each limit it sets", arguments: RulePacks.all)
    func rulesMatchLimits(pack: RulePack) {
        let ids = pack.rules.map(\.id)
        #expect(Set(ids).count == ids.count, "duplicate rule ids in \(pack.id)")
        #expect(ids.allSatisfy { RuleID.packRules.map(\.rawValue).contains($0) }, "unknown rule id in \(pack.id)")
        for rule in pack.rules {
            #expect(!rule.text.isEmpty, "\(pack.id) \(rule.id) has no text")
            #expect(!rule.source.isEmpty, "\(pack.id) \(rule.id) has no source")
        }
        let optional: [(RuleID, Bool)] = [
            (RuleID.dailyConnectedCalls, pack.dailyConnectedCallsPerDebtor != nil),
            (RuleID.dailyCallAttempts, pack.dailyCallAttemptsPerNumber != nil),
            (RuleID.weeklyCallAttempts, pack.weeklyCallAttempts != nil),
            (RuleID.callAfterConversation, pack.quietDaysAfterConversation != nil),
            (RuleID.agencyInspection, pack.inspectionValidityMonths != nil),
            (RuleID.recordRetention, pack.retention != nil),
            (RuleID.complaintSLA, pack.complaintSLA != nil),
        ]
        for (id, present) in optional {
            #expect((pack.rule(id) != nil) == present, "\(pack.id) \(id)")
        }
        let always = [RuleID.contactHours, RuleID.thirdPartyContact, RuleID.crewSize, RuleID.advanceNotice,
                      RuleID.visitDailyCap, RuleID.visitWeeklyCap, RuleID.agencyLicence, RuleID.agencyStatus,
                      RuleID.collectorCertification, RuleID.collectorStatus, RuleID.evidenceRequired]
        for id in always {
            #expect(pack.rule(id) != nil, "\(pack.id) \(id)")
        }
        #expect(RuleID(rawValue: "no-such-rule") == nil)
    }

    @Test("rule texts are written from the pack's numbers, in the pack's language")
    func textsCarryNumbers() throws {
        let hours = try #require(cn.rule(.contactHours))
        #expect(hours.text.contains("22:00") && hours.text.contains("08:00"))
        #expect(hours.text.contains("不得"))
        let connected = try #require(cn.rule(.dailyConnectedCalls))
        #expect(connected.text.contains("3次"))
        #expect(connected.source.contains("互联网金融贷后催收业务指引"))
        let attempts = try #require(cn.rule(.dailyCallAttempts))
        #expect(attempts.text.contains("6次"))
        let usHours = try #require(us.rule(.contactHours))
        #expect(usHours.text.contains("21:00"))
        let weekly = try #require(us.rule(.weeklyCallAttempts))
        #expect(weekly.text.contains("At most 7"))
        #expect(weekly.source.contains("1006.14"))
    }
}

// MARK: - contact-hours

@Suite("contact-hours: debtor-local window [start, end)")
struct ContactHoursTests {
    @Test("cn-2026 in Asia/Shanghai: 07:59 and 22:00 refused, 08:00 and 21:59 allowed", arguments: [
        (7, 59, 59, 999, false),
        (8, 0, 0, 0, true),
        (12, 0, 0, 0, true),
        (21, 59, 59, 999, true),
        (22, 0, 0, 0, false),
        (0, 0, 0, 0, false),
    ])
    func shanghaiBoundaries(hour: Int, minute: Int, second: Int, millis: Int, allowed: Bool) {
        let at = shanghai(hour, minute, second: second, millis: millis)
        let expected = allowed ? [] : [RuleID.contactHours.rawValue]
        #expect(ruleIDs(proposed(call(at, .noAnswer)), [], cn, shanghaiZone) == expected)
        #expect(ruleIDs(proposed(sms(at, .smsDelivered)), [], cn, shanghaiZone) == expected)
    }

    @Test("us-regf in America/New_York, standard and daylight time: 08:00-21:00", arguments: [
        (3, 2, 7, 59, false),
        (3, 2, 8, 0, true),
        (3, 2, 20, 59, true),
        (3, 2, 21, 0, false),
        (3, 8, 7, 59, false),   // the day daylight saving starts (02:00 -> 03:00)
        (3, 8, 8, 0, true),
        (11, 1, 8, 0, true),    // the day it ends (02:00 -> 01:00)
        (11, 1, 21, 0, false),
    ])
    func newYorkBoundaries(month: Int, day: Int, hour: Int, minute: Int, allowed: Bool) {
        let at = newYork(month, day, hour, minute)
        #expect(ruleIDs(proposed(call(at, .noAnswer)), [], us, newYorkZone) == (allowed ? [] : [RuleID.contactHours.rawValue]))
    }

    @Test("uk-conc in Europe/London: 08:00 allowed, 21:00 refused")
    func london() {
        #expect(ruleIDs(proposed(call(londonJune(1, 8, 0), .noAnswer)), [], uk, londonZone) == [])
        #expect(ruleIDs(proposed(call(londonJune(1, 21, 0), .noAnswer)), [], uk, londonZone) == [RuleID.contactHours.rawValue])
    }

    @Test("the debtor's agreed time lifts the window where the pack allows it", arguments: [
        (22, 30), (6, 0),
    ])
    func agreedTime(hour: Int, minute: Int) {
        let attempt = call(shanghai(hour, minute), .connectedDebtorCommitted)
        #expect(ruleIDs(proposed(attempt, agreed: true), [], cn, shanghaiZone) == [])
        #expect(ruleIDs(proposed(attempt, agreed: false), [], cn, shanghaiZone) == [RuleID.contactHours.rawValue])

        var strict = cn
        strict.debtorAgreedTimeOverridesContactHours = false
        #expect(ruleIDs(proposed(attempt, agreed: true), [], strict, shanghaiZone) == [RuleID.contactHours.rawValue])
    }

    @Test("the refusal names the local time, the zone and the window")
    func detail() throws {
        let found = ContactPolicy.violations(
            of: proposed(call(shanghai(22, 0), .noAnswer)), history: [], pack: cn, debtorTimeZone: shanghaiZone)
        let violation = try #require(found.first)
        #expect(violation.detail == "attempt at 22:00 Asia/Shanghai on 2026-03-02; cn-2026 allows 08:00-22:00 unless the debtor agreed to the time")
        #expect(violation.field == "attempted_ms")
    }

    @Test("visit attempts are not judged here")
    func visitsIgnored() {
        let visit = ProposedContact(attemptedMs: shanghai(23), channel: .visit, outcome: .visitNotHome)
        #expect(ruleIDs(visit, [], cn, shanghaiZone) == [])
    }
}

// MARK: - daily-connected-calls

@Suite("daily-connected-calls: connected calls per debtor per debtor-local day")
struct DailyConnectedCallsTests {
    @Test("the 3rd connected call of the day is allowed, the 4th refused", arguments: [(2, true), (3, false)])
    func thirdVersusFourth(previous: Int, allowed: Bool) {
        // CONNECTED_THIRD_PARTY counts as connected (accounts.proto ContactOutcome).
        let outcomes: [AccountsV1.ContactOutcome] = [.connectedDebtorCommitted, .connectedDebtorNoCommitment, .connectedThirdParty]
        let history = (0..<previous).map { call(shanghai(9 + $0), outcomes[$0]) }
        let found = ContactPolicy.violations(
            of: proposed(call(shanghai(15), .connectedDebtorNoCommitment)), history: history, pack: cn,
            debtorTimeZone: shanghaiZone)
        #expect(found.map(\.ruleId) == (allowed ? [] : [RuleID.dailyConnectedCalls.rawValue]))
        if !allowed {
            #expect(found.first?.detail == "4th connected call on 2026-03-02 (Asia/Shanghai); cn-2026 allows 3 per day")
        }
    }

    @Test("an unanswered call or an SMS after 3 connected calls is not refused by this rule")
    func unconnectedNotCounted() {
        let history = (0..<3).map { call(shanghai(9 + $0), .connectedDebtorNoCommitment) }
        #expect(ruleIDs(proposed(call(shanghai(15), .noAnswer)), history, cn, shanghaiZone) == [])
        #expect(ruleIDs(proposed(sms(shanghai(15), .smsDelivered)), history, cn, shanghaiZone) == [])
    }

    @Test("the day ends at local midnight: yesterday evening's calls do not count")
    func yesterdayEvening() {
        let history = [21, 21, 21].enumerated().map { call(shanghai(day: -1, $0.element, 20 * $0.offset), .connectedDebtorCommitted) }
        #expect(ruleIDs(proposed(call(shanghai(8), .connectedDebtorCommitted)), history, cn, shanghaiZone) == [])
    }

    @Test("days are debtor-local, not UTC: 07:00 Shanghai is the previous UTC day but the same local day")
    func localNotUTC() {
        // 07:00-07:40 on 2026-03-02 in Shanghai is 23:00-23:40 on 2026-03-01 UTC (agreed times).
        let history = (0..<3).map { call(shanghai(7, 20 * $0), .connectedDebtorCommitted) }
        #expect(ruleIDs(proposed(call(shanghai(10), .connectedDebtorCommitted)), history, cn, shanghaiZone)
            == [RuleID.dailyConnectedCalls.rawValue])
    }

    @Test("calls recorded later the same day count too (attempts may be recorded late)")
    func laterSameDay() {
        let history = (0..<3).map { call(shanghai(18 + $0), .connectedDebtorCommitted) }
        #expect(ruleIDs(proposed(call(shanghai(10), .connectedDebtorCommitted)), history, cn, shanghaiZone)
            == [RuleID.dailyConnectedCalls.rawValue])
    }

    @Test("the limit is the pack's number")
    func configurable() {
        var pack = cn
        pack.dailyConnectedCallsPerDebtor = 1
        let found = ContactPolicy.violations(
            of: proposed(call(shanghai(15), .connectedDebtorCommitted)),
            history: [call(shanghai(9), .connectedDebtorCommitted)], pack: pack, debtorTimeZone: shanghaiZone)
        #expect(found.map(\.detail) == ["2nd connected call on 2026-03-02 (Asia/Shanghai); cn-2026 allows 1 per day"])
    }
}

// MARK: - daily-call-attempts

@Suite("daily-call-attempts: unanswered calls per number per debtor-local day")
struct DailyCallAttemptsTests {
    @Test("the 6th unanswered call to one number is allowed, the 7th refused; other numbers do not count",
          arguments: [(5, true), (6, false)])
    func sixthVersusSeventh(previous: Int, allowed: Bool) {
        let unanswered: [AccountsV1.ContactOutcome] = [.noAnswer, .busy, .declined, .voicemail]
        var history = (0..<previous).map { call(shanghai(9, 10 * $0), unanswered[$0 % 4]) }
        history += (0..<6).map { call(shanghai(9, 5 + 10 * $0), .noAnswer, number: newOwnNumber) }   // another number
        history += (0..<6).map { call(shanghai(day: -1, 20, 5 * $0), .noAnswer) }                     // yesterday
        history += [call(shanghai(11), .connectedDebtorNoCommitment)]                                 // answered
        history += [sms(shanghai(11, 10), .smsUndelivered), sms(shanghai(11, 20), .smsUndelivered)]  // not calls
        let found = ContactPolicy.violations(
            of: proposed(call(shanghai(12), .noAnswer)), history: history, pack: cn, debtorTimeZone: shanghaiZone)
        #expect(found.map(\.ruleId) == (allowed ? [] : [RuleID.dailyCallAttempts.rawValue]))
        if let violation = found.first {
            #expect(violation.detail == "7th unanswered call to the debtor's own number on 2026-03-02 (Asia/Shanghai); cn-2026 allows 6 per number per day")
            #expect(!violation.detail.contains(ownNumber))
        }
    }

    @Test("an answered call after 6 unanswered ones is allowed")
    func answeredSeventh() {
        let history = (0..<6).map { call(shanghai(9, 10 * $0), .noAnswer) }
        #expect(ruleIDs(proposed(call(shanghai(12), .connectedDebtorCommitted)), history, cn, shanghaiZone) == [])
    }

    @Test("an emergency contact's number has its own count", arguments: [(5, true), (6, false)])
    func emergencyContactNumber(previous: Int, allowed: Bool) {
        // The debtor's own number is invalid, so the contact may be called at all.
        let history = [call(shanghai(8, 30), .numberInvalid)]
            + (0..<previous).map { call(shanghai(9, 10 * $0), .noAnswer, to: contactID) }
        let found = ContactPolicy.violations(
            of: proposed(call(shanghai(12), .busy, to: contactID)), history: history, pack: cn,
            debtorTimeZone: shanghaiZone)
        #expect(found.map(\.ruleId) == (allowed ? [] : [RuleID.dailyCallAttempts.rawValue]))
        if let violation = found.first {
            #expect(violation.detail.hasPrefix("7th unanswered call to the number of emergency contact \(contactID)"))
        }
    }
}

// MARK: - weekly-call-attempts

@Suite("weekly-call-attempts: calls to one person in 7 x 24 h")
struct WeeklyCallAttemptsTests {
    @Test("us-regf: the 7th call within 7 days is allowed, the 8th refused", arguments: [(6, true), (7, false)])
    func seventhVersusEighth(previous: Int, allowed: Bool) {
        let history = (0..<previous).map { call(newYork(3, 8 - $0, 10, 0), .noAnswer) }
        let found = ContactPolicy.violations(
            of: proposed(call(newYork(3, 8, 15, 0), .noAnswer)), history: history, pack: us,
            debtorTimeZone: newYorkZone)
        #expect(found.map(\.ruleId) == (allowed ? [] : [RuleID.weeklyCallAttempts.rawValue]))
        if let violation = found.first {
            #expect(violation.detail == "8 calls to the debtor within 7 days (7 x 24 h) including this one; us-regf allows 7")
        }
    }

    @Test("a call exactly 7 x 24 h earlier is outside the window, 1 ms later inside", arguments: [(Int64(0), true), (Int64(1), false)])
    func windowEdge(offsetMs: Int64, allowed: Bool) {
        let at = newYork(3, 20, 12, 0)
        let history = [call(at - 604_800_000 + offsetMs, .noAnswer)]
            + (1...6).map { call(at - Int64($0) * 86_400_000 + 3_600_000, .noAnswer) }
        #expect(ruleIDs(proposed(call(at, .noAnswer)), history, us, newYorkZone) == (allowed ? [] : [RuleID.weeklyCallAttempts.rawValue]))
    }

    @Test("calls recorded after a late-reported call count in the window that holds both", arguments: [(6, true), (7, false)])
    func lateRecording(later: Int, allowed: Bool) {
        let at = newYork(3, 10, 12, 0)
        let history = (0..<later).map { call(at + 3_600_000 + Int64($0) * 20 * 3_600_000, .noAnswer) }
        #expect(ruleIDs(proposed(call(at, .noAnswer)), history, us, newYorkZone) == (allowed ? [] : [RuleID.weeklyCallAttempts.rawValue]))
    }

    @Test("counted per person: calls to an emergency contact do not count for the debtor, and vice versa")
    func perPerson() {
        let day = { (n: Int) in newYork(3, 10 + n, 10, 0) }
        // 6 failed calls to the debtor (who is therefore unreachable) and 7 to the contact.
        let history = (0..<6).map { call(day($0), .noAnswer) }
            + (0..<7).map { call(day($0) + 3_600_000, .noAnswer, to: contactID) }
        let at = newYork(3, 16, 15, 0)
        #expect(ruleIDs(proposed(call(at, .noAnswer)), history, us, newYorkZone) == [])
        let found = ContactPolicy.violations(
            of: proposed(call(at, .noAnswer, to: contactID)), history: history, pack: us, debtorTimeZone: newYorkZone)
        #expect(found.map(\.ruleId) == [RuleID.weeklyCallAttempts.rawValue])
        #expect(found.first?.detail.hasPrefix("8 calls to emergency contact \(contactID)") == true)
    }

    @Test("cn-2026 has no weekly limit: 21 calls in 7 days pass")
    func chinaHasNoWeeklyLimit() {
        #expect(cn.weeklyCallAttempts == nil)
        var history: [PastContact] = []
        for day in -6 ... -1 {
            history += (0..<3).map { call(shanghai(day: day, 9 + $0), .noAnswer) }
        }
        history += [call(shanghai(9), .noAnswer), call(shanghai(10), .noAnswer)]
        #expect(history.count == 20)
        #expect(ruleIDs(proposed(call(shanghai(15), .noAnswer)), history, cn, shanghaiZone) == [])
    }
}

// MARK: - call-after-conversation

@Suite("call-after-conversation: no call in the 7 days that begin with a conversation (us-regf)")
struct CallAfterConversationTests {
    @Test("day 1 (the conversation's day) to day 7 refused, day 8 allowed", arguments: [
        (3, 2, 15, 0, false),
        (3, 5, 12, 0, false),
        (3, 8, 20, 59, false),
        (3, 9, 8, 0, true),
    ])
    func quietPeriod(month: Int, day: Int, hour: Int, minute: Int, allowed: Bool) {
        let history = [call(newYork(3, 2, 10, 0), .connectedDebtorNoCommitment)]
        let found = ContactPolicy.violations(
            of: proposed(call(newYork(month, day, hour, minute), .noAnswer)), history: history,
            pack: us, debtorTimeZone: newYorkZone)
        #expect(found.map(\.ruleId) == (allowed ? [] : [RuleID.callAfterConversation.rawValue]))
        if day == 8 {
            #expect(found.first?.detail == "call on day 7 of the 7 days that begin with the conversation on 2026-03-02 (America/New_York); us-regf allows calls again from 2026-03-09")
        }
    }

    @Test("days are calendar days: an evening conversation frees the morning of day 8, under 7 x 24 h later")
    func calendarDays() {
        let history = [call(newYork(3, 2, 20, 0), .connectedDebtorNoCommitment)]
        #expect(ruleIDs(proposed(call(newYork(3, 9, 8, 0), .noAnswer)), history, us, newYorkZone) == [])
    }

    @Test("what counts as a conversation: CONNECTED_DEBTOR_* only")
    func whatCounts() {
        let next = proposed(call(newYork(3, 3, 12, 0), .noAnswer))
        let at = newYork(3, 2, 10, 0)
        #expect(ruleIDs(next, [call(at, .connectedDebtorCommitted)], us, newYorkZone) == [RuleID.callAfterConversation.rawValue])
        #expect(ruleIDs(next, [call(at, .connectedThirdParty)], us, newYorkZone) == [])
        #expect(ruleIDs(next, [call(at, .voicemail)], us, newYorkZone) == [])
    }

    @Test("an SMS after a conversation and a conversation after the call are not refused")
    func notCalls() {
        let conversation = call(newYork(3, 2, 10, 0), .connectedDebtorNoCommitment)
        #expect(ruleIDs(proposed(sms(newYork(3, 3, 12, 0), .smsDelivered)), [conversation], us, newYorkZone) == [])
        let earlierCall = proposed(call(newYork(3, 1, 12, 0), .noAnswer))
        #expect(ruleIDs(earlierCall, [conversation], us, newYorkZone) == [])
    }

    @Test("cn-2026 has no such rule")
    func chinaHasNoQuietPeriod() {
        let history = [call(shanghai(9), .connectedDebtorNoCommitment)]
        #expect(ruleIDs(proposed(call(shanghai(10), .noAnswer)), history, cn, shanghaiZone) == [])
    }
}

// MARK: - third-party-contact

/// One history against which an SMS to an emergency contact at 12:00 is judged.
struct ThirdPartyCase: Sendable, CustomTestStringConvertible {
    let name: String
    let history: [PastContact]
    var debtorNumber: String? = nil
    let allowed: Bool

    var testDescription: String { name }
}

@Suite("third-party-contact: emergency contacts only once the debtor is unreachable")
struct ThirdPartyContactTests {
    static let cases: [ThirdPartyCase] = [
        ThirdPartyCase(name: "no attempt on the debtor yet", history: [], allowed: false),
        ThirdPartyCase(name: "two failed attempts",
                       history: [call(shanghai(9), .noAnswer), call(shanghai(10), .busy)], allowed: false),
        ThirdPartyCase(name: "three failed attempts, calls and SMS",
                       history: [call(shanghai(9), .noAnswer), call(shanghai(10), .voicemail), sms(shanghai(11), .smsUndelivered)],
                       allowed: true),
        ThirdPartyCase(name: "three failures, then a conversation",
                       history: [call(shanghai(9), .noAnswer), call(shanghai(10), .declined), call(shanghai(11), .busy),
                                 call(shanghai(11, 30), .connectedDebtorNoCommitment)],
                       allowed: false),
        ThirdPartyCase(name: "three failures, then a delivered SMS",
                       history: [call(shanghai(9), .noAnswer), call(shanghai(10), .declined), call(shanghai(11), .busy),
                                 sms(shanghai(11, 30), .smsDelivered)],
                       allowed: false),
        ThirdPartyCase(name: "a conversation in the middle breaks the run",
                       history: [call(shanghai(8), .noAnswer), call(shanghai(9), .declined),
                                 call(shanghai(9, 30), .connectedDebtorCommitted),
                                 call(shanghai(10), .noAnswer), call(shanghai(11), .busy)],
                       allowed: false),
        ThirdPartyCase(name: "failures yesterday and today form one run",
                       history: [call(shanghai(day: -1, 20), .noAnswer), call(shanghai(day: -1, 21), .noAnswer),
                                 call(shanghai(9), .busy)],
                       allowed: true),
        ThirdPartyCase(name: "own number reported invalid", history: [call(shanghai(9), .numberInvalid)], allowed: true),
        ThirdPartyCase(name: "an invalid report stands until the number changes",
                       history: [call(shanghai(9), .numberInvalid), call(shanghai(10), .noAnswer)], allowed: true),
        ThirdPartyCase(name: "a new own number resets the test",
                       history: [call(shanghai(9), .numberInvalid), call(shanghai(10), .noAnswer, number: newOwnNumber)],
                       allowed: false),
        ThirdPartyCase(name: "the debtor's current number is given and has no attempts",
                       history: [call(shanghai(9), .numberInvalid), call(shanghai(10), .busy), call(shanghai(11), .noAnswer)],
                       debtorNumber: newOwnNumber, allowed: false),
        ThirdPartyCase(name: "failures on emergency contacts do not count",
                       history: (0..<3).map { call(shanghai(9 + $0), .noAnswer, to: otherContactID, number: otherContactNumber) },
                       allowed: false),
        ThirdPartyCase(name: "failures after the attempt do not count",
                       history: (0..<3).map { call(shanghai(13 + $0), .noAnswer) }, allowed: false),
    ]

    @Test("an SMS to an emergency contact", arguments: ThirdPartyContactTests.cases)
    func unreachable(testCase: ThirdPartyCase) {
        let attempt = proposed(sms(shanghai(12), .smsDelivered, to: contactID))
        let found = ruleIDs(attempt, testCase.history, cn, shanghaiZone, debtorNumber: testCase.debtorNumber)
        #expect(found == (testCase.allowed ? [] : [RuleID.thirdPartyContact.rawValue]))
    }

    @Test("a call to the debtor is never refused by this rule")
    func debtorItself() {
        #expect(ruleIDs(proposed(call(shanghai(12), .noAnswer)), [], cn, shanghaiZone) == [])
    }

    @Test("the refusal names the field, the count and the threshold")
    func detail() throws {
        let found = ContactPolicy.violations(
            of: proposed(call(shanghai(12), .connectedThirdParty, to: contactID)),
            history: [call(shanghai(9), .noAnswer)], pack: cn, debtorTimeZone: shanghaiZone)
        let violation = try #require(found.first)
        #expect(found.count == 1)
        #expect(violation.ruleId == RuleID.thirdPartyContact.rawValue)
        #expect(violation.field == "emergency_contact_id")
        #expect(violation.detail == "the debtor is reachable: own number not reported invalid, 1 consecutive failed attempt on it (3 needed); cn-2026 allows contacting emergency contact \(contactID) only once the debtor is unreachable")
    }
}

// MARK: - Several rules at once

@Suite("Every broken rule is reported, with the pack's text and source")
struct SeveralViolationsTests {
    @Test("cn-2026: a late 4th connected call to an emergency contact of a reachable debtor")
    func china() throws {
        let history = (0..<3).map { call(shanghai(9 + $0), .connectedDebtorNoCommitment) }
        let found = ContactPolicy.violations(
            of: proposed(call(shanghai(22, 30), .connectedThirdParty, to: contactID)), history: history, pack: cn,
            debtorTimeZone: shanghaiZone)
        #expect(found.map(\.ruleId) == [RuleID.contactHours.rawValue, RuleID.dailyConnectedCalls.rawValue, RuleID.thirdPartyContact.rawValue])
        try expectQuoted(found, from: cn)
    }

    @Test("us-regf: an 8th call at 21:30, four days after a conversation")
    func unitedStates() throws {
        var history = [call(newYork(3, 2, 10, 0), .connectedDebtorNoCommitment)]
        for day in 3...5 {
            history += [call(newYork(3, day, 9, 0), .noAnswer),
                        call(newYork(3, day, 12, 0), .noAnswer)]
        }
        let found = ContactPolicy.violations(
            of: proposed(call(newYork(3, 5, 21, 30), .noAnswer)), history: history, pack: us,
            debtorTimeZone: newYorkZone)
        #expect(found.map(\.ruleId) == [RuleID.contactHours.rawValue, RuleID.weeklyCallAttempts.rawValue, RuleID.callAfterConversation.rawValue])
        try expectQuoted(found, from: us)
    }

    /// Every violation quotes its rule's text and source from the pack, has a detail, no
    /// subject, and names the field only where one field is at fault.
    private func expectQuoted(_ violations: [TypeV1.Violation], from pack: RulePack) throws {
        for violation in violations {
            let id = try #require(RuleID(rawValue: violation.ruleId))
            let rule = try #require(pack.rule(id))
            #expect(violation.ruleText == rule.text)
            #expect(violation.ruleSource == rule.source)
            #expect(!violation.ruleText.isEmpty && !violation.ruleSource.isEmpty && !violation.detail.isEmpty)
            #expect(violation.subjectId == "")
            let field = switch violation.ruleId {
            case RuleID.contactHours.rawValue: "attempted_ms"
            case RuleID.thirdPartyContact.rawValue: "emergency_contact_id"
            default: ""
            }
            #expect(violation.field == field)
        }
    }
}

// MARK: - Outcome classes

@Suite("Outcome classes follow accounts.proto ContactOutcome")
struct OutcomeClassTests {
    /// (outcome, connected, conversation, unanswered, failed, unsuccessful)
    static let table: [(AccountsV1.ContactOutcome, Bool, Bool, Bool, Bool, Bool)] = [
        (.connectedDebtorCommitted, true, true, false, false, false),
        (.connectedDebtorNoCommitment, true, true, false, false, true),
        (.connectedThirdParty, true, false, false, false, true),
        (.noAnswer, false, false, true, true, true),
        (.busy, false, false, true, true, true),
        (.declined, false, false, true, true, true),
        (.voicemail, false, false, true, true, true),
        (.numberInvalid, false, false, false, true, true),
        (.smsDelivered, false, false, false, false, true),
        (.smsUndelivered, false, false, false, true, true),
        (.visitMetDebtor, false, false, false, false, false),
        (.visitNotHome, false, false, false, false, false),
        (.visitWrongAddress, false, false, false, false, false),
        (.visitThirdPartyOnly, false, false, false, false, false),
        (.unspecified, false, false, false, false, false),
        (.unrecognized(99), false, false, false, false, false),
    ]

    @Test("classes of each outcome", arguments: OutcomeClassTests.table)
    func classes(
        outcome: AccountsV1.ContactOutcome, connected: Bool, conversation: Bool, unanswered: Bool, failed: Bool,
        unsuccessful: Bool
    ) {
        #expect(ContactPolicy.isConnected(outcome) == connected)
        #expect(ContactPolicy.isConversation(outcome) == conversation)
        #expect(ContactPolicy.isUnanswered(outcome) == unanswered)
        #expect(ContactPolicy.isFailed(outcome) == failed)
        #expect(ContactPolicy.isUnsuccessful(outcome) == unsuccessful)
    }

    @Test("the table covers every known outcome")
    func complete() {
        let covered = Set(Self.table.map { $0.0 })
        #expect(AccountsV1.ContactOutcome.allCases.allSatisfy { covered.contains($0) })
    }
}

// MARK: - Summary

@Suite("ContactPolicy.summary: the counters of ContactSummary")
struct ContactSummaryTests {
    /// As of 2026-03-02 15:00 Shanghai.
    static let history: [PastContact] = [
        call(shanghai(day: -10, 10), .noAnswer),                   // outside the 7 days
        call(shanghai(day: -6, 10), .noAnswer),                    // inside the 7 days
        call(shanghai(day: -1, 20), .noAnswer),                    // yesterday
        call(shanghai(9), .connectedDebtorNoCommitment),           // the last conversation
        call(shanghai(10), .noAnswer),
        call(shanghai(10, 30), .busy),
        call(shanghai(11), .noAnswer, to: contactID),
        call(shanghai(11, 30), .connectedThirdParty, to: contactID),
        sms(shanghai(12), .smsUndelivered),
        PastContact(attemptedMs: shanghai(13), channel: .visit, outcome: .visitNotHome),
        call(shanghai(16), .voicemail),                            // later today
    ]

    @Test("counts as of 15:00 debtor-local")
    func counts() {
        let counts = ContactPolicy.summary(
            history: Self.history, asOfMs: shanghai(15), zone: shanghaiZone, pack: cn)
        #expect(counts.countsDate == CivilDate(year: 2026, month: 3, day: 2))
        #expect(counts.connectedCallsToday == 2)
        #expect(counts.callAttemptsToday == 6)
        #expect(counts.unansweredCallsToday == [
            ContactCounts.NumberCount(emergencyContactID: "", number: ownNumber, unansweredCalls: 3),
            ContactCounts.NumberCount(emergencyContactID: contactID, number: contactNumber, unansweredCalls: 1),
        ])
        #expect(counts.smsToday == 1)
        #expect(counts.visitsToday == 1)
        #expect(counts.callAttemptsLast7Days == 5)
        #expect(counts.lastConversationMs == shanghai(9))
        #expect(counts.consecutiveFailedAttempts == 3)
        #expect(!counts.debtorNumberInvalid)
        #expect(counts.debtorUnreachable)
        #expect(counts.totalAttempts == 11)
    }

    @Test("the unreachable test follows the debtor's current number")
    func currentNumber() {
        let counts = ContactPolicy.summary(
            history: Self.history, asOfMs: shanghai(15), zone: shanghaiZone, pack: cn, debtorNumber: newOwnNumber)
        #expect(counts.consecutiveFailedAttempts == 0)
        #expect(!counts.debtorUnreachable)
    }

    @Test("an invalid own number makes the debtor unreachable")
    func invalidNumber() {
        let counts = ContactPolicy.summary(
            history: [call(shanghai(9), .numberInvalid)], asOfMs: shanghai(15), zone: shanghaiZone, pack: cn)
        #expect(counts.debtorNumberInvalid)
        #expect(counts.debtorUnreachable)
        #expect(counts.consecutiveFailedAttempts == 1)
        #expect(counts.lastConversationMs == nil)
    }

    @Test("apply(to:) fills the contract message")
    func contract() {
        let counts = ContactPolicy.summary(
            history: Self.history, asOfMs: shanghai(15), zone: shanghaiZone, pack: cn)
        var summary = AccountsV1.ContactSummary()
        summary.unsuccessfulRemoteContacts = 42
        counts.apply(to: &summary)
        #expect(summary.countsDate == TypeV1.Date(year: 2026, month: 3, day: 2))
        #expect(summary.connectedCallsToday == 2)
        #expect(summary.callAttemptsToday == 6)
        #expect(summary.unansweredCallsToday == [
            AccountsV1.NumberAttemptCount(emergencyContactId: "", unansweredCalls: 3),
            AccountsV1.NumberAttemptCount(emergencyContactId: contactID, unansweredCalls: 1),
        ])
        #expect(summary.smsToday == 1)
        #expect(summary.visitsToday == 1)
        #expect(summary.callAttemptsLast7Days == 5)
        #expect(summary.lastConversationMs == shanghai(9))
        #expect(summary.consecutiveFailedAttempts == 3)
        #expect(!summary.debtorNumberInvalid)
        #expect(summary.debtorUnreachable)
        #expect(summary.totalAttempts == 11)
        #expect(summary.unsuccessfulRemoteContacts == 42)
    }
}
