import ArgumentParser
import Foundation
import Logging
import RPC
import ServiceAuth
import Storage
import TransportSecurity

/// What differs between the executables: the name and the default ports.
public protocol ServiceDefaults: Sendable {
    /// The executable's name, e.g. "accounts".
    static var name: String { get }
    /// Default gRPC port (docs/OPERATIONS.md: 50051 accounts, 50052 scheduling, 50053 visits).
    static var defaultPort: Int { get }
    /// Default metrics port (9101, 9102, 9103).
    static var defaultMetricsPort: Int { get }
}

/// The flags every service takes (docs/OPERATIONS.md ("Flags and environment")), each with an
/// environment equivalent. A flag wins over the environment, the environment over the
/// default. `--help` lists every one with its default.
public struct ServiceOptions<Defaults: ServiceDefaults>: ParsableArguments {
    @Option(help: ArgumentHelp(
        "gRPC listen address. Env DOORSTEP_LISTEN. Default 127.0.0.1:\(Defaults.defaultPort).", valueName: "host:port"))
    public var listen: String?

    @Option(help: ArgumentHelp(
        "Directory of the service's SQLite database when no --database-url is given (and, in dev mode, its keys); created if missing. Env DOORSTEP_DATA_DIR. Default ./data.",
        valueName: "path"))
    public var dataDir: String?

    @Option(help: ArgumentHelp(
        "PostgreSQL database of this service (postgres://user[:password]@host[:port]/database[?sslmode=disable|require&schema=NAME]); each service its own database or schema. Env DOORSTEP_DATABASE_URL. Default: none, SQLite in the data directory.",
        valueName: "url"))
    public var databaseUrl: String?

    @Option(help: ArgumentHelp(
        "PostgreSQL only: most pooled connections (= transactions in flight) per process. Env DOORSTEP_DATABASE_POOL_SIZE. Default 10.",
        valueName: "n"))
    public var databasePoolSize: Int?

    @Option(help: ArgumentHelp(
        "PostgreSQL only: how long one connection attempt may take. Env DOORSTEP_DATABASE_CONNECT_TIMEOUT_SECONDS. Default 5.",
        valueName: "seconds"))
    public var databaseConnectTimeoutSeconds: Int?

    @Option(help: ArgumentHelp(
        "PostgreSQL only: longest statement (the server's statement_timeout). Env DOORSTEP_DATABASE_STATEMENT_TIMEOUT_SECONDS. Default 30.",
        valueName: "seconds"))
    public var databaseStatementTimeoutSeconds: Int?

    @Option(help: ArgumentHelp(
        "PostgreSQL only: at start, how long to keep trying to reach the database before exiting with an error. Env DOORSTEP_DATABASE_STARTUP_TIMEOUT_SECONDS. Default 60.",
        valueName: "seconds"))
    public var databaseStartupTimeoutSeconds: Int?

    @Option(help: ArgumentHelp(
        "Prometheus metrics address (GET /metrics), or 'off'. Env DOORSTEP_METRICS_LISTEN. Default 127.0.0.1:\(Defaults.defaultMetricsPort).",
        valueName: "host:port"))
    public var metricsListen: String?

    @Option(help: ArgumentHelp(
        "Accounts service address(es), comma-separated for replicas. Env DOORSTEP_ACCOUNTS_ADDR. Default 127.0.0.1:50051.",
        valueName: "host:port[,host:port...]"))
    public var accountsAddr: String?

    @Option(help: ArgumentHelp(
        "Scheduling service address(es). Env DOORSTEP_SCHEDULING_ADDR. Default 127.0.0.1:50052.",
        valueName: "host:port[,host:port...]"))
    public var schedulingAddr: String?

    @Option(help: ArgumentHelp(
        "Visits service address(es). Env DOORSTEP_VISITS_ADDR. Default 127.0.0.1:50053.",
        valueName: "host:port[,host:port...]"))
    public var visitsAddr: String?

    @Option(help: ArgumentHelp(
        "Ed25519 key (PEM, `doorstep keygen`) that verifies bearer tokens and signs this service's own. Env DOORSTEP_AUTH_KEY_FILE. Default: dev mode, <data-dir>/auth.key, generated when absent.",
        valueName: "path"))
    public var authKeyFile: String?

