import Foundation
import Models
import RPC
import RPCWire
import Synchronization
import TestSupport
import Testing

@Suite("Durability", .serialized)
struct CrashDurabilityTests {
    /// Acknowledged writes after which the kill is sent.
    static let killAfter = 25

    /// Writes under load, SIGKILL once `killAfter` writes were acknowledged, restart on the
    /// same files: every write the client saw acknowledged is there, and the database opens
    /// cleanly (WAL recovery). The only errors the writers accept are the kill's: UNAVAILABLE
    /// (connection lost, then refused) once the signal was sent.
    @Test("kill -9 mid-load: nothing acknowledged is missing after a restart", .timeLimit(.minutes(2)))
    func killNineMidLoad() async throws {
        let cluster = try await ServiceCluster(only: ["accounts"])
        let token = try await cluster.token("platform")
        let metadata: Metadata = ["authorization": "Bearer \(token)"]
        let client = GRPCClient(targets: [GRPCClient.Target(cluster.accounts.address)!])
        let acknowledged = Acknowledged(killAfter: Self.killAfter)  // external id → debtor id

        let killer = Task {
            await acknowledged.reachedKillPoint()
            acknowledged.markKillSent()
            return await cluster.accounts.stop(signal: SIGKILL)
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
                                // A bound for a server that hangs, not a speed test: a loaded CI
                                // machine (every suite at once) took over 2 s for a write here.
                                metadata: metadata, timeout: .seconds(10))
                            acknowledged.record(external, debtor.id)
                        } catch {
                            // The server is gone: the kill's error ends this writer; any other
                            // error (or any error before the kill) is a failure of its own.
                            acknowledged.recordFailure(external, error)
                            return
                        }
                    }
                }
            }
        }
        acknowledged.loadEnded()  // should every writer have failed before the kill point
        let killed = await killer.value
        await client.close()
        #expect(killed.reason == .uncaughtSignal && killed.status == SIGKILL,
                "accounts ended by \(killed.reason == .exit ? "exit" : "signal") \(killed.status), not by SIGKILL: \(killed.stderr.suffix(1500))")
        let unexpected = acknowledged.unexpectedFailures
        #expect(unexpected.isEmpty, "errors that are not the kill's: \(unexpected.prefix(5))")
        let written = acknowledged.value.withLock { $0 }
        #expect(written.count >= Self.killAfter, "the kill came before \(Self.killAfter) acknowledged writes (\(written.count))")
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

/// Writes the clients saw acknowledged, shared by the load's tasks; the kill point (the
/// `killAfter`-th acknowledgement) and the errors that are not the kill's.
final class Acknowledged: Sendable {
    let value = Mutex<[String: String]>([:])
    private let killAfter: Int
    private let killPoint: AsyncStream<Void>
    private let killPointReached: AsyncStream<Void>.Continuation
    private let killSent = Mutex(false)
    private let unexpected = Mutex<[String]>([])

    init(killAfter: Int) {
        self.killAfter = killAfter
        (killPoint, killPointReached) = AsyncStream<Void>.makeStream()
    }

    /// A write the client saw acknowledged.
    func record(_ external: String, _ id: String) {
        let count = value.withLock { written -> Int in
            written[external] = id
            return written.count
        }
        if count == killAfter { killPointReached.finish() }
    }

    /// Every writer has stopped: releases a kill that is still waiting.
    func loadEnded() { killPointReached.finish() }

    /// Returns once `killAfter` writes were acknowledged (or the load ended).
    func reachedKillPoint() async {
        for await _ in killPoint {}
    }

    /// Called just before the signal is sent: from now on UNAVAILABLE is the kill's.
    func markKillSent() { killSent.withLock { $0 = true } }

    /// A failed write: kept unless it is UNAVAILABLE after the kill was sent.
    func recordFailure(_ external: String, _ error: any Error) {
        let sent = killSent.withLock { $0 }
        guard !sent || (error as? RPCError)?.code != .unavailable else { return }
        unexpected.withLock { $0.append("\(external): \(error)\(sent ? "" : " (before the kill)")") }
    }

    var unexpectedFailures: [String] { unexpected.withLock { $0 } }
}
