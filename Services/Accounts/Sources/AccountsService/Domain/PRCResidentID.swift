import Models
import Validation

/// The PRC resident identity number (公民身份号码) of GB 11643-1999: 18 characters —
/// a 6-digit address code (GB/T 2260), an 8-digit birth date YYYYMMDD, a 3-digit sequence
/// code and a check character computed over the first 17 digits (ISO 7064 MOD 11-2).
///
/// Error messages never echo the number: it is personal data.
public enum PRCResidentID {
    /// The length of the number.
    public static let length = 18

    /// GB 11643-1999 weights of digits 1-17: 2^(18-i) mod 11.
    public static let weights: [Int] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]

    /// GB 11643-1999 check character for each remainder 0...10 of the weighted sum mod 11.
    public static let checkCharacters: [Character] = Array("10X98765432")

    /// The check character for the first 17 digits, or nil unless `first17` is exactly
    /// 17 ASCII digits.
    public static func checkCharacter(forFirst17 first17: String) -> Character? {
        let digits = first17.utf8.map { Int($0) - Int(UInt8(ascii: "0")) }
        guard digits.count == weights.count, digits.allSatisfy({ (0...9).contains($0) }) else { return nil }
        var sum = 0
        for (digit, weight) in zip(digits, weights) {
            sum += digit * weight
        }
        return checkCharacters[sum % 11]
    }

    /// Validates a PRC resident identity number and returns it normalised (a lower-case
    /// check character "x" becomes "X"). Checks, in order: the shape (17 digits then a
    /// digit or X), the birth date (characters 7-14 form a valid date, 1900-2200), the
    /// check character.
    public static func validate(_ value: String, field: String) throws(DomainError) -> String {
        guard !value.isEmpty else { throw .invalidArgument(field, "required") }
        let bytes = Array(value.utf8)
        guard bytes.count == length,
              bytes.prefix(17).allSatisfy(isDigit),
              isDigit(bytes[17]) || bytes[17] == UInt8(ascii: "X") || bytes[17] == UInt8(ascii: "x")
        else {
            throw .invalidArgument(field, "must be 18 characters: 17 digits then a digit or X")
        }
        let normalised = value.uppercased()
        let characters = Array(normalised)

        let year = Int(String(characters[6..<10])) ?? 0
        let month = Int(String(characters[10..<12])) ?? 0
        let day = Int(String(characters[12..<14])) ?? 0
        guard CivilDate(year: year, month: month, day: day) != nil else {
            throw .invalidArgument(field, "birth date (characters 7-14) is not a valid date")
        }

        guard checkCharacter(forFirst17: String(characters[0..<17])) == characters[17] else {
            throw .invalidArgument(field, "checksum mismatch")
        }
        return normalised
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}
