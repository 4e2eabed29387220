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
    /// The debtor asked for this window; lifts `contact-hours` where the pack allows it.
    public var debtorRequestedWindow: Bool
    public var checkPoint: CheckPoint

    public init(crew: [String], windowStartMs: Int64, windowEndMs: Int64, debtorRequestedWindow: Bool = false,
                checkPoint: CheckPoint = .booking) {
        self.crew = crew
        self.windowStartMs = windowStartMs
        self.windowEndMs = windowEndMs
        self.debtorRequestedWindow = debtorRequestedWindow
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

    public init(accountID: String, stage: AccountsV1.Stage, onHold: Bool, regionCode: String, timeZone: TimeZone,
                location: TypeV1.GeoPoint?) {
        self.accountID = accountID
        self.stage = stage
        self.onHold = onHold
        self.regionCode = regionCode
        self.timeZone = timeZone
        self.location = location
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

/// The rule pack's visit rules and Doorstep's booking rules (scheduling.proto service
/// comment), applied to one proposed or booked visit. Pure: every fact is passed in, so the
/// same function serves CheckCompliance, BookAppointment, RescheduleAppointment, check-in and
/// day planning, and is unit-tested at every boundary.
///
/// Every rule is evaluated and every violation reported, in the order of the rule list in
/// scheduling.proto. Dates compared with licences, certifications and inspections are the
/// debtor-local date of the window start; shifts are judged in each collector's own zone.
public enum VisitPolicy {
    /// Rule ids of Doorstep's own booking rules (not in any pack; `rule_source` is empty).
    public enum EngineRule {
        public static let visitWindowLength = "visit-window-length"
        public static let crewSameAgency = "crew-same-agency"
        public static let agencyRegion = "agency-region"
        public static let collectorShift = "collector-shift"
        public static let collectorCapacity = "collector-capacity"
        public static let collectorDoubleBooked = "collector-double-booked"
        public static let accountStage = "account-stage"
        public static let accountHold = "account-hold"
        public static let debtorLocation = "debtor-location"
    }

    /// Statement of each engine rule, quoted in `Violation.rule_text`.
    public static let engineRuleTexts: [String: String] = [
        EngineRule.visitWindowLength: "A visit window lasts between the configured minimum and maximum length",
        EngineRule.crewSameAgency: "Every member of a visiting crew belongs to the same agency",
        EngineRule.agencyRegion: "The crew's agency serves the debtor's region",
        EngineRule.collectorShift: "The visit window lies inside every crew member's shift",
        EngineRule.collectorCapacity: "No crew member has more visits that day than their daily capacity",
        EngineRule.collectorDoubleBooked:
            "No crew member's other visits overlap the window or leave too little time to travel between them",
        EngineRule.accountStage: "Only accounts in the FIELD stage are visited",
        EngineRule.accountHold: "An account on hold is not contacted",
        EngineRule.debtorLocation: "The debtor's address has coordinates",
    ]

    /// Every violation of the visit, in rule-list order; empty = compliant.
    ///
    /// - Parameters:
    ///   - visit: the window, crew and check point.
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
        travelSeconds: (TypeV1.GeoPoint, TypeV1.GeoPoint) -> Int
    ) -> [TypeV1.Violation] {
        var found: [TypeV1.Violation] = []
        func report(_ ruleID: String, field: String = "", subject: String = "", _ detail: String) {
            let rule = pack.rule(ruleID)
            found.append(TypeV1.Violation(
                ruleId: ruleID,
                ruleText: rule?.text ?? engineRuleTexts[ruleID] ?? "",
                ruleSource: rule?.source ?? "",
                field: field,
                detail: detail,
                subjectId: subject))
        }

        let zone = account.timeZone
        let start = DebtorLocalTime(ms: visit.windowStartMs, zone: zone)
        let end = DebtorLocalTime(ms: visit.windowEndMs, zone: zone)
        let visitDate = start.date
        let windowText = "\(start.date) \(start.clockText)-\(end.clockText) \(zone.identifier)"
        let members = visit.crew.compactMap { collectors[$0] }

        // contact-hours: the whole window inside [start, end] of the pack's hours, one local day.
        let hoursStart = Int64(pack.contactHoursStartMinutes) * 60_000
        let hoursEnd = Int64(pack.contactHoursEndMinutes) * 60_000
        let requested = visit.debtorRequestedWindow && pack.debtorAgreedTimeOverridesContactHours
        let endOfDayMs = end.date == start.date ? end.millisecondOfDay
            : (end.date == start.date.adding(days: 1) && end.millisecondOfDay == 0 ? DebtorLocalTime.millisecondsPerDay : Int64.max)
        if !requested && (start.millisecondOfDay < hoursStart || endOfDayMs > hoursEnd) {
            report(RuleID.contactHours, field: start.millisecondOfDay < hoursStart ? "window_start_ms" : "window_end_ms",
                   "window \(windowText); \(pack.id) allows visits \(pack.contactWindowText) debtor-local")
        }

        // advance-notice
        let noticeMs = Int64(pack.advanceNoticeHours) * 3_600_000
        switch visit.checkPoint {
        case .booking:
            if visit.windowStartMs - nowMs < noticeMs {
                let hours = Double(visit.windowStartMs - nowMs) / 3_600_000
                report(RuleID.advanceNotice, field: "window_start_ms",
                       "window starts \(String(format: "%.1f", hours)) h from now; \(pack.id) requires \(pack.advanceNoticeHours) h notice")
            }
        case .checkIn(let delivered):
            if let delivered {
                if visit.windowStartMs - delivered < noticeMs {
                    report(RuleID.advanceNotice,
                           "notice delivered \(String(format: "%.1f", Double(visit.windowStartMs - delivered) / 3_600_000)) h before the window; \(pack.id) requires \(pack.advanceNoticeHours) h")
                }
            } else {
                report(RuleID.advanceNotice, "the customer notice of this window was never delivered")
            }
        }

        // visit-window-length
        let lengthMs = visit.windowEndMs - visit.windowStartMs
        let lengthMinutes = lengthMs / 60_000
        if lengthMs < Int64(settings.minWindowMinutes) * 60_000 || lengthMs > Int64(settings.maxWindowMinutes) * 60_000 {
            report(EngineRule.visitWindowLength, field: "window_end_ms",
                   "window lasts \(lengthMinutes) min; allowed \(settings.minWindowMinutes)-\(settings.maxWindowMinutes) min")
        }

        // crew-size
        if Set(visit.crew).count < pack.crewSize {
            report(RuleID.crewSize, field: "crew_collector_ids",
                   "crew of \(Set(visit.crew).count); \(pack.id) requires at least \(pack.crewSize)")
        }

        // crew-same-agency
        let crewAgencies = Array(Set(members.map(\.agencyId))).sorted()
        if crewAgencies.count > 1 {
            report(EngineRule.crewSameAgency, field: "crew_collector_ids",
                   "crew belongs to \(crewAgencies.count) agencies: \(crewAgencies.joined(separator: ", "))")
        }

        let crewAgencyRecords = crewAgencies.compactMap { agencies[$0] }
        // agency-status
        for agency in crewAgencyRecords where agency.status != .active {
            report(RuleID.agencyStatus, subject: agency.id,
                   "agency \(agency.id) is \(statusName(agency.status))\(agency.statusReason.isEmpty ? "" : ": \(agency.statusReason)")")
        }
        // agency-licence
        for agency in crewAgencyRecords {
            if let expiry = CivilDate(agency.licenceExpiryDate ?? TypeV1.Date()), visitDate > expiry {
                report(RuleID.agencyLicence, subject: agency.id,
                       "licence of agency \(agency.id) expired on \(expiry); visit on \(visitDate)")
            }
        }
        // agency-inspection
        if let months = pack.inspectionValidityMonths {
            for agency in crewAgencyRecords {
                guard let inspected = CivilDate(agency.lastInspectionDate ?? TypeV1.Date()) else { continue }
                let validUntil = inspected.adding(months: months)
                if visitDate > validUntil {
                    report(RuleID.agencyInspection, subject: agency.id,
                           "agency \(agency.id) last inspected on \(inspected), valid until \(validUntil); visit on \(visitDate)")
                }
            }
        }
        // agency-region
        for agency in crewAgencyRecords where !agency.regionsServed.contains(account.regionCode) {
            report(EngineRule.agencyRegion, subject: agency.id,
                   "agency \(agency.id) does not serve region \(account.regionCode)")
        }

        // collector-status
        for (index, member) in visit.crew.enumerated() {
            if let collector = collectors[member], collector.status == .suspended {
                report(RuleID.collectorStatus, field: "crew_collector_ids[\(index)]", subject: member,
                       "collector \(member) is suspended")
            }
        }
        // collector-certification
        for (index, member) in visit.crew.enumerated() {
            if let collector = collectors[member], let expiry = CivilDate(collector.certificationExpiryDate ?? TypeV1.Date()),
               visitDate > expiry {
                report(RuleID.collectorCertification, field: "crew_collector_ids[\(index)]", subject: member,
                       "certification of collector \(member) expired on \(expiry); visit on \(visitDate)")
            }
        }
        // collector-shift
        for (index, member) in visit.crew.enumerated() {
            guard let collector = collectors[member], let shift = Shift(collector) else { continue }
            if !shift.contains(startMs: visit.windowStartMs, endMs: visit.windowEndMs) {
                report(EngineRule.collectorShift, field: "crew_collector_ids[\(index)]", subject: member,
                       "collector \(member) works \(shift.text); window \(windowText)")
            }
        }
        // collector-capacity: the member's live bookings on the window's day (their zone).
        for (index, member) in visit.crew.enumerated() {
            guard let collector = collectors[member] else { continue }
            let memberZone = TimeZone(identifier: collector.timeZone) ?? zone
            let day = DebtorLocalTime(ms: visit.windowStartMs, zone: memberZone).date
            let sameDay = crewBookings.filter {
                $0.crew.contains(member) && DebtorLocalTime(ms: $0.windowStartMs, zone: memberZone).date == day
            }.count
            if sameDay + 1 > Int(collector.dailyCapacity) {
                report(EngineRule.collectorCapacity, field: "crew_collector_ids[\(index)]", subject: member,
                       "collector \(member) already has \(sameDay) visits on \(day); capacity \(collector.dailyCapacity)")
            }
        }
        // collector-double-booked: no overlap, and time to travel between consecutive windows.
        for (index, member) in visit.crew.enumerated() {
            for other in crewBookings where other.crew.contains(member) {
                if let conflict = conflict(visit: visit, location: account.location, with: other, travelSeconds: travelSeconds) {
                    report(EngineRule.collectorDoubleBooked, field: "crew_collector_ids[\(index)]", subject: member,
                           "collector \(member): \(conflict)")
                    break
                }
            }
        }

        // visit-daily-cap
        let dailyCap = settings.visitDailyCap ?? pack.visitDailyCap
        let sameDayVisits = accountBookings.count { DebtorLocalTime(ms: $0.windowStartMs, zone: zone).date == visitDate }
        if sameDayVisits + 1 > dailyCap {
            report(RuleID.visitDailyCap, field: "window_start_ms", subject: account.accountID,
                   "account already has \(sameDayVisits) visit\(sameDayVisits == 1 ? "" : "s") on \(visitDate); cap \(dailyCap) per day")
        }
        // visit-weekly-cap: the busiest 7 × 24 h containing the visit.
        let weeklyCap = settings.visitWeeklyCap ?? pack.visitWeeklyCap
        let busiest = busiestWeek(containing: visit.windowStartMs, others: accountBookings.map(\.windowStartMs))
        if busiest > weeklyCap {
            report(RuleID.visitWeeklyCap, field: "window_start_ms", subject: account.accountID,
                   "\(busiest) visits to the account within 7 days; cap \(weeklyCap)")
        }

        // account-stage, account-hold, debtor-location
        if account.stage != .field {
            report(EngineRule.accountStage, subject: account.accountID,
                   "account \(account.accountID) is in stage \(account.stage.protoName ?? "\(account.stage.rawValue)"), not FIELD")
        }
        if account.onHold {
            report(EngineRule.accountHold, subject: account.accountID, "account \(account.accountID) is on hold")
        }
        if account.location == nil {
            report(EngineRule.debtorLocation, subject: account.accountID, "the debtor's address has no coordinates")
        }
        return found
    }

    /// The most visits (this one included) in any 7 × 24 h window containing `visitMs`.
    static func busiestWeek(containing visitMs: Int64, others: [Int64]) -> Int {
        let week: Int64 = 7 * 86_400_000
        let times = (others + [visitMs]).sorted()
        var best = 0
        // Windows [t, t + week) with t a visit time at or before visitMs and within a week of it.
        for t in times where t <= visitMs && visitMs - t < week {
            best = max(best, times.count { $0 >= t && $0 < t + week })
        }
        return best
    }

    /// Why `visit` cannot be combined with `other` for one collector, or nil.
    static func conflict(visit: ProposedVisit, location: TypeV1.GeoPoint?, with other: BookedVisit,
                         travelSeconds: (TypeV1.GeoPoint, TypeV1.GeoPoint) -> Int) -> String? {
        if visit.windowStartMs < other.windowEndMs && other.windowStartMs < visit.windowEndMs {
            return "overlaps appointment \(other.appointmentID)"
        }
        guard let here = location, let there = other.location else { return nil }
        let travelMs = Int64(travelSeconds(here, there)) * 1000
        let gapMs = other.windowEndMs <= visit.windowStartMs
            ? visit.windowStartMs - other.windowEndMs
            : other.windowStartMs - visit.windowEndMs
        if gapMs < travelMs {
            return "\(gapMs / 60_000) min between this window and appointment \(other.appointmentID), \(travelMs / 60_000) min of travel needed"
        }
        return nil
    }

    static func statusName(_ status: SchedulingV1.AgencyStatus) -> String {
        switch status {
        case .active: "ACTIVE"
        case .suspended: "SUSPENDED"
        case .exited: "EXITED"
        default: "not active"
        }
    }
}

/// A collector's daily shift in their own zone: [start, end) minutes after local midnight.
public struct Shift: Sendable, Hashable {
    public var startMinutes: Int
    public var endMinutes: Int
    public var zone: TimeZone

    /// The collector's shift, or nil when the stored record lacks one (never after validation).
    public init?(_ collector: SchedulingV1.Collector) {
        guard let zone = TimeZone(identifier: collector.timeZone), let start = collector.shiftStart,
              let end = collector.shiftEnd else { return nil }
        self.startMinutes = Int(start.hours) * 60 + Int(start.minutes)
        self.endMinutes = Int(end.hours) * 60 + Int(end.minutes)
        self.zone = zone
    }

    /// Whether [startMs, endMs] lies inside the shift of the start's local day.
    public func contains(startMs: Int64, endMs: Int64) -> Bool {
        let dayStartMs = dayStart(containing: startMs)
        return startMs >= dayStartMs + Int64(startMinutes) * 60_000 && endMs <= dayStartMs + Int64(endMinutes) * 60_000
    }

    /// The instant of local midnight of the local day containing `ms`.
    public func dayStart(containing ms: Int64) -> Int64 {
        let local = DebtorLocalTime(ms: ms, zone: zone)
        return ms - local.millisecondOfDay
    }

    /// The shift's start and end instants on the local day containing `ms`.
    public func bounds(onDayOf ms: Int64) -> (startMs: Int64, endMs: Int64) {
        let midnight = dayStart(containing: ms)
        return (midnight + Int64(startMinutes) * 60_000, midnight + Int64(endMinutes) * 60_000)
    }

    var text: String {
        "\(RulePack.clockText(minutes: startMinutes))-\(RulePack.clockText(minutes: endMinutes)) \(zone.identifier)"
    }
}

extension CivilDate {
    /// The same day `months` months later, clamped to the month's last day (2025-02-28 + 12
    /// months = 2026-02-28; 2024-02-29 + 12 = 2025-02-28).
    public func adding(months: Int) -> CivilDate {
        let total = year * 12 + (month - 1) + months
        let newYear = total / 12
        let newMonth = total % 12 + 1
        let newDay = min(day, CivilDate.daysInMonth(year: newYear, month: newMonth))
        return CivilDate(year: newYear, month: newMonth, day: newDay) ?? self
    }
}
