import Models
import TestSupport
import Testing

/// A value that sets every field of `AllKinds` to something a careless conversion would get
/// wrong: 64-bit extremes, negative numbers, CJK and non-BMP text, bytes with 0x00 and 0xFF,
/// an unknown enum number, three levels of nesting.
let richAllKinds = TestingV1.AllKinds(
    fDouble: -121.473701, fFloat: 1.5, fInt64: .min, fUint64: .max, fInt32: .min,
    fFixed64: .max, fFixed32: .max, fBool: true, fString: "上門催收·張三·🙂·é",
    fBytes: [0x00, 0xFF, 0x80, 0x01], fUint32: .max, fSfixed32: .min, fSfixed64: .max,
    fSint32: .min, fSint64: .min, fLevel: .unrecognized(99),
    fLeaf: .init(label: "葉", amount: -1),
    fInner: .init(mode: .strict, leaves: [.init(label: "a", amount: 1), .init()],
                  deep: .init(note: "深", values: [.min, -1, 0, 1, .max])),
    fMode: .unrecognized(-5),
    rDouble: [0, -0.5, 1e300], rFloat: [-1.25, 3.5], rInt64: [.min, -1, .max],
    rUint64: [0, 1, .max], rInt32: [.min, -1, .max], rFixed64: [.max, 0], rFixed32: [.max, 7],
    rBool: [true, false, true], rString: ["", "二", "🙂"], rBytes: [[], [0], Array(0...255)],
    rUint32: [.max], rSfixed32: [.min, .max], rSfixed64: [.min, .max], rSint32: [.min, .max],
    rSint64: [.min, .max], rLevel: [.low, .unrecognized(99), .high],
    rLeaf: [.init(label: "x", amount: .max), .init(label: "y", amount: .min)],
    fFar: "遠い", choice: .cLeaf(.init(label: "選", amount: 42))
)

@Suite("Round trips through libprotobuf-c and the JSON mapping")
struct RoundTripTests {
    @Test("a rich value survives encode → decode unchanged")
    func richRoundTrip() throws {
        let bytes = try richAllKinds.encode()
        #expect(try TestingV1.AllKinds(decoding: bytes) == richAllKinds)
    }

    @Test("the default instance encodes to no bytes, and no bytes decode to it")
    func emptyMessage() throws {
        #expect(try TestingV1.AllKinds().encode().isEmpty)
        #expect(try TestingV1.AllKinds(decoding: [UInt8]()) == TestingV1.AllKinds())
        #expect(try TestingV1.Nothing(decoding: [UInt8]()) == TestingV1.Nothing())
    }

    @Test("every oneof member round-trips, including members set to their zero value",
          arguments: [
              TestingV1.AllKinds.Choice.cText("文"), .cText(""), .cNumber(.min), .cNumber(0),
              .cLeaf(.init()), .cBlob([0, 1]), .cBlob([]), .cLevel(.high), .cLevel(.unspecified),
          ])
    func oneofMembers(choice: TestingV1.AllKinds.Choice) throws {
        let value = TestingV1.AllKinds(choice: choice)
        let decoded = try TestingV1.AllKinds(decoding: value.encode())
        #expect(decoded.choice == choice)
        #expect(try TestingV1.AllKinds(jsonText: value.jsonText()).choice == choice)
    }

    @Test("an unknown enum number is kept through protobuf and JSON")
    func unknownEnum() throws {
        let value = TestingV1.AllKinds(fLevel: .unrecognized(1234), rLevel: [.unrecognized(-7)])
        let decoded = try TestingV1.AllKinds(decoding: value.encode())
        #expect(decoded.fLevel == .unrecognized(1234))
        #expect(decoded.rLevel == [.unrecognized(-7)])
        #expect(decoded.fLevel.rawValue == 1234)
        #expect(try TestingV1.AllKinds(jsonText: value.jsonText()) == value)
    }

