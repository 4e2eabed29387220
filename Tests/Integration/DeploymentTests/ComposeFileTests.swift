import Foundation
import TestSupport
import Testing

@Suite("docker-compose.yml")
struct ComposeFileTests {
    static let expected = [("accounts", 50051), ("scheduling", 50052), ("visits", 50053)]

    @Test("the three services listen and publish on the documented ports, each with its own data volume")
    func services() throws {
        let compose = try loadCompose()
        #expect(Set(compose.services.keys) == ["accounts", "scheduling", "visits"])
        for (name, port) in Self.expected {
            let service = try #require(compose.services[name])
            #expect(service.command == [name])
            #expect(service.environment["DOORSTEP_LISTEN"] == "0.0.0.0:\(port)")
            #expect(service.ports.contains("\(port):\(port)"))
            #expect(service.environment["DOORSTEP_DATA_DIR"] == "/data")
            #expect(service.volumes.contains("\(name)-data:/data"))
            #expect(compose.volumes.keys.contains("\(name)-data"))
            #expect(service.healthcheck.test.contains("127.0.0.1:\(port)"), "health probe of \(name) targets its own port")
            #expect(service.read_only == true)
            let metricsPort = try #require(service.environment["DOORSTEP_METRICS_LISTEN"]?.split(separator: ":").last)
            #expect(service.ports.contains("\(metricsPort):\(metricsPort)"))
        }
    }

    @Test("docker-compose.yml, and the file the compose suite gives an engine, pass the Compose schema (docker-compose config)")
    func schema() async throws {
        let valid = try await runProcessDetached("docker-compose", ["--file", "docker-compose.yml", "config", "--quiet"])
        #expect(valid.status == 0, "\(valid.output)")

        // The engine file changes only what would collide with the machine.
        let raw = try loadComposeDictionary()
        let directory = try makeTemporaryDirectory()
        let keys = directory.appendingPathComponent("keys").path
        let engine = engineComposeFile(raw, keysDirectory: keys, repository: repositoryRoot.path)
        let original = try #require(raw["services"] as? [String: [String: Any]])
        let rewritten = try #require(engine["services"] as? [String: [String: Any]])
        #expect(Set(rewritten.keys) == Set(original.keys))
        for (name, port) in Self.expected {
            let before = try #require(original[name])
            let after = try #require(rewritten[name])
            let metrics = 9101 + port - 50051
            #expect(after["ports"] as? [String] == ["127.0.0.1::\(port)", "127.0.0.1::\(metrics)"], "ephemeral host ports on loopback")
            #expect((after["volumes"] as? [String])?.contains("\(keys):/keys:ro") == true)
            #expect((after["volumes"] as? [String])?.contains("\(name)-data:/data") == true)
            #expect((after["build"] as? [String: Any])?["context"] as? String == repositoryRoot.path)
            for key in ["command", "environment", "healthcheck", "depends_on", "image", "read_only", "stop_grace_period"] {
                #expect(String(describing: after[key]) == String(describing: before[key]), "\(name).\(key) is kept")
            }
        }
        let file = directory.appendingPathComponent("compose.json")
        try JSONSerialization.data(withJSONObject: engine, options: [.sortedKeys]).write(to: file)
        let engineValid = try await runProcessDetached("docker-compose", ["--file", file.path, "config", "--quiet"])
        #expect(engineValid.status == 0, "\(engineValid.output)")

        // And the check can fail: a misspelt option is refused, naming it.
        let broken = directory.appendingPathComponent("broken.yml")
        let text = String(decoding: try readFile(repositoryRoot.appendingPathComponent("docker-compose.yml")), as: UTF8.self)
        try text.replacingOccurrences(of: "    command: [\"visits\"]", with: "    comand: [\"visits\"]").write(to: broken, atomically: true, encoding: .utf8)
        let refused = try await runProcessDetached("docker-compose", ["--file", broken.path, "config", "--quiet"])
        #expect(refused.status != 0 && refused.output.contains("comand"), "\(refused.output)")
    }

