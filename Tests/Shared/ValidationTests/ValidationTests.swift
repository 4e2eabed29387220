import Foundation
import Models
import Testing
import Validation

/// "field: problem" (INVALID_ARGUMENT at the service edge), as every validator reports.
private func invalid(_ field: String, _ problem: String) -> DomainError {
    .invalidArgument(field, problem)
}

/// A "random" generator returning the same 64 bits forever.
private struct ConstantGenerator: RandomNumberGenerator {
    var value: UInt64
    mutating func next() -> UInt64 { value }
}

// MARK: - CivilDate

@Suite("CivilDate: proleptic Gregorian dates as day numbers")
struct CivilDateTests {
    @Test("known anchors map to their day numbers and back", arguments: [
        (1970, 1, 1, 0),
        (1969, 12, 31, -1),
        (2000, 2, 29, 11_016),
        (2000, 3, 1, 11_017),
        (2024, 2, 29, 19_782),
        (1900, 1, 1, -25_567),
        (2200, 12, 31, 84_370),
    ])
    func anchors(year: Int, month: Int, day: Int, dayNumber: Int) throws {
        let date = try #require(CivilDate(year: year, month: month, day: day))
        #expect(date.dayNumber == dayNumber)
        #expect(CivilDate(dayNumber: dayNumber) == date)
        #expect(CivilDate(dayNumber: dayNumber).year == year)
        #expect(CivilDate(dayNumber: dayNumber).month == month)
        #expect(CivilDate(dayNumber: dayNumber).day == day)
    }

    @Test("day numbers outside 1900-2200 still convert (checked against Python's datetime)")
    func farDayNumbers() {
        #expect(CivilDate(dayNumber: -100_000).description == "1696-03-17")
        #expect(CivilDate(dayNumber: 100_000).description == "2243-10-17")
        #expect(CivilDate(dayNumber: -135_080).description == "1600-03-01")
    }

    @Test("every 37th day number from -100000 to 100000 round-trips")
    func roundTripWideRange() {
        let failures = stride(from: -100_000, through: 100_000, by: 37).filter { CivilDate(dayNumber: $0).dayNumber != $0 }
        #expect(failures.isEmpty)
    }

    @Test("every day of 1900-2200 follows its predecessor and rebuilds from its parts")
    func consecutiveDays() throws {
        let first = try #require(CivilDate(year: 1900, month: 1, day: 1))
        let last = try #require(CivilDate(year: 2200, month: 12, day: 31))
        var previous = first
        var mismatches: [String] = []
        for number in (first.dayNumber + 1)...last.dayNumber {
            let date = CivilDate(dayNumber: number)
            let sameMonth = date.year == previous.year && date.month == previous.month
            let isNextDayOfMonth = sameMonth && date.day == previous.day + 1
            let previousWasLastOfMonth = previous.day == CivilDate.daysInMonth(year: previous.year, month: previous.month)
            let nextMonthSameYear = date.year == previous.year && date.month == previous.month + 1
            let januaryOfNextYear = date.year == previous.year + 1 && date.month == 1 && previous.month == 12
            let isFirstOfNextMonth = date.day == 1 && previousWasLastOfMonth && (nextMonthSameYear || januaryOfNextYear)
            let rebuilt = CivilDate(year: date.year, month: date.month, day: date.day)
            if !(isNextDayOfMonth || isFirstOfNextMonth) || rebuilt != date || !(previous < date) {
                mismatches.append("\(previous) → \(date)")
            }
            previous = date
        }
        #expect(mismatches.isEmpty)
        #expect(previous == last)
    }

    @Test("leap years: every 4th, not centuries, except every 400th", arguments: [
        (1900, false), (2000, true), (2023, false), (2024, true), (2100, false), (2400, true),
    ])
    func leapYears(year: Int, isLeap: Bool) {
        #expect(CivilDate.isLeapYear(year) == isLeap)
        #expect(CivilDate.daysInMonth(year: year, month: 2) == (isLeap ? 29 : 28))
        #expect((CivilDate(year: year, month: 2, day: 29) != nil) == (isLeap && CivilDate.validYears.contains(year)))
    }

