import Foundation
import TestSupport
import Testing

/// docker-compose.postgres.yml run without an engine: its PostgreSQL server is a private
/// cluster prepared as the postgres image prepares an empty volume (POSTGRES_USER with
/// POSTGRES_PASSWORD, then deploy/postgres/init.sql run as that user), and every replica is
/// the service's executable started with the file's environment. Only what cannot hold
/// outside a container is rewritten: listen addresses become 127.0.0.1:0, the server's
/// host:port in the URLs becomes the cluster's, `/data` becomes a directory per replica (as
/// the tmpfs or anonymous volume each container gets), `/keys/*` are generated, and a peer
/// address (`accounts:50051`, which DNS resolves to every replica) becomes the list of that
/// service's replicas.
@Suite("docker-compose.postgres.yml as real processes", .serialized)
struct PostgresComposeProcessTests {
    @Test("two replicas of each service start together on their databases, share them, and reach each other's replicas",
          .enabled(if: PostgresCluster.isAvailable), .timeLimit(.minutes(3)))
    func replicas() async throws {
        let compose = try await PostgresVariant.load()
        let cluster = try PostgresCluster()
        defer { cluster.remove() }
        let bin = try #require(PostgresCluster.binaries)
        let serverEnvironment = try #require(compose.services[PostgresVariant.server]?.environment)
        let user = try #require(serverEnvironment["POSTGRES_USER"])
        let password = try #require(serverEnvironment["POSTGRES_PASSWORD"])
        func psql(_ role: String, _ arguments: [String]) async throws {
            let result = try await runProcessDetached(bin.appendingPathComponent("psql").path, [
                "-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", "\(cluster.port)", "-U", role, "-d", "postgres",
            ] + arguments)
            #expect(result.status == 0, "psql \(arguments): \(result.output)")
        }
        try await psql("postgres", ["-c", "CREATE ROLE \(user) LOGIN SUPERUSER PASSWORD '\(password)'"])
        try await psql(user, ["-f", repositoryRoot.appendingPathComponent("deploy/postgres/init.sql").path])

        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let keys = directory.appendingPathComponent("keys")
        try FileManager.default.createDirectory(at: keys, withIntermediateDirectories: true)
        func keygen(_ file: String, data: Bool) async throws -> String {
            let path = keys.appendingPathComponent(file).path
            let result = try await runProduct("doorstep", ["keygen"] + (data ? ["--data-key"] : []) + ["--key-file", path])
            #expect(result.status == 0, "\(result.output)")
            return path
        }
        for (variable, value) in compose.services.values.flatMap({ $0.environment ?? [:] }) where value.hasPrefix("/keys/") {
            let file = keys.appendingPathComponent(String(value.dropFirst("/keys/".count))).path
            if !FileManager.default.fileExists(atPath: file) {
                _ = try await keygen(String(value.dropFirst("/keys/".count)), data: ["DOORSTEP_DATA_KEY_FILE", "DOORSTEP_WEBHOOK_KEY_FILE"].contains(variable))
            }
        }

        // Dependencies first, as depends_on orders them.
        let order = ["accounts", "scheduling", "visits"]
        for (index, name) in order.enumerated() {
            let dependencies = Set((compose.services[name]?.depends_on ?? [:]).keys).subtracting([PostgresVariant.server])
            #expect(dependencies.isSubset(of: order.prefix(index)), "\(name) depends on \(dependencies)")
        }

        var replicas: [String: [RunningService]] = [:]
        func environment(_ name: String, replica: Int) throws -> [String: String] {
            let service = try #require(compose.services[name])
            let data = directory.appendingPathComponent("\(name)-\(replica)").path
            var environment: [String: String] = [:]
            for (variable, value) in service.environment ?? [:] {
                switch variable {
                case "DOORSTEP_LISTEN", "DOORSTEP_METRICS_LISTEN":
                    environment[variable] = "127.0.0.1:0"
                case "DOORSTEP_DATABASE_URL":
                    environment[variable] = value.replacingOccurrences(of: "@\(PostgresVariant.server):5432/", with: "@127.0.0.1:\(cluster.port)/")
                case _ where variable.hasSuffix("_ADDR"):
                    let peer = String(value.split(separator: ":")[0])
                    // A peer started later (scheduling's visits, called only for PlaceRegion)
                    // keeps its compose name, as ComposeCluster leaves it.
                    environment[variable] = replicas[peer].map { $0.map(\.address).joined(separator: ",") } ?? value
                default:
                    environment[variable] = value.hasPrefix("/keys/") ? keys.path + value.dropFirst("/keys".count)
                        : value.replacingOccurrences(of: "/data", with: data)
                }
            }
            return environment
        }

        // The replicas of a service start at the same moment, as compose starts them: both
        // migrate the same empty database.
        for name in order {
            let count = try #require(compose.services[name]?.deploy?.replicas)
            let environments = try (0..<count).map { try environment(name, replica: $0) }
            let started = try await withThrowingTaskGroup(of: (Int, RunningService).self) { group in
                for (replica, environment) in environments.enumerated() {
                    group.addTask { (replica, try await RunningService(name, [], environment: environment)) }
                }
                return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }
            replicas[name] = (0..<count).map { started[$0]! }
            // The compose health probe, pointed at each replica.
            let probe = try #require(compose.services[name]?.healthcheck?.test).drop { $0 == "CMD" }
            for replica in replicas[name]! {
                let arguments = probe.dropFirst().map { $0.hasPrefix("127.0.0.1:") ? replica.address : $0 }
                let health = try await runProduct(probe.first!, Array(arguments))
                #expect(health.status == 0 && health.output.contains("SERVING"), "\(name) \(replica.address): \(health.output)")
            }
        }
        let accounts = try #require(replicas["accounts"])
        let scheduling = try #require(replicas["scheduling"])
        let visits = try #require(replicas["visits"])

        let token = try await runProduct("doorstep", ["token", "--role", "platform", "--key-file", keys.appendingPathComponent("auth.key").path])
            .output.trimmingCharacters(in: .whitespacesAndNewlines)
        func call(_ service: RunningService, _ method: String, _ request: String) async throws -> [String: Any] {
            let result = try await runProduct("doorstep", ["call", service.address, method, request, "--token", token])
            try #require(result.status == 0, "\(method) at \(service.name) \(service.address): \(result.output)")
            return try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any], "\(result.output)")
        }

        // Written through one accounts replica, read through the other: one database.
        let debtor = try await call(accounts[0], "doorstep.accounts.v1.Accounts/CreateDebtor", """
            {"requestId":"pg-compose-d1","debtor":{"externalId":"pg-compose-1","fullName":"张三","nationalId":"11010519491231002X",
             "phone":"13812345678","address":{"text":"上海市浦东新区世纪大道100号","regionCode":"310115"},"timeZone":"Asia/Shanghai"}}
            """)
        let debtorID = try #require(debtor["id"] as? String)
        let read = try await call(accounts[1], "doorstep.accounts.v1.Accounts/GetDebtor", #"{"debtorId":"\#(debtorID)"}"#)
        #expect(read["externalId"] as? String == "pg-compose-1")
        let calendar = { () -> Calendar in
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
            return calendar
        }()
        func day(_ offset: Int) -> String {
            let parts = calendar.dateComponents([.year, .month, .day], from: calendar.date(byAdding: .day, value: offset, to: Date())!)
            return #"{"year":\#(parts.year!),"month":\#(parts.month!),"day":\#(parts.day!)}"#
        }
        let instalments = [-45, -15, 15].map { #"{"dueDate":\#(day($0)),"amountDue":{"amountMinor":"100000","currencyCode":"CNY"}}"# }
        let account = try await call(accounts[1], "doorstep.accounts.v1.Accounts/OpenAccount", """
            {"requestId":"pg-compose-a1","debtorId":"\(debtorID)","externalId":"pg-compose-loan-1","lenderId":"lender-1",
             "product":"PRODUCT_TYPE_INSTALMENT_LOAN","principal":{"amountMinor":"300000","currencyCode":"CNY"},
             "openedDate":\(day(-75)),"instalments":[\(instalments.joined(separator: ","))]}
            """)
        let accountID = try #require(account["id"] as? String)

        // Each scheduling replica reaches accounts at the address compose gives it.
        for replica in scheduling {
            let budget = try await call(replica, "doorstep.scheduling.v1.Scheduling/GetContactBudget", #"{"debtorId":"\#(debtorID)"}"#)
            let listed = (budget["accounts"] as? [[String: Any]] ?? []).compactMap { $0["accountId"] as? String }
            #expect(listed == [accountID], "\(budget)")
        }
        for replica in visits {
            _ = try await call(replica, "doorstep.visits.v1.Visits/ListVisits", "{}")
        }

        // Why the file mounts one data key into every accounts replica: a replica with
        // another key refuses to start on the same database.
        var stranger = try environment("accounts", replica: 2)
        stranger["DOORSTEP_DATA_KEY_FILE"] = try await keygen("other-data.key", data: true)
        let refusal = await #expect(throws: ServiceStartFailed.self) { _ = try await RunningService("accounts", [], environment: stranger) }
        #expect(refusal?.status == 1 && refusal?.output.contains("data key") == true, "\(String(describing: refusal))")

        // Dependents stop first, each replica cleanly (SIGTERM, as compose stops).
        for name in order.reversed() {
            for replica in replicas[name] ?? [] {
                let stop = await replica.stop()
                #expect(stop.status == 0, "\(name) \(replica.address): \(stop.stderr.suffix(1500))")
            }
        }
    }
}
