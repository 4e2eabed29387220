import Foundation
import Models
import RPC
import RPCWire
import ServiceTestSupport
import TestSupport
import Testing

/// Two replicas of each service on one PostgreSQL server (a private one per test, so that
/// it can be crashed): rules hold across replicas, a replica killed mid-work loses nothing,
/// and a database crash-restart is ridden out without restarting anything.
@Suite("Replicas on one PostgreSQL", .enabled(if: PostgresCluster.isAvailable), .serialized)
struct ReplicaTests {
    /// Accounts, two scheduling replicas and (optionally) two visits replicas, on `postgres`.
    struct Deployment {
        let cluster: DevCluster
        var accounts: [RunningService] = []
        var scheduling: [RunningService] = []
        var visits: [RunningService] = []

        init(postgres: PostgresCluster, base: Int64, accountsReplicas: Int = 2, withVisits: Bool = true) async throws {
            cluster = try await DevCluster(startingAt: base, postgres: postgres)
            for replica in 1...accountsReplicas { accounts.append(try await start("accounts", replica: replica)) }
            for replica in 1...2 { scheduling.append(try await start("scheduling", replica: replica)) }
            if withVisits { for replica in 1...2 { visits.append(try await start("visits", replica: replica)) } }
        }

        /// Replica `replica` of `name`, its peers named by every replica's address, its outbox
        /// claims lasting 3 s (so a killed replica's claims pass on quickly).
        func start(_ name: String, replica: Int, listen: String = "127.0.0.1:0") async throws -> RunningService {
            var peers: [String] = []
            if !accounts.isEmpty { peers += ["--accounts-addr", accounts.map(\.address).joined(separator: ",")] }
            if !scheduling.isEmpty { peers += ["--scheduling-addr", scheduling.map(\.address).joined(separator: ",")] }
            return try await cluster.start(name, listen: listen, replica: replica,
                                           ["--log-level", "error", "--outbox-claim-seconds", "3"] + peers)
        }

        func stopAll() async {
            for process in visits + scheduling + accounts { _ = await process.stop() }
        }
    }

    @Test("50 concurrent bookings of one crew's slot, spread over two scheduling replicas: exactly one booked, 49 refused for collector-double-booked",
          .timeLimit(.minutes(3)))
    func doubleBookingAcrossReplicas() async throws {
        let postgres = try PostgresCluster()
        defer { postgres.remove() }
        let base = DevCluster.nextShanghaiTenOClock()
        let deployment = try await Deployment(postgres: postgres, base: base, accountsReplicas: 1, withVisits: false)
        let cluster = deployment.cluster
        let platform = try await cluster.token(["--role", "platform"])
        let accounts = Replicas(deployment.accounts.map(\.address))
        let scheduling = Replicas(deployment.scheduling.map(\.address))
        // 50 FIELD accounts of 50 debtors (so no per-debtor cap decides anything).
        var accountIDs: [String] = []
        for index in 0..<50 {
            var debtorRequest = ServiceProcessTests.debtorRequest()
            debtorRequest.requestId = "debtor-\(index)"
            debtorRequest.debtor?.externalId = "cust-race-\(index)"
            debtorRequest.debtor?.phone = "138" + String(format: "%08d", index)
            let debtor = try await accounts.unary(AccountsV1.AccountsService.createDebtor, debtorRequest, metadata: platform)
            accountIDs.append(try await FieldDay.openFieldAccount(accounts: accounts, debtorID: debtor.id, index: index, base: base,
                                                                  platform: platform))
        }
        _ = try await accounts.unary(AccountsV1.AccountsService.evaluateStages, AccountsV1.EvaluateStagesRequest(requestId: "eval"),
                                     metadata: platform)
        let agencyID = try await FieldDay.registerAgency(scheduling: scheduling, platform: platform)
        let crew = try await FieldDay.registerCrew(scheduling: scheduling, agencyID: agencyID, name: "race", platform: platform)
        let start = base + 2 * FieldDay.day
        // All at once: even indexes through replica 1, odd through replica 2.
        let outcomes = await withTaskGroup(of: Result<String, RPCError>.self) { group in
            for (index, accountID) in accountIDs.enumerated() {
                group.addTask {
                    do {
                        let booked = try await scheduling.clients[index % 2].unary(
                            SchedulingV1.SchedulingService.bookAppointment, SchedulingV1.BookAppointmentRequest(
                                requestId: "race-\(index)", accountId: accountID, crewCollectorIds: crew, windowStartMs: start,
                                windowEndMs: start + FieldDay.hour, purpose: .discussRepayment),
                            metadata: platform, timeout: .seconds(60))
                        return .success(booked.id)
                    } catch {
                        return .failure(error as? RPCError ?? RPCError.internal("\(error)"))
                    }
                }
            }
            return await group.reduce(into: [Result<String, RPCError>]()) { $0.append($1) }
        }
        let booked = outcomes.compactMap { try? $0.get() }
        let refusals = outcomes.compactMap { outcome -> RPCError? in
            if case .failure(let error) = outcome { return error }
            return nil
        }
        #expect(booked.count == 1, "exactly one booking: \(booked)")
        #expect(refusals.count == 49)
        for refusal in refusals {
            #expect(refusal.code == .failedPrecondition, "\(refusal)")
            #expect(try refusedRules(refusal).contains("collector-double-booked"), "\(refusal)")
        }
        let listed = try await scheduling.unary(SchedulingV1.SchedulingService.listAppointments,
                                                SchedulingV1.ListAppointmentsRequest(pageSize: 100), metadata: platform)
        #expect(listed.appointments.map(\.id) == booked, "one appointment stored")
        await accounts.close()
        await scheduling.close()
        await deployment.stopAll()
    }

