import Foundation
import Logging
import Models
import RPC
import RPCTestSupport
import RPCWire
import TestSupport
import Testing
import TransportSecurity

/// TLS between our own client and server (the process suites check stock clients): calls
/// over TLS and mutual TLS, what the handshake refuses and how the client reports it, and
/// that a reload changes new connections only.
@Suite("TLS and mutual TLS, our client and server")
struct TLSTests {
    /// Two development CAs with their certificates, written once for the suite.
    static let certificates: (first: String, second: String) = {
        let directory = try! makeTemporaryDirectory()
        let first = directory.appendingPathComponent("first").path, second = directory.appendingPathComponent("second").path
        _ = try! DevCertificates.write(directory: first, names: ["server", "client"])
        _ = try! DevCertificates.write(directory: second, names: ["server", "client"])
        return (first, second)
    }()

    static func server(_ directory: String, mutual: Bool) async throws -> (GRPCServer, String, ServerTLS) {
        let tls = try ServerTLS(files: .init(certificateFile: "\(directory)/server.pem", keyFile: "\(directory)/server.key",
                                             clientCAFile: mutual ? "\(directory)/ca.pem" : nil))
        var configuration = GRPCServer.Configuration()
        configuration.tls = tls
        var logger = Logger(label: "doorstep.test")
        logger.logLevel = .critical
        let server = GRPCServer(configuration: configuration, services: TestServiceImplementation().definition, logger: logger)
        let bound = try await server.start()
        return (server, "127.0.0.1:\(bound.port!)", tls)
    }

    static func client(_ address: String, ca: String, certificate: String? = nil, key: String? = nil,
                       serverName: String? = nil) throws -> GRPCClient {
        var configuration = GRPCClient.Configuration()
        configuration.maxAttempts = 1
        configuration.tls = try ClientTLS(files: .init(caFile: ca, certificateFile: certificate, keyFile: key, serverName: serverName))
        return GRPCClient(targets: [GRPCClient.Target(address)!], configuration: configuration)
    }

    static let message = TestingV1.AllKinds(fInt32: 7, fString: "上門催收 over TLS")

    @Test("a unary call over TLS, by IP address (checked against the certificate's IP names) and by name")
    func serverTLS() async throws {
        let first = Self.certificates.first
        let (server, address, _) = try await Self.server(first, mutual: false)
        let byAddress = try Self.client(address, ca: "\(first)/ca.pem")
        #expect(try await byAddress.unary(TestingV1.TestService.echo, Self.message, timeout: .seconds(5)) == Self.message)
        let byName = try Self.client(address, ca: "\(first)/ca.pem", serverName: "localhost")
        #expect(try await byName.unary(TestingV1.TestService.echo, Self.message, timeout: .seconds(5)) == Self.message)
        // A name the certificate does not carry is refused by the client.
        let wrongName = try Self.client(address, ca: "\(first)/ca.pem", serverName: "accounts.example")
        await #expect(throws: RPCError.self) { _ = try await wrongName.unary(TestingV1.TestService.echo, Self.message, timeout: .seconds(5)) }
        for client in [byAddress, byName, wrongName] { await client.close() }
        await server.shutdownGracefully()
    }

    @Test("mutual TLS: a client certificate from the CA is accepted; none, or one from another CA, fails the handshake and the client says so")
    func mutualTLS() async throws {
        let (first, second) = Self.certificates
        let (server, address, _) = try await Self.server(first, mutual: true)
        let good = try Self.client(address, ca: "\(first)/ca.pem", certificate: "\(first)/client.pem", key: "\(first)/client.key")
        #expect(try await good.unary(TestingV1.TestService.echo, Self.message, timeout: .seconds(5)) == Self.message)
        let anonymous = try Self.client(address, ca: "\(first)/ca.pem")
        let stranger = try Self.client(address, ca: "\(first)/ca.pem", certificate: "\(second)/client.pem", key: "\(second)/client.key")
        for client in [anonymous, stranger] {
            do {
                _ = try await client.unary(TestingV1.TestService.echo, Self.message, timeout: .seconds(5))
                Issue.record("the call succeeded without an acceptable client certificate")
            } catch {
                #expect(error.code == .unavailable)
                #expect(error.message.contains("TLS"), "\(error.message)")
            }
            await client.close()
        }
        // The server keeps serving the good client.
        #expect(try await good.unary(TestingV1.TestService.echo, Self.message, timeout: .seconds(5)) == Self.message)
        await good.close()
        await server.shutdownGracefully()
    }

