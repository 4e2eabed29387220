import Foundation
import Models
import RPC
import RPCWire
import ServiceKit
import TestSupport
import Testing

/// A peer's failure keeps its meaning across the hop, between real processes: a service
/// whose token the peer refuses answers INTERNAL and logs the peer's status; a peer that is
/// down is UNAVAILABLE. (The mapping of every code: ServiceKitTests.)
@Suite("Peer failures across a hop, between processes")
struct PeerFailureTests {
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
