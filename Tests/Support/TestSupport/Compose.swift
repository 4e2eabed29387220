import Foundation

/// docker-compose.yml, read through PyYAML as JSON (no Docker engine runs here).
public struct ComposeFile: Decodable, Sendable {
    public struct Service: Decodable, Sendable {
        public struct Healthcheck: Decodable, Sendable { public var test: [String] }
        public struct Dependency: Decodable, Sendable { public var condition: String }
        public var command: [String]
        public var environment: [String: String]
        public var ports: [String]
        public var volumes: [String]
        public var healthcheck: Healthcheck
        public var depends_on: [String: Dependency]?
        public var read_only: Bool?
        public var stop_grace_period: String?
    }
    public var services: [String: Service]
    public var volumes: [String: String?]

    /// The services in an order that starts every dependency first (compose's `depends_on`).
    public func startOrder() -> [String] {
        var order: [String] = []
        func visit(_ name: String, _ path: Set<String>) {
            guard !order.contains(name), !path.contains(name) else { return }
            for dependency in (services[name]?.depends_on ?? [:]).keys.sorted() { visit(dependency, path.union([name])) }
            order.append(name)
        }
        for name in services.keys.sorted() { visit(name, []) }
        return order
    }

    /// The same file with services renamed (`old → new`): the service keys, their
    /// `depends_on` and the hosts of the peer addresses (`*_ADDR`, e.g. `accounts:50051`).
    /// Commands are kept, so a renamed service runs the same product.
    public func renamingServices(_ names: [String: String]) -> ComposeFile {
        func renamed(_ name: String) -> String { names[name] ?? name }
        var file = self
        file.services = [:]
        for (name, var service) in services {
            service.depends_on = service.depends_on.map { Dictionary(uniqueKeysWithValues: $0.map { (renamed($0.key), $0.value) }) }
            for (variable, value) in service.environment where variable.hasSuffix("_ADDR") {
                service.environment[variable] = value.split(separator: ",").map { target -> String in
                    let parts = target.split(separator: ":", maxSplits: 1).map(String.init)
                    return ([renamed(parts[0])] + parts.dropFirst()).joined(separator: ":")
                }.joined(separator: ",")
            }
            file.services[renamed(name)] = service
        }
        return file
    }
}

public struct ComposeParseError: Error, CustomStringConvertible {
    public let output: String
    public var description: String { "docker-compose.yml does not parse as YAML: \(output)" }
}

/// A compose file of the repository as JSON (PyYAML resolves anchors and merge keys).
private func composeJSON(_ file: String = "docker-compose.yml") throws -> Data {
    let result = try runProcess("python3", [
        "-c", "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        repositoryRoot.appendingPathComponent(file).path,
    ])
    guard result.status == 0 else { throw ComposeParseError(output: result.output) }
    return Data(result.output.utf8)
}

/// A compose file as `docker-compose config` resolves it: variables interpolated, anchors
/// and merge keys applied, relative paths made absolute, every option in its long form.
/// Optional where a service may leave an option out (the postgres service has no command).
public struct ConfiguredCompose: Decodable, Sendable {
    public struct Service: Decodable, Sendable {
        public struct Healthcheck: Decodable, Sendable { public var test: [String] }
        public struct Dependency: Decodable, Sendable { public var condition: String }
        public struct Deploy: Decodable, Sendable { public var replicas: Int? }
        /// A published port (`published` is the host side; absent for an ephemeral one).
        public struct Port: Decodable, Sendable {
            public var published: Int?
            public var target: Int
        }
        public var image: String?
        public var command: [String]?
        public var environment: [String: String]?
        public var expose: [String]?
        public var ports: [Port]?
        /// `SOURCE:TARGET[:MODE]` (a bind mount's source is absolute, a named volume's is its
        /// name) or just `TARGET` (an anonymous volume, one per container).
        public var volumes: [String]?
        public var tmpfs: [String]?
        public var healthcheck: Healthcheck?
        public var depends_on: [String: Dependency]?
        public var deploy: Deploy?
        public var read_only: Bool?
    }
    public var services: [String: Service]
    public var volumes: [String: [String: String]]?
}

