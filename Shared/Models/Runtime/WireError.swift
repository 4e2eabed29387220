/// Why bytes could not be decoded into a message, or a message could not be encoded.
///
/// Every case names the field path it concerns where one is known (e.g. `debtor.phone`), so
/// that the RPC layer can answer INVALID_ARGUMENT naming the field.
public enum WireError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The input ends inside a tag, a varint, a fixed-width value or a length-delimited field.
    case truncated(field: String?)
    /// A varint longer than 10 bytes, or one that overflows 64 bits.
    case malformedVarint(field: String?)
    /// A length prefix larger than the bytes that follow it (or than any sane size).
    case lengthOverflow(field: String?)
    /// Field number 0, or one above 2^29 - 1.
    case invalidFieldNumber(Int)
    /// Wire types 6 and 7 do not exist.
    case invalidWireType(Int)
    /// A group (wire type 3, a proto2 feature these contracts never declare, skipped as an
    /// unknown field) that the input ends inside, or whose END_GROUP names another field.
    case unterminatedGroup(fieldNumber: Int)
    /// An END_GROUP (wire type 4) with no group open for its field number.
    case unmatchedEndGroup(fieldNumber: Int)
    /// A known field arrived with a wire type its declared type cannot have.
    case wrongWireType(field: String, expected: Int, actual: Int)
    /// A string field that is not valid UTF-8 (proto3 requires UTF-8).
    case invalidUTF8(field: String)
    /// A string containing U+0000: protobuf-c strings are NUL-terminated, so such a
    /// string cannot round-trip and is refused on both the encode and the decode path.
    case embeddedNUL(field: String)
    /// The encoded message is larger than the configured limit.
    case messageTooLarge(size: Int, limit: Int)
    /// Sub-messages nested deeper than the configured limit.
    case nestingTooDeep(limit: Int)
    /// libprotobuf-c refused bytes the structural check accepted (for example a packed
    /// field whose contents are not whole values).
    case rejectedByDecoder(message: String)

    /// The field path this error concerns, if any.
    public var field: String? {
        switch self {
        case .truncated(let field), .malformedVarint(let field), .lengthOverflow(let field):
            return field
        case .wrongWireType(let field, _, _), .invalidUTF8(let field), .embeddedNUL(let field):
            return field
        default:
            return nil
        }
    }

    public var description: String {
        func at(_ field: String?) -> String { field.map { " in field '\($0)'" } ?? "" }
        switch self {
        case .truncated(let field): return "message is truncated\(at(field))"
        case .malformedVarint(let field): return "malformed varint\(at(field))"
        case .lengthOverflow(let field): return "length prefix exceeds the remaining bytes\(at(field))"
        case .invalidFieldNumber(let number): return "invalid field number \(number)"
        case .invalidWireType(let type): return "invalid wire type \(type)"
        case .unterminatedGroup(let number): return "group of field number \(number) is not terminated"
        case .unmatchedEndGroup(let number): return "end of group for field number \(number) without its start"
        case .wrongWireType(let field, let expected, let actual):
            return "field '\(field)' has wire type \(actual), expected \(expected)"
        case .invalidUTF8(let field): return "field '\(field)' is not valid UTF-8"
        case .embeddedNUL(let field): return "field '\(field)' contains U+0000, which is not allowed"
        case .messageTooLarge(let size, let limit): return "message of \(size) bytes exceeds the limit of \(limit) bytes"
        case .nestingTooDeep(let limit): return "message nesting exceeds the limit of \(limit)"
        case .rejectedByDecoder(let message): return "malformed message: \(message)"
        }
    }
}

/// Limits applied when decoding untrusted bytes.
public struct DecodingLimits: Sendable, Hashable {
    /// Largest encoded message accepted, in bytes. Default 4 MiB (gRPC's default receive limit).
    public var maxMessageBytes: Int
    /// Deepest sub-message nesting accepted. Default 64.
    public var maxDepth: Int

    public init(maxMessageBytes: Int = 4 << 20, maxDepth: Int = 64) {
        self.maxMessageBytes = maxMessageBytes
        self.maxDepth = maxDepth
    }

    /// 4 MiB, depth 64.
    public static let defaults = DecodingLimits()
}
