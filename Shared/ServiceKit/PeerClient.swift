import Foundation
import Logging
import Models
import RPC
import RPCWire
import ServiceAuth
import Synchronization
import TransportSecurity

/// A client for another Doorstep service, calling as role `service` with a bearer token
/// minted from the shared signing key (docs/ARCHITECTURE.md, "The contract") and renewed five
/// minutes before it expires, or at once when the signing key was reloaded with another key.
/// Errors come back ready for this service's own caller, mapped
/// by ``PeerFailure`` so that each keeps its meaning across the hop.
public final class PeerClient: Sendable {
    public let peer: String
    private let client: GRPCClient
    private let signingKey: SigningKeyStore
    private let subject: String
    private let timeout: Duration
    private let cached = Mutex<(token: String, renewAt: Date, key: SigningKey)?>(nil)
    private let logger: Logger

    /// - Parameters:
    ///   - peer: the peer's name in error messages ("accounts", "scheduling").
    ///   - signingKey: the key tokens are signed with, read again for each new token.
    ///   - subject: this service's name, the token's subject.
    ///   - logger: where a peer's failure that the caller only sees as INTERNAL is logged.
    ///   - tls: TLS to the peer (`--tls-ca-file`); nil = plaintext.
    public init(peer: String, targets: [GRPCClient.Target], signingKey: SigningKeyStore, subject: String, timeout: Duration = .seconds(5),
                tls: ClientTLS? = nil, logger: Logger = Logger(label: "doorstep.peer")) {
        self.peer = peer
        self.logger = logger
        var configuration = GRPCClient.Configuration()
        configuration.tls = tls
        self.client = GRPCClient(targets: targets, configuration: configuration)
        self.signingKey = signingKey
        self.subject = subject
        self.timeout = timeout
    }

    public func close() async { await client.close() }

    /// The `authorization` metadata for a call now.
    public func metadata() async throws(RPCError) -> Metadata {
        let now = Date()
        let key = signingKey.current
        if let current = cached.withLock({ $0 }), now < current.renewAt, current.key == key {
            return ["authorization": "Bearer \(current.token)"]
        }
        do {
            let token = try await TokenIssuer(key: key).token(for: Caller(role: .service, subject: subject), lifetime: .seconds(3600), now: now)
            cached.withLock { $0 = (token, now.addingTimeInterval(3300), key) }
            return ["authorization": "Bearer \(token)"]
        } catch {
            throw RPCError(code: .internal, message: "cannot sign a service token")
        }
    }

    /// Calls a unary method of the peer; a failure is mapped by ``PeerFailure``.
    public func call<Request, Response>(_ method: MethodDescriptor<Request, Response>, _ request: Request) async throws(RPCError) -> Response {
        let metadata = try await metadata()
        do {
            return try await client.unary(method, request, metadata: metadata, timeout: timeout)
        } catch {
            let failure = PeerFailure(peer: peer, status: error)
            if failure.isFault {
                logger.error("peer call failed", metadata: [
                    "peer": "\(peer)", "method": "\(method.path)", "code": "\(error.code)", "message": "\(error.message)",
                ])
            }
            throw failure.forCaller
        }
    }

    /// Calls a method by path with an encoded request and returns the peer's own status
    /// unchanged (for outboxes, which decide themselves what is worth retrying).
    public func rawCall(path: String, request: [UInt8]) async throws(RPCError) -> (status: Status, messages: [[UInt8]]) {
        let metadata = try await metadata()
        let result = await client.rawCall(path: path, request: request, metadata: metadata, timeout: timeout)
        return (result.status, result.messages)
    }
}

/// How a peer's failed call reaches this service's caller. Each status keeps its meaning:
/// - the peer's word about the request (NOT_FOUND, INVALID_ARGUMENT, FAILED_PRECONDITION,
///   ALREADY_EXISTS, OUT_OF_RANGE, ABORTED) passes through with its message;
/// - transient failures (UNAVAILABLE, RESOURCE_EXHAUSTED: the peer down, unreachable or
///   overloaded) are UNAVAILABLE naming the peer, DEADLINE_EXCEEDED stays
///   DEADLINE_EXCEEDED and CANCELLED stays CANCELLED: the caller may retry;
/// - a fault (the peer's INTERNAL, UNKNOWN or DATA_LOSS, UNIMPLEMENTED from a peer of
///   another version, or UNAUTHENTICATED / PERMISSION_DENIED: this service's token refused,
///   a key or role misconfiguration) is INTERNAL with no detail: a retry cannot succeed,
///   and the detail is for operators (``isFault``: the caller of the peer logs it).
public struct PeerFailure: Sendable, Equatable {
    public let peer: String
    public let status: RPCError

    public init(peer: String, status: RPCError) {
        self.peer = peer
        self.status = status
    }

    /// True when the failure is a fault to log for operators: exactly those the caller sees
    /// as INTERNAL (no other code maps to INTERNAL).
    public var isFault: Bool { forCaller.code == .internal }

    /// The error this service returns to its own caller.
    public var forCaller: RPCError {
        switch status.code {
        case .notFound, .invalidArgument, .failedPrecondition, .alreadyExists, .outOfRange, .aborted:
            status
        case .unavailable, .resourceExhausted:
            RPCError(code: .unavailable, message: "\(peer) service: \(status.code) \(status.message)")
        case .deadlineExceeded:
            RPCError(code: .deadlineExceeded, message: "\(peer) service did not answer in time")
        case .cancelled:
            RPCError(code: .cancelled, message: "the call to the \(peer) service was cancelled")
        default:
            RPCError.internal("internal error")
        }
    }
}
