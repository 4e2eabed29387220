import Foundation
import Models
import Validation

/// A visit to be judged: proposed at booking or rescheduling, or booked and being checked in
/// to (scheduling.proto `CheckComplianceRequest`).
public struct ProposedVisit: Sendable, Hashable {
    /// Which check: at booking the window is judged as proposed and advance notice from now;
    /// at check-in advance notice is judged on the delivered notice.
    public enum CheckPoint: Sendable, Hashable {
        case booking
        /// `noticeDeliveredMs` is when the notice of the current window was delivered; nil =
        /// not delivered (the visit was never announced).
        case checkIn(noticeDeliveredMs: Int64?)
    }

    /// The crew, in request order (distinct ids; duplicates are rejected before judging).
    public var crew: [String]
    public var windowStartMs: Int64
    public var windowEndMs: Int64
    /// The debtor's request for this window on record (channel, time, reference), accepted
    /// by the service from a role the pack trusts; lifts `contact-hours` where the pack
    /// allows it. nil = none.
    public var debtorRequest: SchedulingV1.DebtorRequestedWindow?
    public var checkPoint: CheckPoint

    public init(crew: [String], windowStartMs: Int64, windowEndMs: Int64,
                debtorRequest: SchedulingV1.DebtorRequestedWindow? = nil, checkPoint: CheckPoint = .booking) {
        self.crew = crew
        self.windowStartMs = windowStartMs
        self.windowEndMs = windowEndMs
        self.debtorRequest = debtorRequest
        self.checkPoint = checkPoint
    }
}

/// What the accounts service says about the account to visit.
public struct VisitedAccount: Sendable, Hashable {
    public var accountID: String
    public var stage: AccountsV1.Stage
    public var onHold: Bool
    public var regionCode: String
    public var timeZone: TimeZone
    /// The debtor's address coordinates; nil = none recorded (`debtor-location`).
    public var location: TypeV1.GeoPoint?
    /// The visit that found the debtor's address wrong, while it is not corrected
    /// (accounts.proto `Debtor.address_unverified`; `debtor-location`); nil = not found wrong.
    public var wrongAddress: AccountsV1.WrongAddressFinding?

    public init(accountID: String, stage: AccountsV1.Stage, onHold: Bool, regionCode: String, timeZone: TimeZone,
                location: TypeV1.GeoPoint?, wrongAddress: AccountsV1.WrongAddressFinding? = nil) {
        self.accountID = accountID
        self.stage = stage
        self.onHold = onHold
        self.regionCode = regionCode
        self.timeZone = timeZone
        self.location = location
        self.wrongAddress = wrongAddress
    }
}

/// Another live booking (PROPOSED, NOTIFIED, CONFIRMED or COMPLETED) that competes with the
/// visit: of a crew member (capacity, double-booking) or of the same account (visit caps).
/// The visit's own appointment is never among them.
public struct BookedVisit: Sendable, Hashable {
    public var appointmentID: String
    public var accountID: String
    public var crew: [String]
    public var windowStartMs: Int64
    public var windowEndMs: Int64
    /// Where it takes place; nil = unknown (then only overlap counts, not travel).
    public var location: TypeV1.GeoPoint?

    public init(appointmentID: String, accountID: String, crew: [String], windowStartMs: Int64, windowEndMs: Int64,
                location: TypeV1.GeoPoint?) {
        self.appointmentID = appointmentID
        self.accountID = accountID
        self.crew = crew
        self.windowStartMs = windowStartMs
        self.windowEndMs = windowEndMs
        self.location = location
    }
}

/// Settings of the visit rules that are Doorstep's, not the pack's (scheduling.proto
/// `visit-window-length`, `collector-double-booked`).
public struct VisitPolicySettings: Sendable, Hashable {
    /// Shortest window, minutes (default 30).
    public var minWindowMinutes: Int = 30
    /// Longest window, minutes (default 240).
    public var maxWindowMinutes: Int = 240
    /// Overrides of the pack's visit caps (nil = the pack's).
    public var visitDailyCap: Int?
    public var visitWeeklyCap: Int?

    public init() {}
    public static let defaults = VisitPolicySettings()
}

/// The rules a visit is judged under: the rule pack in force and Doorstep's own settings.
public struct VisitRules: Sendable {
    public var pack: RulePack
    public var settings: VisitPolicySettings

    public init(pack: RulePack, settings: VisitPolicySettings = .defaults) {
        self.pack = pack
        self.settings = settings
    }
}

/// The rule pack's visit rules and Doorstep's booking rules (scheduling.proto service
/// comment) as a table of small checks (`VisitChecks`), each with its rule id and the facts
/// it reads. Pure: every fact is passed in. CheckCompliance, BookAppointment,
/// RescheduleAppointment and check-in judge a whole visit (`violations(of:…)`, every check
/// in `table`); the day planner calls exactly the checks it needs (`VisitChecks.credentials`,
/// `VisitChecks.caps`) with the facts it has.
///
/// Every rule is evaluated and every violation reported, in the order of the rule list in
/// scheduling.proto. Dates compared with licences, certifications and inspections are the
/// debtor-local date of the window start; shifts are judged in each collector's own zone.
public enum VisitPolicy {
    /// One row of `table`: a check, and how its facts are read out of a whole visit.
    public struct Entry: Sendable {
        public let rule: RuleID
        let judge: @Sendable (VisitFacts, VisitRules) -> [TypeV1.Violation]

