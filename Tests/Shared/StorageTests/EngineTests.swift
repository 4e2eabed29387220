import Foundation
import Logging
import Models
import RPCWire
import ServiceTestSupport
import Storage
import Synchronization
import TestSupport
import Testing

/// What the stores rely on, on each engine this run has: SQLite always, PostgreSQL on
/// PostgreSQL runs (``TestDatabase``). The same SQL text, the same answers.
@Suite("One storage interface, both engines")
struct EngineTests {
    static var migrations: SQLDatabase.Migrations {
        var migrations = SQLDatabase.Migrations()
        migrations.add("values-v1", sql: """
            CREATE TABLE items (
                id TEXT PRIMARY KEY NOT NULL,
                n INTEGER NOT NULL,
                x REAL,
                flag INTEGER NOT NULL DEFAULT 0,
                note TEXT,
                bytes BLOB
            ) WITHOUT ROWID;
            CREATE TABLE counters (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
            CREATE TABLE log (id INTEGER PRIMARY KEY AUTOINCREMENT, line TEXT NOT NULL)
            """)
        // The racing request-id bodies count their own lines: with an index, PostgreSQL's
        // serializable checks lock what they read, not the whole table (a sequential scan
        // made every racer conflict with every other, and under load one ran out of retries).
        migrations.add("values-v2-log-line", sql: "CREATE INDEX log_line ON log (line)")
        return migrations
    }

    static func open() async throws -> SQLDatabase {
        try await TestDatabase.open(file: "engine.sqlite", in: try makeTemporaryDirectory(), migrations: migrations,
                                    logger: StorageTests.logger)
    }

