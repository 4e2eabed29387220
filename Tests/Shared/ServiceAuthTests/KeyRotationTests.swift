import Foundation
import Logging
import Models
import NIOConcurrencyHelpers
import RPC
import RPCWire
import ServiceAuth
import TestSupport
import Testing

/// Writes a JWKS of `keys` the way an operator should: a new file renamed over the old one,
/// so a reload never reads half a file.
func publish(_ keys: [SigningKey], to path: String) throws {
    let temporary = path + ".tmp"
    try SigningKey.jwks(publicKeysOf: keys).write(toFile: temporary, atomically: false, encoding: .utf8)
    try renameOver(temporary, path)
}

/// rename(2): replaces `destination` in one step.
func renameOver(_ source: String, _ destination: String) throws {
    guard rename(source, destination) == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: destination]) }
}

/// A server with one method (Echo, for platform callers) behind `verifier`.
func echoServer(_ verifier: TokenVerifier) async throws -> (server: GRPCServer, target: GRPCClient.Target) {
    var definition = ServiceDefinition()
    definition.unary(TestingV1.TestService.echo, roles: [.platform, .service]) { request, _ in request }
    var logger = Logger(label: "test")
    logger.logLevel = .warning
    let server = GRPCServer(services: definition, authenticator: verifier, logger: logger)
    let address = try await server.start()
    return (server, GRPCClient.Target(host: "127.0.0.1", port: address.port!))
}

/// Calls Echo with `token`; the status code (ok or the error's).
func echo(_ client: GRPCClient, _ token: String) async -> StatusCode? {
    do {
        _ = try await client.unary(TestingV1.TestService.echo, .init(fInt32: 1), metadata: bearer(token), timeout: .seconds(5))
        return nil
    } catch {
        return error.code
    }
}

@Suite("Key rotation", .serialized)
struct KeyRotationTests {
    @Test("JWKS {k1} → {k1,k2} → {k2} under continuous calls over HTTP/2: no call with a live key's token fails, k1's is refused once removed",
          .timeLimit(.minutes(2)))
    func rotationUnderLoad() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let jwks = directory.appendingPathComponent("jwks.json").path
        let k1 = try SigningKey.generate(keyID: "k1")
        let k2 = try SigningKey.generate(keyID: "k2")
        try publish([k1], to: jwks)
        let verifier = try TokenVerifier(issuers: [.doorstep(keys: .jwksFile(jwks, describedAs: "auth JWKS file"))])
        let (server, target) = try await echoServer(verifier)
        let t1 = try await TokenIssuer(key: k1).token(for: Caller(role: .platform, subject: "k1"))
        let t2 = try await TokenIssuer(key: k2).token(for: Caller(role: .platform, subject: "k2"))

