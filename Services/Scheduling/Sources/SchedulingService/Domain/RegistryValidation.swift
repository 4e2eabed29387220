import Models
import Validation

/// Checks the agencies and collectors sent to RegisterAgency and RegisterCollector
/// (scheduling.proto `Agency`, `Collector`) field by field in proto field order; the first
/// invalid field is reported as INVALID_ARGUMENT naming its path, e.g.
/// "agency.regions_served[3]: duplicate of regions_served[1]". UpdateAgency and
/// UpdateCollector apply the fields their `update_mask` names to the stored record and check
/// the result the same way; RecordInspection's fields are checked here too.
///
/// What needs the store (unique licence and certification numbers, the agency's existence,
/// status and regions) is checked by the handlers, not here.
public enum RegistryValidation {
    /// Most regions an agency may serve (scheduling.proto `Agency.regions_served`).
    public static let maxRegionsServed = 500
    /// Allowed daily visit capacity of a collector (scheduling.proto `Collector.daily_capacity`).
    public static let dailyCapacity: ClosedRange<Int32> = 1...50
    /// Allowed declared daily visit capacity of an agency, 0 = not declared
    /// (scheduling.proto `Agency.daily_visit_capacity`).
    public static let agencyDailyVisitCapacity: ClosedRange<Int32> = 0...100_000
    /// Allowed placement capacity of an agency, 0 = none by rule (scheduling.proto
    /// `Agency.placement_capacity`).
    public static let agencyPlacementCapacity: ClosedRange<Int32> = 0...1_000_000

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
        guard agencyDailyVisitCapacity.contains(agency.dailyVisitCapacity) else {
            throw .invalidArgument(
                "\(field).daily_visit_capacity",
                "must be between \(agencyDailyVisitCapacity.lowerBound) and \(agencyDailyVisitCapacity.upperBound)")
        }
        guard agencyPlacementCapacity.contains(agency.placementCapacity) else {
            throw .invalidArgument(
                "\(field).placement_capacity",
                "must be between \(agencyPlacementCapacity.lowerBound) and \(agencyPlacementCapacity.upperBound)")
        }
        try contact(agency.contact, field: "\(field).contact")

        agency.id = ""
        agency.status = .unspecified
        agency.statusReason = ""
        agency.version = 0
        agency.createdMs = 0
        agency.updatedMs = 0
        agency.inspections = []
        agency.statusChanges = []
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
        try contact(collector.contact, field: "\(field).contact")

