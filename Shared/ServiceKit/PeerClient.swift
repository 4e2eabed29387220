import Foundation
import Models
import RPC
import RPCWire
import ServiceAuth
import Synchronization

/// A client for another Doorstep service, calling as role `service` with a bearer token
/// minted from the shared signing key (DESIGN.md §5) and renewed five minutes before it
/// expires. Errors come back ready for this service's own caller: NOT_FOUND and
/// INVALID_ARGUMENT describe the request and pass through; anything else — the peer down,
/// overloaded, or refusing this service's token (a key mismatch) — is UNAVAILABLE, naming
/// the peer.
public final class PeerClient: Sendable {
    public let peer: String
    private let client: GRPCClient
    private let issuer: TokenIssuer
    private let subject: String
    private let timeout: Duration
    private let cached = Mutex<(token: String, renewAt: Date)?>(nil)

    /// - Parameters:
    ///   - peer: the peer's name in error messages ("accounts", "scheduling").
    ///   - subject: this service's name, the token's subject.
    public init(peer: String, targets: [GRPCClient.Target], signingKey: SigningKey, subject: String, timeout: Duration = .seconds(5)) {
        self.peer = peer
        self.client = GRPCClient(targets: targets)
        self.issuer = TokenIssuer(key: signingKey)
        self.subject = subject
        self.timeout = timeout
    }

    public func close() async { await client.close() }

    /// The `authorization` metadata for a call now.
    public func metadata() async throws(RPCError) -> Metadata {
        let now = Date()
        if let current = cached.withLock({ $0 }), now < current.renewAt {
            return ["authorization": "Bearer \(current.token)"]
        }
        do {
            let token = try await issuer.token(for: Caller(role: .service, subject: subject), lifetime: .seconds(3600), now: now)
            cached.withLock { $0 = (token, now.addingTimeInterval(3300)) }
            return ["authorization": "Bearer \(token)"]
        } catch {
            throw RPCError(code: .internal, message: "cannot sign a service token")
        }
    }

    /// Calls a unary method of the peer (see the type's comment for errors).
    public func call<Request, Response>(_ method: MethodDescriptor<Request, Response>, _ request: Request) async throws(RPCError) -> Response {
        let metadata = try await metadata()
        do {
            return try await client.unary(method, request, metadata: metadata, timeout: timeout)
        } catch {
            switch error.code {
            case .notFound, .invalidArgument:
                throw error
            default:
                throw RPCError(code: .unavailable, message: "\(peer) service: \(error.code) \(error.message)")
            }
        }
    }

    /// Calls a method by path with an encoded request and returns the peer's own status
    /// unchanged (for outboxes, which decide themselves what is worth retrying).
    public func rawCall(path: String, request: [UInt8]) async throws(RPCError) -> (status: RPCError, messages: [[UInt8]]) {
        let metadata = try await metadata()
        let result = await client.rawCall(path: path, request: request, metadata: metadata, timeout: timeout)
        return (result.status, result.messages)
    }
}
