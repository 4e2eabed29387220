import RPCWire
import Testing

@Suite("grpc-timeout")
struct GRPCTimeoutTests {
    @Test("valid values parse to their duration", arguments: [
        ("1H", Duration.seconds(3600)), ("2M", .seconds(120)), ("3S", .seconds(3)),
        ("4m", .milliseconds(4)), ("5u", .microseconds(5)), ("6n", .nanoseconds(6)),
        ("0n", .zero), ("99999999S", .seconds(99_999_999)), ("99999999H", .seconds(99_999_999 * 3600)),
        ("00000001m", .milliseconds(1)),
    ])
    func valid(text: String, duration: Duration) {
        #expect(GRPCTimeout.parse(text) == duration)
    }

    @Test("invalid values are refused", arguments: [
        "100000000S", "", "S", "1", "1s", "1h", "-1S", "+1S", " 1S", "1S ", "1.5S", "1Sx", "１S",
    ])
    func invalid(text: String) {
        #expect(GRPCTimeout.parse(text) == nil)
    }

    @Test("formatting picks the finest unit within 8 digits and never shortens", arguments: [
        (Duration.nanoseconds(1), "1n"), (.milliseconds(1), "1000000n"), (.seconds(1), "1000000u"),
        (.seconds(100), "100000m"), (.seconds(100_000), "100000S"), (.seconds(1_000_000_000), "16666667M"),
        (.zero, "0n"), (.seconds(-5), "0n"), (.nanoseconds(100_000_001), "100001u"),
    ])
    func format(duration: Duration, text: String) {
        #expect(GRPCTimeout.format(duration) == text)
        if duration > .zero { #expect(GRPCTimeout.parse(text)! >= duration) }
    }
}

@Suite("grpc-message percent-encoding")
struct PercentEncodingTests {
    @Test("printable ASCII passes, '%' and everything else is escaped")
    func encode() {
        #expect(PercentEncoding.encode("account not found") == "account not found")
        #expect(PercentEncoding.encode("50%") == "50%25")
        #expect(PercentEncoding.encode("上") == "%E4%B8%8A")
        #expect(PercentEncoding.encode("a\nb\u{7F}") == "a%0Ab%7F")
    }

    @Test("decoding round-trips and keeps malformed sequences")
    func decode() {
        for text in ["上門催收: 規則 cn-2026.visit-hours", "100%", "tab\there", "🙂"] {
            #expect(PercentEncoding.decode(PercentEncoding.encode(text)) == text)
        }
        #expect(PercentEncoding.decode("%zz%4") == "%zz%4")
        #expect(PercentEncoding.decode("%e4%b8%8a") == "上")
    }
}

@Suite("Metadata")
struct MetadataTests {
    @Test("binary values: padded and un-padded base64 accepted, un-padded written")
    func binary() {
        #expect(Metadata.entry(name: "trace-bin", rawValue: "AQID")?.value == .binary([1, 2, 3]))
        #expect(Metadata.entry(name: "trace-bin", rawValue: "AQ==")?.value == .binary([1]))
        #expect(Metadata.entry(name: "trace-bin", rawValue: "AQ")?.value == .binary([1]))
        #expect(Metadata.entry(name: "trace-bin", rawValue: "A") == nil)
        #expect(Metadata.entry(name: "trace-bin", rawValue: "A*==") == nil)
        #expect(Metadata.headerValue(.binary([1])) == "AQ")
        #expect(Base64.encode(Array(0...255), padding: true).count == 344)
        #expect(Base64.decode(Base64.encode(Array(0...255), padding: false)) == Array(0...255))
    }

    @Test("names and text values are validated")
    func validation() {
        #expect(Metadata.entry(name: "x-request-id", rawValue: "abc 123")?.value == .string("abc 123"))
        #expect(Metadata.entry(name: "X-Upper", rawValue: "v") == nil)
        #expect(Metadata.entry(name: "x-ctl", rawValue: "a\u{1}") == nil)
        #expect(Metadata.entry(name: "x-utf8", rawValue: "上") == nil)
        #expect(Metadata.isReserved("grpc-timeout") && Metadata.isReserved(":path") && !Metadata.isReserved("authorization"))
    }

    @Test("lookups are case-insensitive and keep order")
    func lookups() {
        var metadata: Metadata = ["X-A": "1"]
        metadata.add("x-a", "2")
        metadata.add("x-b-bin", binary: [9])
        #expect(metadata["x-a"] == "1")
        #expect(metadata.binaryValues("X-B-BIN") == [[9]])
        #expect(metadata.entries.map(\.name) == ["x-a", "x-a", "x-b-bin"])
    }
}

@Suite("Status codes and errors")
struct StatusTests {
    @Test("names are the canonical ones")
    func names() {
        #expect(StatusCode.invalidArgument.description == "INVALID_ARGUMENT")
        #expect(StatusCode(name: "UNAUTHENTICATED") == .unauthenticated)
        #expect(StatusCode(rawValue: 99).description == "CODE_99")
        #expect(StatusCode(httpStatus: 404) == .unimplemented)
        #expect(StatusCode(httpStatus: 503) == .unavailable)
    }

    @Test("unknown errors reach clients as INTERNAL without their text")
    func conversion() {
        struct Secret: Error {}
        #expect(RPCError(from: Secret()) == RPCError(code: .internal, message: "internal error"))
        #expect(RPCError(from: CancellationError()).code == .cancelled)
        #expect(RPCError(from: RPCError.notFound("acc_1")).message == "acc_1")
    }
}

@Suite("Metadata text values")
struct MetadataTextValueTests {
    /// The word-at-a-time check agrees with the byte rule for every byte value at every
    /// position of strings long enough to take both the word loop and the tail.
    @Test("every byte value at every position of a 19-byte value")
    func everyByteEverywhere() {
        for position in 0..<19 {
            for byte in 0...255 {
                var bytes = Array(repeating: UInt8(ascii: "a"), count: 19)
                bytes[position] = UInt8(byte)
                let value = String(decoding: bytes, as: UTF8.self)
                let expected = value.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E }
                #expect(Metadata.isValidTextValue(value) == expected, "byte \(byte) at \(position)")
            }
        }
        #expect(Metadata.isValidTextValue(""))
        #expect(Metadata.isValidTextValue(" ~"))
        #expect(!Metadata.isValidTextValue(String(repeating: "x", count: 300) + "\u{7F}"))
        #expect(Metadata.isValidTextValue("Bearer " + String(repeating: "eyJhbGciOi.", count: 30)))
    }
}
