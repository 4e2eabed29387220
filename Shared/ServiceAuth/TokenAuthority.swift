import Crypto
import Foundation
import JWTKit
import NIOConcurrencyHelpers
import RPC
import RPCWire

/// The claims of a Doorstep bearer token (docs/ARCHITECTURE.md ("The contract")): who calls,
/// in which role, and for which agency or collector where the role speaks for one.
public struct DoorstepClaims: JWTPayload, Equatable {
    public static let issuer = "doorstep"

    public var sub: SubjectClaim
    public var exp: ExpirationClaim
    public var iat: IssuedAtClaim
    public var iss: IssuerClaim
    /// One of `Caller.Role`'s raw values.
    public var role: String
    public var agencyID: String?
    public var collectorID: String?

    enum CodingKeys: String, CodingKey {
        case sub, exp, iat, iss, role
        case agencyID = "agency_id"
        case collectorID = "collector_id"
    }

    /// For jwt-kit's own verification (tools); services verify with ``TokenVerifier``.
    public func verify(using _: some JWTAlgorithm) throws {
        try exp.verifyNotExpired(currentDate: Date())
        guard iss.value == Self.issuer else {
            throw JWTError.claimVerificationFailure(failedClaim: iss, reason: "unexpected issuer")
        }
    }
}

/// An Ed25519 signing key in a PEM file (PKCS#8 private key), with its key id (`kid`).
/// `doorstep keygen` writes one; services sign their own calls with it (and, without
/// `--auth-jwks-file`, verify tokens with its public key); `doorstep token` signs with it.
///
/// The key id goes into every token's header and names the key in a JWKS, so that a new
/// key can be published beside the old one before either signs (docs/OPERATIONS.md, "Keys,
/// rotation and the identity provider"). `doorstep keygen --kid K` records it in the file as
/// a `kid: K` line before the PEM block (RFC 7468 §5.2 lets text precede the block; OpenSSL
/// reads such a file as it is); a file without that line has a kid derived from its public
/// key, `ed25519-` and six bytes in hex, as before key ids could be chosen.
public struct SigningKey: Sendable, Equatable {
    let privateKey: EdDSA.PrivateKey
    public let keyID: String
    /// Whether the key id is written in the file (chosen), rather than derived from the key.
    let recordsKeyID: Bool

    init(privateKey: EdDSA.PrivateKey, keyID: String? = nil) {
        self.privateKey = privateKey
        self.recordsKeyID = keyID != nil
        let raw = [UInt8](privateKey.publicKey.rawRepresentation)
        self.keyID = keyID ?? "ed25519-" + raw.prefix(6).map { String(format: "%02x", $0) }.joined()
    }

    public static func == (lhs: SigningKey, rhs: SigningKey) -> Bool {
        lhs.keyID == rhs.keyID && lhs.privateKey.publicKey == rhs.privateKey.publicKey
    }

    /// A key id Doorstep accepts: 1 to 64 of `A-Z a-z 0-9 . _ -` (it travels in token headers
    /// and file names; nothing to escape).
    public static func isValidKeyID(_ kid: String) -> Bool {
        (1...64).contains(kid.utf8.count) && kid.utf8.allSatisfy {
            (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D
        }
    }

    /// A new random key; `keyID` nil derives it from the public key.
    public static func generate(keyID: String? = nil) throws -> SigningKey {
        if let keyID, !isValidKeyID(keyID) {
            throw KeyFileError(file: "key id", path: keyID, problem: "is not 1-64 of A-Z a-z 0-9 . _ -")
        }
        return SigningKey(privateKey: try EdDSA.PrivateKey(curve: .ed25519), keyID: keyID)
    }

    /// The same key under key id `keyID` (nil: unchanged), for `doorstep token --kid`.
    public func named(_ keyID: String?) throws(KeyFileError) -> SigningKey {
        guard let keyID else { return self }
        guard Self.isValidKeyID(keyID) else {
            throw KeyFileError(file: "key id", path: keyID, problem: "is not 1-64 of A-Z a-z 0-9 . _ -")
        }
        return SigningKey(privateKey: privateKey, keyID: keyID)
    }

    /// The public half, as a verifier holds it.
    public var verificationKey: VerificationKey {
        // An Ed25519 public key from jwt-kit is 32 valid bytes: this cannot fail.
        let key = try! Curve25519.Signing.PublicKey(rawRepresentation: privateKey.publicKey.rawRepresentation)
        return VerificationKey(keyID: keyID, material: .ed25519(key))
    }

    /// The public JWKS (RFC 7517 §5) of `keys`, as services read with `--auth-jwks-file`:
    /// one `OKP`/`Ed25519` key each, `alg` EdDSA, `use` sig, under its key id. Key ids must
    /// be distinct.
    public static func jwks(publicKeysOf keys: [SigningKey]) throws(KeyFileError) -> String {
        var seen = Set<String>()
        for key in keys where !seen.insert(key.keyID).inserted {
            throw KeyFileError(file: "key id", path: key.keyID, problem: "is used by two keys; a JWKS names each key once")
        }
        let entries = keys.map { key in
            ["kty": "OKP", "crv": "Ed25519", "alg": TokenAlgorithm.edDSA.rawValue, "use": "sig", "kid": key.keyID,
             "x": base64URLEncoded(key.privateKey.publicKey.rawRepresentation)]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Strings in dictionaries: encoding cannot fail.
        return String(decoding: try! encoder.encode(["keys": entries]), as: UTF8.self) + "\n"
    }

    /// Loads a key file; the error says what is wrong with it in one line.
    public static func load(path: String) throws(KeyFileError) -> SigningKey {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw KeyFileError(path: path, problem: "cannot be read (\(error.localizedDescription))")
        }
        let pemStart = text.range(of: "-----BEGIN")?.lowerBound ?? text.startIndex
        var keyID: String?
        for line in text[..<pemStart].split(whereSeparator: \.isNewline) {
            let line = line.trimmingCharacters(in: .whitespaces)
            guard line.hasPrefix("kid:") else { continue }
            let value = line.dropFirst(4).trimmingCharacters(in: .whitespaces)
            guard keyID == nil else { throw KeyFileError(path: path, problem: "has more than one 'kid:' line") }
            guard isValidKeyID(value) else {
                throw KeyFileError(path: path, problem: "has a kid that is not 1-64 of A-Z a-z 0-9 . _ -")
            }
            keyID = value
        }
        do {
            return SigningKey(privateKey: try EdDSA.PrivateKey(pem: String(text[pemStart...])), keyID: keyID)
        } catch {
            throw KeyFileError(path: path, problem: "is not an Ed25519 private key in PEM (PKCS#8) form")
        }
    }

    /// Writes the key as PEM (after a `kid:` line when the key id was chosen), readable by its
    /// owner only (mode 0600); refuses to overwrite.
    public func write(path: String) throws(KeyFileError) {
        let manager = FileManager.default
        guard !manager.fileExists(atPath: path) else { throw KeyFileError(path: path, problem: "already exists") }
        let text = (recordsKeyID ? "kid: \(keyID)\n" : "") + privateKey.pemRepresentation
        guard manager.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw KeyFileError(path: path, problem: "cannot be written")
        }
    }

