import Metrics
import NIOConcurrencyHelpers
import RPCWire

/// Per-method call metrics, named as go-grpc-prometheus names them so existing dashboards
/// apply: `grpc_server_handled_total{grpc_method, grpc_code}` and
/// `grpc_server_handling_seconds{grpc_method}`. Exported by whatever `MetricsSystem` the
/// process bootstrapped (Prometheus in the services); a no-op otherwise.
final class RPCMetrics: Sendable {
    private struct Key: Hashable {
        let path: String
        let code: Int
    }

    private let counters = NIOLockedValueBox([Key: Counter]())
    private let timers = NIOLockedValueBox([String: Metrics.Timer]())

    /// Records one finished call.
    func record(path: String, code: StatusCode, duration: Duration) {
        let key = Key(path: path, code: code.rawValue)
        let counter = counters.withLockedValue { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(label: "grpc_server_handled_total",
                                  dimensions: [("grpc_method", path), ("grpc_code", code.description)])
            counters[key] = counter
            return counter
        }
        counter.increment()
        let timer = timers.withLockedValue { timers in
            if let timer = timers[path] { return timer }
            let timer = Metrics.Timer(label: "grpc_server_handling_seconds", dimensions: [("grpc_method", path)])
            timers[path] = timer
            return timer
        }
        timer.record(duration: duration)
    }
}