    @Test("two accounts replicas: one request id sent through both at once acts once (every caller gets the same debtor); 20 payments with the same expected_version through both: one recorded, 19 ABORTED",
          .timeLimit(.minutes(2)))
    func idempotencyAndVersionsAcrossReplicas() async throws {
        let postgres = try PostgresCluster()
        defer { postgres.remove() }
        let cluster = try await DevCluster(postgres: postgres)
        let first = try await cluster.start("accounts", ["--log-level", "error"])
        let second = try await cluster.start("accounts", replica: 2, ["--log-level", "error"])
        let accounts = Replicas([first.address, second.address])
        let platform = try await cluster.token(["--role", "platform"])
        let request = ServiceProcessTests.debtorRequest()
        let debtors = try await withThrowingTaskGroup(of: AccountsV1.Debtor.self) { group in
            for index in 0..<20 {
                group.addTask {
                    try await accounts.clients[index % 2].unary(AccountsV1.AccountsService.createDebtor, request, metadata: platform,
                                                               timeout: .seconds(30))
                }
            }
            return try await group.reduce(into: [AccountsV1.Debtor]()) { $0.append($1) }
        }
        #expect(debtors.count == 20 && Set(debtors.map(\.id)).count == 1, "one debtor: \(Set(debtors.map(\.id)))")
        #expect(debtors.allSatisfy { $0 == debtors[0] }, "the same response to every caller")

        let opened = try await accounts.unary(AccountsV1.AccountsService.openAccount,
                                              ServiceProcessTests.accountRequest(debtorID: debtors[0].id), metadata: platform)
        let (accountID, version) = (opened.id, opened.version)
        let payments = await withTaskGroup(of: RPCError?.self) { group in
            for index in 0..<20 {
                group.addTask {
                    do {
                        _ = try await accounts.clients[index % 2].unary(
                            AccountsV1.AccountsService.recordPayment, AccountsV1.RecordPaymentRequest(
                                requestId: "pay-\(index)", accountId: accountID, expectedVersion: version,
                                amount: TypeV1.Money(amountMinor: 1_000, currencyCode: "CNY"), receivedMs: DevCluster.nowMs() - 60_000,
                                externalId: "bank-ref-\(index)"),
                            metadata: platform, timeout: .seconds(30))
                        return nil
                    } catch {
                        return error as? RPCError ?? RPCError.internal("\(error)")
                    }
                }
            }
            return await group.reduce(into: [RPCError?]()) { $0.append($1) }
        }
        #expect(payments.filter { $0 == nil }.count == 1, "\(payments.compactMap { $0 })")
        #expect(payments.compactMap { $0 }.allSatisfy { $0.code == .aborted }, "\(payments.compactMap { $0 }.prefix(3))")
        let account = try await accounts.unary(AccountsV1.AccountsService.getAccount, AccountsV1.GetAccountRequest(accountId: accountID),
                                               metadata: platform)
        #expect(account.version == version + 1)
        #expect(account.payments.count == 1)
        await accounts.close()
        for process in [second, first] { _ = await process.stop() }
    }

