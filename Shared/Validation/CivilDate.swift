import Foundation
import Models

/// A local calendar date in the proleptic Gregorian calendar, with no time zone: a due
/// date, a licence expiry, "today" in a debtor's zone.
///
/// Dates are counted as days since 1970-01-01 (`dayNumber`) with pure integer arithmetic
/// (Howard Hinnant's `days_from_civil` / `civil_from_days`,
/// https://howardhinnant.github.io/date_algorithms.html), never through Foundation's
/// `Calendar`, so the result does not depend on the process's locale or calendar.
///
/// `init?(year:month:day:)` accepts only valid dates of the years in `validYears`
/// (1900...2200), the range a request may carry; `init(dayNumber:)` and `adding(days:)`
/// are total, so arithmetic never fails near the edges of that range.
public struct CivilDate: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let year: Int
    /// 1...12.
    public let month: Int
    /// 1 to the month's length.
    public let day: Int

    /// The years a date given in a request may lie in.
    public static let validYears: ClosedRange<Int> = 1900...2200

    /// The date, if `year`-`month`-`day` is a real Gregorian date with `year` in `validYears`.
    public init?(year: Int, month: Int, day: Int) {
        guard Self.validYears.contains(year), Self.isValid(year: year, month: month, day: day) else { return nil }
        self.year = year
        self.month = month
        self.day = day
    }

    /// The date of a `doorstep.type.v1.Date`, if it is valid (see `init?(year:month:day:)`).
    public init?(_ proto: TypeV1.Date) {
        self.init(year: Int(proto.year), month: Int(proto.month), day: Int(proto.day))
    }

    /// The date `dayNumber` days after 1970-01-01 (before it when negative). Total: any
    /// day number gives a date, also outside `validYears`.
    public init(dayNumber: Int) {
        // civil_from_days: shift the epoch to 0000-03-01 so that leap days end each
        // 400-year era's years (March-based years), then split into era / year / day.
        let z = dayNumber + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097                                                  // 0...146096
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365  // 0...399
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)   // 0...365, from March 1
        let marchMonth = (5 * dayOfYear + 2) / 153                                        // 0...11, March = 0
        let month = marchMonth < 10 ? marchMonth + 3 : marchMonth - 9
        self.day = dayOfYear - (153 * marchMonth + 2) / 5 + 1
        self.month = month
        self.year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    }

    /// Days since 1970-01-01 (negative before it).
    public var dayNumber: Int {
        // days_from_civil, the inverse of init(dayNumber:).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400                                                     // 0...399
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1     // 0...365
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear      // 0...146096
        return era * 146_097 + dayOfEra - 719_468
    }

    /// When this date has ended in every time zone: 12:00 UTC on the next day (midnight at
    /// UTC-12, the last zone where it ends), in milliseconds since 1970. What is kept until a
    /// date may go then: never early, whatever the zone it was kept in, and at most 36 hours late.
    public var endedEverywhereMs: Int64 {
        Int64(adding(days: 1).dayNumber) * 86_400_000 + 12 * 3_600_000
    }

    /// The date `days` days later (earlier when negative).
    public func adding(days: Int) -> CivilDate {
        CivilDate(dayNumber: dayNumber + days)
    }

    /// Whole days from `other` to this date (positive when this date is later).
    public func days(since other: CivilDate) -> Int {
        dayNumber - other.dayNumber
    }

    /// The date as a contract message.
    public var proto: TypeV1.Date {
        TypeV1.Date(year: Int32(clamping: year), month: Int32(month), day: Int32(day))
    }

    /// The calendar date in `zone` at the instant `nowMs` (milliseconds since the Unix epoch),
    /// using the zone's UTC offset at that instant (daylight saving honoured).
    public static func today(in zone: TimeZone, nowMs: Int64) -> CivilDate {
        let instant = Date(timeIntervalSince1970: Double(nowMs) / 1000)
        let offsetSeconds = Int64(zone.secondsFromGMT(for: instant))
        let localSeconds = floorDivide(nowMs, 1000) + offsetSeconds
        return CivilDate(dayNumber: Int(floorDivide(localSeconds, 86_400)))
    }

    /// Whether `year` has a 29 February (Gregorian rule: every 4th year, except centuries
    /// not divisible by 400).
    public static func isLeapYear(_ year: Int) -> Bool {
        (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    }

    /// Number of days of `month` (1...12) in `year`; 0 for a month outside 1...12.
    public static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 1, 3, 5, 7, 8, 10, 12: return 31
        case 4, 6, 9, 11: return 30
        case 2: return isLeapYear(year) ? 29 : 28
        default: return 0
        }
    }

    /// Whether the three parts form a real Gregorian date (any year).
    public static func isValid(year: Int, month: Int, day: Int) -> Bool {
        (1...12).contains(month) && day >= 1 && day <= daysInMonth(year: year, month: month)
    }

    /// "YYYY-MM-DD" (ISO 8601 calendar date).
    public var description: String {
        Self.format(year: year, month: month, day: day)
    }

    public static func < (lhs: CivilDate, rhs: CivilDate) -> Bool {
        (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
    }

    /// "YYYY-MM-DD" for any three numbers, zero-padded (used to echo invalid input too).
    static func format(year: Int, month: Int, day: Int) -> String {
        let sign = year < 0 ? "-" : ""
        return "\(sign)\(pad(year.magnitude, 4))-\(pad(month.magnitude, 2))-\(pad(day.magnitude, 2))"
    }

    private static func pad(_ value: UInt, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}

/// Division rounding toward negative infinity (Swift's `/` truncates toward zero).
@inline(__always)
func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}
