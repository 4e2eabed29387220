import Models
import SchedulingService
import Testing
import Validation

/// "field: problem" (INVALID_ARGUMENT at the service edge), as every validator reports.
private func invalid(_ field: String, _ problem: String) -> DomainError {
    .invalidArgument(field, problem)
}

/// A date known to be valid (test constants only).
private func day(_ year: Int, _ month: Int, _ day: Int) -> CivilDate {
    guard let date = CivilDate(year: year, month: month, day: day) else {
        fatalError("test constant \(year)-\(month)-\(day) is not a valid date")
    }
    return date
}

@Suite("Agency validation (RegisterAgency)")
struct AgencyValidationTests {
    static let today = day(2026, 3, 10)

    static let valid = SchedulingV1.Agency(
        id: "agy_01HZY3V9Q6X1M8N2B4C7D5E0FG",
        displayName: "上海示例资产管理有限公司",
        licenceNumber: "SH-COLL-2024-0001",
        licenceExpiryDate: TypeV1.Date(year: 2027, month: 6, day: 30),
        regionsServed: ["310115", "310104", "310101"],
        lastInspectionDate: TypeV1.Date(year: 2025, month: 11, day: 1),
        status: .suspended,
        statusReason: "pending re-inspection",
        version: 3,
        createdMs: 1_700_000_000_000,
        updatedMs: 1_700_000_000_001
    )

    /// The error validating `valid` changed by `change` gives, or nil if it passes.
    func failure(_ change: (inout SchedulingV1.Agency) -> Void) -> DomainError? {
        var agency = Self.valid
        change(&agency)
        do {
            _ = try RegistryValidation.agency(agency, today: Self.today)
            return nil
        } catch {
            return error
        }
    }

    @Test("a valid agency comes back with output-only fields cleared")
    func validAgency() throws {
        let agency = try RegistryValidation.agency(Self.valid, today: Self.today)
        var expected = Self.valid
        expected.id = ""
        expected.status = .unspecified
        expected.statusReason = ""
        expected.version = 0
        expected.createdMs = 0
        expected.updatedMs = 0
        #expect(agency == expected)
    }

    @Test("an absent agency is required")
    func absent() {
        #expect(throws: invalid("agency", "required")) { try RegistryValidation.agency(nil, today: Self.today) }
    }

    @Test("names, numbers and dates are named by their paths")
    func fields() {
        #expect(failure { $0.displayName = "" } == invalid("agency.display_name", "required"))
        #expect(failure { $0.displayName = String(repeating: "司", count: 200) } == nil)
        #expect(failure { $0.displayName = String(repeating: "司", count: 201) } == invalid("agency.display_name", "must be at most 200 characters"))
        #expect(failure { $0.licenceNumber = "" } == invalid("agency.licence_number", "required"))
        #expect(failure { $0.licenceNumber = String(repeating: "9", count: 64) } == nil)
        #expect(failure { $0.licenceNumber = String(repeating: "9", count: 65) } == invalid("agency.licence_number", "must be at most 64 characters"))
        #expect(failure { $0.licenceExpiryDate = nil } == invalid("agency.licence_expiry_date", "required"))
        #expect(failure { $0.licenceExpiryDate = TypeV1.Date(year: 2027, month: 2, day: 29) }
            == invalid("agency.licence_expiry_date", "not a valid date: 2027-02-29"))
        #expect(failure { $0.lastInspectionDate = nil } == invalid("agency.last_inspection_date", "required"))
    }

    @Test("regions served: 1-500 distinct valid region codes")
    func regions() {
        #expect(failure { $0.regionsServed = [] } == invalid("agency.regions_served", "required"))
        #expect(failure { $0.regionsServed = (0..<500).map { "R\($0)" } } == nil)
        #expect(failure { $0.regionsServed = (0..<501).map { "R\($0)" } } == invalid("agency.regions_served", "at most 500 entries"))
        #expect(failure { $0.regionsServed = ["310101", "310115", "310104", "310115"] }
            == invalid("agency.regions_served[3]", "duplicate of regions_served[1]"))
        #expect(failure { $0.regionsServed = ["310101", "31 0115"] }
            == invalid("agency.regions_served[1]", "must contain only [0-9A-Za-z-]"))
        #expect(failure { $0.regionsServed = ["310101", ""] } == invalid("agency.regions_served[1]", "required"))
        // Matching is by exact string equality, so case differences are distinct codes.
        #expect(failure { $0.regionsServed = ["ab", "AB"] } == nil)
    }

    @Test("the last inspection may be today, not later")
    func inspectionDate() {
        #expect(failure { $0.lastInspectionDate = TypeV1.Date(year: 2026, month: 3, day: 10) } == nil)
        #expect(failure { $0.lastInspectionDate = TypeV1.Date(year: 2026, month: 3, day: 11) }
            == invalid("agency.last_inspection_date", "must not be after today (2026-03-10)"))
    }

    @Test("fields are checked in proto order: the first invalid one is reported")
    func firstErrorWins() {
        #expect(failure {
            $0.lastInspectionDate = nil
            $0.regionsServed = []
            $0.licenceNumber = ""
        } == invalid("agency.licence_number", "required"))
    }
}

