/// How a call ended — OK or not — as the transport writes it in the trailers and reads it
/// back: a code, a message for people, optional rich details (the serialized
/// `google.rpc.Status`) and trailing metadata.
///
/// Handlers and domain code never build one: they return a response (OK) or throw an
/// `RPCError` (whose code is never OK); the transport turns either into a `Status` at the
/// edge, and a client turns a received non-OK `Status` back into an `RPCError`.
public struct Status: Sendable, Hashable, CustomStringConvertible {
    public var code: StatusCode
    public var message: String
    /// Serialized `google.rpc.Status`, sent as `grpc-status-details-bin`.
    public var details: [UInt8]?
    /// Custom trailing metadata sent with the status.
    public var metadata: Metadata

    public init(code: StatusCode, message: String = "", details: [UInt8]? = nil, metadata: Metadata = Metadata()) {
        self.code = code
        self.message = message
        self.details = details
        self.metadata = metadata
    }

    /// The status of a call that failed with `error`.
    public init(_ error: RPCError) {
        self.init(code: error.code, message: error.message, details: error.details, metadata: error.metadata)
    }

    /// Success, with no message.
    public static let ok = Status(code: .ok)

    public var isOK: Bool { code == .ok }

    /// The error a failed call throws to its caller; nil when the call succeeded.
    public var error: RPCError? {
        isOK ? nil : RPCError(code: code, message: message, details: details, metadata: metadata)
    }

    public var description: String { message.isEmpty ? "\(code)" : "\(code): \(message)" }
}

/// The gRPC status as HTTP/2 header fields (PROTOCOL-HTTP2 "Status", "Trailers"): written
/// by the server in the trailers (or a Trailers-Only response) and read by the client, in
/// one place so both sides agree on every rule — the decimal `grpc-status`, the
/// percent-encoded `grpc-message`, the unpadded base64 `grpc-status-details-bin`, custom
/// metadata after them (reserved or invalid names and invalid text values dropped).
public enum StatusTrailers {
    /// The header fields of `status` and its metadata, followed by `extra` (metadata the
    /// handler set on the call).
    public static func encode(_ status: Status, extra: Metadata = Metadata()) -> [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = [("grpc-status", String(status.code.rawValue))]
        if !status.message.isEmpty { fields.append(("grpc-message", PercentEncoding.encode(status.message))) }
        if let details = status.details {
            fields.append(("grpc-status-details-bin", Base64.encode(details, padding: false)))
        }
        return fields + encode(metadata: status.metadata) + encode(metadata: extra)
    }

    /// Custom metadata as header fields: valid, non-reserved names and valid values only.
    public static func encode(metadata: Metadata) -> [(name: String, value: String)] {
        metadata.compactMap { entry in
            guard Metadata.isValidName(entry.name), !Metadata.isReserved(entry.name) else { return nil }
            if case .string(let text) = entry.value, !Metadata.isValidTextValue(text) { return nil }
            return (entry.name, Metadata.headerValue(entry.value))
        }
    }

    /// What a block of received header fields says: the status when it carries
    /// `grpc-status` (trailers, or a Trailers-Only response; an unparsable code is
    /// UNKNOWN), the HTTP `:status` if present, and the custom metadata.
    public static func decode(_ fields: some Sequence<(name: String, value: String)>)
        -> (status: Status?, httpStatus: Int?, metadata: Metadata) {
        var code: String?, message: String?, details: String?, httpStatus: Int?
        let metadata = Metadata(headers: fields) { name, value in
            switch name {
            case ":status": httpStatus = Int(value)
            case "grpc-status": code = value
            case "grpc-message": message = value
            case "grpc-status-details-bin": details = value
            default: return false
            }
            return true
        }
        let status = code.map { code in
            Status(code: Self.code(code), message: message.map(PercentEncoding.decode) ?? "",
                   details: details.flatMap(Base64.decode), metadata: metadata)
        }
        return (status, httpStatus, metadata)
    }

    /// A `grpc-status` value: 1-2 ASCII digits of a known code, else UNKNOWN.
    private static func code(_ text: String) -> StatusCode {
        guard let value = Int(text), (0...16).contains(value) else { return .unknown }
        return StatusCode(rawValue: value)
    }
}

extension Metadata {
    /// The custom metadata of received header fields. `transport` sees every field first and
    /// returns true for the ones it reads itself (`:path`, `grpc-status`, …); the others are
    /// kept unless reserved or malformed.
    public init(headers: some Sequence<(name: String, value: String)>, transport: (String, String) -> Bool) {
        self.init()
        for (name, value) in headers where !transport(name, value) {
            if !Metadata.isReserved(name), let entry = Metadata.entry(name: name, rawValue: value) { add(entry) }
        }
    }

    /// Appends an entry.
    public mutating func add(_ entry: (name: String, value: MetadataValue)) {
        switch entry.value {
        case .string(let text): add(entry.name, text)
        case .binary(let bytes): add(entry.name, binary: bytes)
        }
    }
}
