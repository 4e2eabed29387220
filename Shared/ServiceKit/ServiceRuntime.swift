import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import RPC
import RPCWire
import ServiceAuth
import ServiceLifecycle

/// What the runtime hands a service while it sets itself up.
public struct ServiceEnvironment: Sendable {
    public let configuration: ServiceConfiguration
    public let logger: Logger
    /// The data directory, created and checked writable.
    public let dataDirectory: String
    /// Verifies callers' tokens; also signs this service's own calls to its peers.
    public let signingKey: SigningKey
    /// True when keys were taken from (or generated into) the data directory.
    public let devMode: Bool
    public let clock: ServiceClock
}

/// What a service gives the runtime to serve.
public struct ServiceSetup: Sendable {
    /// Its methods (the health service is added by the runtime).
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
        LogSetup.bootstrap(level: configuration.logLevel, format: configuration.logFormat)
        let logger = Logger(label: "doorstep.\(configuration.name)")

        let dataDirectory = try DataDirectory.prepare(configuration.dataDirectory)
        let devMode = configuration.authKeyFile == nil
        let signingKey: SigningKey
        if let path = configuration.authKeyFile {
            do { signingKey = try SigningKey.load(path: path) } catch { throw ConfigurationError(error.description) }
        } else {
            let path = dataDirectory + "/auth.key"
            do {
                let (key, created) = try SigningKey.loadOrCreate(path: path)
                signingKey = key
                logger.warning("dev mode: bearer tokens are verified with a key in the data directory; set --auth-key-file in production",
                               metadata: ["key-file": "\(path)", "generated": "\(created)"])
            } catch {
                throw ConfigurationError(error.description)
            }
        }
        let registry = MetricsEndpoint.bootstrap()
        MetricsEndpoint.recordBuildInfo(registry: registry, service: configuration.name)
        let environment = ServiceEnvironment(
            configuration: configuration, logger: logger, dataDirectory: dataDirectory,
            signingKey: signingKey, devMode: devMode,
            clock: configuration.testClockOffsetFile.map { ServiceClock.offset(file: $0) } ?? .system)
        if let file = configuration.testClockOffsetFile {
            logger.warning("TEST CLOCK: the service clock is the wall clock plus the offset in the file", metadata: ["file": "\(file)"])
        }
        let service = try await setup(environment)

        let health = HealthService(services: service.serviceNames)
        var definition = service.definition
        definition.merge(health.definition)
        var serverConfiguration = GRPCServer.Configuration()
        serverConfiguration.host = configuration.listen.host
        serverConfiguration.port = configuration.listen.port
        serverConfiguration.maxReceiveMessageSize = configuration.maxReceiveMessageBytes
        serverConfiguration.http2.maxConcurrentStreams = configuration.maxConcurrentStreams
        serverConfiguration.drainTimeout = .seconds(Int64(configuration.drainTimeoutSeconds))
        let server = GRPCServer(
            configuration: serverConfiguration, services: definition,
            authenticator: try await TokenVerifier(key: signingKey), logger: logger)

        let address: SocketAddress
        do { address = try await server.start() } catch {
            await service.onShutdown()
            throw ConfigurationError("cannot listen on \(configuration.listen): \(Self.describe(error))")
        }
        var metricsChannel: (any Channel)?
        if let metrics = configuration.metricsListen {
            do {
                metricsChannel = try await MetricsEndpoint.serve(
                    registry: registry, host: metrics.host, port: metrics.port,
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
        ])
        // One machine-readable line on stdout for scripts and tests (port 0 → the real port).
        let readyLine = "\(configuration.name) ready grpc=\(address.ipAddress ?? "?"):\(address.port ?? 0) metrics=\(metricsAddress)\n"
        FileHandle.standardOutput.write(Data(readyLine.utf8))

        let serving = ServingService(server: server, health: health, healthCheck: service.healthCheck,
                                     metricsChannel: metricsChannel, logger: logger)
        // Services stop in reverse order: the server first (drain), then background work.
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: (service.background + [serving]).map { .init(service: $0) },
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
