import ArgumentParser
import Compliance
import Foundation
import Models
import RPC
import RPCWire
import RoutePlanner
import ServiceAuth
import Storage
import TransportSecurity

/// The operators' and platform engineers' tool (docs/OPERATIONS.md ("The doorstep tool")).
@main
struct Doorstep: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doorstep", abstract: "Doorstep operator tool.",
        subcommands: [Keygen.self, Token.self, Call.self, Describe.self, Health.self, SolveVRPTW.self, RulePackCommand.self, TLSDev.self, JWKSCommand.self, ImportCommand.self, EventsCommand.self])
}

/// `doorstep keygen --key-file PATH [--kid K] [--jwks-out FILE]`: writes a new Ed25519 signing
/// key (mode 0600) under key id K (recorded in the file; default derived from the key), and
/// with `--jwks-out` its public JWKS; `--data-key` writes an AES-256 data key instead (the accounts service's
/// `--data-key-file`, sealing personal data at rest).
struct Keygen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a new signing key for bearer tokens, or a data key.")

    @Option(help: "Where to write the key. Refuses to overwrite.") var keyFile: String
    @Flag(help: "Write an AES-256 data key (base64) instead of an Ed25519 signing key (PEM).") var dataKey = false
    @Option(help: "Key id (kid) recorded in the key file and put in its tokens: 1-64 of A-Z a-z 0-9 . _ - (default: derived from the key).")
    var kid: String?
    @Option(help: "Also write the key's public JWKS here (`doorstep jwks` for several keys). Refuses to overwrite.") var jwksOut: String?

    func validate() throws {
        if dataKey, kid != nil || jwksOut != nil { throw ValidationError("--kid and --jwks-out are for signing keys, not --data-key") }
        if let kid, !SigningKey.isValidKeyID(kid) { throw ValidationError("--kid must be 1-64 of A-Z a-z 0-9 . _ -") }
        if let jwksOut, FileManager.default.fileExists(atPath: jwksOut) {
            throw ValidationError("JWKS file \(jwksOut) already exists; refusing to overwrite")
        }
    }

    func run() async throws {
        if dataKey {
            guard !FileManager.default.fileExists(atPath: keyFile) else {
                throw ValidationError("data key file \(keyFile) already exists; refusing to overwrite")
            }
            do { _ = try DataCipher.loadKey(path: keyFile, create: true) } catch { throw ValidationError(error.description) }
            print("wrote \(keyFile) (AES-256 data key)")
            return
        }
        let key = try SigningKey.generate(keyID: kid)
        do { try key.write(path: keyFile) } catch { throw ValidationError(error.description) }
        print("wrote \(keyFile) (key id \(key.keyID))")
        if let jwksOut {
            let jwks = try SigningKey.jwks(publicKeysOf: [key])
            guard FileManager.default.createFile(atPath: jwksOut, contents: Data(jwks.utf8)) else {
                throw ValidationError("JWKS file \(jwksOut) cannot be written")
            }
            print("wrote \(jwksOut) (public JWKS of key id \(key.keyID))")
        }
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
    @Option(help: "Key id (kid) in the token's header (default: the key file's own).") var kid: String?

    func validate() throws {
        if let kid, !SigningKey.isValidKeyID(kid) { throw ValidationError("--kid must be 1-64 of A-Z a-z 0-9 . _ -") }
        guard Caller.Role(rawValue: role) != nil else {
            throw ValidationError("--role must be one of \(Caller.Role.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if role == "collector", collector == nil { throw ValidationError("--role collector needs --collector ID") }
        if role == "agency_manager", agency == nil { throw ValidationError("--role agency_manager needs --agency ID") }
        guard (1...31_536_000).contains(lifetimeSeconds) else { throw ValidationError("--lifetime-seconds must be 1...31536000") }
    }

    func run() async throws {
        let key: SigningKey
        do { key = try SigningKey.load(path: keyFile).named(kid) } catch { throw ValidationError(error.description) }
        let caller = Caller(role: Caller.Role(rawValue: role)!, subject: subject, agencyID: agency, collectorID: collector)
        print(try await TokenIssuer(key: key).token(for: caller, lifetime: .seconds(lifetimeSeconds)))
    }
}

/// `doorstep call ADDR Service/Method JSON`: calls any RPC of the contracts with a JSON
/// request (proto3 JSON mapping) and prints the response(s) in the `--output` format (one
/// JSON line per message when standard output is not a terminal). Exit 0 on OK; on an error
/// status, prints `Error: CODE: message` (and any Refusal violations) to stderr, exit 1; a
/// server that cannot be reached is named with the reason; wrong arguments exit 64.
struct Call: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Call an RPC with a JSON request.",
        discussion: """
            METHOD is `package.Service/Method` (e.g. doorstep.accounts.v1.Accounts/GetAccount) or its `:path`; \
            `doorstep describe SERVICE` lists them with their request fields.
            JSON is the request in proto3 JSON ('{}' for an empty one; '-' reads standard input).
            Output: json (one line per message; the default when standard output is not a terminal), \
            pretty (indented; the default on a terminal; coloured keys unless NO_COLOR is set) or table.
            Example: doorstep call 127.0.0.1:50051 doorstep.accounts.v1.Accounts/GetAccount '{"accountId":"acc_…"}' --token "$TOKEN"
            """)

    @Argument(help: "Server address(es), HOST:PORT[,HOST:PORT…].") var address: String
    @Argument(help: "package.Service/Method.") var method: String
    @Argument(help: "The request as JSON, or - for standard input.") var json: String = "{}"
    @Option(help: "Bearer token (`doorstep token`). Env DOORSTEP_TOKEN.") var token: String?
    @Option(help: "Deadline in seconds.") var timeout: Double = 10
    @Option(parsing: .singleValue, help: "Extra metadata NAME=VALUE (repeatable).") var metadata: [String] = []
    @Option(name: [.customShort("o"), .long], help: "Output format (default: pretty on a terminal, json otherwise).")
    var output: OutputFormat?
    @OptionGroup(title: "TLS") var tls: ClientTLSOptions

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
        let targets = GRPCClient.Target.list(address)!
        let clientTLS = try tls.clientTLS()
        let client = GRPCClient(targets: targets, configuration: .tool(targets: targets, tls: clientTLS))
        let result = await client.rawCall(path: path, request: bytes, metadata: headers, timeout: .milliseconds(Int64(timeout * 1000)))
        await client.close()
        var responses: [JSONValue] = []
        for message in result.messages {
            do {
                responses.append(try descriptor.response.init(decoding: message).jsonValue())
            } catch {
                throw Failure.report(["malformed response from the server: \(error)"])
            }
        }
        for line in Render.messages(responses, as: OutputFormat.resolve(output)) { print(line) }
        guard result.status.code == .ok else {
            throw Failure.report(Failure.lines(code: result.status.code, message: result.status.message,
                                               details: result.status.details, targets: targets.map(\.description),
                                               tls: clientTLS != nil))
        }
    }
}

