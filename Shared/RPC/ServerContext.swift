import Logging
import NIOConcurrencyHelpers
import RPCWire

/// What a handler knows about the call it is serving.
public struct ServerContext: Sendable {
    /// The method's `:path`, e.g. `/doorstep.accounts.v1.Accounts/GetAccount`.
    public let path: String
    /// Custom request metadata (reserved transport headers removed).
    public let metadata: Metadata
    /// When the call must be answered by, from `grpc-timeout`; nil when the client set none.
    public let deadline: ContinuousClock.Instant?
    /// The peer's address, e.g. `[IPv4]127.0.0.1/127.0.0.1:52514`.
    public let peer: String
    /// A per-call id for logs: the client's `x-request-id` metadata, or one we made up.
    public let callID: String
    /// A logger carrying `call-id` and `rpc` metadata.
    public let logger: Logger
    /// The caller, as established by the server's authenticator (nil when none is configured).
    public let caller: Caller?
    /// Metadata the handler sends back: initial (with the response headers) and trailing.
    public let response: ResponseMetadata
}

/// Response metadata a handler sets while it runs; the transport sends it with the response
/// headers (initial) and the trailers.
public final class ResponseMetadata: Sendable {
    private let state = NIOLockedValueBox((initial: Metadata(), trailing: Metadata()))

    init() {}

    /// Adds initial metadata; it is sent only if set before the first response message.
    public func addInitial(_ name: String, _ value: MetadataValue) {
        state.withLockedValue { $0.initial.add((name.lowercased(), value)) }
    }

    /// Adds trailing metadata, sent with the status.
    public func addTrailing(_ name: String, _ value: MetadataValue) {
        state.withLockedValue { $0.trailing.add((name.lowercased(), value)) }
    }

    var initial: Metadata { state.withLockedValue { $0.initial } }
    var trailing: Metadata { state.withLockedValue { $0.trailing } }
}

/// Who is calling: a role and, where it applies, the agency or collector it speaks for
/// (DESIGN.md §5).
public struct Caller: Sendable, Hashable {
    public enum Role: String, Sendable, Hashable, CaseIterable {
        case platform, agencyManager = "agency_manager", collector, compliance, service
    }

    public var role: Role
    public var subject: String
    public var agencyID: String?
    public var collectorID: String?

    public init(role: Role, subject: String, agencyID: String? = nil, collectorID: String? = nil) {
        self.role = role
        self.subject = subject
        self.agencyID = agencyID
        self.collectorID = collectorID
    }
}

/// Establishes the caller of each call from its metadata (e.g. a bearer token), before any
/// handler runs. Throws UNAUTHENTICATED for missing or invalid credentials.
public protocol Authenticator: Sendable {
    func authenticate(_ metadata: Metadata) throws(RPCError) -> Caller
}

/// Writes the responses of a server-streaming call.
public struct ResponseStream<Response: Sendable>: Sendable {
    let send: @Sendable (Response) async throws -> Void

    /// Sends one response message; waits while the connection cannot take more (backpressure).
    public func send(_ response: Response) async throws {
        try await send(response)
    }
}
