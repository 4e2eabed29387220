import Models
import Validation

/// Checks the agencies and collectors sent to RegisterAgency and RegisterCollector
/// (scheduling.proto `Agency`, `Collector`) field by field in proto field order; the first
/// invalid field is reported as INVALID_ARGUMENT naming its path, e.g.
/// "agency.regions_served[3]: duplicate of regions_served[1]".
///
/// What needs the store (unique licence and certification numbers, the agency's existence,
/// status and regions) is checked by the handlers, not here.
public enum RegistryValidation {
    /// Most regions an agency may serve (scheduling.proto `Agency.regions_served`).
    public static let maxRegionsServed = 500
    /// Allowed daily visit capacity of a collector (scheduling.proto `Collector.daily_capacity`).
    public static let dailyCapacity: ClosedRange<Int32> = 1...50

    /// The agency with every output-only field cleared (id, status, status reason, version,
    /// timestamps). `today` is the registry's current date: an inspection cannot have
    /// happened after it.
    public static func agency(_ agency: SchedulingV1.Agency?, today: CivilDate, field: String = "agency") throws(DomainError) -> SchedulingV1.Agency {
        guard var agency else { throw .invalidArgument(field, "required") }
        try Validate.text(agency.displayName, field: "\(field).display_name", min: 1, max: 200)
        try Validate.text(agency.licenceNumber, field: "\(field).licence_number", min: 1, max: 64)
        _ = try Validate.date(agency.licenceExpiryDate, field: "\(field).licence_expiry_date")

        let regionsField = "\(field).regions_served"
        guard !agency.regionsServed.isEmpty else { throw .invalidArgument(regionsField, "required") }
        guard agency.regionsServed.count <= maxRegionsServed else {
            throw .invalidArgument(regionsField, "at most \(maxRegionsServed) entries")
        }
        var firstIndex: [String: Int] = [:]
        for (index, region) in agency.regionsServed.enumerated() {
            try Validate.regionCode(region, field: "\(regionsField)[\(index)]")
            if let earlier = firstIndex[region] {
                throw .invalidArgument("\(regionsField)[\(index)]", "duplicate of regions_served[\(earlier)]")
            }
            firstIndex[region] = index
        }

        let inspected = try Validate.date(agency.lastInspectionDate, field: "\(field).last_inspection_date")
        guard inspected <= today else {
            throw .invalidArgument("\(field).last_inspection_date", "must not be after today (\(today))")
        }

        agency.id = ""
        agency.status = .unspecified
        agency.statusReason = ""
        agency.version = 0
        agency.createdMs = 0
        agency.updatedMs = 0
        return agency
    }

    /// The collector with every output-only field cleared (id, status, suspensions, version,
    /// timestamps).
    public static func collector(_ collector: SchedulingV1.Collector?, field: String = "collector") throws(DomainError) -> SchedulingV1.Collector {
        guard var collector else { throw .invalidArgument(field, "required") }
        try Validate.resourceID(collector.agencyId, field: "\(field).agency_id", prefix: "agy")
        try Validate.text(collector.fullName, field: "\(field).full_name", min: 1, max: 100)
        try Validate.text(collector.certificationNumber, field: "\(field).certification_number", min: 1, max: 64)
        _ = try Validate.date(collector.certificationExpiryDate, field: "\(field).certification_expiry_date")
        try Validate.regionCode(collector.regionCode, field: "\(field).region_code")
        try Validate.geoPoint(collector.homeLocation, field: "\(field).home_location", required: true)
        _ = try Validate.timeZone(collector.timeZone, field: "\(field).time_zone")
        let shiftStart = try Validate.timeOfDay(collector.shiftStart, field: "\(field).shift_start", allowEndOfDay: false)
        let shiftEnd = try Validate.timeOfDay(collector.shiftEnd, field: "\(field).shift_end", allowEndOfDay: true)
        guard shiftEnd > shiftStart else {
            throw .invalidArgument("\(field).shift_end", "must be after shift_start")
        }
        guard dailyCapacity.contains(collector.dailyCapacity) else {
            throw .invalidArgument(
                "\(field).daily_capacity",
                "must be between \(dailyCapacity.lowerBound) and \(dailyCapacity.upperBound)"
            )
        }

        collector.id = ""
        collector.status = .unspecified
        collector.suspensions = []
        collector.version = 0
        collector.createdMs = 0
        collector.updatedMs = 0
        return collector
    }
}
