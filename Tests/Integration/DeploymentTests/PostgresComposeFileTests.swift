import Foundation
import TestSupport
import Testing

/// docker-compose.postgres.yml, the PostgreSQL variant: checked as `docker-compose config`
/// resolves it (no Docker engine runs here), against deploy/postgres/init.sql, against the
/// executables' `--help`, and against docker-compose.yml, whose services it runs in replicas.
/// Each property is a check that lists what is wrong; the last test breaks the file on purpose
/// and expects the matching check to say so.
@Suite("docker-compose.postgres.yml")
struct PostgresComposeFileTests {
    @Test("it parses on its own once POSTGRES_PASSWORD is given, and refuses to without it (no default password ships)")
    func parses() async throws {
        let configured = try await configuredCompose([PostgresVariant.file], environment: ["POSTGRES_PASSWORD": PostgresVariant.password])
        #expect(configured.status == 0, "\(configured.output)")
        let compose = try #require(configured.compose)
        #expect(Set(compose.services.keys) == ["postgres", "accounts", "scheduling", "visits"])

        let missing = try await configuredCompose([PostgresVariant.file], unset: ["POSTGRES_PASSWORD"])
        #expect(missing.status != 0, "compose accepted the file without a password")
        #expect(missing.output.contains("POSTGRES_PASSWORD"), "\(missing.output)")
        // The server's password is the one given (the URLs must carry the same: `databases`).
        #expect(compose.services["postgres"]?.environment?["POSTGRES_PASSWORD"] == PostgresVariant.password)
    }

    @Test("the services run as in docker-compose.yml: same commands, listen and metrics ports, health probes, peers, settings")
    func sameServicesAsSQLiteVariant() async throws {
        let compose = try await PostgresVariant.load()
        #expect(PostgresVariant.consistencyProblems(compose, base: try loadCompose()) == [])
    }

    @Test("every variable set for a service is one its executable documents in --help")
    func environmentIsDocumented() async throws {
        let compose = try await PostgresVariant.load()
        #expect(PostgresVariant.environmentProblems(compose, help: try await PostgresVariant.help()) == [])
    }

    @Test("each service's DOORSTEP_DATABASE_URL is a postgres URL to its own database, one that init.sql creates")
    func databases() async throws {
        let compose = try await PostgresVariant.load()
        let created = try PostgresVariant.createdDatabases()
        #expect(created == ["doorstep_accounts", "doorstep_scheduling", "doorstep_visits"])
        #expect(PostgresVariant.databaseProblems(compose, created: created) == [])
    }

    @Test("two replicas of each service, no fixed host port (replicas would collide), peers addressed by service name")
    func replicas() async throws {
        let compose = try await PostgresVariant.load()
        #expect(PostgresVariant.replicaProblems(compose) == [])
    }

    @Test("postgres:15 with a named data volume, a pg_isready health check over TCP, and every service waiting for it")
    func postgresService() async throws {
        let compose = try await PostgresVariant.load()
        #expect(PostgresVariant.postgresProblems(compose) == [])
    }

    @Test("replicas share the key files (accounts: one data key) from a read-only mount and no writable named volume")
    func sharedState() async throws {
        let compose = try await PostgresVariant.load()
        #expect(PostgresVariant.sharedStateProblems(compose) == [])
    }

    @Test("every replica's connection pool together fits within the server's max_connections")
    func connections() async throws {
        let compose = try await PostgresVariant.load()
        #expect(PostgresVariant.connectionProblems(compose) == [])
    }

    /// One deliberate mistake each: the text replaced, and what the checks must then report.
    struct Breakage: Sendable, CustomTestStringConvertible {
        var name: String
        var replacements: [(String, String)]
        var expected: String
        var testDescription: String { name }
    }

