import Models
import Validation

/// Which identity rules a debtor's personal data is checked against; chosen by the
/// deployment's rule pack (docs/DOMAIN.md ("Regulation as code")).
public struct DebtorRules: Sendable, Hashable {
    /// Whether `national_id` must be a PRC resident identity number (GB 11643-1999, the
    /// cn-* packs). When false, any 1-32 characters of [0-9A-Za-z] are accepted.
    /// Default: true.
    public var requirePRCNationalID: Bool

    public init(requirePRCNationalID: Bool = true) {
        self.requirePRCNationalID = requirePRCNationalID
    }

    /// `requirePRCNationalID` true.
    public static var defaults: DebtorRules { DebtorRules() }
}

/// Checks a debtor sent to CreateDebtor (accounts.proto `Debtor`, `EmergencyContact`)
/// field by field in proto field order; the first invalid field is reported.
public enum DebtorValidation {
    /// At most this many emergency contacts (accounts.proto `Debtor.emergency_contacts`).
    public static let maxEmergencyContacts = 5

    /// The debtor, normalised (phones as E.164, the national id's check character
    /// upper-case) and with every output-only field cleared (ids, version, timestamps,
    /// `personal_data_masked`, `address_unverified` and its finding); or INVALID_ARGUMENT
    /// naming the field path, e.g.
    /// "debtor.emergency_contacts[2].phone: required".
    public static func validate(_ debtor: AccountsV1.Debtor?, rules: DebtorRules, field: String = "debtor") throws(DomainError) -> AccountsV1.Debtor {
        guard var debtor else { throw .invalidArgument(field, "required") }

        try Validate.externalID(debtor.externalId, field: "\(field).external_id")
        try Validate.text(debtor.fullName, field: "\(field).full_name", min: 1, max: 100)
        debtor.nationalId = try nationalID(debtor.nationalId, field: "\(field).national_id", rules: rules)
        debtor.phone = try PhoneNumber.normalised(debtor.phone, field: "\(field).phone")
        try address(debtor.address, field: "\(field).address")
        _ = try Validate.timeZone(debtor.timeZone, field: "\(field).time_zone")

        let contactsField = "\(field).emergency_contacts"
        guard debtor.emergencyContacts.count <= maxEmergencyContacts else {
            throw .invalidArgument(contactsField, "at most \(maxEmergencyContacts) entries")
        }
        for index in debtor.emergencyContacts.indices {
            debtor.emergencyContacts[index] = try emergencyContact(
                debtor.emergencyContacts[index], field: "\(contactsField)[\(index)]"
            )
        }

        debtor.id = ""
        debtor.personalDataMasked = false
        debtor.version = 0
        debtor.createdMs = 0
        debtor.updatedMs = 0
        debtor.addressUnverified = false
        debtor.wrongAddressFinding = nil
        return debtor
    }

    /// A national identity number under `rules`, normalised.
    static func nationalID(_ value: String, field: String, rules: DebtorRules) throws(DomainError) -> String {
        if rules.requirePRCNationalID {
            return try PRCResidentID.validate(value, field: field)
        }
        guard !value.isEmpty else { throw .invalidArgument(field, "required") }
        guard value.utf8.count <= 32, value.utf8.allSatisfy(isASCIIAlphanumeric) else {
            throw .invalidArgument(field, "must be 1-32 characters of [0-9A-Za-z]")
        }
        return value
    }

    /// The home address: required, text 1-500 characters, a region code, a postal code of
    /// 0-16 characters and an optional but valid location (types.proto `Address`).
    static func address(_ value: TypeV1.Address?, field: String) throws(DomainError) {
        guard let value else { throw .invalidArgument(field, "required") }
        try Validate.text(value.text, field: "\(field).text", min: 1, max: 500)
        try Validate.regionCode(value.regionCode, field: "\(field).region_code")
        try Validate.text(value.postalCode, field: "\(field).postal_code", min: 0, max: 16)
        try Validate.geoPoint(value.location, field: "\(field).location", required: false)
    }

    /// One emergency contact, normalised, its output-only id cleared.
    static func emergencyContact(_ value: AccountsV1.EmergencyContact, field: String) throws(DomainError) -> AccountsV1.EmergencyContact {
        var contact = value
        try Validate.text(contact.fullName, field: "\(field).full_name", min: 1, max: 100)
        switch contact.relationship {
        case .unspecified:
            throw .invalidArgument("\(field).relationship", "required")
        case .unrecognized(let number):
            throw .invalidArgument("\(field).relationship", "unknown value \(number)")
        case .spouse, .parent, .child, .sibling, .otherRelative, .friend, .colleague, .other:
            break
        }
        contact.phone = try PhoneNumber.normalised(contact.phone, field: "\(field).phone")
        contact.id = ""
        return contact
    }

    private static func isASCIIAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
            || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
    }
}
