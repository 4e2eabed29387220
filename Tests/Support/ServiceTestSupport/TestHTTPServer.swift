import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A one-route HTTP/1.1 server on 127.0.0.1 (port 0) answering with the given statuses in
/// turn (then 200; a status of 0 = never answer) and recording each request: a webhook
/// receiver for the outbox's sink tests.
public final class TestHTTPServer: Sendable {
    public struct Request: Sendable {
        public var method: String
        public var uri: String
        public var idempotencyKey: String
        public var topic: String
        public var contentType: String
        public var body: String
        /// Every header, names in lower case (the last value of a repeated one).
        public var headers: [String: String] = [:]
        /// The status it was answered with (0: held unanswered).
        public var status: UInt = 0
    }

    private let channel: any Channel
    private let recorded: Mutex<[Request]>
    private let queue: StatusQueue
    public let port: Int

    private init(channel: any Channel, queue: StatusQueue) {
        self.channel = channel
        self.queue = queue
        self.recorded = Mutex([])
        self.port = channel.localAddress?.port ?? 0
    }

    public var requests: [Request] { recorded.withLock { $0 } }
    func record(_ request: Request) { recorded.withLock { $0.append(request) } }

    public static func start(statuses: [UInt], port: Int = 0) async throws -> TestHTTPServer {
        let box = ServerBox()
        let queue = StatusQueue(statuses)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(Handler(queue: queue, box: box))
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        let server = TestHTTPServer(channel: channel, queue: queue)
        box.server.withLock { $0 = server }
        return server
    }

    public func stop() async throws { try await channel.close() }

    /// From now on answers every request with `status` (the statuses given to ``start(statuses:port:)``
    /// not yet used are dropped).
    public func answer(_ status: UInt) { queue.answer(status) }

    final class ServerBox: Sendable {
        let server = Mutex<TestHTTPServer?>(nil)
    }

    final class StatusQueue: Sendable {
        private let statuses: Mutex<(queued: [UInt], then: UInt)>
        init(_ statuses: [UInt]) { self.statuses = Mutex((statuses, 200)) }
        func next() -> UInt { statuses.withLock { $0.queued.isEmpty ? $0.then : $0.queued.removeFirst() } }
        func answer(_ status: UInt) { statuses.withLock { $0 = ([], status) } }
    }

    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let queue: StatusQueue
        let box: ServerBox
        var head: HTTPRequestHead?
        var body: [UInt8] = []

        init(queue: StatusQueue, box: ServerBox) {
            self.queue = queue
            self.box = box
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body = []
            case .body(let buffer):
                body += buffer.readableBytesView
            case .end:
                guard let head else { return }
                let code = queue.next()
                box.server.withLock { $0 }?.record(Request(
                    method: "\(head.method)", uri: head.uri, idempotencyKey: head.headers.first(name: "idempotency-key") ?? "",
                    topic: head.headers.first(name: "x-doorstep-topic") ?? "", contentType: head.headers.first(name: "content-type") ?? "",
                    body: String(decoding: body, as: UTF8.self), headers: Dictionary(head.headers.map { ($0.name.lowercased(), $0.value) }, uniquingKeysWith: { $1 }),
                    status: code))
                if code == 0 { return }  // hold the request: the client times out
                let status = HTTPResponseStatus(statusCode: Int(code))
                var headers = HTTPHeaders()
                headers.add(name: "content-length", value: "0")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
