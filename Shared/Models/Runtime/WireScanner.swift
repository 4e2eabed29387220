/// The wire shape of one field, as the structural check needs it.
public enum WireFieldKind: Sendable {
    /// int32, int64, uint32, uint64, sint32, sint64, bool, enum.
    case varint
    /// fixed64, sfixed64, double.
    case fixed64
    /// fixed32, sfixed32, float.
    case fixed32
    /// A string: length-delimited, UTF-8 without U+0000.
    case string
    /// Bytes: length-delimited, any content.
    case bytes
    /// A sub-message, checked recursively against its schema.
    case message(@Sendable () -> WireSchema)
}

/// What the structural check knows of a message: each known field's name, wire kind and
/// whether it is repeated. Generated once per message type.
public struct WireSchema: Sendable {
    public struct Field: Sendable {
        public let name: String
        public let kind: WireFieldKind
        public let repeated: Bool
        public init(name: String, kind: WireFieldKind, repeated: Bool) {
            self.name = name
            self.kind = kind
            self.repeated = repeated
        }
    }

    /// Fields indexed by field number; numbers above the table's size fall back to `sparse`.
    private let dense: [Field?]
    private let sparse: [Int: Field]

    public init(_ fields: [Int: Field]) {
        let maxDense = 256
        var dense = [Field?](repeating: nil, count: min((fields.keys.max() ?? 0) + 1, maxDense))
        var sparse: [Int: Field] = [:]
        for (number, field) in fields {
            if number < maxDense { dense[number] = field } else { sparse[number] = field }
        }
        self.dense = dense
        self.sparse = sparse
    }

    @inline(__always)
    func field(_ number: Int) -> Field? {
        number < dense.count ? dense[number] : sparse[number]
    }
}

