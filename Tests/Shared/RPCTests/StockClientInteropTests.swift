import Logging
import Models
import RPC
import RPCTestSupport
import TestSupport
import Testing
import TransportSecurity

/// A server hosting the test service and health on 127.0.0.1, port 0.
func startTestServer(
    configuration: GRPCServer.Configuration = .defaults
) async throws -> (server: GRPCServer, address: String, service: TestServiceImplementation, health: HealthService) {
    let service = TestServiceImplementation()
    let health = HealthService(services: [TestingV1.TestService.name])
    var definition = service.definition
    definition.merge(health.definition)
    var logger = Logger(label: "doorstep.test")
    logger.logLevel = .warning
    let server = GRPCServer(configuration: configuration, services: definition, logger: logger)
    let bound = try await server.start()
    health.setAll(.serving)
    return (server, "127.0.0.1:\(bound.port!)", service, health)
}

@Suite("A stock grpcio client calls our server")
struct StockClientInteropTests {
    @Test("every transport behaviour, checked by grpcio", .timeLimit(.minutes(2)))
    func grpcioClient() async throws {
        let (server, address, service, _) = try await startTestServer()
        let script = repositoryRoot.appendingPathComponent("Tests/Shared/RPCTests/Interop/grpcio_client_checks.py").path
        let result = try await runProcessDetached("python3", [script, address])
        await server.shutdownGracefully()
        print(result.output)
        #expect(result.status == 0, "\(result.output)")
        #expect(!result.output.contains("FAIL"), "\(result.output)")
        #expect(result.output.contains("ok echo_round_trip"), "\(result.output)")
        // The cancelled and the timed-out sleeps reached the handler as task cancellation.
        #expect(service.cancelledSleeps.withLockedValue { $0 } >= 2)
    }
}

@Suite("Hostile HTTP/2 peers")
struct HostilePeerTests {
    @Test("malformed, abusive and flooding peers get errors on their stream or connection only; the server keeps serving",
          .timeLimit(.minutes(3)))
    func hostilePeers() async throws {
        let (server, address, _, _) = try await startTestServer()
        let script = repositoryRoot.appendingPathComponent("Tests/Shared/RPCTests/Interop/h2_hostile_checks.py").path
        let binary = productsDirectory.appendingPathComponent("rpc-test-server").path
        let result = try await runProcessDetached("python3", [script, address, "--server-binary", binary])
        // The in-process server survived all of it and still answers.
        let client = GRPCClient(targets: [GRPCClient.Target(address)!])
        let echoed = try await client.unary(TestingV1.TestService.echo, .init(fInt32: 42), timeout: .seconds(5))
        await client.close()
        await server.shutdownGracefully()
        print(result.output)
        #expect(result.status == 0, "\(result.output)")
        #expect(!result.output.contains("FAIL"), "\(result.output)")
        #expect(result.output.contains("ok rapid_reset"), "\(result.output)")
        #expect(result.output.contains("ok made_you_reset"), "\(result.output)")
        #expect(result.output.contains("ok concurrent_stream_limit"), "\(result.output)")
        #expect(result.output.contains("ok unread_responses"), "\(result.output)")
        #expect(echoed.fInt32 == 42)
    }

    @Test("the same hostile peers over TLS (ALPN h2): the same answers, the server keeps serving", .timeLimit(.minutes(3)))
    func hostilePeersOverTLS() async throws {
        let directory = try makeTemporaryDirectory().path
        _ = try DevCertificates.write(directory: directory, names: ["localhost"])
        let (certificate, key) = ("\(directory)/localhost.pem", "\(directory)/localhost.key")
        var configuration = GRPCServer.Configuration()
        configuration.tls = try ServerTLS(files: .init(certificateFile: certificate, keyFile: key))
        let (server, address, _, _) = try await startTestServer(configuration: configuration)
        let script = repositoryRoot.appendingPathComponent("Tests/Shared/RPCTests/Interop/h2_hostile_checks.py").path
        let binary = productsDirectory.appendingPathComponent("rpc-test-server").path
        let result = try await runProcessDetached("python3", [
            script, address, "--server-binary", binary, "--tls", "\(directory)/ca.pem",
            "--server-arg=--tls-cert-file", "--server-arg=\(certificate)", "--server-arg=--tls-key-file", "--server-arg=\(key)",
        ])
        var clientConfiguration = GRPCClient.Configuration()
        clientConfiguration.tls = try ClientTLS(files: .init(caFile: "\(directory)/ca.pem"))
        let client = GRPCClient(targets: [GRPCClient.Target(address)!], configuration: clientConfiguration)
        let echoed = try await client.unary(TestingV1.TestService.echo, .init(fInt32: 42), timeout: .seconds(5))
        await client.close()
        await server.shutdownGracefully()
        print(result.output)
        #expect(result.status == 0, "\(result.output)")
        #expect(!result.output.split(separator: "\n").contains { $0.hasPrefix("FAIL") }, "\(result.output)")
        for check in ["rapid_reset", "made_you_reset", "concurrent_stream_limit"] {
            #expect(result.output.contains("ok \(check)"), "\(result.output)")
        }
        #expect(echoed.fInt32 == 42)
    }
}
