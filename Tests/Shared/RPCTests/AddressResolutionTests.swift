import Foundation
import Models
import NIOCore
import RPC
import RPCTestSupport
import RPCWire
import Synchronization
import Testing

/// A resolver the test sets: the addresses "replicas.test" names right now.
final class SettableResolver: AddressResolver {
    private let state = Mutex<(addresses: [SocketAddress], lookups: Int)>(([], 0))

    func set(_ addresses: [SocketAddress]) { state.withLock { $0.addresses = addresses } }
    var lookups: Int { state.withLock { $0.lookups } }

    func resolve(host: String, port: Int) async throws -> [SocketAddress] {
        try state.withLock { state in
            state.lookups += 1
            guard !state.addresses.isEmpty else { throw AddressResolutionError(host: host, reason: "no such name (test)") }
            return state.addresses
        }
    }
}

@Suite("Targets resolved to every address they name")
struct AddressResolutionTests {
    static func address(_ text: String) throws -> SocketAddress {
        let target = try #require(GRPCClient.Target(text))
        return try SocketAddress(ipAddress: target.host, port: target.port)
    }

    @Test("the system resolver: IP literals as they are, localhost to loopback, an unknown name refused in one line")
    func system() async throws {
        let resolver = SystemAddressResolver()
        #expect(try await resolver.resolve(host: "127.0.0.1", port: 50051).map(\.ipAddress) == ["127.0.0.1"])
        #expect(try await resolver.resolve(host: "127.0.0.1", port: 50051).map(\.port) == [50051])
        #expect(try await resolver.resolve(host: "::1", port: 7).map(\.ipAddress) == ["::1"])
        let local = try await resolver.resolve(host: "localhost", port: 80)
        #expect(!local.isEmpty && local.allSatisfy { $0.ipAddress == "127.0.0.1" || $0.ipAddress == "::1" }, "\(local)")
        let error = await #expect(throws: AddressResolutionError.self) {
            try await resolver.resolve(host: "no-such-host.invalid", port: 1)
        }
        #expect(error?.description.hasPrefix("cannot resolve no-such-host.invalid: ") == true)
    }

    @Test("calls spread over every address of a name; a failed connection resolves the name again and reaches the new replica",
          .timeLimit(.minutes(1)))
    func spreadAndReresolve() async throws {
        let a = try await startTestServer()
        let b = try await startTestServer()
        let resolver = SettableResolver()
        resolver.set([try Self.address(a.address), try Self.address(b.address)])
        var configuration = GRPCClient.Configuration()
        configuration.minResolutionInterval = .zero
        let client = GRPCClient(targets: [GRPCClient.Target(host: "replicas.test", port: 50051)], configuration: configuration,
                                resolver: resolver)
        let service = TestingV1.TestService.self
        for _ in 0..<20 { _ = try await client.unary(service.sleep, .init(millis: 1), timeout: .seconds(5), idempotent: true) }
        #expect(a.service.startedSleeps.withLockedValue { $0 } == 10 && b.service.startedSleeps.withLockedValue { $0 } == 10,
                "round-robin over both addresses of one name")
        #expect(resolver.lookups == 1, "resolved once while every connection works")

        // Replica b goes away and c takes its place behind the name.
        await b.server.shutdownGracefully()
        let c = try await startTestServer()
        resolver.set([try Self.address(a.address), try Self.address(c.address)])
        for _ in 0..<20 { _ = try await client.unary(service.sleep, .init(millis: 1), timeout: .seconds(5), idempotent: true) }
        #expect(resolver.lookups >= 2, "the failed connection made the client ask again")
        #expect(c.service.startedSleeps.withLockedValue { $0 } > 0, "the new replica gets calls")
        #expect(b.service.startedSleeps.withLockedValue { $0 } == 10)

        // While the name does not resolve, the addresses it had are kept.
        resolver.set([])
        _ = try await client.unary(service.sleep, .init(millis: 1), timeout: .seconds(5), idempotent: true)
        await client.close()
        await a.server.shutdownGracefully()
        await c.server.shutdownGracefully()
    }

    @Test("a name that never resolves is UNAVAILABLE naming the host")
    func neverResolves() async throws {
        let client = GRPCClient(targets: [GRPCClient.Target(host: "no-such-host.invalid", port: 50051)])
        // The system resolver asks the machine's name server, which may take its own timeouts
        // (glibc: 5 s, twice) to say no: the deadline leaves room for that.
        let error = await #expect(throws: RPCError.self) {
            try await client.unary(TestingV1.TestService.echo, .init(), timeout: .seconds(30))
        }
        #expect(error?.code == .unavailable && error?.message.contains("no-such-host.invalid") == true, "\(String(describing: error))")
        await client.close()
    }
}
