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
///
/// The scan reads a field's shape (a few bytes, nothing to retain) from a table indexed by
/// field number; names are looked up only to build an error, and a sub-message's schema
/// only when a sub-message is met.
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

    /// The wire shape of a field number: trivially copyable, so the scan's lookups cost no
    /// reference counting.
    struct Shape {
        enum Kind: UInt8 { case unknown, varint, fixed64, fixed32, string, bytes, message }
        let kind: Kind
        let repeated: Bool
        /// Index of the field in `Storage.fields` (for its name and its sub-message schema).
        let index: Int32

        static let unknown = Shape(kind: .unknown, repeated: false, index: -1)
    }

    /// One reference, so that copying a schema (as a sub-message's schema getter does)
    /// retains once.
    private final class Storage: Sendable {
        /// Shapes indexed by field number, for numbers below 256.
        let dense: [Shape]
        /// Shapes of the field numbers from 256 up.
        let sparse: [Int: Shape]
        let fields: [Field]
        /// The schema getter of each field of `fields` that is a sub-message (nil for the others).
        let nested: [(@Sendable () -> WireSchema)?]

        init(dense: [Shape], sparse: [Int: Shape], fields: [Field]) {
            self.dense = dense
            self.sparse = sparse
            self.fields = fields
            nested = fields.map { field in
                guard case .message(let schema) = field.kind else { return nil }
                return schema
            }
        }
    }

    private let storage: Storage

    public init(_ fields: [Int: Field]) {
        let maxDense = 256
        let ordered = fields.sorted { $0.key < $1.key }
        var dense = [Shape](repeating: .unknown, count: min((fields.keys.max() ?? 0) + 1, maxDense))
        var sparse: [Int: Shape] = [:]
        for (index, (number, field)) in ordered.enumerated() {
            let shape = Shape(kind: field.kind.shapeKind, repeated: field.repeated, index: Int32(index))
            if number < maxDense { dense[number] = shape } else { sparse[number] = shape }
        }
        storage = Storage(dense: dense, sparse: sparse, fields: ordered.map(\.value))
    }

    /// The shape of field `number` (`.unknown` when the message has no such field).
    @inline(__always)
    func shape(_ number: Int) -> Shape {
        let dense = storage.dense
        if number < dense.count { return dense[number] }
        return storage.sparse.isEmpty ? .unknown : storage.sparse[number] ?? .unknown
    }

    /// The field a known shape stands for.
    func field(_ shape: Shape) -> Field {
        storage.fields[Int(shape.index)]
    }

    /// The name of the field a shape stands for; nil for an unknown field.
    func name(_ shape: Shape) -> String? {
        shape.kind == .unknown ? nil : field(shape).name
    }

    /// The schema of the sub-message a `.message` shape stands for.
    @inline(__always)
    func nested(_ shape: Shape) -> WireSchema {
        storage.nested[Int(shape.index)]!()
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
    typealias Shape = WireSchema.Shape

    /// Checks `bytes`; returns true when they hold unknown groups (to strip before unpacking).
    @discardableResult
    static func check(
        _ bytes: UnsafeRawBufferPointer, schema: WireSchema, limits: DecodingLimits
    ) throws(WireError) -> Bool {
        guard bytes.count <= limits.maxMessageBytes else {
            throw .messageTooLarge(size: bytes.count, limit: limits.maxMessageBytes)
        }
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return false }
        var groups = false
        try scan(base.assumingMemoryBound(to: UInt8.self), count: bytes.count,
                 schema: schema, depth: 0, limits: limits, groups: &groups)
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
            let key = try readVarint(p, count: count, at: &i)
            let keyEnd = i
            let number = Int(truncatingIfNeeded: key >> 3)
            switch Int(key & 7) {
            case 0: _ = try readVarint(p, count: count, at: &i)
            case 1: i += 8
            case 5: i += 4
            case 2:
                let length = Int(try readVarint(p, count: count, at: &i))
                let shape = schema.shape(number)
                if shape.kind == .message {
                    var inner: [UInt8] = []
                    try strip(p + i, count: length, schema: schema.nested(shape), into: &inner)
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
            let key = try readVarint(p, count: count, at: &i)
            let inner = key >> 3
            guard inner >= 1, inner <= 0x1FFF_FFFF else { throw .invalidFieldNumber(Int(truncatingIfNeeded: inner)) }
            switch Int(key & 7) {
            case 0:
                _ = try readVarint(p, count: count, at: &i)
            case 1:
                guard count - i >= 8 else { throw .truncated(field: nil) }
                i += 8
            case 5:
                guard count - i >= 4 else { throw .truncated(field: nil) }
                i += 4
            case 2:
                let length = try readVarint(p, count: count, at: &i)
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

    /// Checks one message, `depth` sub-messages below the top. An error names the field of
    /// this message it concerns; the enclosing message puts its own field's name in front
    /// as the error passes (``WireError/inField(_:)``), so the success path builds no path.
    private static func scan(
        _ p: UnsafePointer<UInt8>, count: Int, schema: WireSchema, depth: Int,
        limits: DecodingLimits, groups: inout Bool
    ) throws(WireError) {
        guard depth < limits.maxDepth else { throw .nestingTooDeep(limit: limits.maxDepth) }
        var i = 0
        while i < count {
            let key = try readVarint(p, count: count, at: &i)
            let wireType = Int(truncatingIfNeeded: key & 7)
            let number = key >> 3
            guard number >= 1, number <= 0x1FFF_FFFF else { throw .invalidFieldNumber(Int(truncatingIfNeeded: number)) }
            let fieldNumber = Int(truncatingIfNeeded: number)
            let shape = schema.shape(fieldNumber)
            switch wireType {
            case 0:
                try expect(shape, wireType: 0, schema)
                do {
                    _ = try readVarint(p, count: count, at: &i)
                } catch {
                    throw error.naming(schema.name(shape))
                }
            case 1:
                try expect(shape, wireType: 1, schema)
                guard count - i >= 8 else { throw .truncated(field: schema.name(shape)) }
                i += 8
            case 5:
                try expect(shape, wireType: 5, schema)
                guard count - i >= 4 else { throw .truncated(field: schema.name(shape)) }
                i += 4
            case 2:
                let length: UInt64
                do {
                    length = try readVarint(p, count: count, at: &i)
                } catch {
                    throw error.naming(schema.name(shape))
                }
                guard length <= UInt64(count - i) else {
                    let field = schema.name(shape)
                    throw length > UInt64(Int32.max) ? .lengthOverflow(field: field) : .truncated(field: field)
                }
                let start = p + i
                let len = Int(truncatingIfNeeded: length)
                i += len
                switch shape.kind {
                case .unknown, .bytes:
                    break
                case .string:
                    try checkString(start, count: len, schema: schema, shape: shape)
                case .message:
                    do {
                        try scan(start, count: len, schema: schema.nested(shape), depth: depth + 1,
                                 limits: limits, groups: &groups)
                    } catch {
                        throw error.inField(schema.field(shape).name)
                    }
                case .varint, .fixed32, .fixed64:
                    // A packed repeated scalar; protobuf-c checks that the contents are whole values.
                    guard shape.repeated else {
                        throw .wrongWireType(field: schema.field(shape).name, expected: shape.kind.wireType, actual: 2)
                    }
                }
            case 3:
                try expect(shape, wireType: 3, schema)
                try skipGroup(p, count: count, at: &i, number: fieldNumber, depth: depth + 1, limits: limits)
                groups = true
            case 4:
                throw .unmatchedEndGroup(fieldNumber: fieldNumber)
            default:
                throw .invalidWireType(wireType)
            }
        }
    }

    /// Refuses a known field that arrived with a wire type its declared type cannot have.
    @inline(__always)
    private static func expect(_ shape: Shape, wireType: Int, _ schema: WireSchema) throws(WireError) {
        guard shape.kind == .unknown || shape.kind.wireType == wireType else {
            throw .wrongWireType(field: schema.field(shape).name, expected: shape.kind.wireType, actual: wireType)
        }
    }

    /// Reads a varint; an error names no field (the caller names it).
    @inline(__always)
    private static func readVarint(_ p: UnsafePointer<UInt8>, count: Int, at i: inout Int) throws(WireError) -> UInt64 {
        guard i < count else { throw .truncated(field: nil) }
        let first = p[i]
        if first < 0x80 {
            i += 1
            return UInt64(first)
        }
        return try readLongVarint(p, count: count, at: &i)
    }

    private static func readLongVarint(_ p: UnsafePointer<UInt8>, count: Int, at i: inout Int) throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard i < count else { throw .truncated(field: nil) }
            let byte = p[i]
            i += 1
            if shift == 63 && byte > 1 { throw .malformedVarint(field: nil) }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
            if shift > 63 { throw .malformedVarint(field: nil) }
        }
    }

    /// Unicode 15, table 3-7 (well-formed UTF-8 byte sequences), plus no U+0000. ASCII is
    /// checked eight bytes at a time.
    private static func checkString(
        _ p: UnsafePointer<UInt8>, count: Int, schema: WireSchema, shape: Shape
    ) throws(WireError) {
        func path() -> String { schema.field(shape).name }
        let high: UInt64 = 0x8080_8080_8080_8080
        let ones: UInt64 = 0x0101_0101_0101_0101
        var i = 0
        while i < count {
            if count - i >= 8 {
                let word = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
                // No byte with its high bit set, and no zero byte.
                if word & high == 0 && (word &- ones) & ~word & high == 0 {
                    i += 8
                    continue
                }
            }
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
    /// The kind as the scan's shape table stores it.
    var shapeKind: WireSchema.Shape.Kind {
        switch self {
        case .varint: return .varint
        case .fixed64: return .fixed64
        case .fixed32: return .fixed32
        case .string: return .string
        case .bytes: return .bytes
        case .message: return .message
        }
    }
}

extension WireSchema.Shape.Kind {
    /// The wire type a singular value of this kind has (-1 for an unknown field).
    var wireType: Int {
        switch self {
        case .unknown: return -1
        case .varint: return 0
        case .fixed64: return 1
        case .fixed32: return 5
        case .string, .bytes, .message: return 2
        }
    }
}

extension WireError {
    /// This error, met while reading a value of the field `name` (nil: an unknown field),
    /// naming that field.
    fileprivate func naming(_ name: String?) -> WireError {
        guard let name else { return self }
        switch self {
        case .truncated(nil): return .truncated(field: name)
        case .malformedVarint(nil): return .malformedVarint(field: name)
        default: return self
        }
    }

    /// This error, met inside the sub-message in field `name`, as the enclosing message
    /// sees it: `name` in front of its field path (or as its path, when it named none).
    fileprivate func inField(_ name: String) -> WireError {
        func joined(_ field: String?) -> String { field.map { "\(name).\($0)" } ?? name }
        switch self {
        case .truncated(let field): return .truncated(field: joined(field))
        case .malformedVarint(let field): return .malformedVarint(field: joined(field))
        case .lengthOverflow(let field): return .lengthOverflow(field: joined(field))
        case .wrongWireType(let field, let expected, let actual):
            return .wrongWireType(field: joined(field), expected: expected, actual: actual)
        case .invalidUTF8(let field): return .invalidUTF8(field: joined(field))
        case .embeddedNUL(let field): return .embeddedNUL(field: joined(field))
        default: return self
        }
    }
}
