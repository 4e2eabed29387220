import Models
import RPC
import RPCWire

/// gRPC server reflection: `grpc.reflection.v1.ServerReflection` and the older
/// `grpc.reflection.v1alpha.ServerReflection` (the same messages in another package),
/// answered from a descriptor set — by default the published one compiled in
/// (``DescriptorSet/published``), so what a server describes is what is committed and
/// released. grpcurl, GUI clients and grpcio's reflection client list a server's services
/// with it and fetch their descriptors, then build and make calls without .proto files.
///
/// Every request on the stream gets one response, which echoes the request's `host` (as
/// `valid_host`) and the request itself. Files come with the files they import, directly or
/// not, except those already sent on the same stream (which the protocol allows); the
/// requested file is always first. What the set does not have is an `error_response` with
/// NOT_FOUND, and the stream goes on.
///
/// Open to callers without credentials, like health: it reveals only the public contract,
/// which is published with every release anyway (docs/OPERATIONS.md ("Server reflection")).
public struct ReflectionService: Sendable {
    /// The names of the two reflection services.
    public static let serviceNames: Set<String> = [
        ReflectionV1.ServerReflectionService.name, ReflectionV1alpha.ServerReflectionService.name,
    ]

    private let descriptors: DescriptorSet
    /// What `list_services` answers, sorted.
    public let listedServices: [String]

    /// Reflection for a server that serves `services` (fully-qualified names, e.g. a
    /// ``ServiceDefinition``'s `serviceNames`). It lists those that `descriptors` describes
    /// (a client could do nothing with the others), and itself.
    public init(serving services: Set<String>, descriptors: DescriptorSet = .published) {
        self.descriptors = descriptors
        listedServices = services.union(Self.serviceNames).filter { descriptors.serviceNames.contains($0) }.sorted()
    }

    /// The two services' methods, to merge into a server's `ServiceDefinition`.
    public var definition: ServiceDefinition {
        var definition = ServiceDefinition()
        definition.bidirectionalStreaming(ReflectionV1.ServerReflectionService.serverReflectionInfo,
                                          requiresAuthentication: false) { [self] requests, _, responses in
            var sent: Set<String> = []
            for try await request in requests {
                try await responses.send(answer(request, alreadySent: &sent))
            }
        }
        definition.bidirectionalStreaming(ReflectionV1alpha.ServerReflectionService.serverReflectionInfo,
                                          requiresAuthentication: false) { [self] requests, _, responses in
            var sent: Set<String> = []
            for try await request in requests {
                // The same messages in another package are the same bytes.
                let answered = answer(try ReflectionV1.ServerReflectionRequest(decoding: request.encode()), alreadySent: &sent)
                try await responses.send(try ReflectionV1alpha.ServerReflectionResponse(decoding: answered.encode()))
            }
        }
        return definition
    }

    /// The response to one request of a stream on which the files in `sent` were sent already.
    func answer(_ request: ReflectionV1.ServerReflectionRequest, alreadySent sent: inout Set<String>)
        -> ReflectionV1.ServerReflectionResponse {
        var response = ReflectionV1.ServerReflectionResponse(validHost: request.host, originalRequest: request)
        switch request.messageRequest {
        case .fileByFilename(let name):
            response.messageResponse = files(descriptors.file(named: name), sent: &sent, missing: "no file '\(name)'")
        case .fileContainingSymbol(let symbol):
            response.messageResponse = files(descriptors.file(declaring: symbol), sent: &sent, missing: "no symbol '\(symbol)'")
        case .fileContainingExtension(let request):
            response.messageResponse = files(
                descriptors.file(extending: request.containingType, number: request.extensionNumber), sent: &sent,
                missing: "no extension \(request.extensionNumber) of '\(request.containingType)'")
        case .allExtensionNumbersOfType(let type):
            if let numbers = descriptors.extensionNumbers(of: type) {
                response.messageResponse = .allExtensionNumbersResponse(.init(baseTypeName: type, extensionNumber: numbers))
            } else {
                response.messageResponse = Self.error(.notFound, "no message type '\(type)'")
            }
        case .listServices:
            response.messageResponse = .listServicesResponse(.init(service: listedServices.map { .init(name: $0) }))
        case nil:
            response.messageResponse = Self.error(.invalidArgument, "message_request: none of its fields is set")
        }
        return response
    }

    /// `file` and the files it imports that were not sent yet; NOT_FOUND without a file.
    private func files(_ file: DescriptorSet.File?, sent: inout Set<String>, missing: String)
        -> ReflectionV1.ServerReflectionResponse.MessageResponse {
        guard let file else { return Self.error(.notFound, missing) }
        var serialized: [[UInt8]] = []
        for (index, each) in descriptors.withDependencies(file).enumerated() where index == 0 || !sent.contains(each.name) {
            serialized.append(each.bytes)
            sent.insert(each.name)
        }
        return .fileDescriptorResponse(.init(fileDescriptorProto: serialized))
    }

    private static func error(_ code: StatusCode, _ message: String) -> ReflectionV1.ServerReflectionResponse.MessageResponse {
        .errorResponse(.init(errorCode: Int32(code.rawValue), errorMessage: message))
    }
}
