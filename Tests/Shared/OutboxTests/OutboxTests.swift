import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
@testable import Outbox
import ServiceLifecycle
import ServiceTestSupport
import Storage
import Synchronization
import Testing
import TestSupport

/// The transactional outbox on real databases (SQLite files, or PostgreSQL: ``TestDatabase``): written with the change or not at all,
/// retried with backoff, delivered once per id by a sink that succeeds, nothing lost across
/// a restart; the log-file and webhook sinks.
@Suite("Outbox", .serialized)
struct OutboxTests {
    static func logger() -> Logger {
        var logger = Logger(label: "doorstep.test.outbox")
        logger.logLevel = .critical
        return logger
    }

    static func migrations() -> SQLDatabase.Migrations {
        var migrations = SQLDatabase.Migrations()
        migrations.add("test-v1", sql: "CREATE TABLE changes (id TEXT PRIMARY KEY NOT NULL)")
        Outbox.addMigrations(to: &migrations)
        return migrations
    }

    /// A fresh outbox database in `directory` (or a fresh PostgreSQL schema, ``TestDatabase``).
    static func open(_ directory: URL) async throws -> SQLDatabase {
        try await open(try TestDatabase.location(file: "o.sqlite", in: directory))
    }

    static func open(_ location: SQLDatabase.Location) async throws -> SQLDatabase {
        try await SQLDatabase.open(location, migrations: migrations(), logger: logger())
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

    static func enqueue(_ database: SQLDatabase, ids: [String], nowMs: Int64) async throws {
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
        let database = try await Self.open(directory)
        defer { Task { await database.close() } }
        await #expect(throws: (any Error).self) {
            try await database.write { db in
                try Outbox.enqueue(db, OutboxMessage(id: "m1", topic: "t", payload: [1], createdMs: 1), nowMs: 1)
                throw RPCErrorLike()
            }
        }
        #expect(try await database.read { db in try Outbox.delivery(db, id: "m1") } == nil)
    }

    struct RPCErrorLike: Error {}

    /// A sink that takes a while per message and counts how often each id arrived.
    final class SlowSink: OutboxSink {
        private let arrivals = Mutex<[String: Int]>([:])
        func deliver(_ message: OutboxMessage) async throws(OutboxSinkError) {
            try? await Task.sleep(for: .milliseconds(2))
            arrivals.withLock { $0[message.id, default: 0] += 1 }
        }
        var counts: [String: Int] { arrivals.withLock { $0 } }
    }

    @Test("replicas share the outbox: three dispatchers on one database deliver each message once; a dead replica's claims pass to another when they run out, with the same id", .timeLimit(.minutes(1)))
    func claimsAcrossReplicas() async throws {
        let directory = try makeTemporaryDirectory()
        let database = try await Self.open(directory)
        defer { Task { await database.close() } }
        let clock = Clock()
        let ids = (0..<60).map { String(format: "m%02d", $0) }
        try await Self.enqueue(database, ids: ids, nowMs: clock.now)
        // A replica that claimed the ten oldest and died before delivering them.
        let dead = try await database.write { db in
            try Outbox.claim(db, topics: ["t"], nowMs: clock.now, limit: 10, holder: "dead", untilMs: clock.now + 5_000)
        }
        #expect(dead.map(\.id) == Array(ids.prefix(10)))
        #expect(try await database.read { db in try Outbox.claim(db, id: "m03") }?.holder == "dead")
        let sink = SlowSink()
        let replicas = (0..<3).map { replica in
            OutboxDispatcher(database: database, topics: ["t"], sink: sink, batchSize: 7, claimLease: .seconds(5), holder: "r\(replica)",
                             nowMs: { clock.now }, logger: Self.logger())
        }
        // All three at once, pass after pass, until nothing more is due for them.
        let delivered = await withTaskGroup(of: Int.self) { group in
            for replica in replicas {
                group.addTask {
                    var total = 0
                    for _ in 0..<20 { total += await replica.dispatchDue() }
                    return total
                }
            }
            return await group.reduce(0, +)
        }
        #expect(delivered == 50, "everything but the dead replica's claims")
        #expect(sink.counts.count == 50 && sink.counts.values.allSatisfy { $0 == 1 }, "each once: \(sink.counts.filter { $0.value > 1 })")
        #expect(ids.prefix(10).allSatisfy { sink.counts[$0] == nil }, "claimed by the dead replica: not yet")
        clock.advance(5_000)  // the dead replica's claims run out
        #expect(await replicas[1].dispatchDue() == 7)
        #expect(await replicas[2].dispatchDue() == 3)
        #expect(sink.counts.count == 60 && sink.counts.values.allSatisfy { $0 == 1 })
        let delivery = try await database.read { db in try Outbox.delivery(db, id: "m00") }
        #expect(delivery?.status == .delivered && delivery?.attempts == 1)
        #expect(try await database.read { db in try Outbox.claim(db, id: "m00") }?.holder == "", "a delivered message holds no claim")
    }