/// `docker-compose --project-directory <repository> --file F... config`, with `environment`
/// added to (and `unset` removed from) this process's environment, parsed; or the status and
/// the client's complaint when it refuses the files.
public func configuredCompose(_ files: [String], environment: [String: String] = [:], unset: [String] = [])
    async throws -> (status: Int32, output: String, compose: ConfiguredCompose?)
{
    // Only the client's stdout is YAML (warnings go to stderr), so both are read apart here.
    let script = """
        import json, subprocess, sys, yaml
        result = subprocess.run(["docker-compose"] + sys.argv[1:] + ["config"], capture_output=True, text=True)
        if result.returncode != 0:
            sys.stdout.write(result.stderr + result.stdout)
            sys.exit(result.returncode)
        json.dump(yaml.safe_load(result.stdout), sys.stdout)
        """
    let arguments = unset.flatMap { ["-u", $0] } + environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        + ["python3", "-c", script, "--project-directory", repositoryRoot.path] + files.flatMap { ["--file", $0] }
    let result = try await runProcessDetached("env", arguments)
    guard result.status == 0 else { return (result.status, result.output, nil) }
    return (0, result.output, try JSONDecoder().decode(ConfiguredCompose.self, from: Data(result.output.utf8)))
}

/// The repository's docker-compose.yml.
public func loadCompose() throws -> ComposeFile {
    try JSONDecoder().decode(ComposeFile.self, from: composeJSON())
}

/// docker-compose.yml with an override file of the repository applied as compose merges it
/// (`-f docker-compose.yml -f OVERRIDE`): environment entries merged, volumes appended, a
/// health check replaced. Only those keys may be overridden here.
public func loadCompose(override file: String) throws -> ComposeFile {
    struct Override: Decodable {
        struct Service: Decodable {
            var environment: [String: String]?
            var volumes: [String]?
            var healthcheck: ComposeFile.Service.Healthcheck?
        }
        var services: [String: Service]
    }
    var compose = try loadCompose()
    let override = try JSONDecoder().decode(Override.self, from: composeJSON(file))
    for (name, changes) in override.services {
        guard var service = compose.services[name] else { throw ComposeParseError(output: "\(file): unknown service \(name)") }
        service.environment.merge(changes.environment ?? [:]) { _, new in new }
        service.volumes += changes.volumes ?? []
        if let healthcheck = changes.healthcheck { service.healthcheck = healthcheck }
        compose.services[name] = service
    }
    return compose
}

/// docker-compose.yml as a dictionary, every key kept.
public func loadComposeDictionary() throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: composeJSON()) as? [String: Any] ?? [:]
}

/// How the compose suite runs the system docker-compose.yml describes.
public enum ComposeRunner: Sendable, Equatable {
    /// The built executables as processes on loopback (always possible; see `ComposeCluster`).
    case processes
    /// `docker compose` against a Docker engine: the image is built from the Dockerfile and
    /// the containers started with `up --wait` (the compose health checks).
    case engine

    /// `DOORSTEP_COMPOSE_RUNNER=processes|engine` chooses; unset, the engine is used when one
    /// answers `docker info` and the compose v2 plugin is installed (`up --wait` is v2's),
    /// processes otherwise.
    public static func detect(environment: [String: String] = ProcessInfo.processInfo.environment) -> ComposeRunner {
        switch environment["DOORSTEP_COMPOSE_RUNNER"] {
        case "processes": return .processes
        case "engine": return .engine
        default:
            let engine = (try? runProcess("docker", ["info", "--format", "{{.ServerVersion}}"]))?.status == 0
            let plugin = (try? runProcess("docker", ["compose", "version"]))?.status == 0
            return engine && plugin ? .engine : .processes
        }
    }
}

/// docker-compose.yml as a test project runs it on an engine: the same services, commands,
/// environment, health checks and dependencies, with only what would collide with the
/// machine changed — published ports become ephemeral ports on 127.0.0.1 (read back with
/// `docker compose port`), the `./keys` mount becomes the test's keys directory, and the
/// build context is the repository. `raw` is the parsed file (anchors resolved).
public func engineComposeFile(_ raw: [String: Any], keysDirectory: String, repository: String) -> [String: Any] {
    var file = raw
    var services = raw["services"] as? [String: Any] ?? [:]
    for (name, value) in services {
        guard var service = value as? [String: Any] else { continue }
        if let ports = service["ports"] as? [String] {
            service["ports"] = ports.map { mapping -> String in
                let container = mapping.split(separator: ":").last.map(String.init) ?? mapping
                return "127.0.0.1::\(container)"
            }
        }
        if let volumes = service["volumes"] as? [String] {
            service["volumes"] = volumes.map { volume in
                volume.hasPrefix("./keys:") ? keysDirectory + volume.dropFirst("./keys".count) : volume
            }
        }
        if var build = service["build"] as? [String: Any] {
            let context = build["context"] as? String ?? "."
            build["context"] = context == "." ? repository : context
            service["build"] = build
        }
        services[name] = service
    }
    file["services"] = services
    return file
}

