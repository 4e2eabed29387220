import Foundation
import Logging
import Models
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Outbox
import Prometheus
import RPC
import RPCWire
import ServiceKit
import Storage
import Synchronization
import Testing
import TestSupport

/// The one Prometheus registry of the test process: `MetricsSystem` can be bootstrapped once
/// per process, and only these tests do it.
enum TestMetricsRegistry {
    static let shared = MetricsEndpoint.bootstrap()
}

/// The samples of a Prometheus text exposition: name, labels and value per line.
struct Scrape {
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    let samples: [Sample]
    let text: String

    init(_ text: String) {
        self.text = text
        samples = text.split(separator: "\n").compactMap { line -> Sample? in
            guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...])
            else { return nil }
            let series = line[..<space]
            guard let brace = series.firstIndex(of: "{") else { return Sample(name: String(series), labels: [:], value: value) }
            var labels: [String: String] = [:]
            // k="v",k2="v2" (values here never contain '",')
            for pair in series[series.index(after: brace)..<series.index(before: series.endIndex)].split(separator: "\",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { continue }
                labels[String(parts[0])] = String(parts[1].drop { $0 == "\"" }.prefix { $0 != "\"" })
            }
            return Sample(name: String(series[..<brace]), labels: labels, value: value)
        }
    }

    /// The value of the one sample of `name` whose labels include `labels`.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }?.value
    }
}

/// GETs `path` from the endpoint at `port` over a plain HTTP/1.1 connection (NIO; not
/// URLSession, whose libcurl allocations LeakSanitizer reports): the status and the body.
func httpGet(port: Int, _ path: String) async throws -> (status: Int, body: String) {
    let received = NIOLockedValueBox(ByteBuffer())
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(received: received)) }
        }
        .connect(host: "127.0.0.1", port: port).get()
    try await channel.writeAndFlush(ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"))
    try await channel.closeFuture.get()
    let text = received.withLockedValue { String(buffer: $0) }
    guard let headEnd = text.range(of: "\r\n\r\n"), let status = Int(text.split(separator: " ").dropFirst().first ?? "")
    else { throw HTTPGetError(response: text) }
    return (status, String(text[headEnd.upperBound...]))
}

struct HTTPGetError: Error { let response: String }

/// Collects every byte the server sends until it closes the connection.
final class Collector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let received: NIOLockedValueBox<ByteBuffer>
    init(received: NIOLockedValueBox<ByteBuffer>) { self.received = received }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        received.withLockedValue { _ = $0.writeBuffer(&buffer) }
    }
}

