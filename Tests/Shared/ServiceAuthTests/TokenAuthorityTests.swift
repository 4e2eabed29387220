import Foundation
import Logging
import Models
import NIOConcurrencyHelpers
import RPC
import RPCTestSupport
import RPCWire
import ServiceAuth
import TestSupport
import Testing

func bearer(_ token: String) -> Metadata {
    var metadata = Metadata()
    metadata.add("authorization", "Bearer \(token)")
    return metadata
}

/// A clock tests can move.
final class TestClock: Sendable {
    private let instant = NIOLockedValueBox(Date(timeIntervalSince1970: 1_790_000_000))
    var now: Date { instant.withLockedValue { $0 } }
    func advance(_ seconds: TimeInterval) { instant.withLockedValue { $0 += seconds } }
}

@Suite("Bearer tokens")
struct TokenAuthorityTests {
    @Test("a minted token names its caller", arguments: [
        Caller(role: .platform, subject: "huabei-core"),
        Caller(role: .agencyManager, subject: "mgr-1", agencyID: "agy_1"),
        Caller(role: .collector, subject: "col-1", agencyID: "agy_1", collectorID: "col_1"),
    ])
    func roundTrip(caller: Caller) async throws {
        let key = try SigningKey.generate()
        let token = try await TokenIssuer(key: key).token(for: caller)
        let verifier = try await TokenVerifier(key: key)
        #expect(try verifier.authenticate(bearer(token)).caller == caller)
    }

    @Test("expired tokens are refused, also when they were cached while valid")
    func expiry() async throws {
        let clock = TestClock()
        let key = try SigningKey.generate()
        let token = try await TokenIssuer(key: key).token(for: Caller(role: .service, subject: "visits"),
                                                          lifetime: .seconds(60), now: clock.now)
        let verifier = try await TokenVerifier(key: key, now: { clock.now })
        _ = try verifier.authenticate(bearer(token))
        clock.advance(59)
        _ = try verifier.authenticate(bearer(token))
        clock.advance(2)
        #expect(throws: RPCError.unauthenticated("bearer token expired at \((clock.now - 1).formatted(.iso8601))")) {
            try verifier.authenticate(bearer(token))
        }
    }

    @Test("tokens of another key, tampered, malformed or absent are UNAUTHENTICATED")
    func refusals() async throws {
        let key = try SigningKey.generate()
        let other = try SigningKey.generate()
        let verifier = try await TokenVerifier(key: key)
        let foreign = try await TokenIssuer(key: other).token(for: Caller(role: .platform, subject: "x"))
        let good = try await TokenIssuer(key: key).token(for: Caller(role: .collector, subject: "c"))
        let parts = good.split(separator: ".").map(String.init)
        // Same signature over a payload claiming a stronger role.
        let forgedPayload = Data(#"{"sub":"c","exp":4102444800,"iat":1790000000,"iss":"doorstep","role":"platform"}"#.utf8)
            .base64EncodedString().replacingOccurrences(of: "=", with: "")
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        let forged = [parts[0], forgedPayload, parts[2]].joined(separator: ".")
        for metadata in [bearer(foreign), bearer(forged), bearer("not-a-jwt"), bearer(parts[0] + "." + parts[1]),
                         Metadata(), ["authorization": "Basic dXNlcjpwYXNz"]] {
            #expect {
                _ = try verifier.authenticate(metadata)
            } throws: { ($0 as? RPCError)?.code == .unauthenticated }
        }
    }

    @Test("key files: written 0600, loaded back, never overwritten, bad files named in one line")
    func keyFiles() throws {
        let path = temporaryPath("auth.key")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (created, wasCreated) = try SigningKey.loadOrCreate(path: path)
        #expect(wasCreated)
        let permissions = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(permissions == 0o600)
        let (loaded, createdAgain) = try SigningKey.loadOrCreate(path: path)
        #expect(!createdAgain && loaded.keyID == created.keyID)
        #expect(throws: KeyFileError.self) { try created.write(path: path) }

        let bad = temporaryPath("bad.key")
        defer { try? FileManager.default.removeItem(atPath: bad) }
        try "hello".write(toFile: bad, atomically: true, encoding: .utf8)
        #expect {
            _ = try SigningKey.load(path: bad)
        } throws: { "\($0)" == "auth key file \(bad) is not an Ed25519 private key in PEM (PKCS#8) form" }
        #expect(throws: KeyFileError.self) { _ = try SigningKey.load(path: temporaryPath("missing")) }
    }
}

