import Foundation
import Models
import Validation

/// What a check found, before it is quoted as a `Violation` of the check's rule.
public struct Finding: Sendable, Hashable {
    /// The offending request field, if one is at fault.
    public var field: String
    /// The id of the entity at fault, when it is not the request.
    public var subject: String
    /// What was found, for people.
    public var detail: String

    public init(field: String = "", subject: String = "", _ detail: String) {
        self.field = field
        self.subject = subject
        self.detail = detail
    }
}

/// One visit rule: its id, the facts it reads (`Facts`), and the check.
public struct VisitCheck<Facts>: Sendable {
    public let rule: RuleID
    let find: @Sendable (Facts, VisitRules) -> [Finding]

    public init(_ rule: RuleID, find: @escaping @Sendable (Facts, VisitRules) -> [Finding]) {
        self.rule = rule
        self.find = find
    }

    /// The violations of `facts`, quoting `rules.pack`; empty = the rule holds.
    public func violations(_ facts: Facts, under rules: VisitRules) -> [TypeV1.Violation] {
        find(facts, rules).map { rule.violation(quoting: rules.pack, field: $0.field, subject: $0.subject, $0.detail) }
    }
}

extension Array {
    /// The violations of `facts` under every check, in order.
    public func violations<Facts>(_ facts: Facts, under rules: VisitRules) -> [TypeV1.Violation]
    where Element == VisitCheck<Facts> {
        flatMap { $0.violations(facts, under: rules) }
    }
}

/// The visit checks, one per rule, in the order of the scheduling.proto rule list.
public enum VisitChecks {
    // MARK: The window

    /// `contact-hours`: the whole window inside the pack's contact window of the start's
    /// debtor-local day, unless the debtor's request for it is on record and the pack
    /// allows that.
    public static let contactHours = VisitCheck<WindowFacts>(.contactHours) { window, rules in
        let pack = rules.pack
        if window.debtorRequest != nil && pack.debtorAgreedTimeOverridesContactHours { return [] }
        let allowed = pack.contactWindow(containing: window.startMs, in: window.zone)
        guard !allowed.contains(startMs: window.startMs, endMs: window.endMs) else { return [] }
        return [Finding(field: window.startMs < allowed.startMs ? "window_start_ms" : "window_end_ms",
                        "window \(windowText(window.startMs, window.endMs, window.zone)); \(pack.id) allows visits \(pack.contactWindowText) debtor-local")]
    }

    /// `advance-notice`: at booking the window starts at least the pack's notice period
    /// from now; at check-in the notice of the window was delivered at least that long
    /// before it. The lead time is shown exactly, never rounded up to the limit.
    public static let advanceNotice = VisitCheck<WindowFacts>(.advanceNotice) { window, rules in
        let pack = rules.pack
        let noticeMs = Int64(pack.advanceNoticeHours) * 3_600_000
        switch window.checkPoint {
        case .booking:
            let lead = window.startMs - window.nowMs
            guard lead < noticeMs else { return [] }
            let when = lead >= 0 ? "starts \(durationText(lead)) from now" : "started \(durationText(-lead)) ago"
            return [Finding(field: "window_start_ms", "window \(when); \(pack.id) requires \(pack.advanceNoticeHours) h notice")]
        case .checkIn(let delivered):
            guard let delivered else { return [Finding("the customer notice of this window was never delivered")] }
            let lead = window.startMs - delivered
            guard lead < noticeMs else { return [] }
            let when = lead >= 0 ? "\(durationText(lead)) before the window" : "\(durationText(-lead)) after the window started"
            return [Finding("notice delivered \(when); \(pack.id) requires \(pack.advanceNoticeHours) h")]
        }
    }

    /// `visit-window-length`: between the configured minimum and maximum length.
    public static let visitWindowLength = VisitCheck<WindowFacts>(.visitWindowLength) { window, rules in
        let settings = rules.settings
        let lengthMs = window.endMs - window.startMs
        guard lengthMs < Int64(settings.minWindowMinutes) * 60_000 || lengthMs > Int64(settings.maxWindowMinutes) * 60_000
        else { return [] }
        return [Finding(field: "window_end_ms",
                        "window lasts \(minutesText(lengthMs)); allowed \(settings.minWindowMinutes)-\(settings.maxWindowMinutes) min")]
    }