    @Test("values round-trip: 64-bit integers, reals, text with quotes and question marks, bytes with zeros, NULL, booleans")
    func values() async throws {
        let database = try await Self.open()
        let bytes = Data([0, 1, 2, 0, 255])
        let changed = try await database.write { db in
            try db.execute(sql: "INSERT INTO items (id, n, x, flag, note, bytes) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: ["a", Int64.max, 2.5, true, "it's ? and '?'", bytes])
            + db.execute(sql: "INSERT INTO items (id, n, x, note, bytes) VALUES (?, ?, ?, ?, ?)",
                         arguments: ["b", Int64.min, nil as Double?, nil as String?, nil as Data?])
        }
        #expect(changed == 2, "execute counts the rows it changed")
        let rows = try await database.read { db in try db.fetchAll(sql: "SELECT id, n, x, flag, note, bytes FROM items ORDER BY id") }
        #expect(rows.count == 2)
        #expect(rows[0]["n"] as Int64 == .max)
        #expect(rows[0]["x"] as Double == 2.5)
        #expect(rows[0]["flag"] as Bool)
        #expect(rows[0]["note"] as String == "it's ? and '?'")
        #expect(rows[0]["bytes"] as Data == bytes)
        #expect(rows[1]["n"] as Int64 == .min)
        #expect(rows[1]["x"] as Double? == nil)
        #expect(rows[1]["note"] as String? == nil)
        #expect(rows[1]["bytes"] as Data? == nil)
        #expect(!(rows[1]["flag"] as Bool))
        let exists = try await database.readPoint { db in
            try db.fetchValue(Bool.self, sql: "SELECT EXISTS (SELECT 1 FROM items WHERE note = ?)", arguments: ["it's ? and '?'"])
        }
        #expect(exists == true)
        let sum = try await database.read { db in
            try db.fetchValue(Int64.self, sql: "SELECT COALESCE(SUM(flag * 3), 0) FROM items")
        }
        #expect(sum == 3, "SUM of integers reads as an integer on both engines")
        let nothing = try await database.readPoint { db in try db.fetchOne(sql: "SELECT id FROM items WHERE id = ?", arguments: ["zz"]) }
        #expect(nothing == nil)
        // An upsert, and an identity column numbered in insertion order.
        let upserted = try await database.write { db -> [String] in
            for line in ["first", "second", "third"] { try db.execute(sql: "INSERT INTO log (line) VALUES (?)", arguments: [line]) }
            try db.execute(sql: """
                INSERT INTO counters (name, value) VALUES (?, ?)
                ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value
                """, arguments: ["c", 5])
            try db.execute(sql: """
                INSERT INTO counters (name, value) VALUES (?, ?)
                ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value
                """, arguments: ["c", 7])
            return try db.fetchValues(String.self, sql: "SELECT line FROM log ORDER BY id")
        }
        #expect(upserted == ["first", "second", "third"])
        #expect(try await database.read { db in try db.fetchValue(Int.self, sql: "SELECT value FROM counters WHERE name = 'c'") } == 12)
        await database.close()
    }

    @Test("scan hands rows over in batches, in order, and stops when told")
    func scan() async throws {
        let database = try await Self.open()
        try await database.write { db in
            for n in 0..<25 { try db.execute(sql: "INSERT INTO items (id, n) VALUES (?, ?)", arguments: [String(format: "i%02d", n), n]) }
        }
        let seen = try await database.read { db -> [Int] in
            var seen: [Int] = []
            try db.scan(sql: "SELECT n FROM items WHERE n % 2 = ? ORDER BY id", arguments: [0], batchSize: 4) { row in
                seen.append(row["n"])
                return seen.count < 9
            }
            return seen
        }
        #expect(seen == [0, 2, 4, 6, 8, 10, 12, 14, 16])
        await database.close()
    }

    @Test("deferred steps run last, in order, inside the transaction; a savepoint that fails drops its writes and steps; effects run only after a commit")
    func finalStepsAndSavepoints() async throws {
        let database = try await Self.open()
        let effects = Mutex<[String]>([])
        struct Refused: Error {}
        @Sendable func lines(_ db: SQLSession) throws -> [String] {
            try db.fetchValues(String.self, sql: "SELECT line FROM log ORDER BY id")
        }
        try await database.write { db in
            db.beforeCommit { db in
                try db.execute(sql: "INSERT INTO log (line) VALUES ('last-1')")
                // A step may defer another; it runs after the ones already deferred.
                db.beforeCommit { db in try db.execute(sql: "INSERT INTO log (line) VALUES ('last-3')") }
            }
            db.beforeCommit { db in try db.execute(sql: "INSERT INTO log (line) VALUES ('last-2')") }
            db.afterCommit { effects.withLock { $0.append("committed") } }
            #expect(db.firstTime("k") && !db.firstTime("k"))
            let kept = try db.savepoint { () -> Int in
                try db.execute(sql: "INSERT INTO log (line) VALUES ('kept')")
                return 7
            }
            #expect(kept == 7)
            #expect(throws: Refused.self) {
                try db.savepoint {
                    try db.execute(sql: "INSERT INTO log (line) VALUES ('undone')")
                    db.beforeCommit { db in try db.execute(sql: "INSERT INTO log (line) VALUES ('undone-step')") }
                    db.afterCommit { effects.withLock { $0.append("undone-effect") } }
                    throw Refused()
                }
            }
            try db.execute(sql: "INSERT INTO log (line) VALUES ('body-end')")
            // Not yet: the steps come after the body.
            #expect(try lines(db) == ["kept", "body-end"])
        }
        #expect(try await database.read { db in try lines(db) } == ["kept", "body-end", "last-1", "last-2", "last-3"])
        #expect(effects.withLock { $0 } == ["committed"])

        // A step that throws rolls everything back, and no effect runs.
        await #expect(throws: Refused.self) {
            try await database.write { db in
                try db.execute(sql: "INSERT INTO log (line) VALUES ('rolled-back')")
                db.beforeCommit { _ in throw Refused() }
                db.afterCommit { effects.withLock { $0.append("after-rollback") } }
            }
        }
        #expect(try await database.read { db in try lines(db) }.count == 5)
        #expect(effects.withLock { $0 } == ["committed"])
        await database.close()
    }

    @Test("concurrent writers never lose an update: 8 tasks × 25 read-modify-write increments of one counter",
          .timeLimit(.minutes(3)))
    func serializableWrites() async throws {
        let database = try await Self.open()
        try await database.write { db in try db.execute(sql: "INSERT INTO counters (name, value) VALUES ('hits', 0)") }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var done = 0
                    while done < 25 {
                        do {
                            try await database.write { db in
                                let value = try db.fetchValue(Int.self, sql: "SELECT value FROM counters WHERE name = 'hits'") ?? 0
                                try db.execute(sql: "UPDATE counters SET value = ? WHERE name = 'hits'", arguments: [value + 1])
                            }
                            done += 1
                        } catch let error as StorageError where error.reason == .busy {
                            // Contention outlasted the engine's retries (PostgreSQL's 10 s budget,
                            // seen on a loaded 2-core CI machine): the write did not happen, and the
                            // caller's part is to try again, as a service's client does.
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        // Each of the 200 increments that succeeded is there: none lost, none doubled.
        #expect(try await database.read { db in try db.fetchValue(Int.self, sql: "SELECT value FROM counters WHERE name = 'hits'") } == 200)
        await database.close()
    }

    @Test("request ids under concurrency: 8 first tries of one id act once and all get its response, also when the losers' bodies refuse; 8 × 20 new ids each act once")
    func idempotencyRaces() async throws {
        let database = try await Self.open()
        let act: @Sendable (String) -> @Sendable (SQLSession) throws -> TestingV1.Leaf = { id in
            { db in
                try db.execute(sql: "INSERT INTO log (line) VALUES (?)", arguments: [id])
                let n = try db.fetchValue(Int.self, sql: "SELECT COUNT(*) FROM log WHERE line = ?", arguments: [id]) ?? 0
                return TestingV1.Leaf(label: "\(id) #\(n)")
            }
        }
        let key: @Sendable (String) throws -> Idempotency.Key = { id in
            try Idempotency.Key(method: "/x/Race", requestID: id, request: TestingV1.FailRequest(code: 1, message: id), caller: "platform|race")
        }
        let same = try await withThrowingTaskGroup(of: TestingV1.Leaf.self) { group in
            for _ in 0..<8 {
                group.addTask { try await Idempotency.perform(in: database, key: try key("shared"), nowMs: 1, act("shared")) }
            }
            return try await group.reduce(into: [TestingV1.Leaf]()) { $0.append($1) }
        }
        #expect(Set(same.map(\.label)) == ["shared #1"])
        // First tries whose body refuses once the winner's work is visible (a unique thing
        // already made, as CreateDebtor refuses a taken external id): still the winner's answer.
        let claim: @Sendable (SQLSession) throws -> TestingV1.Leaf = { db in
            if try db.fetchValue(Int.self, sql: "SELECT COUNT(*) FROM items WHERE id = 'claimed'") ?? 0 > 0 {
                throw RPCError(code: .alreadyExists, message: "already claimed")
            }
            try db.execute(sql: "INSERT INTO items (id, n) VALUES ('claimed', 1)")
            return TestingV1.Leaf(label: "claimed")
        }
        let claims = try await withThrowingTaskGroup(of: TestingV1.Leaf.self) { group in
            for _ in 0..<8 {
                group.addTask { try await Idempotency.perform(in: database, key: try key("claim"), nowMs: 1, claim) }
            }
            return try await group.reduce(into: [TestingV1.Leaf]()) { $0.append($1) }
        }
        #expect(claims.map(\.label) == Array(repeating: "claimed", count: 8))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for index in 0..<20 {
                        let id = "t\(task)-\(index)"
                        let answer = try await Idempotency.perform(in: database, key: try key(id), nowMs: 1, act(id))
                        #expect(answer.label == "\(id) #1")
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await database.read { db in try db.fetchValue(Int.self, sql: "SELECT COUNT(*) FROM log") } == 161)
        // A different request under a raced id is still refused.
        await #expect(throws: RPCError.self) {
            _ = try await Idempotency.perform(in: database, key: try Idempotency.Key(
                method: "/x/Race", requestID: "shared", request: TestingV1.FailRequest(code: 2, message: "other"), caller: "platform|race"),
                nowMs: 2, act("shared"))
        }
        await database.close()
    }

    @Test("a job lease is held by one holder until it runs out, then taken over; its holder renews it")
    func jobLease() async throws {
        let database = try await Self.open()
        func take(_ holder: String, now: Int64, until: Int64) async throws -> Bool {
            try await database.write { db in try JobLease.acquire(db, name: "sweep", holder: holder, nowMs: now, untilMs: until) }
        }
        #expect(try await take("a", now: 1_000, until: 61_000))
        #expect(try await !take("b", now: 30_000, until: 90_000), "held by a")
        #expect(try await take("a", now: 60_000, until: 120_000), "a renews")
        #expect(try await !take("b", now: 119_999, until: 180_000))
        #expect(try await take("b", now: 120_000, until: 180_000), "run out: b takes over")
        let holder = try await database.read { db in try JobLease.holder(db, name: "sweep") }
        #expect(holder?.holder == "b" && holder?.untilMs == 180_000)
        // Many replicas at once: exactly one wins.
        let winners = try await withThrowingTaskGroup(of: Bool.self) { group in
            for replica in 0..<6 { group.addTask { try await take("r\(replica)", now: 500_000, until: 560_000) } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(winners == 1)
        await database.close()
    }

    @Test("a body's own error rolls back and passes through unchanged; an engine error is a StorageError (INTERNAL, no detail)")
    func errors() async throws {
        let database = try await Self.open()
        let refusal = RPCError.failedPrecondition("a rule said no")
        await #expect(throws: refusal) {
            try await database.write { db in
                try db.execute(sql: "INSERT INTO items (id, n) VALUES ('half', 1)")
                throw refusal
            }
        }
        #expect(try await database.read { db in try db.fetchValue(Int.self, sql: "SELECT COUNT(*) FROM items") } == 0)
        let failure = await #expect(throws: StorageError.self) {
            try await database.write { db in try db.execute(sql: "INSERT INTO no_such_table (id) VALUES (1)") }
        }
        #expect(failure?.reason == .failed)
        #expect(failure?.rpcError == RPCError.internal("internal error"))
        let duplicate = await #expect(throws: StorageError.self) {
            try await database.write { db in
                try db.execute(sql: "INSERT INTO items (id, n) VALUES ('d', 1)")
                try db.execute(sql: "INSERT INTO items (id, n) VALUES ('d', 2)")
            }
        }
        #expect(duplicate?.reason == .failed)
        #expect(await database.isAvailable())
        await database.close()
    }
}

