import Foundation
import JWTKit
import NIOConcurrencyHelpers
import RPC
import RPCWire

/// Verifies `authorization: Bearer <token>` on every call, synchronously: the token's `iss`
/// picks a ``TrustedIssuer``, its `kid` one of that issuer's keys, whose type fixes the one
/// algorithm the token's `alg` must name; then the signature, then the claims (expiry,
/// not-before, issued-at, audience, role). Every refusal is UNAUTHENTICATED with a one-line
/// reason.
///
/// A verified token is remembered until it expires, so the signature check is paid once per
/// token rather than once per call; the cache is bounded. ``reloadKeys()`` re-reads every
/// issuer's key files and swaps them in at once; remembered tokens of a key that is gone (or
/// replaced under the same `kid`) are forgotten, so they are refused from then on (within
/// ``reuseLimit`` on a connection that already presented them).
///
/// jwt-kit parses the token (its `JWTHeaderField` JSON values hold the claims, whose names are
/// configurable); signatures are checked with swift-crypto directly, because jwt-kit hands out
/// its verifying objects only through its actor, and both this per-call path and a reload
/// must not suspend.
public final class TokenVerifier: Authenticator, Sendable {
    public let issuers: [TrustedIssuer]
    private let byIssuer: [String: TrustedIssuer]
    private let state: NIOLockedValueBox<State>
    private let parser = DefaultJWTParser()
    private let now: @Sendable () -> Date

    /// Most tokens remembered at once; past it the cache starts over.
    static let cacheLimit = 4096
    /// Longest a connection reuses a verification without asking again, in seconds: bounds how
    /// long a removed key's token still passes on a connection that presented it before the
    /// reload, and the effect of a wall-clock jump on the expiry translated to the monotonic
    /// clock. Asking again costs a cache lookup.
    public static let reuseLimit: Double = 5

    private struct Remembered {
        let caller: Caller
        /// `exp` plus the issuer's clock skew.
        let expires: Date
        let issuer: String
        let keyID: String
    }

    private struct State {
        var keys: [String: KeySet]
        /// Bumped by every reload: a verification that started before it is not remembered.
        var generation: UInt64 = 0
        var cache: [String: Remembered] = [:]
    }

    /// Loads every issuer's keys (the error names the file that cannot be used). `now` is
    /// injectable for tests.
    /// - Precondition: at least one issuer, each `iss` once.
    public init(issuers: [TrustedIssuer], now: @escaping @Sendable () -> Date = { Date() }) throws(KeyFileError) {
        precondition(!issuers.isEmpty && Set(issuers.map(\.issuer)).count == issuers.count, "one TrustedIssuer per iss")
        var keys: [String: KeySet] = [:]
        for issuer in issuers { keys[issuer.issuer] = try issuer.keys.load() }
        self.issuers = issuers
        self.byIssuer = Dictionary(uniqueKeysWithValues: issuers.map { ($0.issuer, $0) })
        self.state = NIOLockedValueBox(State(keys: keys))
        self.now = now
    }

    /// Doorstep tokens of one fixed key (tests, tools).
    public convenience init(key: SigningKey, now: @escaping @Sendable () -> Date = { Date() }) async throws {
        try self.init(issuers: [.doorstep(keys: .fixed(KeySet([key.verificationKey])))], now: now)
    }

    /// The key ids each issuer's tokens may name now.
    public var keyIDs: [String: [String]] {
        state.withLockedValue { $0.keys.mapValues(\.keyIDs) }
    }

    /// The current keys of `issuer`.
    public func keys(of issuer: String) -> KeySet? {
        state.withLockedValue { $0.keys[issuer] }
    }

    /// The files ``reloadKeys()`` re-reads.
    public var watchedFiles: [String] { issuers.compactMap(\.keys.file) }

    /// Re-reads every issuer's keys. All or nothing: when one file cannot be used, this throws
    /// its one-line reason and every issuer keeps its current keys. Remembered verifications
    /// made with a key that is no longer there, or is another key now, are forgotten.
    public func reloadKeys() throws(KeyFileError) {
        var fresh: [String: KeySet] = [:]
        for issuer in issuers { fresh[issuer.issuer] = try issuer.keys.load() }
        state.withLockedValue { state in
            let old = state.keys
            state.keys = fresh
            state.generation &+= 1
            guard old != fresh else { return }
            state.cache = state.cache.filter { _, remembered in
                fresh[remembered.issuer]?.keys[remembered.keyID] == old[remembered.issuer]?.keys[remembered.keyID]
            }
        }
    }