    @Test("two replicas of each: kill -9 one replica of each service and crash-restart PostgreSQL (pg_ctl restart -m immediate) while visits records 100 outcomes; every acknowledged outcome is kept and every promise arrives exactly once",
          .timeLimit(.minutes(6)))
    func replicasSurviveKillsAndDatabaseRestart() async throws {
        let postgres = try PostgresCluster()
        defer { postgres.remove() }
        let base = DevCluster.nextShanghaiTenOClock()
        var deployment = try await Deployment(postgres: postgres, base: base)
        let cluster = deployment.cluster
        let platform = try await cluster.token(["--role", "platform"])
        let accounts = Replicas(deployment.accounts.map(\.address))
        let scheduling = Replicas(deployment.scheduling.map(\.address))
        let visits = Replicas(deployment.visits.map(\.address))
        let count = 100
        let day = try await FieldDay.prepare(cluster: cluster, base: base, count: count, accounts: accounts, scheduling: scheduling,
                                             visits: visits)

        // The outcomes go to both visits replicas in turn. After the 30th, replica 1 of every
        // service is killed with SIGKILL (mid-delivery: its outbox claims are left behind);
        // after the 60th PostgreSQL crashes and restarts under the load; after the 80th the
        // killed replicas come back on their addresses.
        var visitIDs: [String] = []
        for index in 0..<count {
            let lead = try await cluster.token(["--role", "collector", "--agency", day.agencyID, "--collector", day.appointments[index].crew[0]])
            let visit = try await visits.unary(VisitsV1.VisitsService.recordOutcome, day.outcome(index), metadata: lead, startingAt: index)
            #expect(visit.outcome?.code == .promiseToPay)
            visitIDs.append(visit.id)
            if index == 29 {
                for process in [deployment.accounts[0], deployment.scheduling[0], deployment.visits[0]] {
                    let killed = await process.stop(signal: SIGKILL)
                    #expect(killed.reason == .uncaughtSignal && killed.status == SIGKILL)
                }
            }
            if index == 59 { try postgres.restart(mode: "immediate") }
            if index == 79 {
                deployment.accounts[0] = try await deployment.start("accounts", replica: 1, listen: deployment.accounts[0].address)
                deployment.scheduling[0] = try await deployment.start("scheduling", replica: 1, listen: deployment.scheduling[0].address)
                deployment.visits[0] = try await deployment.start("visits", replica: 1, listen: deployment.visits[0].address)
            }
        }
        #expect(Set(visitIDs).count == count)
        // Every acknowledged outcome is stored, whichever replica is asked.
        for (index, id) in visitIDs.enumerated() {
            let visit = try await visits.unary(VisitsV1.VisitsService.getVisit, VisitsV1.GetVisitRequest(visitId: id), metadata: platform,
                                               startingAt: index)
            #expect(visit.outcome?.code == .promiseToPay, "outcome \(index) kept")
        }
        try await day.expectEveryPromiseOnce(accounts: accounts, visits: visits, visitIDs: visitIDs, platform: platform)
        let log = (try? String(contentsOf: postgres.directory.appendingPathComponent("server.log"), encoding: .utf8)) ?? ""
        #expect(log.contains("database system was interrupted") || log.contains("was not properly shut down"),
                "PostgreSQL really crashed and recovered")
        await accounts.close()
        await scheduling.close()
        await visits.close()
        await deployment.stopAll()
    }
}

