import ArgumentParser
import Foundation
import RPC
import ServiceAuth

/// The operators' and platform engineers' tool (DESIGN.md §6).
@main
struct Doorstep: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doorstep", abstract: "Doorstep operator tool.",
        subcommands: [Keygen.self, Token.self])
}

/// `doorstep keygen --key-file PATH`: writes a new Ed25519 signing key (mode 0600).
struct Keygen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a new signing key for bearer tokens.")

    @Option(help: "Where to write the key (PEM). Refuses to overwrite.") var keyFile: String

    func run() async throws {
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