    @Option(help: ArgumentHelp(
        "Public keys (JWKS, `doorstep jwks`) that verify Doorstep's own bearer tokens, by kid; must hold the key of --auth-key-file. Reloaded on SIGHUP and when the file changes. Needs --auth-key-file. Env DOORSTEP_AUTH_JWKS_FILE. Default: the public key of --auth-key-file alone.",
        valueName: "path"))
    public var authJwksFile: String?

    @Option(help: ArgumentHelp(
        "The lender's identity provider's public keys (JWKS file); set, its RS256/ES256/EdDSA tokens are accepted beside Doorstep's. Reloaded like --auth-jwks-file. Needs --idp-issuer and --idp-audience. Env DOORSTEP_IDP_JWKS_FILE. Default: none.",
        valueName: "path"))
    public var idpJwksFile: String?

    @Option(help: ArgumentHelp(
        "The exact iss of the identity provider's tokens. Env DOORSTEP_IDP_ISSUER. Default: none.", valueName: "url"))
    public var idpIssuer: String?

    @Option(help: ArgumentHelp(
        "A value the identity provider's tokens must hold in aud (Doorstep's name at the provider). Env DOORSTEP_IDP_AUDIENCE. Default: none.",
        valueName: "audience"))
    public var idpAudience: String?

    @Option(help: ArgumentHelp(
        "Identity provider claim holding the caller's role (platform, agency_manager, collector or compliance; a string, or an array holding one of them). Env DOORSTEP_IDP_ROLE_CLAIM. Default role.",
        valueName: "claim"))
    public var idpRoleClaim: String?

    @Option(help: ArgumentHelp(
        "Identity provider claim holding the caller's agency id. Env DOORSTEP_IDP_AGENCY_CLAIM. Default agency_id.", valueName: "claim"))
    public var idpAgencyClaim: String?

    @Option(help: ArgumentHelp(
        "Identity provider claim holding the caller's collector id. Env DOORSTEP_IDP_COLLECTOR_CLAIM. Default collector_id.",
        valueName: "claim"))
    public var idpCollectorClaim: String?

    @Option(help: ArgumentHelp(
        "Leeway for the identity provider's exp, nbf and iat. Env DOORSTEP_IDP_CLOCK_SKEW_SECONDS. Default 60 (0...300).",
        valueName: "seconds"))
    public var idpClockSkewSeconds: Int?

    @Option(help: ArgumentHelp(
        "TLS certificate chain (PEM, leaf first) of the gRPC and metrics listeners; with --tls-key-file, turns TLS on (ALPN h2, TLS 1.2+). Reloaded on SIGHUP and when the file changes. Env DOORSTEP_TLS_CERT_FILE. Default: none, plaintext.",
        valueName: "path"))
    public var tlsCertFile: String?

    @Option(help: ArgumentHelp(
        "Private key (PEM) of --tls-cert-file. Env DOORSTEP_TLS_KEY_FILE. Default: none.", valueName: "path"))
    public var tlsKeyFile: String?

    @Option(help: ArgumentHelp(
        "CA certificates (PEM) the gRPC listener requires client certificates from (mutual TLS); a service token is then accepted only with a certificate naming that service. Needs --tls-cert-file. Env DOORSTEP_TLS_CLIENT_CA_FILE. Default: none, no client certificate asked.",
        valueName: "path"))
    public var tlsClientCaFile: String?

    @Option(help: ArgumentHelp(
        "CA certificates (PEM) that peer services' certificates must come from; set, calls to peers use TLS and check the peer's name against the address dialled. Env DOORSTEP_TLS_CA_FILE. Default: none, plaintext to peers.",
        valueName: "path"))
    public var tlsCaFile: String?

    @Option(help: ArgumentHelp(
        "Client certificate (PEM) presented to peer services (mutual TLS). Needs --tls-ca-file. Env DOORSTEP_TLS_CLIENT_CERT_FILE. Default: --tls-cert-file when peers use TLS.",
        valueName: "path"))
    public var tlsClientCertFile: String?

