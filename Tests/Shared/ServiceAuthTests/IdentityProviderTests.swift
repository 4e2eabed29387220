import Crypto
import CryptoExtras
import Foundation
import JWTKit
import RPC
import RPCWire
import ServiceAuth
import TestSupport
import Testing

/// A verifier trusting Doorstep's own key and an identity provider's JWKS file.
private struct Fixture {
    static let issuer = "https://login.lender.example/"
    static let audience = "doorstep-api"

    let verifier: TokenVerifier
    let clock: TestClock
    let doorstepKey: SigningKey
    let jwksPath: String

    init(keys: [IdentityProviderKey], configure: (inout IdentityProviderSettings) -> Void = { _ in }) throws {
        jwksPath = temporaryPath("idp-jwks.json")
        try IdentityProviderKey.jwks(keys).write(toFile: jwksPath, atomically: true, encoding: .utf8)
        var settings = IdentityProviderSettings(jwksFile: jwksPath, issuer: Self.issuer, audience: Self.audience)
        configure(&settings)
        let clock = TestClock()
        doorstepKey = try SigningKey.generate(keyID: "doorstep-1")
        verifier = try TokenVerifier(issuers: [.doorstep(keys: .fixed(KeySet([doorstepKey.verificationKey]))),
                                               .identityProvider(settings)], now: { clock.now })
        self.clock = clock
    }

    /// Valid claims of an agency manager, as of the fixture's clock, with `changes` applied
    /// (`.null` removes a claim).
    func claims(_ changes: [String: JWTHeaderField] = [:]) -> [String: JWTHeaderField] {
        let now = Int(clock.now.timeIntervalSince1970)
        var claims: [String: JWTHeaderField] = [
            "iss": .string(Self.issuer), "aud": .string(Self.audience), "sub": "alice@lender.example",
            "exp": .int(now + 600), "nbf": .int(now - 5), "iat": .int(now - 5),
            "role": "agency_manager", "agency_id": "agy_01J00000000000000000000000",
        ]
        for (name, value) in changes {
            if value.isNull { claims.removeValue(forKey: name) } else { claims[name] = value }
        }
        return claims
    }

    func now(plus seconds: Int) -> JWTHeaderField { .int(Int(clock.now.timeIntervalSince1970) + seconds) }

    /// The refusal of `token`, or nil when it was accepted.
    func refusal(_ token: String) -> RPCError? {
        do {
            _ = try verifier.authenticate(bearer(token))
            return nil
        } catch {
            return error
        }
    }
}

@Suite("Tokens of the lender's identity provider")
struct IdentityProviderTests {
    static let algorithms = ["RS256", "ES256", "EdDSA"]

