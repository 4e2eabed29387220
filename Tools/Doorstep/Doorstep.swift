import ArgumentParser
import Compliance
import Foundation
import Models
import RPC
import RPCWire
import RoutePlanner
import ServiceAuth
import Storage

/// The operators' and platform engineers' tool (docs/OPERATIONS.md ("The doorstep tool")).
@main
struct Doorstep: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doorstep", abstract: "Doorstep operator tool.",
        subcommands: [Keygen.self, Token.self, Call.self, Health.self, SolveVRPTW.self, RulePackCommand.self])
}

/// `doorstep keygen --key-file PATH`: writes a new Ed25519 signing key (mode 0600);
/// `--data-key` writes an AES-256 data key instead (the accounts service's
/// `--data-key-file`, sealing personal data at rest).
struct Keygen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a new signing key for bearer tokens, or a data key.")

    @Option(help: "Where to write the key. Refuses to overwrite.") var keyFile: String
    @Flag(help: "Write an AES-256 data key (base64) instead of an Ed25519 signing key (PEM).") var dataKey = false

    func run() async throws {
        if dataKey {
            guard !FileManager.default.fileExists(atPath: keyFile) else {
                throw ValidationError("data key file \(keyFile) already exists; refusing to overwrite")
            }
            do { _ = try DataCipher.loadKey(path: keyFile, create: true) } catch { throw ValidationError(error.description) }
            print("wrote \(keyFile) (AES-256 data key)")
            return
        }
        let key = try SigningKey.generate()
        do { try key.write(path: keyFile) } catch { throw ValidationError(error.description) }
        print("wrote \(keyFile) (key id \(key.keyID))")
    }
}

/// `doorstep token --role ROLE [--agency ID] [--collector ID] --key-file PATH`: prints a token.
struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a bearer token for a role.")

    @Option(help: "platform, agency_manager, collector, compliance or service.") var role: String
    @Option(help: "The agency the caller speaks for (agency_manager, collector).") var agency: String?
    @Option(help: "The collector the caller is (collector).") var collector: String?
    @Option(help: "The token's subject.") var subject: String = "doorstep-cli"
    @Option(help: "Lifetime in seconds.") var lifetimeSeconds: Int = 3600
    @Option(help: "Signing key file (`doorstep keygen`).") var keyFile: String

    func validate() throws {
        guard Caller.Role(rawValue: role) != nil else {
            throw ValidationError("--role must be one of \(Caller.Role.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if role == "collector", collector == nil { throw ValidationError("--role collector needs --collector ID") }
        if role == "agency_manager", agency == nil { throw ValidationError("--role agency_manager needs --agency ID") }
        guard (1...31_536_000).contains(lifetimeSeconds) else { throw ValidationError("--lifetime-seconds must be 1...31536000") }
    }

    func run() async throws {
        let key: SigningKey
        do { key = try SigningKey.load(path: keyFile) } catch { throw ValidationError(error.description) }
        let caller = Caller(role: Caller.Role(rawValue: role)!, subject: subject, agencyID: agency, collectorID: collector)
        print(try await TokenIssuer(key: key).token(for: caller, lifetime: .seconds(lifetimeSeconds)))
    }
}

/// `doorstep call ADDR Service/Method JSON`: calls any RPC of the contracts with a JSON
/// request (proto3 JSON mapping) and prints the response(s) as JSON. Exit 0 on OK; on an
/// error status, prints `CODE: message` (and any Refusal violations) to stderr, exit 1.
struct Call: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Call an RPC with a JSON request.",
        discussion: """
            METHOD is `package.Service/Method` (e.g. doorstep.accounts.v1.Accounts/GetAccount) or its `:path`.
            JSON is the request in proto3 JSON ('{}' for an empty one; '-' reads standard input).
            Example: doorstep call 127.0.0.1:50051 doorstep.accounts.v1.Accounts/GetAccount '{"accountId":"acc_…"}' --token "$TOKEN"
            """)

    @Argument(help: "Server address(es), HOST:PORT[,HOST:PORT…].") var address: String
    @Argument(help: "package.Service/Method.") var method: String
    @Argument(help: "The request as JSON, or - for standard input.") var json: String = "{}"
    @Option(help: "Bearer token (`doorstep token`). Env DOORSTEP_TOKEN.") var token: String?
    @Option(help: "Deadline in seconds.") var timeout: Double = 10
    @Option(parsing: .singleValue, help: "Extra metadata NAME=VALUE (repeatable).") var metadata: [String] = []

    func validate() throws {
        guard GRPCClient.Target.list(address) != nil else { throw ValidationError("'\(address)' is not HOST:PORT") }
        guard timeout > 0, timeout <= 3600 else { throw ValidationError("--timeout must be in (0, 3600]") }
        for entry in metadata where !entry.contains("=") { throw ValidationError("--metadata '\(entry)' is not NAME=VALUE") }
    }

    func run() async throws {
        let path = method.hasPrefix("/") ? method : "/" + method
        guard let descriptor = ContractRegistry.methods[path] else {
            let known = ContractRegistry.methods.keys.filter { $0.hasPrefix(path.split(separator: "/").first.map { "/\($0)/" } ?? "/") }.sorted()
            throw ValidationError("unknown method \(path)" + (known.isEmpty ? "" : "; known: " + known.joined(separator: ", ")))
        }
        let text = json == "-" ? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) : json
        let request: any ProtoMessage
        let bytes: [UInt8]
        do {
            request = try descriptor.request.init(jsonText: text)
            bytes = try request.encode()
        } catch {
            throw ValidationError("request: \(error)")
        }
        var headers = Metadata()
        if let token = token ?? ProcessInfo.processInfo.environment["DOORSTEP_TOKEN"], !token.isEmpty {
            headers.add("authorization", "Bearer \(token)")
        }
        for entry in metadata {
            let parts = entry.split(separator: "=", maxSplits: 1)
            headers.add(String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
        }
        let client = GRPCClient(targets: GRPCClient.Target.list(address)!)
        let result = await client.rawCall(path: path, request: bytes, metadata: headers, timeout: .milliseconds(Int64(timeout * 1000)))
        await client.close()
        for message in result.messages {
            do {
                print(try descriptor.response.init(decoding: message).jsonText())
            } catch {
                throw CallFailed(description: "malformed response from the server: \(error)")
            }
        }
        guard result.status.code == .ok else {
            var description = "\(result.status.code): \(result.status.message)"
            if let details = result.status.details, let status = try? TypeV1.RpcStatus(decoding: details) {
                for detail in status.details where detail.typeUrl.hasSuffix("doorstep.type.v1.Refusal") {
                    if let refusal = try? TypeV1.Refusal(decoding: detail.value) {
                        for violation in refusal.violations {
                            description += "\n  \(violation.ruleId.isEmpty ? violation.field : violation.ruleId): \(violation.detail)"
                        }
                    }
                }
            }
            throw CallFailed(description: description)
        }
    }
}