    @Option(help: ArgumentHelp(
        "Private key (PEM) of --tls-client-cert-file. Env DOORSTEP_TLS_CLIENT_KEY_FILE. Default: --tls-key-file when peers use TLS.",
        valueName: "path"))
    public var tlsClientKeyFile: String?

    @Option(help: ArgumentHelp(
        "How often certificate and key files are checked for changes (reloaded when changed); 0 = on SIGHUP only. Env DOORSTEP_RELOAD_CHECK_SECONDS. Default 5.",
        valueName: "seconds"))
    public var reloadCheckSeconds: Int?

    @Option(help: ArgumentHelp(
        "trace, debug, info, notice, warning, error or critical. Env DOORSTEP_LOG_LEVEL. Default info.", valueName: "level"))
    public var logLevel: String?

    @Option(help: ArgumentHelp(
        "text (one human-readable line per event) or json (one JSON object per line, for log collectors). Env DOORSTEP_LOG_FORMAT. Default text.",
        valueName: "format"))
    public var logFormat: String?

    @Option(help: ArgumentHelp(
        "Largest request message accepted (RESOURCE_EXHAUSTED above). Env DOORSTEP_MAX_RECEIVE_MESSAGE_BYTES. Default 4194304.",
        valueName: "bytes"))
    public var maxReceiveMessageBytes: Int?

    @Option(help: ArgumentHelp(
        "HTTP/2 concurrent streams per connection. Env DOORSTEP_MAX_CONCURRENT_STREAMS. Default 256.", valueName: "n"))
    public var maxConcurrentStreams: Int?

    @Option(help: ArgumentHelp(
        "gRPC server reflection (grpc.reflection.v1 and v1alpha, for grpcurl and GUI clients; no credentials needed: it shows only the published contract): on or off. Env DOORSTEP_REFLECTION. Default on.",
        valueName: "on|off"))
    public var reflection: String?

    @Option(help: ArgumentHelp(
        "On SIGTERM, how long in-flight calls may finish. Env DOORSTEP_DRAIN_TIMEOUT_SECONDS. Default 30.", valueName: "seconds"))
    public var drainTimeoutSeconds: Int?

    @Option(help: ArgumentHelp(
        "How long responses are remembered for request_id retries. Env DOORSTEP_IDEMPOTENCY_RETENTION_HOURS. Default 24.",
        valueName: "hours"))
    public var idempotencyRetentionHours: Int?

    @Option(help: ArgumentHelp(
        "Scheduling and visits: how long a replica's claim on the outbox messages it is delivering lasts; the claims of a replica that died pass to another after this. Env DOORSTEP_OUTBOX_CLAIM_SECONDS. Default 60.",
        valueName: "seconds"))
    public var outboxClaimSeconds: Int?

    @Option(help: ArgumentHelp(
        "TEST ONLY, dev mode only (refused with --auth-key-file): a file holding a clock offset in milliseconds that is added to the wall clock (re-read at most every 50 ms), so tests can move time forward. Env DOORSTEP_TEST_CLOCK_OFFSET_FILE. Default: none.",
        valueName: "path"))
    public var testClockOffsetFile: String?

    @Option(help: ArgumentHelp(
        "AES-256 key (base64, 32 bytes) sealing webhook subscriptions' signing secrets. Env DOORSTEP_WEBHOOK_KEY_FILE. Default <data-dir>/webhook.key, created (mode 0600) when absent.",
        valueName: "path"))
    public var webhookKeyFile: String?

    @Flag(help: ArgumentHelp(
        "Accept http:// webhook receivers (tests, development). Env DOORSTEP_WEBHOOK_ALLOW_HTTP=true. Default: https only."))
    public var webhookAllowHttp = false

    @Flag(help: ArgumentHelp(
        "Accept webhook receivers on loopback, private (RFC 1918, fc00::/7), link-local, shared and other non-public addresses (tests, development). Env DOORSTEP_WEBHOOK_ALLOW_PRIVATE_ADDRESSES=true. Default: refused."))
    public var webhookAllowPrivateAddresses = false