    @Test("a token signed RS256, ES256 or EdDSA by a stock JWT library names its caller from the claims", arguments: algorithms)
    func accepted(algorithm: String) async throws {
        let key = try await IdentityProviderKey.make(algorithm, kid: "idp-\(algorithm)")
        let other = try await IdentityProviderKey.make(algorithm == "RS256" ? "ES256" : "RS256", kid: "idp-other")
        let fixture = try Fixture(keys: [other, key])
        let manager = try await key.token(fixture.claims())
        #expect(try fixture.verifier.authenticate(bearer(manager)).caller
            == Caller(role: .agencyManager, subject: "alice@lender.example", agencyID: "agy_01J00000000000000000000000"))
        let collector = try await key.token(fixture.claims([
            "role": "collector", "collector_id": "col_01J00000000000000000000000", "aud": ["other-app", "doorstep-api"],
        ]))
        #expect(try fixture.verifier.authenticate(bearer(collector)).caller == Caller(
            role: .collector, subject: "alice@lender.example", agencyID: "agy_01J00000000000000000000000",
            collectorID: "col_01J00000000000000000000000"))
        // Within the 60-second skew: expired 50 s ago, valid from 50 s ahead, issued 50 s ahead.
        for changes: [String: JWTHeaderField] in [["exp": fixture.now(plus: -50)], ["nbf": fixture.now(plus: 50)],
                                                  ["iat": fixture.now(plus: 50)], ["nbf": .null, "iat": .null]] {
            let token = try await key.token(fixture.claims(changes))
            #expect(fixture.refusal(token) == nil, "\(changes)")
        }
    }

    @Test("each broken rule is UNAUTHENTICATED with its own reason", arguments: algorithms)
    func refusals(algorithm: String) async throws {
        let key = try await IdentityProviderKey.make(algorithm, kid: "idp-1")
        let fixture = try Fixture(keys: [key])
        let cases: [(changes: [String: JWTHeaderField], reason: String)] = [
            (["iss": "https://evil.example/"], "bearer token issuer 'https://evil.example/' is not trusted by this service"),
            (["iss": .null], "bearer token has no iss claim"),
            (["aud": "another-app"], "bearer token audience 'another-app' does not include 'doorstep-api'"),
            (["aud": ["a", "b"]], "bearer token audience 'a,b' does not include 'doorstep-api'"),
            (["aud": .null], "bearer token has no aud claim (expected 'doorstep-api')"),
            (["aud": 7], "bearer token aud is neither a string nor an array of strings"),
            (["exp": fixture.now(plus: -61)], "bearer token expired at "),
            (["exp": .null], "bearer token has no exp claim"),
            (["exp": "tomorrow"], "bearer token exp claim is not a number of seconds"),
            (["nbf": fixture.now(plus: 61)], "bearer token is not valid before "),
            (["iat": fixture.now(plus: 61)], "bearer token is issued in the future"),
            (["role": "service"], "role 'service' is not accepted from issuer 'https://login.lender.example/': service identity is Doorstep's own signing key"),
            (["role": ["platform", "service"]], "role 'service' is not accepted from issuer"),
            (["role": "admin"], "bearer token claim 'role' value 'admin' is not a Doorstep role (platform, agency_manager, collector, compliance)"),
            (["role": ["viewer", "editor"]], "bearer token claim 'role' holds no Doorstep role"),
            (["role": ["platform", "compliance"]], "bearer token claim 'role' holds more than one Doorstep role"),
            (["role": .null], "bearer token has no 'role' claim (the caller's role)"),
            (["role": 3], "bearer token claim 'role' is neither a string nor an array of strings"),
            (["agency_id": 42], "bearer token claim 'agency_id' is not a string"),
            (["sub": .null], "bearer token has no sub claim"),
        ]
        for (changes, reason) in cases {
            let refusal = fixture.refusal(try await key.token(fixture.claims(changes)))
            #expect(refusal?.code == .unauthenticated, "\(changes) was accepted")
            #expect(refusal?.message.hasPrefix(reason) == true, "\(changes): \(refusal?.message ?? "accepted")")
        }
        let good = try await key.token(fixture.claims())
        let parts = good.split(separator: ".").map(String.init)
        let tampered = [parts[0], base64URL(Data(#"{"iss":"https://login.lender.example/","aud":"doorstep-api","sub":"mallory","exp":4102444800,"role":"platform"}"#.utf8)), parts[2]]
        #expect(fixture.refusal(tampered.joined(separator: "."))?.message == "bearer token signature is invalid")
        let unknownKid = try await key.token(fixture.claims(), kid: "idp-9")
        #expect(fixture.refusal(unknownKid)?.message == "bearer token key 'idp-9' is not a current key of issuer 'https://login.lender.example/'")
    }

    @Test("the expiry is exact with a skew of 0; claim names are configurable; a role may come in an array")
    func configuredClaims() async throws {
        let key = try await IdentityProviderKey.rsa(kid: "rsa-1")
        let fixture = try Fixture(keys: [key]) { settings in
            settings.roleClaim = "https://doorstep.example/roles"
            settings.agencyClaim = "org"
            settings.collectorClaim = "employee_no"
            settings.clockSkew = 0
        }
        let token = try await key.token(fixture.claims([
            "role": .null, "agency_id": .null, "https://doorstep.example/roles": ["viewer", "collector"], "org": "agy_7",
            "employee_no": "col_9", "exp": fixture.now(plus: 10),
        ]))
        #expect(try fixture.verifier.authenticate(bearer(token)).caller
            == Caller(role: .collector, subject: "alice@lender.example", agencyID: "agy_7", collectorID: "col_9"))
        fixture.clock.advance(10)
        #expect(fixture.refusal(token)?.message.hasPrefix("bearer token expired at ") == true, "cached while valid, refused at exp")
        let defaultNames = try await key.token(fixture.claims())
        #expect(fixture.refusal(defaultNames)?.message == "bearer token has no 'https://doorstep.example/roles' claim (the caller's role)")
    }

    @Test("alg confusion: HS256 with the public key as secret, none, or another algorithm than the key's is refused")
    func algorithmConfusion() async throws {
        let rsa = try await IdentityProviderKey.rsa(kid: "rsa-1")
        let ec = try await IdentityProviderKey.ec(kid: "ec-1")
        let fixture = try Fixture(keys: [rsa, ec])
        let claims: [String: Any] = [
            "iss": Fixture.issuer, "aud": Fixture.audience, "sub": "mallory", "role": "platform",
            "exp": Int(fixture.clock.now.timeIntervalSince1970) + 600,
        ]
        // The classic attack: the verifier's RSA public key (PEM) used as an HMAC secret.
        let hmac = handMadeToken(header: ["alg": "HS256", "kid": "rsa-1", "typ": "JWT"], claims: claims) { input in
            Data(HMAC<SHA256>.authenticationCode(for: input, using: SymmetricKey(data: Data(rsa.publicPEM.utf8))))
        }
        #expect(fixture.refusal(hmac)?.message == "bearer token alg 'HS256' is not accepted (RS256, ES256 or EdDSA)")
        for none in ["none", "None", "NONE"] {
            let unsigned = handMadeToken(header: ["alg": none, "kid": "rsa-1"], claims: claims) { _ in Data() }
            #expect(fixture.refusal(unsigned)?.message == "bearer token alg '\(none)' is not accepted (RS256, ES256 or EdDSA)")
        }
        let noAlg = handMadeToken(header: ["kid": "rsa-1"], claims: claims) { _ in Data() }
        #expect(fixture.refusal(noAlg)?.message == "bearer token header has no alg")
        // A valid ES256 signature (by the EC key) presented as coming from the RSA key's kid.
        let ecUnderRSAKid = try await ec.token(fixture.claims(), kid: "rsa-1")
        #expect(fixture.refusal(ecUnderRSAKid)?.message == "bearer token alg ES256 does not match key 'rsa-1', which is RS256")
        let rsaUnderECKid = try await rsa.token(fixture.claims(), kid: "ec-1")
        #expect(fixture.refusal(rsaUnderECKid)?.message == "bearer token alg RS256 does not match key 'ec-1', which is ES256")
        let critical = handMadeToken(header: ["alg": "RS256", "kid": "rsa-1", "crit": "exp"], claims: claims) { _ in Data() }
        #expect(fixture.refusal(critical)?.message == "bearer token header has critical extensions (crit), which are not supported")
        // Without a kid, with two keys there is no telling which one.
        let noKid = try await rsa.token(fixture.claims(), omitKid: true)
        #expect(fixture.refusal(noKid)?.message == "bearer token has no kid, and issuer 'https://login.lender.example/' has 2 keys")
        let single = try Fixture(keys: [rsa])
        #expect(single.refusal(try await rsa.token(single.claims(), omitKid: true)) == nil, "one key: a token without kid is its")
    }

    @Test("one service accepts Doorstep's tokens and the provider's; neither issuer's key vouches for the other's iss")
    func dispatchByIssuer() async throws {
        let idp = try await IdentityProviderKey.ed25519(kid: "idp-ed")
        let fixture = try Fixture(keys: [idp])
        let doorstep = try await TokenIssuer(key: fixture.doorstepKey).token(for: Caller(role: .service, subject: "visits"),
                                                                                now: fixture.clock.now)
        #expect(try fixture.verifier.authenticate(bearer(doorstep)).caller == Caller(role: .service, subject: "visits"))
        #expect(fixture.refusal(try await idp.token(fixture.claims())) == nil)
        // The provider's key signing a token that claims to be Doorstep's own (with the service role).
        let posing = try await idp.token(fixture.claims(["iss": "doorstep", "role": "service", "aud": .null]))
        #expect(fixture.refusal(posing)?.message == "bearer token key 'idp-ed' is not a current key of issuer 'doorstep'")
        let posingWithDoorstepKid = try await idp.token(fixture.claims(["iss": "doorstep", "role": "service"]), kid: "doorstep-1")
        #expect(fixture.refusal(posingWithDoorstepKid)?.message == "bearer token signature is invalid")
        #expect(fixture.verifier.keyIDs == ["doorstep": ["doorstep-1"], Fixture.issuer: ["idp-ed"]])
    }
}

@Suite("JWKS files")
struct KeySetTests {
    @Test("keys Doorstep cannot use are skipped; a usable key that is malformed, private or unnamed is an error")
    func parsing() async throws {
        let rsa = try await IdentityProviderKey.rsa(kid: "rsa-1")
        let ec = try await IdentityProviderKey.ec(kid: "ec-1")
        let ed = try await IdentityProviderKey.ed25519(kid: "ed-1")
        let skipped: [[String: String]] = [
            ["kty": "RSA", "kid": "enc-1", "use": "enc", "n": rsa.jwk["n"]!, "e": "AQAB"],
            ["kty": "RSA", "kid": "ps-1", "alg": "PS256", "n": rsa.jwk["n"]!, "e": "AQAB"],
            ["kty": "oct", "kid": "hmac-1", "k": "c2VjcmV0"],
            ["kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"],
            ["kty": "OKP", "kid": "x25519", "crv": "X25519", "x": ed.jwk["x"]!],
        ]
        let set = try KeySet.parse(jwks: Data(IdentityProviderKey.jwks([rsa, ec, ed], extra: skipped).utf8))
        #expect(set.keyIDs == ["ec-1", "ed-1", "rsa-1"])
        #expect(set.keys["rsa-1"]?.algorithm == .rs256 && set.keys["ec-1"]?.algorithm == .es256 && set.keys["ed-1"]?.algorithm == .edDSA)

        let weak = try _RSA.Signing.PrivateKey(unsafeKeySize: .init(bitCount: 1024)).publicKey.getKeyPrimitives()
        var unnamed = ed.jwk
        unnamed["kid"] = nil
        var privateKey = ed.jwk
        privateKey["d"] = base64URL(Data(count: 32))
        let refusals: [(String, String)] = [
            ("not json", "is not a JWKS (a JSON object with a \"keys\" array of JSON Web Keys)"),
            (#"{"kid":"x"}"#, "is not a JWKS"),
            (IdentityProviderKey.jwks([], extra: skipped), "holds no usable signing key"),
            (IdentityProviderKey.jwks([ed, ed]), "kid 'ed-1' appears twice"),
            (IdentityProviderKey.jwks([], extra: [unnamed]), "key 1 has no kid"),
            (IdentityProviderKey.jwks([], extra: [privateKey]), "key 'ed-1' holds private key material ('d')"),
            (IdentityProviderKey.jwks([], extra: [["kty": "RSA", "kid": "weak", "n": base64URL(weak.modulus), "e": base64URL(weak.publicExponent)]]),
             "key 'weak': not a usable RSA public key (at least 2048 bits)"),
            (IdentityProviderKey.jwks([], extra: [["kty": "RSA", "kid": "r", "n": "!!", "e": "AQAB"]]), "key 'r': RSA key needs base64url 'n' and 'e'"),
            (IdentityProviderKey.jwks([], extra: [["kty": "EC", "kid": "e", "crv": "P-256", "x": base64URL(Data(count: 32)), "y": base64URL(Data(count: 32))]]),
             "key 'e': 'x' and 'y' are not a point on P-256"),
            (IdentityProviderKey.jwks([], extra: [["kty": "OKP", "kid": "o", "crv": "Ed25519", "x": "AAAA"]]), "key 'o': Ed25519 key needs a 32-byte base64url 'x'"),
        ]
        for (document, problem) in refusals {
            #expect {
                _ = try KeySet.parse(jwks: Data(document.utf8))
            } throws: { error in
                (error as? KeySetProblem)?.problem.hasPrefix(problem) == true
            }
        }
    }

    @Test("a file that cannot be read is named in one line")
    func unreadable() {
        let missing = temporaryPath("missing.json")
        #expect {
            _ = try KeySet.load(jwksFile: missing, describedAs: "IdP JWKS file")
        } throws: { "\($0)" == "IdP JWKS file \(missing) cannot be read (missing, or no permission)" }
    }
}
