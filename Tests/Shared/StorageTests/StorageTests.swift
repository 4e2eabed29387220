import Foundation
import GRDB
import Logging
import Models
import RPCWire
import Storage
import TestSupport
import Testing

@Suite("SQLite storage on real files")
struct StorageTests {
    static let logger: Logger = {
        var logger = Logger(label: "doorstep.test.storage")
        logger.logLevel = .critical
        return logger
    }()

    static var migrations: SQLDatabase.Migrations {
        var migrations = SQLDatabase.Migrations()
        migrations.add("things-v1", sql: "CREATE TABLE things (id TEXT PRIMARY KEY NOT NULL, n INTEGER NOT NULL)")
        return migrations
    }

    static func open(_ path: String, configuration: SQLiteEngine.Configuration = .defaults,
                     migrations: SQLDatabase.Migrations = migrations) throws -> SQLDatabase {
        try SQLDatabase(path: path, migrations: migrations, configuration: configuration, logger: logger)
    }

    static func request(_ id: String, _ text: String) -> TestingV1.FailRequest {
        TestingV1.FailRequest(code: 1, message: text + " " + id)
    }

    static func count(_ database: SQLDatabase) async throws -> Int {
        try await database.read { db in try db.fetchValue(Int.self, sql: "SELECT COUNT(*) FROM things") ?? 0 }
    }

