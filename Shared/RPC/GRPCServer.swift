import HTTP2
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import RPCWire
import Synchronization
import TransportSecurity

/// A gRPC server: HTTP/2 by libnghttp2 inside SwiftNIO channels, the services' typed
/// handlers in tasks.
public final class GRPCServer: Sendable {
    /// Server settings; every default is spelled out.
    public struct Configuration: Sendable {
        /// Address to listen on. Default 127.0.0.1.
        public var host: String = "127.0.0.1"
        /// Port; 0 picks a free one (read it back from `start()`). Default 0.
        public var port: Int = 0
        /// HTTP/2 settings and defences.
        public var http2: HTTP2ServerConfiguration = .defaults
        /// Largest request message accepted; larger ones fail with RESOURCE_EXHAUSTED.
        /// Default 4 MiB (gRPC's default).
        public var maxReceiveMessageSize: Int = 4 << 20
        /// Request messages of client- and bidirectional-streaming calls that have arrived
        /// but that their handlers have not read yet, per connection (bytes; each message
        /// counts 64 more): past this the connection stops reading from its socket until
        /// the handlers have read half of it (``InboundBudget``). Default 1 MiB.
        public var maxBufferedStreamingRequestBytes: Int = 1 << 20
        /// A connection with no open stream for this long is sent GOAWAY and closed.
        /// Default 5 minutes.
        public var idleTimeout: TimeAmount = .minutes(5)
        /// Interval of keepalive PINGs. Default 2 hours (gRPC's default keepalive time).
        public var keepaliveInterval: TimeAmount = .hours(2)
        /// A PING not answered within this closes the connection. Default 20 seconds.
        public var keepaliveTimeout: TimeAmount = .seconds(20)
        /// On graceful shutdown, calls still running after this are cut off. Default 30 s.
        public var drainTimeout: TimeAmount = .seconds(30)
        /// TLS (ALPN h2, TLS 1.2+; mutual TLS when it has a client CA); nil = plaintext
        /// HTTP/2 (h2c). Default nil.
        public var tls: ServerTLS?

        public init() {}

        public static let defaults = Configuration()
    }

    /// What every connection of this server shares.
    struct Shared: Sendable {
        let configuration: Configuration
        let services: ServiceDefinition
        /// The interceptors every call passes before its handler.
        let pipeline: ServerPipeline
        let logger: Logger
        let metrics: RPCMetrics
        /// Raised when a graceful shutdown begins (``ServerContext/isServerShuttingDown``).
        let shuttingDown = ShutdownFlag()
    }

    private let shared: Shared
    private let group: any EventLoopGroup
    private let state = NIOLockedValueBox(State())

    private struct State {
        var serverChannel: (any Channel)?
        var connections: [ObjectIdentifier: any Channel] = [:]
    }

    public init(
        configuration: Configuration = .defaults, services: ServiceDefinition,
        authenticator: (any Authenticator)? = nil, interceptors: [any ServerInterceptor] = [], logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        // On a mutual-TLS listener the service role also needs the service's certificate.
        let transportChecks: [any ServerInterceptor] =
            configuration.tls?.requiresClientCertificate == true ? [ServiceCertificateInterceptor()] : []
        self.shared = Shared(configuration: configuration, services: services,
                             pipeline: .standard(authenticator: authenticator, extra: transportChecks + interceptors), logger: logger,
                             metrics: RPCMetrics(methods: services.methods))
        self.group = group
    }

    /// Binds and starts serving; returns the bound address (with the real port when the
    /// configured port is 0). Throws when the address cannot be bound (e.g. port in use).
    @discardableResult
    public func start() async throws -> SocketAddress {
        let shared = self.shared
        let state = self.state
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls = shared.configuration.tls {
                        // Each connection takes the context current at accept: a reload
                        // changes new connections only.
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.grpcContext))
                    }
                    try channel.pipeline.syncOperations.addHandler(GRPCServerConnectionHandler(shared: shared))
                    let id = ObjectIdentifier(channel)
                    state.withLockedValue { $0.connections[id] = channel }
                    channel.closeFuture.whenComplete { _ in
                        state.withLockedValue { _ = $0.connections.removeValue(forKey: id) }
                    }
                }
            }
            .bind(host: shared.configuration.host, port: shared.configuration.port)
            .get()
        state.withLockedValue { $0.serverChannel = channel }
        guard let address = channel.localAddress else {
            throw RPCError(code: .internal, message: "the server channel has no local address")
        }
        shared.logger.info("serving gRPC", metadata: [
            "address": "\(address)",
            "tls": "\(shared.configuration.tls.map { $0.requiresClientCertificate ? "mutual" : "on" } ?? "off")",
        ])
        return address
    }

    /// Stops accepting connections, sends GOAWAY on every connection, lets in-flight calls
    /// finish for up to the drain timeout, then closes what is left.
    public func shutdownGracefully() async {
        shared.shuttingDown.raise()
        let (serverChannel, connections) = state.withLockedValue { ($0.serverChannel, Array($0.connections.values)) }
        try? await serverChannel?.close()
        for connection in connections {
            connection.pipeline.fireUserInboundEventTriggered(GRPCServerConnectionHandler.GracefulShutdown())
        }
        let deadline = ContinuousClock.now + .nanoseconds(shared.configuration.drainTimeout.nanoseconds)
        while ContinuousClock.now < deadline, !state.withLockedValue({ $0.connections.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let remaining = state.withLockedValue { Array($0.connections.values) }
        for connection in remaining { try? await connection.close() }
        shared.logger.info("gRPC server stopped", metadata: ["cut-off-connections": "\(remaining.count)"])
    }

    /// Number of open client connections.
    public var connectionCount: Int { state.withLockedValue { $0.connections.count } }
}

/// Raised once, when the server begins a graceful shutdown: handlers of calls that would run
/// until cancelled (an open-ended stream such as WatchEvents) end theirs, so the drain does not
/// wait its whole timeout for them.
final class ShutdownFlag: Sendable {
    private let raised = Atomic<Bool>(false)

    func raise() { raised.store(true, ordering: .releasing) }

    var isRaised: Bool { raised.load(ordering: .acquiring) }
}