@Suite("The metrics endpoint: gRPC, outbox, database, process and build metrics; health probes", .serialized)
struct MetricsEndpointTests {
    @Test("calls are counted as go-grpc-prometheus counts them: started, handled by code, a histogram; the client's side too",
          .timeLimit(.minutes(1)))
    func grpcMetrics() async throws {
        let registry = TestMetricsRegistry.shared
        // A service name of this test's own: other suites call TestService in this process.
        let fail = MethodDescriptor<TestingV1.FailRequest, TestingV1.Nothing>(
            service: "doorstep.testing.v1.MetricsProbe", method: "Fail", isServerStreaming: false)
        var definition = ServiceDefinition()
        definition.unary(fail) { request, _ in
            guard request.code == 0 else {
                throw RPCError(code: StatusCode(rawValue: Int(request.code)), message: request.message)
            }
            return TestingV1.Nothing()
        }
        let client = GRPCClient(inProcess: InProcessServer(services: definition, logger: Logger(label: "metrics-test")))
        _ = try await client.unary(fail, TestingV1.FailRequest())
        for _ in 0..<2 {
            await #expect(throws: RPCError.self) {
                _ = try await client.unary(fail, TestingV1.FailRequest(code: Int32(StatusCode.notFound.rawValue)))
            }
        }
        await client.close()
        let channel = try await MetricsEndpoint.serve(registry: registry, host: "127.0.0.1", port: 0)
        let scrape = Scrape(try await httpGet(port: channel.localAddress!.port!, "/metrics").body)
        try await channel.close()
        let method = ["grpc_service": "doorstep.testing.v1.MetricsProbe", "grpc_method": "Fail", "grpc_type": "unary"]
        for side in ["server", "client"] {
            #expect(scrape.value("grpc_\(side)_started_total", method) == 3, "\(side)")
            #expect(scrape.value("grpc_\(side)_handled_total", method.merging(["grpc_code": "OK"]) { $1 }) == 1, "\(side)")
            #expect(scrape.value("grpc_\(side)_handled_total", method.merging(["grpc_code": "NotFound"]) { $1 }) == 2, "\(side)")
            #expect(scrape.value("grpc_\(side)_handling_seconds_count", method.merging(["grpc_code": "NotFound"]) { $1 }) == 2, "\(side)")
            #expect(scrape.value("grpc_\(side)_handling_seconds_bucket", method.merging(["grpc_code": "OK", "le": "+Inf"]) { $1 }) == 1,
                    "\(side)")
        }
    }

    @Test("a call the client cancels over HTTP/2 (RST_STREAM) is handled as Canceled, on both sides", .timeLimit(.minutes(1)))
    func cancelledCall() async throws {
        let registry = TestMetricsRegistry.shared
        let sleep = MethodDescriptor<TestingV1.SleepRequest, TestingV1.Nothing>(
            service: "doorstep.testing.v1.MetricsProbe", method: "Sleep", isServerStreaming: false)
        let entered = AsyncStream<Void>.makeStream()
        var definition = ServiceDefinition()
        definition.unary(sleep) { request, _ in
            entered.continuation.yield()
            try await Task.sleep(for: .milliseconds(Int(request.millis)))
            return TestingV1.Nothing()
        }
        var logger = Logger(label: "metrics-test")
        logger.logLevel = .warning
        let server = GRPCServer(services: definition, logger: logger)
        let address = try await server.start()
        let client = GRPCClient(targets: [GRPCClient.Target(host: "127.0.0.1", port: address.port!)])
        let call = Task { try await client.unary(sleep, TestingV1.SleepRequest(millis: 30_000)) }
        for await _ in entered.stream { break }
        call.cancel()
        let error = await #expect(throws: RPCError.self) { _ = try await call.value }
        #expect(error?.code == .cancelled)
        let channel = try await MetricsEndpoint.serve(registry: registry, host: "127.0.0.1", port: 0)
        let labels = ["grpc_service": "doorstep.testing.v1.MetricsProbe", "grpc_method": "Sleep", "grpc_code": "Canceled"]
        var scrape = Scrape("")
        let deadline = ContinuousClock.now + .seconds(10)
        while scrape.value("grpc_server_handled_total", labels) != 1 || scrape.value("grpc_client_handled_total", labels) != 1 {
            try #require(ContinuousClock.now < deadline, "no Canceled call counted: \(scrape.text)")
            try await Task.sleep(for: .milliseconds(50))
            scrape = Scrape(try await httpGet(port: channel.localAddress!.port!, "/metrics").body)
        }
        try await channel.close()
        await client.close()
        await server.shutdownGracefully()
    }

    @Test("the outbox backlog gauge rises while the sink is down and falls to 0 once it is back; deliveries and retries counted",
          .timeLimit(.minutes(1)))
    func outboxBacklog() async throws {
        let registry = TestMetricsRegistry.shared
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var migrations = SQLDatabase.Migrations()
        Outbox.addMigrations(to: &migrations)
        let database = try SQLDatabase(path: directory.appendingPathComponent("outbox.sqlite").path, migrations: migrations,
                                       logger: Logger(label: "metrics-test"))
        let topic = "metrics-test-\(UInt32.random(in: 0...UInt32.max))"
        let sink = SwitchableSink()
        let dispatcher = OutboxDispatcher(
            database: database, topics: [topic], sink: sink,
            policy: OutboxRetryPolicy(initialBackoffMs: 20, maxBackoffMs: 100, maxAttempts: 1000, jitter: 0),
            pollInterval: .milliseconds(20), nowMs: { Int64(Date().timeIntervalSince1970 * 1000) }, sinkName: topic,
            logger: Logger(label: "metrics-test"))
        let createdMs = Int64(Date().timeIntervalSince1970 * 1000)
        try await database.write { db in
            for index in 0..<3 {
                try Outbox.enqueue(db, OutboxMessage(id: "\(topic)-\(index)", topic: topic, payload: Array("{}".utf8), createdMs: createdMs),
                                   nowMs: createdMs)
            }
        }
        let channel = try await MetricsEndpoint.serve(registry: registry, host: "127.0.0.1", port: 0)
        let port = channel.localAddress!.port!
        let run = Task { try await dispatcher.run() }
        let labels = ["sink": topic]
        func scrape() async throws -> Scrape { Scrape(try await httpGet(port: port, "/metrics").body) }

        // Down: the three messages stay pending and age; attempts are retried.
        var down = try await scrape()
        let deadline = ContinuousClock.now + .seconds(20)
        while down.value("doorstep_outbox_pending", labels) != 3 || (down.value("doorstep_outbox_retries_total", labels) ?? 0) < 3
                || (down.value("doorstep_outbox_oldest_pending_age_seconds", labels) ?? 0) <= 0 {
            try #require(ContinuousClock.now < deadline, "the backlog never showed: \(down.text)")
            try await Task.sleep(for: .milliseconds(100))
            down = try await scrape()
        }
        #expect(down.value("doorstep_outbox_delivered_total", labels) ?? 0 == 0)

        // Back up: everything is delivered, the backlog falls to 0.
        sink.up.withLock { $0 = true }
        var up = try await scrape()
        while up.value("doorstep_outbox_pending", labels) != 0 || up.value("doorstep_outbox_delivered_total", labels) != 3 {
            try #require(ContinuousClock.now < deadline, "the backlog never drained: \(up.text)")
            try await Task.sleep(for: .milliseconds(100))
            up = try await scrape()
        }
        #expect(up.value("doorstep_outbox_oldest_pending_age_seconds", labels) == 0)
        #expect(up.value("doorstep_outbox_failed_total", labels) ?? 0 == 0)
        // The database's transactions were timed and the pool is described.
        #expect((up.value("doorstep_db_transaction_seconds_count", ["kind": "write"]) ?? 0) >= 1)
        #expect((up.value("doorstep_db_transaction_seconds_count", ["kind": "read"]) ?? 0) >= 1)
        #expect(up.value("doorstep_db_pool_max") != nil && up.value("doorstep_db_pool_connections", ["state": "idle"]) != nil)
        run.cancel()
        _ = try? await run.value
        try await channel.close()
        await database.close()
    }

    @Test("/healthz answers while the process serves, /readyz follows readiness, other paths are 404; process and build metrics",
          .timeLimit(.minutes(1)))
    func probesAndProcess() async throws {
        let registry = TestMetricsRegistry.shared
        MetricsEndpoint.recordBuildInfo(registry: registry, service: "metrics-test")
        let ready = Mutex(false)
        let channel = try await MetricsEndpoint.serve(registry: registry, host: "127.0.0.1", port: 0,
                                                      ready: { ready.withLock { $0 } })
        let port = channel.localAddress!.port!
        #expect(try await httpGet(port: port, "/healthz").status == 200)
        #expect(try await httpGet(port: port, "/readyz").status == 503)
        ready.withLock { $0 = true }
        #expect(try await httpGet(port: port, "/readyz").status == 200)
        #expect(try await httpGet(port: port, "/").status == 404)
        let scrape = Scrape(try await httpGet(port: port, "/metrics?x=1").body)
        try await channel.close()
        #expect((scrape.value("process_resident_memory_bytes") ?? 0) > 1_000_000)
        #expect((scrape.value("process_virtual_memory_bytes") ?? 0) > 1_000_000)
        #expect((scrape.value("process_open_fds") ?? 0) >= 3)
        #expect((scrape.value("process_max_fds") ?? 0) >= (scrape.value("process_open_fds") ?? 0))
        #expect((scrape.value("process_cpu_seconds_total") ?? 0) > 0)
        let started = scrape.value("process_start_time_seconds") ?? 0
        #expect(started > Date().timeIntervalSince1970 - 86_400 && started <= Date().timeIntervalSince1970 + 1)
        #expect(scrape.value("doorstep_build_info", ["service": "metrics-test", "version": BuildInfo.version]) == 1)
    }
}

/// A sink that refuses (retryably) until `up` is set.
final class SwitchableSink: OutboxSink {
    let up = Mutex(false)

    func deliver(_ message: OutboxMessage) async throws(OutboxSinkError) {
        guard up.withLock({ $0 }) else { throw .retryable("receiver down") }
    }
}
