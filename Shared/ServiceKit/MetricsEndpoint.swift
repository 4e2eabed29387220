import Foundation
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Storage
import TransportSecurity
import Prometheus

/// Process-wide metrics: swift-metrics bootstrapped onto a Prometheus registry, served as
/// Prometheus text on a separate HTTP/1.1 port (`GET /metrics`), with the liveness and
/// readiness probes beside it.
public enum MetricsEndpoint {
    /// Bootstraps `MetricsSystem` with Prometheus (once per process) and returns the registry.
    public static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
        ]
        factory.valueHistogramBuckets[SQLDatabase.pointReadBatchSizeMetric] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000]
        MetricsSystem.bootstrap(factory)
        return registry
    }

    /// Serves `GET /metrics` (Prometheus text, the process metrics refreshed first),
    /// `GET /healthz` (200 while the process serves: liveness) and `GET /readyz` (200 while
    /// `ready()` says so, else 503: readiness, following the gRPC health status) on
    /// `host:port` (0 = any free port); returns the bound channel.
    public static func serve(
        registry: PrometheusCollectorRegistry, host: String, port: Int, tls: ServerTLS? = nil,
        ready: @escaping @Sendable () -> Bool = { true },
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> any Channel {
        let process = ProcessMetrics(registry: registry)
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // HTTPS with the listener's certificate, without client certificates
                    // (``ServerTLS/httpContext``); reloads reach new connections.
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.httpContext)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        MetricsHTTPHandler(registry: registry, process: process, ready: ready))
                }
            }
            .bind(host: host, port: port)
            .get()
    }

    /// Records `doorstep_build_info{service, version, commit} 1`.
    public static func recordBuildInfo(registry: PrometheusCollectorRegistry, service: String) {
        registry.makeGauge(descriptor: MetricNameDescriptor(
            metricName: "doorstep_build_info", unitName: "",
            helpText: "The running build: version and commit in the labels, value 1."), labels: [
            ("service", service), ("version", BuildInfo.version), ("commit", BuildInfo.commit),
        ]).set(Double(1))
    }
}

/// What the running binary is: the release version compiled in, and the commit it was built
/// from as the build environment names it (`DOORSTEP_BUILD_COMMIT`, set by the Dockerfile's
/// build argument and by Scripts/run.sh from git), "unknown" otherwise.
public enum BuildInfo {
    public static let version = "1.1.0-dev"
    public static var commit: String {
        let value = ProcessInfo.processInfo.environment["DOORSTEP_BUILD_COMMIT"] ?? ""
        return value.isEmpty ? "unknown" : value
    }
}

/// The process metrics every Prometheus client library exports, read from /proc on each
/// scrape: `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
/// `process_cpu_seconds_total`, `process_open_fds`, `process_max_fds`,
/// `process_start_time_seconds`. Where /proc is missing (not Linux) they stay 0.
final class ProcessMetrics: Sendable {
    private let resident: Prometheus.Gauge
    private let virtual: Prometheus.Gauge
    private let cpu: Prometheus.Counter
    private let openFDs: Prometheus.Gauge
    private let maxFDs: Prometheus.Gauge
    private let startTime: Prometheus.Gauge
    private let cpuSeen = NIOLockedValueBox(0.0)
    private let ticksPerSecond = Double(max(1, sysconf(Int32(_SC_CLK_TCK))))
    private let pageSize = Double(max(1, sysconf(Int32(_SC_PAGESIZE))))

    init(registry: PrometheusCollectorRegistry) {
        resident = registry.makeGauge(descriptor: Self.descriptor("process_resident_memory_bytes", "Resident memory size in bytes."))
        virtual = registry.makeGauge(descriptor: Self.descriptor("process_virtual_memory_bytes", "Virtual memory size in bytes."))
        cpu = registry.makeCounter(descriptor: Self.descriptor("process_cpu_seconds_total", "Total user and system CPU time spent in seconds."))
        openFDs = registry.makeGauge(descriptor: Self.descriptor("process_open_fds", "Number of open file descriptors."))
        maxFDs = registry.makeGauge(descriptor: Self.descriptor("process_max_fds", "Maximum number of open file descriptors."))
        startTime = registry.makeGauge(descriptor: Self.descriptor("process_start_time_seconds", "Start time of the process since unix epoch in seconds."))
        refresh()
    }

    private static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// Reads /proc/self/stat, /proc/self/fd and the fd limit into the metrics.
    func refresh() {
        if let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")") {
            // Fields after "(comm)": state is field 3; utime 14, stime 15, starttime 22,
            // vsize 23, rss 24 (1-based, as proc(5) numbers them).
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            func field(_ number: Int) -> Double { Double(fields[number - 3]) ?? 0 }
            if fields.count >= 22 {
                let seconds = (field(14) + field(15)) / ticksPerSecond
                let delta = cpuSeen.withLockedValue { seen -> Double in
                    let delta = max(0, seconds - seen)
                    seen = max(seen, seconds)
                    return delta
                }
                if delta > 0 { cpu.increment(by: delta) }
                virtual.set(field(23))
                resident.set(field(24) * pageSize)
                if let boot = Self.bootTime() { startTime.set(boot + field(22) / ticksPerSecond) }
            }
        }
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            openFDs.set(Double(entries.count))
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { maxFDs.set(Double(limit.rlim_cur)) }
    }

    /// The `btime` line of /proc/stat: when the machine booted, in seconds since 1970.
    private static func bootTime() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }
}

/// Answers `GET /metrics`, `/healthz` and `/readyz`; 404 otherwise.
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let registry: PrometheusCollectorRegistry
    private let process: ProcessMetrics
    private let ready: @Sendable () -> Bool
    private var head: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry, process: ProcessMetrics, ready: @escaping @Sendable () -> Bool) {
        self.registry = registry
        self.process = process
        self.ready = ready
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
            let (status, contentType, body): (HTTPResponseStatus, String, ByteBuffer)
            switch (head.method, path) {
            case (.GET, "/metrics"):
                process.refresh()
                (status, contentType, body) = (.ok, "text/plain; version=0.0.4; charset=utf-8", ByteBuffer(bytes: registry.emitToBuffer()))
            case (.GET, "/healthz"):
                (status, contentType, body) = (.ok, "text/plain", ByteBuffer(string: "ok\n"))
            case (.GET, "/readyz"):
                let isReady = ready()
                (status, contentType, body) = (isReady ? .ok : .serviceUnavailable, "text/plain",
                                               ByteBuffer(string: isReady ? "ready\n" : "not ready\n"))
            default:
                (status, contentType, body) = (.notFound, "text/plain", ByteBuffer(string: "not found (try /metrics, /healthz, /readyz)\n"))
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: contentType)
            headers.add(name: "Content-Length", value: String(body.readableBytes))
            if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
                          promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            let keepAlive = head.isKeepAlive
            let bound = context.loopBound
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { bound.value.close(promise: nil) }
            }
        }
    }
}
