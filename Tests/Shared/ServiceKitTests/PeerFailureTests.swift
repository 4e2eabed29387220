import RPCWire
import ServiceKit
import Testing

/// A peer's failure keeps its meaning across the hop: the request's own problems pass
/// through, transient failures stay retryable, and faults (the peer's INTERNAL, this
/// service's token refused) are INTERNAL for the caller and logged for operators.
@Suite("Peer failures across a hop")
struct PeerFailureTests {
    @Test("every status code maps deliberately", arguments: (0...16).map { StatusCode(rawValue: $0) }.filter { $0 != .ok })
    func mapping(code: StatusCode) {
        let failure = PeerFailure(peer: "accounts", status: RPCError(code: code, message: "peer said so"))
        let caller = failure.forCaller
        switch code {
        case .notFound, .invalidArgument, .failedPrecondition, .alreadyExists, .outOfRange, .aborted:
            #expect(caller == failure.status, "the peer's word about the request passes through")
            #expect(!failure.isFault)
        case .unavailable, .resourceExhausted:
            #expect(caller.code == .unavailable && caller.message.hasPrefix("accounts service:"), "\(caller)")
            #expect(!failure.isFault)
        case .deadlineExceeded:
            #expect(caller.code == .deadlineExceeded && caller.message.contains("accounts"), "\(caller)")
            #expect(!failure.isFault)
        case .cancelled:
            #expect(caller.code == .cancelled)
            #expect(!failure.isFault)
        default:
            // INTERNAL, UNKNOWN, DATA_LOSS, UNIMPLEMENTED, UNAUTHENTICATED, PERMISSION_DENIED.
            #expect(caller.code == .internal && caller.message == "internal error" && caller.details == nil, "\(caller)")
            #expect(failure.isFault)
        }
    }
}