/// An RPC that ended with an error status (printed as `Error: CODE: message`, exit 1).
struct CallFailed: Error, CustomStringConvertible {
    let description: String
}

/// `doorstep health ADDR [--service NAME]`: exit 0 when the server reports SERVING (the
/// container health check), 1 otherwise, printing the status.
struct Health: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check a server's grpc.health.v1 status.")

    @Argument(help: "Server address, HOST:PORT.") var address: String
    @Option(help: "Service name; empty = the whole server.") var service: String = ""
    @Option(help: "Deadline in seconds.") var timeout: Double = 3

    func validate() throws {
        guard GRPCClient.Target(address) != nil else { throw ValidationError("'\(address)' is not HOST:PORT") }
        guard timeout > 0, timeout <= 3600 else { throw ValidationError("--timeout must be in (0, 3600]") }
    }

    func run() async throws {
        let client = GRPCClient(targets: [GRPCClient.Target(address)!])
        let result: Result<HealthV1.HealthCheckResponse, RPCError>
        do {
            result = .success(try await client.unary(
                HealthV1.HealthService.check, HealthV1.HealthCheckRequest(service: service),
                timeout: .milliseconds(Int64(timeout * 1000))))
        } catch {
            result = .failure(error)
        }
        await client.close()
        switch result {
        case .success(let response):
            print(response.status.protoName ?? "\(response.status)")
            guard response.status == .serving else { throw ExitCode.failure }
        case .failure(let error):
            throw CallFailed(description: "\(error)")
        }
    }
}

/// `doorstep solve-vrptw FILE --time-limit SECONDS`: solves a VRPTW instance in the Solomon text
/// format (first line `N CAPACITY`, then `id x y demand ready due service` per node, row 0 the
/// depot) with the day planner's solver, prints each route, and as the last line
/// `distance=<total> vehicles=<routes> feasible=<true|false>`.
struct SolveVRPTW: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "solve-vrptw", abstract: "Solve a Solomon-format VRPTW instance.")

    @Argument(help: "The instance file.") var file: String
    @Option(help: "Search time in seconds.") var timeLimit: Double = 10
    @Option(help: "Random seed (results repeat for a seed when the time limit is not what stops the search).") var seed: UInt64 = 1

    func validate() throws {
        guard timeLimit > 0, timeLimit <= 86_400 else { throw ValidationError("--time-limit must be in (0, 86400]") }
    }

    func run() async throws {
        guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
        let problem: VRPTWProblem
        do { problem = try SolomonFormat.parse(String(decoding: data, as: UTF8.self)) } catch {
            throw ValidationError("\(file): \(error)")
        }
        let solution = VRPTWSolver.solve(problem, timeLimit: .milliseconds(Int64(timeLimit * 1000)), seed: seed)
        let violations = solution.verify(problem)
        for route in solution.routes {
            print("route vehicle=\(route.vehicle) distance=\(String(format: "%.2f", route.distance)): \(route.nodes.map(String.init).joined(separator: " "))")
        }
        for missing in solution.unassigned { print("unassigned \(missing.node): \(missing.reason)") }
        let feasible = violations.isEmpty && solution.unassigned.isEmpty
        print("distance=\(String(format: "%.2f", solution.totalDistance)) vehicles=\(solution.vehiclesUsed) feasible=\(feasible)")
    }
}

/// `doorstep rule-pack show ID|PATH` prints a pack as the JSON file the services load (a
/// starting point for a market's own pack); `doorstep rule-pack check PATH` validates a file
/// the way the services do at start.
struct RulePackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rule-pack", abstract: "Show or check a compliance rule pack file.",
        subcommands: [Show.self, Check.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a built-in pack (cn-2026, us-regf, uk-conc) or a pack file as JSON.")
        @Argument(help: "A built-in pack id or a path to a pack file.") var pack: String
        func run() async throws {
            let loaded: RulePack
            do { loaded = try RulePacks.resolve(pack) } catch { throw ValidationError(error.description) }
            print(String(decoding: try loaded.jsonData(), as: UTF8.self))
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate a pack file; prints its id and version.")
        @Argument(help: "Path to a pack file.") var file: String
        func run() async throws {
            let loaded: RulePack
            do { loaded = try RulePack.load(path: file) } catch { throw ValidationError(error.description) }
            print("ok \(loaded.id) \(loaded.version): \(loaded.rules.count) rules")
        }
    }
}
