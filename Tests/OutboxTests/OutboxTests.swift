import Foundation
import GRDB
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Outbox
import Storage
import Synchronization
import Testing
import TestSupport

/// The transactional outbox on real SQLite files: written with the change or not at all,
/// retried with backoff, delivered once per id by a sink that succeeds, nothing lost across
/// a restart; the log-file and webhook sinks.
@Suite("Outbox", .serialized)
struct OutboxTests {
    static func logger() -> Logger {
        var logger = Logger(label: "doorstep.test.outbox")
        logger.logLevel = .critical
        return logger
    }

    static func migrations() -> SQLiteDatabase.Migrations {
        var migrations = SQLiteDatabase.Migrations()
        migrations.add("test-v1", sql: "CREATE TABLE changes (id TEXT PRIMARY KEY NOT NULL)")
        Outbox.addMigrations(to: &migrations)
        return migrations
    }

    static func open(_ path: String) throws -> SQLiteDatabase {
        try SQLiteDatabase(path: path, migrations: migrations(), logger: logger())
    }

    /// A sink that fails the first `failures` attempts of each message, then records it.
    final class FlakySink: OutboxSink {
        private let state = Mutex<(attempts: [String: Int], delivered: [String])>(([:], []))
        let failures: Int
        let permanent: Bool
        init(failures: Int, permanent: Bool = false) {
            self.failures = failures
            self.permanent = permanent
        }
        func deliver(_ message: OutboxMessage) async throws(OutboxSinkError) {
            let fail = state.withLock { state -> Bool in
                state.attempts[message.id, default: 0] += 1
                if state.attempts[message.id]! <= failures { return true }
                state.delivered.append(message.id)
                return false
            }
            if fail { throw permanent ? .permanent("HTTP 400") : .retryable("HTTP 503") }
        }
        var delivered: [String] { state.withLock { $0.delivered } }
    }

    final class Clock: Sendable {
        private let value = Mutex<Int64>(1_000_000)
        var now: Int64 { value.withLock { $0 } }
        func advance(_ ms: Int64) { value.withLock { $0 += ms } }
    }

    static func enqueue(_ database: SQLiteDatabase, ids: [String], nowMs: Int64) async throws {
        try await database.write { db in
            for id in ids {
                try db.execute(sql: "INSERT INTO changes (id) VALUES (?)", arguments: [id])
                try Outbox.enqueue(db, OutboxMessage(id: id, topic: "t", payload: Array("{\"id\":\"\(id)\"}".utf8), createdMs: nowMs), nowMs: nowMs)
            }
        }
    }