@Suite("The server checks identity before any handler runs")
struct ServerAuthorizationTests {
    @Test("a connection reuses a verified token only while it is valid, and notices another token", .timeLimit(.minutes(1)))
    func connectionReuse() async throws {
        let key = try SigningKey.generate()
        let verifier = try await TokenVerifier(key: key)
        var definition = ServiceDefinition()
        let echoedBy = NIOLockedValueBox([Caller.Role]())
        definition.unary(TestingV1.TestService.echo, roles: [.platform, .compliance]) { request, context in
            echoedBy.withLockedValue { $0.append(context.caller!.role) }
            return request
        }
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let server = GRPCServer(services: definition, authenticator: verifier, logger: logger)
        let address = try await server.start()
        // One client: one connection for every call below.
        let client = GRPCClient(targets: [GRPCClient.Target(host: "127.0.0.1", port: address.port!)])
        let issuer = TokenIssuer(key: key)
        // Long enough that the three calls below finish inside it on a loaded CI machine; the
        // expiry is then waited for from the issue time, not from the end of the calls.
        let issued = ContinuousClock.now
        let shortLived = try await issuer.token(for: Caller(role: .platform, subject: "p"), lifetime: .seconds(20))
        let compliance = try await issuer.token(for: Caller(role: .compliance, subject: "c"))
        _ = try await client.unary(TestingV1.TestService.echo, .init(), metadata: bearer(shortLived), timeout: .seconds(5))
        _ = try await client.unary(TestingV1.TestService.echo, .init(), metadata: bearer(compliance), timeout: .seconds(5))
        _ = try await client.unary(TestingV1.TestService.echo, .init(), metadata: bearer(shortLived), timeout: .seconds(5))
        #expect(echoedBy.withLockedValue { $0 } == [.platform, .compliance, .platform])
        try await Task.sleep(until: issued + .seconds(21), clock: .continuous)
        do {
            _ = try await client.unary(TestingV1.TestService.echo, .init(), metadata: bearer(shortLived), timeout: .seconds(5))
            Issue.record("an expired token was accepted on a connection that had verified it")
        } catch {
            #expect(error.code == .unauthenticated)
        }
        await client.close()
        await server.shutdownGracefully()
    }

    @Test("no token: UNAUTHENTICATED; wrong role: PERMISSION_DENIED; right role: served")
    func roles() async throws {
        let key = try SigningKey.generate()
        let verifier = try await TokenVerifier(key: key)
        let service = TestServiceImplementation()
        var definition = ServiceDefinition()
        let echoedBy = NIOLockedValueBox([Caller]())
        definition.unary(TestingV1.TestService.echo, roles: [.platform, .compliance]) { request, context in
            echoedBy.withLockedValue { $0.append(context.caller!) }
            return request
        }
        definition.merge(HealthService(services: []).definition)
        _ = service
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let server = GRPCServer(services: definition, authenticator: verifier, logger: logger)
        let address = try await server.start()
        let client = GRPCClient(targets: [GRPCClient.Target(host: "127.0.0.1", port: address.port!)])
        let issuer = TokenIssuer(key: key)

        do {
            _ = try await client.unary(TestingV1.TestService.echo, .init(), timeout: .seconds(5))
            Issue.record("served without a token")
        } catch {
            #expect(error.code == .unauthenticated)
        }
        let collector = try await issuer.token(for: Caller(role: .collector, subject: "col-1", collectorID: "col_1"))
        do {
            _ = try await client.unary(TestingV1.TestService.echo, .init(), metadata: bearer(collector), timeout: .seconds(5))
            Issue.record("served a collector")
        } catch {
            #expect(error.code == .permissionDenied)
            #expect(error.message.contains("collector"))
        }
        let platform = try await issuer.token(for: Caller(role: .platform, subject: "huabei"))
        let echoed = try await client.unary(TestingV1.TestService.echo, .init(fInt32: 5), metadata: bearer(platform),
                                            timeout: .seconds(5))
        #expect(echoed.fInt32 == 5)
        #expect(echoedBy.withLockedValue { $0 } == [Caller(role: .platform, subject: "huabei")])
        await client.close()
        await server.shutdownGracefully()
    }
}
