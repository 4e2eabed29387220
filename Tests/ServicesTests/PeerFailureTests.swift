import Foundation
import Models
import RPC
import RPCWire
import ServiceKit
import TestSupport
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

    @Test("scheduling signing with another key than accounts: INTERNAL to the caller, the peer's status in the log; accounts down: UNAVAILABLE",
          .timeLimit(.minutes(2)))
    func misconfiguredKeyIsNotUnavailable() async throws {
        let accountsCluster = try await DevCluster()
        let schedulingCluster = try await DevCluster()  // a second, different signing key
        let accountsProcess = try await accountsCluster.start("accounts")
        let schedulingProcess = try await schedulingCluster.start("scheduling", ["--accounts-addr", accountsProcess.address])
        let platform = try await schedulingCluster.token(["--role", "platform"])
        let scheduling = GRPCClient(targets: [GRPCClient.Target(schedulingProcess.address)!])
        let request = SchedulingV1.PlanDayRequest(
            regionCode: "310115", date: WorkflowTests.shanghaiDate(DevCluster.nowMs() + 2 * DevCluster.day),
            options: SchedulingV1.PlanDayOptions(fillWithCandidates: true))

        let refused = await #expect(throws: RPCError.self) {
            try await scheduling.unary(SchedulingV1.SchedulingService.planDay, request, metadata: platform)
        }
        #expect(refused?.code == .internal && refused?.message == "internal error", "\(String(describing: refused))")

        let accountsStop = await accountsProcess.stop()
        #expect(accountsStop.status == 0)
        let down = await #expect(throws: RPCError.self) {
            try await scheduling.unary(SchedulingV1.SchedulingService.planDay, request, metadata: platform)
        }
        #expect(down?.code == .unavailable && down?.message.contains("accounts service") == true, "\(String(describing: down))")

        await scheduling.close()
        let stop = await schedulingProcess.stop()
        #expect(stop.status == 0, "\(stop.stderr.suffix(2000))")
        let faultLine = stop.stderr.split(separator: "\n").first { $0.contains("peer call failed") }
        #expect(faultLine?.contains("UNAUTHENTICATED") == true, "the peer's status is logged for operators:\n\(stop.stderr.suffix(2000))")
    }
}