    @Test("a retried request id returns the first response and acts once; a different request is INVALID_ARGUMENT")
    func idempotency() async throws {
        let database = try Self.open(temporaryPath("idem.sqlite"))
        defer { Task { await database.close() } }
        let key = try Idempotency.Key(method: "/x/Make", requestID: "r-1", request: Self.request("r-1", "a"), caller: "platform|alice")
        let make: @Sendable (SQLSession) throws -> TestingV1.Leaf = { db in
            let n = (try db.fetchValue(Int.self, sql: "SELECT COUNT(*) FROM things") ?? 0) + 1
            try db.execute(sql: "INSERT INTO things (id, n) VALUES (?, ?)", arguments: ["t\(n)", n])
            return TestingV1.Leaf(label: "made \(n)")
        }
        let first = try await Idempotency.perform(in: database, key: key, nowMs: 1_000, make)
        let second = try await Idempotency.perform(in: database, key: key, nowMs: 2_000, make)
        #expect(first.label == "made 1")
        #expect(second == first)
        #expect(try await Self.count(database) == 1)

        let changed = try Idempotency.Key(method: "/x/Make", requestID: "r-1", request: Self.request("r-1", "b"), caller: "platform|alice")
        await #expect(throws: RPCError.invalidArgument("request_id", "already used for a different request; use a new request_id")) {
            _ = try await Idempotency.perform(in: database, key: changed, nowMs: 3_000, make)
        }
        let otherCaller = try Idempotency.Key(method: "/x/Make", requestID: "r-1", request: Self.request("r-1", "a"), caller: "platform|bob")
        await #expect(throws: RPCError.self) { _ = try await Idempotency.perform(in: database, key: otherCaller, nowMs: 3_000, make) }
        // Ids are scoped to the method.
        let otherMethod = try Idempotency.Key(method: "/x/Other", requestID: "r-1", request: Self.request("r-1", "a"), caller: "platform|alice")
        #expect(try await Idempotency.perform(in: database, key: otherMethod, nowMs: 3_000, make).label == "made 2")
    }

    @Test("a failed request leaves nothing behind, so its retry is processed afresh")
    func failureRollsBack() async throws {
        let database = try Self.open(temporaryPath("rollback.sqlite"))
        defer { Task { await database.close() } }
        let key = try Idempotency.Key(method: "/x/Make", requestID: "r-2", request: Self.request("r-2", "a"), caller: "-")
        await #expect(throws: RPCError.notFound("nope")) {
            _ = try await Idempotency.perform(in: database, key: key, nowMs: 1) { db -> TestingV1.Leaf in
                try db.execute(sql: "INSERT INTO things (id, n) VALUES ('half', 1)")
                throw RPCError.notFound("nope")
            }
        }
        #expect(try await Self.count(database) == 0)
        let retried = try await Idempotency.perform(in: database, key: key, nowMs: 2) { db in
            try db.execute(sql: "INSERT INTO things (id, n) VALUES ('whole', 1)")
            return TestingV1.Leaf(label: "ok")
        }
        #expect(retried.label == "ok")
        #expect(try await Self.count(database) == 1)
    }

    @Test("remembered responses are purged after the retention period, not before")
    func purge() async throws {
        let database = try Self.open(temporaryPath("purge.sqlite"))
        defer { Task { await database.close() } }
        for (index, at) in [1_000, 5_000].enumerated() {
            let key = try Idempotency.Key(method: "/x/P", requestID: "p-\(index)", request: Self.request("p", "\(index)"), caller: "-")
            _ = try await Idempotency.perform(in: database, key: key, nowMs: Int64(at)) { _ in TestingV1.Leaf() }
        }
        // Ages at 10 000: 9 000 and 5 000. Exactly the retention period old is kept.
        #expect(try await Idempotency.purge(in: database, nowMs: 10_000, retentionMs: 9_000) == 0)
        #expect(try await Idempotency.purge(in: database, nowMs: 10_000, retentionMs: 8_999) == 1)
        #expect(try await Idempotency.purge(in: database, nowMs: 10_000, retentionMs: 5_000) == 0)
        #expect(try await Idempotency.purge(in: database, nowMs: 10_000, retentionMs: 4_999) == 1)
    }

    /// The status a client would see for what a storage call threw (the conversion at the edge).
    static func status(_ body: () async throws -> Void) async -> RPCError? {
        do {
            try await body()
            return nil
        } catch {
            return RPCError(from: error)
        }
    }

    @Test("a database error is a StorageError that reaches the client as INTERNAL without details; a held lock as UNAVAILABLE; the body's own errors pass through")
    func errorMapping() async throws {
        let path = temporaryPath("errors.sqlite")
        var configuration = SQLiteEngine.Configuration()
        configuration.busyTimeout = 0.2
        let database = try Self.open(path, configuration: configuration)
        defer { Task { await database.close() } }
        let failed = await #expect(throws: StorageError.self) {
            _ = try await database.write { db in try db.execute(sql: "INSERT INTO no_such_table VALUES (1)") }
        }
        #expect(failed?.reason == .failed && failed?.detail.contains("no_such_table") == true)
        #expect(failed?.rpcError == RPCError.internal("internal error"))
        #expect(await Self.status { _ = try await database.readPoint { db in try db.fetchValue(Int.self, sql: "SELECT n FROM no_such_table") } }
                == RPCError.internal("internal error"))
        let refusal = RPCError.failedPrecondition("a rule said no")
        #expect(await Self.status { try await database.write { _ in throw refusal } } == refusal, "a rule's refusal passes through")
        #expect(try await database.readPoint { db in try db.fetchValue(Int.self, sql: "SELECT 41 + 1") } == 42)
        // Another process-like connection holds the write lock.
        var unsafe = GRDB.Configuration()
        unsafe.allowsUnsafeTransactions = true
        let other = try DatabaseQueue(path: path, configuration: unsafe)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            Thread.detachNewThread {
                do {
                    try other.inDatabase { db in try db.execute(sql: "BEGIN IMMEDIATE") }
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
        #expect(await Self.status { _ = try await database.write { db in try db.execute(sql: "INSERT INTO things (id, n) VALUES ('x', 1)") } }
                == RPCError.unavailable("storage is busy; retry with the same request_id"))
        try other.inDatabase { db in try db.execute(sql: "ROLLBACK") }
        try await database.write { db in try db.execute(sql: "INSERT INTO things (id, n) VALUES ('x', 1)") }
        #expect(try await Self.count(database) == 1)
    }

    @Test("migrations run once; a later one is applied to an existing file; the file is WAL")
    func migrations() async throws {
        let path = temporaryPath("migrate.sqlite")
        var database = try Self.open(path)
        try await database.write { db in try db.execute(sql: "INSERT INTO things (id, n) VALUES ('kept', 7)") }
        await database.close()
        var later = Self.migrations
        later.add("things-v2", sql: "ALTER TABLE things ADD COLUMN note TEXT NOT NULL DEFAULT ''")
        let reopened = try Self.open(path, migrations: later)
        database = reopened
        defer { Task { await reopened.close() } }
        let (n, note, mode) = try await database.read { db in
            (try db.fetchValue(Int.self, sql: "SELECT n FROM things WHERE id = 'kept'"),
             try db.fetchValue(String.self, sql: "SELECT note FROM things WHERE id = 'kept'"),
             try db.fetchValue(String.self, sql: "PRAGMA journal_mode"))
        }
        #expect(n == 7)
        #expect(note == "")
        #expect(mode == "wal")
        #expect(throws: StorageOpenError.self) { _ = try Self.open("/proc/no-such-dir/x.sqlite") }
    }

    @Test("sealed values open only with the same key and context; key files are 0600 and reload")
    func dataCipher() throws {
        let path = temporaryPath("data.key")
        let (key, created) = try DataCipher.loadKey(path: path, create: true)
        #expect(created)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let (reloaded, createdAgain) = try DataCipher.loadKey(path: path, create: true)
        #expect(!createdAgain)
        let cipher = DataCipher(key: key)
        let sealed = try cipher.seal(Array("110105194912310021".utf8), context: "dbt_1")
        #expect(try DataCipher(key: reloaded).open(sealed, context: "dbt_1") == Array("110105194912310021".utf8))
        #expect(throws: (any Error).self) { _ = try cipher.open(sealed, context: "dbt_2") }
        var tampered = sealed
        tampered[tampered.count / 2] ^= 1
        #expect(throws: (any Error).self) { _ = try cipher.open(tampered, context: "dbt_1") }
        let (otherKey, _) = try DataCipher.loadKey(path: temporaryPath("other.key"), create: true)
        #expect(throws: (any Error).self) { _ = try DataCipher(key: otherKey).open(sealed, context: "dbt_1") }
        #expect(throws: KeyFileProblem.self) { _ = try DataCipher.loadKey(path: temporaryPath("absent.key"), create: false) }
        let garbage = temporaryPath("garbage.key")
        _ = FileManager.default.createFile(atPath: garbage, contents: Data("not a key".utf8))
        let problem = #expect(throws: KeyFileProblem.self) { _ = try DataCipher.loadKey(path: garbage, create: false) }
        #expect(problem?.description == "data key file \(garbage) does not hold a base64 32-byte key")
    }
}