    public func authenticate(_ metadata: Metadata) throws(RPCError) -> Authentication {
        guard let header = metadata["authorization"] else {
            throw .unauthenticated("missing authorization metadata (expected 'Bearer <token>')")
        }
        guard Self.hasBearerPrefix(header) else {
            throw .unauthenticated("authorization metadata must be 'Bearer <token>'")
        }
        let current = now()
        let (remembered, keys, generation) = state.withLockedValue { ($0.cache[header], $0.keys, $0.generation) }
        if let remembered, current < remembered.expires {
            return Self.authentication(remembered.caller, header: header, expires: remembered.expires, now: current)
        }
        let verified = try verify(Array(header.utf8.dropFirst(7)), keys: keys, at: current)
        state.withLockedValue { state in
            guard state.generation == generation else { return }
            if state.cache.count >= Self.cacheLimit { state.cache.removeAll(keepingCapacity: true) }
            state.cache[header] = verified
        }
        return Self.authentication(verified.caller, header: header, expires: verified.expires, now: current)
    }

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

    private func verify(_ token: [UInt8], keys: [String: KeySet], at current: Date) throws(RPCError) -> Remembered {
        let parsed: (header: JWTHeader, payload: TokenClaims, signature: Data)
        do {
            parsed = try parser.parse(token, as: TokenClaims.self)
        } catch {
            throw .unauthenticated("malformed bearer token (expected a JWT: three base64url parts, JSON header and claims)")
        }
        // RFC 7515 §4.1.11: a recipient must refuse extensions it does not understand.
        guard parsed.header.fields["crit"] == nil else {
            throw .unauthenticated("bearer token header has critical extensions (crit), which are not supported")
        }
        guard let alg = parsed.header.alg else { throw .unauthenticated("bearer token header has no alg") }
        guard let algorithm = TokenAlgorithm(rawValue: alg) else {
            throw .unauthenticated("bearer token alg \(quoted(alg)) is not accepted (\(TokenAlgorithm.accepted))")
        }
        let claims = parsed.payload
        guard let iss = claims.fields["iss"] else { throw .unauthenticated("bearer token has no iss claim") }
        guard let issuerName = iss.asString, let issuer = byIssuer[issuerName], let issuerKeys = keys[issuerName] else {
            throw .unauthenticated("bearer token issuer \(quoted(iss.asString ?? "\(iss)")) is not trusted by this service")
        }
        if let kid = parsed.header.fields["kid"], kid.asString == nil {
            throw .unauthenticated("bearer token header kid is not a string")
        }
        let key: VerificationKey
        switch issuerKeys.key(for: parsed.header.kid, issuer: issuerName) {
        case .success(let found): key = found
        case .failure(let problem): throw .unauthenticated(problem.problem)
        }
        // The key decides the algorithm; a token cannot choose another for it.
        guard algorithm == key.algorithm else {
            throw .unauthenticated("bearer token alg \(alg) does not match key \(quoted(key.keyID)), which is \(key.algorithm.rawValue)")
        }
        // The signing input is "header.payload": everything before the last dot.
        guard let lastDot = token.lastIndex(of: UInt8(ascii: ".")), key.isValidSignature(parsed.signature, for: token[..<lastDot]) else {
            throw .unauthenticated("bearer token signature is invalid")
        }
        let expires = try check(claims, of: issuer, at: current)
        return Remembered(caller: try caller(from: claims, of: issuer), expires: expires, issuer: issuerName, keyID: key.keyID)
    }