    @Option(help: ArgumentHelp(
        "Failed webhook attempts in a row after which a subscription is paused (1-1000). Env DOORSTEP_WEBHOOK_MAX_ATTEMPTS. Default 20.",
        valueName: "n"))
    public var webhookMaxAttempts: Int?

    @Option(help: ArgumentHelp(
        "Longest wait between webhook attempts; the wait doubles from 1 s up to it (1-3600). Env DOORSTEP_WEBHOOK_MAX_BACKOFF_SECONDS. Default 300.",
        valueName: "seconds"))
    public var webhookMaxBackoffSeconds: Int?

    @Option(help: ArgumentHelp(
        "Days the event log keeps its events (WatchEvents, webhooks); older ones are purged hourly (0-3650, 0 = keep forever). Env DOORSTEP_EVENTS_RETENTION_DAYS. Default 90.",
        valueName: "days"))
    public var eventsRetentionDays: Int?

    public init() {}

    /// Flags, then `environment`, then defaults, validated into a configuration; throws a
    /// one-line reason for the first bad value.
    public func resolve(environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigurationError) -> ServiceConfiguration {
        let options = OptionSource(environment: environment)
        func value(_ flag: String?, _ variable: String) -> (String, String)? { options.text(flag, variable) }
        func address(_ flag: String?, _ variable: String, default fallback: String) throws(ConfigurationError) -> GRPCClient.Target {
            let (text, source) = value(flag, variable) ?? (fallback, "default")
            guard let target = GRPCClient.Target(text), (0...65_535).contains(target.port) else {
                throw ConfigurationError("\(source): '\(text)' is not HOST:PORT")
            }
            return target
        }
        func peers(_ flag: String?, _ variable: String, default fallback: String) throws(ConfigurationError) -> [GRPCClient.Target] {
            let (text, source) = value(flag, variable) ?? (fallback, "default")
            guard let targets = GRPCClient.Target.list(text), !targets.isEmpty else {
                throw ConfigurationError("\(source): '\(text)' is not a comma-separated list of HOST:PORT")
            }
            return targets
        }
        func integer(_ flag: Int?, _ variable: String, default fallback: Int, range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
            try options.number(flag, variable, in: range) ?? fallback
        }

        var configuration = ServiceConfiguration(name: Defaults.name)
        configuration.listen = try address(listen, "DOORSTEP_LISTEN", default: "127.0.0.1:\(Defaults.defaultPort)")
        configuration.dataDirectory = value(dataDir, "DOORSTEP_DATA_DIR")?.0 ?? "./data"
        if let (url, source) = value(databaseUrl, "DOORSTEP_DATABASE_URL") {
            var settings: PostgresSettings
            do { settings = try PostgresSettings(url: url) } catch { throw ConfigurationError("\(source): \(error.problem)") }
            settings.poolSize = try integer(databasePoolSize, "DOORSTEP_DATABASE_POOL_SIZE", default: 10, range: 1...500)
            settings.connectTimeout = .seconds(try integer(
                databaseConnectTimeoutSeconds, "DOORSTEP_DATABASE_CONNECT_TIMEOUT_SECONDS", default: 5, range: 1...300))
            settings.statementTimeout = .seconds(try integer(
                databaseStatementTimeoutSeconds, "DOORSTEP_DATABASE_STATEMENT_TIMEOUT_SECONDS", default: 30, range: 1...3600))
            settings.startupTimeout = .seconds(try integer(
                databaseStartupTimeoutSeconds, "DOORSTEP_DATABASE_STARTUP_TIMEOUT_SECONDS", default: 60, range: 0...3600))
            configuration.database = settings
        }
        let metrics = value(metricsListen, "DOORSTEP_METRICS_LISTEN")?.0 ?? "127.0.0.1:\(Defaults.defaultMetricsPort)"
        configuration.metricsListen = metrics == "off"
            ? nil : try address(metricsListen, "DOORSTEP_METRICS_LISTEN", default: metrics)
        configuration.peers = ServiceConfiguration.Peers(
            accounts: try peers(accountsAddr, "DOORSTEP_ACCOUNTS_ADDR", default: "127.0.0.1:50051"),
            scheduling: try peers(schedulingAddr, "DOORSTEP_SCHEDULING_ADDR", default: "127.0.0.1:50052"),
            visits: try peers(visitsAddr, "DOORSTEP_VISITS_ADDR", default: "127.0.0.1:50053"))
        configuration.authKeyFile = value(authKeyFile, "DOORSTEP_AUTH_KEY_FILE")?.0
        if let (path, source) = value(testClockOffsetFile, "DOORSTEP_TEST_CLOCK_OFFSET_FILE") {
            guard configuration.authKeyFile == nil else {
                throw ConfigurationError("\(source): the test clock is refused outside dev mode (an auth key file is set)")
            }
            configuration.testClockOffsetFile = path
        }
        try resolveTokenKeys(into: &configuration, options: options)
        try resolveTLS(into: &configuration, options: options)
        configuration.webhooks.keyFile = value(webhookKeyFile, "DOORSTEP_WEBHOOK_KEY_FILE")?.0
        configuration.webhooks.allowHTTP = try WebhookSettings.isOn(webhookAllowHttp, "DOORSTEP_WEBHOOK_ALLOW_HTTP", environment: environment)
        configuration.webhooks.allowPrivateAddresses = try WebhookSettings.isOn(
            webhookAllowPrivateAddresses, "DOORSTEP_WEBHOOK_ALLOW_PRIVATE_ADDRESSES", environment: environment)
        configuration.webhooks.maxAttempts = try integer(webhookMaxAttempts, "DOORSTEP_WEBHOOK_MAX_ATTEMPTS", default: 20, range: 1...1000)
        configuration.webhooks.maxBackoff = .seconds(try integer(
            webhookMaxBackoffSeconds, "DOORSTEP_WEBHOOK_MAX_BACKOFF_SECONDS", default: 300, range: 1...3600))
        configuration.eventsRetentionDays = try integer(eventsRetentionDays, "DOORSTEP_EVENTS_RETENTION_DAYS", default: 90, range: 0...3650)
        let level = value(logLevel, "DOORSTEP_LOG_LEVEL") ?? ("info", "default")
        guard let parsedLevel = Logger.Level(rawValue: level.0.lowercased()) else {
            throw ConfigurationError("\(level.1): unknown log level '\(level.0)' (trace, debug, info, notice, warning, error, critical)")
        }
        configuration.logLevel = parsedLevel
        if let (format, source) = value(logFormat, "DOORSTEP_LOG_FORMAT") {
            guard let parsed = LogFormat(rawValue: format.lowercased()) else {
                throw ConfigurationError("\(source): unknown log format '\(format)' (text, json)")
            }
            configuration.logFormat = parsed
        }
        configuration.maxReceiveMessageBytes = try integer(
            maxReceiveMessageBytes, "DOORSTEP_MAX_RECEIVE_MESSAGE_BYTES", default: 4 << 20, range: 1024...(64 << 20))
        configuration.maxConcurrentStreams = try integer(
            maxConcurrentStreams, "DOORSTEP_MAX_CONCURRENT_STREAMS", default: 256, range: 1...10_000)
        if let (setting, source) = value(reflection, "DOORSTEP_REFLECTION") {
            switch setting.lowercased() {
            case "on": configuration.reflection = true
            case "off": configuration.reflection = false
            default: throw ConfigurationError("\(source): '\(setting)' is not on or off")
            }
        }
        configuration.drainTimeoutSeconds = try integer(
            drainTimeoutSeconds, "DOORSTEP_DRAIN_TIMEOUT_SECONDS", default: 30, range: 0...3600)
        configuration.outboxClaimSeconds = try integer(
            outboxClaimSeconds, "DOORSTEP_OUTBOX_CLAIM_SECONDS", default: 60, range: 1...3600)
        configuration.idempotencyRetentionHours = try integer(
            idempotencyRetentionHours, "DOORSTEP_IDEMPOTENCY_RETENTION_HOURS", default: 24, range: 24...(24 * 365))
        return configuration
    }

