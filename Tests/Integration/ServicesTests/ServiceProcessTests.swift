import Foundation
import Models
import RPC
import RPCWire
import TestSupport
import Testing

/// The three executables as real processes on real databases (SQLite files; on PostgreSQL
/// runs of the suites, a schema each), with a shared signing key.
final class ServiceCluster: Sendable {
    let directory: URL
    let keyFile: String
    let accounts: RunningService

    let scheduling: RunningService?
    let visits: RunningService?

    /// Starts `only` the named services (default all three), each with `extra(name)` flags
    /// added (e.g. TLS files), in `directory` (default: a new temporary one).
    init(only: Set<String> = ["accounts", "scheduling", "visits"], directory: URL? = nil,
         extra: (String) -> [String] = { _ in [] }) async throws {
        let directory = try directory ?? makeTemporaryDirectory()
        self.directory = directory
        keyFile = directory.appendingPathComponent("auth.key").path
        let keygen = try await runProduct("doorstep", ["keygen", "--key-file", keyFile])
        try #require(keygen.status == 0, "\(keygen.output)")
        accounts = try await Self.start("accounts", directory: directory, keyFile: keyFile, extra: extra("accounts"))
        let peers = ["--accounts-addr", accounts.address]
        // Scheduling asks visits for agency scorecards (PlaceRegion) and visits calls
        // scheduling: visits' port is chosen before either starts.
        let visitsListen = only.contains("visits") ? "127.0.0.1:\(try freeLoopbackPort())" : "127.0.0.1:0"
        scheduling = only.contains("scheduling")
            ? try await Self.start("scheduling", directory: directory, keyFile: keyFile,
                                   extra: peers + ["--visits-addr", visitsListen] + extra("scheduling")) : nil
        visits = only.contains("visits")
            ? try await Self.start("visits", directory: directory, keyFile: keyFile, listen: visitsListen,
                                   extra: peers + (scheduling.map { ["--scheduling-addr", $0.address] } ?? []) + extra("visits")) : nil
    }

    static func start(_ name: String, directory: URL, keyFile: String, listen: String = "127.0.0.1:0",
                      extra: [String] = []) async throws -> RunningService {
        try await RunningService(name, [
            "--listen", listen, "--metrics-listen", "127.0.0.1:0",
            "--data-dir", directory.appendingPathComponent(name).path, "--auth-key-file", keyFile,
            "--log-level", "info",
        ] + extra)
    }

    /// A bearer token for `role` signed with the cluster's key.
    func token(_ role: String, agency: String? = nil, collector: String? = nil, subject: String? = nil) async throws -> String {
        var arguments = ["token", "--role", role, "--key-file", keyFile]
        if let subject { arguments += ["--subject", subject] }
        if let agency { arguments += ["--agency", agency] }
        if let collector { arguments += ["--collector", collector] }
        let result = try await runProduct("doorstep", arguments)
        try #require(result.status == 0, "\(result.output)")
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func stopAll() async -> [(status: Int32, reason: Process.TerminationReason, stderr: String)] {
        var results: [(status: Int32, reason: Process.TerminationReason, stderr: String)] = []
        for service in [visits, scheduling, accounts].compactMap({ $0 }) { results.append(await service.stop()) }
        return results
    }
}

@Suite("The three services as processes", .serialized)
struct ServiceProcessTests {
    @Test("a stock grpcio client gets every status it should from each service", .timeLimit(.minutes(3)))
    func grpcioInterop() async throws {
        let cluster = try await ServiceCluster()
        var tokens: [String: String] = [:]
        for role in ["platform", "compliance", "service"] { tokens[role] = try await cluster.token(role) }
        tokens["agency_manager"] = try await cluster.token("agency_manager", agency: "agy_01J00000000000000000000000")
        tokens["collector"] = try await cluster.token("collector", agency: "agy_01J00000000000000000000000",
                                                      collector: "col_01J00000000000000000000000")
        let tokenFile = cluster.directory.appendingPathComponent("tokens.json")
        try JSONSerialization.data(withJSONObject: tokens).write(to: tokenFile)
        let script = repositoryRoot.appendingPathComponent("Tests/Integration/ServicesTests/Interop/services_interop.py").path
        let result = try await runProcessDetached("python3", [
            script, "--accounts", cluster.accounts.address, "--scheduling", cluster.scheduling!.address,
            "--visits", cluster.visits!.address, "--tokens", tokenFile.path,
        ])
        let stops = await cluster.stopAll()
        print(result.output)
        #expect(result.status == 0, "\(result.output)")
        #expect(!result.output.contains("FAIL"), "\(result.output)")
        for check in ["accounts.create_open_get", "accounts.debtor_corrections", "accounts.personal_data_access", "accounts.watch_events", "accounts.bulk_import", "scheduling.register_agency_collector",
                      "scheduling.agency_lifecycle", "scheduling.wrong_address_refused", "visits.not_found",
                      "accounts.placements", "scheduling.place_region",
                      "accounts.deadline_exceeded", "visits.permission_denied", "scheduling.metadata_echo"] {
            #expect(result.output.contains("ok \(check)"), "\(check) did not run")
        }
        for stop in stops {
            #expect(stop.status == 0 && stop.reason == .exit, "\(stop.stderr)")
        }
    }

