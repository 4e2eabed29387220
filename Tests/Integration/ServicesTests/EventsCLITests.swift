import Foundation
import Models
import RPC
import RPCWire
import TestSupport
import Testing

/// `doorstep events tail` as the real binary against the services as processes: text and
/// CloudEvents JSON lines, a type filter, --from after a cursor, the service found by asking,
/// a refusal in one line.
@Suite("doorstep events tail", .serialized, .timeLimit(.minutes(3)))
struct EventsCLITests {
    @Test("prints the events of a service as lines, filtered, from a cursor; finds the service; refusals in one line")
    func tail() async throws {
        let cluster = try await ServiceCluster(only: ["accounts", "scheduling"])
        // Stopped at the end; this only when the test throws (see ImportCLITests).
        defer { Task { _ = await cluster.stopAll() } }
        let token = try await cluster.token("platform")
        let platform: Metadata = ["authorization": "Bearer \(token)"]
        let accounts = GRPCClient(targets: [GRPCClient.Target(cluster.accounts.address)!])
        let debtor = try await accounts.unary(AccountsV1.AccountsService.createDebtor, WorkflowTests.debtor(1, northMetres: 0),
                                              metadata: platform)
        let account = try await accounts.unary(AccountsV1.AccountsService.openAccount, WorkflowTests.account(1, debtorID: debtor.id),
                                               metadata: platform)
        await accounts.close()
        func tail(_ address: String, _ arguments: [String]) async throws -> ProcessResult {
            try await runProduct("doorstep", ["events", "tail", address, "--token", token] + arguments)
        }

        // Text: "CURSOR TIME TYPE SUBJECT", the account's events from the start.
        let text = try await tail(cluster.accounts.address, ["-o", "text", "--limit", "2"])
        #expect(text.status == 0, "\(text.output)")
        let lines = text.output.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(lines.count == 2 && lines.allSatisfy { $0.count == 4 && $0[3] == "accounts/\(account.id)" }, "\(text.output)")
        #expect(lines.first?[2] == "doorstep.accounts.account.opened", "\(text.output)")
        #expect(lines.first.map { Int($0[0])! < Int(lines[1][0])! } == true)

        // CloudEvents JSON, one type, and --from after the first line's cursor.
        let json = try await tail(cluster.accounts.address, ["--type", "doorstep.accounts.account.stage_changed", "--limit", "1"])
        #expect(json.status == 0, "\(json.output)")
        let event = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any], "\(json.output)")
        #expect(event["specversion"] as? String == "1.0" && event["type"] as? String == "doorstep.accounts.account.stage_changed")
        #expect(event["source"] as? String == "/doorstep/accounts" && event["datacontenttype"] as? String == "application/json")
        #expect((event["data"] as? [String: Any])?["accountId"] as? String == account.id)
        let next = try await tail(cluster.accounts.address, ["-o", "text", "--limit", "1", "--from", lines[0][0]])
        #expect(next.output.split(separator: " ").first.map(String.init) == lines[1][0], "\(next.output)")

        // The scheduling service is found by asking (the accounts WatchEvents is unknown there):
        // its refusal of a cursor beyond its log names it.
        let found = try await tail(cluster.scheduling!.address, ["--from", "99999999"])
        #expect(found.status == 1 && found.output.contains("scheduling WatchEvents: OUT_OF_RANGE"), "\(found.output)")

        // Refusals: one line, exit 1 (a cursor beyond the log); usage errors exit 64.
        let beyond = try await tail(cluster.accounts.address, ["--from", "99999999"])
        #expect(beyond.status == 1 && beyond.output.contains("OUT_OF_RANGE") && beyond.output.split(separator: "\n").count == 1,
                "\(beyond.output)")
        let usage = try await tail(cluster.accounts.address, ["--from", "1", "--from-now"])
        #expect(usage.status == 64, "\(usage.output)")
        _ = await cluster.stopAll()
    }
}