/// What an operator sees of the database from outside a service process.
@Suite("A service process and its PostgreSQL database", .enabled(if: PostgresCluster.isAvailable), .serialized)
struct DatabaseProcessTests {
    @Test("unreachable at start: retried for --database-startup-timeout-seconds, then one Error: line naming the server, exit 1",
          .timeLimit(.minutes(1)))
    func unreachableAtStart() async throws {
        let port = try freeLoopbackPort()
        let directory = try makeTemporaryDirectory()
        let failure = await #expect(throws: ServiceStartFailed.self) {
            _ = try await RunningService("accounts", [
                "--listen", "127.0.0.1:0", "--metrics-listen", "off", "--data-dir", directory.path,
                "--database-url", "postgres://doorstep:secret@127.0.0.1:\(port)/doorstep_accounts",
                "--database-startup-timeout-seconds", "1", "--log-level", "error",
            ])
        }
        #expect(failure?.status == 1)
        let errorLines = failure?.output.split(separator: "\n").filter { $0.hasPrefix("Error: ") } ?? []
        #expect(errorLines == ["Error: database postgres://doorstep@127.0.0.1:\(port)/doorstep_accounts: cannot reach 127.0.0.1:\(port) within 1.0 seconds (connection refused)"]
                || errorLines.count == 1 && errorLines[0].contains("cannot reach 127.0.0.1:\(port) within 1.0 seconds"),
                "\(failure?.output ?? "")")
        #expect(failure?.output.contains("secret") == false, "the password is never printed")
    }

    @Test("the database down while serving: health NOT_SERVING and calls UNAVAILABLE; back up: SERVING and calls work, with no restart",
          .timeLimit(.minutes(2)))
    func healthFollowsTheDatabase() async throws {
        let postgres = try PostgresCluster()
        defer { postgres.remove() }
        let cluster = try await DevCluster(postgres: postgres)
        let accounts = try await cluster.start("accounts", ["--log-level", "notice"])
        let platform = try await cluster.token(["--role", "platform"])
        let client = GRPCClient(targets: [GRPCClient.Target(accounts.address)!])
        func health() async throws -> Int32 { try await runProduct("doorstep", ["health", accounts.address, "--timeout", "2"]).status }
        func createDebtor(_ n: Int) async throws(RPCError) -> AccountsV1.Debtor {
            var request = ServiceProcessTests.debtorRequest()
            request.requestId = "outage-\(n)"
            request.debtor?.externalId = "cust-outage-\(n)"
            return try await client.unary(AccountsV1.AccountsService.createDebtor, request, metadata: platform, timeout: .seconds(15))
        }
        #expect(try await health() == 0)
        let before = try await createDebtor(1)

        try postgres.stop(mode: "immediate")
        try await WorkflowTests.eventually("health NOT_SERVING", timeout: .seconds(30)) { try await health() != 0 }
        let refused = await #expect(throws: RPCError.self) { _ = try await createDebtor(2) }
        #expect(refused?.code == .unavailable, "\(String(describing: refused))")

        try postgres.start()
        try await WorkflowTests.eventually("health SERVING again", timeout: .seconds(30)) { try await health() == 0 }
        let after = try await createDebtor(2)
        let again = try await client.unary(AccountsV1.AccountsService.getDebtor, AccountsV1.GetDebtorRequest(debtorId: before.id),
                                           metadata: platform)
        #expect(again.id == before.id && after.id != before.id)
        await client.close()
        let stop = await accounts.stop()
        #expect(stop.status == 0)
        #expect(stop.stderr.contains("database unreachable: health NOT_SERVING"), "\(stop.stderr.suffix(2000))")
        #expect(stop.stderr.contains("database reachable again: health SERVING"), "\(stop.stderr.suffix(2000))")
    }
}
