import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import Reflection
import RPC
import RPCWire
import ServiceAuth
import ServiceLifecycle
import TransportSecurity

/// What the runtime hands a service while it sets itself up.
public struct ServiceEnvironment: Sendable {
    public let configuration: ServiceConfiguration
    public let logger: Logger
    /// The data directory, created and checked writable.
    public let dataDirectory: String
    /// Signs this service's own calls to its peers: the current key of `--auth-key-file`
    /// (reloaded without a restart).
    public let signingKey: SigningKeyStore
    /// True when keys were taken from (or generated into) the data directory.
    public let devMode: Bool
    public let clock: ServiceClock
    /// TLS for calls to peer services (`--tls-ca-file`); nil = plaintext.
    public let peerTLS: ClientTLS?
}

/// What a service gives the runtime to serve.
public struct ServiceSetup: Sendable {
    /// Its methods (the runtime adds health, and reflection unless `--reflection off`).
    public var definition: ServiceDefinition
    /// Its fully-qualified gRPC service names, for per-service health.
    public var serviceNames: [String]
    /// Long-running work beside the server (purges, outbox relays); shut down after it.
    public var background: [any Service]
    /// Whether what the service depends on (its database) answers: checked every second
    /// while serving; health is NOT_SERVING while it says no. nil = always healthy.
    public var healthCheck: (@Sendable () async -> Bool)?
    /// Called last, after the server stopped (close the database).
    public var onShutdown: @Sendable () async -> Void

    public init(definition: ServiceDefinition, serviceNames: [String], background: [any Service] = [],
                healthCheck: (@Sendable () async -> Bool)? = nil, onShutdown: @escaping @Sendable () async -> Void = {}) {
        self.definition = definition
        self.serviceNames = serviceNames
        self.background = background
        self.healthCheck = healthCheck
        self.onShutdown = onShutdown
    }
}

/// Runs one service process: logging, data directory, keys, metrics, the gRPC server with
/// health, and swift-service-lifecycle's group — SIGTERM/SIGINT set health NOT_SERVING and
/// drain in-flight calls (bounded), then everything stops and `run` returns (exit 0).
/// Bad configuration fails before anything is served, with a one-line reason.
public enum ServiceRuntime {
    public static func run(
        configuration: ServiceConfiguration,
        setup: (ServiceEnvironment) async throws -> ServiceSetup
    ) async throws {
        // SIGHUP means "reload" (ReloadService), never "exit": ignored from the start, so one
        // that arrives before the reload service listens (just after the ready line) is harmless.
        signal(SIGHUP, SIG_IGN)
        LogSetup.bootstrap(level: configuration.logLevel, format: configuration.logFormat)
        let logger = Logger(label: "doorstep.\(configuration.name)")

        let dataDirectory = try DataDirectory.prepare(configuration.dataDirectory)
        let authentication = try ServiceAuthentication.load(configuration: configuration, dataDirectory: dataDirectory, logger: logger)
        let (signingKey, devMode) = (authentication.signingKey, authentication.devMode)
        let registry = MetricsEndpoint.bootstrap()
        MetricsEndpoint.recordBuildInfo(registry: registry, service: configuration.name)
        // TLS files are checked before anything is served: a bad one fails the start with
        // one line naming it.
        let serverTLS: ServerTLS?
        let peerTLS: ClientTLS?
        do {
            serverTLS = try configuration.tls.map { files throws(TLSFileError) in try ServerTLS(files: files) }
            peerTLS = try configuration.peerTLS.map { files throws(TLSFileError) in try ClientTLS(files: files) }
        } catch {
            throw ConfigurationError(error.description)
        }
        var reloadables: [any Reloadable] = []
        if let serverTLS {
            reloadables.append(ServerTLSReload(tls: serverTLS))
            if serverTLS.notValidAfter < Date().addingTimeInterval(14 * 86_400) {
                logger.warning("the TLS certificate expires within 14 days", metadata: ["not-after": "\(serverTLS.notValidAfter)"])
            }
        }
        if let peerTLS { reloadables.append(ClientTLSReload(tls: peerTLS)) }
        // Verifying keys first: when both files changed, a new key is trusted before it signs.
        reloadables += [authentication.verifier, authentication.signingKey] as [any Reloadable]
        let environment = ServiceEnvironment(
            configuration: configuration, logger: logger, dataDirectory: dataDirectory,
            signingKey: signingKey, devMode: devMode,
            clock: configuration.testClockOffsetFile.map { ServiceClock.offset(file: $0) } ?? .system,
            peerTLS: peerTLS)
        if let file = configuration.testClockOffsetFile {
            logger.warning("TEST CLOCK: the service clock is the wall clock plus the offset in the file", metadata: ["file": "\(file)"])
        }
        let service = try await setup(environment)

        let health = HealthService(services: service.serviceNames)
        var definition = service.definition
        definition.merge(health.definition)
        if configuration.reflection {
            definition.merge(ReflectionService(serving: definition.serviceNames).definition)
        }
        var serverConfiguration = GRPCServer.Configuration()
        serverConfiguration.host = configuration.listen.host
        serverConfiguration.port = configuration.listen.port
        serverConfiguration.maxReceiveMessageSize = configuration.maxReceiveMessageBytes
        serverConfiguration.http2.maxConcurrentStreams = configuration.maxConcurrentStreams
        serverConfiguration.drainTimeout = .seconds(Int64(configuration.drainTimeoutSeconds))
        serverConfiguration.tls = serverTLS
        let server = GRPCServer(
            configuration: serverConfiguration, services: definition,
            authenticator: authentication.verifier, logger: logger)

        let address: SocketAddress
        do { address = try await server.start() } catch {
            await service.onShutdown()
            throw ConfigurationError("cannot listen on \(configuration.listen): \(Self.describe(error))")
        }
        var metricsChannel: (any Channel)?
        if let metrics = configuration.metricsListen {
            do {
                metricsChannel = try await MetricsEndpoint.serve(
                    registry: registry, host: metrics.host, port: metrics.port, tls: serverTLS,
                    ready: { health.status(of: "") == .serving })
            } catch {
                await server.shutdownGracefully()
                await service.onShutdown()
                throw ConfigurationError("cannot listen for metrics on \(metrics): \(Self.describe(error))")
            }
        }
        health.setAll(.serving)
        let metricsAddress = metricsChannel?.localAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "off"
        logger.info("ready", metadata: [
            "grpc": "\(address.ipAddress ?? "?"):\(address.port ?? 0)", "metrics": "\(metricsAddress)",
            "data-dir": "\(dataDirectory)", "dev-mode": "\(devMode)",
            "tls": "\(serverTLS.map { $0.requiresClientCertificate ? "mutual" : "on" } ?? "off")",
            "peer-tls": "\(peerTLS == nil ? "off" : "on")",
        ])
        // One machine-readable line on stdout for scripts and tests (port 0 → the real port).
        let readyLine = "\(configuration.name) ready grpc=\(address.ipAddress ?? "?"):\(address.port ?? 0) metrics=\(metricsAddress)\n"
        FileHandle.standardOutput.write(Data(readyLine.utf8))

        let reloads = ReloadService(reloadables: reloadables, checkInterval: .seconds(configuration.reloadCheckSeconds),
                                    logger: logger)
        let serving = ServingService(server: server, health: health, healthCheck: service.healthCheck,
                                     metricsChannel: metricsChannel, logger: logger)
        // Services stop in reverse order: the server first (drain), then background work.
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: (service.background + [reloads, serving]).map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [],
            logger: logger))
        do {
            try await group.run()
        } catch {
            logger.error("service group failed", metadata: ["error": "\(error)"])
            await service.onShutdown()
            throw error
        }
        await service.onShutdown()
        logger.info("stopped")
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? IOError {
            switch error.errnoCode {
            case EADDRINUSE: return "address already in use"
            case EACCES: return "permission denied"
            case EADDRNOTAVAIL: return "address not available on this machine"
            default: return error.description
            }
        }
        return "\(error)"
    }
}