    @Test("invalid dates and years outside 1900-2200 are rejected", arguments: [
        (2026, 2, 30), (2026, 4, 31), (2026, 1, 32), (2026, 13, 1), (2026, 0, 1), (2026, 1, 0),
        (2023, 2, 29), (1900, 2, 29), (1899, 12, 31), (2201, 1, 1), (0, 0, 0), (-1, 1, 1),
    ])
    func invalidDates(year: Int, month: Int, day: Int) {
        #expect(CivilDate(year: year, month: month, day: day) == nil)
    }

    @Test("adding days crosses month, leap day and year boundaries")
    func addingDays() throws {
        let leapEve = try #require(CivilDate(year: 2024, month: 2, day: 28))
        #expect(leapEve.adding(days: 1).description == "2024-02-29")
        #expect(leapEve.adding(days: 2).description == "2024-03-01")
        #expect(leapEve.adding(days: 0) == leapEve)
        let newYear = try #require(CivilDate(year: 2025, month: 1, day: 1))
        #expect(newYear.adding(days: -1).description == "2024-12-31")
        #expect(newYear.adding(days: 365).description == "2026-01-01")
        #expect(newYear.adding(days: 31).days(since: newYear) == 31)
        #expect(newYear.days(since: leapEve) == 308)
    }

    @Test("ordering, description and the contract form")
    func orderingAndForms() throws {
        let a = try #require(CivilDate(year: 2023, month: 12, day: 31))
        let b = try #require(CivilDate(year: 2024, month: 1, day: 1))
        let c = try #require(CivilDate(year: 2024, month: 1, day: 2))
        #expect(a < b && b < c && !(b < a))
        #expect([c, a, b].sorted() == [a, b, c])
        #expect(a.description == "2023-12-31")
        #expect(CivilDate(year: 1900, month: 1, day: 9)?.description == "1900-01-09")
        #expect(b.proto == TypeV1.Date(year: 2024, month: 1, day: 1))
        #expect(CivilDate(TypeV1.Date(year: 2024, month: 1, day: 2)) == c)
        #expect(CivilDate(TypeV1.Date(year: 2024, month: 2, day: 30)) == nil)
    }

    @Test("today is the date in the zone at the instant, DST and negative instants included", arguments: [
        // 2024-12-31T16:00:00Z is midnight of 2025-01-01 in Shanghai (UTC+8).
        (Int64(1_735_660_800_000), "Asia/Shanghai", "2025-01-01"),
        (Int64(1_735_660_799_999), "Asia/Shanghai", "2024-12-31"),
        (Int64(1_735_660_800_000), "UTC", "2024-12-31"),
        (Int64(1_735_689_600_000), "UTC", "2025-01-01"),
        // 2025-01-01T00:00:00Z is 19:00 on 31 December in New York (EST, UTC-5).
        (Int64(1_735_689_600_000), "America/New_York", "2024-12-31"),
        // 2024-07-01T04:30:00Z is 00:30 on 1 July in New York under EDT (UTC-4), not EST.
        (Int64(1_719_808_200_000), "America/New_York", "2024-07-01"),
        (Int64(-1), "UTC", "1969-12-31"),
        (Int64(0), "UTC", "1970-01-01"),
    ])
    func today(nowMs: Int64, zone: String, expected: String) throws {
        let timeZone = try #require(TimeZone(identifier: zone))
        #expect(CivilDate.today(in: timeZone, nowMs: nowMs).description == expected)
    }
}

// MARK: - Identifiers

@Suite("Validate: identifiers")
struct IdentifierValidationTests {
    @Test("request ids: 1-64 of [A-Za-z0-9._:-]", arguments: [
        "a", "550e8400-e29b-41d4-a716-446655440000", "A.b_c:d-9", String(repeating: "z", count: 64),
    ])
    func validRequestIDs(_ value: String) throws {
        try Validate.requestID(value)
    }