    @Test("a failing sink is retried with doubling backoff; each id delivered once; attempts and error visible", .timeLimit(.minutes(1)))
    func retries() async throws {
        let directory = try makeTemporaryDirectory()
        let database = try await Self.open(directory)
        defer { Task { await database.close() } }
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

    @Test("a permanent rejection or the attempt limit marks the message FAILED, stops retrying, and runs onFailed once in that transaction",
          .timeLimit(.minutes(1)))
    func giveUp() async throws {
        let directory = try makeTemporaryDirectory()
        let database = try await Self.open(directory)
        defer { Task { await database.close() } }
        let clock = Clock()
        let onFailed: @Sendable (SQLSession, OutboxMessage, String, Int64) throws -> Void = { db, message, error, failedMs in
            try db.execute(sql: "INSERT INTO changes (id) VALUES (?)", arguments: ["failed-\(message.id)-\(failedMs)-\(error)"])
        }
        let failures = { () async throws -> [String] in
            try await database.read { db in try db.fetchValues(String.self, sql: "SELECT id FROM changes WHERE id LIKE 'failed-%' ORDER BY id") }
        }
        let rejecting = OutboxDispatcher(database: database, topics: ["t"], sink: FlakySink(failures: 99, permanent: true),
                                         nowMs: { clock.now }, logger: Self.logger(), onFailed: onFailed)
        try await Self.enqueue(database, ids: ["p"], nowMs: clock.now)
        _ = await rejecting.dispatchDue()
        let rejected = try #require(try await database.read { db in try Outbox.delivery(db, id: "p") })
        #expect(rejected.status == .failed && rejected.attempts == 1 && rejected.nextAttemptMs == 0)
        #expect(try await failures() == ["failed-p-\(clock.now)-\(rejected.lastError)"])

        let limited = OutboxDispatcher(database: database, topics: ["t"], sink: FlakySink(failures: 99),
                                       policy: OutboxRetryPolicy(initialBackoffMs: 10, maxAttempts: 3, jitter: 0),
                                       nowMs: { clock.now }, logger: Self.logger(), onFailed: onFailed)
        try await Self.enqueue(database, ids: ["q"], nowMs: clock.now)
        _ = await limited.dispatchDue()
        #expect(try await failures().count == 1, "a retryable failure with attempts left is not a give-up")
        var givenUpAt: Int64 = 0
        for _ in 0..<5 {
            clock.advance(1_000)
            if (try await database.read { db in try Outbox.delivery(db, id: "q") })?.status == .pending { givenUpAt = clock.now }
            _ = await limited.dispatchDue()
        }
        let exhausted = try #require(try await database.read { db in try Outbox.delivery(db, id: "q") })
        #expect(exhausted.status == .failed && exhausted.attempts == 3)
        #expect(try await failures().filter { $0.hasPrefix("failed-q-") } == ["failed-q-\(givenUpAt)-\(exhausted.lastError)"], "once")

        // If onFailed throws, the give-up is not recorded: the message stays due.
        let throwing = OutboxDispatcher(database: database, topics: ["t"], sink: FlakySink(failures: 99, permanent: true),
                                        nowMs: { clock.now }, logger: Self.logger(), onFailed: { _, _, _, _ in throw RPCErrorLike() })
        try await Self.enqueue(database, ids: ["r"], nowMs: clock.now)
        _ = await throwing.dispatchDue()
        let kept = try #require(try await database.read { db in try Outbox.delivery(db, id: "r") })
        #expect(kept.status == .pending && kept.attempts == 0)
    }

    @Test("nothing is lost across a restart: pending messages are delivered by the next process, each once", .timeLimit(.minutes(1)))
    func restart() async throws {
        let directory = try makeTemporaryDirectory()
        let location = try TestDatabase.location(file: "o.sqlite", in: directory)
        let clock = Clock()
        let ids = (0..<20).map { "m\($0)" }
        do {
            let database = try await Self.open(location)
            try await Self.enqueue(database, ids: ids, nowMs: clock.now)
            let down = OutboxDispatcher(database: database, topics: ["t"], sink: FlakySink(failures: 99), nowMs: { clock.now },
                                        logger: Self.logger())
            #expect(await down.dispatchDue() == 0)
            await database.close()
        }
        clock.advance(3_600_000)
        let database = try await Self.open(location)
        defer { Task { await database.close() } }
        let sink = FlakySink(failures: 0)
        let up = OutboxDispatcher(database: database, topics: ["t"], sink: sink, batchSize: 7, nowMs: { clock.now }, logger: Self.logger())
        var total = 0
        for _ in 0..<5 { total += await up.dispatchDue() }
        #expect(total == 20)
        #expect(sink.delivered == ids, "each once, oldest first")
        #expect(try await database.read { db in try Outbox.counts(db) }.delivered == 20)
    }

    @Test("onDelivered runs in the transaction that marks delivery: if it throws, the message stays pending and is redelivered after the backoff", .timeLimit(.minutes(1)))
    func onDeliveredAtomic() async throws {
        let directory = try makeTemporaryDirectory()
        let database = try await Self.open(directory)
        defer { Task { await database.close() } }
        let clock = Clock()
        let sink = FlakySink(failures: 0)
        let policy = OutboxRetryPolicy(initialBackoffMs: 1_000, jitter: 0)
        let failing = OutboxDispatcher(database: database, topics: ["t"], sink: sink, policy: policy, nowMs: { clock.now },
                                       logger: Self.logger(), onDelivered: { db, message, _ in
                                           try db.execute(sql: "INSERT INTO changes (id) VALUES (?)", arguments: ["half-" + message.id])
                                           throw RPCErrorLike()
                                       })
        try await Self.enqueue(database, ids: ["x"], nowMs: clock.now)
        #expect(await failing.dispatchDue() == 0)
        let pending = try await database.read { db in try Outbox.delivery(db, id: "x") }
        #expect(pending?.status == .pending && pending?.attempts == 1 && pending?.deliveredMs == 0)
        #expect(pending?.lastError.hasPrefix("delivered but not recorded") == true)
        #expect(pending?.nextAttemptMs == clock.now + 1_000, "redelivered after the backoff, not in a tight loop")
        #expect(try await database.read { db in try db.fetchValue(Bool.self, sql: "SELECT EXISTS (SELECT 1 FROM changes WHERE id = 'half-x')") } == false,
                "what onDelivered wrote is rolled back with it")
        #expect(await failing.dispatchDue() == 0, "not due before the backoff")

        let marking = OutboxDispatcher(database: database, topics: ["t"], sink: sink, policy: policy, nowMs: { clock.now },
                                       logger: Self.logger(), onDelivered: { db, message, deliveredMs in
                                           try db.execute(sql: "INSERT INTO changes (id) VALUES (?)", arguments: ["done-\(message.id)-\(deliveredMs)"])
                                       })
        clock.advance(1_000)
        #expect(await marking.dispatchDue() == 1)
        let delivered = try await database.read { db in try Outbox.delivery(db, id: "x") }
        #expect(delivered?.status == .delivered && delivered?.attempts == 2 && delivered?.deliveredMs == clock.now)
        let marker = "done-x-\(clock.now)"
        #expect(try await database.read { db in
            try db.fetchValue(Bool.self, sql: "SELECT EXISTS (SELECT 1 FROM changes WHERE id = ?)", arguments: [marker])
        } == true)
        #expect(sink.delivered == ["x", "x"], "at least once: the receiver got it again, with the same id")
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

    /// Runs `body` with a test server answering `statuses` in turn and a webhook sink
    /// pointed at it; shuts both down afterwards, also when `body` throws.
    static func withWebhook(statuses: [UInt], timeout: Duration = .seconds(5),
                            _ body: (TestHTTPServer, WebhookSink) async throws -> Void) async throws {
        let server = try await TestHTTPServer.start(statuses: statuses)
        let sink: WebhookSink
        do {
            sink = try WebhookSink(url: "http://127.0.0.1:\(server.port)/notices", timeout: timeout)
        } catch {
            try? await server.stop()
            throw error
        }
        let outcome: Result<Void, any Error>
        do {
            try await body(server, sink)
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        try await sink.shutdown()
        try await server.stop()
        try outcome.get()
    }

    @Test("the webhook sink: 503 is retried, 200 delivers with the idempotency key and topic, 400 rejects for good", .timeLimit(.minutes(1)))
    func webhook() async throws {
        let message = OutboxMessage(id: "ntc_1", topic: "customer-notice", payload: Array("{}".utf8), createdMs: 0)
        try await Self.withWebhook(statuses: [503, 200, 400]) { server, sink in
            do {
                try await sink.deliver(message)
                Issue.record("503 must fail")
            } catch {
                #expect(error as? OutboxSinkError == .retryable("HTTP 503"))
            }
            try await sink.deliver(message)
            do {
                try await sink.deliver(message)
                Issue.record("400 must fail")
            } catch {
                #expect(error as? OutboxSinkError == .permanent("HTTP 400"))
            }
            let requests = server.requests
            #expect(requests.count == 3)
            #expect(requests.allSatisfy {
                $0.method == "POST" && $0.uri == "/notices" && $0.idempotencyKey == "ntc_1" && $0.topic == "customer-notice"
                    && $0.contentType == "application/json" && $0.body == "{}"
            })
        }
        #expect(throws: WebhookURLError.self) { try WebhookSink(url: "ftp://example.com/x") }
        #expect(throws: WebhookURLError.self) { try WebhookSink(url: "not a url") }
        #expect(throws: WebhookURLError.self) { try WebhookSink(url: "http:///no-host") }
    }

    @Test("the dispatcher over the webhook sink: delivered on the second attempt after a 503, same key; a 400 fails the message", .timeLimit(.minutes(1)))
    func webhookDispatch() async throws {
        let directory = try makeTemporaryDirectory()
        let database = try await Self.open(directory)
        defer { Task { await database.close() } }
        let clock = Clock()
        try await Self.withWebhook(statuses: [503, 200, 400]) { server, sink in
            let dispatcher = OutboxDispatcher(
                database: database, topics: ["customer-notice"], sink: sink, policy: OutboxRetryPolicy(initialBackoffMs: 1_000, jitter: 0),
                nowMs: { clock.now }, logger: Self.logger())
            let now = clock.now
            try await database.write { db in
                try Outbox.enqueue(db, OutboxMessage(id: "ntc_1", topic: "customer-notice", payload: Array("{\"n\":1}".utf8), createdMs: now),
                                   nowMs: now)
            }
            #expect(await dispatcher.dispatchDue() == 0)
            let retrying = try await database.read { db in try Outbox.delivery(db, id: "ntc_1") }
            #expect(retrying?.status == .pending && retrying?.attempts == 1 && retrying?.lastError == "HTTP 503")
            #expect(retrying?.nextAttemptMs == now + 1_000)
            clock.advance(1_000)
            #expect(await dispatcher.dispatchDue() == 1)
            let delivered = try await database.read { db in try Outbox.delivery(db, id: "ntc_1") }
            #expect(delivered?.status == .delivered && delivered?.attempts == 2 && delivered?.deliveredMs == clock.now)

            let later = clock.now
            try await database.write { db in
                try Outbox.enqueue(db, OutboxMessage(id: "ntc_2", topic: "customer-notice", payload: Array("{\"n\":2}".utf8), createdMs: later),
                                   nowMs: later)
            }
            #expect(await dispatcher.dispatchDue() == 0)
            let rejected = try await database.read { db in try Outbox.delivery(db, id: "ntc_2") }
            #expect(rejected?.status == .failed && rejected?.attempts == 1 && rejected?.lastError == "HTTP 400" && rejected?.nextAttemptMs == 0)
            clock.advance(3_600_000)
            #expect(await dispatcher.dispatchDue() == 0, "a rejected message is not sent again")

            let requests = server.requests
            #expect(requests.map(\.idempotencyKey) == ["ntc_1", "ntc_1", "ntc_2"])
            #expect(requests.map(\.body) == ["{\"n\":1}", "{\"n\":1}", "{\"n\":2}"])
            #expect(requests.allSatisfy { $0.topic == "customer-notice" && $0.contentType == "application/json" })
        }
    }

    @Test("the webhook sink: a refused connection and a receiver that never answers are retryable", .timeLimit(.minutes(1)))
    func webhookUnreachable() async throws {
        let message = OutboxMessage(id: "ntc_9", topic: "customer-notice", payload: Array("{}".utf8), createdMs: 0)
        // A status of 0 makes the test server hold the request without answering.
        try await Self.withWebhook(statuses: [0], timeout: .milliseconds(300)) { server, sink in
            do {
                try await sink.deliver(message)
                Issue.record("a receiver that never answers must time out")
            } catch {
                guard case .retryable? = error as? OutboxSinkError else { Issue.record("expected retryable, got \(error)"); return }
            }
            #expect(server.requests.count == 1)
        }
        let closed = try await TestHTTPServer.start(statuses: [])
        let port = closed.port
        try await closed.stop()
        let sink = try WebhookSink(url: "http://127.0.0.1:\(port)/notices", timeout: .seconds(5))
        do {
            try await sink.deliver(message)
            Issue.record("a refused connection must fail")
        } catch {
            if case .retryable = error {} else { Issue.record("expected retryable, got \(error)") }
        }
        try await sink.shutdown()
    }

    /// A sink whose receiver answers with the id of what it created.
    struct ResultSink: OutboxSink {
        func deliver(_ message: OutboxMessage) async throws(OutboxSinkError) {}
        func deliverForResult(_ message: OutboxMessage) async throws(OutboxSinkError) -> String { "created-for-\(message.id)" }
    }

    @Test("what a sink returns from deliverForResult is kept with the delivery; a sink with only deliver keeps nothing",
          .timeLimit(.minutes(1)))
    func resultKept() async throws {
        let directory = try makeTemporaryDirectory()
        let database = try await Self.open(directory)
        defer { Task { await database.close() } }
        let clock = Clock()
        try await Self.enqueue(database, ids: ["a"], nowMs: clock.now)
        #expect(try await database.read { db in try Outbox.delivery(db, id: "a") }?.result == "", "nothing before delivery")
        #expect(await OutboxDispatcher(database: database, topics: ["t"], sink: ResultSink(), nowMs: { clock.now },
                                       logger: Self.logger()).dispatchDue() == 1)
        #expect(try await database.read { db in try Outbox.delivery(db, id: "a") }?.result == "created-for-a")
        try await Self.enqueue(database, ids: ["b"], nowMs: clock.now)
        #expect(await OutboxDispatcher(database: database, topics: ["t"], sink: FlakySink(failures: 0), nowMs: { clock.now },
                                       logger: Self.logger()).dispatchDue() == 1)
        let plain = try await database.read { db in try Outbox.delivery(db, id: "b") }
        #expect(plain?.status == .delivered && plain?.result == "")
    }

    /// A sink that reports each delivered id on a stream.
    struct StreamSink: OutboxSink {
        let continuation: AsyncStream<String>.Continuation
        func deliver(_ message: OutboxMessage) async throws(OutboxSinkError) {
            continuation.yield(message.id)
        }
    }

    @Test("run(): a wake-up delivers at once although the poll interval is an hour; graceful shutdown ends the run", .timeLimit(.minutes(1)))
    func runLoopWakeAndGracefulShutdown() async throws {
        let directory = try makeTemporaryDirectory()
        let database = try await Self.open(directory)
        defer { Task { await database.close() } }
        let clock = Clock()
        let (deliveries, continuation) = AsyncStream<String>.makeStream()
        let dispatcher = OutboxDispatcher(database: database, topics: ["t"], sink: StreamSink(continuation: continuation),
                                          pollInterval: .seconds(3_600), nowMs: { clock.now }, logger: Self.logger())
        try await Self.enqueue(database, ids: ["first"], nowMs: clock.now)
        let group = ServiceGroup(services: [dispatcher], logger: Self.logger())
        let running = Task { try await group.run() }
        var iterator = deliveries.makeAsyncIterator()
        #expect(await iterator.next() == "first", "a pass runs at start")
        // Written after the first pass read its batch: only a wake-up can deliver it within
        // the hour.
        try await Self.enqueue(database, ids: ["second"], nowMs: clock.now)
        dispatcher.wake()
        #expect(await iterator.next() == "second")
        await group.triggerGracefulShutdown()
        try await running.value
        let counts = try await database.read { db in try Outbox.counts(db) }
        #expect(counts.delivered == 2 && counts.pending == 0)
    }

    @Test("run(): cancelling its task ends the run promptly, also while it waits", .timeLimit(.minutes(1)))
    func runLoopCancellation() async throws {
        let directory = try makeTemporaryDirectory()
        let database = try await Self.open(directory)
        defer { Task { await database.close() } }
        let clock = Clock()
        let (deliveries, continuation) = AsyncStream<String>.makeStream()
        let dispatcher = OutboxDispatcher(database: database, topics: ["t"], sink: StreamSink(continuation: continuation),
                                          pollInterval: .seconds(3_600), nowMs: { clock.now }, logger: Self.logger())
        try await Self.enqueue(database, ids: ["only"], nowMs: clock.now)
        let running = Task { try await dispatcher.run() }
        var iterator = deliveries.makeAsyncIterator()
        #expect(await iterator.next() == "only")
        running.cancel()
        try await running.value
    }

    @Test("the backoff doubles from the initial wait up to the cap; jitter stays within its fraction")
    func backoff() {
        let exact = OutboxRetryPolicy(initialBackoffMs: 1_000, maxBackoffMs: 300_000, jitter: 0)
        #expect((1...11).map { exact.backoffMs(afterAttempts: $0) }
            == [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000, 300_000])
        #expect(exact.backoffMs(afterAttempts: 0) == 1_000)
        #expect(exact.backoffMs(afterAttempts: 10_000) == 300_000)
        let jittered = OutboxRetryPolicy()
        for attempts in 1...30 {
            let base = Double(min(300_000, 1_000 << min(attempts - 1, 30)))
            let wait = Double(jittered.backoffMs(afterAttempts: attempts))
            #expect(wait >= (base * 0.8).rounded(.down) && wait <= (base * 1.2).rounded(.up))
        }
    }
}