    @Test("schema-driven bad input on every RPC: never INTERNAL, UNKNOWN or UNAVAILABLE, the services keep serving", .timeLimit(.minutes(3)))
    func schemaFuzz() async throws {
        let cluster = try await ServiceCluster()
        let token = try await cluster.token("platform")
        let script = repositoryRoot.appendingPathComponent("Tests/Integration/ServicesTests/Interop/schema_fuzz.py").path
        let result = try await runProcessDetached("python3", [
            script, "--accounts", cluster.accounts.address, "--scheduling", cluster.scheduling!.address,
            "--visits", cluster.visits!.address, "--token", token, "--calls-per-method", "20",
        ])
        let stops = await cluster.stopAll()
        #expect(result.status == 0, "\(result.output)")
        #expect(!result.output.split(separator: "\n").contains { $0.hasPrefix("FAIL ") }, "\(result.output)")
        #expect(result.output.contains("ok doorstep.accounts.v1.Accounts/RecordContactAttempt"), "\(result.output)")
        for stop in stops { #expect(stop.status == 0, "\(stop.stderr.suffix(2000))") }
    }

    @Test("our client: a debtor and an account survive a restart; SIGTERM exits 0", .timeLimit(.minutes(2)))
    func persistenceAcrossRestart() async throws {
        let cluster = try await ServiceCluster()
        let token = try await cluster.token("platform")
        let metadata: Metadata = ["authorization": "Bearer \(token)"]
        var client = GRPCClient(targets: [GRPCClient.Target(cluster.accounts.address)!])
        let debtor = try await client.unary(AccountsV1.AccountsService.createDebtor, Self.debtorRequest(), metadata: metadata)
        #expect(debtor.personalDataMasked)
        let account = try await client.unary(
            AccountsV1.AccountsService.openAccount, Self.accountRequest(debtorID: debtor.id), metadata: metadata)
        #expect(account.daysPastDue == 45)
        #expect(account.bucket == .m2)
        #expect(account.stage == .remote)
        await client.close()

        let stop = await cluster.accounts.stop()
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(stop.stderr.contains("stopped"), "\(stop.stderr)")
        let restarted = try await ServiceCluster.start("accounts", directory: cluster.directory, keyFile: cluster.keyFile)
        client = GRPCClient(targets: [GRPCClient.Target(restarted.address)!])
        let read = try await client.unary(
            AccountsV1.AccountsService.getAccount, AccountsV1.GetAccountRequest(accountId: account.id), metadata: metadata)
        #expect(read.id == account.id)
        #expect(read.instalments == account.instalments)
        #expect(read.daysPastDue == 45)
        // The same request id after the restart: the first response, no second debtor.
        let again = try await client.unary(AccountsV1.AccountsService.createDebtor, Self.debtorRequest(), metadata: metadata)
        #expect(again == debtor)
        // Unmasked read by platform, with a reason: full values, audited.
        let full = try await client.unary(
            AccountsV1.AccountsService.getDebtor,
            AccountsV1.GetDebtorRequest(debtorId: debtor.id, revealPersonalData: true, accessReason: "identity check, ticket 7"),
            metadata: metadata)
        #expect(full.phone == "+8613812345678")
        #expect(!full.personalDataMasked)
        await client.close()
        _ = await restarted.stop()
        _ = await cluster.stopAll()
        // Personal data is sealed at rest: the phone number and national ID are nowhere in
        // what the database keeps on disk (the SQLite file and its WAL; on PostgreSQL every
        // table, index and WAL file), while a column kept in clear is found there.
        let files = ["accounts.sqlite", "accounts.sqlite-wal"].map { cluster.directory.appendingPathComponent("accounts/" + $0) }
        #expect(try databaseFilesContain("cust-restart-1", sqliteFiles: files), "the scan sees the stored data")
        #expect(try !databaseFilesContain("13812345678", sqliteFiles: files))
        #expect(try !databaseFilesContain("11010519491231002X", sqliteFiles: files))
    }

    @Test("a service refuses to start with another webhook key than its database's secrets are sealed with", .timeLimit(.minutes(1)))
    func webhookKeyMismatch() async throws {
        let directory = try makeTemporaryDirectory()
        let keyFile = directory.appendingPathComponent("auth.key").path
        _ = try await runProduct("doorstep", ["keygen", "--key-file", keyFile])
        let arguments = ["--listen", "127.0.0.1:0", "--metrics-listen", "off", "--data-dir", directory.appendingPathComponent("scheduling").path,
                         "--auth-key-file", keyFile, "--log-level", "error"]
        for key in ["a.key", "b.key"] {
            _ = try await runProduct("doorstep", ["keygen", "--data-key", "--key-file", directory.appendingPathComponent(key).path])
        }
        let first = try await RunningService("scheduling", arguments + ["--webhook-key-file", directory.appendingPathComponent("a.key").path])
        _ = await first.stop()
        let refused = await #expect(throws: ServiceStartFailed.self) {
            _ = try await RunningService("scheduling", arguments + ["--webhook-key-file", directory.appendingPathComponent("b.key").path])
        }
        #expect(refused?.status == 1)
        #expect(refused?.output.contains("Error: webhook key \(directory.appendingPathComponent("b.key").path) is not the key database") == true,
                "\(refused?.output ?? "")")
        let again = try await RunningService("scheduling", arguments + ["--webhook-key-file", directory.appendingPathComponent("a.key").path])
        _ = await again.stop()
    }

