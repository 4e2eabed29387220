import Foundation
import Models
import RPC
import RPCWire
import TestSupport
import Testing
import TransportSecurity

/// The integration suite driven by docker-compose.yml: the compose file's commands,
/// environment, dependencies and health checks start the three executables (see
/// `ComposeCluster`), so what compose deploys is what these tests run. Where a Docker engine
/// answers (and `docker compose` is installed), the same tests run against
/// `docker compose up --build --wait` instead (`ComposeRunner`; `DOORSTEP_COMPOSE_RUNNER`
/// forces either).
@Suite("docker-compose.yml as real processes", .serialized)
struct ComposeClusterTests {
    /// The repository's names, and the same file with the services renamed so that the
    /// alphabet runs against their dependencies (accounts ← scheduling ← visits): the start
    /// order must come from `depends_on`, not from the names. (The renamed file runs as
    /// processes, also where an engine answers.)
    static let namings: [[String: String]] = [[:], ["accounts": "zeta", "scheduling": "mu", "visits": "alpha"]]

    @Test("compose starts the three services in dependency order (also when their names sort the other way), healthy, wired to each other; they stop cleanly",
          .timeLimit(.minutes(2)), arguments: namings)
    func wholeSystem(renaming: [String: String]) async throws {
        func named(_ service: String) -> String { renaming[service] ?? service }
        let cluster = renaming.isEmpty
            ? try await ComposeCluster() : try await ComposeCluster(compose: try loadCompose().renamingServices(renaming))
        let dependencyOrder = ["accounts", "scheduling", "visits"].map(named)
        #expect(cluster.order == dependencyOrder)
        if !renaming.isEmpty { #expect(dependencyOrder != dependencyOrder.sorted(), "the names sort against the dependencies") }
        let metadata: Metadata = ["authorization": "Bearer \(try cluster.token(["--role", "platform"]))"]
        let accounts = GRPCClient(targets: [GRPCClient.Target(cluster.address(named("accounts")))!])
        let scheduling = GRPCClient(targets: [GRPCClient.Target(cluster.address(named("scheduling")))!])
        let visits = GRPCClient(targets: [GRPCClient.Target(cluster.address(named("visits")))!])
        let debtor = try await accounts.unary(AccountsV1.AccountsService.createDebtor, ServiceProcessTests.debtorRequest(), metadata: metadata)
        let account = try await accounts.unary(AccountsV1.AccountsService.openAccount,
                                               ServiceProcessTests.accountRequest(debtorID: debtor.id), metadata: metadata)
        // scheduling reaches accounts at the address compose gives it (DOORSTEP_ACCOUNTS_ADDR).
        let budget = try await scheduling.unary(SchedulingV1.SchedulingService.getContactBudget,
                                                SchedulingV1.GetContactBudgetRequest(debtorId: debtor.id), metadata: metadata)
        #expect(budget.accounts.map(\.accountId) == [account.id])
        #expect(budget.rulePackId == "cn-2026", "DOORSTEP_RULE_PACK from compose")
        // visits is up and serving its contract.
        let listed = try await visits.unary(VisitsV1.VisitsService.listVisits, VisitsV1.ListVisitsRequest(accountId: account.id),
                                            metadata: metadata)
        #expect(listed.visits.isEmpty)
        await accounts.close()
        await scheduling.close()
        await visits.close()
        let stops = await cluster.stopAll()
        #expect(stops.map(\.name) == dependencyOrder.reversed(), "dependents stop first")
        for stop in stops {
            #expect(stop.status == 0, "\(stop.name): \(stop.stderr.suffix(1500))")
        }
    }

    @Test("docker-compose.tls.yml over docker-compose.yml: the three services on mutual TLS with the mounted certificates, health probes with their own certificates, peers over mutual TLS; plaintext refused",
          .timeLimit(.minutes(2)))
    func mutualTLSOverride() async throws {
        let cluster = try await ComposeCluster(compose: try loadCompose(override: "docker-compose.tls.yml"))
        #expect(cluster.order == ["accounts", "scheduling", "visits"])
        let tls = cluster.directory.appendingPathComponent("tls").path
        var configuration = GRPCClient.Configuration()
        configuration.tls = try ClientTLS(files: .init(caFile: "\(tls)/ca.pem", certificateFile: "\(tls)/operator.pem",
                                                       keyFile: "\(tls)/operator.key"))
        let metadata: Metadata = ["authorization": "Bearer \(try cluster.token(["--role", "platform"]))"]
        let accounts = GRPCClient(targets: [GRPCClient.Target(cluster.address("accounts"))!], configuration: configuration)
        let scheduling = GRPCClient(targets: [GRPCClient.Target(cluster.address("scheduling"))!], configuration: configuration)
        let debtor = try await accounts.unary(AccountsV1.AccountsService.createDebtor, ServiceProcessTests.debtorRequest(), metadata: metadata)
        let account = try await accounts.unary(AccountsV1.AccountsService.openAccount,
                                               ServiceProcessTests.accountRequest(debtorID: debtor.id), metadata: metadata)
        // scheduling asks accounts over mutual TLS, with its own certificate.
        let budget = try await scheduling.unary(SchedulingV1.SchedulingService.getContactBudget,
                                                SchedulingV1.GetContactBudgetRequest(debtorId: debtor.id), metadata: metadata)
        #expect(budget.accounts.map(\.accountId) == [account.id])
        await accounts.close()
        await scheduling.close()
        // A plaintext client gets nowhere.
        let plaintext = GRPCClient(targets: [GRPCClient.Target(cluster.address("visits"))!])
        await #expect(throws: RPCError.self) {
            _ = try await plaintext.unary(VisitsV1.VisitsService.listVisits, VisitsV1.ListVisitsRequest(accountId: account.id),
                                          metadata: metadata, timeout: .seconds(5))
        }
        await plaintext.close()
        for stop in await cluster.stopAll() {
            #expect(stop.status == 0, "\(stop.name): \(stop.stderr.suffix(1500))")
        }
    }

    @Test("an operator can run one service alone from its compose definition", .timeLimit(.minutes(1)))
    func oneServiceAlone() async throws {
        let cluster = try await ComposeCluster(only: ["accounts"])
        #expect(cluster.order == ["accounts"])
        let health = try await runProduct("doorstep", ["health", cluster.address("accounts")])
        #expect(health.status == 0, "\(health.output)")
        for stop in await cluster.stopAll() { #expect(stop.status == 0) }
    }
}
