import RPCWire
import Testing

/// The status as trailers: written by the server and read by the client with the same code.
@Suite("Status ⇄ trailers")
struct StatusTrailersTests {
    static func fields(_ pairs: [(String, String)]) -> [(name: String, value: String)] { pairs.map { (name: $0.0, value: $0.1) } }

    @Test("OK is one field; a failure carries its message percent-encoded, its details base64, then metadata")
    func encode() {
        #expect(StatusTrailers.encode(.ok).map(\.name) == ["grpc-status"])
        #expect(StatusTrailers.encode(.ok).first?.value == "0")
        var metadata = Metadata()
        metadata.add("x-note", "kept")
        metadata.add("x-blob-bin", binary: [0, 255])
        metadata.add("grpc-status", "5")  // reserved: never sent as metadata
        metadata.add("x-bad", "line\nbreak")  // not a valid text value: dropped
        let status = Status(code: .failedPrecondition, message: "規則 100% refused", details: [1, 2, 3], metadata: metadata)
        var extra = Metadata()
        extra.add("x-extra", "1")
        let fields = StatusTrailers.encode(status, extra: extra)
        #expect(fields.map(\.name) == ["grpc-status", "grpc-message", "grpc-status-details-bin", "x-note", "x-blob-bin", "x-extra"])
        #expect(fields[0].value == "9")
        #expect(fields[1].value == PercentEncoding.encode("規則 100% refused") && PercentEncoding.decode(fields[1].value) == "規則 100% refused")
        #expect(fields[2].value == "AQID", "unpadded base64")
    }

    @Test("what the server writes, the client reads back as the same status")
    func roundTrip() {
        var metadata = Metadata()
        metadata.add("x-note", "kept")
        metadata.add("x-blob-bin", binary: [0, 1, 255])
        for status in [Status.ok, Status(code: .unavailable, message: "retry: 上門"),
                       Status(code: .invalidArgument, message: "a: b", details: Array(0...255), metadata: metadata)] {
            let decoded = StatusTrailers.decode([(name: ":status", value: "200")] + StatusTrailers.encode(status))
            #expect(decoded.status == status)
            #expect(decoded.httpStatus == 200)
            #expect(decoded.metadata == status.metadata)
        }
    }

    @Test("headers without grpc-status carry no status; an unknown or malformed code is UNKNOWN")
    func decodeEdges() {
        let headers = StatusTrailers.decode(Self.fields([(":status", "200"), ("content-type", "application/grpc"), ("x-a", "b")]))
        #expect(headers.status == nil && headers.metadata["x-a"] == "b")
        #expect(StatusTrailers.decode(Self.fields([("grpc-status", "17")])).status?.code == .unknown)
        #expect(StatusTrailers.decode(Self.fields([("grpc-status", "OK")])).status?.code == .unknown)
        #expect(StatusTrailers.decode(Self.fields([("grpc-status", "-1")])).status?.code == .unknown)
        #expect(StatusTrailers.decode(Self.fields([("grpc-status", "16")])).status?.code == .unauthenticated)
    }

    @Test("a failed status is the error a client throws; OK is none")
    func error() {
        #expect(Status.ok.error == nil)
        let status = Status(code: .notFound, message: "account acc_1 not found")
        #expect(status.error == RPCError.notFound("account acc_1 not found"))
        #expect(Status(status.error!) == status)
    }
}