        /// The tokens callers pick from now; calls done per caller; failures (token's key, code).
        let live = NIOLockedValueBox([t1])
        let done = NIOLockedValueBox([Int](repeating: 0, count: 4))
        let accepted = NIOLockedValueBox([String: Int]())
        let failures = NIOLockedValueBox([String]())
        let stop = NIOLockedValueBox(false)
        /// Waits until every caller finished `calls` more calls (so each has finished the call it
        /// had in flight when this was asked).
        func settle(calls: Int = 20) async throws {
            let start = done.withLockedValue { $0 }
            while zip(done.withLockedValue { $0 }, start).contains(where: { $0 - $1 < calls }) {
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        // One connection that presents k1's token before its removal, for the check after it.
        let veteran = GRPCClient(targets: [target])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for caller in 0..<4 {
                group.addTask {
                    let client = GRPCClient(targets: [target])
                    while !stop.withLockedValue({ $0 }) {
                        let token = live.withLockedValue { $0.randomElement()! }
                        let name = token == t1 ? "k1" : "k2"
                        if let code = await echo(client, token) {
                            failures.withLockedValue { $0.append("\(name): \(code)") }
                        } else {
                            accepted.withLockedValue { $0[name, default: 0] += 1 }
                        }
                        done.withLockedValue { $0[caller] += 1 }
                    }
                    await client.close()
                }
            }
            try await settle()
            #expect(await echo(veteran, t1) == nil)
            // 1. Publish k2 beside k1, mid-traffic.
            try publish([k1, k2], to: jwks)
            try verifier.reloadKeys()
            try await settle()
            // 2. Tokens of both keys in use (the signers move to k2 one by one).
            live.withLockedValue { $0 = [t1, t2] }
            try await settle()
            try verifier.reloadKeys()  // a reload with nothing changed disturbs nothing
            try await settle()
            // 3. Everyone signs with k2; then k1 is retired, mid-traffic.
            live.withLockedValue { $0 = [t2] }
            try await settle()
            try publish([k2], to: jwks)
            try verifier.reloadKeys()
            try await settle(calls: 40)
            stop.withLockedValue { $0 = true }
            try await group.waitForAll()
        }
        #expect(failures.withLockedValue { $0 }.isEmpty, "\(failures.withLockedValue { $0.prefix(10) })")
        let counts = accepted.withLockedValue { $0 }
        #expect(counts["k1", default: 0] >= 80 && counts["k2", default: 0] >= 80, "\(counts)")
        #expect(verifier.keyIDs == ["doorstep": ["k2"]])

        // k1's token: refused at once on a new connection...
        let fresh = GRPCClient(targets: [target])
        #expect(await echo(fresh, t1) == .unauthenticated)
        do {
            _ = try await fresh.unary(TestingV1.TestService.echo, .init(), metadata: bearer(t1), timeout: .seconds(5))
        } catch {
            #expect(error.message == "bearer token key 'k1' is not a current key of issuer 'doorstep'")
        }
        // ...and, on a connection that presented it before, once its reuse window is over.
        try await Task.sleep(for: .milliseconds(Int64(TokenVerifier.reuseLimit * 1000) + 500))
        #expect(await echo(veteran, t1) == .unauthenticated)
        #expect(await echo(veteran, t2) == nil)

        // A bad JWKS at reload: refused in one line naming the file; k2 keeps working.
        try "{\"keys\": [".write(toFile: jwks, atomically: true, encoding: .utf8)
        #expect {
            try verifier.reloadKeys()
        } throws: {
            "\($0)" == "auth JWKS file \(jwks) is not a JWKS (a JSON object with a \"keys\" array of JSON Web Keys)"
        }
        try FileManager.default.removeItem(atPath: jwks)
        #expect(throws: KeyFileError.self) { try verifier.reloadKeys() }
        #expect(verifier.keyIDs == ["doorstep": ["k2"]])
        #expect(await echo(fresh, t2) == nil)
        let another = try await TokenIssuer(key: k2).token(for: Caller(role: .platform, subject: "new caller"))
        #expect(await echo(fresh, another) == nil, "a token never seen before verifies with the kept keys")
        #expect(await echo(fresh, t1) == .unauthenticated)

