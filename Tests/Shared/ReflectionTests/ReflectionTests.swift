import Logging
import Models
@testable import Reflection
import RPC
import RPCWire
import TestSupport
import Testing

@Suite("The published descriptor set, indexed")
struct DescriptorSetTests {
    static let published = repositoryRoot.appendingPathComponent("proto/descriptors/doorstep.binpb")

    @Test("the set compiled in is proto/descriptors/doorstep.binpb, byte for byte")
    func compiledInIsPublished() throws {
        #expect(PublishedDescriptors.bytes == (try readFile(Self.published)),
                "Shared/Reflection/PublishedDescriptors.swift is stale: run Scripts/generate-descriptors.sh")
        #expect(DescriptorSet.published.files.keys.sorted() == [
            "doorstep/accounts/v1/accounts.proto", "doorstep/scheduling/v1/scheduling.proto", "doorstep/type/v1/types.proto",
            "doorstep/visits/v1/visits.proto", "grpc/health/v1/health.proto", "grpc/reflection/v1/reflection.proto",
            "grpc/reflection/v1alpha/reflection.proto",
        ])
    }

    @Test("every symbol resolves to the file the reference implementation says, and nothing else does")
    func symbolsAgreeWithReference() throws {
        let result = try runProcess("python3", [
            repositoryRoot.appendingPathComponent("Tests/Shared/ReflectionTests/Interop/descriptor_symbols.py").path,
            Self.published.path,
        ])
        try #require(result.status == 0, "\(result.output)")
        var reference: [String: String] = [:]
        for line in result.output.split(separator: "\n") {
            let parts = line.split(separator: "\t")
            try #require(parts.count == 2, "\(line)")
            reference[String(parts[0])] = String(parts[1])
        }
        #expect(reference.count > 1000)
        let set = DescriptorSet.published
        #expect(set.symbols == reference, "symbols only we have: \(Set(set.symbols.keys).subtracting(reference.keys).sorted().prefix(10)); only the reference has: \(Set(reference.keys).subtracting(set.symbols.keys).sorted().prefix(10))")
        #expect(set.file(declaring: "doorstep.accounts.v1.Accounts.GetAccount")?.name == "doorstep/accounts/v1/accounts.proto")
        #expect(set.file(declaring: "doorstep.type.v1.RpcBadRequest.FieldViolation")?.name == "doorstep/type/v1/types.proto")
        #expect(set.file(declaring: "grpc.health.v1.HealthCheckResponse.SERVING")?.name == "grpc/health/v1/health.proto")
        #expect(set.file(declaring: "doorstep.accounts.v1") == nil, "packages are not symbols (as in grpc-go and Python)")
        #expect(set.file(declaring: ".doorstep.accounts.v1.Accounts") == nil)
        #expect(set.serviceNames == [
            "doorstep.accounts.v1.Accounts", "doorstep.scheduling.v1.Scheduling", "doorstep.visits.v1.Visits",
            "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
        ])
    }

    @Test("a file comes first, then what it imports, each once; no extensions in the set")
    func dependenciesAndExtensions() throws {
        let set = DescriptorSet.published
        let visits = try #require(set.file(named: "doorstep/visits/v1/visits.proto"))
        #expect(set.withDependencies(visits).map(\.name) == ["doorstep/visits/v1/visits.proto", "doorstep/type/v1/types.proto"])
        let health = try #require(set.file(named: "grpc/health/v1/health.proto"))
        #expect(set.withDependencies(health).map(\.name) == ["grpc/health/v1/health.proto"])
        #expect(set.extensionNumbers(of: "doorstep.accounts.v1.Account") == [])
        #expect(set.extensionNumbers(of: "doorstep.accounts.v1.Nope") == nil)
        #expect(set.file(extending: "doorstep.accounts.v1.Account", number: 100) == nil)
    }

    @Test("a set that is not protobuf, or names a file twice, is refused with the reason",
          arguments: [([0x0A, 0x05, 0x0A], "field 1 is truncated"), ([0x0B], "field 1 has wire type 3"),
                      ([0x0A, 0x02, 0x0A, 0x00], "a file without a name"),
                      ([0x0A, 0x03, 0x0A, 0x01, 0x61, 0x0A, 0x03, 0x0A, 0x01, 0x61], "a appears twice")] as [([UInt8], String)])
    func malformed(bytes: [UInt8], problem: String) {
        let error = #expect(throws: DescriptorSetError.self) { _ = try DescriptorSet(serialized: bytes) }
        #expect(error?.problem == problem)
    }
}

