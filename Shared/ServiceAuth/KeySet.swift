import Crypto
import CryptoExtras
import Foundation

/// A signature algorithm accepted on bearer tokens (RFC 7518 §3.1 names; EdDSA per RFC 8037).
/// Asymmetric only: a verifier holds public keys, so `HS*` (a shared secret, where a public key
/// could be misused as the secret) and `none` are never accepted. Each key verifies with
/// exactly one algorithm, fixed by its key type and curve, never by the token's `alg`.
public enum TokenAlgorithm: String, Sendable, CaseIterable {
    case rs256 = "RS256"
    case es256 = "ES256"
    case edDSA = "EdDSA"

    /// "RS256, ES256 or EdDSA", for messages.
    static let accepted = "RS256, ES256 or EdDSA"
}

/// One public key that verifies token signatures, under its key id (`kid`), with the one
/// algorithm its type allows: RSA → RS256 (at least 2048 bits), EC P-256 → ES256, OKP Ed25519
/// → EdDSA. Verification is synchronous (swift-crypto), so the per-call path never suspends.
public struct VerificationKey: Sendable, Equatable {
    enum Material: Sendable {
        case rsa(_RSA.Signing.PublicKey)
        case p256(P256.Signing.PublicKey)
        case ed25519(Curve25519.Signing.PublicKey)
    }

    public let keyID: String
    public let algorithm: TokenAlgorithm
    let material: Material
    /// The key's public bytes (RSA: SubjectPublicKeyInfo DER; P-256: X9.63; Ed25519: raw):
    /// tells a replaced key under the same `kid` apart.
    let publicBytes: Data

    init(keyID: String, material: Material) {
        self.keyID = keyID
        self.material = material
        switch material {
        case .rsa(let key): (algorithm, publicBytes) = (.rs256, key.derRepresentation)
        case .p256(let key): (algorithm, publicBytes) = (.es256, key.x963Representation)
        case .ed25519(let key): (algorithm, publicBytes) = (.edDSA, key.rawRepresentation)
        }
    }

    public static func == (lhs: VerificationKey, rhs: VerificationKey) -> Bool {
        lhs.keyID == rhs.keyID && lhs.algorithm == rhs.algorithm && lhs.publicBytes == rhs.publicBytes
    }

    /// True when `signature` (the JWS signature bytes) signs `signingInput` ("header.payload").
    func isValidSignature(_ signature: Data, for signingInput: ArraySlice<UInt8>) -> Bool {
        switch material {
        case .rsa(let key):
            // RFC 7518 §3.3: RSASSA-PKCS1-v1_5 with SHA-256.
            return key.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature),
                                        for: SHA256.hash(data: signingInput), padding: .insecurePKCS1v1_5)
        case .p256(let key):
            // RFC 7518 §3.4: the signature is R || S, 32 bytes each (not DER); SHA-256.
            guard let ecdsa = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(ecdsa, for: signingInput)
        case .ed25519(let key):
            return key.isValidSignature(signature, for: signingInput)
        }
    }
}

/// The public keys one issuer signs with, by key id: a JWKS file (RFC 7517 §5) read whole, so a
/// reload swaps every key at once. A token names its key with `kid`; a token without `kid` is
/// accepted only while the set holds exactly one key (there is then no choice to make, and
/// tokens minted before key ids were written keep working until a second key is added).
public struct KeySet: Sendable, Equatable {
    public let keys: [String: VerificationKey]

    /// - Precondition: the key ids are distinct.
    public init(_ keys: [VerificationKey]) {
        self.keys = Dictionary(uniqueKeysWithValues: keys.map { ($0.keyID, $0) })
    }

    public var keyIDs: [String] { keys.keys.sorted() }