    // MARK: The crew and its credentials

    /// `crew-size`: at least the pack's number of distinct collectors.
    public static let crewSize = VisitCheck<CrewFacts>(.crewSize) { crew, rules in
        let size = Set(crew.crew).count
        guard size < rules.pack.crewSize else { return [] }
        return [Finding(field: "crew_collector_ids", "crew of \(size); \(rules.pack.id) requires at least \(rules.pack.crewSize)")]
    }

    /// `crew-same-agency`: every member of one agency.
    public static let crewSameAgency = VisitCheck<CrewFacts>(.crewSameAgency) { crew, _ in
        let agencies = crew.agencyIDs
        guard agencies.count > 1 else { return [] }
        return [Finding(field: "crew_collector_ids",
                        "crew belongs to \(agencies.count) agencies: \(agencies.joined(separator: ", "))")]
    }

    /// `agency-status`: every crew agency ACTIVE on the whitelist.
    public static let agencyStatus = VisitCheck<CrewFacts>(.agencyStatus) { crew, _ in
        crew.agencyRecords.filter { $0.status != .active }.map { agency in
            Finding(subject: agency.id,
                    "agency \(agency.id) is \(statusName(agency.status))\(agency.statusReason.isEmpty ? "" : ": \(agency.statusReason)")")
        }
    }

    /// `agency-licence`: every crew agency's licence valid on the visit date.
    public static let agencyLicence = VisitCheck<CrewFacts>(.agencyLicence) { crew, _ in
        crew.agencyRecords.compactMap { agency in
            guard let expiry = CivilDate(agency.licenceExpiryDate ?? TypeV1.Date()), crew.visitDate > expiry else { return nil }
            return Finding(subject: agency.id, "licence of agency \(agency.id) expired on \(expiry); visit on \(crew.visitDate)")
        }
    }

    /// `agency-inspection`: every crew agency inspected within the pack's period before the
    /// visit date (skipped when the pack sets none).
    public static let agencyInspection = VisitCheck<CrewFacts>(.agencyInspection) { crew, rules in
        guard let months = rules.pack.inspectionValidityMonths else { return [] }
        return crew.agencyRecords.compactMap { agency in
            guard let inspected = CivilDate(agency.lastInspectionDate ?? TypeV1.Date()) else { return nil }
            let validUntil = inspected.adding(months: months)
            guard crew.visitDate > validUntil else { return nil }
            return Finding(subject: agency.id,
                           "agency \(agency.id) last inspected on \(inspected), valid until \(validUntil); visit on \(crew.visitDate)")
        }
    }

    /// `agency-region`: every crew agency serves the debtor's region.
    public static let agencyRegion = VisitCheck<CrewFacts>(.agencyRegion) { crew, _ in
        crew.agencyRecords.filter { !$0.regionsServed.contains(crew.regionCode) }.map { agency in
            Finding(subject: agency.id, "agency \(agency.id) does not serve region \(crew.regionCode)")
        }
    }

    /// `collector-status`: no crew member suspended.
    public static let collectorStatus = VisitCheck<CrewFacts>(.collectorStatus) { crew, _ in
        crew.members.filter { $0.record.status == .suspended }.map { member in
            Finding(field: "crew_collector_ids[\(member.index)]", subject: member.id, "collector \(member.id) is suspended")
        }
    }

    /// `collector-certification`: every member's certification valid on the visit date.
    public static let collectorCertification = VisitCheck<CrewFacts>(.collectorCertification) { crew, _ in
        crew.members.compactMap { member in
            guard let expiry = CivilDate(member.record.certificationExpiryDate ?? TypeV1.Date()), crew.visitDate > expiry
            else { return nil }
            return Finding(field: "crew_collector_ids[\(member.index)]", subject: member.id,
                           "certification of collector \(member.id) expired on \(expiry); visit on \(crew.visitDate)")
        }
    }

