import Models

/// The masked forms of a debtor's personal data (accounts.proto `Debtor`: "only the first 3
/// and last 4 characters kept"), used in every response unless the caller's role and an
/// audited request justify full values (docs/DOMAIN.md ("Domain rules", "Personal data")).
public enum PersonalDataMask {
    /// A national id with the first 3 and last 4 characters kept and every other character
    /// replaced by "*": "11010519491231002X" → "110***********002X". A value of 7 or fewer
    /// characters is entirely replaced (keeping 7 would reveal all of it).
    public static func nationalID(_ value: String) -> String {
        let characters = Array(value)
        guard characters.count > 7 else { return String(repeating: "*", count: characters.count) }
        return String(characters.prefix(3))
            + String(repeating: "*", count: characters.count - 7)
            + String(characters.suffix(4))
    }

    /// A phone number as its national number's first 3 and last 4 digits around "****".
    /// For +86 numbers the national number follows the country code
    /// ("+8613812345678" → "138****5678"); for other E.164 numbers it is every digit after
    /// "+" ("+14155550123" → "141****0123"). A national number of 7 or fewer digits is
    /// entirely replaced by "*".
    public static func phone(_ e164: String) -> String {
        let national: Substring
        if e164.hasPrefix("+86") {
            national = e164.dropFirst(3)
        } else if e164.hasPrefix("+") {
            national = e164.dropFirst()
        } else {
            national = e164[...]
        }
        let characters = Array(national)
        guard characters.count > 7 else { return String(repeating: "*", count: characters.count) }
        return String(characters.prefix(3)) + "****" + String(characters.suffix(4))
    }

    /// The debtor with `national_id`, `phone` and every emergency contact's phone masked and
    /// `personal_data_masked` set. A debtor already masked is returned unchanged.
    public static func masked(_ debtor: AccountsV1.Debtor) -> AccountsV1.Debtor {
        guard !debtor.personalDataMasked else { return debtor }
        var masked = debtor
        masked.nationalId = nationalID(debtor.nationalId)
        masked.phone = phone(debtor.phone)
        for index in masked.emergencyContacts.indices {
            masked.emergencyContacts[index].phone = phone(masked.emergencyContacts[index].phone)
        }
        masked.personalDataMasked = true
        return masked
    }
}