    /// The bearer-token key flags: Doorstep's JWKS and the identity provider's, whose
    /// files are read (and their content checked) when the runtime loads them.
    private func resolveTokenKeys(into configuration: inout ServiceConfiguration, options: OptionSource) throws(ConfigurationError) {
        if let (path, source) = options.text(authJwksFile, "DOORSTEP_AUTH_JWKS_FILE") {
            guard configuration.authKeyFile != nil else {
                throw ConfigurationError("\(source): a JWKS of Doorstep keys needs the key this service signs with (--auth-key-file, DOORSTEP_AUTH_KEY_FILE)")
            }
            configuration.authJWKSFile = path
        }
        let issuer = options.text(idpIssuer, "DOORSTEP_IDP_ISSUER")
        let audience = options.text(idpAudience, "DOORSTEP_IDP_AUDIENCE")
        let claims = [(idpRoleClaim, "DOORSTEP_IDP_ROLE_CLAIM"), (idpAgencyClaim, "DOORSTEP_IDP_AGENCY_CLAIM"),
                      (idpCollectorClaim, "DOORSTEP_IDP_COLLECTOR_CLAIM")].map { options.text($0.0, $0.1) }
        let skew = try options.number(idpClockSkewSeconds, "DOORSTEP_IDP_CLOCK_SKEW_SECONDS", in: 0...300)
        guard let (jwks, jwksSource) = options.text(idpJwksFile, "DOORSTEP_IDP_JWKS_FILE") else {
            let skewSource = options.text(idpClockSkewSeconds.map(String.init), "DOORSTEP_IDP_CLOCK_SKEW_SECONDS")?.source
            if let first = ([issuer, audience] + claims).compactMap({ $0?.source }).first ?? skewSource {
                throw ConfigurationError("\(first): identity provider settings need its keys (--idp-jwks-file, DOORSTEP_IDP_JWKS_FILE)")
            }
            return
        }
        guard let issuer, !issuer.value.isEmpty else {
            throw ConfigurationError("\(jwksSource): identity provider keys need the issuer of its tokens (--idp-issuer, DOORSTEP_IDP_ISSUER)")
        }
        guard issuer.value != DoorstepClaims.issuer else {
            throw ConfigurationError("\(issuer.source): '\(issuer.value)' is the issuer of Doorstep's own tokens; name the identity provider's")
        }
        guard let audience, !audience.value.isEmpty else {
            throw ConfigurationError("\(jwksSource): identity provider keys need the audience its tokens are for (--idp-audience, DOORSTEP_IDP_AUDIENCE)")
        }
        var settings = IdentityProviderSettings(jwksFile: jwks, issuer: issuer.value, audience: audience.value)
        for (claim, keyPath) in zip(claims, [\IdentityProviderSettings.roleClaim, \.agencyClaim, \.collectorClaim]) {
            guard let claim else { continue }
            guard !claim.value.isEmpty else { throw ConfigurationError("\(claim.source): a claim name cannot be empty") }
            settings[keyPath: keyPath] = claim.value
        }
        settings.clockSkew = TimeInterval(skew ?? 60)
        configuration.identityProvider = settings
    }