    @Test("a plaintext client on a TLS port fails (UNAVAILABLE) and the server keeps serving")
    func plaintextToTLS() async throws {
        let first = Self.certificates.first
        let (server, address, _) = try await Self.server(first, mutual: false)
        var configuration = GRPCClient.Configuration()
        configuration.maxAttempts = 1
        let plaintext = GRPCClient(targets: [GRPCClient.Target(address)!], configuration: configuration)
        await #expect(throws: RPCError.self) { _ = try await plaintext.unary(TestingV1.TestService.echo, Self.message, timeout: .seconds(5)) }
        await plaintext.close()
        let client = try Self.client(address, ca: "\(first)/ca.pem")
        #expect(try await client.unary(TestingV1.TestService.echo, Self.message, timeout: .seconds(5)) == Self.message)
        await client.close()
        await server.shutdownGracefully()
    }

    @Test("reload: new connections get the new certificate, an established connection keeps working; a bad file is refused and the old certificate stays")
    func reload() async throws {
        let (first, second) = Self.certificates
        let live = try makeTemporaryDirectory().path
        for name in ["server.pem", "server.key"] { try FileManager.default.copyItem(atPath: "\(first)/\(name)", toPath: "\(live)/\(name)") }
        let tls = try ServerTLS(files: .init(certificateFile: "\(live)/server.pem", keyFile: "\(live)/server.key"))
        var configuration = GRPCServer.Configuration()
        configuration.tls = tls
        let server = GRPCServer(configuration: configuration, services: TestServiceImplementation().definition,
                                logger: Logger(label: "doorstep.test"))
        let address = "127.0.0.1:\(try await server.start().port!)"
        let established = try Self.client(address, ca: "\(first)/ca.pem")
        #expect(try await established.unary(TestingV1.TestService.echo, Self.message, timeout: .seconds(5)) == Self.message)

        for name in ["server.pem", "server.key"] {
            try FileManager.default.removeItem(atPath: "\(live)/\(name)")
            try FileManager.default.copyItem(atPath: "\(second)/\(name)", toPath: "\(live)/\(name)")
        }
        try tls.reload()
        #expect(try await established.unary(TestingV1.TestService.echo, Self.message, timeout: .seconds(5)) == Self.message,
                "the established connection was dropped by the reload")
        let fresh = try Self.client(address, ca: "\(second)/ca.pem")
        #expect(try await fresh.unary(TestingV1.TestService.echo, Self.message, timeout: .seconds(5)) == Self.message)
        let stale = try Self.client(address, ca: "\(first)/ca.pem")
        await #expect(throws: RPCError.self) { _ = try await stale.unary(TestingV1.TestService.echo, Self.message, timeout: .seconds(5)) }

        // A key that does not match the certificate: refused, naming the file; nothing changes.
        try FileManager.default.removeItem(atPath: "\(live)/server.key")
        try FileManager.default.copyItem(atPath: "\(first)/server.key", toPath: "\(live)/server.key")
        #expect(throws: TLSFileError.self) { try tls.reload() }
        let after = try Self.client(address, ca: "\(second)/ca.pem")
        #expect(try await after.unary(TestingV1.TestService.echo, Self.message, timeout: .seconds(5)) == Self.message)
        for client in [established, fresh, stale, after] { await client.close() }
        await server.shutdownGracefully()
    }

    @Test("the identity in a certificate: common name and DNS names, compared without case")
    func certificateIdentity() throws {
        let first = Self.certificates.first
        let identity = try CertificateIdentity(pemFile: "\(first)/client.pem")
        #expect(identity.commonName == "client")
        #expect(identity.dnsNames == ["client", "localhost"])
        #expect(identity.names("CLIENT") && identity.names("localhost") && !identity.names("server"))
    }
}
