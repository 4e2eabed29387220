import Compliance
import Foundation
import Models
import Testing
import Validation

/// Each visit check on its own facts, at its boundary; the table in rule-list order; the
/// contact window; the exact lead time of an advance-notice refusal.
@Suite("Visit checks: each rule on its own facts")
struct VisitChecksTests {
    typealias P = VisitPolicyTests
    static let rules = VisitRules(pack: RulePacks.cn2026)
    static let usRules = VisitRules(pack: RulePacks.usRegF)
    static let hour = P.hour
    static let minute = P.minute
    /// 2026-03-12 (the visit date of most checks).
    static let visitDate = CivilDate(year: 2026, month: 3, day: 12)!

    static func window(_ start: Int64, _ end: Int64, zone: TimeZone = P.shanghai, checkPoint: ProposedVisit.CheckPoint = .booking,
                       requested: Bool = false, now: Int64 = P.now) -> WindowFacts {
        WindowFacts(startMs: start, endMs: end, zone: zone, checkPoint: checkPoint,
                    debtorRequest: requested ? P.debtorRequest : nil, nowMs: now)
    }

    static func crew(_ collectors: [SchedulingV1.Collector] = [P.collector("col_1"), P.collector("col_2")],
                     agencies: [SchedulingV1.Agency] = [P.agency()], date: CivilDate = visitDate, region: String = "310115") -> CrewFacts {
        CrewFacts(crew: collectors.map(\.id), collectors: Dictionary(uniqueKeysWithValues: collectors.map { ($0.id, $0) }),
                  agencies: Dictionary(uniqueKeysWithValues: agencies.map { ($0.id, $0) }), visitDate: date, regionCode: region)
    }

    static func schedule(_ start: Int64, _ end: Int64, collectors: [SchedulingV1.Collector] = [P.collector("col_1"), P.collector("col_2")],
                         bookings: [BookedVisit] = []) -> CrewScheduleFacts {
        CrewScheduleFacts(crew: collectors.map(\.id), collectors: Dictionary(uniqueKeysWithValues: collectors.map { ($0.id, $0) }),
                          startMs: start, endMs: end, zone: P.shanghai, bookings: bookings, location: P.home,
                          travelSeconds: { SchedulingTravel.seconds($0, $1) })
    }

    static func visits(_ start: Int64, _ others: [Int64]) -> AccountVisitsFacts {
        AccountVisitsFacts(accountID: "acc_1", startMs: start, zone: P.shanghai, bookings: others.map {
            BookedVisit(appointmentID: "apt_\($0)", accountID: "acc_1", crew: ["col_9"], windowStartMs: $0, windowEndMs: $0 + hour, location: nil)
        })
    }

    static func at(_ hour: Int, _ minute: Int = 0, day: Int = 12, zone: TimeZone = P.shanghai) -> Int64 {
        P.local(zone, 2026, 3, day, hour, minute)
    }

    // MARK: The table