/// A single-pass structural check of protobuf bytes against a schema, run before the bytes
/// reach libprotobuf-c. It gives every kind of malformed input a typed error naming the
/// field, and it refuses what protobuf-c would otherwise accept silently: strings that are
/// not UTF-8 or that contain U+0000 (which a NUL-terminated C string would truncate).
/// Unknown fields of every wire type are skipped (their contents are not interpreted), as
/// the protobuf encoding asks — groups (wire types 3 and 4) included, which libprotobuf-c
/// cannot skip itself: `check` says when it met one, and ``strippingGroups(_:schema:)`` then
/// makes the copy libprotobuf-c unpacks.
enum WireScanner {
    /// Checks `bytes`; returns true when they hold unknown groups (to strip before unpacking).
    @discardableResult
    static func check(
        _ bytes: UnsafeRawBufferPointer, schema: WireSchema, limits: DecodingLimits
    ) throws(WireError) -> Bool {
        guard bytes.count <= limits.maxMessageBytes else {
            throw .messageTooLarge(size: bytes.count, limit: limits.maxMessageBytes)
        }
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return false }
        var path: [String] = []
        var groups = false
        try scan(base.assumingMemoryBound(to: UInt8.self), count: bytes.count,
                 schema: schema, path: &path, limits: limits, groups: &groups)
        return groups
    }

    /// A copy of `bytes` (already checked) without its unknown groups, at any depth inside
    /// known sub-messages, whose length prefixes are written again for what is left.
    static func strippingGroups(_ bytes: UnsafeRawBufferPointer, schema: WireSchema) throws(WireError) -> [UInt8] {
        var out: [UInt8] = []
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return out }
        out.reserveCapacity(bytes.count)
        try strip(base.assumingMemoryBound(to: UInt8.self), count: bytes.count, schema: schema, into: &out)
        return out
    }

    private static func strip(
        _ p: UnsafePointer<UInt8>, count: Int, schema: WireSchema, into out: inout [UInt8]
    ) throws(WireError) {
        var i = 0
        while i < count {
            let start = i
            let key = try readVarint(p, count: count, at: &i) { nil }
            let keyEnd = i
            let number = Int(truncatingIfNeeded: key >> 3)
            switch Int(key & 7) {
            case 0: _ = try readVarint(p, count: count, at: &i) { nil }
            case 1: i += 8
            case 5: i += 4
            case 2:
                let length = Int(try readVarint(p, count: count, at: &i) { nil })
                if case .message(let nested)? = schema.field(number)?.kind {
                    var inner: [UInt8] = []
                    try strip(p + i, count: length, schema: nested(), into: &inner)
                    i += length
                    out.append(contentsOf: UnsafeBufferPointer(start: p + start, count: keyEnd - start))
                    var size = UInt64(inner.count)
                    while size >= 0x80 {
                        out.append(UInt8(truncatingIfNeeded: size) | 0x80)
                        size >>= 7
                    }
                    out.append(UInt8(size))
                    out.append(contentsOf: inner)
                    continue
                }
                i += length
            case 3:
                try skipGroup(p, count: count, at: &i, number: number, depth: 1, limits: .defaults)
                continue
            default:
                throw .invalidWireType(Int(key & 7))
            }
            out.append(contentsOf: UnsafeBufferPointer(start: p + start, count: i - start))
        }
    }

    /// Skips the fields of an unknown group that began with field `number`, through its
    /// END_GROUP; groups inside it are skipped the same way.
    private static func skipGroup(
        _ p: UnsafePointer<UInt8>, count: Int, at i: inout Int, number: Int, depth: Int, limits: DecodingLimits
    ) throws(WireError) {
        guard depth < limits.maxDepth else { throw .nestingTooDeep(limit: limits.maxDepth) }
        while i < count {
            let key = try readVarint(p, count: count, at: &i) { nil }
            let inner = key >> 3
            guard inner >= 1, inner <= 0x1FFF_FFFF else { throw .invalidFieldNumber(Int(truncatingIfNeeded: inner)) }
            switch Int(key & 7) {
            case 0:
                _ = try readVarint(p, count: count, at: &i) { nil }
            case 1:
                guard count - i >= 8 else { throw .truncated(field: nil) }
                i += 8
            case 5:
                guard count - i >= 4 else { throw .truncated(field: nil) }
                i += 4
            case 2:
                let length = try readVarint(p, count: count, at: &i) { nil }
                guard length <= UInt64(count - i) else { throw length > UInt64(Int32.max) ? .lengthOverflow(field: nil) : .truncated(field: nil) }
                i += Int(length)
            case 3:
                try skipGroup(p, count: count, at: &i, number: Int(inner), depth: depth + 1, limits: limits)
            case 4:
                guard Int(inner) == number else { throw .unterminatedGroup(fieldNumber: number) }
                return
            default:
                throw .invalidWireType(Int(key & 7))
            }
        }
        throw .unterminatedGroup(fieldNumber: number)
    }

    /// Checks one message. `path` holds the names of the enclosing fields; it is joined into
    /// a dotted field path only when an error is thrown, so the success path allocates nothing.
    private static func scan(
        _ p: UnsafePointer<UInt8>, count: Int, schema: WireSchema, path: inout [String],
        limits: DecodingLimits, groups: inout Bool
    ) throws(WireError) {
        guard path.count < limits.maxDepth else { throw .nestingTooDeep(limit: limits.maxDepth) }
        var i = 0
        while i < count {
            let key = try readVarint(p, count: count, at: &i) { joined(path, nil) }
            let wireType = Int(key & 7)
            let number = key >> 3
            guard number >= 1, number <= 0x1FFF_FFFF else { throw .invalidFieldNumber(Int(truncatingIfNeeded: number)) }
            let fieldNumber = Int(number)
            let known = schema.field(fieldNumber)
            let name = known?.name
            switch wireType {
            case 0:
                if let known { try expect(known, wireType: 0, path, name) }
                _ = try readVarint(p, count: count, at: &i) { joined(path, name) }
            case 1:
                if let known { try expect(known, wireType: 1, path, name) }
                guard count - i >= 8 else { throw .truncated(field: joined(path, name)) }
                i += 8
            case 5:
                if let known { try expect(known, wireType: 5, path, name) }
                guard count - i >= 4 else { throw .truncated(field: joined(path, name)) }
                i += 4
            case 2:
                let length = try readVarint(p, count: count, at: &i) { joined(path, name) }
                guard length <= UInt64(count - i) else {
                    let field = joined(path, name)
                    throw length > UInt64(Int32.max) ? .lengthOverflow(field: field) : .truncated(field: field)
                }
                let start = p + i
                let len = Int(length)
                i += len
                guard let known else { continue }
                switch known.kind {
                case .string:
                    try checkString(start, count: len) { joined(path, name)! }
                case .bytes:
                    break
                case .message(let nested):
                    path.append(known.name)
                    try scan(start, count: len, schema: nested(), path: &path, limits: limits, groups: &groups)
                    path.removeLast()
                case .varint, .fixed32, .fixed64:
                    // A packed repeated scalar; protobuf-c checks that the contents are whole values.
                    guard known.repeated else {
                        throw .wrongWireType(field: joined(path, name)!, expected: known.kind.wireType, actual: 2)
                    }
                }
            case 3:
                if let known { try expect(known, wireType: 3, path, name) }
                try skipGroup(p, count: count, at: &i, number: fieldNumber, depth: path.count + 1, limits: limits)
                groups = true
            case 4:
                throw .unmatchedEndGroup(fieldNumber: fieldNumber)
            default:
                throw .invalidWireType(wireType)
            }
        }
    }

    /// The dotted path of field `name` inside the fields `path`; nil at the top level when
    /// the field is unknown.
    private static func joined(_ path: [String], _ name: String?) -> String? {
        let parts = name.map { path + [$0] } ?? path
        return parts.isEmpty ? nil : parts.joined(separator: ".")
    }

    @inline(__always)
    private static func expect(
        _ field: WireSchema.Field, wireType: Int, _ path: [String], _ name: String?
    ) throws(WireError) {
        let expected = field.kind.wireType
        guard expected == wireType else {
            throw .wrongWireType(field: joined(path, name)!, expected: expected, actual: wireType)
        }
    }

    @inline(__always)
    private static func readVarint(
        _ p: UnsafePointer<UInt8>, count: Int, at i: inout Int, field: () -> String?
    ) throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard i < count else { throw .truncated(field: field()) }
            let byte = p[i]
            i += 1
            if shift == 63 && byte > 1 { throw .malformedVarint(field: field()) }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
            if shift > 63 { throw .malformedVarint(field: field()) }
        }
    }

    /// Unicode 15, table 3-7 (well-formed UTF-8 byte sequences), plus no U+0000.
    private static func checkString(
        _ p: UnsafePointer<UInt8>, count: Int, path: () -> String
    ) throws(WireError) {
        var i = 0
        while i < count {
            let b0 = p[i]
            if b0 < 0x80 {
                if b0 == 0 { throw .embeddedNUL(field: path()) }
                i += 1
                continue
            }
            func cont(_ k: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> Bool {
                i + k < count && p[i + k] >= lo && p[i + k] <= hi
            }
            switch b0 {
            case 0xC2...0xDF:
                guard cont(1) else { throw .invalidUTF8(field: path()) }
                i += 2
            case 0xE0:
                guard cont(1, 0xA0), cont(2) else { throw .invalidUTF8(field: path()) }
                i += 3
            case 0xE1...0xEC, 0xEE...0xEF:
                guard cont(1), cont(2) else { throw .invalidUTF8(field: path()) }
                i += 3
            case 0xED:
                guard cont(1, 0x80, 0x9F), cont(2) else { throw .invalidUTF8(field: path()) }
                i += 3
            case 0xF0:
                guard cont(1, 0x90), cont(2), cont(3) else { throw .invalidUTF8(field: path()) }
                i += 4
            case 0xF1...0xF3:
                guard cont(1), cont(2), cont(3) else { throw .invalidUTF8(field: path()) }
                i += 4
            case 0xF4:
                guard cont(1, 0x80, 0x8F), cont(2), cont(3) else { throw .invalidUTF8(field: path()) }
                i += 4
            default:
                throw .invalidUTF8(field: path())
            }
        }
    }
}

extension WireFieldKind {
    /// The wire type a singular value of this kind has.
    var wireType: Int {
        switch self {
        case .varint: return 0
        case .fixed64: return 1
        case .fixed32: return 5
        case .string, .bytes, .message: return 2
        }
    }
}