    /// Loads `path`, or in dev mode generates it there when it does not exist yet.
    public static func loadOrCreate(path: String) throws(KeyFileError) -> (key: SigningKey, created: Bool) {
        if FileManager.default.fileExists(atPath: path) { return (try load(path: path), false) }
        let key: SigningKey
        do { key = try generate() } catch { throw KeyFileError(path: path, problem: "cannot generate a key: \(error)") }
        try key.write(path: path)
        return (key, true)
    }
}

/// The key a service signs its own calls with, re-read from its file on reload so that a
/// service can move to a new key without a restart; readers always get a whole key.
public final class SigningKeyStore: Sendable {
    /// The key file; nil for a fixed key (tests, tools).
    public let path: String?
    private let key: NIOLockedValueBox<SigningKey>

    /// A fixed key: `reloadKey()` keeps it.
    public init(key: SigningKey) {
        self.path = nil
        self.key = NIOLockedValueBox(key)
    }

    /// The key in `path`, re-read by `reloadKey()`.
    public init(path: String, key: SigningKey) {
        self.path = path
        self.key = NIOLockedValueBox(key)
    }

    /// The key to sign with now.
    public var current: SigningKey { key.withLockedValue { $0 } }

    /// Re-reads the file: a good file replaces the key (true when it is another key); a bad
    /// one throws its one-line reason and the current key stays in use.
    @discardableResult
    public func reloadKey() throws(KeyFileError) -> Bool {
        guard let path else { return false }
        let fresh = try SigningKey.load(path: path)
        return key.withLockedValue { current in
            defer { current = fresh }
            return current != fresh
        }
    }
}

/// A key file that cannot be used.
public struct KeyFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What the file is ("auth key file", "auth JWKS file", "IdP JWKS file").
    public let file: String
    public let path: String
    public let problem: String

    public init(file: String = "auth key file", path: String, problem: String) {
        self.file = file
        self.path = path
        self.problem = problem
    }

    public var description: String { "\(file) \(path) \(problem)" }
}

/// Mints bearer tokens (for `doorstep token`, tests and the benchmark).
public struct TokenIssuer: Sendable {
    private let key: SigningKey

    public init(key: SigningKey) { self.key = key }

    /// A signed token for `caller`, valid for `lifetime` from `now`.
    public func token(for caller: Caller, lifetime: Duration = .seconds(3600), now: Date = Date()) async throws -> String {
        let issued = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        let seconds = Double(lifetime.components.seconds)
        let claims = DoorstepClaims(
            sub: .init(value: caller.subject), exp: .init(value: issued + seconds), iat: .init(value: issued),
            iss: .init(value: DoorstepClaims.issuer), role: caller.role.rawValue,
            agencyID: caller.agencyID, collectorID: caller.collectorID)
        let keys = JWTKeyCollection()
        await keys.add(eddsa: key.privateKey, kid: JWKIdentifier(string: key.keyID))
        return try await keys.sign(claims, kid: JWKIdentifier(string: key.keyID))
    }
}
