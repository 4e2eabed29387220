/// A gRPC status code (https://github.com/grpc/grpc/blob/master/doc/statuscodes.md,
/// `google/rpc/code.proto`). Unknown numbers from a peer are kept as they came.
public struct StatusCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int

    public init(rawValue: Int) { self.rawValue = rawValue }

    /// Not an error; returned on success.
    public static let ok = StatusCode(rawValue: 0)
    /// The operation was cancelled, typically by the caller.
    public static let cancelled = StatusCode(rawValue: 1)
    /// Unknown error, or an error from another error space.
    public static let unknown = StatusCode(rawValue: 2)
    /// The request is wrong regardless of the system's state: the message names the field.
    public static let invalidArgument = StatusCode(rawValue: 3)
    /// The deadline expired before the operation could complete.
    public static let deadlineExceeded = StatusCode(rawValue: 4)
    /// A requested entity was not found.
    public static let notFound = StatusCode(rawValue: 5)
    /// The entity a client attempted to create already exists.
    public static let alreadyExists = StatusCode(rawValue: 6)
    /// The caller is authenticated but may not do this.
    public static let permissionDenied = StatusCode(rawValue: 7)
    /// A resource (quota, message size, memory) is exhausted.
    public static let resourceExhausted = StatusCode(rawValue: 8)
    /// The system's state forbids the operation: the message names the broken rule.
    public static let failedPrecondition = StatusCode(rawValue: 9)
    /// Aborted by a concurrency conflict (e.g. a stale version): retry the read-modify-write.
    public static let aborted = StatusCode(rawValue: 10)
    /// Out of the valid range.
    public static let outOfRange = StatusCode(rawValue: 11)
    /// Not implemented or not supported.
    public static let unimplemented = StatusCode(rawValue: 12)
    /// An invariant the system relies on is broken.
    public static let `internal` = StatusCode(rawValue: 13)
    /// The service is currently unavailable: retrying the call may succeed.
    public static let unavailable = StatusCode(rawValue: 14)
    /// Unrecoverable data loss or corruption.
    public static let dataLoss = StatusCode(rawValue: 15)
    /// The request has no valid credentials.
    public static let unauthenticated = StatusCode(rawValue: 16)

    private static let names = [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED",
    ]

    /// The canonical name, e.g. `INVALID_ARGUMENT`.
    public var description: String {
        rawValue >= 0 && rawValue < Self.names.count ? Self.names[rawValue] : "CODE_\(rawValue)"
    }

    /// The code named `name` (canonical upper-case name), if any.
    public init?(name: String) {
        guard let index = Self.names.firstIndex(of: name) else { return nil }
        self.init(rawValue: index)
    }

    /// PROTOCOL-HTTP2: the HTTP status of a response that carries no gRPC status, mapped as
    /// gRPC's http-grpc-status-mapping.md says.
    public init(httpStatus: Int) {
        switch httpStatus {
        case 400: self = .internal
        case 401: self = .unauthenticated
        case 403: self = .permissionDenied
        case 404: self = .unimplemented
        case 429, 502, 503, 504: self = .unavailable
        default: self = .unknown
        }
    }
}
