import Validation

/// Phone numbers as the contract takes them (accounts.proto `Debtor.phone`): E.164
/// ("+8613812345678"), or an 11-digit mainland China mobile number ("13812345678") which
/// is stored as E.164 with the +86 country code.
///
/// Error messages never echo the number: it is personal data.
public enum PhoneNumber {
    /// ITU-T E.164: at most 15 digits after "+", the first (country code) not 0. Numbers of
    /// fewer than 8 digits are refused: no country's full international number is shorter.
    public static let e164Digits: ClosedRange<Int> = 8...15

    /// The number normalised to E.164, or INVALID_ARGUMENT naming `field`.
    public static func normalised(_ value: String, field: String) throws(DomainError) -> String {
        guard !value.isEmpty else { throw .invalidArgument(field, "required") }
        let bytes = Array(value.utf8)
        if bytes[0] == UInt8(ascii: "+") {
            let digits = bytes.dropFirst()
            if e164Digits.contains(digits.count), digits.allSatisfy(isDigit), digits.first != UInt8(ascii: "0") {
                return value
            }
        } else if bytes.count == 11, bytes.allSatisfy(isDigit), bytes[0] == UInt8(ascii: "1") {
            return "+86" + value
        }
        throw .invalidArgument(field, "must be E.164 (e.g. +8613812345678) or an 11-digit mainland mobile number")
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}