@Suite("Collector validation (RegisterCollector)")
struct CollectorValidationTests {
    static let valid = SchedulingV1.Collector(
        id: "col_01HZY3V9Q6X1M8N2B4C7D5E0FG",
        agencyId: "agy_01HZY3V9Q6X1M8N2B4C7D5E0FG",
        fullName: "王五",
        certificationNumber: "CERT-2025-0042",
        certificationExpiryDate: TypeV1.Date(year: 2027, month: 1, day: 31),
        regionCode: "310115",
        homeLocation: TypeV1.GeoPoint(latitude: 31.2214, longitude: 121.5447),
        timeZone: "Asia/Shanghai",
        shiftStart: TypeV1.TimeOfDay(hours: 9, minutes: 0),
        shiftEnd: TypeV1.TimeOfDay(hours: 18, minutes: 0),
        dailyCapacity: 8,
        status: .suspended,
        suspensions: [SchedulingV1.Suspension(id: "sus_01HZY3V9Q6X1M8N2B4C7D5E0FG", reason: .agencyDecision, active: true)],
        version: 2,
        createdMs: 1_700_000_000_000,
        updatedMs: 1_700_000_000_001
    )

    /// The error validating `valid` changed by `change` gives, or nil if it passes.
    func failure(_ change: (inout SchedulingV1.Collector) -> Void) -> DomainError? {
        var collector = Self.valid
        change(&collector)
        do {
            _ = try RegistryValidation.collector(collector)
            return nil
        } catch {
            return error
        }
    }

    @Test("a valid collector comes back with output-only fields cleared")
    func validCollector() throws {
        let collector = try RegistryValidation.collector(Self.valid)
        var expected = Self.valid
        expected.id = ""
        expected.status = .unspecified
        expected.suspensions = []
        expected.version = 0
        expected.createdMs = 0
        expected.updatedMs = 0
        #expect(collector == expected)
    }

    @Test("an absent collector is required")
    func absent() {
        #expect(throws: invalid("collector", "required")) { try RegistryValidation.collector(nil) }
    }

    @Test("each invalid field is named by its path")
    func fields() {
        #expect(failure { $0.agencyId = "" } == invalid("collector.agency_id", "required"))
        #expect(failure { $0.agencyId = "acc_01HZY3V9Q6X1M8N2B4C7D5E0FG" } == invalid("collector.agency_id", "not a valid agy_ id"))
        #expect(failure { $0.fullName = "" } == invalid("collector.full_name", "required"))
        #expect(failure { $0.fullName = String(repeating: "王", count: 101) } == invalid("collector.full_name", "must be at most 100 characters"))
        #expect(failure { $0.certificationNumber = "" } == invalid("collector.certification_number", "required"))
        #expect(failure { $0.certificationNumber = String(repeating: "C", count: 65) }
            == invalid("collector.certification_number", "must be at most 64 characters"))
        #expect(failure { $0.certificationExpiryDate = nil } == invalid("collector.certification_expiry_date", "required"))
        #expect(failure { $0.certificationExpiryDate = TypeV1.Date(year: 2027, month: 4, day: 31) }
            == invalid("collector.certification_expiry_date", "not a valid date: 2027-04-31"))
        #expect(failure { $0.regionCode = "" } == invalid("collector.region_code", "required"))
        #expect(failure { $0.homeLocation = nil } == invalid("collector.home_location", "required"))
        #expect(failure { $0.homeLocation?.latitude = 100 } == invalid("collector.home_location.latitude", "must be between -90 and 90"))
        #expect(failure { $0.homeLocation?.longitude = -181 } == invalid("collector.home_location.longitude", "must be between -180 and 180"))
        #expect(failure { $0.timeZone = "" } == invalid("collector.time_zone", "required"))
        #expect(failure { $0.timeZone = "CST" } == invalid("collector.time_zone", "unknown IANA zone"))
    }

    @Test("shift: start and end required, end after start on the same day, 24:00 only as the end")
    func shift() {
        #expect(failure { $0.shiftStart = nil } == invalid("collector.shift_start", "required"))
        #expect(failure { $0.shiftEnd = nil } == invalid("collector.shift_end", "required"))
        #expect(failure { $0.shiftStart = TypeV1.TimeOfDay(hours: 24, minutes: 0) } == invalid("collector.shift_start.hours", "must be between 0 and 23"))
        #expect(failure { $0.shiftEnd = TypeV1.TimeOfDay(hours: 24, minutes: 0) } == nil)
        #expect(failure { $0.shiftEnd = TypeV1.TimeOfDay(hours: 9, minutes: 1) } == nil)
        #expect(failure { $0.shiftEnd = TypeV1.TimeOfDay(hours: 9, minutes: 0) } == invalid("collector.shift_end", "must be after shift_start"))
        #expect(failure { $0.shiftEnd = TypeV1.TimeOfDay(hours: 2, minutes: 0) } == invalid("collector.shift_end", "must be after shift_start"))
        #expect(failure { $0.shiftEnd = TypeV1.TimeOfDay(hours: 18, minutes: 60) } == invalid("collector.shift_end.minutes", "must be between 0 and 59"))
    }

    @Test("daily capacity: 1 to 50", arguments: [
        (Int32(0), false), (Int32(1), true), (Int32(50), true), (Int32(51), false), (Int32(-1), false),
    ])
    func dailyCapacity(capacity: Int32, accepted: Bool) {
        let result = failure { $0.dailyCapacity = capacity }
        #expect(result == (accepted ? nil : invalid("collector.daily_capacity", "must be between 1 and 50")))
    }

    @Test("fields are checked in proto order: the first invalid one is reported")
    func firstErrorWins() {
        #expect(failure {
            $0.dailyCapacity = 0
            $0.timeZone = ""
            $0.agencyId = ""
        } == invalid("collector.agency_id", "required"))
    }
}
