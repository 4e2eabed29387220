import Models
import RPC
import RPCWire
import Testing

/// The standard interceptors as values: each decides from a call head, in the documented order.
@Suite("Server interceptors (value)")
struct ServerInterceptorTests {
    /// Accepts `Bearer good-<role>` (an agency manager of agy_A, or one naming no agency) and
    /// counts verifications.
    final class Tokens: Authenticator, @unchecked Sendable {
        var verified = 0

        func authenticate(_ metadata: Metadata) throws(RPCError) -> Authentication {
            verified += 1
            switch metadata["authorization"] {
            case "Bearer good-platform"?:
                return Authentication(caller: Caller(role: .platform, subject: "p"), credential: "Bearer good-platform",
                                      validUntil: .now + .seconds(60))
            case "Bearer good-manager"?:
                return Authentication(caller: Caller(role: .agencyManager, subject: "m", agencyID: "agy_A"),
                                      credential: "Bearer good-manager", validUntil: .now + .seconds(60))
            case "Bearer manager-without-agency"?:
                return Authentication(caller: Caller(role: .agencyManager, subject: "m"))
            default:
                throw .unauthenticated("bad token")
            }
        }
    }

    static func method(roles: Set<Caller.Role>? = [.platform], open: Bool = false) -> RegisteredMethod {
        var definition = ServiceDefinition()
        definition.unary(HealthV1.HealthService.check, roles: roles, requiresAuthentication: !open) { _, _ in .init() }
        return definition.methods.values.first!
    }

    static func head(_ token: String?, timeout: String? = nil, method: RegisteredMethod = method()) -> CallHead {
        var metadata = Metadata()
        if let token { metadata.add("authorization", "Bearer \(token)") }
        return CallHead(path: method.path, method: method, metadata: metadata, timeout: timeout)
    }

    @Test("the standard order: deadline, authentication, role, scope")
    func order() {
        let pipeline = ServerPipeline.standard(authenticator: Tokens())
        #expect(pipeline.interceptors.map { "\(type(of: $0))" }
                == ["DeadlineInterceptor", "AuthenticationInterceptor", "RoleInterceptor", "ScopeInterceptor"])
        // A malformed grpc-timeout is refused before the credentials are looked at.
        var head = Self.head(nil, timeout: "soon")
        let error = #expect(throws: RPCError.self) { try pipeline.admit(&head) }
        #expect(error?.code == .internal && error?.message.contains("grpc-timeout") == true)
    }

    @Test("deadline from grpc-timeout")
    func deadline() throws {
        var head = Self.head(nil, timeout: "250m")
        let before = ContinuousClock.now
        try DeadlineInterceptor().intercept(&head)
        let deadline = try #require(head.deadline)
        #expect(deadline >= before + .milliseconds(250) && deadline <= .now + .milliseconds(250))
        var none = Self.head(nil)
        try DeadlineInterceptor().intercept(&none)
        #expect(none.deadline == nil)
    }

    @Test("authentication: missing or bad credentials refused; the connection's verification reused while valid")
    func authentication() throws {
        let tokens = Tokens()
        let interceptor = AuthenticationInterceptor(authenticator: tokens)
        var missing = Self.head(nil)
        #expect(throws: RPCError.unauthenticated("bad token")) { try interceptor.intercept(&missing) }
        var first = Self.head("good-platform")
        try interceptor.intercept(&first)
        #expect(first.caller?.role == .platform && tokens.verified == 2)
        var second = Self.head("good-platform")
        second.connectionAuthentication = first.connectionAuthentication
        try interceptor.intercept(&second)
        #expect(second.caller?.role == .platform && tokens.verified == 2, "the same credential on the connection is not verified again")
        var other = Self.head("good-manager")
        other.connectionAuthentication = first.connectionAuthentication
        try interceptor.intercept(&other)
        #expect(other.caller?.role == .agencyManager && tokens.verified == 3)
        var open = Self.head(nil, method: Self.method(open: true))
        try interceptor.intercept(&open)
        #expect(open.caller == nil, "a method open to anyone needs no credentials")
    }

    @Test("role: a caller outside the method's roles is PERMISSION_DENIED")
    func role() throws {
        var head = Self.head("good-manager")
        head.caller = Caller(role: .agencyManager, subject: "m", agencyID: "agy_A")
        let error = #expect(throws: RPCError.self) { try RoleInterceptor().intercept(&head) }
        #expect(error?.code == .permissionDenied && error?.message.contains("agency_manager") == true)
        var allowed = Self.head("good-platform", method: Self.method(roles: [.platform, .agencyManager]))
        allowed.caller = head.caller
        try RoleInterceptor().intercept(&allowed)
    }

    @Test("scope: computed once; a manager token naming no agency keeps its refusal for the calls that need a scope")
    func scope() throws {
        let pipeline = ServerPipeline.standard(authenticator: Tokens())
        let method = Self.method(roles: [.platform, .agencyManager])
        var manager = Self.head("good-manager", method: method)
        try pipeline.admit(&manager)
        #expect(try manager.scope?.get() == .agency("agy_A"))
        var incomplete = Self.head("manager-without-agency", method: method)
        try pipeline.admit(&incomplete)
        #expect(throws: RPCError.self) { try incomplete.scope?.get() }
        var anonymous = Self.head(nil, method: Self.method(open: true))
        try pipeline.admit(&anonymous)
        #expect(anonymous.scope == nil)
    }

    @Test("a service's own interceptors run after the standard ones and may refuse")
    func extra() {
        struct Maintenance: ServerInterceptor {
            func intercept(_ call: inout CallHead) throws(RPCError) {
                #expect(call.caller != nil, "runs after authentication")
                throw .unavailable("maintenance")
            }
        }
        let pipeline = ServerPipeline.standard(authenticator: Tokens(), extra: [Maintenance()])
        var head = Self.head("good-platform")
        #expect(throws: RPCError.unavailable("maintenance")) { try pipeline.admit(&head) }
        var refused = Self.head("bad")
        #expect(throws: RPCError.unauthenticated("bad token")) { try pipeline.admit(&refused) }
    }
}