    /// The TLS flags: files that go together, checked for presence here and for content
    /// when the runtime loads them.
    private func resolveTLS(into configuration: inout ServiceConfiguration, options: OptionSource) throws(ConfigurationError) {
        let certificate = options.text(tlsCertFile, "DOORSTEP_TLS_CERT_FILE")
        let key = options.text(tlsKeyFile, "DOORSTEP_TLS_KEY_FILE")
        let clientCA = options.text(tlsClientCaFile, "DOORSTEP_TLS_CLIENT_CA_FILE")
        switch (certificate, key) {
        case (let certificate?, let key?):
            configuration.tls = ServerTLS.Files(certificateFile: certificate.0, keyFile: key.0, clientCAFile: clientCA?.0)
        case (let given?, nil):
            throw ConfigurationError("\(given.1): a TLS certificate needs its key (--tls-key-file, DOORSTEP_TLS_KEY_FILE)")
        case (nil, let given?):
            throw ConfigurationError("\(given.1): a TLS key needs its certificate (--tls-cert-file, DOORSTEP_TLS_CERT_FILE)")
        case (nil, nil):
            if let clientCA {
                throw ConfigurationError("\(clientCA.1): client certificates need TLS on the listener (--tls-cert-file and --tls-key-file)")
            }
        }
        let ca = options.text(tlsCaFile, "DOORSTEP_TLS_CA_FILE")
        let clientCertificate = options.text(tlsClientCertFile, "DOORSTEP_TLS_CLIENT_CERT_FILE")
        let clientKey = options.text(tlsClientKeyFile, "DOORSTEP_TLS_CLIENT_KEY_FILE")
        if let ca {
            switch (clientCertificate, clientKey) {
            case (let certificate?, let key?):
                configuration.peerTLS = ClientTLS.Files(caFile: ca.0, certificateFile: certificate.0, keyFile: key.0)
            case (let given?, nil):
                throw ConfigurationError("\(given.1): a client certificate needs its key (--tls-client-key-file)")
            case (nil, let given?):
                throw ConfigurationError("\(given.1): a client key needs its certificate (--tls-client-cert-file)")
            case (nil, nil):
                // The listener's own certificate doubles as the client certificate (as the
                // certificates of `doorstep tls-dev` allow).
                configuration.peerTLS = ClientTLS.Files(caFile: ca.0, certificateFile: configuration.tls?.certificateFile,
                                                        keyFile: configuration.tls?.keyFile)
            }
        } else if let given = clientCertificate ?? clientKey {
            throw ConfigurationError("\(given.1): a client certificate is for TLS to peers, which needs --tls-ca-file")
        }
        configuration.reloadCheckSeconds = try options.number(reloadCheckSeconds, "DOORSTEP_RELOAD_CHECK_SECONDS", in: 0...3600) ?? 5
    }
}

