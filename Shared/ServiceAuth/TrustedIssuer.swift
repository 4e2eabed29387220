import Foundation

/// An issuer whose bearer tokens a service accepts, where its keys come from, and how its
/// claims are checked and read. A token is matched to its issuer by its `iss` claim, then
/// verified only with that issuer's keys, so one issuer's key can never vouch for another's
/// tokens. Two issuers exist: Doorstep itself (``doorstep(keys:)``) and the lender's identity
/// provider (``identityProvider(_:)``).
public struct TrustedIssuer: Sendable {
    /// Where the issuer's public keys come from.
    public enum Keys: Sendable {
        /// Fixed keys (tests, tools): a reload keeps them.
        case fixed(KeySet)
        /// The public key of a Doorstep signing key file (`doorstep keygen`), re-read on reload.
        case signingKeyFile(String)
        /// A JWKS file, re-read on reload; `describedAs` names it in errors ("auth JWKS file").
        case jwksFile(String, describedAs: String)

        /// The file a reload re-reads, if any.
        public var file: String? {
            switch self {
            case .fixed: nil
            case .signingKeyFile(let path), .jwksFile(let path, _): path
            }
        }

        func load() throws(KeyFileError) -> KeySet {
            switch self {
            case .fixed(let keys): return keys
            case .signingKeyFile(let path): return KeySet([try SigningKey.load(path: path).verificationKey])
            case .jwksFile(let path, let file): return try KeySet.load(jwksFile: path, describedAs: file)
            }
        }
    }

    /// The exact `iss` value of its tokens.
    public var issuer: String
    public var keys: Keys
    /// A value the token's `aud` (a string or an array of strings) must hold; nil: not checked
    /// (Doorstep's own tokens carry no audience).
    public var audience: String?
    /// The claims that carry the caller's role (one of `Caller.Role`'s raw values; or an array
    /// of strings holding exactly one of them), agency and collector.
    public var roleClaim = "role"
    public var agencyClaim = "agency_id"
    public var collectorClaim = "collector_id"
    /// How far the issuer's clock may be from ours: `exp`, `nbf` and `iat` are each given
    /// this much leeway.
    public var clockSkew: TimeInterval = 0
    /// Whether an `iat` later than now (beyond the skew) is refused.
    public var refusesFutureIssuedAt = true
    /// Whether the issuer's tokens may carry role `service`. Only Doorstep's own key: the
    /// service role skips the agency and collector scoping that confines people, and a service
    /// proves it holds the deployment's signing key (and, on mutual TLS, that service's
    /// certificate); an identity provider that speaks for people must not be able to mint it.
    public var mayGrantServiceRole = false

    public init(issuer: String, keys: Keys) {
        self.issuer = issuer
        self.keys = keys
    }

    /// Doorstep's own tokens (`doorstep token`, services calling their peers): issuer
    /// `doorstep`, claims `role`, `agency_id`, `collector_id`, no audience, `exp` checked
    /// exactly (the services' clocks are kept in step by NTP) and `iat` not checked (a peer's
    /// clock a second ahead must not fail its calls).
    public static func doorstep(keys: Keys) -> TrustedIssuer {
        var issuer = TrustedIssuer(issuer: DoorstepClaims.issuer, keys: keys)
        issuer.refusesFutureIssuedAt = false
        issuer.mayGrantServiceRole = true
        return issuer
    }

    /// The lender's identity provider (OIDC access or ID tokens signed RS256, ES256 or EdDSA).
    public static func identityProvider(_ settings: IdentityProviderSettings) -> TrustedIssuer {
        var issuer = TrustedIssuer(issuer: settings.issuer, keys: .jwksFile(settings.jwksFile, describedAs: "IdP JWKS file"))
        issuer.audience = settings.audience
        issuer.roleClaim = settings.roleClaim
        issuer.agencyClaim = settings.agencyClaim
        issuer.collectorClaim = settings.collectorClaim
        issuer.clockSkew = settings.clockSkew
        return issuer
    }
}

/// How a service accepts tokens from the lender's identity provider (the `--idp-*` flags,
/// docs/OPERATIONS.md "Keys, rotation and the identity provider").
public struct IdentityProviderSettings: Sendable, Equatable {
    /// The provider's public keys, a JWKS file (re-read on reload).
    public var jwksFile: String
    /// The exact `iss` of its tokens (not `doorstep`).
    public var issuer: String
    /// A value its tokens' `aud` must hold: the name Doorstep is registered under at the provider.
    public var audience: String
    /// Default `role`.
    public var roleClaim = "role"
    /// Default `agency_id`.
    public var agencyClaim = "agency_id"
    /// Default `collector_id`.
    public var collectorClaim = "collector_id"
    /// Leeway for `exp`, `nbf` and `iat`. Default 60 seconds.
    public var clockSkew: TimeInterval = 60

    public init(jwksFile: String, issuer: String, audience: String) {
        self.jwksFile = jwksFile
        self.issuer = issuer
        self.audience = audience
    }
}