    /// Reads a JWKS file; `file` names it in errors ("auth JWKS file", "IdP JWKS file").
    public static func load(jwksFile path: String, describedAs file: String) throws(KeyFileError) -> KeySet {
        // Read through a FileHandle: swift-foundation's `Data(contentsOf:)` leaks its buffer on
        // Linux (LeakSanitizer), and a file that is reloaded is read many times.
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw KeyFileError(file: file, path: path, problem: "cannot be read (missing, or no permission)")
        }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.readToEnd() ?? Data()
        } catch {
            throw KeyFileError(file: file, path: path, problem: "cannot be read (\(error.localizedDescription))")
        }
        do {
            return try parse(jwks: data)
        } catch {
            throw KeyFileError(file: file, path: path, problem: error.problem)
        }
    }

    /// A JWKS document's signing keys. Keys Doorstep cannot use are skipped (`use` other than
    /// `sig`, key types or curves other than RSA, EC P-256 and OKP Ed25519, an `alg` other than
    /// the one of its type): an identity provider may publish them beside the ones it signs
    /// tokens with. A usable key that is malformed is an error, as are a missing or repeated
    /// `kid`, private key material (a verification JWKS must be public), and no usable key.
    public static func parse(jwks data: Data) throws(KeySetProblem) -> KeySet {
        let document: JWKSDocument
        do {
            document = try JSONDecoder().decode(JWKSDocument.self, from: data)
        } catch {
            throw KeySetProblem("is not a JWKS (a JSON object with a \"keys\" array of JSON Web Keys)")
        }
        var keys: [VerificationKey] = []
        var seen = Set<String>()
        for (index, jwk) in document.keys.enumerated() {
            let name = jwk.kid.map { "key '\($0)'" } ?? "key \(index + 1)"
            guard jwk.d == nil else {
                throw KeySetProblem("\(name) holds private key material ('d'); publish only public keys (`doorstep jwks` writes them)")
            }
            guard jwk.use == nil || jwk.use == "sig", let material = try jwk.material(name: name) else { continue }
            guard let kid = jwk.kid, !kid.isEmpty else { throw KeySetProblem("\(name) has no kid") }
            guard seen.insert(kid).inserted else { throw KeySetProblem("kid '\(kid)' appears twice") }
            keys.append(VerificationKey(keyID: kid, material: material))
        }
        guard !keys.isEmpty else {
            throw KeySetProblem("holds no usable signing key (RSA ≥ 2048 bits for RS256, EC P-256 for ES256, OKP Ed25519 for EdDSA)")
        }
        return KeySet(keys)
    }

    /// The key a token with header `kid` names, or why there is none.
    func key(for kid: String?, issuer: String) -> Result<VerificationKey, KeySetProblem> {
        if let kid {
            guard let key = keys[kid] else {
                return .failure(KeySetProblem("bearer token key \(quoted(kid)) is not a current key of issuer \(quoted(issuer))"))
            }
            return .success(key)
        }
        guard keys.count == 1, let only = keys.values.first else {
            return .failure(KeySetProblem("bearer token has no kid, and issuer \(quoted(issuer)) has \(keys.count) keys"))
        }
        return .success(only)
    }
}

/// Why a JWKS (or a token's key) cannot be used, in one line.
public struct KeySetProblem: Error, Sendable, CustomStringConvertible {
    public let problem: String
    public init(_ problem: String) { self.problem = problem }
    public var description: String { problem }
}

/// A JWKS as found in a file: every member optional, so that keys of kinds Doorstep does not
/// use are skipped rather than failing the whole set (jwt-kit's `JWK` refuses unknown `kty`).
private struct JWKSDocument: Decodable {
    var keys: [RawJWK]
}

private struct RawJWK: Decodable {
    var kty: String?
    var kid: String?
    var use: String?
    var alg: String?
    var crv: String?
    var n: String?
    var e: String?
    var x: String?
    var y: String?
    var d: String?

    /// The key's public material; nil for a key Doorstep does not verify with.
    func material(name: String) throws(KeySetProblem) -> VerificationKey.Material? {
        switch kty {
        case "RSA":
            guard alg == nil || alg == TokenAlgorithm.rs256.rawValue else { return nil }
            guard let n = n.flatMap(base64URLDecoded), let e = e.flatMap(base64URLDecoded) else {
                throw KeySetProblem("\(name): RSA key needs base64url 'n' and 'e'")
            }
            do {
                return .rsa(try _RSA.Signing.PublicKey(n: n, e: e))
            } catch {
                throw KeySetProblem("\(name): not a usable RSA public key (at least 2048 bits)")
            }
        case "EC":
            guard crv == "P-256", alg == nil || alg == TokenAlgorithm.es256.rawValue else { return nil }
            guard let x = x.flatMap(base64URLDecoded), let y = y.flatMap(base64URLDecoded), x.count == 32, y.count == 32 else {
                throw KeySetProblem("\(name): EC P-256 key needs 32-byte base64url 'x' and 'y'")
            }
            do {
                return .p256(try P256.Signing.PublicKey(rawRepresentation: x + y))
            } catch {
                throw KeySetProblem("\(name): 'x' and 'y' are not a point on P-256")
            }
        case "OKP":
            // RFC 8037 §3.1 names the algorithm EdDSA; RFC 9864 adds the fully specified Ed25519.
            guard crv == "Ed25519", alg == nil || alg == TokenAlgorithm.edDSA.rawValue || alg == "Ed25519" else { return nil }
            guard let x = x.flatMap(base64URLDecoded), x.count == 32,
                  let key = try? Curve25519.Signing.PublicKey(rawRepresentation: x) else {
                throw KeySetProblem("\(name): Ed25519 key needs a 32-byte base64url 'x'")
            }
            return .ed25519(key)
        default:
            return nil
        }
    }
}

/// RFC 4648 §5 base64url without padding (JWK members, RFC 7518 §6); nil when malformed.
func base64URLDecoded(_ text: String) -> Data? {
    var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    guard !base64.contains("="), !base64.isEmpty else { return nil }
    base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
    return Data(base64Encoded: base64)
}

/// RFC 4648 §5 base64url without padding.
func base64URLEncoded(_ bytes: some DataProtocol) -> String {
    Data(bytes).base64EncodedString()
        .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}

/// A value from a token in a message: quoted, at most 64 characters, control characters
/// replaced (a client's own value, echoed back to it and into logs).
func quoted(_ value: String) -> String {
    let cleaned = String(value.unicodeScalars.prefix(64).map { $0.properties.generalCategory == .control ? "?" : Character($0) })
    return "'" + cleaned + (value.unicodeScalars.count > 64 ? "…'" : "'")
}