    static let breakages: [Breakage] = [
        Breakage(name: "two services share a database",
                 replacements: [("@postgres:5432/doorstep_visits", "@postgres:5432/doorstep_scheduling")],
                 expected: "visits shares database doorstep_scheduling"),
        Breakage(name: "a database init.sql does not create",
                 replacements: [("@postgres:5432/doorstep_visits", "@postgres:5432/doorstep_visit")],
                 expected: "doorstep_visit, which init.sql does not create"),
        Breakage(name: "a URL with another host",
                 replacements: [("@postgres:5432/doorstep_accounts", "@localhost:5432/doorstep_accounts")],
                 expected: "accounts: DOORSTEP_DATABASE_URL host localhost"),
        Breakage(name: "an unknown URL option",
                 replacements: [("@postgres:5432/doorstep_accounts", "@postgres:5432/doorstep_accounts?sslmode=verify-full")],
                 expected: "sslmode=verify-full"),
        Breakage(name: "one replica", replacements: [("    replicas: 2", "    replicas: 1")], expected: "accounts: 1 replica(s)"),
        Breakage(name: "a fixed host port",
                 replacements: [("    expose: [\"50051\", \"9101\"]", "    expose: [\"50051\", \"9101\"]\n    ports: [\"50051:50051\"]")],
                 expected: "accounts publishes host port 50051"),
        Breakage(name: "a service that does not wait for postgres",
                 replacements: [("    depends_on:\n      postgres:\n        condition: service_healthy\n      accounts:\n        condition: service_healthy\n      scheduling:",
                                 "    depends_on:\n      accounts:\n        condition: service_healthy\n      scheduling:")],
                 expected: "visits does not wait for postgres to be healthy"),
        Breakage(name: "no pg_isready", replacements: [("\"pg_isready\", ", "\"true\", ")], expected: "pg_isready"),
        Breakage(name: "a probe over the Unix socket", replacements: [("\"--host=127.0.0.1\", ", "")], expected: "over TCP"),
        Breakage(name: "postgres data in an anonymous volume",
                 replacements: [("- postgres-data:/var/lib/postgresql/data", "- /var/lib/postgresql/data")],
                 expected: "named volume at /var/lib/postgresql/data"),
        Breakage(name: "init.sql not mounted", replacements: [("      - ./deploy/postgres/init.sql:/docker-entrypoint-initdb.d/10-doorstep.sql:ro\n", "")],
                 expected: "init.sql"),
        Breakage(name: "the data key inside each replica's own /data",
                 replacements: [("DOORSTEP_DATA_KEY_FILE: /keys/data.key", "DOORSTEP_DATA_KEY_FILE: /data/data.key")],
                 expected: "accounts: DOORSTEP_DATA_KEY_FILE"),
        Breakage(name: "replicas sharing a writable named volume",
                 replacements: [("      - /data   # an anonymous volume", "      - scheduling-data:/data   # shared"),
                                ("volumes:\n  postgres-data:\n", "volumes:\n  postgres-data:\n  scheduling-data:\n")],
                 expected: "scheduling mounts named volume scheduling-data writable"),
        Breakage(name: "pools larger than max_connections",
                 replacements: [("max_connections=100", "max_connections=50")],
                 expected: "max_connections"),
        Breakage(name: "a misspelt variable",
                 replacements: [("      DOORSTEP_DATABASE_POOL_SIZE: \"10\"\n      DOORSTEP_AUTH_KEY_FILE: /keys/auth.key\n      DOORSTEP_WEBHOOK_KEY_FILE: /keys/webhook.key\n      DOORSTEP_DATA_KEY_FILE",
                                 "      DOORSTEP_DATABASE_POOLSIZE: \"10\"\n      DOORSTEP_AUTH_KEY_FILE: /keys/auth.key\n      DOORSTEP_WEBHOOK_KEY_FILE: /keys/webhook.key\n      DOORSTEP_DATA_KEY_FILE")],
                 expected: "accounts does not read DOORSTEP_DATABASE_POOLSIZE"),
        Breakage(name: "a different health probe from docker-compose.yml",
                 replacements: [("\"doorstep\", \"health\", \"127.0.0.1:50053\"", "\"doorstep\", \"health\", \"127.0.0.1:50054\"")],
                 expected: "visits.healthcheck"),
    ]

