import HTTP2
import Models
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RPCWire

/// A gRPC client for one service with one or more replicas: one multiplexed HTTP/2
/// connection per address (opened on first use, reopened with backoff after failures),
/// calls spread round-robin, deadlines sent as `grpc-timeout` and enforced locally.
///
/// Retries: a request the server provably did not process (refused stream, above a GOAWAY's
/// last stream, connection failure before sending) is retried transparently; a call that
/// may have been processed is retried only when the caller marks it idempotent (e.g. a
/// mutation carrying a `request_id`), and only for UNAVAILABLE.
public final class GRPCClient: Sendable {
    /// An address of one replica.
    public struct Target: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// Parses `HOST:PORT` or `[IPv6]:PORT`.
        public init?(_ text: String) {
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
                  (0...65_535).contains(port) else { return nil }
            var host = String(text[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty else { return nil }
            self.init(host: host, port: port)
        }

        /// Parses a comma-separated list of targets (several replicas: docs/OPERATIONS.md).
        public static func list(_ text: String) -> [Target]? {
            let targets = text.split(separator: ",").map { part in
                Target(String(part.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed()))
            }
            guard !targets.isEmpty, targets.allSatisfy({ $0 != nil }) else { return nil }
            return targets.compactMap { $0 }
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    public struct Configuration: Sendable {
        /// Time allowed to open a connection. Default 5 s.
        public var connectTimeout: TimeAmount = .seconds(5)
        /// Largest response message accepted. Default 4 MiB.
        public var maxReceiveMessageSize: Int = 4 << 20
        /// Attempts per call, first included, where a retry is allowed. Default 3.
        public var maxAttempts: Int = 3
        /// Backoff between attempts and reconnections: doubles from this… Default 100 ms.
        public var initialBackoff: Duration = .milliseconds(100)
        /// …up to this. Default 5 s.
        public var maxBackoff: Duration = .seconds(5)
        /// HTTP/2 settings.
        public var http2: HTTP2ClientConfiguration = .defaults

        public init() {}

        public static let defaults = Configuration()
    }

    private struct Connection: Sendable {
        let channel: any Channel
        let handler: NIOLoopBound<GRPCClientConnectionHandler>
    }

    private struct TargetState {
        var connection: EventLoopFuture<Connection>?
        var failures = 0
        var retryAfter: ContinuousClock.Instant?
    }

    private struct State {
        var targets: [TargetState]
        var next = 0
        var nextToken: UInt64 = 0
        var closed = false
    }

    public let targets: [Target]
    private let configuration: Configuration
    private let group: any EventLoopGroup
    private let state: NIOLockedValueBox<State>
    /// The server every call goes to, without sockets, when made with ``init(inProcess:configuration:)``.
    private let inProcess: InProcessServer?

    public init(targets: [Target], configuration: Configuration = .defaults,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        precondition(!targets.isEmpty, "a client needs at least one target")
        self.targets = targets
        self.configuration = configuration
        self.group = group
        self.state = NIOLockedValueBox(State(targets: Array(repeating: TargetState(), count: targets.count)))
        self.inProcess = nil
    }

    /// A client of a server in the same process, reached without sockets or HTTP/2 (for
    /// tests: the same interceptors, handlers, encoding and statuses; see ``InProcessServer``).
    public init(inProcess server: InProcessServer, configuration: Configuration = .defaults) {
        self.targets = [Target(host: "in-process", port: 0)]
        self.configuration = configuration
        self.group = MultiThreadedEventLoopGroup.singleton
        self.state = NIOLockedValueBox(State(targets: [TargetState()]))
        self.inProcess = server
    }

    /// Calls a unary method. Throws `RPCError` (the server's status, or UNAVAILABLE /
    /// DEADLINE_EXCEEDED / CANCELLED from the transport).
    public func unary<Request, Response>(
        _ method: MethodDescriptor<Request, Response>, _ request: Request,
        metadata: Metadata = Metadata(), timeout: Duration? = nil, idempotent: Bool = false
    ) async throws(RPCError) -> Response {
        let result = try await call(path: method.path, request: request, metadata: metadata, timeout: timeout,
                                    idempotent: idempotent)
        guard result.messages.count == 1 else {
            throw RPCError(code: .internal, message: "\(method.path) returned \(result.messages.count) messages to a unary call")
        }
        do {
            return try Response(decoding: result.messages[0])
        } catch {
            throw RPCError(code: .internal, message: "malformed \(Response.protoMessageName) from the server: \(error)")
        }
    }

    /// Calls a server-streaming method and returns every response (the stream is read to its
    /// end; suited to bounded streams).
    public func serverStreamingCollect<Request, Response>(
        _ method: MethodDescriptor<Request, Response>, _ request: Request,
        metadata: Metadata = Metadata(), timeout: Duration? = nil
    ) async throws(RPCError) -> [Response] {
        let result = try await call(path: method.path, request: request, metadata: metadata, timeout: timeout,
                                    idempotent: false)
        var responses: [Response] = []
        for message in result.messages {
            do {
                responses.append(try Response(decoding: message))
            } catch {
                throw RPCError(code: .internal, message: "malformed \(Response.protoMessageName) from the server: \(error)")
            }
        }
        return responses
    }

    /// Calls a method by path with an already-encoded request (for tools such as
    /// `doorstep call`); returns the status, metadata and raw response messages.
    public func rawCall(path: String, request: [UInt8], metadata: Metadata = Metadata(), timeout: Duration? = nil)
        async -> (status: Status, initialMetadata: Metadata, trailingMetadata: Metadata, messages: [[UInt8]]) {
        let result = await attempts(path: path, bytes: request, metadata: metadata, timeout: timeout, idempotent: false)
        return (result.status, result.initialMetadata, result.trailingMetadata, result.messages)
    }

    private func call<Request: ProtoMessage>(
        path: String, request: Request, metadata: Metadata, timeout: Duration?, idempotent: Bool
    ) async throws(RPCError) -> ClientCallResult {
        let bytes: [UInt8]
        do {
            bytes = try request.encode()
        } catch {
            throw RPCError(code: .invalidArgument, message: "\(error.field.map { "\($0): " } ?? "")\(error)")
        }
        let result = await attempts(path: path, bytes: bytes, metadata: metadata, timeout: timeout, idempotent: idempotent)
        if let error = result.status.error { throw error }
        return result
    }

    private func attempts(
        path: String, bytes: [UInt8], metadata: Metadata, timeout: Duration?, idempotent: Bool
    ) async -> ClientCallResult {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        var attemptNumber = 0
        while true {
            attemptNumber += 1
            let remaining = deadline.map { $0 - .now }
            if let remaining, remaining <= .zero {
                return ClientCallResult(status: Status(code: .deadlineExceeded, message: "deadline exceeded"))
            }
            let result = await self.attempt(path: path, bytes: bytes, metadata: metadata, timeout: remaining)
            let retryable = result.unprocessed || (idempotent && result.status.code == .unavailable)
            guard !result.status.isOK, retryable, attemptNumber < configuration.maxAttempts, !Task.isCancelled else {
                return result
            }
            var pause = backoff(attemptNumber)
            if let deadline { pause = min(pause, deadline - .now) }
            if pause > .zero { try? await Task.sleep(for: pause) }
        }
    }

    private func backoff(_ attempt: Int) -> Duration {
        let base = configuration.initialBackoff * (1 << min(attempt - 1, 16))
        let capped = min(base, configuration.maxBackoff)
        return capped * Double.random(in: 0.5...1.0)  // jitter
    }

    private func attempt(path: String, bytes: [UInt8], metadata: Metadata, timeout: Duration?) async -> ClientCallResult {
        if let inProcess {
            guard !state.withLockedValue({ $0.closed }) else { return ClientCallResult(status: Status(code: .unavailable, message: "the client is closed")) }
            return await inProcess.call(path: path, request: bytes, metadata: metadata, timeout: timeout)
        }
        let connection: Connection
        do {
            connection = try await nextConnection()
        } catch {
            var result = ClientCallResult(status: Status(error))
            result.unprocessed = true
            return result
        }
        let token = state.withLockedValue { state -> UInt64 in
            state.nextToken += 1
            return state.nextToken
        }
        let eventLoop = connection.channel.eventLoop
        let handler = connection.handler
        let promise = eventLoop.makePromise(of: ClientCallResult.self)
        eventLoop.execute {
            handler.value.start(token: token, path: path, metadata: metadata, timeout: timeout, message: bytes, promise: promise)
        }
        let timer = timeout.map { timeout in
            eventLoop.scheduleTask(in: .nanoseconds(Self.nanoseconds(timeout))) {
                handler.value.cancel(token: token, status: RPCError(code: .deadlineExceeded, message: "deadline exceeded"))
            }
        }
        defer { timer?.cancel() }
        return await withTaskCancellationHandler {
            do {
                return try await promise.futureResult.get()
            } catch {
                return ClientCallResult(status: Status(code: .unavailable, message: "\(error)"))
            }
        } onCancel: {
            eventLoop.execute {
                handler.value.cancel(token: token, status: RPCError(code: .cancelled, message: "cancelled by the caller"))
            }
        }
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// The next target's connection, round-robin, skipping targets in backoff. Opening a
    /// connection is single-flight per target: calls that arrive while it is being opened
    /// wait for that one connection instead of each opening their own.
    private func nextConnection() async throws(RPCError) -> Connection {
        let now = ContinuousClock.now
        let pick: (index: Int, future: EventLoopFuture<Connection>, opened: Bool)? = state.withLockedValue { state in
            guard !state.closed else { return nil }
            for offset in 0..<state.targets.count {
                let index = (state.next + offset) % state.targets.count
                if let retryAfter = state.targets[index].retryAfter, retryAfter > now { continue }
                state.next = index + 1
                if let existing = state.targets[index].connection { return (index, existing, false) }
                let future = openConnection(index)
                state.targets[index].connection = future
                return (index, future, true)
            }
            return nil
        }
        guard let pick else {
            throw RPCError(code: .unavailable, message: "no reachable address among \(targets.map(\.description).joined(separator: ", "))")
        }
        do {
            let connection = try await pick.future.get()
            if connection.channel.isActive {
                if pick.opened { state.withLockedValue { $0.targets[pick.index].failures = 0; $0.targets[pick.index].retryAfter = nil } }
                return connection
            }
            // Closed since (GOAWAY, idle timeout, peer restart): forget it and open another;
            // a connection closed as soon as it opened counts as a failure (backoff).
            state.withLockedValue { state in
                if state.targets[pick.index].connection === pick.future { state.targets[pick.index].connection = nil }
                if pick.opened {
                    state.targets[pick.index].failures += 1
                    state.targets[pick.index].retryAfter = .now + backoff(state.targets[pick.index].failures)
                }
            }
            if pick.opened { throw RPCError(code: .unavailable, message: "connection to \(targets[pick.index]) closed at once") }
            return try await nextConnection()
        } catch let error as RPCError {
            throw error
        } catch {
            state.withLockedValue { state in
                if state.targets[pick.index].connection === pick.future { state.targets[pick.index].connection = nil }
                if pick.opened {
                    state.targets[pick.index].failures += 1
                    state.targets[pick.index].retryAfter = .now + backoff(state.targets[pick.index].failures)
                }
            }
            throw RPCError(code: .unavailable, message: "cannot connect to \(targets[pick.index]): \(error)")
        }
    }

    /// Starts opening a connection to target `index` (not waiting for it).
    private func openConnection(_ index: Int) -> EventLoopFuture<Connection> {
        let target = targets[index]
        let configuration = self.configuration
        return ClientBootstrap(group: group)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(GRPCClientConnectionHandler(
                        authority: target.description, maxReceiveMessageSize: configuration.maxReceiveMessageSize,
                        configuration: configuration.http2))
                }
            }
            .connect(host: target.host, port: target.port)
            .flatMapThrowing { channel in
                let handler = try channel.pipeline.syncOperations.handler(type: GRPCClientConnectionHandler.self)
                return Connection(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
            }
    }

    /// Closes every connection; later calls fail with UNAVAILABLE.
    public func close() async {
        let futures = state.withLockedValue { state -> [EventLoopFuture<Connection>] in
            state.closed = true
            return state.targets.compactMap(\.connection)
        }
        for future in futures {
            if let connection = try? await future.get() { try? await connection.channel.close() }
        }
    }
}
