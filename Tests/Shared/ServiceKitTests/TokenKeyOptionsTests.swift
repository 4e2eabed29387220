import Foundation
import Logging
import Models
import RPC
import RPCWire
import ServiceAuth
import ServiceKit
import TestSupport
import Testing

private enum TestDefaults: ServiceDefaults {
    static let name = "scheduling"
    static let defaultPort = 50052
    static let defaultMetricsPort = 9102
}

/// The bearer-token key flags: Doorstep's JWKS and the identity provider's settings, from
/// flags or the environment, checked before anything starts.
@Suite("Token key options")
struct TokenKeyOptionsTests {
    static func resolve(_ arguments: [String], _ environment: [String: String] = [:]) throws -> ServiceConfiguration {
        try ServiceOptions<TestDefaults>.parse(arguments).resolve(environment: environment)
    }

    @Test("the identity provider's settings with their defaults; the flag wins over the environment")
    func identityProvider() throws {
        #expect(try Self.resolve([]).identityProvider == nil && Self.resolve([]).authJWKSFile == nil)
        let defaults = try #require(try Self.resolve([], [
            "DOORSTEP_IDP_JWKS_FILE": "/etc/doorstep/idp.json", "DOORSTEP_IDP_ISSUER": "https://login.lender.example/",
            "DOORSTEP_IDP_AUDIENCE": "doorstep-api",
        ]).identityProvider)
        var expected = IdentityProviderSettings(jwksFile: "/etc/doorstep/idp.json", issuer: "https://login.lender.example/", audience: "doorstep-api")
        #expect(defaults == expected)
        #expect(defaults.roleClaim == "role" && defaults.agencyClaim == "agency_id" && defaults.collectorClaim == "collector_id"
                && defaults.clockSkew == 60)
        let given = try #require(try Self.resolve([
            "--idp-jwks-file", "/a.json", "--idp-issuer", "https://idp/", "--idp-audience", "aud", "--idp-role-claim", "roles",
            "--idp-agency-claim", "org", "--idp-collector-claim", "emp", "--idp-clock-skew-seconds", "0",
        ], ["DOORSTEP_IDP_ROLE_CLAIM": "ignored", "DOORSTEP_IDP_CLOCK_SKEW_SECONDS": "30"]).identityProvider)
        expected = IdentityProviderSettings(jwksFile: "/a.json", issuer: "https://idp/", audience: "aud")
        expected.roleClaim = "roles"
        expected.agencyClaim = "org"
        expected.collectorClaim = "emp"
        expected.clockSkew = 0
        #expect(given == expected)
        #expect(try Self.resolve(["--auth-key-file", "/k", "--auth-jwks-file", "/j.json"]).authJWKSFile == "/j.json")
    }

    @Test("settings that cannot work together stop the start with one line naming the source", arguments: [
        (["--idp-jwks-file", "/a.json", "--idp-audience", "aud"], [:],
         "--idp-jwks-file: identity provider keys need the issuer of its tokens (--idp-issuer, DOORSTEP_IDP_ISSUER)"),
        (["--idp-jwks-file", "/a.json", "--idp-issuer", "https://idp/"], [:],
         "--idp-jwks-file: identity provider keys need the audience its tokens are for (--idp-audience, DOORSTEP_IDP_AUDIENCE)"),
        ([], ["DOORSTEP_IDP_ISSUER": "https://idp/"],
         "DOORSTEP_IDP_ISSUER: identity provider settings need its keys (--idp-jwks-file, DOORSTEP_IDP_JWKS_FILE)"),
        (["--idp-clock-skew-seconds", "30"], [:],
         "--idp-clock-skew-seconds: identity provider settings need its keys (--idp-jwks-file, DOORSTEP_IDP_JWKS_FILE)"),
        (["--idp-jwks-file", "/a.json", "--idp-issuer", "doorstep", "--idp-audience", "aud"], [:],
         "--idp-issuer: 'doorstep' is the issuer of Doorstep's own tokens; name the identity provider's"),
        (["--idp-jwks-file", "/a.json", "--idp-issuer", "https://idp/", "--idp-audience", "aud", "--idp-clock-skew-seconds", "301"], [:],
         "--idp-clock-skew-seconds: 301 is outside 0...300"),
        (["--idp-jwks-file", "/a.json", "--idp-issuer", "https://idp/", "--idp-audience", "aud"], ["DOORSTEP_IDP_ROLE_CLAIM": ""],
         nil),
        (["--auth-jwks-file", "/j.json"], [:],
         "--auth-jwks-file: a JWKS of Doorstep keys needs the key this service signs with (--auth-key-file, DOORSTEP_AUTH_KEY_FILE)"),
    ] as [([String], [String: String], String?)])
    func refusals(arguments: [String], environment: [String: String], reason: String?) {
        do {
            _ = try Self.resolve(arguments, environment)
            #expect(reason == nil, "accepted")
        } catch {
            #expect("\(error)" == reason)
        }
    }
}

