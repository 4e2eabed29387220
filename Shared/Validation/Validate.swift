import Foundation
import Models

/// Field validators shared by every service: each checks one request field against the
/// conventions at the top of `proto/doorstep/type/v1/types.proto` and throws
/// `DomainError.invalid` naming the field path ("<field>: <problem>", e.g.
/// "debtor.emergency_contacts[2].phone: required"; INVALID_ARGUMENT at the service edge).
///
/// Callers check a message's fields in proto field order and stop at the first error,
/// so a request with several mistakes always reports the same one.
public enum Validate {
    /// The largest identifier-like string (request ids, external ids, resource ids).
    public static let maxIdentifierLength = 64

    // MARK: Identifiers

    /// The fields an `update_mask` names: at least one, each once, each one of `Field`'s
    /// (any other name is refused naming its entry, with the names that are allowed).
    public static func updateMask<Field: RawRepresentable & CaseIterable>(
        _ mask: [String], of _: Field.Type, field: String = "update_mask"
    ) throws(DomainError) -> [Field] where Field.RawValue == String {
        guard !mask.isEmpty else { throw .invalidArgument(field, "required: the names of the fields to change") }
        var fields: [Field] = []
        var firstIndex: [String: Int] = [:]
        for (index, name) in mask.enumerated() {
            guard let chosen = Field(rawValue: name) else {
                let allowed = Field.allCases.map(\.rawValue).joined(separator: ", ")
                // Echoed for people: at most 64 characters, control characters left out.
                var shown = String(String.UnicodeScalarView(name.unicodeScalars.prefix(64).filter { $0.value >= 0x20 && $0.value != 0x7F }))
                if name.unicodeScalars.count > 64 { shown += "…" }
                throw .invalidArgument("\(field)[\(index)]", "'\(shown)' cannot be updated; updatable: \(allowed)")
            }
            if let earlier = firstIndex[name] {
                throw .invalidArgument("\(field)[\(index)]", "duplicate of \(field)[\(earlier)]")
            }
            firstIndex[name] = index
            fields.append(chosen)
        }
        return fields
    }

    /// An idempotency key (AIP-155; types.proto "Idempotency"): required, 1-64 characters
    /// of [A-Za-z0-9._:-].
    public static func requestID(_ value: String, field: String = "request_id") throws(DomainError) {
        guard !value.isEmpty else { throw .invalidArgument(field, "required") }
        guard value.utf8.allSatisfy(isRequestIDByte) else {
            throw .invalidArgument(field, "must contain only [A-Za-z0-9._:-]")
        }
        guard value.utf8.count <= maxIdentifierLength else {
            throw .invalidArgument(field, "must be at most \(maxIdentifierLength) characters")
        }
    }