    @Test("the checks can fail: each deliberate mistake is reported", arguments: breakages)
    func checksCatchMistakes(_ breakage: Breakage) async throws {
        var text = try PostgresVariant.text()
        for (old, new) in breakage.replacements {
            try #require(text.contains(old), "the file no longer contains \(old.debugDescription)")
            text = text.replacingOccurrences(of: old, with: new)
        }
        let file = try makeTemporaryDirectory().appendingPathComponent("docker-compose.postgres.yml")
        try text.write(to: file, atomically: true, encoding: .utf8)
        let configured = try await configuredCompose([file.path], environment: ["POSTGRES_PASSWORD": PostgresVariant.password])
        let compose = try #require(configured.compose, "\(configured.output)")
        let problems = PostgresVariant.consistencyProblems(compose, base: try loadCompose())
            + PostgresVariant.environmentProblems(compose, help: try await PostgresVariant.help())
            + PostgresVariant.databaseProblems(compose, created: try PostgresVariant.createdDatabases())
            + PostgresVariant.replicaProblems(compose) + PostgresVariant.postgresProblems(compose)
            + PostgresVariant.sharedStateProblems(compose) + PostgresVariant.connectionProblems(compose)
        #expect(problems.contains { $0.contains(breakage.expected) }, "expected “\(breakage.expected)” among \(problems)")
    }
}

/// The checks of docker-compose.postgres.yml; each returns what is wrong, one line each.
enum PostgresVariant {
    static let file = "docker-compose.postgres.yml"
    /// The service the URLs must name, and the services that use it.
    static let server = "postgres"
    static let applications = ["accounts", "scheduling", "visits"]
    static let replicas = 2
    static let password = "TestOnly0123456789"
    /// `superuser_reserved_connections`' default: slots ordinary pools cannot count on.
    static let reservedConnections = 3

    static func text() throws -> String {
        String(decoding: try readFile(repositoryRoot.appendingPathComponent(file)), as: UTF8.self)
    }

    static func load() async throws -> ConfiguredCompose {
        let configured = try await configuredCompose([file], environment: ["POSTGRES_PASSWORD": password])
        return try #require(configured.compose, "\(configured.output)")
    }

    /// `--help` of each application's executable.
    static func help() async throws -> [String: String] {
        var texts: [String: String] = [:]
        for name in applications {
            let help = try await runProduct(name, ["--help"])
            #expect(help.status == 0, "\(name) --help: \(help.output)")
            texts[name] = help.output.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        }
        return texts
    }

