import Foundation
import Logging
import ServiceAuth

/// The bearer-token keys of a service process (docs/OPERATIONS.md, "Keys, rotation and the
/// identity provider"): the key it signs its own calls to peers with, and the verifier of its
/// callers' tokens — Doorstep's own, by `--auth-jwks-file` (else the signing key's public key
/// alone), and the identity provider's when `--idp-jwks-file` is set. Both reload.
struct ServiceAuthentication {
    let signingKey: SigningKeyStore
    let verifier: TokenVerifier
    /// True when the key was taken from (or generated into) the data directory.
    let devMode: Bool

    /// Reads every key file; a missing, unreadable or malformed one fails with one line naming it.
    static func load(configuration: ServiceConfiguration, dataDirectory: String, logger: Logger) throws(ConfigurationError) -> ServiceAuthentication {
        let keyPath: String
        let key: SigningKey
        if let path = configuration.authKeyFile {
            do { key = try SigningKey.load(path: path) } catch { throw ConfigurationError(error.description) }
            keyPath = path
        } else {
            keyPath = dataDirectory + "/auth.key"
            do {
                let (loaded, created) = try SigningKey.loadOrCreate(path: keyPath)
                key = loaded
                logger.warning("dev mode: bearer tokens are verified with a key in the data directory; set --auth-key-file in production",
                               metadata: ["key-file": "\(keyPath)", "generated": "\(created)"])
            } catch {
                throw ConfigurationError(error.description)
            }
        }
        var issuers = [TrustedIssuer.doorstep(
            keys: configuration.authJWKSFile.map { .jwksFile($0, describedAs: "auth JWKS file") } ?? .signingKeyFile(keyPath))]
        if let identityProvider = configuration.identityProvider { issuers.append(.identityProvider(identityProvider)) }
        let verifier: TokenVerifier
        do { verifier = try TokenVerifier(issuers: issuers) } catch { throw ConfigurationError(error.description) }
        if let jwks = configuration.authJWKSFile {
            // Peers verify this service's calls with the same JWKS: its signing key must be there.
            let published = verifier.keys(of: DoorstepClaims.issuer)?.keys[key.keyID]
            guard published == key.verificationKey else {
                throw ConfigurationError(published == nil
                    ? "auth JWKS file \(jwks) has no key '\(key.keyID)' (the key of auth key file \(keyPath)): peers would refuse this service's calls; add it with `doorstep jwks`"
                    : "auth JWKS file \(jwks) holds another key under kid '\(key.keyID)' than auth key file \(keyPath)")
            }
        }
        logger.info("bearer-token keys", metadata: [
            "signing-kid": "\(key.keyID)",
            "trusted": "\(verifier.keyIDs.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value.joined(separator: ","))" }.joined(separator: "; "))",
        ])
        return ServiceAuthentication(signingKey: SigningKeyStore(path: keyPath, key: key), verifier: verifier,
                                     devMode: configuration.authKeyFile == nil)
    }
}

/// The signing key re-read from `--auth-key-file` (dev mode: `<data-dir>/auth.key`); peer
/// clients sign with the new key from their next token on.
extension SigningKeyStore: Reloadable {
    public var reloadName: String { "signing-key" }
    public var watchedFiles: [String] { path.map { [$0] } ?? [] }

    public func reload() throws(ConfigurationError) {
        do { try reloadKey() } catch { throw ConfigurationError(error.description) }
    }
}

/// The keys that verify callers' tokens, re-read from the JWKS files (or the signing key file).
extension TokenVerifier: Reloadable {
    public var reloadName: String { "token-keys" }

    public func reload() throws(ConfigurationError) {
        do { try reloadKeys() } catch { throw ConfigurationError(error.description) }
    }
}
