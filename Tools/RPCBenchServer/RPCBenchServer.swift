import ArgumentParser
import Foundation
import Logging
import Models
import RPC
import RPCWire
import ServiceAuth
import ServiceKit
import TransportSecurity

/// The benchmark peer `ext` that `Scripts/bench-rpc.sh` has the benchmark harness start beside
/// the reference servers (docs/OPERATIONS.md ("Benchmarks")): `collection.v1.Accounts/GetAccount`
/// over the same 10,000 deterministic accounts as the reference servers, served through
/// Doorstep's full server path — routing, bearer-token check, metrics, logging at info.
/// With `--tls-cert-file` and `--tls-key-file` the listener speaks TLS (ALPN h2), as a
/// service's does with the same flags; `Scripts/bench-tls.sh` measures it that way.
@main
struct RPCBenchServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rpc-bench-server", abstract: "Serve the benchmark contract through Doorstep's RPC stack.")

    @Option(help: "Port to listen on (127.0.0.1).") var port: Int = 47056
    @Option(help: "Ed25519 key file (`doorstep keygen`) that verifies bearer tokens.") var authKeyFile: String
    @Option(help: "Log level (info adds one access line per call; the reference servers log none).") var logLevel: String = "notice"
    @Option(help: "Serve Prometheus metrics on this port (0 = off).") var metricsPort: Int = 0
    @Option(help: ArgumentHelp("TLS certificate chain (PEM, leaf first); with --tls-key-file the listener speaks TLS (ALPN h2, TLS 1.2+). Default: plaintext.", valueName: "path"))
    var tlsCertFile: String?
    @Option(help: ArgumentHelp("Private key (PEM) of --tls-cert-file.", valueName: "path")) var tlsKeyFile: String?

    func validate() throws {
        switch (tlsCertFile, tlsKeyFile) {
        case (.some, nil): throw ValidationError("--tls-cert-file needs --tls-key-file")
        case (nil, .some): throw ValidationError("--tls-key-file needs --tls-cert-file")
        default: break
        }
    }

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("unknown --log-level \(logLevel)") }
        LogSetup.bootstrap(level: level)
        let logger = Logger(label: "rpc-bench-server")
        let registry = MetricsEndpoint.bootstrap()
        let key: SigningKey
        do { key = try SigningKey.load(path: authKeyFile) } catch { throw ValidationError(error.description) }
        let verifier = try await TokenVerifier(key: key)
        var tls: ServerTLS?
        if let tlsCertFile, let tlsKeyFile {
            // A bad file is one line on standard error, not the usage text: the arguments were right.
            do {
                tls = try ServerTLS(files: .init(certificateFile: tlsCertFile, keyFile: tlsKeyFile))
            } catch {
                FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
                throw ExitCode.failure
            }
        }

        let accounts = BenchAccounts.make()
        var definition = ServiceDefinition()
        definition.unary(CollectionV1.AccountsService.getAccount) { request, _ in
            guard let account = accounts[request.accountId] else {
                throw RPCError.notFound("account \(request.accountId) not found")
            }
            return account
        }
        var configuration = GRPCServer.Configuration()
        configuration.port = port
        configuration.tls = tls
        let server = GRPCServer(configuration: configuration, services: definition, authenticator: verifier, logger: logger)
        let address = try await server.start()
        // On stdout whatever the log level: scripts wait for it and read the port.
        FileHandle.standardOutput.write(Data("rpc-bench-server serving gRPC address=\(address) tls=\(tls == nil ? "off" : "on")\n".utf8))
        if metricsPort > 0 {
            _ = try await MetricsEndpoint.serve(registry: registry, host: "127.0.0.1", port: metricsPort)
        }
        try await Task.sleep(for: .seconds(86_400 * 365))
    }
}

/// The reference servers' data, value for value (ids `acc-000000`…`acc-009999`, the same
/// names, amounts, days past due, tags, masked phones and regions), so every peer of the
/// benchmark serves the same data.
enum BenchAccounts {
    static let regions = ["north", "south", "east", "west"]

    static func make() -> [String: CollectionV1.Account] {
        var accounts: [String: CollectionV1.Account] = [:]
        accounts.reserveCapacity(10_000)
        for i in 0..<10_000 {
            let id = "acc-" + pad(i, 6)
            accounts[id] = CollectionV1.Account(
                id: id,
                debtorName: "Debtor \(i)",
                overdueAmountCents: Int64((i * 1237) % 5_000_000 + 100),
                daysPastDue: Int32(i % 365),
                tags: ["collections", i % 2 == 0 ? "priority" : "standard", "bucket-\(i % 7)"],
                phoneMasked: "+1-***-***-" + pad(i, 4),
                region: regions[i % 4])
        }
        return accounts
    }

    static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
