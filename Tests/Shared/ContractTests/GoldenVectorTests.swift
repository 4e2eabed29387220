import Foundation
import Models
import TestSupport
import Testing

/// One vector written by Tests/Shared/ContractTests/Golden/make_golden.py.
struct GoldenVector: Decodable {
    var message: String
    var kind: String
    var bin: String
    var json: String
}

/// Golden vectors from the reference implementation (Python `protobuf`, which the test
/// regenerates from proto/ on every run): every message type, rich and empty.
@Suite("Golden vectors against the reference protobuf implementation")
struct GoldenVectorTests {
    static let scripts = repositoryRoot.appendingPathComponent("Tests/Shared/ContractTests/Golden")

    @Test("reference bytes and JSON decode to the same value; our bytes and our JSON parse to the reference value in the reference implementation")
    func goldenVectors() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let generated = try runProcess("python3", [Self.scripts.appendingPathComponent("make_golden.py").path,
                                                   "--out", directory.path])
        try #require(generated.status == 0, "make_golden.py failed (is the Python `protobuf` package installed?):\n\(generated.output)")
        let manifest = try JSONDecoder().decode(
            [GoldenVector].self, from: Data(readFile(directory.appendingPathComponent("manifest.json"))))

        // Every message type has vectors, and every vector has a Swift type.
        #expect(Set(manifest.map(\.message)) == Set(ContractRegistry.messageTypes.keys))
        for vector in manifest {
            guard let type = ContractRegistry.messageTypes[vector.message] else {
                Issue.record("no Swift type for \(vector.message)")
                continue
            }
            let bin = try readFile(directory.appendingPathComponent(vector.bin))
            let json = String(decoding: try readFile(directory.appendingPathComponent(vector.json)), as: UTF8.self)
            let name = "\(vector.message).\(vector.kind)"
            do {
                let ours = try check(type, bin: bin, json: json, name: name)
                try Data(ours.bytes).write(to: directory.appendingPathComponent("\(name).ours.bin"))
                try Data(ours.json.utf8).write(to: directory.appendingPathComponent("\(name).ours.json"))
            } catch {
                Issue.record("\(name): \(error)")
            }
        }

        let verified = try runProcess("python3", [Self.scripts.appendingPathComponent("verify_ours.py").path,
                                                  "--dir", directory.path])
        #expect(verified.status == 0, "\(verified.output)")
        #expect(verified.output.contains("mismatched 0"), "\(verified.output)")
        // Both files of every vector were checked: our bytes and our JSON.
        #expect(verified.output.contains("verified \(2 * manifest.count),"), "\(verified.output)")
    }

    /// Decodes the reference encoding and the reference JSON, checks they agree and that our
    /// encoding and JSON round-trip; returns our encoding and our JSON (which verify_ours.py
    /// parses with the reference implementation).
    func check<M: ProtoMessage>(_: M.Type, bin: [UInt8], json: String, name: String) throws -> (bytes: [UInt8], json: String) {
        let fromBytes = try M(decoding: bin)
        let fromJSON = try M(jsonText: json)
        #expect(fromBytes == fromJSON, "\(name): the reference bytes and the reference JSON decode differently")
        let ours = try fromBytes.encode()
        #expect(try M(decoding: ours) == fromBytes, "\(name): our encoding does not round-trip")
        let ourJSON = fromBytes.jsonText()
        #expect(try M(jsonText: ourJSON) == fromBytes, "\(name): our JSON does not round-trip")
        if bin.isEmpty { #expect(ours.isEmpty, "\(name): the default instance must encode to no bytes") }
        return (ours, ourJSON)
    }
}