    @Test("request ids: empty, too long, or with another character are refused")
    func invalidRequestIDs() {
        #expect(throws: invalid("request_id", "required")) { try Validate.requestID("") }
        #expect(throws: invalid("request_id", "must be at most 64 characters")) {
            try Validate.requestID(String(repeating: "z", count: 65))
        }
        for bad in ["a b", "a/b", "a\u{0}", "é", "a+b", "\n"] {
            #expect(throws: invalid("request_id", "must contain only [A-Za-z0-9._:-]")) { try Validate.requestID(bad) }
        }
        #expect(throws: invalid("other_id", "required")) { try Validate.requestID("", field: "other_id") }
    }

    @Test("external ids: 1-64 printable ASCII, no spaces", arguments: [
        "!", "~", "CUST-0001/2024#7", String(repeating: "x", count: 64),
    ])
    func validExternalIDs(_ value: String) throws {
        try Validate.externalID(value, field: "external_id")
    }

    @Test("external ids: empty, too long, spaces, control or non-ASCII characters are refused")
    func invalidExternalIDs() {
        #expect(throws: invalid("external_id", "required")) { try Validate.externalID("", field: "external_id") }
        #expect(throws: invalid("external_id", "must be at most 64 characters")) {
            try Validate.externalID(String(repeating: "x", count: 65), field: "external_id")
        }
        for bad in ["a b", " ", "\u{7F}", "\u{0}", "é", "a\tb"] {
            #expect(throws: invalid("external_id", "must be printable ASCII without spaces")) {
                try Validate.externalID(bad, field: "external_id")
            }
        }
    }

    @Test("resource ids: the prefix, an underscore and 26 upper-case Crockford base32 characters")
    func validResourceIDs() throws {
        try Validate.resourceID("acc_01HZY3V9Q6X1M8N2B4C7D5E0FG", field: "account_id", prefix: "acc")
        try Validate.resourceID("agy_" + String(repeating: "Z", count: 26), field: "agency_id", prefix: "agy")
        try Validate.resourceID("dbt_" + String(repeating: "0", count: 26), field: "debtor_id", prefix: "dbt")
    }

    @Test("resource ids: wrong length, prefix, case or alphabet are refused", arguments: [
        "acc_01HZY3V9Q6X1M8N2B4C7D5E0F",      // 25 characters
        "acc_01HZY3V9Q6X1M8N2B4C7D5E0FGH",    // 27 characters
        "acc_01hzy3v9q6x1m8n2b4c7d5e0fg",     // lower case
        "acc_01HZY3V9Q6X1M8N2B4C7D5E0FI",     // I is not Crockford
        "acc_01HZY3V9Q6X1M8N2B4C7D5E0FL",     // L is not Crockford
        "acc_01HZY3V9Q6X1M8N2B4C7D5E0FO",     // O is not Crockford
        "acc_01HZY3V9Q6X1M8N2B4C7D5E0FU",     // U is not Crockford
        "dbt_01HZY3V9Q6X1M8N2B4C7D5E0FG",     // another prefix
        "acc01HZY3V9Q6X1M8N2B4C7D5E0FGX",     // no underscore
        "acc_01HZY3V9Q6X1M8N2B4C7D5E0F\u{0}",
    ])
    func invalidResourceIDs(_ value: String) {
        #expect(throws: invalid("account_id", "not a valid acc_ id")) {
            try Validate.resourceID(value, field: "account_id", prefix: "acc")
        }
    }

    @Test("resource ids: empty is required")
    func emptyResourceID() {
        #expect(throws: invalid("account_id", "required")) { try Validate.resourceID("", field: "account_id", prefix: "acc") }
    }
}

// MARK: - Text

