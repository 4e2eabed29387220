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

@Suite("doorstep solve-vrptw")
struct SolveVRPTWCLITests {
    @Test("solves a Solomon-format file and ends with the summary line; a malformed file names its line")
    func solves() async throws {
        let fixture = repositoryRoot.appendingPathComponent("Tests/RoutePlannerTests/Fixtures/tiny.txt").path
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