/// A service's validated configuration.
public struct ServiceConfiguration: Sendable {
    public struct Peers: Sendable {
        public var accounts: [GRPCClient.Target]
        public var scheduling: [GRPCClient.Target]
        public var visits: [GRPCClient.Target]
    }

    public let name: String
    public var listen = GRPCClient.Target(host: "127.0.0.1", port: 0)
    public var dataDirectory = "./data"
    /// The PostgreSQL database; nil = SQLite in the data directory.
    public var database: PostgresSettings?
    /// nil = no metrics endpoint.
    public var metricsListen: GRPCClient.Target?
    public var peers = Peers(accounts: [], scheduling: [], visits: [])
    /// nil = dev mode: `<data-dir>/auth.key`, generated when absent.
    public var authKeyFile: String?
    public var logLevel: Logger.Level = .info
    public var logFormat = LogFormat.text
    public var maxReceiveMessageBytes = 4 << 20
    public var maxConcurrentStreams = 256
    /// Whether gRPC server reflection is served.
    public var reflection = true
    public var drainTimeoutSeconds = 30
    public var idempotencyRetentionHours = 24
    /// How long an outbox claim lasts (scheduling, visits).
    public var outboxClaimSeconds = 60
    /// TLS on the gRPC and metrics listeners; nil = plaintext.
    public var tls: ServerTLS.Files?
    /// TLS to peer services; nil = plaintext.
    public var peerTLS: ClientTLS.Files?
    /// Seconds between checks of certificate and key files for changes; 0 = SIGHUP only.
    public var reloadCheckSeconds = 5
    /// Public keys (JWKS) that verify Doorstep's own tokens; nil = the public key of the
    /// signing key alone.
    public var authJWKSFile: String?
    /// The lender's identity provider whose tokens are accepted too; nil = none.
    public var identityProvider: IdentityProviderSettings?
    /// Test only (dev mode): the file whose millisecond offset is added to the wall clock.
    public var testClockOffsetFile: String?
    /// Webhook subscriptions' delivery (key file, address policy, retries).
    public var webhooks = WebhookSettings()
    /// Days the event log keeps its events; 0 = forever.
    public var eventsRetentionDays = 90

    public init(name: String) { self.name = name }
}

/// A configuration value that cannot be used, in one line (printed as `Error: …`, exit 1).
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
