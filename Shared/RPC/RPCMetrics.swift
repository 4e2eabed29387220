import Logging
import Metrics
import Models
import NIOConcurrencyHelpers
import RPCWire

/// Per-method call metrics, named and labelled as go-grpc-prometheus and grpc-java name them
/// so existing dashboards and alerts apply:
/// `grpc_server_started_total{grpc_service, grpc_method, grpc_type}`,
/// `grpc_server_handled_total{grpc_service, grpc_method, grpc_type, grpc_code}` and the
/// histogram `grpc_server_handling_seconds` with the labels of handled; `grpc_client_*` the
/// same for the calls a process makes. Exported by whatever `MetricsSystem` the process
/// bootstrapped (Prometheus in the services); a no-op otherwise.
///
/// The handles of every registered method are made once, at server start, so recording a
/// call costs no lookup by name (one array index for the status code).
final class RPCMetrics: Sendable {
    private let methods: [String: MethodMetrics]

    init(methods registered: [String: RegisteredMethod]) {
        var methods: [String: MethodMetrics] = [:]
        for (path, method) in registered {
            methods[path] = MethodMetrics(side: .server, path: path, type: method.callType)
        }
        self.methods = methods
    }

    /// The metrics of a registered method (made on first use for any other path).
    func method(_ path: String) -> MethodMetrics {
        methods[path] ?? MethodMetrics(side: .server, path: path, type: .unary)
    }

    /// The client-side metrics of `path`: one set per path and type in the process.
    static func client(_ path: String, type: MethodMetrics.CallType) -> MethodMetrics {
        clientMethods.withLockedValue { methods in
            if let known = methods[type]?[path] { return known }
            let made = MethodMetrics(side: .client, path: path, type: type)
            methods[type, default: [:]][path] = made
            return made
        }
    }

    private static let clientMethods = NIOLockedValueBox([MethodMetrics.CallType: [String: MethodMetrics]]())
}

/// The metric handles of one method: its started counter (made up front) and, per status
/// code, its handled counter and timer (made when first seen, so /metrics lists only codes
/// that happened).
final class MethodMetrics: Sendable {
    enum Side: String, Sendable { case server, client }

    /// The `grpc_type` label.
    enum CallType: String, Sendable {
        case unary
        case clientStream = "client_stream"
        case serverStream = "server_stream"
        case bidiStream = "bidi_stream"
    }

    private let side: Side
    private let path: String
    private let labels: [(String, String)]
    private let started: Counter
    private let ok: (Counter, Metrics.Timer)
    private let others = NIOLockedValueBox([Int: (Counter, Metrics.Timer)]())

    init(side: Side, path: String, type: CallType) {
        self.side = side
        self.path = path
        // "/package.Service/Method"
        let parts = path.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: true)
        let service = parts.count == 2 ? String(parts[0]) : "unknown"
        let method = parts.count == 2 ? String(parts[1]) : path
        labels = [("grpc_service", service), ("grpc_method", method), ("grpc_type", type.rawValue)]
        started = Counter(label: "grpc_\(side.rawValue)_started_total", dimensions: labels)
        ok = Self.handles(side, labels, .ok)
    }

    /// Counts a call that began (its headers arrived, or the client sent them).
    func start() { started.increment() }

    /// Records one finished call.
    func record(code: StatusCode, duration: Duration) {
        let (counter, timer) = code == .ok ? ok : others.withLockedValue { handles in
            if let known = handles[code.rawValue] { return known }
            let made = Self.handles(side, labels, code)
            handles[code.rawValue] = made
            return made
        }
        counter.increment()
        timer.record(duration: duration)
    }

    /// Records one call the server finished (or refused, or lost to the client): its metrics
    /// and its access-log line.
    func finished(_ status: Status, after duration: Duration, logger: Logger, peer: String,
                  context: ServerContext? = nil, caller: Caller? = nil) {
        record(code: status.code, duration: duration)
        AccessLog.record(logger, path: path, status: status, duration: duration, peer: peer, context: context, caller: caller)
    }

    private static func handles(_ side: Side, _ labels: [(String, String)], _ code: StatusCode) -> (Counter, Metrics.Timer) {
        let dimensions = labels + [("grpc_code", code.metricLabel)]
        return (Counter(label: "grpc_\(side.rawValue)_handled_total", dimensions: dimensions),
                Metrics.Timer(label: "grpc_\(side.rawValue)_handling_seconds", dimensions: dimensions))
    }
}

extension StatusCode {
    /// The code as gRPC's Go `codes.Code.String()` spells it ("InvalidArgument"), the value
    /// of `grpc_code` in go-grpc-prometheus and in the dashboards built on it.
    var metricLabel: String {
        switch self {
        case .ok: "OK"
        case .cancelled: "Canceled"
        case .unknown: "Unknown"
        case .invalidArgument: "InvalidArgument"
        case .deadlineExceeded: "DeadlineExceeded"
        case .notFound: "NotFound"
        case .alreadyExists: "AlreadyExists"
        case .permissionDenied: "PermissionDenied"
        case .resourceExhausted: "ResourceExhausted"
        case .failedPrecondition: "FailedPrecondition"
        case .aborted: "Aborted"
        case .outOfRange: "OutOfRange"
        case .unimplemented: "Unimplemented"
        case .internal: "Internal"
        case .unavailable: "Unavailable"
        case .dataLoss: "DataLoss"
        case .unauthenticated: "Unauthenticated"
        default: "Code(\(rawValue))"
        }
    }

    /// A status that says the server failed, not the caller: logged at error.
    var isServerFault: Bool { self == .internal || self == .unknown || self == .dataLoss }
}

/// One access-log line per finished call, at info (server faults at error): method, code,
/// duration, caller role, call id, request id, peer, and for a refusal the rule ids or
/// fields it names. Never the status message or any request field but the request id:
/// those can carry personal data.
enum AccessLog {
    static func record(
        _ logger: Logger, path: String, status: Status, duration: Duration, peer: String,
        context: ServerContext? = nil, caller: Caller? = nil
    ) {
        let level: Logger.Level = status.code.isServerFault ? .error : .info
        guard logger.logLevel <= level else { return }
        var metadata: Logger.Metadata = [
            "rpc": "\(path)", "code": "\(status.code)", "duration-ms": "\(duration.formattedMilliseconds)",
            "peer": "\(peer)",
        ]
        if let caller = context?.caller ?? caller { metadata["role"] = "\(caller.role.rawValue)" }
        if let context {
            metadata["call-id"] = "\(context.callID)"
            if let requestID = context.response.requestID, !requestID.isEmpty {
                metadata["request-id"] = "\(requestID)"
            }
        }
        if let details = status.details, let refusal = RPCError.refusal(inDetails: details) {
            let rules = refusal.violations.compactMap { $0.ruleId.isEmpty ? nil : $0.ruleId }
            let fields = refusal.violations.compactMap { $0.field.isEmpty ? nil : $0.field }
            if !rules.isEmpty { metadata["rules"] = "\(rules.joined(separator: ","))" }
            if !fields.isEmpty { metadata["fields"] = "\(fields.joined(separator: ","))" }
        }
        logger.log(level: level, "call", metadata: metadata)
    }
}

extension Duration {
    /// Milliseconds with three decimals, e.g. "0.412".
    var formattedMilliseconds: String {
        let microseconds = components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000
        let fraction = microseconds % 1000
        return "\(microseconds / 1000).\(fraction < 10 ? "00" : fraction < 100 ? "0" : "")\(fraction)"
    }
}