/// The system docker-compose.yml describes, running for a test.
///
/// With `ComposeRunner.processes` (the default where no Docker engine runs): each
/// service's `command` is run with its compose `environment`, started in `depends_on` order
/// and waited for with its compose health check. Only what cannot hold outside a container
/// is rewritten: listen addresses become 127.0.0.1:0 (the bound port is read back), `/data`
/// becomes a temporary directory per service, `/keys/*` files are generated with
/// `doorstep keygen`, and peer addresses (`accounts:50051`) become the bound addresses of the
/// peers started before.
///
/// With `ComposeRunner.engine`: `docker compose up --build --wait` on `engineComposeFile`,
/// as a project of its own, and `down --volumes` at the end. The same tests run either way.
public final class ComposeCluster: @unchecked Sendable {
    public let compose: ComposeFile
    public let runner: ComposeRunner
    public let directory: URL
    public let keysDirectory: URL
    public private(set) var services: [String: RunningService] = [:]
    public private(set) var order: [String] = []
    /// Engine mode: the project name, the generated file and the published addresses.
    private var project = ""
    private var engineFile = ""
    private var published: [String: String] = [:]

    /// Starts the services of `compose` (default: the repository's docker-compose.yml), or
    /// `only` those. A file other than the repository's runs as processes only.
    public init(only: Set<String>? = nil, runner: ComposeRunner = .detect(), compose: ComposeFile? = nil) async throws {
        self.compose = try compose ?? loadCompose()
        let runner = compose == nil ? runner : .processes
        self.runner = runner
        directory = try makeTemporaryDirectory()
        keysDirectory = directory.appendingPathComponent("keys")
        try FileManager.default.createDirectory(at: keysDirectory, withIntermediateDirectories: true)
        let names = self.compose.startOrder().filter { only?.contains($0) ?? true }
        switch runner {
        case .processes:
            for name in names { try await start(name) }
        case .engine:
            try await up(names)
        }
    }

    /// The address a service was reached at, e.g. for a client.
    public func address(_ name: String) -> String {
        runner == .engine ? published[name]! : services[name]!.address
    }

