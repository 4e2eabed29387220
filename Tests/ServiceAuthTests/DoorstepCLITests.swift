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

    @Test("bad input is refused with a one-line reason", arguments: [
        ["token", "--role", "boss", "--key-file", "/nonexistent"],
        ["token", "--role", "collector", "--key-file", "/nonexistent"],
        ["token", "--role", "platform", "--key-file", "/nonexistent/key"],
    ])
    func refusals(arguments: [String]) async throws {
        let result = try await runProduct("doorstep", arguments)
        #expect(result.status != 0)
        #expect(result.output.contains("Error:"), "\(result.output)")
    }
}