/// Refuses every caller: reflection (like health) must not need credentials.
private struct RefuseEveryone: Authenticator {
    func authenticate(_ metadata: Metadata) throws(RPCError) -> Authentication {
        throw RPCError(code: .unauthenticated, message: "no one gets in")
    }
}

@Suite("Server reflection over HTTP/2")
struct ReflectionServiceTests {
    /// A server with health, reflection and a method that needs credentials (the test
    /// service's Echo, which the published set does not describe), and an authenticator that
    /// refuses every caller.
    static func withServer(_ body: (GRPCClient) async throws -> Void) async throws {
        let health = HealthService(services: [])
        var definition = health.definition
        definition.unary(TestingV1.TestService.echo) { request, _ in request }
        definition.merge(ReflectionService(serving: definition.serviceNames).definition)
        var logger = Logger(label: "doorstep.test")
        logger.logLevel = .warning
        let server = GRPCServer(services: definition, authenticator: RefuseEveryone(), logger: logger)
        let bound = try await server.start()
        let client = GRPCClient(targets: [GRPCClient.Target(host: "127.0.0.1", port: bound.port!)])
        do {
            try await body(client)
        } catch {
            await client.close()
            await server.shutdownGracefully()
            throw error
        }
        await client.close()
        await server.shutdownGracefully()
    }

    /// One request on a stream of its own (as grpcio's reflection client asks).
    static func ask(_ client: GRPCClient, _ request: ReflectionV1.ServerReflectionRequest) async throws -> ReflectionV1.ServerReflectionResponse {
        try await client.unary(ReflectionV1.ServerReflectionService.serverReflectionInfo, request, timeout: .seconds(5))
    }

