import Compliance
import Foundation
import Models
import Testing
import Validation

/// The visit rules of `VisitPolicy` at their boundaries (issue #5 "Must show").
@Suite("Visit policy: every booking rule at its boundaries")
struct VisitPolicyTests {
    static let shanghai = TimeZone(identifier: "Asia/Shanghai")!
    static let losAngeles = TimeZone(identifier: "America/Los_Angeles")!
    /// 2026-03-10T00:00:00Z.
    static let now: Int64 = 1_773_100_800_000
    static let minute: Int64 = 60_000
    static let hour: Int64 = 3_600_000
    static let day: Int64 = 86_400_000

    /// Local wall-clock instant in `zone`.
    static func local(_ zone: TimeZone, _ year: Int, _ month: Int, _ day: Int, _ hour: Int, _ minute: Int) -> Int64 {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let date = calendar.date(from: DateComponents(year: year, month: month, day: day, hour: hour, minute: minute))!
        return Int64(date.timeIntervalSince1970 * 1000)
    }

    static func collector(_ id: String, agency: String = "agy_A", zone: String = "Asia/Shanghai", certExpiry: TypeV1.Date? = nil,
                          status: SchedulingV1.CollectorStatus = .active, shift: (Int32, Int32) = (7, 23), capacity: Int32 = 6) -> SchedulingV1.Collector {
        SchedulingV1.Collector(
            id: id, agencyId: agency, fullName: "Collector \(id)", certificationNumber: "CERT-\(id)",
            certificationExpiryDate: certExpiry ?? TypeV1.Date(year: 2027, month: 1, day: 1), regionCode: "310115",
            homeLocation: TypeV1.GeoPoint(latitude: 31.2, longitude: 121.4), timeZone: zone,
            shiftStart: TypeV1.TimeOfDay(hours: shift.0, minutes: 0), shiftEnd: TypeV1.TimeOfDay(hours: shift.1, minutes: 0),
            dailyCapacity: capacity, status: status)
    }

    static func agency(_ id: String = "agy_A", licenceExpiry: TypeV1.Date = TypeV1.Date(year: 2027, month: 1, day: 1),
                       inspected: TypeV1.Date = TypeV1.Date(year: 2026, month: 1, day: 15),
                       status: SchedulingV1.AgencyStatus = .active) -> SchedulingV1.Agency {
        SchedulingV1.Agency(id: id, displayName: "Agency \(id)", licenceNumber: "LIC-\(id)", licenceExpiryDate: licenceExpiry,
                            regionsServed: ["310115"], lastInspectionDate: inspected, status: status)
    }

    static let home = TypeV1.GeoPoint(latitude: 31.2304, longitude: 121.4737)

    /// The debtor's request for a window, on record.
    static let debtorRequest = SchedulingV1.DebtorRequestedWindow(channel: .phone, requestedMs: now - day, reference: "rec-0001")

    static func account(zone: TimeZone = shanghai, stage: AccountsV1.Stage = .field, onHold: Bool = false,
                        location: TypeV1.GeoPoint? = home) -> VisitedAccount {
        VisitedAccount(accountID: "acc_1", stage: stage, onHold: onHold, regionCode: "310115", timeZone: zone, location: location)
    }

    /// Rule ids violated by a visit with the given window and defaults for everything else.
    static func ruleIDs(
        start: Int64, end: Int64, crew: [String] = ["col_1", "col_2"], zone: TimeZone = shanghai,
        collectors: [SchedulingV1.Collector]? = nil, agencies: [SchedulingV1.Agency] = [agency()],
        crewBookings: [BookedVisit] = [], accountBookings: [BookedVisit] = [], nowMs: Int64 = now,
        pack: RulePack = RulePacks.cn2026, account: VisitedAccount? = nil, requested: Bool = false,
        checkPoint: ProposedVisit.CheckPoint = .booking
    ) -> [String] {
        let members = collectors ?? crew.map { collector($0) }
        let visit = ProposedVisit(crew: crew, windowStartMs: start, windowEndMs: end,
                                  debtorRequest: requested ? debtorRequest : nil, checkPoint: checkPoint)
        return VisitPolicy.violations(
            of: visit, account: account ?? Self.account(zone: zone),
            collectors: Dictionary(uniqueKeysWithValues: members.map { ($0.id, $0) }),
            agencies: Dictionary(uniqueKeysWithValues: agencies.map { ($0.id, $0) }),
            crewBookings: crewBookings, accountBookings: accountBookings, nowMs: nowMs, pack: pack,
            travelSeconds: { a, b in
                SchedulingTravel.seconds(a, b)
            }
        ).map(\.ruleId)
    }