    @Test("accounts refuses to start with another data key than its database is sealed with", .timeLimit(.minutes(1)))
    func dataKeyMismatch() async throws {
        let directory = try makeTemporaryDirectory()
        let keyFile = directory.appendingPathComponent("auth.key").path
        _ = try await runProduct("doorstep", ["keygen", "--key-file", keyFile])
        let arguments = ["--listen", "127.0.0.1:0", "--metrics-listen", "off", "--data-dir", directory.appendingPathComponent("accounts").path,
                         "--auth-key-file", keyFile, "--log-level", "error"]
        for key in ["a.key", "b.key"] {
            _ = try await runProduct("doorstep", ["keygen", "--data-key", "--key-file", directory.appendingPathComponent(key).path])
        }
        // The first start seals with key a; a start with key b must refuse; a works again.
        let first = try await RunningService("accounts", arguments + ["--data-key-file", directory.appendingPathComponent("a.key").path])
        _ = await first.stop()
        let refused = await #expect(throws: ServiceStartFailed.self) {
            _ = try await RunningService("accounts", arguments + ["--data-key-file", directory.appendingPathComponent("b.key").path])
        }
        #expect(refused?.status == 1)
        #expect(refused?.output.contains("Error: data key \(directory.appendingPathComponent("b.key").path) is not the key database") == true,
                "\(refused?.output ?? "")")
        let again = try await RunningService("accounts", arguments + ["--data-key-file", directory.appendingPathComponent("a.key").path])
        _ = await again.stop()
    }

    @Test("scheduling asks the accounts process (as role service) for stage, hold, address and contact counters", .timeLimit(.minutes(2)))
    func schedulingAsksAccounts() async throws {
        let cluster = try await ServiceCluster(only: ["accounts", "scheduling"])
        let metadata: Metadata = ["authorization": "Bearer \(try await cluster.token("platform"))"]
        let accounts = GRPCClient(targets: [GRPCClient.Target(cluster.accounts.address)!])
        let scheduling = GRPCClient(targets: [GRPCClient.Target(cluster.scheduling!.address)!])
        let debtor = try await accounts.unary(AccountsV1.AccountsService.createDebtor, Self.debtorRequest(), metadata: metadata)
        let account = try await accounts.unary(
            AccountsV1.AccountsService.openAccount, Self.accountRequest(debtorID: debtor.id), metadata: metadata)
        #expect(account.stage == .remote)
        let agency = try await scheduling.unary(SchedulingV1.SchedulingService.registerAgency, SchedulingV1.RegisterAgencyRequest(
            requestId: "agency-1", agency: SchedulingV1.Agency(
                displayName: "安心催收服务有限公司", licenceNumber: "LIC-1", licenceExpiryDate: TypeV1.Date(year: 2099, month: 1, day: 1),
                regionsServed: [debtor.address?.regionCode ?? ""], lastInspectionDate: Self.localDate(daysFromToday: -30))),
            metadata: metadata)
        var crew: [String] = []
        for index in 1...2 {
            let collector = try await scheduling.unary(SchedulingV1.SchedulingService.registerCollector, SchedulingV1.RegisterCollectorRequest(
                requestId: "collector-\(index)", collector: SchedulingV1.Collector(
                    agencyId: agency.id, fullName: "催收员\(index)", certificationNumber: "CERT-\(index)",
                    certificationExpiryDate: TypeV1.Date(year: 2099, month: 1, day: 1), regionCode: debtor.address?.regionCode ?? "",
                    homeLocation: TypeV1.GeoPoint(latitude: 31.2, longitude: 121.4), timeZone: "Asia/Shanghai",
                    shiftStart: TypeV1.TimeOfDay(hours: 0), shiftEnd: TypeV1.TimeOfDay(hours: 24), dailyCapacity: 6)),
                metadata: metadata)
            crew.append(collector.id)
        }
        // Three days ahead, 10:00-12:00 Shanghai: lawful in every respect but the account's stage.
        let day: Int64 = 86_400_000
        let start = (Int64(Date().timeIntervalSince1970 * 1000) / day + 3) * day + 2 * 3_600_000
        let check = try await scheduling.unary(SchedulingV1.SchedulingService.checkCompliance, SchedulingV1.CheckComplianceRequest(
            accountId: account.id, crewCollectorIds: crew, windowStartMs: start, windowEndMs: start + 2 * 3_600_000), metadata: metadata)
        #expect(check.violations.map(\.ruleId) == (debtor.address?.location == nil ? ["account-stage", "debtor-location"] : ["account-stage"]))
        #expect(check.debtorTimeZone == debtor.timeZone)
        let refused = await #expect(throws: RPCError.self) {
            try await scheduling.unary(SchedulingV1.SchedulingService.bookAppointment, SchedulingV1.BookAppointmentRequest(
                requestId: "book-1", accountId: account.id, crewCollectorIds: crew, windowStartMs: start,
                windowEndMs: start + 2 * 3_600_000, purpose: .discussRepayment), metadata: metadata)
        }
        #expect(refused?.code == .failedPrecondition && refused?.message.contains("account-stage") == true)
        let missing = await #expect(throws: RPCError.self) {
            try await scheduling.unary(SchedulingV1.SchedulingService.checkCompliance, SchedulingV1.CheckComplianceRequest(
                accountId: "acc_01J00000000000000000000000", crewCollectorIds: crew, windowStartMs: start,
                windowEndMs: start + 2 * 3_600_000), metadata: metadata)
        }
        #expect(missing?.code == .notFound)
        let budget = try await scheduling.unary(SchedulingV1.SchedulingService.getContactBudget,
                                                SchedulingV1.GetContactBudgetRequest(debtorId: debtor.id), metadata: metadata)
        #expect(budget.accounts.map(\.accountId) == [account.id])
        #expect(budget.lines.contains { $0.ruleId == "daily-connected-calls" && $0.limit == 3 })
        await accounts.close()
        await scheduling.close()
        for stop in await cluster.stopAll() { #expect(stop.status == 0, "\(stop.stderr.suffix(2000))") }
    }

    @Test("the test clock (dev mode only) moves a service's today: an inspection dated ahead is accepted once time moves", .timeLimit(.minutes(2)))
    func testClock() async throws {
        let directory = try makeTemporaryDirectory()
        let offsetFile = directory.appendingPathComponent("offset")
        try "0".write(to: offsetFile, atomically: true, encoding: .utf8)
        let service = try await RunningService("scheduling", [
            "--listen", "127.0.0.1:0", "--metrics-listen", "off", "--data-dir", directory.appendingPathComponent("s").path,
            "--test-clock-offset-file", offsetFile.path,
        ])
        // Dev mode: the key was generated in the data directory; sign with it.
        let token = try await runProduct("doorstep", ["token", "--role", "platform", "--key-file",
                                                       directory.appendingPathComponent("s/auth.key").path])
        let metadata: Metadata = ["authorization": "Bearer \(token.output.trimmingCharacters(in: .whitespacesAndNewlines))"]
        let client = GRPCClient(targets: [GRPCClient.Target(service.address)!])
        func register(_ id: String) async throws(RPCError) -> SchedulingV1.Agency {
            try await client.unary(SchedulingV1.SchedulingService.registerAgency, SchedulingV1.RegisterAgencyRequest(
                requestId: id, agency: SchedulingV1.Agency(
                    displayName: "Agency \(id)", licenceNumber: "LIC-\(id)", licenceExpiryDate: TypeV1.Date(year: 2099, month: 1, day: 1),
                    regionsServed: ["310115"], lastInspectionDate: Self.localDate(daysFromToday: 3))), metadata: metadata)
        }
        let early = await #expect(throws: RPCError.self) { try await register("a1") }
        #expect(early?.code == .invalidArgument && early?.message.contains("last_inspection_date") == true)
        try String(5 * 86_400_000).write(to: offsetFile, atomically: true, encoding: .utf8)
        try await Task.sleep(for: .milliseconds(120))
        let later = try await register("a2")
        #expect(later.createdMs > Int64(Date().timeIntervalSince1970 * 1000) + 4 * 86_400_000, "timestamps come from the moved clock")
        await client.close()
        let stop = await service.stop()
        #expect(stop.status == 0, "\(stop.stderr.suffix(2000))")
        #expect(stop.stderr.contains("TEST CLOCK"), "the override is logged")
    }

    @Test("demo-seed builds a small city through the API: agencies, collectors, accounts at every stage, some in FIELD", .timeLimit(.minutes(2)))
    func demoSeed() async throws {
        let cluster = try await ServiceCluster(only: ["accounts", "scheduling"])
        let seed = try await runProduct("demo-seed", [
            "--accounts", cluster.accounts.address, "--scheduling", cluster.scheduling!.address, "--key-file", cluster.keyFile,
            "--debtors", "30",
        ])
        #expect(seed.status == 0, "\(seed.output)")
        let metadata: Metadata = ["authorization": "Bearer \(try await cluster.token("platform"))"]
        let client = GRPCClient(targets: [GRPCClient.Target(cluster.accounts.address)!])
        let listed = try await client.unary(AccountsV1.AccountsService.listAccounts, AccountsV1.ListAccountsRequest(pageSize: 500),
                                            metadata: metadata)
        #expect(listed.accounts.count == 30)
        #expect(Set(listed.accounts.map(\.stage)) == [.current, .reminder, .remote, .field, .legal, .writtenOff, .settled],
                "every stage: \(Set(listed.accounts.map(\.stage)))")
        #expect(listed.accounts.contains { $0.stage == .field }, "some accounts are ready for a visit")
        // Seeding again with the same seed changes nothing (every request is idempotent).
        let again = try await runProduct("demo-seed", [
            "--accounts", cluster.accounts.address, "--scheduling", cluster.scheduling!.address, "--key-file", cluster.keyFile,
            "--debtors", "30",
        ])
        #expect(again.status == 0, "\(again.output)")
        let relisted = try await client.unary(AccountsV1.AccountsService.listAccounts, AccountsV1.ListAccountsRequest(pageSize: 500),
                                              metadata: metadata)
        #expect(relisted.accounts.count == 30)
        #expect(relisted.accounts.map(\.stage) == listed.accounts.map(\.stage), "the stages are as the first run left them")
        await client.close()
        for stop in await cluster.stopAll() { #expect(stop.status == 0) }
    }

    @Test("/metrics of each process: gRPC calls by service, method, type and code; build, process, database and job series; probes",
          .timeLimit(.minutes(2)))
    func metrics() async throws {
        let cluster = try await ServiceCluster()
        let token = try await cluster.token("platform")
        let client = GRPCClient(targets: [GRPCClient.Target(cluster.visits!.address)!])
        await #expect(throws: RPCError.self) {
            _ = try await client.unary(VisitsV1.VisitsService.getVisit,
                                       VisitsV1.GetVisitRequest(visitId: "vis_01J00000000000000000000000"),
                                       metadata: ["authorization": "Bearer \(token)"])
        }
        await #expect(throws: RPCError.self) {
            _ = try await client.unary(VisitsV1.VisitsService.getVisit, VisitsV1.GetVisitRequest(visitId: "vis_01J00000000000000000000000"))
        }
        await client.close()
        let accounts = GRPCClient(targets: [GRPCClient.Target(cluster.accounts.address)!])
        await #expect(throws: RPCError.self) {
            _ = try await accounts.unary(AccountsV1.AccountsService.getAccount,
                                         AccountsV1.GetAccountRequest(accountId: "acc_01J00000000000000000000000"),
                                         metadata: ["authorization": "Bearer \(token)"])
        }
        await accounts.close()
        let script = """
            import sys, urllib.request, urllib.error
            for path in ["/healthz", "/readyz", "/nowhere", "/metrics"]:
                try:
                    response = urllib.request.urlopen("http://" + sys.argv[1] + path, timeout=5)
                    status, body = response.status, response.read().decode()
                except urllib.error.HTTPError as error:
                    status, body = error.code, ""
                print("status %s %d" % (path, status))
                if path == "/metrics":
                    print(body)
            """
        var scrapes: [String: String] = [:]
        for service in [cluster.accounts, cluster.scheduling!, cluster.visits!] {
            let scrape = try await runProcessDetached("python3", ["-c", script, try #require(service.metricsAddress)])
            #expect(scrape.status == 0, "\(scrape.output)")
            scrapes[service.name] = scrape.output
        }
        _ = await cluster.stopAll()
        func has(_ service: String, _ name: String, _ labels: [String] = []) -> Bool {
            scrapes[service]!.split(separator: "\n").contains { line in
                line.hasPrefix(name + "{") || line.hasPrefix(name + " ") ? labels.allSatisfy { line.contains($0) } : false
            }
        }
        for service in ["accounts", "scheduling", "visits"] {
            let output = scrapes[service]!
            for probe in ["status /healthz 200", "status /readyz 200", "status /nowhere 404", "status /metrics 200"] {
                #expect(output.contains(probe), "\(service): \(probe)")
            }
            #expect(has(service, "doorstep_build_info", ["service=\"\(service)\"", "version=\"", "commit=\""]), "\(service)")
            for name in ["process_resident_memory_bytes", "process_virtual_memory_bytes", "process_cpu_seconds_total",
                         "process_open_fds", "process_max_fds", "process_start_time_seconds", "doorstep_db_pool_max"] {
                #expect(has(service, name), "\(service): \(name)")
            }
            #expect(has(service, "doorstep_db_transaction_seconds_count", ["kind=\"write\""]), "\(service)")
            #expect(has(service, "doorstep_db_statement_seconds_count", ["kind=\"query\""]), "\(service)")
            #expect(has(service, "doorstep_db_statement_seconds_count", ["kind=\"execute\""]), "\(service)")
            #expect(has(service, "doorstep_db_pool_connections", ["state=\"in_use\""]), "\(service)")
            #expect(has(service, "doorstep_job_runs_total", ["task=\"idempotency-purge\"", "result=\"ok\""]), "\(service)")
            #expect(has(service, "doorstep_job_last_run_timestamp_seconds", ["task=\"idempotency-purge\""]), "\(service)")
        }
        // GetAccount's reads, one statement each here (coalesced only on PostgreSQL, under load).
        #expect(has("accounts", "doorstep_db_point_read_batch_size_bucket", ["reads=\"account\"", "le=\"1.0\""]),
                "\(scrapes["accounts"]!)")
        let getVisit = ["grpc_service=\"doorstep.visits.v1.Visits\"", "grpc_method=\"GetVisit\"", "grpc_type=\"unary\""]
        #expect(has("visits", "grpc_server_started_total", getVisit))
        #expect(has("visits", "grpc_server_handled_total", getVisit + ["grpc_code=\"NotFound\""]), "\(scrapes["visits"]!)")
        #expect(has("visits", "grpc_server_handled_total", getVisit + ["grpc_code=\"Unauthenticated\""]))
        #expect(has("visits", "grpc_server_handling_seconds_bucket", getVisit + ["grpc_code=\"NotFound\"", "le=\"+Inf\""]))
        #expect(has("visits", "doorstep_outbox_pending", ["sink=\"visit-effect\""]))
        #expect(has("visits", "doorstep_job_runs_total", ["task=\"complaint-sla-sweep\""]))
        #expect(has("scheduling", "doorstep_outbox_oldest_pending_age_seconds", ["sink=\"customer-notice\""]))
        #expect(has("scheduling", "doorstep_job_runs_total", ["task=\"missed-appointments\""]))
    }

    @Test("--log-format json: one JSON object per line; one access line per call with code, role, ids and refusal rules, never personal data",
          .timeLimit(.minutes(2)))
    func accessLog() async throws {
        let directory = try makeTemporaryDirectory()
        let keyFile = directory.appendingPathComponent("auth.key").path
        _ = try await runProduct("doorstep", ["keygen", "--key-file", keyFile])
        let service = try await RunningService("accounts", [
            "--listen", "127.0.0.1:0", "--metrics-listen", "off", "--data-dir", directory.appendingPathComponent("accounts").path,
            "--auth-key-file", keyFile, "--log-level", "info", "--log-format", "json",
        ])
        let token = try await runProduct("doorstep", ["token", "--role", "platform", "--key-file", keyFile])
        let metadata: Metadata = ["authorization": "Bearer \(token.output.trimmingCharacters(in: .whitespacesAndNewlines))",
                                  "x-request-id": "trace-42"]
        let client = GRPCClient(targets: [GRPCClient.Target(service.address)!])
        let request = Self.debtorRequest()
        let debtor = try await client.unary(AccountsV1.AccountsService.createDebtor, request, metadata: metadata)
        await #expect(throws: RPCError.self) {  // no token
            _ = try await client.unary(AccountsV1.AccountsService.getDebtor, AccountsV1.GetDebtorRequest(debtorId: debtor.id))
        }
        var invalid = request
        invalid.requestId = "bad-debtor"
        invalid.debtor?.timeZone = "Mars/Olympus"
        await #expect(throws: RPCError.self) {
            _ = try await client.unary(AccountsV1.AccountsService.createDebtor, invalid, metadata: metadata)
        }
        await client.close()
        let stop = await service.stop()
        #expect(stop.status == 0)
        let lines = stop.stderr.split(separator: "\n").filter { !$0.isEmpty }
        var calls: [[String: String]] = []
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            let fields = try #require(object, "not a JSON object: \(line)")
            #expect(fields["ts"] is String && fields["level"] is String && fields["logger"] is String && fields["msg"] is String, "\(line)")
            if fields["msg"] as? String == "call" { calls.append(fields.compactMapValues { $0 as? String }) }
        }
        let created = try #require(calls.first { $0["rpc"]?.hasSuffix("/CreateDebtor") == true && $0["code"] == "OK" }, "\(lines)")
        #expect(created["level"] == "info" && created["role"] == "platform" && created["call-id"] == "trace-42")
        #expect(created["request-id"] == request.requestId && created["peer"]?.contains("127.0.0.1") == true)
        #expect(Double(created["duration-ms"] ?? "") != nil)
        let refused = try #require(calls.first { $0["rpc"]?.hasSuffix("/GetDebtor") == true }, "\(lines)")
        #expect(refused["code"] == "UNAUTHENTICATED" && refused["role"] == nil)
        let invalidLine = try #require(calls.first { $0["request-id"] == "bad-debtor" }, "\(lines)")
        #expect(invalidLine["code"] == "INVALID_ARGUMENT" && invalidLine["fields"] == "debtor.time_zone", "\(invalidLine)")
        for secret in [request.debtor!.fullName, request.debtor!.nationalId, request.debtor!.phone, request.debtor!.address!.text] {
            #expect(!stop.stderr.contains(secret), "personal data in the log: \(secret)")
        }
    }

    @Test("bad configuration fails before serving, with a one-line reason", .timeLimit(.minutes(2)))
    func badConfiguration() async throws {
        let directory = try makeTemporaryDirectory()
        let dataDir = directory.appendingPathComponent("data").path
        // A port that is in use: hold one with a running service.
        let holder = try await RunningService("visits", ["--listen", "127.0.0.1:0", "--metrics-listen", "off", "--data-dir", dataDir])
        // A usable key, so that the test-clock case is refused for the test clock alone.
        let validKey = directory.appendingPathComponent("valid.key").path
        let keygen = try await runProduct("doorstep", ["keygen", "--key-file", validKey])
        try #require(keygen.status == 0, "\(keygen.output)")
        let cases: [(arguments: [String], expected: String)] = [
            (["--listen", holder.address, "--metrics-listen", "off", "--data-dir", dataDir], "address already in use"),
            (["--listen", "127.0.0.1:0", "--metrics-listen", holder.address, "--data-dir", dataDir], "address already in use"),
            (["--listen", "127.0.0.1:0", "--auth-key-file", directory.appendingPathComponent("missing.key").path,
              "--data-dir", dataDir], "missing.key"),
            (["--listen", "127.0.0.1:0", "--data-dir", "/proc/doorstep-not-writable"], "data dir"),
            (["--listen", "nonsense", "--data-dir", dataDir], "--listen: 'nonsense' is not HOST:PORT"),
            (["--log-level", "loud", "--data-dir", dataDir], "unknown log level 'loud'"),
            (["--log-format", "xml", "--data-dir", dataDir], "--log-format: unknown log format 'xml' (text, json)"),
            (["--max-concurrent-streams", "0", "--data-dir", dataDir], "--max-concurrent-streams: 0 is outside 1...10000"),
            (["--auth-key-file", validKey, "--test-clock-offset-file",
              directory.appendingPathComponent("offset").path, "--data-dir", dataDir], "refused outside dev mode"),
            (["--rule-pack", "xx-1999", "--data-dir", dataDir], "rule pack xx-1999"),
            (["--notice-sink", "ftp://x", "--data-dir", dataDir], "--notice-sink: 'ftp://x' is neither"),
        ]
        for (arguments, expected) in cases {
            let result = try await runProduct("scheduling", arguments)
            #expect(result.status != 0, "\(arguments): \(result.output)")
            #expect(result.output.contains(expected), "\(arguments): \(result.output)")
            #expect(!result.output.contains(" ready "), "\(arguments) served before failing")
            let errorLines = result.output.split(separator: "\n").filter { $0.hasPrefix("Error:") }
            #expect(errorLines.count == 1, "\(arguments): \(result.output)")
        }
        // The environment is read when a flag is absent, and named in the error.
        let environment = try await runProcessDetached("/usr/bin/env", [
            "DOORSTEP_LISTEN=bad", productsDirectory.appendingPathComponent("accounts").path, "--data-dir", dataDir,
        ])
        #expect(environment.status != 0)
        #expect(environment.output.contains("DOORSTEP_LISTEN: 'bad' is not HOST:PORT"), "\(environment.output)")
        _ = await holder.stop()
    }

    @Test("--help documents every flag with its default", arguments: ["accounts", "scheduling", "visits"])
    func help(_ name: String) async throws {
        let result = try await runProduct(name, ["--help"])
        #expect(result.status == 0)
        // Help text is wrapped at the terminal width: compare with whitespace collapsed.
        let text = result.output.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        let port = ["accounts": 50051, "scheduling": 50052, "visits": 50053][name]!
        for flag in ["--listen", "--data-dir", "--metrics-listen", "--accounts-addr", "--scheduling-addr", "--visits-addr",
                     "--auth-key-file", "--log-level", "--max-receive-message-bytes", "--max-concurrent-streams",
                     "--drain-timeout-seconds", "--idempotency-retention-hours"] {
            #expect(text.contains(flag), "\(name) --help lacks \(flag)")
        }
        #expect(text.contains("Env DOORSTEP_LISTEN. Default 127.0.0.1:\(port)."), "\(result.output)")
        #expect(text.contains("Env DOORSTEP_DATA_DIR. Default ./data."))
    }

    @Test("doorstep call and doorstep health talk to a running service", .timeLimit(.minutes(2)))
    func cli() async throws {
        let cluster = try await ServiceCluster()
        let token = try await cluster.token("platform")
        let health = try await runProduct("doorstep", ["health", cluster.scheduling!.address])
        #expect(health.status == 0, "\(health.output)")
        #expect(health.output.contains("SERVING"))
        let created = try await runProduct("doorstep", [
            "call", cluster.scheduling!.address, "doorstep.scheduling.v1.Scheduling/RegisterAgency",
            #"{"requestId":"cli-1","agency":{"displayName":"CLI Agency","licenceNumber":"LIC-CLI-1","licenceExpiryDate":{"year":2099,"month":1,"day":1},"regionsServed":["310115"],"lastInspectionDate":{"year":2026,"month":1,"day":2}}}"#,
            "--token", token,
        ])
        #expect(created.status == 0, "\(created.output)")
        #expect(created.output.contains(#""status":"AGENCY_STATUS_ACTIVE""#), "\(created.output)")
        let refused = try await runProduct("doorstep", [
            "call", cluster.scheduling!.address, "doorstep.scheduling.v1.Scheduling/RegisterCollector",
            #"{"requestId":"cli-2","collector":{"agencyId":"agy_01J00000000000000000000000"}}"#, "--token", token,
        ])
        #expect(refused.status != 0)
        #expect(refused.output.contains("INVALID_ARGUMENT: collector.full_name"), "\(refused.output)")
        let unknown = try await runProduct("doorstep", ["call", cluster.scheduling!.address, "doorstep.scheduling.v1.Scheduling/Nope", "{}"])
        #expect(unknown.status != 0)
        #expect(unknown.output.contains("unknown method"), "\(unknown.output)")
        _ = await cluster.stopAll()
        let down = try await runProduct("doorstep", ["health", cluster.scheduling!.address, "--timeout", "2"])
        #expect(down.status != 0)
    }

    // MARK: Requests

    /// A Shanghai calendar date relative to today.
    static func localDate(daysFromToday offset: Int) -> TypeV1.Date {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
        let date = calendar.date(byAdding: .day, value: offset, to: Date())!
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        return TypeV1.Date(year: Int32(parts.year!), month: Int32(parts.month!), day: Int32(parts.day!))
    }

    static func debtorRequest() -> AccountsV1.CreateDebtorRequest {
        AccountsV1.CreateDebtorRequest(requestId: "restart-debtor-1", debtor: AccountsV1.Debtor(
            externalId: "cust-restart-1", fullName: "张三", nationalId: "11010519491231002X", phone: "13812345678",
            address: TypeV1.Address(text: "上海市浦东新区世纪大道100号", regionCode: "310115",
                                    location: TypeV1.GeoPoint(latitude: 31.2304, longitude: 121.4737)),
            timeZone: "Asia/Shanghai"))
    }

    /// Three monthly instalments, the first due 45 days ago (debtor-local), so 45 days past due.
    static func accountRequest(debtorID: String) -> AccountsV1.OpenAccountRequest {
        let zone = TimeZone(identifier: "Asia/Shanghai")!
        func day(_ offset: Int) -> TypeV1.Date {
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = zone
            let date = calendar.date(byAdding: .day, value: offset, to: Date())!
            let parts = calendar.dateComponents([.year, .month, .day], from: date)
            return TypeV1.Date(year: Int32(parts.year!), month: Int32(parts.month!), day: Int32(parts.day!))
        }
        let cny = { (amount: Int64) in TypeV1.Money(amountMinor: amount, currencyCode: "CNY") }
        return AccountsV1.OpenAccountRequest(
            requestId: "restart-account-1", debtorId: debtorID, externalId: "loan-restart-1", lenderId: "lender-1",
            product: .instalmentLoan, principal: cny(300_000), openedDate: day(-75),
            instalments: [-45, -15, 15].map { AccountsV1.OpeningInstalment(dueDate: day($0), amountDue: cny(100_000)) })
    }

}