@Suite("Validate: text")
struct TextValidationTests {
    @Test("lengths are counted in characters, both bounds inclusive")
    func lengths() throws {
        #expect(try Validate.text("a", field: "name", min: 1, max: 100) == "a")
        #expect(try Validate.text(String(repeating: "张", count: 100), field: "name", min: 1, max: 100).count == 100)
        #expect(try Validate.text("👨‍👩‍👧", field: "name", min: 1, max: 1) == "👨‍👩‍👧")
        #expect(throws: invalid("name", "must be at most 100 characters")) {
            try Validate.text(String(repeating: "张", count: 101), field: "name", min: 1, max: 100)
        }
        #expect(throws: invalid("name", "must be at least 2 characters")) {
            try Validate.text("a", field: "name", min: 2, max: 100)
        }
    }

    @Test("empty: allowed with min 0, required otherwise")
    func empty() throws {
        #expect(try Validate.text("", field: "note", min: 0, max: 500) == "")
        #expect(throws: invalid("name", "required")) { try Validate.text("", field: "name", min: 1, max: 100) }
    }

    @Test("line feed and tab are allowed", arguments: ["line 1\nline 2", "a\tb"])
    func allowedControls(_ value: String) throws {
        #expect(try Validate.text(value, field: "address.text", min: 1, max: 500) == value)
    }

    @Test("U+0000 and other C0 controls are refused", arguments: [
        "\u{0}", "a\u{0}b", "a\rb", "line\r\nline", "\u{1B}[31m", "\u{1F}", "\u{7}",
    ])
    func forbiddenControls(_ value: String) {
        #expect(throws: invalid("address.text", "must not contain control characters")) {
            try Validate.text(value, field: "address.text", min: 1, max: 500)
        }
    }
}

// MARK: - Dates, zones, times, instants

