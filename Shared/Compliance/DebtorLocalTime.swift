import Foundation
import Validation

/// An instant as the debtor's wall clock shows it: the local calendar date and the
/// milliseconds since local midnight, using the zone's UTC offset at that instant (daylight
/// saving honoured), the same way as `CivilDate.today(in:nowMs:)`.
struct DebtorLocalTime: Sendable, Hashable {
    static let millisecondsPerDay: Int64 = 86_400_000

    /// The debtor-local calendar date.
    let date: CivilDate
    /// Milliseconds since local midnight, 0 ..< 86_400_000.
    let millisecondOfDay: Int64

    init(ms: Int64, zone: TimeZone) {
        let instant = Date(timeIntervalSince1970: Double(ms) / 1000)
        let localMs = ms + Int64(zone.secondsFromGMT(for: instant)) * 1000
        let day = Self.floorDivide(localMs, Self.millisecondsPerDay)
        date = CivilDate(dayNumber: Int(day))
        millisecondOfDay = localMs - day * Self.millisecondsPerDay
    }

    /// "HH:MM" of the local time.
    var clockText: String {
        RulePack.clockText(minutes: Int(millisecondOfDay / 60_000))
    }

    /// Division rounding toward negative infinity (Swift's `/` truncates toward zero).
    private static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }
}
