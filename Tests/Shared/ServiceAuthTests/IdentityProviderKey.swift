import Crypto
import CryptoExtras
import Foundation
import JWTKit
import ServiceAuth

/// An identity provider's signing key for tests: its public JWK, and tokens signed with it by
/// jwt-kit — another implementation than the verifier's swift-crypto checks, so a token the
/// verifier accepts is one a stock JWT library produced.
struct IdentityProviderKey: Sendable {
    let kid: String
    let algorithm: String
    /// The public JWK as an identity provider publishes it.
    let jwk: [String: String]
    /// The bytes an attacker would use as an HMAC secret (the public key, PEM).
    let publicPEM: String
    private let signer: JWTKeyCollection

    static func rsa(kid: String) async throws -> IdentityProviderKey {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let signer = JWTKeyCollection()
        await signer.add(rsa: try Insecure.RSA.PrivateKey(backing: key), digestAlgorithm: .sha256, kid: JWKIdentifier(string: kid))
        let primitives = try key.publicKey.getKeyPrimitives()
        return IdentityProviderKey(kid: kid, algorithm: "RS256", jwk: [
            "kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
            "n": base64URL(primitives.modulus), "e": base64URL(primitives.publicExponent),
        ], publicPEM: key.publicKey.pemRepresentation, signer: signer)
    }

    static func ec(kid: String) async throws -> IdentityProviderKey {
        let key = P256.Signing.PrivateKey()
        let signer = JWTKeyCollection()
        await signer.add(ecdsa: try ES256PrivateKey(backing: key), kid: JWKIdentifier(string: kid))
        let point = key.publicKey.rawRepresentation
        return IdentityProviderKey(kid: kid, algorithm: "ES256", jwk: [
            "kty": "EC", "kid": kid, "crv": "P-256", "use": "sig",
            "x": base64URL(point.prefix(32)), "y": base64URL(point.suffix(32)),
        ], publicPEM: key.publicKey.pemRepresentation, signer: signer)
    }

    static func ed25519(kid: String) async throws -> IdentityProviderKey {
        let key = Curve25519.Signing.PrivateKey()
        let signer = JWTKeyCollection()
        await signer.add(eddsa: EdDSA.PrivateKey(backing: key), kid: JWKIdentifier(string: kid))
        return IdentityProviderKey(kid: kid, algorithm: "EdDSA", jwk: [
            "kty": "OKP", "kid": kid, "crv": "Ed25519", "alg": "EdDSA",
            "x": base64URL(key.publicKey.rawRepresentation),
        ], publicPEM: EdDSA.PublicKey(backing: key.publicKey).pemRepresentation, signer: signer)
    }

    static func make(_ algorithm: String, kid: String) async throws -> IdentityProviderKey {
        switch algorithm {
        case "RS256": try await rsa(kid: kid)
        case "ES256": try await ec(kid: kid)
        default: try await ed25519(kid: kid)
        }
    }

    /// A token with `claims`, signed with this key; `kid` overrides the header's key id,
    /// `omitKid` leaves it out.
    func token(_ claims: [String: JWTHeaderField], kid: String? = nil, omitKid: Bool = false) async throws -> String {
        if omitKid {
            // The collection's only key is its default: signed without a kid in the header.
            return try await signer.sign(TestClaims(fields: claims))
        }
        return try await signer.sign(TestClaims(fields: claims), kid: JWKIdentifier(string: kid ?? self.kid))
    }

    /// A JWKS document of `keys`, with any extra raw entries.
    static func jwks(_ keys: [IdentityProviderKey], extra: [[String: String]] = []) -> String {
        let data = try! JSONSerialization.data(withJSONObject: ["keys": keys.map(\.jwk) + extra], options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}

/// Claims by name, for tokens signed in tests.
struct TestClaims: JWTPayload {
    var fields: [String: JWTHeaderField]

    init(fields: [String: JWTHeaderField]) { self.fields = fields }

    init(from decoder: any Decoder) throws {
        fields = try decoder.singleValueContainer().decode([String: JWTHeaderField].self)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(fields)
    }

    func verify(using _: some JWTAlgorithm) throws {}
}

func base64URL(_ bytes: some DataProtocol) -> String {
    Data(bytes).base64EncodedString()
        .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}

/// A token assembled by hand: any header (e.g. `alg` HS256 or none) and a signature computed
/// by `sign` over "header.payload".
func handMadeToken(header: [String: String], claims: [String: Any], sign: (Data) -> Data) -> String {
    let head = base64URL(try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
    let body = base64URL(try! JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys]))
    let input = head + "." + body
    return input + "." + base64URL(sign(Data(input.utf8)))
}