@Suite("Validate: calendar and clock")
struct ClockValidationTests {
    @Test("dates: required, valid, within 1900-2200")
    func dates() throws {
        #expect(try Validate.date(TypeV1.Date(year: 2024, month: 2, day: 29), field: "due_date").description == "2024-02-29")
        #expect(try Validate.date(TypeV1.Date(year: 1900, month: 1, day: 1), field: "due_date").description == "1900-01-01")
        #expect(try Validate.date(TypeV1.Date(year: 2200, month: 12, day: 31), field: "due_date").description == "2200-12-31")
        #expect(throws: invalid("due_date", "required")) { try Validate.date(nil, field: "due_date") }
        #expect(throws: invalid("due_date", "required")) { try Validate.date(TypeV1.Date(), field: "due_date") }
        #expect(throws: invalid("due_date", "not a valid date: 2026-02-30")) {
            try Validate.date(TypeV1.Date(year: 2026, month: 2, day: 30), field: "due_date")
        }
        #expect(throws: invalid("due_date", "not a valid date: 2026-13-01")) {
            try Validate.date(TypeV1.Date(year: 2026, month: 13, day: 1), field: "due_date")
        }
        #expect(throws: invalid("due_date", "not a valid date: 0000-01-00")) {
            try Validate.date(TypeV1.Date(year: 0, month: 1, day: 0), field: "due_date")
        }
        #expect(throws: invalid("due_date", "must be between 1900-01-01 and 2200-12-31")) {
            try Validate.date(TypeV1.Date(year: 1899, month: 12, day: 31), field: "due_date")
        }
        #expect(throws: invalid("due_date", "must be between 1900-01-01 and 2200-12-31")) {
            try Validate.date(TypeV1.Date(year: 2201, month: 1, day: 1), field: "due_date")
        }
    }

    @Test("optional dates: absent or all zero is nil")
    func optionalDates() throws {
        #expect(try Validate.optionalDate(nil, field: "paid_date") == nil)
        #expect(try Validate.optionalDate(TypeV1.Date(), field: "paid_date") == nil)
        #expect(try Validate.optionalDate(TypeV1.Date(year: 2025, month: 1, day: 1), field: "paid_date")?.dayNumber == 20_089)
        #expect(throws: invalid("paid_date", "not a valid date: 2025-00-01")) {
            try Validate.optionalDate(TypeV1.Date(year: 2025, month: 0, day: 1), field: "paid_date")
        }
    }

    @Test("time zones: IANA Area/Location names and UTC", arguments: ["Asia/Shanghai", "America/New_York", "Europe/London", "UTC"])
    func validZones(_ name: String) throws {
        let zone = try Validate.timeZone(name, field: "time_zone")
        #expect(zone == TimeZone(identifier: name))
    }

    @Test("time zones: abbreviations and unknown names are refused", arguments: ["CST", "GMT", "EST", "Mars/Olympus_Mons", "Asia/Nowhere", "+08:00"])
    func invalidZones(_ name: String) {
        #expect(throws: invalid("time_zone", "unknown IANA zone")) { try Validate.timeZone(name, field: "time_zone") }
    }

    @Test("time zones: empty is required")
    func emptyZone() {
        #expect(throws: invalid("time_zone", "required")) { try Validate.timeZone("", field: "time_zone") }
    }

    @Test("times of day: minutes since midnight, 24:00 only at the end of a range")
    func timesOfDay() throws {
        #expect(try Validate.timeOfDay(TypeV1.TimeOfDay(hours: 0, minutes: 0), field: "shift_start", allowEndOfDay: false) == 0)
        #expect(try Validate.timeOfDay(TypeV1.TimeOfDay(hours: 23, minutes: 59), field: "shift_start", allowEndOfDay: false) == 1439)
        #expect(try Validate.timeOfDay(TypeV1.TimeOfDay(hours: 24, minutes: 0), field: "shift_end", allowEndOfDay: true) == 1440)
        #expect(throws: invalid("shift_start.hours", "must be between 0 and 23")) {
            try Validate.timeOfDay(TypeV1.TimeOfDay(hours: 24, minutes: 0), field: "shift_start", allowEndOfDay: false)
        }
        #expect(throws: invalid("shift_end.minutes", "must be 0 when hours is 24")) {
            try Validate.timeOfDay(TypeV1.TimeOfDay(hours: 24, minutes: 1), field: "shift_end", allowEndOfDay: true)
        }
        #expect(throws: invalid("shift_end.hours", "must be between 0 and 24")) {
            try Validate.timeOfDay(TypeV1.TimeOfDay(hours: 25, minutes: 0), field: "shift_end", allowEndOfDay: true)
        }
        #expect(throws: invalid("shift_start.hours", "must be between 0 and 23")) {
            try Validate.timeOfDay(TypeV1.TimeOfDay(hours: -1, minutes: 0), field: "shift_start", allowEndOfDay: false)
        }
        #expect(throws: invalid("shift_start.minutes", "must be between 0 and 59")) {
            try Validate.timeOfDay(TypeV1.TimeOfDay(hours: 12, minutes: 60), field: "shift_start", allowEndOfDay: false)
        }
        #expect(throws: invalid("shift_start", "required")) {
            try Validate.timeOfDay(nil, field: "shift_start", allowEndOfDay: false)
        }
    }

    @Test("instants: 2000-01-01T00:00:00Z to 2100-01-01T00:00:00Z inclusive; 0 is unset")
    func instants() throws {
        #expect(try Validate.instantMs(946_684_800_000, field: "attempted_ms", required: true) == 946_684_800_000)
        #expect(try Validate.instantMs(4_102_444_800_000, field: "attempted_ms", required: true) == 4_102_444_800_000)
        #expect(try Validate.instantMs(0, field: "attempted_ms", required: false) == nil)
        #expect(Validate.minInstantMs == 946_684_800_000)
        #expect(Validate.maxInstantMs == 4_102_444_800_000)
        let outOfRange = invalid("attempted_ms", "must be between 2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z")
        let outside: [Int64] = [946_684_799_999, 4_102_444_800_001, -1, 1, .max, .min]
        for value in outside {
            #expect(throws: outOfRange) { try Validate.instantMs(value, field: "attempted_ms", required: false) }
        }
        #expect(throws: invalid("attempted_ms", "required")) { try Validate.instantMs(0, field: "attempted_ms", required: true) }
    }
}

// MARK: - Places and money

