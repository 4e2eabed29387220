import RPCWire
import TransportSecurity

/// The head of a call as the interceptors see it, before its handler runs: what the client
/// sent, and what the interceptors have established so far.
public struct CallHead: Sendable {
    /// The method's `:path`.
    public let path: String
    /// The method as registered (its roles, whether it needs credentials).
    public let method: RegisteredMethod
    /// Custom request metadata (reserved transport headers removed).
    public let metadata: Metadata
    /// The `grpc-timeout` header as sent, if any.
    public let timeout: String?
    /// When the call must be answered by (set by ``DeadlineInterceptor``).
    public var deadline: ContinuousClock.Instant?
    /// Who is calling (set by ``AuthenticationInterceptor``).
    public var caller: Caller?
    /// What the caller may see (set by ``ScopeInterceptor``; a failure is kept and thrown by
    /// `ServerContext.requireScope()`, so only calls that need a scope are refused for it).
    public var scope: Result<CallerScope, RPCError>?
    /// The connection's last verified credential: a connection re-verifies the
    /// `authorization` value its client repeats on every call only once it expires. Carried
    /// from call to call of one connection.
    public var connectionAuthentication: Authentication?
    /// Who the connection's verified TLS client certificate names (mutual TLS); nil on a
    /// connection without one.
    public let clientCertificate: CertificateIdentity?

    public init(path: String, method: RegisteredMethod, metadata: Metadata, timeout: String?,
                connectionAuthentication: Authentication? = nil, clientCertificate: CertificateIdentity? = nil) {
        self.path = path
        self.method = method
        self.metadata = metadata
        self.timeout = timeout
        self.connectionAuthentication = connectionAuthentication
        self.clientCertificate = clientCertificate
    }
}

/// A step every call passes before its handler runs (as grpc-swift-2's `ServerInterceptor`
/// and Hummingbird's middleware): it reads the call's head and may add to it, or refuse the
/// call with an `RPCError` — sent at once as a Trailers-Only response, the handler never
/// runs. Interceptors run on the connection's event loop: they must not block or suspend.
public protocol ServerInterceptor: Sendable {
    func intercept(_ call: inout CallHead) throws(RPCError)
}

/// The interceptors of a server, in the order they run. The standard order is:
/// 1. ``DeadlineInterceptor`` — the deadline from `grpc-timeout` (a malformed one is
///    refused before anything else is looked at);
/// 2. ``AuthenticationInterceptor`` — the caller from the `authorization` metadata
///    (UNAUTHENTICATED), for methods that need credentials;
/// 3. ``RoleInterceptor`` — the caller's role against the method's roles (PERMISSION_DENIED);
/// 4. ``ScopeInterceptor`` — the caller's ``CallerScope``, computed once for the handler;
/// then the service's own interceptors, in the order given.
public struct ServerPipeline: Sendable {
    /// The standard interceptors are held as themselves, not as `any ServerInterceptor`, so
    /// the per-call path makes no dynamic call for them (the RPC benchmark measures it).
    private let deadline = DeadlineInterceptor()
    private let authentication: AuthenticationInterceptor?
    private let role = RoleInterceptor()
    private let scope = ScopeInterceptor()
    private let extra: [any ServerInterceptor]

    /// The standard interceptors (with `authenticator`, or none: every caller anonymous),
    /// then `extra`.
    public static func standard(authenticator: (any Authenticator)?, extra: [any ServerInterceptor] = []) -> ServerPipeline {
        ServerPipeline(authentication: authenticator.map(AuthenticationInterceptor.init), extra: extra)
    }

    /// Every interceptor, in the order they run.
    public var interceptors: [any ServerInterceptor] {
        [deadline] + (authentication.map { [$0] } ?? []) + [role, scope] + extra
    }

    /// Runs every interceptor on `call`, in order; the first refusal ends the call.
    public func admit(_ call: inout CallHead) throws(RPCError) {
        try deadline.intercept(&call)
        try authentication?.intercept(&call)
        try role.intercept(&call)
        try scope.intercept(&call)
        for interceptor in extra { try interceptor.intercept(&call) }
    }
}

/// Sets the deadline from `grpc-timeout`; a malformed value is INTERNAL (PROTOCOL-HTTP2
/// leaves it to the server; grpc-go and grpc-java answer INTERNAL too).
public struct DeadlineInterceptor: ServerInterceptor {
    public init() {}

    public func intercept(_ call: inout CallHead) throws(RPCError) {
        guard let timeout = call.timeout else { return }
        guard let duration = GRPCTimeout.parse(timeout) else {
            throw RPCError(code: .internal, message: "malformed grpc-timeout '\(timeout)'")
        }
        call.deadline = .now + duration
    }
}

/// Establishes the caller of methods that need credentials, reusing the connection's last
/// verification while the same `authorization` value is repeated and still valid.
public struct AuthenticationInterceptor: ServerInterceptor {
    public let authenticator: any Authenticator

    public init(authenticator: any Authenticator) {
        self.authenticator = authenticator
    }

    public func intercept(_ call: inout CallHead) throws(RPCError) {
        guard call.method.requiresAuthentication else { return }
        if let last = call.connectionAuthentication, let credential = last.credential, .now < last.validUntil,
           call.metadata["authorization"] == credential {
            call.caller = last.caller
            return
        }
        let authentication = try authenticator.authenticate(call.metadata)
        call.caller = authentication.caller
        call.connectionAuthentication = authentication.credential == nil ? nil : authentication
    }
}

/// Refuses a caller whose role the method does not allow (PERMISSION_DENIED).
public struct RoleInterceptor: ServerInterceptor {
    public init() {}

    public func intercept(_ call: inout CallHead) throws(RPCError) {
        guard let roles = call.method.allowedRoles, let role = call.caller?.role, !roles.contains(role) else { return }
        throw .permissionDenied("role \(role.rawValue) may not call \(call.path)")
    }
}

/// Computes the caller's ``CallerScope`` once, for every query of the handler.
public struct ScopeInterceptor: ServerInterceptor {
    public init() {}

    public func intercept(_ call: inout CallHead) throws(RPCError) {
        guard let caller = call.caller else { return }
        do throws(RPCError) {
            call.scope = .success(try CallerScope(caller))
        } catch {
            call.scope = .failure(error)
        }
    }
}

/// On a mutual-TLS listener, a `service` token is accepted only over a connection whose
/// client certificate (already verified against the listener's client CA) names the
/// service the token speaks for (its subject, e.g. `scheduling`): a stolen service token
/// alone is not enough, the caller also needs that service's private key. Other roles are
/// people and tools; their certificate proves only that they come from the lender's estate.
public struct ServiceCertificateInterceptor: ServerInterceptor {
    public init() {}

    public func intercept(_ call: inout CallHead) throws(RPCError) {
        guard let caller = call.caller, caller.role == .service else { return }
        guard let certificate = call.clientCertificate else {
            throw .permissionDenied("the service role needs a client certificate issued to the calling service")
        }
        guard certificate.names(caller.subject) else {
            throw .permissionDenied("the client certificate (\(certificate)) is not issued to service '\(caller.subject)'")
        }
    }
}
