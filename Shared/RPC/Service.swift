import Models
import RPCWire

/// A method the server can route to, type-erased: bytes in, bytes out.
public struct RegisteredMethod: Sendable {
    public enum Kind: Sendable {
        case unary(@Sendable (_ request: [UInt8], _ context: ServerContext) async throws -> [UInt8])
        case serverStreaming(@Sendable (_ request: [UInt8], _ context: ServerContext,
                                        _ send: @escaping @Sendable ([UInt8]) async throws -> Void) async throws -> Void)
        /// Started when the call's headers arrive; its request messages are read as they
        /// arrive; one response.
        case clientStreaming(@Sendable (_ requests: RequestStream<[UInt8]>, _ context: ServerContext) async throws -> [UInt8])
        /// Started when the call's headers arrive; request messages read and responses sent
        /// in any interleaving.
        case bidirectionalStreaming(@Sendable (_ requests: RequestStream<[UInt8]>, _ context: ServerContext,
                                               _ send: @escaping @Sendable ([UInt8]) async throws -> Void) async throws -> Void)
    }

    public let path: String
    /// Roles allowed to call it; nil = any authenticated caller (or anyone, without an
    /// authenticator).
    public let allowedRoles: Set<Caller.Role>?
    /// False for methods open to callers without credentials (health probes).
    public let requiresAuthentication: Bool
    public let kind: Kind
}

/// The methods of one or more services, declared once with their typed handlers. The
/// server routes by `:path`, decodes, authorizes, calls, encodes.
public struct ServiceDefinition: Sendable {
    public private(set) var methods: [String: RegisteredMethod] = [:]

    public init() {}

    /// Registers a unary method.
    public mutating func unary<Request, Response>(
        _ method: MethodDescriptor<Request, Response>,
        roles: Set<Caller.Role>? = nil,
        requiresAuthentication: Bool = true,
        _ handler: @escaping @Sendable (Request, ServerContext) async throws -> Response
    ) {
        register(method, roles: roles, requiresAuthentication: requiresAuthentication) { request, context in
            try encodeResponse(try await handler(request, context))
        }
    }

    /// Registers a unary method whose handler answers with its response already encoded (an
    /// answer it keeps, see ``EncodedResponse``); otherwise as ``unary(_:roles:requiresAuthentication:_:)``.
    public mutating func unaryEncoded<Request, Response>(
        _ method: MethodDescriptor<Request, Response>,
        roles: Set<Caller.Role>? = nil,
        requiresAuthentication: Bool = true,
        _ handler: @escaping @Sendable (Request, ServerContext) async throws -> EncodedResponse<Response>
    ) {
        register(method, roles: roles, requiresAuthentication: requiresAuthentication) { request, context in
            try await handler(request, context).bytes
        }
    }

    private mutating func register<Request, Response>(
        _ method: MethodDescriptor<Request, Response>, roles: Set<Caller.Role>?, requiresAuthentication: Bool,
        _ answer: @escaping @Sendable (Request, ServerContext) async throws -> [UInt8]
    ) {
        precondition(!method.isServerStreaming && !method.isClientStreaming, "\(method.path) is not unary")
        let identified = Request.self is any RequestIdentified.Type
        methods[method.path] = RegisteredMethod(path: method.path, allowedRoles: roles, requiresAuthentication: requiresAuthentication, kind: .unary { bytes, context in
            let request = try decodeRequest(Request.self, bytes)
            if identified, let request = request as? any RequestIdentified { context.response.requestID = request.requestId }
            do {
                return try await answer(request, context)
            } catch {
                throw RPCError(from: error).withStandardDetails()
            }
        })
    }

    /// Registers a server-streaming method.
    public mutating func serverStreaming<Request, Response>(
        _ method: MethodDescriptor<Request, Response>,
        roles: Set<Caller.Role>? = nil,
        requiresAuthentication: Bool = true,
        _ handler: @escaping @Sendable (Request, ServerContext, ResponseStream<Response>) async throws -> Void
    ) {
        precondition(method.isServerStreaming && !method.isClientStreaming, "\(method.path) is not server-streaming")
        let identified = Request.self is any RequestIdentified.Type
        methods[method.path] = RegisteredMethod(path: method.path, allowedRoles: roles, requiresAuthentication: requiresAuthentication, kind: .serverStreaming { bytes, context, send in
            let request = try decodeRequest(Request.self, bytes)
            if identified, let request = request as? any RequestIdentified { context.response.requestID = request.requestId }
            do {
                try await handler(request, context, ResponseStream { response in try await send(try encodeResponse(response)) })
            } catch {
                throw RPCError(from: error).withStandardDetails()
            }
        })
    }

