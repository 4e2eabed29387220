import Metrics
import NIOConcurrencyHelpers
import RPCWire

/// Per-method call metrics, named as go-grpc-prometheus names them so existing dashboards
/// apply: `grpc_server_handled_total{grpc_method, grpc_code}` and
/// `grpc_server_handling_seconds{grpc_method}`. Exported by whatever `MetricsSystem` the
/// process bootstrapped (Prometheus in the services); a no-op otherwise.
///
/// The handles of every registered method are made once, at server start, so recording a
/// call costs no lookup by name (one array index for the status code).
final class RPCMetrics: Sendable {
    private let methods: [String: MethodMetrics]

    init(paths: some Sequence<String>) {
        var methods: [String: MethodMetrics] = [:]
        for path in paths { methods[path] = MethodMetrics(path: path) }
        self.methods = methods
    }

    /// The metrics of a registered method (made on first use for any other path).
    func method(_ path: String) -> MethodMetrics {
        methods[path] ?? MethodMetrics(path: path)
    }
}

/// The metric handles of one method: its timer, its OK counter (made up front) and the
/// counters of other codes (made when first seen, so /metrics lists only codes that happened).
final class MethodMetrics: Sendable {
    private let path: String
    private let timer: Metrics.Timer
    private let ok: Counter
    private let others = NIOLockedValueBox([Int: Counter]())

    init(path: String) {
        self.path = path
        timer = Metrics.Timer(label: "grpc_server_handling_seconds", dimensions: [("grpc_method", path)])
        ok = Self.counter(path, .ok)
    }

    /// Records one finished call.
    func record(code: StatusCode, duration: Duration) {
        if code == .ok {
            ok.increment()
        } else {
            others.withLockedValue { counters in
                if let counter = counters[code.rawValue] { return counter }
                let counter = Self.counter(path, code)
                counters[code.rawValue] = counter
                return counter
            }.increment()
        }
        timer.record(duration: duration)
    }

    private static func counter(_ path: String, _ code: StatusCode) -> Counter {
        Counter(label: "grpc_server_handled_total", dimensions: [("grpc_method", path), ("grpc_code", code.description)])
    }
}