/// The gRPC server (and metrics endpoint) as a lifecycle service: runs until graceful
/// shutdown, then reports NOT_SERVING, drains, and stops.
struct ServingService: Service {
    let server: GRPCServer
    let health: HealthService
    let healthCheck: (@Sendable () async -> Bool)?
    let metricsChannel: (any Channel)?
    let logger: Logger

    func run() async throws {
        if let healthCheck {
            // Health follows the database until shutdown; changes are logged once each.
            var healthy = true
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                do {
                    try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
                } catch {
                    break
                }
                let now = await healthCheck()
                guard now != healthy, !Task.isShuttingDownGracefully else { continue }
                healthy = now
                health.setAll(now ? .serving : .notServing)
                if now {
                    logger.notice("database reachable again: health SERVING")
                } else {
                    logger.error("database unreachable: health NOT_SERVING until it answers")
                }
            }
        }
        try? await gracefulShutdown()
        logger.info("shutting down: health NOT_SERVING, draining in-flight calls")
        health.setAll(.notServing)
        await server.shutdownGracefully()
        try? await metricsChannel?.close()
    }
}

enum DataDirectory {
    /// Creates the directory if needed and proves it writable, or throws a one-line reason.
    static func prepare(_ path: String) throws(ConfigurationError) -> String {
        let manager = FileManager.default
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        var isDirectory: ObjCBool = false
        if manager.fileExists(atPath: absolute, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw ConfigurationError("data dir \(absolute) is not a directory") }
        } else {
            do {
                try manager.createDirectory(atPath: absolute, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw ConfigurationError("data dir \(absolute) cannot be created")
            }
        }
        let probe = absolute + "/.doorstep-write-probe-\(getpid())"
        guard manager.createFile(atPath: probe, contents: Data()) else {
            throw ConfigurationError("data dir \(absolute) is not writable")
        }
        try? manager.removeItem(atPath: probe)
        return absolute
    }
}

/// The listener's certificate as a ``Reloadable``; records when the certificate in use
/// expires (`doorstep_tls_certificate_expiry_seconds`, a Unix time) for the expiry alert.
struct ServerTLSReload: Reloadable {
    let tls: ServerTLS
    let expiry: Gauge

    init(tls: ServerTLS) {
        self.tls = tls
        self.expiry = Gauge(label: "doorstep_tls_certificate_expiry_seconds")
        expiry.record(tls.notValidAfter.timeIntervalSince1970)
    }

    var reloadName: String { "tls-certificate" }
    var watchedFiles: [String] { tls.watchedFiles }

    func reload() throws(ConfigurationError) {
        do {
            expiry.record(try tls.reload().timeIntervalSince1970)
        } catch {
            throw ConfigurationError(error.description)
        }
    }
}

/// The peer clients' TLS (trusted CA, client certificate) as a ``Reloadable``.
struct ClientTLSReload: Reloadable {
    let tls: ClientTLS

    var reloadName: String { "peer-tls" }
    var watchedFiles: [String] { tls.watchedFiles }

    func reload() throws(ConfigurationError) {
        do { try tls.reload() } catch { throw ConfigurationError(error.description) }
    }
}
