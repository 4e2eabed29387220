/// Custom metadata of a call: ordered (name, value) pairs, names lower-case, repeated names
/// allowed. PROTOCOL-HTTP2: a name ending in `-bin` carries binary values, sent base64-encoded
/// (un-padded on output; padded and un-padded accepted on input); any other value must be
/// printable ASCII (0x20–0x7E).
public struct Metadata: Hashable, Sendable, ExpressibleByDictionaryLiteral, Sequence {
    public typealias Key = String
    public typealias Value = String

    public private(set) var entries: [(name: String, value: MetadataValue)]

    public init() { entries = [] }

    public init(dictionaryLiteral elements: (String, String)...) {
        entries = []
        for (name, value) in elements { add(name, value) }
    }

    public static func == (lhs: Metadata, rhs: Metadata) -> Bool {
        lhs.entries.count == rhs.entries.count
            && zip(lhs.entries, rhs.entries).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for entry in entries { hasher.combine(entry.name); hasher.combine(entry.value) }
    }

    public func makeIterator() -> IndexingIterator<[(name: String, value: MetadataValue)]> { entries.makeIterator() }

    public var isEmpty: Bool { entries.isEmpty }

    /// Adds a text value (`name` is lower-cased).
    public mutating func add(_ name: String, _ value: String) {
        entries.append((name.lowercased(), .string(value)))
    }

    /// Adds a binary value; `name` must end in `-bin`.
    public mutating func add(_ name: String, binary value: [UInt8]) {
        entries.append((name.lowercased(), .binary(value)))
    }

    /// The first text value named `name`.
    public subscript(_ name: String) -> String? {
        let key = name.lowercased()
        for entry in entries where entry.name == key {
            if case .string(let value) = entry.value { return value }
        }
        return nil
    }

    /// Every binary value named `name`.
    public func binaryValues(_ name: String) -> [[UInt8]] {
        let key = name.lowercased()
        return entries.compactMap { entry in
            guard entry.name == key, case .binary(let value) = entry.value else { return nil }
            return value
        }
    }

    /// Header names the transport owns; they never appear as custom metadata.
    public static func isReserved(_ name: String) -> Bool {
        name.hasPrefix(":") || name == "content-type" || name == "te" || name == "grpc-timeout"
            || name == "grpc-encoding" || name == "grpc-accept-encoding" || name == "grpc-status"
            || name == "grpc-message" || name == "grpc-status-details-bin" || name == "content-length"
    }

    /// PROTOCOL-HTTP2: Header-Name → 1*( %x30-39 / %x61-7A / "_" / "-" / ".") (lower-case).
    public static func isValidName(_ name: String) -> Bool {
        guard !name.isEmpty else { return false }
        for byte in name.utf8 {
            let valid = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x5F || byte == 0x2D || byte == 0x2E
            if !valid { return false }
        }
        return true
    }

    /// PROTOCOL-HTTP2: ASCII-Value → 1*( %x20-%x7E ).
    public static func isValidTextValue(_ value: String) -> Bool {
        // This runs on every header of every call (bearer tokens are ~300 bytes): eight bytes
        // at a time where the string is contiguous UTF-8 (native strings always are).
        if let valid = value.utf8.withContiguousStorageIfAvailable({ isValidTextValue(UnsafeRawBufferPointer($0)) }) {
            return valid
        }
        for byte in value.utf8 where byte < 0x20 || byte > 0x7E { return false }
        return true
    }

    /// Word-at-a-time check that every byte is in 0x20...0x7E: a word holds a byte ≥ 0x7F iff
    /// `(w + 0x01…01) | w` has a high bit set (a carry out of a byte can only come from 0xFF,
    /// which has it already); then, with every byte < 0x80, it holds a byte < 0x20 iff
    /// `(w - 0x20…20) & ~w & 0x80…80` is non-zero (Hacker's Delight "hasless").
    static func isValidTextValue(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        var index = 0
        while index + 8 <= bytes.count {
            let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            if (word &+ ones | word) & highs != 0 { return false }
            if (word &- 0x20 &* ones) & ~word & highs != 0 { return false }
            index += 8
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte < 0x20 || byte > 0x7E { return false }
            index += 1
        }
        return true
    }

    /// Parses one received header into a metadata entry: decodes `-bin` values, refuses
    /// invalid names or values (returns nil, and the header is dropped).
    public static func entry(name: String, rawValue: String) -> (name: String, value: MetadataValue)? {
        guard isValidName(name) else { return nil }
        if name.hasSuffix("-bin") {
            guard let bytes = Base64.decode(rawValue) else { return nil }
            return (name, .binary(bytes))
        }
        guard isValidTextValue(rawValue) else { return nil }
        return (name, .string(rawValue))
    }

    /// The header form of a value: text as is, binary base64 without padding.
    public static func headerValue(_ value: MetadataValue) -> String {
        switch value {
        case .string(let text): return text
        case .binary(let bytes): return Base64.encode(bytes, padding: false)
        }
    }
}

/// One metadata value: text, or bytes for a `-bin` name.
public enum MetadataValue: Hashable, Sendable {
    case string(String)
    case binary([UInt8])
}

/// Standard base64 (RFC 4648 §4) for `-bin` metadata.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let reverse: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    public static func encode(_ bytes: [UInt8], padding: Bool) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 2 < bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)]]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)]]
            if padding { out += [0x3D, 0x3D] }
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)]]
            if padding { out.append(0x3D) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes padded or un-padded standard base64; nil for anything else.
    public static func decode(_ text: String) -> [UInt8]? {
        var input = Array(text.utf8)
        while input.last == 0x3D { input.removeLast() }
        guard input.count % 4 != 1, text.utf8.count - input.count <= 2 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(input.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in input {
            let value = reverse[Int(byte)]
            guard value != 0xFF else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        return out
    }
}
