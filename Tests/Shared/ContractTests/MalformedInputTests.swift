import Models
import RoutePlanner
import TestSupport
import Testing

/// Encodes a varint.
func varint(_ value: UInt64) -> [UInt8] {
    var value = value
    var out: [UInt8] = []
    repeat {
        out.append(UInt8(value & 0x7F) | (value >= 0x80 ? 0x80 : 0))
        value >>= 7
    } while value != 0
    return out
}

/// A field key: number and wire type.
func key(_ number: UInt64, _ wireType: UInt64) -> [UInt8] { varint(number << 3 | wireType) }

/// A length-delimited field.
func delimited(_ number: UInt64, _ payload: [UInt8]) -> [UInt8] {
    key(number, 2) + varint(UInt64(payload.count)) + payload
}

@Suite("Malformed input gets a typed error, never a crash")
struct MalformedInputTests {
    typealias AllKinds = TestingV1.AllKinds

    @Test("a message cut at any byte either decodes (cut on a field boundary) or says truncated")
    func everyPrefix() throws {
        let bytes = try richAllKinds.encode()
        var truncations = 0
        for length in 0..<bytes.count {
            do {
                _ = try AllKinds(decoding: bytes[0..<length])
            } catch {
                switch error {
                case .truncated: truncations += 1
                default: Issue.record("prefix of \(length) bytes: unexpected \(error)")
                }
            }
        }
        #expect(truncations > bytes.count / 2)
    }

    @Test("a cut inside a string names the field")
    func truncatedStringNamesField() {
        let bytes = key(9, 2) + varint(10) + Array("abc".utf8)
        #expect(throws: WireError.truncated(field: "f_string")) { try AllKinds(decoding: bytes) }
    }

