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
}

public struct ComposeParseError: Error, CustomStringConvertible {
    public let output: String
    public var description: String { "docker-compose.yml does not parse as YAML: \(output)" }
}

/// The repository's docker-compose.yml.
public func loadCompose() throws -> ComposeFile {
    let result = try runProcess("python3", [
        "-c", "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        repositoryRoot.appendingPathComponent("docker-compose.yml").path,
    ])
    guard result.status == 0 else { throw ComposeParseError(output: result.output) }
    return try JSONDecoder().decode(ComposeFile.self, from: Data(result.output.utf8))
}

/// The system docker-compose.yml describes, as real processes on loopback: each service's
/// `command` is run with its compose `environment`, started in `depends_on` order and waited
/// for with its compose health check. Only what cannot hold outside a container is rewritten:
/// listen addresses become 127.0.0.1:0 (the bound port is read back), `/data` becomes a
/// temporary directory per service, `/keys/*` files are generated with `doorstep keygen`, and
/// peer addresses (`accounts:50051`) become the bound addresses of the peers started before.
/// Where a Docker engine exists, the same tests can run against `docker compose up`.
public final class ComposeCluster: @unchecked Sendable {
    public let compose: ComposeFile
    public let directory: URL
    public let keysDirectory: URL
    public private(set) var services: [String: RunningService] = [:]
    public private(set) var order: [String] = []

    public init(only: Set<String>? = nil) async throws {
        compose = try loadCompose()
        directory = try makeTemporaryDirectory()
        keysDirectory = directory.appendingPathComponent("keys")
        try FileManager.default.createDirectory(at: keysDirectory, withIntermediateDirectories: true)
        for name in compose.startOrder() where only?.contains(name) ?? true {
            try await start(name)
        }
    }

    /// The address a service was reached at, e.g. for a client.
    public func address(_ name: String) -> String { services[name]!.address }

    /// Starts one compose service (its dependencies must already run).
    public func start(_ name: String) async throws {
        let service = compose.services[name]!
        let dataDirectory = directory.appendingPathComponent(name)
        var environment: [String: String] = [:]
        for (variable, value) in service.environment {
            environment[variable] = try rewrite(variable, value, dataDirectory: dataDirectory)
        }
        let product = service.command[0]
        let running = try await RunningService(product, Array(service.command.dropFirst()), environment: environment)
        // The compose health check, pointed at the bound port.
        let probe = service.healthcheck.test.drop { $0 == "CMD" || $0 == "CMD-SHELL" }.map {
            $0.hasPrefix("127.0.0.1:") ? running.address : $0
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
            let path = keysDirectory.appendingPathComponent(String(value.dropFirst("/keys/".count))).path
            if !FileManager.default.fileExists(atPath: path) {
                let arguments = variable == "DOORSTEP_DATA_KEY_FILE" ? ["keygen", "--data-key", "--key-file", path] : ["keygen", "--key-file", path]
                _ = try runProcess(productsDirectory.appendingPathComponent("doorstep").path, arguments)
            }
            return path
        }
        return value.replacingOccurrences(of: "/data", with: dataDirectory.path)
    }

    /// A bearer token signed with the cluster's auth key.
    public func token(_ arguments: [String]) throws -> String {
        let result = try runProcess(productsDirectory.appendingPathComponent("doorstep").path,
                                    ["token", "--key-file", keysDirectory.appendingPathComponent("auth.key").path] + arguments)
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Stops every service, dependents first (SIGTERM); returns each exit.
    public func stopAll() async -> [(name: String, status: Int32, stderr: String)] {
        var results: [(name: String, status: Int32, stderr: String)] = []
        for name in order.reversed() {
            if let service = services[name] {
                let stop = await service.stop()
                results.append((name, stop.status, stop.stderr))
            }
        }
        return results
    }
}