    @Test("a message is written with its change or not at all", .timeLimit(.minutes(1)))
    func transactional() async throws {
        let directory = try makeTemporaryDirectory()
        let database = try Self.open(directory.appendingPathComponent("o.sqlite").path)
        defer { database.close() }
        await #expect(throws: (any Error).self) {
            try await database.write { db in
                try Outbox.enqueue(db, OutboxMessage(id: "m1", topic: "t", payload: [1], createdMs: 1), nowMs: 1)
                throw RPCErrorLike()
            }
        }
        #expect(try await database.read { db in try Outbox.delivery(db, id: "m1") } == nil)
    }

    struct RPCErrorLike: Error {}

    @Test("a failing sink is retried with doubling backoff; each id delivered once; attempts and error visible", .timeLimit(.minutes(1)))
    func retries() async throws {
        let directory = try makeTemporaryDirectory()
        let database = try Self.open(directory.appendingPathComponent("o.sqlite").path)
        defer { database.close() }
        let clock = Clock()
        let sink = FlakySink(failures: 3)
        let dispatcher = OutboxDispatcher(
            database: database, topics: ["t"], sink: sink, policy: OutboxRetryPolicy(initialBackoffMs: 1_000, jitter: 0),
            nowMs: { clock.now }, logger: Self.logger())
        try await Self.enqueue(database, ids: ["a", "b"], nowMs: clock.now)
        #expect(await dispatcher.dispatchDue() == 0)
        var delivery = try #require(try await database.read { db in try Outbox.delivery(db, id: "a") })
        #expect(delivery.status == .pending && delivery.attempts == 1 && delivery.lastError == "HTTP 503")
        #expect(delivery.nextAttemptMs == clock.now + 1_000)
        #expect(await dispatcher.dispatchDue() == 0, "not due before its backoff")
        clock.advance(1_000)
        #expect(await dispatcher.dispatchDue() == 0)
        delivery = try #require(try await database.read { db in try Outbox.delivery(db, id: "a") })
        #expect(delivery.attempts == 2 && delivery.nextAttemptMs == clock.now + 2_000, "the backoff doubles")
        clock.advance(2_000)
        #expect(await dispatcher.dispatchDue() == 0)
        clock.advance(4_000)
        #expect(await dispatcher.dispatchDue() == 2)
        delivery = try #require(try await database.read { db in try Outbox.delivery(db, id: "b") })
        #expect(delivery.status == .delivered && delivery.attempts == 4 && delivery.deliveredMs == clock.now && delivery.nextAttemptMs == 0)
        clock.advance(60_000)
        #expect(await dispatcher.dispatchDue() == 0)
        #expect(sink.delivered.sorted() == ["a", "b"])
        let counts = try await database.read { db in try Outbox.counts(db) }
        #expect(counts.delivered == 2 && counts.pending == 0 && counts.failed == 0)
    }

    @Test("a permanent rejection or the attempt limit marks the message FAILED and stops retrying", .timeLimit(.minutes(1)))
    func giveUp() async throws {
        let directory = try makeTemporaryDirectory()
        let database = try Self.open(directory.appendingPathComponent("o.sqlite").path)
        defer { database.close() }
        let clock = Clock()
        let rejecting = OutboxDispatcher(database: database, topics: ["t"], sink: FlakySink(failures: 99, permanent: true),
                                         nowMs: { clock.now }, logger: Self.logger())
        try await Self.enqueue(database, ids: ["p"], nowMs: clock.now)
        _ = await rejecting.dispatchDue()
        let rejected = try #require(try await database.read { db in try Outbox.delivery(db, id: "p") })
        #expect(rejected.status == .failed && rejected.attempts == 1 && rejected.nextAttemptMs == 0)

        let limited = OutboxDispatcher(database: database, topics: ["t"], sink: FlakySink(failures: 99),
                                       policy: OutboxRetryPolicy(initialBackoffMs: 10, maxAttempts: 3, jitter: 0),
                                       nowMs: { clock.now }, logger: Self.logger())
        try await Self.enqueue(database, ids: ["q"], nowMs: clock.now)
        for _ in 0..<5 {
            _ = await limited.dispatchDue()
            clock.advance(1_000)
        }
        let exhausted = try #require(try await database.read { db in try Outbox.delivery(db, id: "q") })
        #expect(exhausted.status == .failed && exhausted.attempts == 3)
    }

    @Test("nothing is lost across a restart: pending messages are delivered by the next process, each once", .timeLimit(.minutes(1)))
    func restart() async throws {
        let directory = try makeTemporaryDirectory()
        let path = directory.appendingPathComponent("o.sqlite").path
        let clock = Clock()
        let ids = (0..<20).map { "m\($0)" }
        do {
            let database = try Self.open(path)
            try await Self.enqueue(database, ids: ids, nowMs: clock.now)
            let down = OutboxDispatcher(database: database, topics: ["t"], sink: FlakySink(failures: 99), nowMs: { clock.now },
                                        logger: Self.logger())
            #expect(await down.dispatchDue() == 0)
            database.close()
        }
        clock.advance(3_600_000)
        let database = try Self.open(path)
        defer { database.close() }
        let sink = FlakySink(failures: 0)
        let up = OutboxDispatcher(database: database, topics: ["t"], sink: sink, batchSize: 7, nowMs: { clock.now }, logger: Self.logger())
        var total = 0
        for _ in 0..<5 { total += await up.dispatchDue() }
        #expect(total == 20)
        #expect(sink.delivered.sorted() == ids.sorted())
        #expect(try await database.read { db in try Outbox.counts(db) }.delivered == 20)
    }

    @Test("onDelivered runs in the transaction that marks delivery: if it throws, the message stays pending", .timeLimit(.minutes(1)))
    func onDeliveredAtomic() async throws {
        let directory = try makeTemporaryDirectory()
        let database = try Self.open(directory.appendingPathComponent("o.sqlite").path)
        defer { database.close() }
        let clock = Clock()
        let failing = OutboxDispatcher(database: database, topics: ["t"], sink: FlakySink(failures: 0), nowMs: { clock.now },
                                       logger: Self.logger(), onDelivered: { _, _, _ in throw RPCErrorLike() })
        try await Self.enqueue(database, ids: ["x"], nowMs: clock.now)
        #expect(await failing.dispatchDue() == 0)
        #expect(try await database.read { db in try Outbox.delivery(db, id: "x") }?.status == .pending)
        let marking = OutboxDispatcher(database: database, topics: ["t"], sink: FlakySink(failures: 0), nowMs: { clock.now },
                                       logger: Self.logger(), onDelivered: { db, message, _ in
                                           try db.execute(sql: "INSERT INTO changes (id) VALUES (?)", arguments: ["done-" + message.id])
                                       })
        #expect(await marking.dispatchDue() == 1)
        #expect(try await database.read { db in try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM changes WHERE id = 'done-x')") } == true)
    }

    @Test("the log-file sink appends one line per message; an unwritable path is a retryable error", .timeLimit(.minutes(1)))
    func logFile() async throws {
        let directory = try makeTemporaryDirectory()
        let path = directory.appendingPathComponent("notices.jsonl").path
        try await LogFileSink(path: path).deliver(OutboxMessage(id: "1", topic: "t", payload: Array("{\"a\":1}".utf8), createdMs: 0))
        try await LogFileSink(path: path).deliver(OutboxMessage(id: "2", topic: "t", payload: Array("{\"a\":\n2}".utf8), createdMs: 0))
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "{\"a\":1}\n{\"a\": 2}\n")
        do {
            try await LogFileSink(path: directory.appendingPathComponent("no/such/dir/x").path)
                .deliver(OutboxMessage(id: "3", topic: "t", payload: [], createdMs: 0))
            Issue.record("an unwritable path must fail")
        } catch {
            guard case .retryable = error else { Issue.record("expected retryable, got \(error)"); return }
        }
    }

    @Test("the webhook sink: 503 is retried, 200 delivers with the idempotency key, 400 rejects for good", .timeLimit(.minutes(1)))
    func webhook() async throws {
        let server = try await TestHTTPServer.start(statuses: [503, 200, 400])
        let sink = try WebhookSink(url: "http://127.0.0.1:\(server.port)/notices", timeout: .seconds(5))
        let message = OutboxMessage(id: "ntc_1", topic: "customer-notice", payload: Array("{}".utf8), createdMs: 0)
        do {
            try await sink.deliver(message)
            Issue.record("503 must fail")
        } catch {
            #expect(error == .retryable("HTTP 503"))
        }
        try await sink.deliver(message)
        do {
            try await sink.deliver(message)
            Issue.record("400 must fail")
        } catch {
            #expect(error == .permanent("HTTP 400"))
        }
        let requests = server.requests
        #expect(requests.count == 3)
        #expect(requests.allSatisfy { $0.method == "POST" && $0.uri == "/notices" && $0.idempotencyKey == "ntc_1" && $0.body == "{}" })
        try await sink.shutdown()
        try await server.stop()
        #expect(throws: WebhookURLError.self) { try WebhookSink(url: "ftp://example.com/x") }
        #expect(throws: WebhookURLError.self) { try WebhookSink(url: "not a url") }
    }
}