    @Test("a compliant visit has no violations", arguments: [shanghai, losAngeles])
    func compliant(zone: TimeZone) {
        let start = Self.local(zone, 2026, 3, 12, 10, 0)
        #expect(Self.ruleIDs(start: start, end: start + 2 * Self.hour, zone: zone,
                             collectors: [Self.collector("col_1", zone: zone.identifier), Self.collector("col_2", zone: zone.identifier)]) == [])
    }

    @Test("contact hours: ends 21:59/22:00 allowed, 22:01 refused; starts 08:01/08:00 allowed, 07:59 refused — in two zones",
          arguments: [shanghai, losAngeles])
    func contactHours(zone: TimeZone) {
        let crew = [Self.collector("col_1", zone: zone.identifier), Self.collector("col_2", zone: zone.identifier)]
        func ids(_ sh: Int, _ sm: Int, _ eh: Int, _ em: Int) -> [String] {
            Self.ruleIDs(start: Self.local(zone, 2026, 3, 12, sh, sm), end: Self.local(zone, 2026, 3, 12, eh, em), zone: zone, collectors: crew)
        }
        #expect(!ids(20, 0, 21, 59).contains("contact-hours"))
        #expect(!ids(20, 0, 22, 0).contains("contact-hours"))
        #expect(ids(20, 1, 22, 1).contains("contact-hours"))
        #expect(!ids(8, 1, 10, 0).contains("contact-hours"))
        #expect(!ids(8, 0, 10, 0).contains("contact-hours"))
        #expect(ids(7, 59, 10, 0).contains("contact-hours"))
        // The same instant judged in the other zone: 10:00 Shanghai is 18:00 the day before in Los Angeles.
        let shanghaiMorning = Self.local(Self.shanghai, 2026, 3, 12, 6, 0)
        #expect(Self.ruleIDs(start: shanghaiMorning, end: shanghaiMorning + 2 * Self.hour, zone: Self.shanghai).contains("contact-hours"))
        #expect(!Self.ruleIDs(start: shanghaiMorning, end: shanghaiMorning + 2 * Self.hour, zone: Self.losAngeles,
                              collectors: [Self.collector("col_1", shift: (0, 24)), Self.collector("col_2", shift: (0, 24))]).contains("contact-hours"))
    }

    @Test("a window the debtor asked for may fall outside contact hours where the pack allows it")
    func debtorRequested() {
        let start = Self.local(Self.shanghai, 2026, 3, 12, 22, 0)
        let crew = [Self.collector("col_1", shift: (0, 24)), Self.collector("col_2", shift: (0, 24))]
        #expect(Self.ruleIDs(start: start, end: start + Self.hour, collectors: crew).contains("contact-hours"))
        #expect(!Self.ruleIDs(start: start, end: start + Self.hour, collectors: crew, requested: true).contains("contact-hours"))
    }

    @Test("advance notice: 24 h exactly is enough, 23 h 59 min is not; at check-in the delivered notice counts")
    func advanceNotice() {
        let start = Self.now + 24 * Self.hour + 2 * Self.hour  // 2026-03-11 10:00 Shanghai
        #expect(!Self.ruleIDs(start: start, end: start + Self.hour, nowMs: start - 24 * Self.hour).contains("advance-notice"))
        #expect(Self.ruleIDs(start: start, end: start + Self.hour, nowMs: start - 24 * Self.hour + Self.minute).contains("advance-notice"))
        #expect(!Self.ruleIDs(start: start, end: start + Self.hour, nowMs: start,
                              checkPoint: .checkIn(noticeDeliveredMs: start - 25 * Self.hour)).contains("advance-notice"))
        #expect(Self.ruleIDs(start: start, end: start + Self.hour, nowMs: start,
                             checkPoint: .checkIn(noticeDeliveredMs: start - 23 * Self.hour)).contains("advance-notice"))
        #expect(Self.ruleIDs(start: start, end: start + Self.hour, nowMs: start,
                             checkPoint: .checkIn(noticeDeliveredMs: nil)).contains("advance-notice"))
    }

    @Test("window length between 30 min and 4 h")
    func windowLength() {
        let start = Self.local(Self.shanghai, 2026, 3, 12, 10, 0)
        #expect(!Self.ruleIDs(start: start, end: start + 30 * Self.minute).contains("visit-window-length"))
        #expect(Self.ruleIDs(start: start, end: start + 29 * Self.minute).contains("visit-window-length"))
        #expect(!Self.ruleIDs(start: start, end: start + 4 * Self.hour).contains("visit-window-length"))
        #expect(Self.ruleIDs(start: start, end: start + 4 * Self.hour + Self.minute).contains("visit-window-length"))
    }

    @Test("a crew of one is refused under cn-2026 (2) and accepted under us-regf (1); mixed agencies refused")
    func crew() {
        let start = Self.local(Self.shanghai, 2026, 3, 12, 10, 0)
        #expect(Self.ruleIDs(start: start, end: start + Self.hour, crew: ["col_1"]).contains("crew-size"))
        #expect(!Self.ruleIDs(start: start, end: start + Self.hour, crew: ["col_1"], pack: RulePacks.usRegF).contains("crew-size"))
        let mixed = Self.ruleIDs(start: start, end: start + Self.hour,
                                 collectors: [Self.collector("col_1"), Self.collector("col_2", agency: "agy_B")],
                                 agencies: [Self.agency(), Self.agency("agy_B")])
        #expect(mixed.contains("crew-same-agency"))
    }

    @Test("licence, certification and inspection: expiring the day before the visit is refused, on the visit day accepted")
    func expiries() {
        let start = Self.local(Self.shanghai, 2026, 3, 12, 10, 0)
        let dayBefore = TypeV1.Date(year: 2026, month: 3, day: 11)
        let sameDay = TypeV1.Date(year: 2026, month: 3, day: 12)
        #expect(Self.ruleIDs(start: start, end: start + Self.hour, agencies: [Self.agency(licenceExpiry: dayBefore)]).contains("agency-licence"))
        #expect(!Self.ruleIDs(start: start, end: start + Self.hour, agencies: [Self.agency(licenceExpiry: sameDay)]).contains("agency-licence"))
        let expiredMember = [Self.collector("col_1", certExpiry: dayBefore), Self.collector("col_2")]
        #expect(Self.ruleIDs(start: start, end: start + Self.hour, collectors: expiredMember).contains("collector-certification"))
        let validMember = [Self.collector("col_1", certExpiry: sameDay), Self.collector("col_2")]
        #expect(!Self.ruleIDs(start: start, end: start + Self.hour, collectors: validMember).contains("collector-certification"))
        // Inspected 2025-03-12: valid through 2026-03-12; inspected 2025-03-11: valid through 2026-03-11.
        #expect(!Self.ruleIDs(start: start, end: start + Self.hour,
                              agencies: [Self.agency(inspected: TypeV1.Date(year: 2025, month: 3, day: 12))]).contains("agency-inspection"))
        #expect(Self.ruleIDs(start: start, end: start + Self.hour,
                             agencies: [Self.agency(inspected: TypeV1.Date(year: 2025, month: 3, day: 11))]).contains("agency-inspection"))
        #expect(Self.ruleIDs(start: start, end: start + Self.hour, agencies: [Self.agency(status: .suspended)]).contains("agency-status"))
    }

    @Test("a suspended crew member, a window outside a shift and a full day are refused")
    func collectorRules() {
        let start = Self.local(Self.shanghai, 2026, 3, 12, 10, 0)
        #expect(Self.ruleIDs(start: start, end: start + Self.hour,
                             collectors: [Self.collector("col_1", status: .suspended), Self.collector("col_2")]).contains("collector-status"))
        #expect(Self.ruleIDs(start: start, end: start + Self.hour,
                             collectors: [Self.collector("col_1", shift: (11, 18)), Self.collector("col_2")]).contains("collector-shift"))
        let earlier = (0..<2).map { index in
            BookedVisit(appointmentID: "apt_\(index)", accountID: "acc_other\(index)", crew: ["col_1"],
                        windowStartMs: start - Self.hour * Int64(3 - index), windowEndMs: start - Self.hour * Int64(3 - index) + 30 * Self.minute,
                        location: nil)
        }
        #expect(!Self.ruleIDs(start: start, end: start + Self.hour,
                              collectors: [Self.collector("col_1", capacity: 3), Self.collector("col_2")], crewBookings: earlier).contains("collector-capacity"))
        #expect(Self.ruleIDs(start: start, end: start + Self.hour,
                             collectors: [Self.collector("col_1", capacity: 2), Self.collector("col_2")], crewBookings: earlier).contains("collector-capacity"))
    }

    @Test("double booking: overlap refused; back-to-back refused when travel is needed; enough gap accepted")
    func doubleBooking() {
        let start = Self.local(Self.shanghai, 2026, 3, 12, 10, 0)
        let far = TypeV1.GeoPoint(latitude: 31.32, longitude: 121.4737)  // ~10 km north
        func other(_ s: Int64, _ e: Int64, _ location: TypeV1.GeoPoint?) -> [BookedVisit] {
            [BookedVisit(appointmentID: "apt_x", accountID: "acc_2", crew: ["col_2"], windowStartMs: s, windowEndMs: e, location: location)]
        }
        #expect(Self.ruleIDs(start: start, end: start + Self.hour, crewBookings: other(start + 30 * Self.minute, start + 90 * Self.minute, far))
            .contains("collector-double-booked"))
        #expect(Self.ruleIDs(start: start, end: start + Self.hour, crewBookings: other(start + Self.hour, start + 2 * Self.hour, far))
            .contains("collector-double-booked"))
        #expect(!Self.ruleIDs(start: start, end: start + Self.hour, crewBookings: other(start + Self.hour, start + 2 * Self.hour, Self.home))
            .contains("collector-double-booked"))
        #expect(!Self.ruleIDs(start: start, end: start + Self.hour, crewBookings: other(start + 2 * Self.hour, start + 3 * Self.hour, far))
            .contains("collector-double-booked"))
    }

    @Test("visit caps: the 2nd visit on a day and the 3rd in any 7 days are refused")
    func caps() {
        let start = Self.local(Self.shanghai, 2026, 3, 12, 15, 0)
        func booked(_ ms: Int64) -> BookedVisit {
            BookedVisit(appointmentID: "apt_\(ms)", accountID: "acc_1", crew: ["col_9"], windowStartMs: ms, windowEndMs: ms + Self.hour, location: nil)
        }
        #expect(Self.ruleIDs(start: start, end: start + Self.hour, accountBookings: [booked(start - 5 * Self.hour)]).contains("visit-daily-cap"))
        #expect(!Self.ruleIDs(start: start, end: start + Self.hour, accountBookings: [booked(start - Self.day)]).contains("visit-daily-cap"))
        // Visits 6 days before and 6 days after: each 7-day window holds 2 → allowed.
        let spread = [booked(start - 6 * Self.day), booked(start + 6 * Self.day)]
        #expect(!Self.ruleIDs(start: start, end: start + Self.hour, accountBookings: spread).contains("visit-weekly-cap"))
        // Two visits in the 6 days before: the 3rd within 7 days is refused.
        let crowded = [booked(start - 6 * Self.day), booked(start - 3 * Self.day)]
        #expect(Self.ruleIDs(start: start, end: start + Self.hour, accountBookings: crowded).contains("visit-weekly-cap"))
        // Exactly 7 days later no longer shares a window.
        #expect(!Self.ruleIDs(start: start, end: start + Self.hour, accountBookings: [booked(start - 7 * Self.day), booked(start - 3 * Self.day)])
            .contains("visit-weekly-cap"))
    }

    @Test("account stage, hold and location; every violation reported together in rule-list order")
    func everything() {
        let start = Self.local(Self.shanghai, 2026, 3, 10, 7, 0)
        let ids = Self.ruleIDs(start: start, end: start + 5 * Self.hour, crew: ["col_1"],
                               agencies: [Self.agency(licenceExpiry: TypeV1.Date(year: 2026, month: 1, day: 1))],
                               account: Self.account(stage: .remote, onHold: true, location: nil))
        #expect(ids == ["contact-hours", "advance-notice", "visit-window-length", "crew-size", "agency-licence",
                        "account-stage", "account-hold", "debtor-location"])
    }

    @Test("months are added calendar-wise, clamped to the month's end")
    func addingMonths() {
        #expect(CivilDate(year: 2025, month: 2, day: 28)!.adding(months: 12) == CivilDate(year: 2026, month: 2, day: 28)!)
        #expect(CivilDate(year: 2024, month: 2, day: 29)!.adding(months: 12) == CivilDate(year: 2025, month: 2, day: 28)!)
        #expect(CivilDate(year: 2025, month: 11, day: 30)!.adding(months: 3) == CivilDate(year: 2026, month: 2, day: 28)!)
    }
}

/// The travel model the scheduling service uses by default (road factor 1.3, 25 km/h).
enum SchedulingTravel {
    static func seconds(_ a: TypeV1.GeoPoint, _ b: TypeV1.GeoPoint) -> Int {
        let toRad = Double.pi / 180
        let dLat = (b.latitude - a.latitude) * toRad
        let dLon = (b.longitude - a.longitude) * toRad
        let h = sin(dLat / 2) * sin(dLat / 2) + cos(a.latitude * toRad) * cos(b.latitude * toRad) * sin(dLon / 2) * sin(dLon / 2)
        let meters = 2 * 6_371_008.8 * asin(min(1, h.squareRoot())) * 1.3
        return Int((meters / (25 / 3.6)).rounded(.up))
    }
}