    @Test("the table lists one check per visit rule, in the order of the scheduling.proto rule list")
    func tableOrder() {
        #expect(VisitPolicy.table.map(\.rule) == [
            .contactHours, .advanceNotice, .visitWindowLength, .crewSize, .crewSameAgency, .agencyStatus, .agencyLicence,
            .agencyInspection, .agencyRegion, .collectorStatus, .collectorCertification, .collectorShift, .collectorCapacity,
            .collectorDoubleBooked, .visitDailyCap, .visitWeeklyCap, .accountStage, .accountHold, .debtorLocation,
        ])
        #expect(VisitChecks.credentials.map(\.rule) == [.agencyStatus, .agencyLicence, .agencyInspection, .collectorStatus,
                                                        .collectorCertification])
        #expect(VisitChecks.caps.map(\.rule) == [.visitDailyCap, .visitWeeklyCap])
    }

    @Test("a check's violations carry its rule id and quote the pack (pack rules) or the statement (engine rules)")
    func quoting() throws {
        let pack = try #require(VisitChecks.contactHours.violations(Self.window(Self.at(7), Self.at(9)), under: Self.rules).first)
        #expect(pack.ruleId == "contact-hours")
        #expect(pack.ruleText == RulePacks.cn2026.rule(.contactHours)?.text)
        #expect(pack.ruleSource == RulePacks.cn2026.rule(.contactHours)?.source)
        let engine = try #require(VisitChecks.visitWindowLength.violations(Self.window(Self.at(10), Self.at(10, 10)), under: Self.rules).first)
        #expect(engine.ruleId == "visit-window-length")
        #expect(engine.ruleText == RuleID.visitWindowLength.statement)
        #expect(engine.ruleSource.isEmpty)
    }

    // MARK: The window

    @Test("contact-hours: 08:00-22:00 inside, 07:59 and 22:01 outside; the debtor's request on record lifts it where the pack allows")
    func contactHours() {
        let check = VisitChecks.contactHours
        #expect(check.violations(Self.window(Self.at(8), Self.at(22)), under: Self.rules).isEmpty)
        #expect(check.violations(Self.window(Self.at(7, 59), Self.at(9)), under: Self.rules).map(\.field) == ["window_start_ms"])
        #expect(check.violations(Self.window(Self.at(20), Self.at(22, 1)), under: Self.rules).map(\.field) == ["window_end_ms"])
        #expect(check.violations(Self.window(Self.at(22, 30), Self.at(23), requested: true), under: Self.rules).isEmpty)
        var strict = RulePacks.cn2026
        strict.debtorAgreedTimeOverridesContactHours = false
        #expect(check.violations(Self.window(Self.at(22, 30), Self.at(23), requested: true), under: VisitRules(pack: strict)).count == 1)
    }

    @Test("advance-notice: 24 h is enough; 23 h 59 min is refused and says so exactly, never rounded up to 24")
    func advanceNotice() throws {
        let check = VisitChecks.advanceNotice
        let start = Self.at(10)
        #expect(check.violations(Self.window(start, start + Self.hour, now: start - 24 * Self.hour), under: Self.rules).isEmpty)
        let oneMinuteShort = try #require(check.violations(
            Self.window(start, start + Self.hour, now: start - 24 * Self.hour + Self.minute), under: Self.rules).first)
        #expect(oneMinuteShort.detail == "window starts 23 h 59 min from now; cn-2026 requires 24 h notice")
        #expect(oneMinuteShort.field == "window_start_ms")
        // One millisecond short: still 23 h 59 min, not "24.0 h".
        let oneMillisecondShort = try #require(check.violations(
            Self.window(start, start + Self.hour, now: start - 24 * Self.hour + 1), under: Self.rules).first)
        #expect(oneMillisecondShort.detail == "window starts 23 h 59 min from now; cn-2026 requires 24 h notice")
        #expect(!oneMillisecondShort.detail.contains("24.0"))
        let past = try #require(check.violations(Self.window(start, start + Self.hour, now: start + 90 * Self.minute), under: Self.rules).first)
        #expect(past.detail == "window started 1 h 30 min ago; cn-2026 requires 24 h notice")
        // At check-in: the delivered notice counts.
        let delivered = start - 24 * Self.hour + 30_000
        let late = try #require(check.violations(
            Self.window(start, start + Self.hour, checkPoint: .checkIn(noticeDeliveredMs: delivered), now: start), under: Self.rules).first)
        #expect(late.detail == "notice delivered 23 h 59 min before the window; cn-2026 requires 24 h")
        #expect(check.violations(Self.window(start, start + Self.hour, checkPoint: .checkIn(noticeDeliveredMs: start - 24 * Self.hour), now: start),
                                 under: Self.rules).isEmpty)
        #expect(check.violations(Self.window(start, start + Self.hour, checkPoint: .checkIn(noticeDeliveredMs: nil), now: start),
                                 under: Self.rules).map(\.detail) == ["the customer notice of this window was never delivered"])
    }

    @Test("durations are floored to the minute: never rounded up to a limit they fall short of")
    func durationText() {
        #expect(VisitChecks.minutesText(240 * Self.minute) == "240 min")
        #expect(VisitChecks.minutesText(240 * Self.minute + 30_000) == "240 min 30 s")
        #expect(VisitChecks.minutesText(240 * Self.minute + 1) == "240 min 0.001 s")
        #expect(VisitChecks.minutesText(30 * Self.minute - 1) == "29 min 59.999 s")
        let long = VisitChecks.visitWindowLength.violations(Self.window(Self.at(10), Self.at(14) + 30_000), under: Self.rules)
        #expect(long.map(\.detail) == ["window lasts 240 min 30 s; allowed 30-240 min"], "a refusal never reads as inside the range")
        #expect(VisitChecks.durationText(24 * Self.hour) == "24 h")
        #expect(VisitChecks.durationText(24 * Self.hour - 1) == "23 h 59 min")
        #expect(VisitChecks.durationText(23 * Self.hour + 30 * Self.minute) == "23 h 30 min")
        #expect(VisitChecks.durationText(45 * Self.minute + 59_999) == "45 min")
        #expect(VisitChecks.durationText(59_999) == "under 1 min")
        #expect(VisitChecks.durationText(0) == "0 min")
    }

    @Test("visit-window-length: 30 min to 4 h")
    func visitWindowLength() {
        let check = VisitChecks.visitWindowLength
        let start = Self.at(10)
        #expect(check.violations(Self.window(start, start + 30 * Self.minute), under: Self.rules).isEmpty)
        #expect(check.violations(Self.window(start, start + 4 * Self.hour), under: Self.rules).isEmpty)
        #expect(check.violations(Self.window(start, start + 29 * Self.minute), under: Self.rules).count == 1)
        #expect(check.violations(Self.window(start, start + 4 * Self.hour + Self.minute), under: Self.rules).count == 1)
    }

    // MARK: The crew

    @Test("crew-size: two under cn-2026, one under us-regf")
    func crewSize() {
        let one = Self.crew([P.collector("col_1")])
        #expect(VisitChecks.crewSize.violations(one, under: Self.rules).map(\.field) == ["crew_collector_ids"])
        #expect(VisitChecks.crewSize.violations(one, under: Self.usRules).isEmpty)
        #expect(VisitChecks.crewSize.violations(Self.crew(), under: Self.rules).isEmpty)
    }

    @Test("crew-same-agency: one agency passes, two fail")
    func crewSameAgency() {
        #expect(VisitChecks.crewSameAgency.violations(Self.crew(), under: Self.rules).isEmpty)
        let mixed = Self.crew([P.collector("col_1"), P.collector("col_2", agency: "agy_B")], agencies: [P.agency(), P.agency("agy_B")])
        #expect(VisitChecks.crewSameAgency.violations(mixed, under: Self.rules).map(\.detail) == ["crew belongs to 2 agencies: agy_A, agy_B"])
    }

    @Test("agency-status: ACTIVE passes, SUSPENDED fails naming the agency")
    func agencyStatus() {
        #expect(VisitChecks.agencyStatus.violations(Self.crew(), under: Self.rules).isEmpty)
        let suspended = Self.crew(agencies: [P.agency(status: .suspended)])
        #expect(VisitChecks.agencyStatus.violations(suspended, under: Self.rules).map(\.subjectId) == ["agy_A"])
    }

    @Test("agency-licence: expiring on the visit day passes, the day before fails")
    func agencyLicence() {
        let sameDay = Self.crew(agencies: [P.agency(licenceExpiry: TypeV1.Date(year: 2026, month: 3, day: 12))])
        let dayBefore = Self.crew(agencies: [P.agency(licenceExpiry: TypeV1.Date(year: 2026, month: 3, day: 11))])
        #expect(VisitChecks.agencyLicence.violations(sameDay, under: Self.rules).isEmpty)
        #expect(VisitChecks.agencyLicence.violations(dayBefore, under: Self.rules).count == 1)
    }

    @Test("agency-inspection: valid through 12 months under cn-2026; us-regf sets no period")
    func agencyInspection() {
        for (day, rules, refused) in [(12, Self.rules, false), (11, Self.rules, true), (11, Self.usRules, false)] {
            let crew = Self.crew(agencies: [P.agency(inspected: TypeV1.Date(year: 2025, month: 3, day: Int32(day)))])
            #expect(VisitChecks.agencyInspection.violations(crew, under: rules).isEmpty != refused, "inspected 2025-03-\(day), \(rules.pack.id)")
        }
    }

    @Test("agency-region: the debtor's region must be served")
    func agencyRegion() {
        #expect(VisitChecks.agencyRegion.violations(Self.crew(), under: Self.rules).isEmpty)
        #expect(VisitChecks.agencyRegion.violations(Self.crew(region: "110105"), under: Self.rules).map(\.detail)
            == ["agency agy_A does not serve region 110105"])
    }

    @Test("collector-status: a suspended member fails at its index")
    func collectorStatus() {
        let suspended = Self.crew([P.collector("col_1"), P.collector("col_2", status: .suspended)])
        let found = VisitChecks.collectorStatus.violations(suspended, under: Self.rules)
        #expect(found.map(\.field) == ["crew_collector_ids[1]"])
        #expect(found.map(\.subjectId) == ["col_2"])
    }

    @Test("collector-certification: expiring on the visit day passes, the day before fails")
    func collectorCertification() {
        let sameDay = Self.crew([P.collector("col_1", certExpiry: TypeV1.Date(year: 2026, month: 3, day: 12)), P.collector("col_2")])
        let dayBefore = Self.crew([P.collector("col_1", certExpiry: TypeV1.Date(year: 2026, month: 3, day: 11)), P.collector("col_2")])
        #expect(VisitChecks.collectorCertification.violations(sameDay, under: Self.rules).isEmpty)
        #expect(VisitChecks.collectorCertification.violations(dayBefore, under: Self.rules).map(\.field) == ["crew_collector_ids[0]"])
    }

    // MARK: The crew's day

    @Test("collector-shift: a window inside the shift passes, past its end fails")
    func collectorShift() {
        let members = [P.collector("col_1", shift: (8, 20)), P.collector("col_2")]
        #expect(VisitChecks.collectorShift.violations(Self.schedule(Self.at(18), Self.at(20), collectors: members), under: Self.rules).isEmpty)
        #expect(VisitChecks.collectorShift.violations(Self.schedule(Self.at(19), Self.at(20, 30), collectors: members), under: Self.rules)
            .map(\.subjectId) == ["col_1"])
    }

    @Test("collector-capacity: this visit counts against the member's day")
    func collectorCapacity() {
        let earlier = [BookedVisit(appointmentID: "apt_1", accountID: "acc_2", crew: ["col_1"], windowStartMs: Self.at(8),
                                   windowEndMs: Self.at(9), location: nil)]
        let roomy = [P.collector("col_1", capacity: 2), P.collector("col_2")]
        let full = [P.collector("col_1", capacity: 1), P.collector("col_2")]
        #expect(VisitChecks.collectorCapacity.violations(Self.schedule(Self.at(10), Self.at(11), collectors: roomy, bookings: earlier),
                                                          under: Self.rules).isEmpty)
        #expect(VisitChecks.collectorCapacity.violations(Self.schedule(Self.at(10), Self.at(11), collectors: full, bookings: earlier),
                                                          under: Self.rules).count == 1)
    }

    @Test("collector-double-booked: overlap fails; back to back fails only when travel is needed")
    func collectorDoubleBooked() {
        func other(_ start: Int64, _ end: Int64, _ location: TypeV1.GeoPoint?) -> [BookedVisit] {
            [BookedVisit(appointmentID: "apt_x", accountID: "acc_2", crew: ["col_2"], windowStartMs: start, windowEndMs: end, location: location)]
        }
        let far = TypeV1.GeoPoint(latitude: 31.32, longitude: 121.4737)
        let check = VisitChecks.collectorDoubleBooked
        #expect(check.violations(Self.schedule(Self.at(10), Self.at(11), bookings: other(Self.at(10, 30), Self.at(11, 30), nil)), under: Self.rules)
            .map(\.field) == ["crew_collector_ids[1]"])
        #expect(check.violations(Self.schedule(Self.at(10), Self.at(11), bookings: other(Self.at(11), Self.at(12), far)), under: Self.rules).count == 1)
        #expect(check.violations(Self.schedule(Self.at(10), Self.at(11), bookings: other(Self.at(11), Self.at(12), P.home)), under: Self.rules).isEmpty)
    }

    // MARK: The account's visits

    @Test("visit-daily-cap: a second visit the same debtor-local day fails")
    func visitDailyCap() {
        #expect(VisitChecks.visitDailyCap.violations(Self.visits(Self.at(15), [Self.at(9)]), under: Self.rules).count == 1)
        #expect(VisitChecks.visitDailyCap.violations(Self.visits(Self.at(15), [Self.at(15, day: 11)]), under: Self.rules).isEmpty)
    }

    @Test("visit-weekly-cap: a third visit within 7 × 24 h fails, exactly 7 days apart does not share a window")
    func visitWeeklyCap() {
        let day = P.day
        let start = Self.at(15)
        #expect(VisitChecks.visitWeeklyCap.violations(Self.visits(start, [start - 6 * day, start - 3 * day]), under: Self.rules).count == 1)
        #expect(VisitChecks.visitWeeklyCap.violations(Self.visits(start, [start - 7 * day, start - 3 * day]), under: Self.rules).isEmpty)
    }

    // MARK: The account

    @Test("account-stage, account-hold, debtor-location: each on its own fact")
    func accountChecks() {
        #expect(VisitChecks.accountStage.violations(P.account(), under: Self.rules).isEmpty)
        #expect(VisitChecks.accountStage.violations(P.account(stage: .remote), under: Self.rules).count == 1)
        #expect(VisitChecks.accountHold.violations(P.account(), under: Self.rules).isEmpty)
        #expect(VisitChecks.accountHold.violations(P.account(onHold: true), under: Self.rules).count == 1)
        #expect(VisitChecks.debtorLocation.violations(P.account(), under: Self.rules).isEmpty)
        #expect(VisitChecks.debtorLocation.violations(P.account(location: nil), under: Self.rules).count == 1)
    }

    // MARK: The contact window

    @Test("contactWindow: the instants the debtor's wall clock shows the pack's hours, daylight saving honoured")
    func contactWindow() throws {
        let pack = RulePacks.usRegF  // 08:00-21:00
        let la = P.losAngeles
        // 2026-03-08: clocks go forward at 02:00 in Los Angeles; 2026-11-01: back at 02:00.
        for (month, day) in [(3, 7), (3, 8), (3, 9), (11, 1), (11, 2)] {
            let date = try #require(CivilDate(year: 2026, month: month, day: day))
            let window = pack.contactWindow(on: date, in: la)
            #expect(window.startMs == P.local(la, 2026, month, day, 8, 0), "\(date)")
            #expect(window.endMs == P.local(la, 2026, month, day, 21, 0), "\(date)")
            #expect(window.contains(window.startMs) && !window.contains(window.endMs) && !window.contains(window.startMs - 1))
        }
        // An end of 24:00 is the next midnight.
        var late = RulePacks.cn2026
        late.contactHoursEndMinutes = 1440
        let date = try #require(CivilDate(year: 2026, month: 3, day: 12))
        #expect(late.contactWindow(on: date, in: P.shanghai).endMs == P.local(P.shanghai, 2026, 3, 13, 0, 0))
        #expect(RulePacks.cn2026.contactWindow(containing: Self.at(23), in: P.shanghai) == RulePacks.cn2026.contactWindow(on: date, in: P.shanghai))
    }
}
