import ArgumentParser
import ServiceAuth

/// `doorstep jwks KEYFILE...`: prints the public JWKS of signing key files, each key under its
/// key id — the `--auth-jwks-file` of every service (docs/OPERATIONS.md, "Keys, rotation and
/// the identity provider").
struct JWKSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jwks", abstract: "Print the public JWKS of signing key files (for --auth-jwks-file).",
        discussion: "Example, while moving from key k1 to k2: doorstep jwks k1.key k2.key > jwks.json.tmp && mv jwks.json.tmp jwks.json")

    @Argument(help: "Signing key files (`doorstep keygen`).") var keyFiles: [String]

    func validate() throws {
        guard !keyFiles.isEmpty else { throw ValidationError("name at least one signing key file") }
    }

    func run() async throws {
        var keys: [SigningKey] = []
        for file in keyFiles {
            do { keys.append(try SigningKey.load(path: file)) } catch { throw ValidationError(error.description) }
        }
        do { print(try SigningKey.jwks(publicKeysOf: keys), terminator: "") } catch { throw ValidationError(error.description) }
    }
}