@Suite("Validate: places and money")
struct PlaceAndMoneyValidationTests {
    @Test("region codes: 1-16 of [0-9A-Za-z-]")
    func regionCodes() throws {
        try Validate.regionCode("310115", field: "region_code")
        try Validate.regionCode("a-Z-0", field: "region_code")
        try Validate.regionCode(String(repeating: "9", count: 16), field: "region_code")
        #expect(throws: invalid("region_code", "required")) { try Validate.regionCode("", field: "region_code") }
        #expect(throws: invalid("region_code", "must be at most 16 characters")) {
            try Validate.regionCode(String(repeating: "9", count: 17), field: "region_code")
        }
        for bad in ["310 115", "310_115", "浦东", "31011\u{0}"] {
            #expect(throws: invalid("region_code", "must contain only [0-9A-Za-z-]")) { try Validate.regionCode(bad, field: "region_code") }
        }
    }

    @Test("currency codes: three upper-case ASCII letters")
    func currencyCodes() throws {
        try Validate.currencyCode("CNY", field: "currency_code")
        try Validate.currencyCode("USD", field: "currency_code")
        #expect(throws: invalid("currency_code", "required")) { try Validate.currencyCode("", field: "currency_code") }
        for bad in ["cny", "CN", "CNYY", "C1Y", "ÇNY"] {
            #expect(throws: invalid("currency_code", "must be three upper-case letters (ISO 4217)")) {
                try Validate.currencyCode(bad, field: "currency_code")
            }
        }
    }

    @Test("money: amount first, then currency, then the account's currency")
    func money() throws {
        #expect(try Validate.money(TypeV1.Money(amountMinor: 1, currencyCode: "CNY"), field: "principal", currency: nil, allowZero: false) == 1)
        #expect(try Validate.money(TypeV1.Money(amountMinor: 0, currencyCode: "CNY"), field: "amount_paid", currency: "CNY", allowZero: true) == 0)
        #expect(try Validate.money(TypeV1.Money(amountMinor: .max, currencyCode: "USD"), field: "principal", currency: "USD", allowZero: false) == .max)
        #expect(throws: invalid("principal", "required")) {
            try Validate.money(nil, field: "principal", currency: nil, allowZero: false)
        }
        #expect(throws: invalid("principal.amount_minor", "must be greater than 0")) {
            try Validate.money(TypeV1.Money(amountMinor: 0, currencyCode: "CNY"), field: "principal", currency: nil, allowZero: false)
        }
        #expect(throws: invalid("principal.amount_minor", "must not be negative")) {
            try Validate.money(TypeV1.Money(amountMinor: -1, currencyCode: "CNY"), field: "principal", currency: nil, allowZero: true)
        }
        #expect(throws: invalid("principal.currency_code", "required")) {
            try Validate.money(TypeV1.Money(amountMinor: 100, currencyCode: ""), field: "principal", currency: nil, allowZero: false)
        }
        #expect(throws: invalid("principal.currency_code", "must be three upper-case letters (ISO 4217)")) {
            try Validate.money(TypeV1.Money(amountMinor: 100, currencyCode: "cny"), field: "principal", currency: nil, allowZero: false)
        }
        #expect(throws: invalid("amount.currency_code", "must be CNY, the account's currency")) {
            try Validate.money(TypeV1.Money(amountMinor: 100, currencyCode: "USD"), field: "amount", currency: "CNY", allowZero: false)
        }
    }

    @Test("geo points: finite, latitude -90...90, longitude -180...180 inclusive")
    func geoPoints() throws {
        #expect(try Validate.geoPoint(TypeV1.GeoPoint(latitude: 90, longitude: 180), field: "location", required: true) != nil)
        #expect(try Validate.geoPoint(TypeV1.GeoPoint(latitude: -90, longitude: -180), field: "location", required: true) != nil)
        #expect(try Validate.geoPoint(TypeV1.GeoPoint(), field: "location", required: true) == TypeV1.GeoPoint())
        #expect(try Validate.geoPoint(nil, field: "location", required: false) == nil)
        #expect(throws: invalid("location", "required")) { try Validate.geoPoint(nil, field: "location", required: true) }
        let badLatitudes: [Double] = [90.000001, -90.000001, .nan, .infinity]
        for latitude in badLatitudes {
            #expect(throws: invalid("location.latitude", "must be between -90 and 90")) {
                try Validate.geoPoint(TypeV1.GeoPoint(latitude: latitude, longitude: 0), field: "location", required: false)
            }
        }
        let badLongitudes: [Double] = [180.1, -180.000001, .nan, -.infinity]
        for longitude in badLongitudes {
            #expect(throws: invalid("location.longitude", "must be between -180 and 180")) {
                try Validate.geoPoint(TypeV1.GeoPoint(latitude: 0, longitude: longitude), field: "location", required: false)
            }
        }
    }
}

