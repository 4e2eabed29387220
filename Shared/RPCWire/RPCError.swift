/// The error a call ends with: a status code (never OK: success is a response, and the
/// transport's ``Status``), a message for people, optional rich details (the serialized
/// `google.rpc.Status`, sent as `grpc-status-details-bin`) and trailing metadata. Handlers
/// throw it — or any error conforming to `RPCErrorConvertible` — to choose the status a
/// client sees; any other error reaches the client as INTERNAL without its description, so
/// internals never leak.
public struct RPCError: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: StatusCode
    public var message: String
    /// Serialized `google.rpc.Status` (wire-compatible `doorstep.type.v1.RpcStatus`), if any.
    public var details: [UInt8]?
    /// Extra trailing metadata.
    public var metadata: Metadata

    public init(code: StatusCode, message: String, details: [UInt8]? = nil, metadata: Metadata = [:]) {
        assert(code != .ok, "an RPCError is a failure; success is Status.ok")
        self.code = code
        self.message = message
        self.details = details
        self.metadata = metadata
    }

    public var description: String { message.isEmpty ? "\(code)" : "\(code): \(message)" }

    // Shorthands for the codes handlers use most.
    public static func invalidArgument(_ field: String, _ problem: String) -> RPCError {
        RPCError(code: .invalidArgument, message: "\(field): \(problem)")
    }
    public static func notFound(_ message: String) -> RPCError { RPCError(code: .notFound, message: message) }
    public static func failedPrecondition(_ message: String) -> RPCError { RPCError(code: .failedPrecondition, message: message) }
    public static func permissionDenied(_ message: String) -> RPCError { RPCError(code: .permissionDenied, message: message) }
    public static func unauthenticated(_ message: String) -> RPCError { RPCError(code: .unauthenticated, message: message) }
    public static func unimplemented(_ message: String) -> RPCError { RPCError(code: .unimplemented, message: message) }
    public static func unavailable(_ message: String) -> RPCError { RPCError(code: .unavailable, message: message) }
    public static func `internal`(_ message: String) -> RPCError { RPCError(code: .internal, message: message) }
}

/// A domain error that knows which status it should reach a client with.
public protocol RPCErrorConvertible: Error {
    var rpcError: RPCError { get }
}

extension RPCError: RPCErrorConvertible {
    public var rpcError: RPCError { self }
}

extension RPCError {
    /// The status any thrown error reaches the client with: its own for `RPCErrorConvertible`,
    /// CANCELLED for task cancellation, otherwise INTERNAL with a generic message.
    public init(from error: any Error) {
        if let convertible = error as? RPCErrorConvertible {
            self = convertible.rpcError
        } else if error is CancellationError {
            self = RPCError(code: .cancelled, message: "the call was cancelled")
        } else {
            self = RPCError(code: .internal, message: "internal error")
        }
    }
}