/// A one-route HTTP/1.1 server on 127.0.0.1 (port 0) answering with the given statuses in
/// turn and recording each request.
final class TestHTTPServer: Sendable {
    struct Request: Sendable {
        var method: String
        var uri: String
        var idempotencyKey: String
        var body: String
    }

    private let channel: any Channel
    private let recorded: Mutex<[Request]>
    let port: Int

    private init(channel: any Channel) {
        self.channel = channel
        self.recorded = Mutex([])
        self.port = channel.localAddress?.port ?? 0
    }

    var requests: [Request] { recorded.withLock { $0 } }
    func record(_ request: Request) { recorded.withLock { $0.append(request) } }

    static func start(statuses: [UInt]) async throws -> TestHTTPServer {
        let box = ServerBox()
        let queue = StatusQueue(statuses)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(Handler(queue: queue, box: box))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let server = TestHTTPServer(channel: channel)
        box.server.withLock { $0 = server }
        return server
    }

    func stop() async throws { try await channel.close() }

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
                    method: "\(head.method)", uri: head.uri, idempotencyKey: head.headers.first(name: "idempotency-key") ?? "", body: body))
                let status = HTTPResponseStatus(statusCode: Int(queue.next()))
                var headers = HTTPHeaders()
                headers.add(name: "content-length", value: "0")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