    /// Starts one compose service as a process (its dependencies must already run).
    public func start(_ name: String) async throws {
        let service = compose.services[name]!
        let dataDirectory = directory.appendingPathComponent(name)
        var environment: [String: String] = [:]
        for (variable, value) in service.environment {
            environment[variable] = try rewrite(variable, value, dataDirectory: dataDirectory)
        }
        let product = service.command[0]
        let running = try await RunningService(product, Array(service.command.dropFirst()), environment: environment)
        // The compose health check, pointed at the bound port (and the certificates' directory).
        let probe = try service.healthcheck.test.drop { $0 == "CMD" || $0 == "CMD-SHELL" }.map {
            $0.hasPrefix("127.0.0.1:") ? running.address : $0.hasPrefix("/tls/") ? try tlsFile($0) : $0
        }
        var healthy = false
        for _ in 0..<50 {
            let result = try await runProduct(probe[0], Array(probe.dropFirst()))
            if result.status == 0 { healthy = true; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        guard healthy else { throw ServiceStartFailed(name: name, status: -1, output: "health check never passed") }
        services[name] = running
        order.append(name)
    }

    private func rewrite(_ variable: String, _ value: String, dataDirectory: URL) throws -> String {
        if variable == "DOORSTEP_LISTEN" || variable == "DOORSTEP_METRICS_LISTEN" { return "127.0.0.1:0" }
        if variable.hasSuffix("_ADDR") {
            return value.split(separator: ",").map { target -> String in
                let host = String(target.split(separator: ":").first ?? "")
                return services[host]?.address ?? String(target)
            }.joined(separator: ",")
        }
        if value.hasPrefix("/keys/") {
            return try key(String(value.dropFirst("/keys/".count)), data: variable == "DOORSTEP_DATA_KEY_FILE")
        }
        if value.hasPrefix("/tls/") { return try tlsFile(value) }
        return value.replacingOccurrences(of: "/data", with: dataDirectory.path)
    }

    /// A file of the mounted ./tls (`/tls/NAME`): the certificates `doorstep tls-dev` writes,
    /// made on first use in the cluster's directory.
    private func tlsFile(_ mounted: String) throws -> String {
        let directory = self.directory.appendingPathComponent("tls")
        if !FileManager.default.fileExists(atPath: directory.appendingPathComponent("ca.pem").path) {
            let result = try runProcess(productsDirectory.appendingPathComponent("doorstep").path, ["tls-dev", directory.path])
            guard result.status == 0 else { throw ServiceStartFailed(name: "doorstep tls-dev", status: result.status, output: result.output) }
        }
        return directory.appendingPathComponent(String(mounted.dropFirst("/tls/".count))).path
    }

    /// The key file `name` in the keys directory, generated on first use; readable by the
    /// image's non-root user when mounted into a container.
    @discardableResult
    private func key(_ name: String, data: Bool) throws -> String {
        let path = keysDirectory.appendingPathComponent(name).path
        if !FileManager.default.fileExists(atPath: path) {
            let arguments = data ? ["keygen", "--data-key", "--key-file", path] : ["keygen", "--key-file", path]
            _ = try runProcess(productsDirectory.appendingPathComponent("doorstep").path, arguments)
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        }
        return path
    }

    // MARK: Engine

    private func dockerCompose(_ arguments: [String]) throws -> ProcessResult {
        try runProcess("docker", ["compose", "--project-name", project, "--file", engineFile] + arguments)
    }

    private func up(_ names: [String]) async throws {
        project = "doorstep-test-\(UUID().uuidString.prefix(8).lowercased())"
        for (variable, value) in compose.services.values.flatMap(\.environment) where value.hasPrefix("/keys/") {
            try key(String(value.dropFirst("/keys/".count)), data: variable == "DOORSTEP_DATA_KEY_FILE")
        }
        let file = engineComposeFile(try loadComposeDictionary(), keysDirectory: keysDirectory.path, repository: repositoryRoot.path)
        engineFile = directory.appendingPathComponent("compose.json").path
        try JSONSerialization.data(withJSONObject: file, options: [.sortedKeys]).write(to: URL(fileURLWithPath: engineFile))
        let result = try await Task.detached { try self.dockerCompose(["up", "--detach", "--build", "--wait"] + names) }.value
        guard result.status == 0 else {
            _ = try? dockerCompose(["down", "--volumes"])
            throw ServiceStartFailed(name: names.joined(separator: ","), status: result.status, output: result.output)
        }
        for name in names {
            let port = compose.services[name]!.environment["DOORSTEP_LISTEN"].flatMap { $0.split(separator: ":").last }.map(String.init) ?? ""
            let mapped = try dockerCompose(["port", name, port]).output.trimmingCharacters(in: .whitespacesAndNewlines)
            published[name] = mapped
            order.append(name)
        }
    }

    /// A bearer token signed with the cluster's auth key.
    public func token(_ arguments: [String]) throws -> String {
        let result = try runProcess(productsDirectory.appendingPathComponent("doorstep").path,
                                    ["token", "--key-file", keysDirectory.appendingPathComponent("auth.key").path] + arguments)
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Stops every service, dependents first (SIGTERM); returns each exit. On an engine the
    /// project is then removed with its volumes.
    public func stopAll() async -> [(name: String, status: Int32, stderr: String)] {
        var results: [(name: String, status: Int32, stderr: String)] = []
        if runner == .engine {
            for name in order.reversed() {
                let stop = try? dockerCompose(["stop", "--timeout", "40", name])
                let code = (try? dockerCompose(["ps", "--all", "--format", "{{.ExitCode}}", name]))?.output
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                let logs = (try? dockerCompose(["logs", "--no-color", name]))?.output ?? ""
                results.append((name, stop?.status == 0 ? Int32(code ?? "") ?? -1 : -1, String(logs.suffix(4000))))
            }
            _ = try? dockerCompose(["down", "--volumes"])
            return results
        }
        for name in order.reversed() {
            if let service = services[name] {
                let stop = await service.stop()
                results.append((name, stop.status, stop.stderr))
            }
        }
        return results
    }
}
