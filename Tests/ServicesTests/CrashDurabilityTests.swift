import Foundation
import Models
import RPC
import RPCWire
import Synchronization
import TestSupport
import Testing

@Suite("Durability", .serialized)
struct CrashDurabilityTests {
    /// Writes under load, SIGKILL in the middle, restart on the same files: every write the
    /// client saw acknowledged is there, and the database opens cleanly (WAL recovery).
    @Test("kill -9 mid-load: nothing acknowledged is missing after a restart", .timeLimit(.minutes(2)))
    func killNineMidLoad() async throws {
        let cluster = try await ServiceCluster(only: ["accounts"])
        let token = try await cluster.token("platform")
        let metadata: Metadata = ["authorization": "Bearer \(token)"]
        let client = GRPCClient(targets: [GRPCClient.Target(cluster.accounts.address)!])
        let acknowledged = Acknowledged()  // external id → debtor id

        let killer = Task {
            try await Task.sleep(for: .milliseconds(600))
            _ = await cluster.accounts.stop(signal: SIGKILL)
        }
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for n in 0..<10_000 {
                        let external = "crash-\(worker)-\(n)"
                        do {
                            let debtor = try await client.unary(
                                AccountsV1.AccountsService.createDebtor,
                                AccountsV1.CreateDebtorRequest(requestId: external, debtor: AccountsV1.Debtor(
                                    externalId: external, fullName: "王五", nationalId: "11010519491231002X", phone: "13812345678",
                                    address: TypeV1.Address(text: "北京市朝阳区", regionCode: "110105"), timeZone: "Asia/Shanghai")),
                                metadata: metadata, timeout: .seconds(2))
                            acknowledged.value.withLock { $0[external] = debtor.id }
                        } catch {
                            return  // the server is gone
                        }
                    }
                }
            }
        }
        try await killer.value
        await client.close()
        let written = acknowledged.value.withLock { $0 }
        #expect(written.count > 20, "the load did not get going before the kill (\(written.count) writes)")
        print("kill -9 mid-load: \(written.count) acknowledged writes to check after the restart")

        let restarted = try await ServiceCluster.start("accounts", directory: cluster.directory, keyFile: cluster.keyFile)
        let reader = GRPCClient(targets: [GRPCClient.Target(restarted.address)!])
        var missing: [String] = []
        for (external, id) in written {
            do {
                let debtor = try await reader.unary(AccountsV1.AccountsService.getDebtor,
                                                    AccountsV1.GetDebtorRequest(debtorId: id), metadata: metadata)
                if debtor.externalId != external { missing.append(external) }
            } catch {
                missing.append("\(external): \(error)")
            }
        }
        #expect(missing.isEmpty, "acknowledged but lost: \(missing.prefix(5))")
        // A retry of an acknowledged request after the crash returns the same debtor.
        if let (external, id) = written.first {
            let again = try await reader.unary(
                AccountsV1.AccountsService.createDebtor,
                AccountsV1.CreateDebtorRequest(requestId: external, debtor: AccountsV1.Debtor(
                    externalId: external, fullName: "王五", nationalId: "11010519491231002X", phone: "13812345678",
                    address: TypeV1.Address(text: "北京市朝阳区", regionCode: "110105"), timeZone: "Asia/Shanghai")),
                metadata: metadata)
            #expect(again.id == id)
        }
        await reader.close()
        _ = await restarted.stop()
    }
}

/// Writes the clients saw acknowledged, shared by the load's tasks.
final class Acknowledged: Sendable {
    let value = Mutex<[String: String]>([:])
}