extension GRPCClient.Configuration {
    /// The tool's client: a call to a single address is tried once, so a server that cannot
    /// be reached is reported with the reason its connection failed (a retry would find the
    /// address in backoff and say only that no address answered); a list of replicas keeps
    /// the default attempts, moving on to the next replica.
    static func tool(targets: [GRPCClient.Target], tls: ClientTLS? = nil) -> GRPCClient.Configuration {
        var configuration = GRPCClient.Configuration.defaults
        if targets.count == 1 { configuration.maxAttempts = 1 }
        configuration.tls = tls
        return configuration
    }
}

/// `doorstep health ADDR [--service NAME]`: exit 0 when the server reports SERVING (the
/// container health check), 1 otherwise, printing the status (the bare status name, or the
/// response in the `--output` format).
struct Health: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check a server's grpc.health.v1 status.")

    @Argument(help: "Server address, HOST:PORT.") var address: String
    @Option(help: "Service name; empty = the whole server.") var service: String = ""
    @Option(help: "Deadline in seconds.") var timeout: Double = 3
    @Option(name: [.customShort("o"), .long], help: "Print the response as json, pretty or table (default: the status name alone).")
    var output: OutputFormat?
    @OptionGroup(title: "TLS") var tls: ClientTLSOptions

    func validate() throws {
        guard GRPCClient.Target(address) != nil else { throw ValidationError("'\(address)' is not HOST:PORT") }
        guard timeout > 0, timeout <= 3600 else { throw ValidationError("--timeout must be in (0, 3600]") }
    }

    func run() async throws {
        let targets = [GRPCClient.Target(address)!]
        let clientTLS = try tls.clientTLS()
        let client = GRPCClient(targets: targets, configuration: .tool(targets: targets, tls: clientTLS))
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
            if let output {
                for line in Render.messages([response.jsonValue()], as: output) { print(line) }
            } else {
                print(response.status.protoName ?? "\(response.status)")
            }
            guard response.status == .serving else { throw ExitCode.failure }
        case .failure(let error):
            throw Failure.report(Failure.lines(code: error.code, message: error.message,
                                               details: error.details, targets: targets.map(\.description),
                                               tls: clientTLS != nil))
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