        collector.id = ""
        collector.status = .unspecified
        collector.suspensions = []
        collector.version = 0
        collector.createdMs = 0
        collector.updatedMs = 0
        return collector
    }

    // MARK: Contacts

    /// A contact on record (scheduling.proto `ContactDetails`), absent = none: a name of
    /// 0-100 characters, a phone of 0-32 characters of digits, spaces and `+-()` with at least
    /// 5 digits, an e-mail address of 0-254 characters without spaces and with text on both
    /// sides of one "@"; a phone or an e-mail address is required.
    public static func contact(_ contact: SchedulingV1.ContactDetails?, field: String) throws(DomainError) {
        guard let contact else { return }
        try Validate.text(contact.name, field: "\(field).name", min: 0, max: 100)
        if !contact.phone.isEmpty {
            guard contact.phone.count <= 32 else { throw .invalidArgument("\(field).phone", "must be at most 32 characters") }
            guard contact.phone.allSatisfy({ $0.isASCII && ($0.isNumber || " +-()".contains($0)) }) else {
                throw .invalidArgument("\(field).phone", "must contain only digits, spaces and + - ( )")
            }
            guard contact.phone.count(where: \.isNumber) >= 5 else {
                throw .invalidArgument("\(field).phone", "must have at least 5 digits")
            }
        }
        if !contact.email.isEmpty {
            guard contact.email.count <= 254 else { throw .invalidArgument("\(field).email", "must be at most 254 characters") }
            let parts = contact.email.split(separator: "@", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
                  !contact.email.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F })
            else {
                throw .invalidArgument("\(field).email", "not an e-mail address")
            }
        }
        guard !contact.phone.isEmpty || !contact.email.isEmpty else {
            throw .invalidArgument("\(field).phone", "required: a contact needs a phone or an e-mail address")
        }
    }

    // MARK: Updates

    /// The fields UpdateAgency may change, by their `update_mask` names.
    public enum AgencyField: String, CaseIterable, Sendable {
        case displayName = "display_name"
        case licenceNumber = "licence_number"
        case licenceExpiryDate = "licence_expiry_date"
        case regionsServed = "regions_served"
        case dailyVisitCapacity = "daily_visit_capacity"
        case contact
        case placementCapacity = "placement_capacity"
    }

    /// The fields UpdateCollector may change, by their `update_mask` names.
    public enum CollectorField: String, CaseIterable, Sendable {
        case fullName = "full_name"
        case certificationNumber = "certification_number"
        case certificationExpiryDate = "certification_expiry_date"
        case regionCode = "region_code"
        case homeLocation = "home_location"
        case timeZone = "time_zone"
        case shiftStart = "shift_start"
        case shiftEnd = "shift_end"
        case dailyCapacity = "daily_capacity"
        case contact
    }

    /// The fields an `update_mask` names (`Validate.updateMask`).
    public static func updateMask<Field: RawRepresentable & CaseIterable>(
        _ mask: [String], of type: Field.Type, field: String = "update_mask"
    ) throws(DomainError) -> [Field] where Field.RawValue == String {
        try Validate.updateMask(mask, of: type, field: field)
    }

    /// `current` with the fields `mask` names taken from `patch`, checked as RegisterAgency
    /// checks an agency (errors name "agency.<field>"); its output-only fields are kept.
    public static func updatedAgency(
        _ current: SchedulingV1.Agency, with patch: SchedulingV1.Agency?, mask: [String], today: CivilDate
    ) throws(DomainError) -> SchedulingV1.Agency {
        let fields = try updateMask(mask, of: AgencyField.self)
        guard let patch else { throw .invalidArgument("agency", "required: the new values") }
        var changed = current
        for field in fields {
            switch field {
            case .displayName: changed.displayName = patch.displayName
            case .licenceNumber: changed.licenceNumber = patch.licenceNumber
            case .licenceExpiryDate: changed.licenceExpiryDate = patch.licenceExpiryDate
            case .regionsServed: changed.regionsServed = patch.regionsServed
            case .dailyVisitCapacity: changed.dailyVisitCapacity = patch.dailyVisitCapacity
            case .contact: changed.contact = patch.contact
            case .placementCapacity: changed.placementCapacity = patch.placementCapacity
            }
        }
        var checked = try agency(changed, today: today)
        checked.id = current.id
        checked.status = current.status
        checked.statusReason = current.statusReason
        checked.version = current.version
        checked.createdMs = current.createdMs
        checked.updatedMs = current.updatedMs
        checked.inspections = current.inspections
        checked.statusChanges = current.statusChanges
        return checked
    }

    /// `current` with the fields `mask` names taken from `patch`, checked as RegisterCollector
    /// checks a collector (errors name "collector.<field>"); its agency and output-only fields
    /// are kept.
    public static func updatedCollector(
        _ current: SchedulingV1.Collector, with patch: SchedulingV1.Collector?, mask: [String]
    ) throws(DomainError) -> SchedulingV1.Collector {
        let fields = try updateMask(mask, of: CollectorField.self)
        guard let patch else { throw .invalidArgument("collector", "required: the new values") }
        var changed = current
        for field in fields {
            switch field {
            case .fullName: changed.fullName = patch.fullName
            case .certificationNumber: changed.certificationNumber = patch.certificationNumber
            case .certificationExpiryDate: changed.certificationExpiryDate = patch.certificationExpiryDate
            case .regionCode: changed.regionCode = patch.regionCode
            case .homeLocation: changed.homeLocation = patch.homeLocation
            case .timeZone: changed.timeZone = patch.timeZone
            case .shiftStart: changed.shiftStart = patch.shiftStart
            case .shiftEnd: changed.shiftEnd = patch.shiftEnd
            case .dailyCapacity: changed.dailyCapacity = patch.dailyCapacity
            case .contact: changed.contact = patch.contact
            }
        }
        var checked = try collector(changed)
        checked.id = current.id
        checked.status = current.status
        checked.suspensions = current.suspensions
        checked.version = current.version
        checked.createdMs = current.createdMs
        checked.updatedMs = current.updatedMs
        return checked
    }

    // MARK: Inspections

    /// RecordInspection's fields (scheduling.proto `RecordInspectionRequest`), in field order:
    /// the date (required, not after `today`), the result (PASSED or FAILED), the inspector
    /// (1-200 characters) and the findings (at most 2000 characters; required for FAILED,
    /// which names them in the suspension). Returns the inspection date.
    public static func inspection(_ request: SchedulingV1.RecordInspectionRequest, today: CivilDate) throws(DomainError) -> CivilDate {
        let date = try Validate.date(request.inspectionDate, field: "inspection_date")
        guard date <= today else { throw .invalidArgument("inspection_date", "must not be after today (\(today))") }
        switch request.result {
        case .passed, .failed: break
        case .unrecognized(let value): throw .invalidArgument("result", "unknown value \(value)")
        default: throw .invalidArgument("result", "required")
        }
        try Validate.text(request.inspector, field: "inspector", min: 1, max: 200)
        try Validate.text(request.findings, field: "findings", min: request.result == .failed ? 1 : 0, max: 2000)
        return date
    }
}
