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
    }

    private let channel: any Channel
    private let recorded: Mutex<[Request]>
    public let port: Int

    private init(channel: any Channel) {
        self.channel = channel
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
        let server = TestHTTPServer(channel: channel)
        box.server.withLock { $0 = server }
        return server
    }

    public func stop() async throws { try await channel.close() }

    final class ServerBox: Sendable {
        let server = Mutex<TestHTTPServer?>(nil)
    }

    final class StatusQueue: Sendable {
        private let statuses: Mutex<[UInt]>
        init(_ statuses: [UInt]) { self.statuses = Mutex(statuses) }
        func next() -> UInt { statuses.withLock { $0.isEmpty ? 200 : $0.removeFirst() } }
    }

    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let queue: StatusQueue
        let box: ServerBox
        var head: HTTPRequestHead?
        var body = ""

        init(queue: StatusQueue, box: ServerBox) {
            self.queue = queue
            self.box = box
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body = ""
            case .body(let buffer):
                body += String(buffer: buffer)
            case .end:
                guard let head else { return }
                box.server.withLock { $0 }?.record(Request(
                    method: "\(head.method)", uri: head.uri, idempotencyKey: head.headers.first(name: "idempotency-key") ?? "",
                    topic: head.headers.first(name: "x-doorstep-topic") ?? "", contentType: head.headers.first(name: "content-type") ?? "",
                    body: body))
                let code = queue.next()
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
