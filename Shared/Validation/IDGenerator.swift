/// Makes server-assigned resource ids: `<prefix>_<ULID>`, e.g.
/// `acc_01HZY3V9Q6X1M8N2B4C7D5E0FG` (types.proto "Identifiers").
///
/// The ULID (https://github.com/ulid/spec) is a 48-bit millisecond timestamp followed by
/// 80 random bits, written as 26 upper-case Crockford base32 characters, so ids made later
/// sort after ids made earlier (to the millisecond).
public enum IDGenerator {
    /// A new id with the given prefix ("acc", "dbt", …) for the instant `nowMs`, with
    /// randomness from the system's cryptographically secure generator.
    public static func make(prefix: String, nowMs: Int64) -> String {
        var generator = SystemRandomNumberGenerator()
        return make(prefix: prefix, nowMs: nowMs, using: &generator)
    }

    /// A new id with randomness from `generator` (tests pass a seeded one).
    public static func make(prefix: String, nowMs: Int64, using generator: inout some RandomNumberGenerator) -> String {
        // A timestamp outside 0 ..< 2^48 cannot be represented; clamp rather than wrap so
        // that ordering is kept at the edges.
        let timestamp = UInt64(clamping: Swift.max(0, Swift.min(nowMs, (1 << 48) - 1)))
        let randomHigh = UInt64(generator.next() as UInt16)   // top 16 of the 80 random bits
        let randomLow: UInt64 = generator.next()              // low 64 of the 80 random bits
        return prefix + "_" + CrockfordBase32.ulid(timestamp: timestamp, randomHigh: randomHigh, randomLow: randomLow)
    }
}

/// Crockford's base32 alphabet (https://www.crockford.com/base32.html): digits and
/// upper-case letters without I, L, O and U.
enum CrockfordBase32 {
    static let alphabet: [UInt8] = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)
    /// Characters in a ULID: 10 for the timestamp (50 bits) + 16 for the randomness (80 bits).
    static let ulidLength = 26

    /// Whether `byte` is an upper-case Crockford base32 digit.
    static func isDigit(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "A")...UInt8(ascii: "H"),
             UInt8(ascii: "J")...UInt8(ascii: "K"),
             UInt8(ascii: "M")...UInt8(ascii: "N"),
             UInt8(ascii: "P")...UInt8(ascii: "T"),
             UInt8(ascii: "V")...UInt8(ascii: "Z"):
            return true
        default:
            return false
        }
    }

    /// The 26 characters of a ULID: the 128-bit value `timestamp` (48 bits) ‖ random (80 bits),
    /// most significant 5-bit group first (the first character carries only 3 bits).
    static func ulid(timestamp: UInt64, randomHigh: UInt64, randomLow: UInt64) -> String {
        // The 128-bit value as two halves: high = timestamp << 16 | randomHigh (16 bits).
        let high = (timestamp << 16) | (randomHigh & 0xFFFF)
        let low = randomLow
        var characters = [UInt8](repeating: 0, count: ulidLength)
        for index in 0..<ulidLength {
            // Bit offset (from the least significant bit of the 130-bit field, whose top two
            // bits are zero) of this character's lowest bit.
            let shift = (ulidLength - 1 - index) * 5
            let value: UInt64
            if shift >= 64 {
                value = high >> UInt64(shift - 64)
            } else if shift > 59 {
                // The group straddles the halves: low bits from `low`, high bits from `high`.
                value = (low >> UInt64(shift)) | (high << UInt64(64 - shift))
            } else {
                value = low >> UInt64(shift)
            }
            characters[index] = alphabet[Int(value & 0x1F)]
        }
        return String(decoding: characters, as: UTF8.self)
    }
}