// MARK: - Paging

@Suite("Validate: page size")
struct PageSizeTests {
    @Test("0 is the default, above the maximum is coerced, negative is refused", arguments: [
        (Int32(0), 50), (Int32(1), 1), (Int32(499), 499), (Int32(500), 500), (Int32(501), 500), (Int32.max, 500),
    ])
    func pageSizes(value: Int32, expected: Int) throws {
        #expect(try Validate.pageSize(value) == expected)
    }

    @Test("custom default and maximum")
    func customBounds() throws {
        #expect(try Validate.pageSize(0, defaultSize: 20, max: 100) == 20)
        #expect(try Validate.pageSize(101, defaultSize: 20, max: 100) == 100)
    }

    @Test("negative sizes are refused", arguments: [Int32(-1), Int32.min])
    func negative(_ value: Int32) {
        #expect(throws: invalid("page_size", "must not be negative")) { try Validate.pageSize(value) }
    }
}

// MARK: - IDGenerator

@Suite("IDGenerator: ULID resource ids")
struct IDGeneratorTests {
    // The ULID specification's example timestamp: 1469918176385 ms is "01ARYZ6S41".
    static let specTimestamp: Int64 = 1_469_918_176_385

    @Test("timestamp then randomness, Crockford base32, 26 characters")
    func layout() {
        var zeros = ConstantGenerator(value: 0)
        var ones = ConstantGenerator(value: .max)
        #expect(IDGenerator.make(prefix: "acc", nowMs: Self.specTimestamp, using: &zeros) == "acc_01ARYZ6S410000000000000000")
        #expect(IDGenerator.make(prefix: "acc", nowMs: Self.specTimestamp, using: &ones) == "acc_01ARYZ6S41ZZZZZZZZZZZZZZZZ")
    }

    @Test("timestamps outside 48 bits are clamped")
    func clamping() {
        var zeros = ConstantGenerator(value: 0)
        #expect(IDGenerator.make(prefix: "evt", nowMs: -5, using: &zeros) == "evt_" + String(repeating: "0", count: 26))
        #expect(IDGenerator.make(prefix: "evt", nowMs: .max, using: &zeros) == "evt_7ZZZZZZZZZ0000000000000000")
    }

    @Test("a later millisecond sorts after, whatever the randomness")
    func ordering() {
        var zeros = ConstantGenerator(value: 0)
        var ones = ConstantGenerator(value: .max)
        let earlier = IDGenerator.make(prefix: "pay", nowMs: Self.specTimestamp, using: &ones)
        let later = IDGenerator.make(prefix: "pay", nowMs: Self.specTimestamp + 1, using: &zeros)
        #expect(earlier < later)
    }

    @Test("system randomness: valid ids that differ")
    func systemRandom() throws {
        let first = IDGenerator.make(prefix: "acc", nowMs: Self.specTimestamp)
        let second = IDGenerator.make(prefix: "acc", nowMs: Self.specTimestamp)
        try Validate.resourceID(first, field: "id", prefix: "acc")
        try Validate.resourceID(second, field: "id", prefix: "acc")
        #expect(first.hasPrefix("acc_01ARYZ6S41"))
        #expect(first.count == 30)
        #expect(first != second)
    }
}
