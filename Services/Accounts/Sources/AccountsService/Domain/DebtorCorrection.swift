import Models
import Validation

/// UpdateDebtor's rules (accounts.proto `UpdateDebtorRequest`): the fields its `update_mask`
/// names are taken from the request's debtor and checked as CreateDebtor checks them
/// (`DebtorValidation`, errors naming "debtor.<field>"); every other field, and every
/// output-only one, keeps its stored value.
public enum DebtorCorrection {
    /// The fields UpdateDebtor may change, by their `update_mask` names.
    public enum Field: String, CaseIterable, Sendable {
        /// The whole address: text, region code, postal code and coordinates.
        case address
        /// Only the address's coordinates.
        case addressLocation = "address.location"
        case phone
        case emergencyContacts = "emergency_contacts"
        case timeZone = "time_zone"

        /// Whether changing it re-checks the address, and so clears `address_unverified`.
        public var correctsAddress: Bool { self == .address || self == .addressLocation }
    }

    /// The trail's name of the flag a wrong-address visit sets and an address correction
    /// clears (accounts.proto `DebtorChange.fields`).
    public static let addressUnverifiedField = "address_unverified"

    /// The fields an `update_mask` names: at least one, each once, each one of `Field`'s, and
    /// not both "address" and "address.location" (the first covers the second). Any other
    /// name is refused naming its entry, with the names that are allowed.
    public static func updateMask(_ mask: [String], field: String = "update_mask") throws(DomainError) -> [Field] {
        let fields = try Validate.updateMask(mask, of: Field.self, field: field)
        if let address = fields.firstIndex(of: .address), let location = fields.firstIndex(of: .addressLocation) {
            let (first, second) = (min(address, location), max(address, location))
            throw .invalidArgument("\(field)[\(second)]",
                                   "'\(mask[second])' and '\(mask[first])' (\(field)[\(first)]) overlap; name one")
        }
        return fields
    }

    /// `current` (with full personal data) with the fields `mask` names taken from `patch`,
    /// each checked and normalised as on CreateDebtor. An emergency contact whose `id` is one
    /// of the debtor's keeps it; one without an id gets `newContactID()`; any other id is
    /// refused. Ids, version, timestamps and the address flags are kept: the caller moves
    /// them.
    public static func corrected(
        _ current: AccountsV1.Debtor, with patch: AccountsV1.Debtor?, mask: [String],
        newContactID: () -> String
    ) throws(DomainError) -> (debtor: AccountsV1.Debtor, fields: [Field]) {
        let fields = try updateMask(mask)
        guard let patch else { throw .invalidArgument("debtor", "required: the new values") }
        var changed = current
        for field in fields {
            switch field {
            case .address:
                try DebtorValidation.address(patch.address, field: "debtor.address")
                changed.address = patch.address
            case .addressLocation:
                guard let location = try Validate.geoPoint(patch.address?.location, field: "debtor.address.location", required: true)
                else { throw .invalidArgument("debtor.address.location", "required") }
                var address = current.address ?? TypeV1.Address()
                address.location = location
                changed.address = address
            case .phone:
                changed.phone = try PhoneNumber.normalised(patch.phone, field: "debtor.phone")
            case .emergencyContacts:
                changed.emergencyContacts = try emergencyContacts(patch.emergencyContacts, current: current.emergencyContacts,
                                                                  newContactID: newContactID)
            case .timeZone:
                _ = try Validate.timeZone(patch.timeZone, field: "debtor.time_zone")
                changed.timeZone = patch.timeZone
            }
        }
        return (changed, fields)
    }

    /// The new list of emergency contacts, each checked as on CreateDebtor.
    static func emergencyContacts(
        _ contacts: [AccountsV1.EmergencyContact], current: [AccountsV1.EmergencyContact], newContactID: () -> String
    ) throws(DomainError) -> [AccountsV1.EmergencyContact] {
        let field = "debtor.emergency_contacts"
        guard contacts.count <= DebtorValidation.maxEmergencyContacts else {
            throw .invalidArgument(field, "at most \(DebtorValidation.maxEmergencyContacts) entries")
        }
        let known = Set(current.map(\.id))
        var seen: [String: Int] = [:]
        var result: [AccountsV1.EmergencyContact] = []
        for (index, contact) in contacts.enumerated() {
            let id = contact.id
            if !id.isEmpty {
                guard known.contains(id) else {
                    throw .invalidArgument("\(field)[\(index)].id", "not one of the debtor's emergency contacts; leave it empty for a new contact")
                }
                if let earlier = seen[id] {
                    throw .invalidArgument("\(field)[\(index)].id", "duplicate of \(field)[\(earlier)].id")
                }
                seen[id] = index
            }
            var checked = try DebtorValidation.emergencyContact(contact, field: "\(field)[\(index)]")
            checked.id = id.isEmpty ? newContactID() : id
            result.append(checked)
        }
        return result
    }
}
