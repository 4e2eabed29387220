import Foundation
import Models
import RPC
import RPCWire
import TestSupport
import Testing

/// kill -9 of a receiving service while the visits outbox delivers: nothing lost, nothing
/// doubled (issue #6 "Fault test").
@Suite("Outbox under kill -9", .serialized)
struct OutboxFaultTests {
    static let day: Int64 = 86_400_000
    static let hour: Int64 = 3_600_000

    @Test("kill -9 accounts while visits records 100 outcomes, then kill -9 visits while its outbox holds undelivered promises: every promise arrives exactly once", .timeLimit(.minutes(5)))
    func killAccountsMidDelivery() async throws {
        let base = DevCluster.nextShanghaiTenOClock()
        let cluster = try await DevCluster(startingAt: base)
        func start(_ name: String, listen: String = "127.0.0.1:0", _ extra: [String] = []) async throws -> RunningService {
            try await cluster.start(name, listen: listen, ["--log-level", "error"] + extra)
        }
        var accountsProcess = try await start("accounts")
        let accountsAddress = accountsProcess.address
        let schedulingProcess = try await start("scheduling", ["--accounts-addr", accountsAddress])
        var visitsProcess = try await start("visits", ["--accounts-addr", accountsAddress, "--scheduling-addr", schedulingProcess.address])
        let token = cluster.token
        let platform = try await token(["--role", "platform"])
        let accounts = Replicas([accountsAddress])
        let scheduling = Replicas([schedulingProcess.address])
        let visits = Replicas([visitsProcess.address])
        let count = 100
        let day = try await FieldDay.prepare(cluster: cluster, base: base, count: count, accounts: accounts, scheduling: scheduling,
                                             visits: visits)

        // 100 outcomes, each a promise. Accounts is killed with SIGKILL right after the 30th
        // (while its consequences are being delivered) and restarted on the same address after
        // the 70th: visits keeps committing outcomes locally, and the outbox retries. After the
        // 90th accounts is killed again and stays down, so the last ten outcomes' promises
        // cannot have been delivered when visits is killed in turn.
        var visitIDs: [String] = []
        for index in 0..<count {
            let lead = try await token(["--role", "collector", "--agency", day.agencyID, "--collector", day.appointments[index].crew[0]])
            let visit = try await visits.clients[0].unary(VisitsV1.VisitsService.recordOutcome, day.outcome(index), metadata: lead)
            visitIDs.append(visit.id)
            if index == 29 || index == 89 {
                let killed = await accountsProcess.stop(signal: SIGKILL)
                #expect(killed.reason == .uncaughtSignal && killed.status == SIGKILL)
            }
            if index == 69 {
                accountsProcess = try await start("accounts", listen: accountsAddress)
            }
        }
        #expect(visitIDs.count == count)
        // Accounts is down: what visits holds for it is still pending in its outbox.
        var pending = 0
        for id in visitIDs[90...] {
            let visit = try await visits.clients[0].unary(VisitsV1.VisitsService.getVisit, VisitsV1.GetVisitRequest(visitId: id),
                                                          metadata: platform)
            pending += visit.effects.contains { $0.delivery?.status != .delivered } ? 1 : 0
        }
        #expect(pending == 10, "the last ten outcomes wait for accounts: \(pending) visits with an undelivered effect")
        // kill -9 visits with those effects pending; restart accounts, then visits, on their
        // addresses: the restarted outbox delivers them.
        let visitsAddress = visitsProcess.address
        let killedVisits = await visitsProcess.stop(signal: SIGKILL)
        #expect(killedVisits.reason == .uncaughtSignal && killedVisits.status == SIGKILL)
        accountsProcess = try await start("accounts", listen: accountsAddress)
        visitsProcess = try await start("visits", listen: visitsAddress,
                                        ["--accounts-addr", accountsAddress, "--scheduling-addr", schedulingProcess.address])
        var retried = 0
        try await day.expectEveryPromiseOnce(accounts: accounts, visits: visits, visitIDs: visitIDs, platform: platform)
        for id in visitIDs {
            let visit = try await visits.unary(VisitsV1.VisitsService.getVisit, VisitsV1.GetVisitRequest(visitId: id), metadata: platform)
            retried += visit.effects.contains { ($0.delivery?.attempts ?? 0) > 1 } ? 1 : 0
        }
        #expect(retried >= 1, "the outage was felt: \(retried) visits needed retries")

        await accounts.close()
        await scheduling.close()
        await visits.close()
        for process in [visitsProcess, schedulingProcess, accountsProcess] { _ = await process.stop() }
    }
}