    // MARK: The crew's day

    /// `collector-shift`: the window inside every member's shift (in the member's zone).
    public static let collectorShift = VisitCheck<CrewScheduleFacts>(.collectorShift) { day, _ in
        day.members.compactMap { member in
            guard let shift = Shift(member.record), !shift.contains(startMs: day.startMs, endMs: day.endMs) else { return nil }
            return Finding(field: "crew_collector_ids[\(member.index)]", subject: member.id,
                           "collector \(member.id) works \(shift.text); window \(windowText(day.startMs, day.endMs, day.zone))")
        }
    }

    /// `collector-capacity`: no member above their daily capacity on the window's day (in
    /// the member's zone), this visit included.
    public static let collectorCapacity = VisitCheck<CrewScheduleFacts>(.collectorCapacity) { day, _ in
        day.members.compactMap { member in
            let memberZone = TimeZone(identifier: member.record.timeZone) ?? day.zone
            let date = DebtorLocalTime(ms: day.startMs, zone: memberZone).date
            let sameDay = day.bookings.count {
                $0.crew.contains(member.id) && DebtorLocalTime(ms: $0.windowStartMs, zone: memberZone).date == date
            }
            guard sameDay + 1 > Int(member.record.dailyCapacity) else { return nil }
            return Finding(field: "crew_collector_ids[\(member.index)]", subject: member.id,
                           "collector \(member.id) already has \(sameDay) visits on \(date); capacity \(member.record.dailyCapacity)")
        }
    }

    /// `collector-double-booked`: no member's other booking overlaps the window or leaves
    /// too little time to travel between the two (the first such booking is reported).
    public static let collectorDoubleBooked = VisitCheck<CrewScheduleFacts>(.collectorDoubleBooked) { day, _ in
        day.crew.enumerated().compactMap { index, member in
            for other in day.bookings where other.crew.contains(member) {
                if let conflict = conflict(startMs: day.startMs, endMs: day.endMs, location: day.location, with: other,
                                           travelSeconds: day.travelSeconds) {
                    return Finding(field: "crew_collector_ids[\(index)]", subject: member, "collector \(member): \(conflict)")
                }
            }
            return nil
        }
    }

    // MARK: The account's visits

    /// `visit-daily-cap`: at most the cap's visits to the account on the window's
    /// debtor-local day, this one included.
    public static let visitDailyCap = VisitCheck<AccountVisitsFacts>(.visitDailyCap) { visits, rules in
        let cap = rules.settings.visitDailyCap ?? rules.pack.visitDailyCap
        let date = DebtorLocalTime(ms: visits.startMs, zone: visits.zone).date
        let sameDay = visits.bookings.count { DebtorLocalTime(ms: $0.windowStartMs, zone: visits.zone).date == date }
        guard sameDay + 1 > cap else { return [] }
        return [Finding(field: "window_start_ms", subject: visits.accountID,
                        "account already has \(sameDay) visit\(sameDay == 1 ? "" : "s") on \(date); cap \(cap) per day")]
    }

    /// `visit-weekly-cap`: at most the cap's visits to the account in the busiest 7 × 24 h
    /// containing the window's start, this one included.
    public static let visitWeeklyCap = VisitCheck<AccountVisitsFacts>(.visitWeeklyCap) { visits, rules in
        let cap = rules.settings.visitWeeklyCap ?? rules.pack.visitWeeklyCap
        let busiest = busiestWeek(containing: visits.startMs, others: visits.bookings.map(\.windowStartMs))
        guard busiest > cap else { return [] }
        return [Finding(field: "window_start_ms", subject: visits.accountID, "\(busiest) visits to the account within 7 days; cap \(cap)")]
    }

    // MARK: The account

    /// `account-stage`: the account is in FIELD.
    public static let accountStage = VisitCheck<VisitedAccount>(.accountStage) { account, _ in
        guard account.stage != .field else { return [] }
        return [Finding(subject: account.accountID,
                        "account \(account.accountID) is in stage \(account.stage.protoName ?? "\(account.stage.rawValue)"), not FIELD")]
    }