    /// The databases deploy/postgres/init.sql creates (comments skipped).
    static func createdDatabases() throws -> Set<String> {
        let sql = String(decoding: try readFile(repositoryRoot.appendingPathComponent("deploy/postgres/init.sql")), as: UTF8.self)
        let statements = sql.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("--") }.joined(separator: "\n")
        return Set(statements.matches(of: /(?i)CREATE\s+DATABASE\s+([a-z_][a-z0-9_]*)/).map { String($0.1) })
    }

    /// A `volumes` entry: `SOURCE:TARGET[:MODE]`, or `TARGET` alone (anonymous).
    struct Mount {
        var source: String?
        var target: String
        var readOnly: Bool
        var isBind: Bool { source?.hasPrefix("/") == true }
        var isNamed: Bool { source.map { !$0.hasPrefix("/") && !$0.hasPrefix(".") } ?? false }

        init(_ entry: String) {
            let parts = entry.split(separator: ":").map(String.init)
            if parts.count == 1 {
                source = nil
                target = parts[0]
                readOnly = false
            } else {
                source = parts[0]
                target = parts[1]
                readOnly = parts.count > 2 && parts[2].split(separator: ",").contains("ro")
            }
        }
    }

    static func mounts(_ service: ConfiguredCompose.Service) -> [Mount] { (service.volumes ?? []).map(Mount.init) }

    /// The mount a path inside the container lies on (the longest target that contains it).
    static func mount(of path: String, in service: ConfiguredCompose.Service) -> Mount? {
        mounts(service).filter { path == $0.target || path.hasPrefix($0.target + "/") }.max { $0.target.count < $1.target.count }
    }

    static func portOf(_ address: String?) -> String? { address?.split(separator: ":").last.map(String.init) }

    /// The applications run as in docker-compose.yml: only the database, replicas and the
    /// placement of /data may differ.
    static func consistencyProblems(_ compose: ConfiguredCompose, base: ComposeFile) -> [String] {
        var problems: [String] = []
        if Set(compose.services.keys) != Set(base.services.keys).union([server]) {
            problems.append("services \(compose.services.keys.sorted()) are not docker-compose.yml's plus \(server)")
        }
        for name in applications {
            guard let service = compose.services[name], let original = base.services[name] else { continue }
            if service.command != original.command { problems.append("\(name).command \(service.command ?? []) differs from docker-compose.yml") }
            if service.healthcheck?.test != original.healthcheck.test {
                problems.append("\(name).healthcheck \(service.healthcheck?.test ?? []) differs from docker-compose.yml")
            }
            if service.read_only != true { problems.append("\(name) is not read_only") }
            let environment = service.environment ?? [:]
            for (variable, value) in original.environment where environment[variable] != value {
                problems.append("\(name).\(variable) is \(environment[variable] ?? "unset"), docker-compose.yml has \(value)")
            }
        }
        return problems
    }

    /// Every variable is one the executable reads (`Env NAME.` in its --help).
    static func environmentProblems(_ compose: ConfiguredCompose, help: [String: String]) -> [String] {
        var problems: [String] = []
        for name in applications {
            for variable in (compose.services[name]?.environment ?? [:]).keys.sorted() where !(help[name] ?? "").contains("Env \(variable).") {
                problems.append("\(name) does not read \(variable)")
            }
        }
        return problems
    }

    /// Each application's URL: postgres://USER:PASSWORD@postgres[:5432]/DATABASE with the
    /// server's user and password, a database init.sql creates, no other service's database.
    static func databaseProblems(_ compose: ConfiguredCompose, created: Set<String>) -> [String] {
        var problems: [String] = []
        let serverEnvironment = compose.services[server]?.environment ?? [:]
        var owners: [String: String] = [:]
        for name in applications {
            guard let url = compose.services[name]?.environment?["DOORSTEP_DATABASE_URL"] else {
                problems.append("\(name) has no DOORSTEP_DATABASE_URL (it would use SQLite, one file per replica)")
                continue
            }
            guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme ?? "") else {
                problems.append("\(name): DOORSTEP_DATABASE_URL is not a postgres:// URL")
                continue
            }
            if components.host != server { problems.append("\(name): DOORSTEP_DATABASE_URL host \(components.host ?? "none") is not the \(server) service") }
            if let port = components.port, port != 5432 { problems.append("\(name): DOORSTEP_DATABASE_URL port \(port) is not the server's 5432") }
            if components.user != serverEnvironment["POSTGRES_USER"] {
                problems.append("\(name): DOORSTEP_DATABASE_URL user \(components.user ?? "none") is not POSTGRES_USER")
            }
            if components.password != serverEnvironment["POSTGRES_PASSWORD"] {
                problems.append("\(name): DOORSTEP_DATABASE_URL password is not POSTGRES_PASSWORD")
            }
            for item in components.queryItems ?? [] {
                let known = (item.name == "sslmode" && ["disable", "require"].contains(item.value ?? ""))
                    || (item.name == "schema" && item.value?.wholeMatch(of: /[a-z_][a-z0-9_]{0,62}/) != nil)
                if !known { problems.append("\(name): DOORSTEP_DATABASE_URL option \(item.name)=\(item.value ?? "") is not one the services accept") }
            }
            let database = String(components.path.drop { $0 == "/" })
            if !created.contains(database) { problems.append("\(name) uses database \(database), which init.sql does not create") }
            if let owner = owners[database] {
                problems.append("\(name) shares database \(database) with \(owner)")
            } else {
                owners[database] = name
            }
        }
        return problems
    }

    /// Two replicas each; none publishes a fixed host port (the second replica could not bind
    /// it); the ports are declared with `expose`; peers are addressed by service name (which
    /// resolves to every replica) on the peer's own port.
    static func replicaProblems(_ compose: ConfiguredCompose) -> [String] {
        var problems: [String] = []
        for name in applications {
            guard let service = compose.services[name] else { problems.append("no service \(name)"); continue }
            let count = service.deploy?.replicas ?? 1
            if count != replicas { problems.append("\(name): \(count) replica(s), not \(replicas)") }
            for port in service.ports ?? [] {
                problems.append(port.published.map { "\(name) publishes host port \($0)" } ?? "\(name) publishes port \(port.target)")
            }
            let environment = service.environment ?? [:]
            for variable in ["DOORSTEP_LISTEN", "DOORSTEP_METRICS_LISTEN"] {
                if let port = portOf(environment[variable]), !(service.expose ?? []).contains(port) {
                    problems.append("\(name) does not expose \(port) (\(variable))")
                }
            }
            for (variable, value) in environment.sorted(by: { $0.key < $1.key }) where variable.hasSuffix("_ADDR") {
                let parts = value.split(separator: ":").map(String.init)
                guard let peer = compose.services[parts[0]], parts.count == 2 else {
                    problems.append("\(name).\(variable) \(value) is not SERVICE:PORT of a service in the file")
                    continue
                }
                if portOf(peer.environment?["DOORSTEP_LISTEN"]) != parts[1] { problems.append("\(name).\(variable) \(value) is not where \(parts[0]) listens") }
            }
        }
        return problems
    }

    /// The server: the official postgres:15 image, its data in a named volume, init.sql in
    /// the image's init directory, a pg_isready probe over TCP as POSTGRES_USER; every
    /// application (and its peers) waited for until healthy.
    static func postgresProblems(_ compose: ConfiguredCompose) -> [String] {
        var problems: [String] = []
        guard let postgres = compose.services[server] else { return ["no \(server) service"] }
        if !(postgres.image ?? "").hasPrefix("postgres:15") { problems.append("\(server) image \(postgres.image ?? "none") is not the official postgres:15") }
        let data = mount(of: "/var/lib/postgresql/data", in: postgres)
        if data?.isNamed != true || data?.target != "/var/lib/postgresql/data" {
            problems.append("\(server) keeps no named volume at /var/lib/postgresql/data")
        } else if let volume = data?.source, compose.volumes?[volume] == nil {
            problems.append("volume \(volume) is not declared")
        }
        let initScript = mounts(postgres).contains {
            $0.source?.hasSuffix("/deploy/postgres/init.sql") == true && $0.target.hasPrefix("/docker-entrypoint-initdb.d/")
                && $0.target.hasSuffix(".sql")
        }
        if !initScript { problems.append("deploy/postgres/init.sql is not mounted into /docker-entrypoint-initdb.d") }
        let test = postgres.healthcheck?.test ?? []
        if test.count < 2 || test[0] != "CMD" || test[1] != "pg_isready" {
            problems.append("\(server) health check \(test) is not pg_isready")
        } else {
            let arguments = Array(test.dropFirst(2))
            func option(_ long: String, _ short: String) -> String? {
                if let value = arguments.first(where: { $0.hasPrefix("--\(long)=") }) { return String(value.dropFirst(long.count + 3)) }
                if let index = arguments.firstIndex(where: { $0 == "-\(short)" || $0 == "--\(long)" }), index + 1 < arguments.count { return arguments[index + 1] }
                return nil
            }
            // The image's init phase serves the Unix socket only: a TCP probe passes only once
            // init.sql has run and the real server listens.
            if option("host", "h") != "127.0.0.1" { problems.append("pg_isready does not probe over TCP (--host=127.0.0.1)") }
            if option("username", "U") != postgres.environment?["POSTGRES_USER"] { problems.append("pg_isready does not probe as POSTGRES_USER") }
        }
        for name in applications {
            let dependencies = compose.services[name]?.depends_on ?? [:]
            if dependencies[server]?.condition != "service_healthy" { problems.append("\(name) does not wait for \(server) to be healthy") }
            for (variable, value) in compose.services[name]?.environment ?? [:] where variable.hasSuffix("_ADDR") {
                let peer = String(value.split(separator: ":")[0])
                // A peer that waits for this service (scheduling's lazy visits peer) is not waited for.
                if compose.services[peer]?.depends_on?[name]?.condition == "service_healthy" { continue }
                if dependencies[peer]?.condition != "service_healthy" { problems.append("\(name) does not wait for \(peer) to be healthy") }
            }
        }
        return problems
    }

    /// What replicas of one service must share, they read from one read-only bind mount of
    /// the host (every container gets the same files): the auth key for all services, the
    /// data key for accounts (a replica with another key refuses to start). What they must
    /// not share is anything writable: no named volume mounted writable into a replicated
    /// service, and no key kept in /data (each replica's own, so dev mode would give every
    /// replica its own generated key).
    static func sharedStateProblems(_ compose: ConfiguredCompose) -> [String] {
        var problems: [String] = []
        var authKeys: Set<String> = []
        for name in applications {
            guard let service = compose.services[name] else { continue }
            let environment = service.environment ?? [:]
            var keys = ["DOORSTEP_AUTH_KEY_FILE", "DOORSTEP_WEBHOOK_KEY_FILE"]
            if name == "accounts" { keys.append("DOORSTEP_DATA_KEY_FILE") }
            for variable in keys {
                guard let path = environment[variable] else { problems.append("\(name): \(variable) is unset (dev mode: a key per replica)"); continue }
                guard let holder = mount(of: path, in: service), holder.isBind, holder.readOnly, holder.target != path,
                      !(environment["DOORSTEP_DATA_DIR"].map { path.hasPrefix($0 + "/") } ?? false)
                else {
                    problems.append("\(name): \(variable) \(path) is not in a read-only directory mounted from the host")
                    continue
                }
                if variable == "DOORSTEP_AUTH_KEY_FILE" { authKeys.insert("\(holder.source ?? "")|\(path)") }
            }
            if (service.deploy?.replicas ?? 1) > 1 {
                for mount in mounts(service) where mount.isNamed && !mount.readOnly {
                    problems.append("\(name) mounts named volume \(mount.source ?? "") writable into every replica")
                }
            }
        }
        if authKeys.count > 1 { problems.append("the services verify tokens with different auth keys: \(authKeys.sorted())") }
        return problems
    }

    /// Σ replicas × pool size ≤ max_connections − the superuser reserve.
    static func connectionProblems(_ compose: ConfiguredCompose) -> [String] {
        let command = compose.services[server]?.command ?? []
        var maxConnections = 100 // the server's default
        for argument in command where argument.hasPrefix("max_connections=") {
            maxConnections = Int(argument.dropFirst("max_connections=".count)) ?? 0
        }
        var total = 0
        for name in applications {
            guard let service = compose.services[name] else { continue }
            let pool = service.environment?["DOORSTEP_DATABASE_POOL_SIZE"].flatMap { Int($0) } ?? 10 // the services' default
            total += (service.deploy?.replicas ?? 1) * pool
        }
        guard total <= maxConnections - reservedConnections else {
            return ["the pools open up to \(total) connections; max_connections \(maxConnections) leaves \(maxConnections - reservedConnections)"]
        }
        return []
    }
}