@Suite("Peer calls across a key rotation")
struct PeerClientKeyTests {
    @Test("a peer client signs with the reloaded key at once: its calls pass after the old key is retired", .timeLimit(.minutes(1)))
    func signsWithReloadedKey() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let keyFile = directory.appendingPathComponent("auth.key").path
        let jwks = directory.appendingPathComponent("jwks.json").path
        let k1 = try SigningKey.generate(keyID: "k1")
        let k2 = try SigningKey.generate(keyID: "k2")
        try k1.write(path: keyFile)
        try SigningKey.jwks(publicKeysOf: [k1]).write(toFile: jwks, atomically: true, encoding: .utf8)
        let verifier = try TokenVerifier(issuers: [.doorstep(keys: .jwksFile(jwks, describedAs: "auth JWKS file"))])
        let store = SigningKeyStore(path: keyFile, key: try SigningKey.load(path: keyFile))
        let reloadables: [any Reloadable] = [verifier, store]
        #expect(reloadables.map(\.reloadName) == ["token-keys", "signing-key"])
        #expect(reloadables.map(\.watchedFiles) == [[jwks], [keyFile]])

        var definition = ServiceDefinition()
        definition.unary(TestingV1.TestService.echo, roles: [.service]) { request, context in
            TestingV1.AllKinds(fString: context.caller?.subject ?? "")
        }
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let server = GRPCServer(services: definition, authenticator: verifier, logger: logger)
        let address = try await server.start()
        let peer = PeerClient(peer: "test", targets: [GRPCClient.Target(host: "127.0.0.1", port: address.port!)],
                              signingKey: store, subject: "scheduling")
        #expect(try await peer.call(TestingV1.TestService.echo, .init()).fString == "scheduling")
        #expect(try await Self.keyID(of: peer) == "k1")

        // k2 published, then the key file switched to k2 and reloaded, then k1 retired.
        try SigningKey.jwks(publicKeysOf: [k1, k2]).write(toFile: jwks, atomically: true, encoding: .utf8)
        try verifier.reload()
        try FileManager.default.removeItem(atPath: keyFile)
        try k2.write(path: keyFile)
        try store.reload()
        #expect(try await Self.keyID(of: peer) == "k2", "the cached k1 token is dropped on the key change")
        try SigningKey.jwks(publicKeysOf: [k2]).write(toFile: jwks, atomically: true, encoding: .utf8)
        try verifier.reload()
        #expect(try await peer.call(TestingV1.TestService.echo, .init()).fString == "scheduling")

        // A bad key file at reload: one line naming it; the peer keeps signing with k2.
        try "not a key".write(toFile: keyFile, atomically: true, encoding: .utf8)
        let refused = #expect(throws: ConfigurationError.self) { try store.reload() }
        #expect(refused?.description == "auth key file \(keyFile) is not an Ed25519 private key in PEM (PKCS#8) form")
        #expect(try await peer.call(TestingV1.TestService.echo, .init()).fString == "scheduling")
        await peer.close()
        await server.shutdownGracefully()
    }

    /// The kid in the header of the token the peer client sends now.
    static func keyID(of peer: PeerClient) async throws -> String? {
        let authorization = try #require(try await peer.metadata()["authorization"])
        let header = String(authorization.dropFirst("Bearer ".count).split(separator: ".")[0])
        var base64 = header.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        let object = try JSONSerialization.jsonObject(with: Data(base64Encoded: base64) ?? Data()) as? [String: Any]
        return object?["kid"] as? String
    }
}
