import Foundation
import RPC
import RPCWire
import ServiceAuth
import TestSupport
import Testing

@Suite("doorstep keygen / token")
struct DoorstepCLITests {
    @Test("a key written by keygen signs tokens the services accept, with the role asked for")
    func keygenAndToken() async throws {
        let path = temporaryPath("cli.key")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let keygen = try await runProduct("doorstep", ["keygen", "--key-file", path])
        #expect(keygen.status == 0, "\(keygen.output)")
        let again = try await runProduct("doorstep", ["keygen", "--key-file", path])
        #expect(again.status != 0 && again.output.contains("already exists"), "\(again.output)")

        let token = try await runProduct("doorstep", ["token", "--role", "agency_manager", "--agency", "agy_7",
                                                      "--subject", "mgr", "--key-file", path])
        #expect(token.status == 0, "\(token.output)")
        let verifier = try await TokenVerifier(key: try SigningKey.load(path: path))
        let caller = try verifier.authenticate(bearer(token.output.trimmingCharacters(in: .whitespacesAndNewlines))).caller
        #expect(caller == Caller(role: .agencyManager, subject: "mgr", agencyID: "agy_7"))
    }

    @Test("keygen --kid records the key id, jwks publishes the keys under it, and tokens name it")
    func keyIDsAndJWKS() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        let first = try await runProduct("doorstep", ["keygen", "--key-file", path("k1.key"), "--kid", "k1", "--jwks-out", path("k1.json")])
        #expect(first.status == 0 && first.output.contains("wrote \(path("k1.key")) (key id k1)"), "\(first.output)")
        #expect(try KeySet.load(jwksFile: path("k1.json"), describedAs: "JWKS").keyIDs == ["k1"])
        let second = try await runProduct("doorstep", ["keygen", "--key-file", path("k2.key"), "--kid", "k2"])
        #expect(second.status == 0, "\(second.output)")
        let jwks = try await runProduct("doorstep", ["jwks", path("k1.key"), path("k2.key")])
        #expect(jwks.status == 0, "\(jwks.output)")
        try jwks.output.write(toFile: path("jwks.json"), atomically: true, encoding: .utf8)
        let verifier = try TokenVerifier(issuers: [.doorstep(keys: .jwksFile(path("jwks.json"), describedAs: "auth JWKS file"))])
        #expect(verifier.keyIDs == ["doorstep": ["k1", "k2"]])
        for key in ["k1.key", "k2.key"] {
            let token = try await runProduct("doorstep", ["token", "--role", "compliance", "--subject", key, "--key-file", path(key)])
            #expect(token.status == 0, "\(token.output)")
            let caller = try verifier.authenticate(bearer(token.output.trimmingCharacters(in: .whitespacesAndNewlines))).caller
            #expect(caller == Caller(role: .compliance, subject: key))
        }
        let renamed = try await runProduct("doorstep", ["token", "--role", "platform", "--key-file", path("k1.key"), "--kid", "k9"])
        #expect(renamed.status == 0, "\(renamed.output)")
        #expect(throws: RPCError.unauthenticated("bearer token key 'k9' is not a current key of issuer 'doorstep'")) {
            try verifier.authenticate(bearer(renamed.output.trimmingCharacters(in: .whitespacesAndNewlines)))
        }
        for (arguments, reason) in [
            (["jwks", path("k1.key"), path("jwks.json")], "Error: auth key file \(path("jwks.json")) is not an Ed25519 private key"),
            (["jwks", path("k1.key"), path("k1.key")], "Error: key id k1 is used by two keys; a JWKS names each key once"),
            (["keygen", "--key-file", path("k3.key"), "--jwks-out", path("k1.json")], "Error: JWKS file \(path("k1.json")) already exists"),
            (["keygen", "--key-file", path("k3.key"), "--kid", "k 3"], "Error: --kid must be 1-64 of A-Z a-z 0-9 . _ -"),
            (["keygen", "--data-key", "--key-file", path("d.key"), "--kid", "k3"], "Error: --kid and --jwks-out are for signing keys"),
        ] {
            let refused = try await runProduct("doorstep", arguments)
            #expect(refused.status != 0 && refused.output.contains(reason), "\(arguments): \(refused.output)")
        }
        #expect(!FileManager.default.fileExists(atPath: path("k3.key")), "a refused keygen writes nothing")
    }

    /// Each refusal names its own reason: `KEY` stands for a valid key file (made by keygen
    /// for the case), so only the case about the key file fails on the key file.
    @Test("bad input is refused with a one-line reason", arguments: [
        (["token", "--role", "boss", "--key-file", "KEY"],
         "Error: --role must be one of platform, agency_manager, collector, compliance, service"),
        (["token", "--role", "collector", "--agency", "agy_7", "--key-file", "KEY"], "Error: --role collector needs --collector ID"),
        (["token", "--role", "agency_manager", "--key-file", "KEY"], "Error: --role agency_manager needs --agency ID"),
        (["token", "--role", "platform", "--lifetime-seconds", "0", "--key-file", "KEY"],
         "Error: --lifetime-seconds must be 1...31536000"),
        (["token", "--role", "platform", "--key-file", "/nonexistent/key"], "Error: auth key file /nonexistent/key cannot be read"),
        (["token", "--role", "platform", "--key-file", "NOT-A-KEY"],
         "is not an Ed25519 private key in PEM (PKCS#8) form"),
    ])
    func refusals(arguments: [String], expected: String) async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let key = directory.appendingPathComponent("auth.key").path
        let keygen = try await runProduct("doorstep", ["keygen", "--key-file", key])
        try #require(keygen.status == 0, "\(keygen.output)")
        let notAKey = directory.appendingPathComponent("not-a-key.pem").path
        try "not a key\n".write(toFile: notAKey, atomically: true, encoding: .utf8)
        let result = try await runProduct("doorstep", arguments.map { $0 == "KEY" ? key : $0 == "NOT-A-KEY" ? notAKey : $0 })
        #expect(result.status != 0)
        #expect(result.output.contains(expected), "\(result.output)")
        let errorLines = result.output.split(separator: "\n").filter { $0.hasPrefix("Error:") }
        #expect(errorLines.count == 1, "one reason, not several: \(result.output)")
    }
}

@Suite("doorstep solve-vrptw")
struct SolveVRPTWCLITests {
    @Test("solves a Solomon-format file and ends with the summary line; a malformed file names its line")
    func solves() async throws {
        let fixture = repositoryRoot.appendingPathComponent("Tests/Shared/RoutePlannerTests/Fixtures/tiny.txt").path
        let result = try await runProduct("doorstep", ["solve-vrptw", fixture, "--time-limit", "0.5"])
        #expect(result.status == 0, "\(result.output)")
        let last = result.output.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.hasPrefix("distance=") && last.hasSuffix("feasible=true"), "\(result.output)")
        let bad = temporaryPath("bad.txt")
        _ = FileManager.default.createFile(atPath: bad, contents: Data("2 10\n0 0 0 0 0 100 0\n1 x 0 1 0 10 0\n".utf8))
        let refused = try await runProduct("doorstep", ["solve-vrptw", bad])
        #expect(refused.status != 0)
        #expect(refused.output.contains("line 3"), "\(refused.output)")
    }
}
