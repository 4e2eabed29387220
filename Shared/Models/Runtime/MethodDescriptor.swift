/// One RPC of a contract service: its wire path and its request/response message types.
/// Generated for every method in `proto/`; the RPC layer routes and types calls with it.
public struct MethodDescriptor<Request: ProtoMessage, Response: ProtoMessage>: Sendable, Hashable {
    /// Fully qualified service name, e.g. `doorstep.accounts.v1.Accounts`.
    public let service: String
    /// Method name, e.g. `GetAccount`.
    public let method: String
    /// True when the server answers with a stream of responses.
    public let isServerStreaming: Bool
    /// True when the client sends a stream of requests (client streaming, or bidirectional
    /// streaming together with `isServerStreaming`).
    public let isClientStreaming: Bool

    public init(service: String, method: String, isServerStreaming: Bool, isClientStreaming: Bool = false) {
        self.service = service
        self.method = method
        self.isServerStreaming = isServerStreaming
        self.isClientStreaming = isClientStreaming
    }

    /// The HTTP/2 `:path` of the method, e.g. `/doorstep.accounts.v1.Accounts/GetAccount`.
    public var path: String { "/\(service)/\(method)" }
}
