import Models
import Testing

/// The decode path's fast paths against their slow twins: the structural check reads ASCII
/// eight bytes at a time, and the arena that libprotobuf-c unpacks into starts with one chunk
/// sized from the input and chains more when that is not enough.
@Suite("Decode fast paths give the same answers as the slow ones", .timeLimit(.minutes(2)))
struct DecodePathTests {
    typealias AllKinds = TestingV1.AllKinds

    @Test("U+0000 and invalid UTF-8 are found at every offset of a string, whatever its alignment",
          arguments: 0..<24)
    func badByteAtEveryOffset(offset: Int) {
        var withNUL = [UInt8](repeating: UInt8(ascii: "a"), count: 24)
        withNUL[offset] = 0
        #expect(throws: WireError.embeddedNUL(field: "f_string")) {
            try AllKinds(decoding: delimited(9, withNUL))
        }
        var withFF = [UInt8](repeating: UInt8(ascii: "a"), count: 24)
        withFF[offset] = 0xFF
        #expect(throws: WireError.invalidUTF8(field: "f_string")) {
            try AllKinds(decoding: delimited(9, withFF))
        }
        // A multi-byte character cut by the end of the string, after `offset` ASCII bytes.
        let cut = [UInt8](repeating: UInt8(ascii: "a"), count: offset) + [0xE4, 0xB8]
        #expect(throws: WireError.invalidUTF8(field: "r_leaf.label")) {
            try AllKinds(decoding: delimited(37, delimited(1, cut)))
        }
    }

    @Test("strings mixing ASCII runs and multi-byte characters at every alignment decode unchanged",
          arguments: 0..<16)
    func mixedStrings(prefix: Int) throws {
        let text = String(repeating: "x", count: prefix) + "上門催收 abcdefghij 🙂 0123456789abcdef é"
        let value = AllKinds(fString: text, rString: [text, String(repeating: "y", count: 40)])
        #expect(try AllKinds(decoding: value.encode()) == value)
    }

    @Test("a message that unpacks into more than the arena's first chunk decodes unchanged")
    func arenaChainsChunks() throws {
        // 20,000 one-letter strings and 2,000 leaves: about 60 KB on the wire, several
        // hundred KB of protobuf-c structs, pointers and strings.
        let value = AllKinds(
            rString: (0..<20_000).map { String(UnicodeScalar(UInt8(97 + $0 % 26))) },
            rLeaf: (0..<2_000).map { TestingV1.Leaf(label: "leaf \($0)", amount: Int64($0)) }
        )
        let bytes = try value.encode()
        #expect(try AllKinds(decoding: bytes) == value)
    }

    @Test("a bytes field larger than the arena's largest chunk decodes unchanged")
    func oversizedAllocation() throws {
        let blob = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let value = AllKinds(fString: "before", fBytes: blob, fFar: "after")
        #expect(try AllKinds(decoding: value.encode()) == value)
    }

    @Test("an error inside an unknown group within a sub-message names the sub-message")
    func groupErrorInsideSubMessage() {
        // f_inner holding group 900 whose fixed64 is cut short.
        let inner = key(900, 3) + key(1, 1) + [1, 2]
        #expect(throws: WireError.truncated(field: "f_inner")) {
            try AllKinds(decoding: delimited(18, inner))
        }
        // The same at the top level names no field.
        #expect(throws: WireError.truncated(field: nil)) { try AllKinds(decoding: inner) }
    }

    @Test("non-contiguous bytes decode like an array of the same bytes")
    func nonContiguousInput() throws {
        let bytes = try richAllKinds.encode()
        let chunked = bytes.lazy.map { $0 }
        #expect(try AllKinds(decoding: chunked) == richAllKinds)
        let broken = (bytes + key(99, 2)).lazy.map { $0 }  // an unknown field's length is missing
        #expect(throws: WireError.truncated(field: nil)) { try AllKinds(decoding: broken) }
    }

    @Test("a stored record decodes without the outside check like with it; cut or corrupt bytes are still refused")
    func storedRecords() throws {
        let bytes = try richAllKinds.encode()
        let stored = try bytes.withUnsafeBytes { buffer throws(WireError) in try AllKinds(decodingStored: buffer) }
        #expect(stored == richAllKinds)
        #expect(stored == (try AllKinds(decoding: bytes)))
        let cut = Array(bytes.dropLast(3))
        #expect(throws: WireError.self) { try cut.withUnsafeBytes { buffer throws(WireError) in try AllKinds(decodingStored: buffer) } }
        let garbage: [UInt8] = [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]  // a length past the end
        #expect(throws: WireError.self) { try garbage.withUnsafeBytes { buffer throws(WireError) in try AllKinds(decodingStored: buffer) } }
    }
}
