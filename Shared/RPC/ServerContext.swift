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
    /// The caller, as established by the server's authenticator (nil when none is configured).
    public let caller: Caller?
    /// What the caller may see (``ScopeInterceptor``); read it with ``requireScope()``.
    let scope: Result<CallerScope, RPCError>?
    /// Metadata the handler sends back: initial (with the response headers) and trailing.
    public let response: ResponseMetadata
    /// The client's `x-request-id`, if it sent one.
    let requestedCallID: String?
    /// This connection's number and the call's stream: a call id unique within the process.
    let connectionNumber: UInt64
    let streamID: Int32
    let baseLogger: Logger
    /// The server's shutdown flag (nil for a server that has none: the in-process one).
    let shuttingDown: ShutdownFlag?

    /// The context of an admitted call. A client's `x-request-id` becomes the call id and
    /// comes back with the response headers.
    init(head: CallHead, peer: String, connectionNumber: UInt64, streamID: Int32, logger: Logger,
         shuttingDown: ShutdownFlag? = nil) {
        let requestedCallID = head.metadata["x-request-id"]
        let response = ResponseMetadata()
        if let requestedCallID { response.addInitial("x-request-id", .string(requestedCallID)) }
        self.path = head.path
        self.metadata = head.metadata
        self.deadline = head.deadline
        self.peer = peer
        self.caller = head.caller
        self.scope = head.scope
        self.response = response
        self.requestedCallID = requestedCallID
        self.connectionNumber = connectionNumber
        self.streamID = streamID
        self.baseLogger = logger
        self.shuttingDown = shuttingDown
    }

    /// True once the server has begun a graceful shutdown: a handler of a call that would run
    /// until cancelled (an open-ended stream) should end it now — with UNAVAILABLE, so the client
    /// reconnects, to another replica or to this one restarted — instead of holding the drain.
    public var isServerShuttingDown: Bool { shuttingDown?.isRaised ?? false }

    /// The caller's ``CallerScope``, computed once for the call: PERMISSION_DENIED for a
    /// token that names no agency or collector where its role needs one, UNAUTHENTICATED
    /// when the call has no caller.
    public func requireScope() throws(RPCError) -> CallerScope {
        switch scope {
        case .success(let scope): return scope
        case .failure(let error): throw error
        case nil: throw RPCError.unauthenticated("no caller identity")
        }
    }

    /// A per-call id for logs: the client's `x-request-id` metadata, or `<connection>-<stream>`.
    /// (Made when asked for: most calls never log.)
    public var callID: String { requestedCallID ?? "\(connectionNumber)-\(streamID)" }

    /// A logger carrying `call-id` and `rpc` metadata.
    public var logger: Logger {
        var logger = baseLogger
        logger[metadataKey: "call-id"] = "\(callID)"
        logger[metadataKey: "rpc"] = "\(path)"
        return logger
    }
}

/// Response metadata a handler sets while it runs; the transport sends it with the response
/// headers (initial) and the trailers.
public final class ResponseMetadata: Sendable {
    private let state = NIOLockedValueBox((initial: Metadata(), trailing: Metadata(), requestID: String?.none))

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
    /// The request's idempotency key (its `request_id` field), for the access log.
    var requestID: String? {
        get { state.withLockedValue { $0.requestID } }
        set { state.withLockedValue { $0.requestID = newValue } }
    }
    /// Both, under one lock.
    func snapshot() -> (initial: Metadata, trailing: Metadata) { state.withLockedValue { ($0.initial, $0.trailing) } }
}

/// Who is calling: a role and, where it applies, the agency or collector it speaks for
/// (docs/ARCHITECTURE.md ("The contract")).
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
    func authenticate(_ metadata: Metadata) throws(RPCError) -> Authentication
}

/// An authenticated caller, and how long the same credentials may be trusted without being
/// checked again (a connection re-verifies a repeated `authorization` value only after that).
public struct Authentication: Sendable {
    public var caller: Caller
    /// The exact `authorization` value that was verified, when the result may be reused for it.
    public var credential: String?
    /// Until when it may be reused.
    public var validUntil: ContinuousClock.Instant

    public init(caller: Caller, credential: String? = nil, validUntil: ContinuousClock.Instant = .now) {
        self.caller = caller
        self.credential = credential
        self.validUntil = validUntil
    }
}

/// Writes the responses of a server-streaming call.
public struct ResponseStream<Response: Sendable>: Sendable {
    let send: @Sendable (Response) async throws -> Void

    /// Sends one response message; waits while the connection cannot take more (backpressure).
    public func send(_ response: Response) async throws {
        try await send(response)
    }
}