    /// `account-hold`: the account is on no hold.
    public static let accountHold = VisitCheck<VisitedAccount>(.accountHold) { account, _ in
        account.onHold ? [Finding(subject: account.accountID, "account \(account.accountID) is on hold")] : []
    }

    /// `debtor-location`: the debtor's address has coordinates, and no visit found it wrong
    /// since it was last corrected.
    public static let debtorLocation = VisitCheck<VisitedAccount>(.debtorLocation) { account, _ in
        var findings: [Finding] = []
        if account.location == nil { findings.append(Finding(subject: account.accountID, "the debtor's address has no coordinates")) }
        if let wrong = account.wrongAddress {
            let day = DebtorLocalTime(ms: wrong.visitedMs, zone: account.timeZone).date
            findings.append(Finding(subject: account.accountID,
                                    "the debtor's address was found wrong at visit \(wrong.visitId) on \(day); correct it with UpdateDebtor"))
        }
        return findings
    }

    // MARK: Groups

    /// The checks of the crew's credentials that a booked crew must still pass on the day it
    /// visits (the day planner; the others were judged at booking).
    public static let credentials: [VisitCheck<CrewFacts>] = [
        agencyStatus, agencyLicence, agencyInspection, collectorStatus, collectorCertification,
    ]

    /// The account's visit caps (the day planner judges its candidate stops with them).
    public static let caps: [VisitCheck<AccountVisitsFacts>] = [visitDailyCap, visitWeeklyCap]

    // MARK: Helpers

    /// A non-negative duration as people read it, floored to the minute so that it never
    /// reaches a limit it falls short of: "23 h 59 min", "24 h", "45 min", "under 1 min".
    public static func durationText(_ ms: Int64) -> String {
        let minutes = ms / 60_000
        if minutes == 0 { return ms == 0 ? "0 min" : "under 1 min" }
        let hours = minutes / 60
        let rest = minutes % 60
        if hours == 0 { return "\(rest) min" }
        return rest == 0 ? "\(hours) h" : "\(hours) h \(rest) min"
    }

    /// A length in minutes, exact: "240 min", "240 min 30 s", "29 min 59.999 s" — never a
    /// floored or rounded figure that would read as inside the allowed range.
    public static func minutesText(_ ms: Int64) -> String {
        let minutes = ms / 60_000
        let rest = ms % 60_000
        if rest == 0 { return "\(minutes) min" }
        if rest % 1000 == 0 { return "\(minutes) min \(rest / 1000) s" }
        let fraction = String(rest % 1000 + 1000).dropFirst()
        return "\(minutes) min \(rest / 1000).\(fraction) s"
    }

    /// "2026-03-12 20:00-22:00 Asia/Shanghai": a window on the wall clock of `zone`.
    static func windowText(_ startMs: Int64, _ endMs: Int64, _ zone: TimeZone) -> String {
        let start = DebtorLocalTime(ms: startMs, zone: zone)
        let end = DebtorLocalTime(ms: endMs, zone: zone)
        return "\(start.date) \(start.clockText)-\(end.clockText) \(zone.identifier)"
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

    /// Why a visit from `startMs` to `endMs` at `location` cannot be combined with `other`
    /// for one collector, or nil.
    static func conflict(startMs: Int64, endMs: Int64, location: TypeV1.GeoPoint?, with other: BookedVisit,
                         travelSeconds: (TypeV1.GeoPoint, TypeV1.GeoPoint) -> Int) -> String? {
        if startMs < other.windowEndMs && other.windowStartMs < endMs {
            return "overlaps appointment \(other.appointmentID)"
        }
        guard let here = location, let there = other.location else { return nil }
        let travelMs = Int64(travelSeconds(here, there)) * 1000
        let gapMs = other.windowEndMs <= startMs ? startMs - other.windowEndMs : other.windowStartMs - endMs
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
