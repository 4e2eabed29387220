import Foundation
import Logging
import RPC

/// The service under test and a client of it, reached the way `DOORSTEP_TEST_TRANSPORT`
/// says: `loopback` (the default: a real server on 127.0.0.1, HTTP/2 by libnghttp2) or
/// `inprocess` (``InProcessServer``: the same interceptors and handlers without sockets).
/// `Scripts/test.sh` runs the service suites both ways.
public struct ServedService: Sendable {
    public enum Transport: String, Sendable {
        case loopback, inprocess

        /// From `DOORSTEP_TEST_TRANSPORT`; loopback when unset.
        public static var current: Transport {
            let value = ProcessInfo.processInfo.environment["DOORSTEP_TEST_TRANSPORT"] ?? ""
            guard !value.isEmpty else { return .loopback }
            guard let transport = Transport(rawValue: value) else {
                fatalError("DOORSTEP_TEST_TRANSPORT must be loopback or inprocess, not '\(value)'")
            }
            return transport
        }
    }

    public let client: GRPCClient
    public let transport: Transport
    private let server: GRPCServer?

    /// Serves `services` with `authenticator` over the current transport.
    public static func start(_ services: ServiceDefinition, authenticator: any Authenticator, logger: Logger) async throws -> ServedService {
        switch Transport.current {
        case .loopback:
            let server = GRPCServer(services: services, authenticator: authenticator, logger: logger)
            let address = try await server.start()
            return ServedService(client: GRPCClient(targets: [GRPCClient.Target(host: "127.0.0.1", port: address.port!)]),
                                 transport: .loopback, server: server)
        case .inprocess:
            let server = InProcessServer(services: services, authenticator: authenticator, logger: logger)
            return ServedService(client: GRPCClient(inProcess: server), transport: .inprocess, server: nil)
        }
    }

    /// Begins the server's graceful shutdown (and waits for its drain) while the client stays
    /// open: what a consumer connected to a service being stopped sees.
    public func shutdownServer() async {
        await server?.shutdownGracefully()
    }

    /// Closes the client and drains the server.
    public func close() async {
        await client.close()
        await server?.shutdownGracefully()
    }
}