    /// Expiry, not-before, issued-at and audience; returns the expiry with the skew.
    private func check(_ claims: TokenClaims, of issuer: TrustedIssuer, at current: Date) throws(RPCError) -> Date {
        let skew = issuer.clockSkew
        guard let exp = try claims.time("exp") else { throw .unauthenticated("bearer token has no exp claim") }
        guard current < exp + skew else {
            throw .unauthenticated("bearer token expired at \(Self.format(exp))" + (skew > 0 ? " (clock skew \(Int(skew)) s)" : ""))
        }
        if let nbf = try claims.time("nbf"), current + skew < nbf {
            throw .unauthenticated("bearer token is not valid before \(Self.format(nbf))" + (skew > 0 ? " (clock skew \(Int(skew)) s)" : ""))
        }
        if issuer.refusesFutureIssuedAt, let iat = try claims.time("iat"), iat > current + skew {
            throw .unauthenticated("bearer token is issued in the future (iat \(Self.format(iat)); clock skew \(Int(skew)) s)")
        }
        if let audience = issuer.audience {
            guard let aud = claims.fields["aud"] else {
                throw .unauthenticated("bearer token has no aud claim (expected \(quoted(audience)))")
            }
            let audiences = aud.asString.map { [$0] } ?? (try? aud.asArray(of: String.self))
            guard let audiences else { throw .unauthenticated("bearer token aud is neither a string nor an array of strings") }
            guard audiences.contains(audience) else {
                throw .unauthenticated("bearer token audience \(quoted(audiences.joined(separator: ","))) does not include \(quoted(audience))")
            }
        }
        return exp + skew
    }

    /// The caller the claims name: subject, role (never `service` from an issuer that may not
    /// grant it), agency and collector.
    private func caller(from claims: TokenClaims, of issuer: TrustedIssuer) throws(RPCError) -> Caller {
        guard let subject = claims.fields["sub"]?.asString, !subject.isEmpty else {
            throw .unauthenticated("bearer token has no sub claim")
        }
        let roleNames = Caller.Role.allCases.filter { $0 != .service || issuer.mayGrantServiceRole }.map(\.rawValue)
        guard let value = claims.fields[issuer.roleClaim] else {
            throw .unauthenticated("bearer token has no \(quoted(issuer.roleClaim)) claim (the caller's role)")
        }
        let named: [String]
        if let single = value.asString {
            named = [single]
        } else if let array = try? value.asArray(of: String.self) {
            named = array
        } else {
            throw .unauthenticated("bearer token claim \(quoted(issuer.roleClaim)) is neither a string nor an array of strings")
        }
        if !issuer.mayGrantServiceRole, named.contains(Caller.Role.service.rawValue) {
            throw .unauthenticated("role 'service' is not accepted from issuer \(quoted(issuer.issuer)): "
                + "service identity is Doorstep's own signing key")
        }
        let roles = named.compactMap(Caller.Role.init(rawValue:))
        guard roles.count == 1, let role = roles.first else {
            let found = value.asString.map { "value \(quoted($0)) is not a" } ?? (roles.isEmpty ? "holds no" : "holds more than one")
            throw .unauthenticated("bearer token claim \(quoted(issuer.roleClaim)) \(found) Doorstep role (\(roleNames.joined(separator: ", ")))")
        }
        return Caller(role: role, subject: subject,
                      agencyID: try claims.optionalString(issuer.agencyClaim),
                      collectorID: try claims.optionalString(issuer.collectorClaim))
    }

    private static func format(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}

/// A token's claims as JSON values: the identity provider's claim names are configurable, so
/// they are read by name rather than decoded into fixed fields. Checked by ``TokenVerifier``.
struct TokenClaims: JWTPayload {
    let fields: [String: JWTHeaderField]

    init(from decoder: any Decoder) throws {
        fields = try decoder.singleValueContainer().decode([String: JWTHeaderField].self)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(fields)
    }

    func verify(using _: some JWTAlgorithm) throws {
        throw JWTError.generic(identifier: "TokenClaims", reason: "verified by TokenVerifier only")
    }

    /// A NumericDate claim (RFC 7519 §2: seconds since the epoch, integer or not); nil when absent.
    func time(_ name: String) throws(RPCError) -> Date? {
        guard let value = fields[name] else { return nil }
        if let seconds = value.asInt { return Date(timeIntervalSince1970: Double(seconds)) }
        if let seconds = value.asDecimal, seconds.isFinite { return Date(timeIntervalSince1970: seconds) }
        throw .unauthenticated("bearer token \(name) claim is not a number of seconds")
    }

    /// A string claim; nil when absent or null.
    func optionalString(_ name: String) throws(RPCError) -> String? {
        guard let value = fields[name], !value.isNull else { return nil }
        guard let string = value.asString else { throw .unauthenticated("bearer token claim \(quoted(name)) is not a string") }
        return string
    }
}