    @Test("a cut inside a nested message names the path")
    func truncatedNestedPath() {
        let inner = key(3, 2) + varint(8) + [0x0A]  // f_inner.deep, cut short
        #expect(throws: WireError.truncated(field: "f_inner.deep")) {
            try AllKinds(decoding: delimited(18, inner))
        }
    }

    @Test("a length prefix larger than the input is a length overflow")
    func lengthOverflow() {
        let bytes = key(10, 2) + varint(UInt64(Int64.max)) + [1, 2, 3]
        #expect(throws: WireError.lengthOverflow(field: "f_bytes")) { try AllKinds(decoding: bytes) }
        let unknown = key(77, 2) + varint(1 << 40)
        #expect(throws: WireError.lengthOverflow(field: nil)) { try AllKinds(decoding: unknown) }
    }

    @Test("an eleven-byte varint is malformed")
    func overlongVarint() {
        let bytes = key(5, 0) + [UInt8](repeating: 0xFF, count: 10) + [0x01]
        #expect(throws: WireError.malformedVarint(field: "f_int32")) { try AllKinds(decoding: bytes) }
    }

    @Test("a known field with the wrong wire type is refused, naming it",
          arguments: [
              (key(5, 2) + [0], "f_int32", 0, 2),       // int32 as length-delimited (not repeated)
              (key(9, 0) + [1], "f_string", 2, 0),      // string as varint
              (key(1, 5) + [0, 0, 0, 0], "f_double", 1, 5),  // double as fixed32
              (key(17, 0) + [1], "f_leaf", 2, 0),       // message as varint
              (key(7, 1) + [UInt8](repeating: 0, count: 8), "f_fixed32", 5, 1),
          ])
    func wrongWireType(bytes: [UInt8], field: String, expected: Int, actual: Int) {
        #expect(throws: WireError.wrongWireType(field: field, expected: expected, actual: actual)) {
            try AllKinds(decoding: bytes)
        }
    }

    @Test("packed and unpacked encodings of a repeated scalar both decode")
    func packedAndUnpacked() throws {
        let packed = delimited(25, varint(1) + varint(2))
        let unpacked = key(25, 0) + varint(1) + key(25, 0) + varint(2)
        #expect(try AllKinds(decoding: packed).rInt32 == [1, 2])
        #expect(try AllKinds(decoding: unpacked).rInt32 == [1, 2])
    }

    @Test("a packed field whose contents are not whole values is refused")
    func brokenPacked() {
        let bytes = delimited(27, [1, 2, 3])  // repeated fixed32: 3 bytes is not a whole value
        #expect(throws: WireError.self) { try AllKinds(decoding: bytes) }
    }

    @Test("field number 0, wire types 6 and 7, a known field sent as a group, and broken groups are refused")
    func invalidKeys() {
        #expect(throws: WireError.invalidFieldNumber(0)) { try AllKinds(decoding: [0x00, 0x01]) }
        #expect(throws: WireError.invalidWireType(6)) { try AllKinds(decoding: key(5, 6)) }
        #expect(throws: WireError.invalidWireType(7)) { try AllKinds(decoding: key(5, 7)) }
        #expect(throws: WireError.wrongWireType(field: "f_int32", expected: 0, actual: 3)) {
            try AllKinds(decoding: key(5, 3) + key(5, 4))
        }
        #expect(throws: WireError.unterminatedGroup(fieldNumber: 900)) { try AllKinds(decoding: key(900, 3) + key(1, 0) + varint(1)) }
        #expect(throws: WireError.unterminatedGroup(fieldNumber: 900)) { try AllKinds(decoding: key(900, 3) + key(901, 4)) }
        #expect(throws: WireError.unmatchedEndGroup(fieldNumber: 900)) { try AllKinds(decoding: key(900, 4)) }
        #expect(throws: WireError.truncated(field: nil)) { try AllKinds(decoding: key(900, 3) + key(1, 1) + [1, 2]) }
    }

    @Test("unknown groups, nested or not, at the top or inside a sub-message, are skipped like any unknown field")
    func unknownGroupsSkipped() throws {
        var expected = AllKinds()
        expected.fInt64 = 7
        expected.fString = "after"
        expected.fLeaf = TestingV1.Leaf(label: "leaf", amount: 3)
        // Group 900 holding a varint, a string, a nested group 3 (holding a fixed32) and a fixed64.
        let group = key(900, 3) + key(1, 0) + varint(5) + delimited(2, Array("x".utf8))
            + key(3, 3) + key(1, 5) + [1, 2, 3, 4] + key(3, 4) + key(4, 1) + [UInt8](repeating: 0, count: 8) + key(900, 4)
        let leaf = delimited(1, Array("leaf".utf8)) + group + key(2, 0) + varint(3)
        let bytes = key(3, 0) + varint(7) + group + delimited(17, leaf) + delimited(9, Array("after".utf8)) + group
        #expect(try AllKinds(decoding: bytes) == expected)
        // The same bytes without the groups decode to the same message.
        let plain = key(3, 0) + varint(7) + delimited(17, delimited(1, Array("leaf".utf8)) + key(2, 0) + varint(3))
            + delimited(9, Array("after".utf8))
        #expect(try AllKinds(decoding: plain) == expected)
    }

    @Test("strings must be UTF-8 without U+0000", arguments: [
        [0xC0, 0x80],              // overlong NUL
        [0xED, 0xA0, 0x80],        // UTF-16 surrogate
        [0xF4, 0x90, 0x80, 0x80],  // above U+10FFFF
        [0xE4, 0xB8],              // cut multi-byte sequence
        [0x80],                    // lone continuation byte
        [0xFF],
    ] as [[UInt8]])
    func invalidUTF8(payload: [UInt8]) {
        #expect(throws: WireError.invalidUTF8(field: "f_string")) {
            try AllKinds(decoding: delimited(9, payload))
        }
    }

    @Test("a string with U+0000 is refused on decode, even nested or repeated")
    func nulRefusedOnDecode() {
        #expect(throws: WireError.embeddedNUL(field: "f_string")) {
            try AllKinds(decoding: delimited(9, [0x61, 0x00, 0x62]))
        }
        #expect(throws: WireError.embeddedNUL(field: "r_leaf.label")) {
            try AllKinds(decoding: delimited(37, delimited(1, [0x00])))
        }
        #expect(throws: WireError.embeddedNUL(field: "f_far")) {
            try AllKinds(decoding: delimited(1000, [0x00]))
        }
    }

    @Test("the message size limit is exact")
    func sizeLimit() throws {
        let bytes = delimited(10, [UInt8](repeating: 7, count: 98))  // 100 bytes
        #expect(bytes.count == 100)
        _ = try AllKinds(decoding: bytes, limits: .init(maxMessageBytes: 100))
        #expect(throws: WireError.messageTooLarge(size: 100, limit: 99)) {
            try AllKinds(decoding: bytes, limits: .init(maxMessageBytes: 99))
        }
    }

    @Test("the nesting limit is exact")
    func depthLimit() throws {
        // AllKinds > f_inner > deep: depth 3.
        let bytes = delimited(18, delimited(3, delimited(1, Array("x".utf8))))
        _ = try AllKinds(decoding: bytes, limits: .init(maxDepth: 3))
        #expect(throws: WireError.nestingTooDeep(limit: 2)) {
            try AllKinds(decoding: bytes, limits: .init(maxDepth: 2))
        }
    }

    @Test("deeply nested unknown fields are skipped without recursion")
    func deeplyNestedUnknown() throws {
        var payload: [UInt8] = []
        for _ in 0..<5000 { payload = delimited(99, payload) }
        #expect(try AllKinds(decoding: payload) == AllKinds())
    }

    @Test("random bytes never crash the decoder")
    func randomBytes() {
        var rng = SplitMix64(seed: 0xD005_7E90)
        var decoded = 0
        for _ in 0..<20_000 {
            let count = Int.random(in: 0...64, using: &rng)
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if (try? AllKinds(decoding: bytes)) != nil { decoded += 1 }
        }
        #expect(decoded > 0)
    }

    @Test("mutations of a valid message never crash the decoder")
    func mutatedBytes() throws {
        let original = try richAllKinds.encode()
        var rng = SplitMix64(seed: 42)
        for _ in 0..<5_000 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            _ = try? AllKinds(decoding: bytes)
        }
    }
}
