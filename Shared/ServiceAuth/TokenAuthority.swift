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

    /// Expiry and issuer; the signature is checked by the caller of this.
    func checkClaims(now: Date) throws {
        try exp.verifyNotExpired(currentDate: now)
        guard iss.value == Self.issuer else {
            throw JWTError.claimVerificationFailure(failedClaim: iss, reason: "unexpected issuer")
        }
    }

    public func verify(using _: some JWTAlgorithm) throws {
        try checkClaims(now: Date())
    }
}

/// An Ed25519 signing key in a PEM file (PKCS#8 private key). `doorstep keygen` writes one;
/// services load it to verify tokens, `doorstep token` to sign them.
public struct SigningKey: Sendable {
    let privateKey: EdDSA.PrivateKey
    /// Key id written into tokens (`kid`): derived from the public key, so rotating the key
    /// file changes it.
    public let keyID: String

    init(privateKey: EdDSA.PrivateKey) {
        self.privateKey = privateKey
        let raw = [UInt8](privateKey.publicKey.rawRepresentation)
        self.keyID = "ed25519-" + raw.prefix(6).map { String(format: "%02x", $0) }.joined()
    }

    /// A new random key.
    public static func generate() throws -> SigningKey {
        SigningKey(privateKey: try EdDSA.PrivateKey(curve: .ed25519))
    }

    /// Loads a key file; the error says what is wrong with it in one line.
    public static func load(path: String) throws(KeyFileError) -> SigningKey {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw KeyFileError(path: path, problem: "cannot be read (\(error.localizedDescription))")
        }
        do {
            return SigningKey(privateKey: try EdDSA.PrivateKey(pem: text))
        } catch {
            throw KeyFileError(path: path, problem: "is not an Ed25519 private key in PEM (PKCS#8) form")
        }
    }

    /// Writes the key as PEM, readable by its owner only (mode 0600); refuses to overwrite.
    public func write(path: String) throws(KeyFileError) {
        let manager = FileManager.default
        guard !manager.fileExists(atPath: path) else { throw KeyFileError(path: path, problem: "already exists") }
        guard manager.createFile(atPath: path, contents: Data(privateKey.pemRepresentation.utf8),
                                 attributes: [.posixPermissions: 0o600]) else {
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

/// A key file that cannot be used.
public struct KeyFileError: Error, Sendable, CustomStringConvertible {
    public let path: String
    public let problem: String
    public var description: String { "auth key file \(path) \(problem)" }
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

/// Verifies `authorization: Bearer <token>` on every call, synchronously (jwt-kit's own
/// verification is actor-bound and async; the algorithm object it hands out is not). A
/// verified token is remembered until it expires, so the Ed25519 check is paid once per
/// token rather than once per call; the cache is bounded.
public final class TokenVerifier: Authenticator, Sendable {
    private let algorithm: any JWTAlgorithm
    private let keyID: String
    private let parser = DefaultJWTParser()
    private let now: @Sendable () -> Date
    private let cache = NIOLockedValueBox([String: (caller: Caller, expires: Date)]())
    /// Most tokens remembered at once; past it the cache starts over.
    static let cacheLimit = 4096

    /// `now` is injectable for tests.
    public init(key: SigningKey, now: @escaping @Sendable () -> Date = { Date() }) async throws {
        let keys = JWTKeyCollection()
        await keys.add(eddsa: key.privateKey.publicKey, kid: JWKIdentifier(string: key.keyID))
        self.algorithm = try await keys.getKey(for: JWKIdentifier(string: key.keyID))
        self.keyID = key.keyID
        self.now = now
    }

    public func authenticate(_ metadata: Metadata) throws(RPCError) -> Authentication {
        guard let header = metadata["authorization"] else {
            throw .unauthenticated("missing authorization metadata (expected 'Bearer <token>')")
        }
        guard Self.hasBearerPrefix(header) else {
            throw .unauthenticated("authorization metadata must be 'Bearer <token>'")
        }
        let current = now()
        let remembered = cache.withLockedValue { $0[header] }
        if let remembered, current < remembered.expires {
            return Self.authentication(remembered.caller, header: header, expires: remembered.expires, now: current)
        }
        let claims = try verify(String(header.utf8.dropFirst(7))!, at: current)
        guard let role = Caller.Role(rawValue: claims.role) else {
            throw .unauthenticated("token names an unknown role '\(claims.role)'")
        }
        let caller = Caller(role: role, subject: claims.sub.value, agencyID: claims.agencyID, collectorID: claims.collectorID)
        cache.withLockedValue { cache in
            if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
            cache[header] = (caller, claims.exp.value)
        }
        return Self.authentication(caller, header: header, expires: claims.exp.value, now: current)
    }

    /// Longest a connection reuses a verification without asking again (bounds the effect
    /// of a wall-clock jump on the expiry translated to the monotonic clock).
    static let reuseLimit: Double = 60

    private static func authentication(_ caller: Caller, header: String, expires: Date, now: Date) -> Authentication {
        let seconds = min(expires.timeIntervalSince(now), reuseLimit)
        return Authentication(caller: caller, credential: header,
                              validUntil: .now + .milliseconds(Int64(max(seconds, 0) * 1000)))
    }

    /// "Bearer " (any case) followed by at least one character, compared byte-wise.
    static func hasBearerPrefix(_ header: String) -> Bool {
        var utf8 = header.utf8.makeIterator()
        for expected in "bearer ".utf8 {
            guard let byte = utf8.next() else { return false }
            // ASCII letters compare case-insensitively; the space must match exactly.
            guard byte == expected || (expected != 0x20 && byte | 0x20 == expected) else { return false }
        }
        return utf8.next() != nil
    }

    private func verify(_ token: String, at current: Date) throws(RPCError) -> DoorstepClaims {
        let bytes = Array(token.utf8)
        let parsed: (header: JWTHeader, payload: DoorstepClaims, signature: Data)
        do {
            parsed = try parser.parse(bytes, as: DoorstepClaims.self)
        } catch {
            throw .unauthenticated("malformed bearer token")
        }
        guard parsed.header.alg == algorithm.name, parsed.header.kid == nil || parsed.header.kid == keyID else {
            throw .unauthenticated("bearer token is not signed by this deployment's key")
        }
        // The signing input is "header.payload": everything before the last dot.
        guard let lastDot = bytes.lastIndex(of: UInt8(ascii: ".")),
              (try? algorithm.verify(parsed.signature, signs: bytes[..<lastDot])) == true else {
            throw .unauthenticated("bearer token signature is invalid")
        }
        do {
            try parsed.payload.checkClaims(now: current)
        } catch {
            throw .unauthenticated("bearer token is expired or not issued by doorstep")
        }
        return parsed.payload
    }
}