    @Test("fields this build does not know are skipped")
    func unknownFieldsSkipped() throws {
        // Field 99 (varint 5), field 98 (length-delimited "hi"), then f_int32 = 7.
        let bytes: [UInt8] = [0x98, 0x06, 0x05, 0x92, 0x06, 0x02, 0x68, 0x69, 0x28, 0x07]
        #expect(try TestingV1.AllKinds(decoding: bytes) == TestingV1.AllKinds(fInt32: 7))
    }

    @Test("a rich value survives the proto3 JSON mapping unchanged")
    func jsonRoundTrip() throws {
        let text = richAllKinds.jsonText()
        #expect(try TestingV1.AllKinds(jsonText: text) == richAllKinds)
        #expect(text.contains(#""fInt64":"-9223372036854775808""#))
        #expect(text.contains(#""fLevel":99"#))
        #expect(text.contains(#""fMode":-5"#))
    }

    @Test("JSON input accepts proto field names, numbers as strings and enum names")
    func jsonInputForms() throws {
        let value = try TestingV1.AllKinds(jsonText: """
            {"f_int32": "12", "fInt64": 5, "fLevel": "LEVEL_HIGH", "f_bytes": "AP-A",
             "fDouble": "Infinity", "rUint64": ["18446744073709551615"], "fLeaf": null}
            """)
        #expect(value == TestingV1.AllKinds(fDouble: .infinity, fInt64: 5, fInt32: 12,
                                            fBytes: [0x00, 0xFF, 0x80], fLevel: .high,
                                            rUint64: [.max]))
    }

    @Test("JSON input that does not fit is refused, naming the field",
          arguments: [
              (#"{"fInt32": 2147483648}"#, "fInt32"),
              (#"{"fInt32": 1.5}"#, "fInt32"),
              (#"{"fBool": "yes"}"#, "fBool"),
              (#"{"fLevel": "LEVEL_NOPE"}"#, "fLevel"),
              (#"{"fLeaf": {"label": 3}}"#, "fLeaf.label"),
              (#"{"rLeaf": [{}, {"amount": "x"}]}"#, "rLeaf[1].amount"),
              (#"{"noSuchField": 1}"#, "noSuchField"),
              (#"{"fBytes": "***"}"#, "fBytes"),
          ])
    func jsonRefusals(text: String, field: String) {
        #expect {
            _ = try TestingV1.AllKinds(jsonText: text)
        } throws: { error in
            (error as? JSONMappingError)?.path == field
        }
    }

    @Test("a string containing U+0000 is refused on encode, naming the field")
    func nulRefusedOnEncode() {
        #expect(throws: WireError.embeddedNUL(field: "f_string")) {
            try TestingV1.AllKinds(fString: "a\u{0}b").encode()
        }
        #expect(throws: WireError.embeddedNUL(field: "r_string")) {
            try TestingV1.AllKinds(rString: ["ok", "\u{0}"]).encode()
        }
        #expect(throws: WireError.embeddedNUL(field: "label")) {
            try TestingV1.AllKinds(fLeaf: .init(label: "\u{0}")).encode()
        }
        #expect(throws: WireError.embeddedNUL(field: "c_text")) {
            try TestingV1.AllKinds(choice: .cText("x\u{0}")).encode()
        }
    }

    @Test("bytes fields may contain 0x00 freely")
    func nulInBytesIsFine() throws {
        let value = TestingV1.AllKinds(fBytes: [0, 0, 0], choice: .cBlob([0]))
        #expect(try TestingV1.AllKinds(decoding: value.encode()) == value)
    }

    @Test("withEncodedBytes gives the same bytes as encode()")
    func withEncodedBytes() throws {
        let viaBody = try richAllKinds.withEncodedBytes { Array($0) }
        #expect(try viaBody == richAllKinds.encode())
    }

    @Test("the registry knows every message by its full name")
    func registry() {
        #expect(ContractRegistry.messageTypes["doorstep.testing.v1.AllKinds.Inner.Deep"] == TestingV1.AllKinds.Inner.Deep.self)
        for (name, type) in ContractRegistry.messageTypes {
            #expect(type.protoMessageName == name)
        }
    }
}