        await fresh.close()
        await veteran.close()
        await server.shutdownGracefully()
    }

    @Test("a remembered verification ends with its key: removed, or replaced under the same kid")
    func cacheFollowsKeys() async throws {
        let jwks = temporaryPath("jwks.json")
        defer { try? FileManager.default.removeItem(atPath: jwks) }
        let k1 = try SigningKey.generate(keyID: "k1")
        let k2 = try SigningKey.generate(keyID: "k2")
        try publish([k1, k2], to: jwks)
        let verifier = try TokenVerifier(issuers: [.doorstep(keys: .jwksFile(jwks, describedAs: "auth JWKS file"))])
        let t1 = try await TokenIssuer(key: k1).token(for: Caller(role: .platform, subject: "a"))
        let t2 = try await TokenIssuer(key: k2).token(for: Caller(role: .platform, subject: "b"))
        _ = try verifier.authenticate(bearer(t1))
        _ = try verifier.authenticate(bearer(t2))
        try publish([k2], to: jwks)
        try verifier.reloadKeys()
        #expect(throws: RPCError.unauthenticated("bearer token key 'k1' is not a current key of issuer 'doorstep'")) {
            try verifier.authenticate(bearer(t1))
        }
        #expect(try verifier.authenticate(bearer(t2)).caller.subject == "b")
        // Another key published under the name k2: k2's old tokens no longer verify.
        try publish([try SigningKey.generate(keyID: "k2")], to: jwks)
        try verifier.reloadKeys()
        #expect(throws: RPCError.unauthenticated("bearer token signature is invalid")) {
            try verifier.authenticate(bearer(t2))
        }
    }

    @Test("without --auth-jwks-file the signing key file's public key verifies, and a reload follows the file")
    func signingKeyFile() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("auth.key").path
        let k1 = try SigningKey.generate(keyID: "k1")
        try k1.write(path: path)
        let store = SigningKeyStore(path: path, key: try SigningKey.load(path: path))
        let verifier = try TokenVerifier(issuers: [.doorstep(keys: .signingKeyFile(path))])
        #expect(verifier.watchedFiles == [path] && store.current == k1)
        let t1 = try await TokenIssuer(key: store.current).token(for: Caller(role: .platform, subject: "a"))
        _ = try verifier.authenticate(bearer(t1))

        let k2 = try SigningKey.generate(keyID: "k2")
        let next = directory.appendingPathComponent("next.key").path
        try k2.write(path: next)
        try renameOver(next, path)
        #expect(try store.reloadKey())
        #expect(store.current == k2 && store.current.keyID == "k2")
        #expect(try !store.reloadKey(), "the same key again: no change")
        try verifier.reloadKeys()
        #expect(throws: RPCError.self) { try verifier.authenticate(bearer(t1)) }
        let t2 = try await TokenIssuer(key: store.current).token(for: Caller(role: .platform, subject: "b"))
        #expect(try verifier.authenticate(bearer(t2)).caller.subject == "b")

        try "garbage".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: KeyFileError(path: path, problem: "is not an Ed25519 private key in PEM (PKCS#8) form")) {
            try store.reloadKey()
        }
        #expect(store.current == k2, "a bad file keeps the key in use")
    }

    @Test("key files record a chosen kid; the JWKS written for them names the same kid the tokens carry")
    func keyIDs() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let chosen = directory.appendingPathComponent("chosen.key").path
        let derived = directory.appendingPathComponent("derived.key").path
        try SigningKey.generate(keyID: "2026-05.a").write(path: chosen)
        try SigningKey.generate().write(path: derived)
        let text = try String(contentsOfFile: chosen, encoding: .utf8)
        #expect(text.hasPrefix("kid: 2026-05.a\n-----BEGIN PRIVATE KEY-----"))
        let keys = [try SigningKey.load(path: chosen), try SigningKey.load(path: derived)]
        #expect(keys[0].keyID == "2026-05.a" && keys[1].keyID.hasPrefix("ed25519-"))
        let set = try KeySet.parse(jwks: Data(try SigningKey.jwks(publicKeysOf: keys).utf8))
        #expect(set.keyIDs == keys.map(\.keyID).sorted())
        #expect(set.keys[keys[0].keyID] == keys[0].verificationKey)
        let token = try await TokenIssuer(key: keys[0]).token(for: Caller(role: .compliance, subject: "c"))
        let header = try JSONSerialization.jsonObject(with: base64URLDecode(String(token.split(separator: ".")[0]))) as? [String: String]
        #expect(header?["kid"] == "2026-05.a" && header?["alg"] == "EdDSA")

        #expect(throws: KeyFileError.self) { _ = try SigningKey.generate(keyID: "no spaces") }
        #expect(throws: KeyFileError.self) { _ = try SigningKey.jwks(publicKeysOf: [keys[0], keys[0]]) }
        let twoKids = directory.appendingPathComponent("two.key").path
        try ("kid: a\nkid: b\n" + (try String(contentsOfFile: derived, encoding: .utf8))).write(toFile: twoKids, atomically: true, encoding: .utf8)
        #expect(throws: KeyFileError(path: twoKids, problem: "has more than one 'kid:' line")) { _ = try SigningKey.load(path: twoKids) }
    }
}

func base64URLDecode(_ text: String) -> Data {
    var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
    return Data(base64Encoded: base64) ?? Data()
}
