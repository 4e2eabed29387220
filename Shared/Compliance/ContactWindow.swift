import Foundation
import Validation

/// The pack's contact window (`contact-hours`) on one debtor-local day, as instants:
/// contact is allowed from `startMs` (inclusive) to `endMs` (exclusive); a visit window may
/// end exactly at `endMs`.
public struct ContactWindow: Sendable, Hashable {
    /// When the debtor's wall clock shows the pack's start time that day.
    public var startMs: Int64
    /// When it shows the pack's end time (the next midnight for an end of 24:00).
    public var endMs: Int64

    /// Whether a contact at `ms` is inside the window.
    public func contains(_ ms: Int64) -> Bool {
        ms >= startMs && ms < endMs
    }

    /// Whether a visit from `startMs` to `endMs` lies wholly inside the window.
    public func contains(startMs: Int64, endMs: Int64) -> Bool {
        startMs >= self.startMs && endMs <= self.endMs
    }
}

extension RulePack {
    /// The contact window on the debtor-local `date` in `zone`: the instants at which the
    /// debtor's wall clock shows `contactHoursStartMinutes` and `contactHoursEndMinutes`
    /// that day, daylight saving honoured. The one derivation of the window every check,
    /// the day planner and the contact budget use.
    public func contactWindow(on date: CivilDate, in zone: TimeZone) -> ContactWindow {
        ContactWindow(startMs: DebtorLocalTime.instant(on: date, minutes: contactHoursStartMinutes, in: zone),
                      endMs: DebtorLocalTime.instant(on: date, minutes: contactHoursEndMinutes, in: zone))
    }

    /// The contact window of the debtor-local day containing `ms`.
    public func contactWindow(containing ms: Int64, in zone: TimeZone) -> ContactWindow {
        contactWindow(on: DebtorLocalTime(ms: ms, zone: zone).date, in: zone)
    }
}

extension DebtorLocalTime {
    /// The instant at which the wall clock in `zone` shows `minutes` after midnight of
    /// `date` (1440 = the next midnight): the inverse of `init(ms:zone:)`. A wall-clock time
    /// skipped by a daylight-saving jump gives the instant of the same offset as before the
    /// jump (so it falls just after it).
    static func instant(on date: CivilDate, minutes: Int, in zone: TimeZone) -> Int64 {
        let wallClock = Int64(date.dayNumber) * millisecondsPerDay + Int64(minutes) * 60_000
        func offsetMs(at ms: Int64) -> Int64 {
            Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(ms) / 1000))) * 1000
        }
        let guess = wallClock - offsetMs(at: wallClock)
        let adjusted = wallClock - offsetMs(at: guess)
        if adjusted + offsetMs(at: adjusted) == wallClock { return adjusted }
        if guess + offsetMs(at: guess) == wallClock { return guess }
        return max(guess, adjusted)
    }
}

extension CivilDate {
    /// The instant (milliseconds since the Unix epoch) at which this date begins in `zone`.
    public func startMs(in zone: TimeZone) -> Int64 {
        DebtorLocalTime.instant(on: self, minutes: 0, in: zone)
    }
}