    /// Registers a client-streaming method: the handler reads the request messages as they
    /// arrive (the sequence ends when the client half-closes) and returns the one response.
    public mutating func clientStreaming<Request, Response>(
        _ method: MethodDescriptor<Request, Response>,
        roles: Set<Caller.Role>? = nil,
        requiresAuthentication: Bool = true,
        _ handler: @escaping @Sendable (RequestStream<Request>, ServerContext) async throws -> Response
    ) {
        precondition(method.isClientStreaming && !method.isServerStreaming, "\(method.path) is not client-streaming")
        methods[method.path] = RegisteredMethod(path: method.path, allowedRoles: roles, requiresAuthentication: requiresAuthentication, kind: .clientStreaming { requests, context in
            do {
                return try encodeResponse(try await handler(requests.decoding(Request.self), context))
            } catch {
                throw RPCError(from: error).withStandardDetails()
            }
        })
    }

    /// Registers a bidirectional-streaming method: the handler reads request messages as they
    /// arrive and sends responses whenever it likes; the call ends (with OK) when it returns,
    /// whether or not the client has finished sending.
    public mutating func bidirectionalStreaming<Request, Response>(
        _ method: MethodDescriptor<Request, Response>,
        roles: Set<Caller.Role>? = nil,
        requiresAuthentication: Bool = true,
        _ handler: @escaping @Sendable (RequestStream<Request>, ServerContext, ResponseStream<Response>) async throws -> Void
    ) {
        precondition(method.isClientStreaming && method.isServerStreaming, "\(method.path) is not bidirectional-streaming")
        methods[method.path] = RegisteredMethod(path: method.path, allowedRoles: roles, requiresAuthentication: requiresAuthentication, kind: .bidirectionalStreaming { requests, context, send in
            do {
                try await handler(requests.decoding(Request.self), context, ResponseStream { response in try await send(try encodeResponse(response)) })
            } catch {
                throw RPCError(from: error).withStandardDetails()
            }
        })
    }

    /// Adds every method of `other`.
    public mutating func merge(_ other: ServiceDefinition) {
        methods.merge(other.methods) { _, new in new }
    }

    /// The fully-qualified names of the services with a method here, from the methods'
    /// paths (`/doorstep.accounts.v1.Accounts/GetAccount` → `doorstep.accounts.v1.Accounts`).
    public var serviceNames: Set<String> {
        Set(methods.keys.compactMap { path in
            let parts = path.split(separator: "/", omittingEmptySubsequences: true)
            return parts.count == 2 ? String(parts[0]) : nil
        })
    }
}

/// Malformed request protobuf is the caller's fault: INVALID_ARGUMENT naming the field.
func decodeRequest<Request: ProtoMessage>(_: Request.Type, _ bytes: [UInt8]) throws(RPCError) -> Request {
    do {
        return try Request(decoding: bytes)
    } catch {
        let field = error.field.map { "\($0): " } ?? ""
        throw RPCError(code: .invalidArgument, message: "\(field)malformed \(Request.protoMessageName): \(error)").withStandardDetails()
    }
}

/// A response message encoded once and answered as these bytes as often as it applies (a
/// handler's memo of its answers): the bytes are those of `Message`'s encoding, made only by
/// encoding one.
public struct EncodedResponse<Message: ProtoMessage>: Sendable {
    public let bytes: [UInt8]

    /// `message` encoded; INTERNAL when it cannot be (as for a response returned as it is).
    public init(_ message: Message) throws(RPCError) {
        self.bytes = try encodeResponse(message)
    }
}

/// A response that cannot be encoded (a string with U+0000 from storage) is our fault.
func encodeResponse<Response: ProtoMessage>(_ response: Response) throws(RPCError) -> [UInt8] {
    do {
        return try response.encode()
    } catch {
        throw RPCError(code: .internal, message: "could not encode \(Response.protoMessageName)")
    }
}
