import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Models
import RPC
import RPCTestSupport
import TransportSecurity

/// Serves doorstep.testing.v1.TestService and grpc.health.v1.Health, for tests that drive
/// the transport from another process (stock clients, hostile HTTP/2 peers). Prints
/// `listening on HOST:PORT` once bound.
@main
struct RPCTestServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rpc-test-server", abstract: "Serve the transport test service.")

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port (0 = any free port).") var port = 0
    @Option(help: "Idle connection timeout, milliseconds.") var idleTimeoutMs = 300_000
    @Option(help: "SETTINGS_MAX_CONCURRENT_STREAMS.") var maxConcurrentStreams = 256
    @Option(help: "Largest request message, bytes.") var maxReceiveMessageSize = 4 << 20
    @Option(help: "Log level.") var logLevel = "warning"
    @Option(help: "TLS certificate (PEM); with --tls-key-file, the listener speaks TLS.") var tlsCertFile: String?
    @Option(help: "TLS private key (PEM).") var tlsKeyFile: String?

    func run() async throws {
        var configuration = GRPCServer.Configuration()
        configuration.host = host
        configuration.port = port
        configuration.idleTimeout = .milliseconds(Int64(idleTimeoutMs))
        configuration.http2.maxConcurrentStreams = maxConcurrentStreams
        configuration.maxReceiveMessageSize = maxReceiveMessageSize
        if let tlsCertFile, let tlsKeyFile {
            configuration.tls = try ServerTLS(files: .init(certificateFile: tlsCertFile, keyFile: tlsKeyFile))
        }
        var logger = Logger(label: "rpc-test-server")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .warning
        let service = TestServiceImplementation()
        let health = HealthService(services: [TestingV1.TestService.name])
        var definition = service.definition
        definition.merge(health.definition)
        let server = GRPCServer(configuration: configuration, services: definition, logger: logger)
        let address = try await server.start()
        health.setAll(.serving)
        print("listening on \(host):\(address.port ?? port)")
        fflush(nil)  // all streams: the parent reads this line through a pipe
        try await Task.sleep(for: .seconds(86_400 * 365))
    }
}