/// The dialect's translations, as pure functions.
@Suite("SQLDialect")
struct SQLDialectTests {
    @Test("placeholders are numbered outside quotes and comments")
    func placeholders() {
        #expect(SQLDialect.postgresText("SELECT a FROM t WHERE b = ? AND c IN (?, ?)") == "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)")
        #expect(SQLDialect.postgresText("SELECT '?', \"a?\" FROM t WHERE x = ? -- why?\nAND y = ?")
                == "SELECT '?', \"a?\" FROM t WHERE x = $1 -- why?\nAND y = $2")
        #expect(SQLDialect.postgresText("SELECT 'it''s ?' WHERE z = ?") == "SELECT 'it''s ?' WHERE z = $1")
    }

    @Test("schemas: 64-bit integers, identities, doubles, bytea; WITHOUT ROWID dropped; SQLite unchanged")
    func schema() {
        let sql = "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER NOT NULL, x REAL, b BLOB) WITHOUT ROWID"
        #expect(SQLDialect.sqlite.schema(sql) == sql)
        #expect(SQLDialect.postgres.schema(sql)
                == "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT NOT NULL, x DOUBLE PRECISION, b BYTEA)")
        #expect(SQLDialect.postgres.skipLocked == " FOR UPDATE SKIP LOCKED" && SQLDialect.sqlite.skipLocked == "")
    }

    @Test("database URLs: parsed, defaults, options, and one clear line for each mistake; passwords never echoed")
    func urls() throws {
        let settings = try PostgresSettings(url: "postgres://doorstep:s%40cret@db.internal:6432/accounts?sslmode=require&schema=svc")
        #expect(settings.host == "db.internal" && settings.port == 6432 && settings.username == "doorstep")
        #expect(settings.password == "s@cret" && settings.database == "accounts" && settings.schema == "svc" && settings.tls == .require)
        #expect(settings.redactedURL == "postgres://doorstep@db.internal:6432/accounts?sslmode=require&schema=svc")
        let plain = try PostgresSettings(url: "postgresql://u@[::1]/d")
        #expect(plain.host == "::1" && plain.port == 5432 && plain.tls == .disable && plain.schema == nil)
        for (url, problem) in [
            ("mysql://u@h/d", "not a postgres:// URL (postgres://user[:password]@host[:port]/database)"),
            ("postgres://u@h", "the URL names no database (…/database)"),
            ("postgres://h/d", "the URL names no user (postgres://user@host/database)"),
            ("postgres://u:pw@h/d?sslmode=verify-full", "sslmode 'verify-full' is not disable or require"),
            ("postgres://u:pw@h/d?schema=Bad-Name", "schema 'Bad-Name' is not a lower-case identifier"),
            ("postgres://u:pw@h/d?pool=3", "unknown option 'pool' (sslmode, schema)"),
        ] {
            let error = #expect(throws: StorageOpenError.self) { _ = try PostgresSettings(url: url) }
            #expect(error?.problem == problem, "\(url)")
            #expect(error?.description.contains("pw") == false, "the password is not echoed: \(error?.description ?? "")")
        }
    }
}