    @Test("without a Docker engine the compose suite runs processes; DOORSTEP_COMPOSE_RUNNER chooses explicitly")
    func runner() {
        #expect(ComposeRunner.detect(environment: ["DOORSTEP_COMPOSE_RUNNER": "processes"]) == .processes)
        #expect(ComposeRunner.detect(environment: ["DOORSTEP_COMPOSE_RUNNER": "engine"]) == .engine)
        let engine = (try? runProcess("docker", ["info", "--format", "{{.ServerVersion}}"]))?.status == 0
        if !engine { #expect(ComposeRunner.detect(environment: [:]) == .processes) }
    }

    @Test("peers are addressed by service name and waited for until healthy, but for a peer that waits for this one")
    func dependencies() throws {
        let compose = try loadCompose()
        for (name, service) in compose.services {
            for (variable, value) in service.environment where variable.hasSuffix("_ADDR") {
                let peer = String(value.split(separator: ":")[0])
                #expect(compose.services[peer] != nil, "\(name).\(variable) names unknown service \(peer)")
                // Scheduling calls visits only for PlaceRegion's scorecards, when asked, and
                // visits waits for scheduling: that edge of the cycle is not waited for.
                if compose.services[peer]?.depends_on?[name]?.condition == "service_healthy" { continue }
                #expect(service.depends_on?[peer]?.condition == "service_healthy", "\(name) must wait for \(peer)")
                let port = Self.expected.first { $0.0 == peer }!.1
                #expect(value == "\(peer):\(port)")
            }
        }
    }

    @Test("the start order puts every dependency first, whatever the alphabetical order of the names")
    func startOrder() throws {
        func service(_ dependencies: [String]) -> String {
            let dependsOn = dependencies.map { "\"\($0)\": {\"condition\": \"service_healthy\"}" }.joined(separator: ", ")
            return """
                {"command": ["x"], "environment": {}, "ports": [], "volumes": [], "healthcheck": {"test": []},
                 "depends_on": {\(dependsOn)}}
                """
        }
        let text = """
            {"volumes": {}, "services": {"alpha": \(service(["zeta", "mu"])), "beta": \(service(["alpha"])),
                                         "mu": \(service(["zeta"])), "zeta": \(service([]))}}
            """
        let synthetic = try JSONDecoder().decode(ComposeFile.self, from: Data(text.utf8))
        #expect(synthetic.startOrder() == ["zeta", "mu", "alpha", "beta"])
        // The repository's file, renamed so that the alphabet runs against its dependencies.
        let renamed = try loadCompose().renamingServices(["accounts": "zeta", "scheduling": "mu", "visits": "alpha"])
        #expect(renamed.startOrder() == ["zeta", "mu", "alpha"])
        #expect(renamed.services["alpha"]?.environment["DOORSTEP_SCHEDULING_ADDR"] == "mu:50052")
        #expect(renamed.services["alpha"]?.depends_on?.keys.sorted() == ["mu", "zeta"])
    }

    @Test("every variable compose sets is documented by the service it configures; the image builds what compose runs")
    func crossCheckWithBinaries() async throws {
        let compose = try loadCompose()
        let dockerfile = String(decoding: try readFile(repositoryRoot.appendingPathComponent("Dockerfile")), as: UTF8.self)
        for (name, service) in compose.services {
            let help = try await runProduct(name, ["--help"])
            #expect(help.status == 0, "\(name) --help: \(help.output)")
            let text = help.output.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            for variable in service.environment.keys {
                #expect(text.contains("Env \(variable)."), "\(name) does not read \(variable)")
            }
            #expect(dockerfile.contains(".build/release/\(name)"), "the image lacks \(name)")
            // The health probe is a real `doorstep` subcommand taking HOST:PORT.
            #expect(Array(service.healthcheck.test.prefix(3)) == ["CMD", "doorstep", "health"])
        }
        #expect(dockerfile.contains(".build/release/doorstep"))
        let probe = try await runProduct("doorstep", ["health", "--help"])
        #expect(probe.status == 0)
    }

    @Test("docker-compose.tls.yml merges over docker-compose.yml: each service on mutual TLS with its own certificate from a read-only ./tls, its probe presenting it, every variable documented")
    func tlsOverride() async throws {
        let configured = try await configuredCompose(["docker-compose.yml", "docker-compose.tls.yml"])
        #expect(configured.status == 0, "\(configured.output)")
        let merged = try #require(configured.compose)
        let compose = try loadCompose(override: "docker-compose.tls.yml")
        for name in ["accounts", "scheduling", "visits"] {
            let service = try #require(compose.services[name])
            #expect(service.environment["DOORSTEP_TLS_CERT_FILE"] == "/tls/\(name).pem")
            #expect(service.environment["DOORSTEP_TLS_KEY_FILE"] == "/tls/\(name).key")
            #expect(service.environment["DOORSTEP_TLS_CLIENT_CA_FILE"] == "/tls/ca.pem")
            #expect(service.environment["DOORSTEP_TLS_CA_FILE"] == "/tls/ca.pem")
            // Merged by compose, not replaced: the base settings stay.
            #expect(merged.services[name]?.environment?["DOORSTEP_AUTH_KEY_FILE"] == "/keys/auth.key")
            #expect(merged.services[name]?.volumes?.contains { $0.hasSuffix("/tls:/tls:ro") } == true, "\(merged.services[name]?.volumes ?? [])")
            let probe = service.healthcheck.test
            #expect(Array(probe.prefix(3)) == ["CMD", "doorstep", "health"])
            for (flag, value) in [("--tls-ca-file", "/tls/ca.pem"), ("--tls-client-cert-file", "/tls/\(name).pem"),
                                  ("--tls-client-key-file", "/tls/\(name).key")] {
                #expect(probe.firstIndex(of: flag).map { probe[$0 + 1] } == value, "\(name) probe: \(probe)")
            }
            let help = try await runProduct(name, ["--help"])
            let text = help.output.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            for variable in service.environment.keys {
                #expect(text.contains("Env \(variable)."), "\(name) does not read \(variable)")
            }
        }
        let probeHelp = try await runProduct("doorstep", ["health", "--help"])
        for flag in ["--tls-ca-file", "--tls-client-cert-file", "--tls-client-key-file"] {
            #expect(probeHelp.output.contains(flag), "doorstep health lacks \(flag)")
        }
        // The files it mounts are the ones `doorstep tls-dev` writes.
        let directory = try makeTemporaryDirectory().appendingPathComponent("tls").path
        let written = try await runProduct("doorstep", ["tls-dev", directory])
        #expect(written.status == 0, "\(written.output)")
        for file in compose.services.values.flatMap({ $0.environment.values }) where file.hasPrefix("/tls/") {
            #expect(FileManager.default.fileExists(atPath: directory + file.dropFirst(4)), "tls-dev does not write \(file)")
        }
    }

    @Test("the image is built with the Swift release and Debian release the tests run on")
    func buildImageMatchesToolchain() async throws {
        let dockerfile = String(decoding: try readFile(repositoryRoot.appendingPathComponent("Dockerfile")), as: UTF8.self)
        let from = try #require(dockerfile.split(separator: "\n").first { $0.hasPrefix("FROM swift:") }, "no swift build stage")
        let tag = String(from.dropFirst("FROM swift:".count).prefix { $0 != " " })
        let swift = try await runProcessDetached("swift", ["--version"])
        let version = try #require(swift.output.firstMatch(of: /Swift version ([0-9.]+)/)?.1, "\(swift.output)")
        let release = String(decoding: try readFile(URL(fileURLWithPath: "/etc/os-release")), as: UTF8.self)
        let codename = try #require(release.firstMatch(of: /VERSION_CODENAME=([a-z]+)/)?.1)
        #expect(tag == "\(version)-\(codename)", "Dockerfile builds with swift:\(tag); the tests run Swift \(version) on \(codename)")
        #expect(dockerfile.contains("FROM debian:\(codename)-slim"), "the runtime stage runs the same Debian release")
    }
}