    @Test("without credentials: the services served (and described), a symbol's file with its imports, NOT_FOUND for the rest",
          .timeLimit(.minutes(1)))
    func answers() async throws {
        try await Self.withServer { client in
            let list = try await Self.ask(client, .init(host: "example:1", messageRequest: .listServices("*")))
            #expect(list.validHost == "example:1")
            #expect(list.originalRequest == .init(host: "example:1", messageRequest: .listServices("*")))
            guard case .listServicesResponse(let listed) = list.messageResponse else {
                Issue.record("\(list)")
                return
            }
            #expect(listed.service.map(\.name) == ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                                                   "grpc.reflection.v1alpha.ServerReflection"],
                    "what it serves and the set describes (not the test service)")

            // A method of a service this server does not serve is still the public contract.
            let symbol = try await Self.ask(client, .init(messageRequest: .fileContainingSymbol("doorstep.visits.v1.Visits.CheckIn")))
            guard case .fileDescriptorResponse(let files) = symbol.messageResponse else {
                Issue.record("\(symbol)")
                return
            }
            let set = DescriptorSet.published
            #expect(files.fileDescriptorProto == [try #require(set.file(named: "doorstep/visits/v1/visits.proto")).bytes,
                                                  try #require(set.file(named: "doorstep/type/v1/types.proto")).bytes])

            let byName = try await Self.ask(client, .init(messageRequest: .fileByFilename("grpc/health/v1/health.proto")))
            guard case .fileDescriptorResponse(let health) = byName.messageResponse else {
                Issue.record("\(byName)")
                return
            }
            #expect(health.fileDescriptorProto.count == 1)

            for request: ReflectionV1.ServerReflectionRequest.MessageRequest in [
                .fileContainingSymbol("doorstep.visits.v1.Nope"), .fileByFilename("nope.proto"),
                .fileContainingExtension(.init(containingType: "doorstep.visits.v1.Visit", extensionNumber: 100)),
                .allExtensionNumbersOfType("doorstep.visits.v1.Nope"),
            ] {
                let answer = try await Self.ask(client, .init(messageRequest: request))
                guard case .errorResponse(let error) = answer.messageResponse else {
                    Issue.record("\(request): \(answer)")
                    continue
                }
                #expect(error.errorCode == 5, "\(request): NOT_FOUND")
                #expect(answer.originalRequest?.messageRequest == request)
            }
            let numbers = try await Self.ask(client, .init(messageRequest: .allExtensionNumbersOfType("doorstep.visits.v1.Visit")))
            #expect(numbers.messageResponse == .allExtensionNumbersResponse(.init(baseTypeName: "doorstep.visits.v1.Visit")))
            let empty = try await Self.ask(client, .init())
            guard case .errorResponse(let error) = empty.messageResponse else {
                Issue.record("\(empty)")
                return
            }
            #expect(error.errorCode == 3, "a request that asks nothing: INVALID_ARGUMENT")

            // The rest is still closed to this caller: only health and reflection are open.
            let refused = await client.rawCall(path: TestingV1.TestService.echo.path, request: [])
            #expect(refused.status.code == .unauthenticated)
        }
    }

    @Test("v1alpha answers the same as v1", .timeLimit(.minutes(1)))
    func v1alpha() async throws {
        try await Self.withServer { client in
            let request = ReflectionV1alpha.ServerReflectionRequest(
                host: "h", messageRequest: .fileContainingSymbol("grpc.reflection.v1alpha.ServerReflection"))
            let answer = try await client.unary(ReflectionV1alpha.ServerReflectionService.serverReflectionInfo, request,
                                                timeout: .seconds(5))
            #expect(answer.validHost == "h")
            #expect(answer.originalRequest == request)
            let expected = try #require(DescriptorSet.published.file(named: "grpc/reflection/v1alpha/reflection.proto"))
            #expect(answer.messageResponse == .fileDescriptorResponse(.init(fileDescriptorProto: [expected.bytes])))
        }
    }

    @Test("on one stream, imports already sent are not sent again; the file asked for always is")
    func alreadySent() throws {
        let service = ReflectionService(serving: [])
        var sent: Set<String> = []
        let first = service.answer(.init(messageRequest: .fileContainingSymbol("doorstep.accounts.v1.Accounts")), alreadySent: &sent)
        let second = service.answer(.init(messageRequest: .fileContainingSymbol("doorstep.visits.v1.Visit")), alreadySent: &sent)
        let third = service.answer(.init(messageRequest: .fileByFilename("doorstep/type/v1/types.proto")), alreadySent: &sent)
        func files(_ response: ReflectionV1.ServerReflectionResponse) -> [[UInt8]] {
            guard case .fileDescriptorResponse(let files) = response.messageResponse else { return [] }
            return files.fileDescriptorProto
        }
        let set = DescriptorSet.published
        let accounts = try #require(set.file(named: "doorstep/accounts/v1/accounts.proto")).bytes
        let visits = try #require(set.file(named: "doorstep/visits/v1/visits.proto")).bytes
        let types = try #require(set.file(named: "doorstep/type/v1/types.proto")).bytes
        #expect(files(first) == [accounts, types])
        #expect(files(second) == [visits])
        #expect(files(third) == [types])
        #expect(service.listedServices == ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"])
        #expect(ReflectionService(serving: ["doorstep.testing.v1.TestService", "doorstep.accounts.v1.Accounts"]).listedServices
                == ["doorstep.accounts.v1.Accounts", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"],
                "a service the set does not describe is not listed")
    }
}