    /// A caller's own identifier (types.proto "Identifiers"): required, 1-64 printable ASCII
    /// characters, no spaces (0x21...0x7E).
    public static func externalID(_ value: String, field: String) throws(DomainError) {
        guard !value.isEmpty else { throw .invalidArgument(field, "required") }
        guard value.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw .invalidArgument(field, "must be printable ASCII without spaces")
        }
        guard value.utf8.count <= maxIdentifierLength else {
            throw .invalidArgument(field, "must be at most \(maxIdentifierLength) characters")
        }
    }

    /// A server-assigned resource id (types.proto "Identifiers"): required, `<prefix>_`
    /// followed by 26 characters of upper-case Crockford base32 (a ULID).
    public static func resourceID(_ value: String, field: String, prefix: String) throws(DomainError) {
        guard !value.isEmpty else { throw .invalidArgument(field, "required") }
        let bytes = Array(value.utf8)
        let head = Array(prefix.utf8) + [UInt8(ascii: "_")]
        guard bytes.count == head.count + CrockfordBase32.ulidLength,
              bytes.starts(with: head),
              bytes.dropFirst(head.count).allSatisfy(CrockfordBase32.isDigit)
        else {
            throw .invalidArgument(field, "not a valid \(prefix)_ id")
        }
    }

    // MARK: Text

    /// A free-text or name field: `min`...`max` characters (grapheme clusters, as people
    /// count them); `min: 0` makes it optional. Rejects U+0000 (the C encoder cannot carry
    /// it, types.proto "Strings") and every other C0 control character except line feed
    /// and tab. Returns the value unchanged.
    @discardableResult
    public static func text(_ value: String, field: String, min: Int, max: Int) throws(DomainError) -> String {
        if value.isEmpty {
            if min > 0 { throw .invalidArgument(field, "required") }
            return value
        }
        let length = value.count
        guard length <= max else { throw .invalidArgument(field, "must be at most \(max) characters") }
        guard length >= min else { throw .invalidArgument(field, "must be at least \(min) characters") }
        guard !value.unicodeScalars.contains(where: isForbiddenControl) else {
            throw .invalidArgument(field, "must not contain control characters")
        }
        return value
    }

    // MARK: Calendar and clock

    /// A required calendar date: present (not absent, not all zero), a real Gregorian date,
    /// in `CivilDate.validYears`.
    public static func date(_ value: TypeV1.Date?, field: String) throws(DomainError) -> CivilDate {
        guard let date = try optionalDate(value, field: field) else { throw .invalidArgument(field, "required") }
        return date
    }

    /// An optional calendar date: nil when absent or all zero (types.proto "Date": unset),
    /// otherwise validated as `date(_:field:)`.
    public static func optionalDate(_ value: TypeV1.Date?, field: String) throws(DomainError) -> CivilDate? {
        guard let value, value.year != 0 || value.month != 0 || value.day != 0 else { return nil }
        let year = Int(value.year), month = Int(value.month), day = Int(value.day)
        guard CivilDate.isValid(year: year, month: month, day: day) else {
            throw .invalidArgument(field, "not a valid date: \(CivilDate.format(year: year, month: month, day: day))")
        }
        guard let date = CivilDate(year: year, month: month, day: day) else {
            let range = CivilDate.validYears
            throw .invalidArgument(field, "must be between \(range.lowerBound)-01-01 and \(range.upperBound)-12-31")
        }
        return date
    }

    /// A required IANA time zone name known to Foundation, e.g. "Asia/Shanghai". Only
    /// "Area/Location" names and "UTC" are accepted: abbreviations such as "CST" are
    /// ambiguous (China, or US Central) and are refused.
    public static func timeZone(_ value: String, field: String) throws(DomainError) -> TimeZone {
        guard !value.isEmpty else { throw .invalidArgument(field, "required") }
        guard value.utf8.count <= maxIdentifierLength,
              value == "UTC" || value.contains("/"),
              let zone = TimeZone(identifier: value)
        else {
            throw .invalidArgument(field, "unknown IANA zone")
        }
        return zone
    }

    /// A wall-clock time of day, returned as minutes since midnight (0...1439, or 1440 for
    /// 24:00). Required. 24:00 is accepted only where `allowEndOfDay` (an end-of-range
    /// field; types.proto "TimeOfDay").
    public static func timeOfDay(_ value: TypeV1.TimeOfDay?, field: String, allowEndOfDay: Bool) throws(DomainError) -> Int {
        guard let value else { throw .invalidArgument(field, "required") }
        let maxHours: Int32 = allowEndOfDay ? 24 : 23
        guard (0...maxHours).contains(value.hours) else {
            throw .invalidArgument("\(field).hours", "must be between 0 and \(maxHours)")
        }
        guard (0...59).contains(value.minutes) else {
            throw .invalidArgument("\(field).minutes", "must be between 0 and 59")
        }
        if value.hours == 24 && value.minutes != 0 {
            throw .invalidArgument("\(field).minutes", "must be 0 when hours is 24")
        }
        return Int(value.hours) * 60 + Int(value.minutes)
    }

    /// The earliest instant a client may send: 2000-01-01T00:00:00Z (types.proto "Instants").
    public static let minInstantMs: Int64 = 946_684_800_000
    /// The latest instant a client may send: 2100-01-01T00:00:00Z (types.proto "Instants").
    public static let maxInstantMs: Int64 = 4_102_444_800_000

    /// An instant in milliseconds since the Unix epoch, within `minInstantMs...maxInstantMs`
    /// (both inclusive). 0 means unset: "required" when `required`, otherwise nil.
    @discardableResult
    public static func instantMs(_ value: Int64, field: String, required: Bool) throws(DomainError) -> Int64? {
        if value == 0 {
            if required { throw .invalidArgument(field, "required") }
            return nil
        }
        guard (minInstantMs...maxInstantMs).contains(value) else {
            throw .invalidArgument(field, "must be between 2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z")
        }
        return value
    }

    // MARK: Places

    /// An administrative region code (types.proto `Address.region_code`): required, 1-16
    /// characters of [0-9A-Za-z-].
    public static func regionCode(_ value: String, field: String) throws(DomainError) {
        guard !value.isEmpty else { throw .invalidArgument(field, "required") }
        guard value.utf8.allSatisfy(isRegionCodeByte) else {
            throw .invalidArgument(field, "must contain only [0-9A-Za-z-]")
        }
        guard value.utf8.count <= 16 else { throw .invalidArgument(field, "must be at most 16 characters") }
    }

    /// A WGS84 point: finite latitude in -90...90 and longitude in -180...180. Absent is
    /// "required" when `required`, otherwise nil.
    @discardableResult
    public static func geoPoint(_ value: TypeV1.GeoPoint?, field: String, required: Bool) throws(DomainError) -> TypeV1.GeoPoint? {
        guard let value else {
            if required { throw .invalidArgument(field, "required") }
            return nil
        }
        guard value.latitude.isFinite, (-90.0...90.0).contains(value.latitude) else {
            throw .invalidArgument("\(field).latitude", "must be between -90 and 90")
        }
        guard value.longitude.isFinite, (-180.0...180.0).contains(value.longitude) else {
            throw .invalidArgument("\(field).longitude", "must be between -180 and 180")
        }
        return value
    }

    // MARK: Money

    /// An ISO 4217 alphabetic currency code: exactly three upper-case ASCII letters.
    public static func currencyCode(_ value: String, field: String) throws(DomainError) {
        guard !value.isEmpty else { throw .invalidArgument(field, "required") }
        guard value.utf8.count == 3, value.utf8.allSatisfy({ (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) }) else {
            throw .invalidArgument(field, "must be three upper-case letters (ISO 4217)")
        }
    }

    /// A required amount of money (types.proto "Money"): `amount_minor` >= 0, or > 0 unless
    /// `allowZero`; a valid currency code equal to `currency` when one is given (within one
    /// account every amount is in the account's currency). Returns the amount in minor units.
    public static func money(_ value: TypeV1.Money?, field: String, currency: String?, allowZero: Bool) throws(DomainError) -> Int64 {
        guard let value else { throw .invalidArgument(field, "required") }
        if value.amountMinor < 0 {
            throw .invalidArgument("\(field).amount_minor", "must not be negative")
        }
        if value.amountMinor == 0 && !allowZero {
            throw .invalidArgument("\(field).amount_minor", "must be greater than 0")
        }
        try currencyCode(value.currencyCode, field: "\(field).currency_code")
        if let currency, value.currencyCode != currency {
            throw .invalidArgument("\(field).currency_code", "must be \(currency), the account's currency")
        }
        return value.amountMinor
    }

    // MARK: Paging

    /// A list's `page_size` (AIP-158; types.proto "Pagination"): negative is refused, 0 means
    /// `defaultSize`, values above `max` are coerced to `max`.
    public static func pageSize(_ value: Int32, field: String = "page_size", defaultSize: Int = 50, max: Int = 500) throws(DomainError) -> Int {
        guard value >= 0 else { throw .invalidArgument(field, "must not be negative") }
        if value == 0 { return defaultSize }
        return Swift.min(Int(value), max)
    }

    // MARK: Character classes

    private static func isRequestIDByte(_ byte: UInt8) -> Bool {
        isASCIIAlphanumeric(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
            || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "-")
    }

    private static func isRegionCodeByte(_ byte: UInt8) -> Bool {
        isASCIIAlphanumeric(byte) || byte == UInt8(ascii: "-")
    }

    static func isASCIIAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
            || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
    }

    /// C0 controls (U+0000...U+001F) other than tab and line feed.
    private static func isForbiddenControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 && scalar != "\n" && scalar != "\t"
    }
}