        init<Facts>(_ check: VisitCheck<Facts>, _ facts: @escaping @Sendable (VisitFacts) -> Facts) {
            rule = check.rule
            judge = { whole, rules in check.violations(facts(whole), under: rules) }
        }
    }

    /// Every visit check, in the order of the scheduling.proto rule list.
    public static let table: [Entry] = [
        Entry(VisitChecks.contactHours) { $0.window },
        Entry(VisitChecks.advanceNotice) { $0.window },
        Entry(VisitChecks.visitWindowLength) { $0.window },
        Entry(VisitChecks.crewSize) { $0.crew },
        Entry(VisitChecks.crewSameAgency) { $0.crew },
        Entry(VisitChecks.agencyStatus) { $0.crew },
        Entry(VisitChecks.agencyLicence) { $0.crew },
        Entry(VisitChecks.agencyInspection) { $0.crew },
        Entry(VisitChecks.agencyRegion) { $0.crew },
        Entry(VisitChecks.collectorStatus) { $0.crew },
        Entry(VisitChecks.collectorCertification) { $0.crew },
        Entry(VisitChecks.collectorShift) { $0.schedule },
        Entry(VisitChecks.collectorCapacity) { $0.schedule },
        Entry(VisitChecks.collectorDoubleBooked) { $0.schedule },
        Entry(VisitChecks.visitDailyCap) { $0.accountVisits },
        Entry(VisitChecks.visitWeeklyCap) { $0.accountVisits },
        Entry(VisitChecks.accountStage) { $0.account },
        Entry(VisitChecks.accountHold) { $0.account },
        Entry(VisitChecks.debtorLocation) { $0.account },
    ]

    /// Every violation of the visit, in rule-list order; empty = compliant.
    ///
    /// - Parameters:
    ///   - visit: the window, crew, debtor's request and check point.
    ///   - account: the account's stage, hold, region, zone and location (from accounts).
    ///   - collectors: the crew members by id (every id of `visit.crew` must be present;
    ///     unknown collectors are NOT_FOUND before judging).
    ///   - agencies: the crew members' agencies by id.
    ///   - crewBookings: the live bookings of the crew members other than this visit's
    ///     own, at least those within a day of the window.
    ///   - accountBookings: the live bookings of the account other than this visit's own, at
    ///     least those within 7 days of the window.
    ///   - nowMs: the instant of the check.
    ///   - travelSeconds: travel time between two points (the day planner's model).
    public static func violations(
        of visit: ProposedVisit,
        account: VisitedAccount,
        collectors: [String: SchedulingV1.Collector],
        agencies: [String: SchedulingV1.Agency],
        crewBookings: [BookedVisit],
        accountBookings: [BookedVisit],
        nowMs: Int64,
        pack: RulePack,
        settings: VisitPolicySettings = .defaults,
        travelSeconds: @escaping @Sendable (TypeV1.GeoPoint, TypeV1.GeoPoint) -> Int
    ) -> [TypeV1.Violation] {
        let facts = VisitFacts(visit: visit, account: account, collectors: collectors, agencies: agencies,
                               crewBookings: crewBookings, accountBookings: accountBookings, nowMs: nowMs,
                               travelSeconds: travelSeconds)
        let rules = VisitRules(pack: pack, settings: settings)
        return table.flatMap { $0.judge(facts, rules) }
    }
}

/// Everything known about one whole visit, split into the facts each check reads.
public struct VisitFacts: Sendable {
    public var window: WindowFacts
    public var crew: CrewFacts
    public var schedule: CrewScheduleFacts
    public var accountVisits: AccountVisitsFacts
    public var account: VisitedAccount

    public init(visit: ProposedVisit, account: VisitedAccount, collectors: [String: SchedulingV1.Collector],
                agencies: [String: SchedulingV1.Agency], crewBookings: [BookedVisit], accountBookings: [BookedVisit],
                nowMs: Int64, travelSeconds: @escaping @Sendable (TypeV1.GeoPoint, TypeV1.GeoPoint) -> Int) {
        let zone = account.timeZone
        window = WindowFacts(startMs: visit.windowStartMs, endMs: visit.windowEndMs, zone: zone, checkPoint: visit.checkPoint,
                             debtorRequest: visit.debtorRequest, nowMs: nowMs)
        crew = CrewFacts(crew: visit.crew, collectors: collectors, agencies: agencies,
                         visitDate: DebtorLocalTime(ms: visit.windowStartMs, zone: zone).date, regionCode: account.regionCode)
        schedule = CrewScheduleFacts(crew: visit.crew, collectors: collectors, startMs: visit.windowStartMs,
                                     endMs: visit.windowEndMs, zone: zone, bookings: crewBookings, location: account.location,
                                     travelSeconds: travelSeconds)
        accountVisits = AccountVisitsFacts(accountID: account.accountID, startMs: visit.windowStartMs, zone: zone,
                                           bookings: accountBookings)
        self.account = account
    }
}

/// The window as proposed or booked: read by `contact-hours`, `advance-notice` and
/// `visit-window-length`.
public struct WindowFacts: Sendable {
    public var startMs: Int64
    public var endMs: Int64
    /// The debtor's zone, in which the window is judged.
    public var zone: TimeZone
    public var checkPoint: ProposedVisit.CheckPoint
    /// The debtor's request for the window on record; nil = none.
    public var debtorRequest: SchedulingV1.DebtorRequestedWindow?
    public var nowMs: Int64

    public init(startMs: Int64, endMs: Int64, zone: TimeZone, checkPoint: ProposedVisit.CheckPoint = .booking,
                debtorRequest: SchedulingV1.DebtorRequestedWindow? = nil, nowMs: Int64) {
        self.startMs = startMs
        self.endMs = endMs
        self.zone = zone
        self.checkPoint = checkPoint
        self.debtorRequest = debtorRequest
        self.nowMs = nowMs
    }
}

/// Who goes, their records, and the day and region they visit: read by the crew,
/// agency and collector-credential checks.
public struct CrewFacts: Sendable {
    /// The crew, in request order.
    public var crew: [String]
    /// At least the crew's records (a member without one is not judged).
    public var collectors: [String: SchedulingV1.Collector]
    /// At least the crew's agencies.
    public var agencies: [String: SchedulingV1.Agency]
    /// The debtor-local date of the visit: licences, certifications and inspections are
    /// judged on it.
    public var visitDate: CivilDate
    /// The debtor's region (`agency-region`).
    public var regionCode: String

    public init(crew: [String], collectors: [String: SchedulingV1.Collector], agencies: [String: SchedulingV1.Agency],
                visitDate: CivilDate, regionCode: String) {
        (self.crew, self.collectors, self.agencies) = (crew, collectors, agencies)
        (self.visitDate, self.regionCode) = (visitDate, regionCode)
    }

    /// The crew's agency ids, distinct and sorted.
    var agencyIDs: [String] {
        Array(Set(crew.compactMap { collectors[$0]?.agencyId })).sorted()
    }

    /// The crew's agency records, in `agencyIDs` order.
    var agencyRecords: [SchedulingV1.Agency] {
        agencyIDs.compactMap { agencies[$0] }
    }

    /// Each member with its position in the crew and its record.
    var members: [(index: Int, id: String, record: SchedulingV1.Collector)] {
        crew.enumerated().compactMap { index, id in collectors[id].map { (index, id, $0) } }
    }
}

/// The crew's day around the window: read by `collector-shift`, `collector-capacity` and
/// `collector-double-booked`.
public struct CrewScheduleFacts: Sendable {
    public var crew: [String]
    public var collectors: [String: SchedulingV1.Collector]
    public var startMs: Int64
    public var endMs: Int64
    /// The debtor's zone (the window as shown; the day of a collector without a zone).
    public var zone: TimeZone
    /// The crew members' other live bookings, at least those within a day of the window.
    public var bookings: [BookedVisit]
    /// Where the visit takes place; nil = unknown (then only overlap counts, not travel).
    public var location: TypeV1.GeoPoint?
    /// Travel time between two points, seconds.
    public var travelSeconds: @Sendable (TypeV1.GeoPoint, TypeV1.GeoPoint) -> Int

    public init(crew: [String], collectors: [String: SchedulingV1.Collector], startMs: Int64, endMs: Int64, zone: TimeZone,
                bookings: [BookedVisit], location: TypeV1.GeoPoint?,
                travelSeconds: @escaping @Sendable (TypeV1.GeoPoint, TypeV1.GeoPoint) -> Int) {
        self.crew = crew
        self.collectors = collectors
        self.startMs = startMs
        self.endMs = endMs
        self.zone = zone
        self.bookings = bookings
        self.location = location
        self.travelSeconds = travelSeconds
    }

    var members: [(index: Int, id: String, record: SchedulingV1.Collector)] {
        crew.enumerated().compactMap { index, id in collectors[id].map { (index, id, $0) } }
    }
}

/// The account's other visits around the window: read by the visit caps.
public struct AccountVisitsFacts: Sendable {
    public var accountID: String
    public var startMs: Int64
    /// The debtor's zone: the daily cap counts debtor-local days.
    public var zone: TimeZone
    /// The account's other live bookings, at least those within 7 days of the window.
    public var bookings: [BookedVisit]

    public init(accountID: String, startMs: Int64, zone: TimeZone, bookings: [BookedVisit]) {
        self.accountID = accountID
        self.startMs = startMs
        self.zone = zone
        self.bookings = bookings
    }
}
