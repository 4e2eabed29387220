import Dispatch
import Foundation
import GRDB
import RPCWire
import ServiceTestSupport
@testable import Storage
import Synchronization
import TestSupport
import Testing

/// Point reads (`SQLDatabase.readPoint`): no transaction around their statements, on SQLite
/// on connections of their own (`SQLitePointReaders`), rows read in place
/// (`SQLSession.readFirstRow`). All but the last two run on each engine this run has.
@Suite("Point reads")
struct PointReadTests {
    static var migrations: SQLDatabase.Migrations {
        var migrations = SQLDatabase.Migrations()
        migrations.add("records-v1", sql: """
            CREATE TABLE records (id TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL, label TEXT NOT NULL, body BLOB NOT NULL)
            """)
        return migrations
    }

    static func open() async throws -> SQLDatabase {
        try await TestDatabase.open(file: "points.sqlite", in: try makeTemporaryDirectory(), migrations: migrations,
                                    logger: StorageTests.logger)
    }

    static func openSQLite(_ configure: (inout SQLiteEngine.Configuration) -> Void = { _ in }) throws -> (SQLDatabase, SQLiteEngine, String) {
        var configuration = SQLiteEngine.Configuration()
        configure(&configuration)
        let path = try makeTemporaryDirectory().appendingPathComponent("points.sqlite").path
        let database = try SQLDatabase(path: path, migrations: migrations, configuration: configuration, logger: StorageTests.logger)
        return (database, database.engine as! SQLiteEngine, path)
    }

    /// A body that says which version wrote it: 8 bytes of the version (little-endian), then
    /// `size - 8` bytes of its low byte. A row whose body and version disagree is torn.
    static func body(version: Int64, size: Int = 2048) -> Data {
        var bytes = withUnsafeBytes(of: version.littleEndian) { Array($0) }
        bytes += [UInt8](repeating: UInt8(truncatingIfNeeded: version), count: size - 8)
        return Data(bytes)
    }

    static func version(of body: UnsafeRawBufferPointer) -> Int64? {
        guard body.count == 2048 else { return nil }
        let version = Int64(littleEndian: body.loadUnaligned(as: Int64.self))
        let low = UInt8(truncatingIfNeeded: version)
        return body[8...].allSatisfy { $0 == low } ? version : nil
    }

    static func write(_ database: SQLDatabase, id: String, version: Int64) async throws {
        try await database.write { db in
            try db.execute(sql: """
                INSERT INTO records (id, version, label, body) VALUES (?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET version = excluded.version, label = excluded.label, body = excluded.body
                """, arguments: [id, version, "v\(version)", body(version: version)])
        }
    }

    @Test("readFirstRow lends the first row in place: bytes with zeros as stored, integers, text; nil when there is no row")
    func readFirstRow() async throws {
        let database = try await Self.open()
        let stored = Data([0, 7, 0, 0, 255, 0])
        try await database.write { db in
            try db.execute(sql: "INSERT INTO records (id, version, label, body) VALUES (?, ?, ?, ?)",
                           arguments: ["r1", Int64.max, "it's ?", stored])
        }
        let read: @Sendable (SQLSession) throws -> (Data, Int64, String, Int)? = { db in
            try db.readFirstRow(sql: "SELECT body, version, label FROM records WHERE id = ?", arguments: ["r1"]) { row in
                (try row.withBytes(0) { Data($0) }, row[1], row[2], row.count)
            }
        }
        for (name, found) in [("readPoint", try await database.readPoint(read)), ("read", try await database.read(read)),
                              ("write", try await database.write(read))] {
            let (bytes, version, label, count) = try #require(found, "\(name)")
            #expect(bytes == stored, "\(name)")
            #expect(version == .max, "\(name)")
            #expect(label == "it's ?", "\(name)")
            #expect(count == 3, "\(name)")
        }
        let missing = try await database.readPoint { db in
            try db.readFirstRow(sql: "SELECT version FROM records WHERE id = ?", arguments: ["nope"]) { row -> Int64 in row[0] }
        }
        #expect(missing == nil)
        await database.close()
    }

    @Test("readFirstRow binds every kind of argument: text with quotes, question marks and CJK, empty text, 64-bit integers, reals, bytes, empty bytes, NULL")
    func arguments() async throws {
        let database = try await Self.open()
        let text = "it's ? and '?' — 中文"
        let bytes = Data([0, 1, 0, 2])
        let cases: [(String, any SQLValueConvertible)] = [
            ("text", text), ("empty text", ""), ("max", Int64.max), ("min", Int64.min), ("real", -2.5), ("bytes", bytes),
            ("empty bytes", Data()),
        ]
        try await database.write { db in
            try db.execute(sql: "INSERT INTO records (id, version, label, body) VALUES ('r', 3, ?, ?)", arguments: [text, bytes])
        }
        for (name, value) in cases {
            // The argument, bound twice, compared with itself and read back: both only when it was bound as given.
            let (same, back) = try #require(try await database.readPoint { db in
                try db.readFirstRow(sql: "SELECT CASE WHEN ? = ? THEN 1 ELSE 0 END, ?", arguments: SQLArguments([value, value, value])) { row in
                    (row[0] as Int, row[1] as SQLValueBox)
                }
            }, "\(name)")
            #expect(same == 1, "\(name)")
            #expect(back.value == value.sqlValue, "\(name)")
        }
        let matched = try await database.readPoint { db in
            try db.readFirstRow(sql: "SELECT version FROM records WHERE label = ? AND body = ? AND version > ? AND version < ? AND CAST(? AS INTEGER) IS NULL",
                                arguments: [text, bytes, 2.5, Int64(4), nil as Int64?]) { row -> Int64 in row[0] }
        }
        #expect(matched == 3)
        let tooFew = await #expect(throws: StorageError.self) {
            _ = try await database.readPoint { db in
                try db.readFirstRow(sql: "SELECT version FROM records WHERE id = ? AND label = ?", arguments: ["r"]) { row -> Int64 in row[0] }
            }
        }
        if TestDatabase.dialect == .sqlite { #expect(tooFew?.reason == .failed) }
        await database.close()
    }

    @Test("a point read sees each write as soon as it has committed", .timeLimit(.minutes(2)))
    func seesCommittedWrites() async throws {
        let database = try await Self.open()
        for version in Int64(1)...200 {
            try await Self.write(database, id: "r", version: version)
            let seen = try await database.readPoint { db in
                try db.readFirstRow(sql: "SELECT version, body FROM records WHERE id = ?", arguments: ["r"]) { row -> (Int64, Int64?) in
                    (row[0], try row.withBytes(1) { Self.version(of: $0) })
                }
            }
            #expect(seen?.0 == version && seen?.1 == version, "after commit \(version): \(String(describing: seen))")
        }
        if let engine = database.engine as? SQLiteEngine {
            #expect(engine.openPointReaders >= 1, "the reads ran on point readers, not the pool")
        }
        await database.close()
    }

    @Test("point reads from many tasks while a writer commits never fail, never see a torn row, never go back in time",
          .timeLimit(.minutes(3)))
    func concurrentWithWriter() async throws {
        let database = try await Self.open()
        let ids = (0..<8).map { "r\($0)" }
        for id in ids { try await Self.write(database, id: id, version: 0) }
        let commits: Int64 = 400
        let written = Committed()
        try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask {
                for version in 1...commits {
                    try await Self.write(database, id: ids[Int(version) % ids.count], version: version)
                    written.version.store(version, ordering: .releasing)
                }
                return 0
            }
            for reader in 0..<16 {
                group.addTask {
                    var reads = 0
                    var latest = [String: Int64]()
                    while written.version.load(ordering: .acquiring) < commits || reads < 50 {
                        let id = ids[(reader + reads) % ids.count]
                        let row = try await database.readPoint { db in
                            try db.readFirstRow(sql: "SELECT version, body FROM records WHERE id = ?", arguments: [id]) { row -> (Int64, Int64?) in
                                (row[0], try row.withBytes(1) { Self.version(of: $0) })
                            }
                        }
                        let (version, bodyVersion) = try #require(row, "row \(id) is missing")
                        #expect(bodyVersion == version, "torn row \(id): column version \(version), body \(String(describing: bodyVersion))")
                        #expect(version >= latest[id, default: 0], "row \(id) went back from \(latest[id, default: 0]) to \(version)")
                        latest[id] = version
                        reads += 1
                        if reads % 8 == 0 { await Task.yield() }
                    }
                    return reads
                }
            }
            var total = 0
            for try await reads in group { total += reads }
            #expect(total >= 16 * 50)
        }
        let last = try await database.readPoint { db in
            try db.fetchValue(Int64.self, sql: "SELECT MAX(version) FROM records")
        }
        #expect(last == commits)
        await database.close()
    }

    @Test("at most the configured point readers open; a point read that finds them busy runs on the pool; one running at close ends, then its connection closes; after close a point read is a StorageError",
          .timeLimit(.minutes(1)))
    func readersBusyAndClosed() async throws {
        let (database, engine, _) = try Self.openSQLite { $0.maximumPointReaderCount = 1 }
        try await Self.write(database, id: "r", version: 1)

        // A point read on another thread holds the only point reader until `release`.
        let holding = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let held = HeldRead()
        let heldDone = DispatchSemaphore(value: 0)
        func holdPointReader() {
            Thread.detachNewThread {
                let result = Result { () throws -> Int64? in
                    try engine.readPointHere { db in
                        holding.signal()
                        _ = release.wait(timeout: .now() + .seconds(30))
                        return try db.fetchValue(Int64.self, sql: "SELECT version FROM records WHERE id = 'r'")
                    }
                }
                held.result.withLock { $0 = result }
                heldDone.signal()
            }
            #expect(holding.wait(timeout: .now() + .seconds(10)) == .success)
        }

        holdPointReader()
        #expect(engine.openPointReaders == 1)
        let meanwhile = try await database.readPoint { db in
            (try db.fetchValue(Int64.self, sql: "SELECT version FROM records WHERE id = 'r'"),
             try db.readFirstRow(sql: "SELECT body FROM records WHERE id = ?", arguments: ["r"]) { row in try row.withBytes(0) { Self.version(of: $0) } })
        }
        #expect(meanwhile.0 == 1 && meanwhile.1 == 1, "answered by one of the pool's readers while the point reader is busy")
        #expect(engine.openPointReaders == 1, "no second point reader beyond the configured one")
        release.signal()
        #expect(heldDone.wait(timeout: .now() + .seconds(10)) == .success)
        #expect(try held.result.withLock { try $0?.get() } == 1)

        // Closed while a point read runs: the read ends normally, then its connection closes.
        holdPointReader()
        await database.close()
        release.signal()
        #expect(heldDone.wait(timeout: .now() + .seconds(10)) == .success)
        #expect(try held.result.withLock { try $0?.get() } == 1)
        #expect(engine.openPointReaders == 0)

        let closed = await #expect(throws: StorageError.self) {
            _ = try await database.readPoint { db in try db.fetchValue(Int64.self, sql: "SELECT 1") }
        }
        #expect(closed?.reason == .failed)
        #expect(closed?.rpcError == RPCError.internal("internal error"))
    }

    @Test("a point read held off by a lock past the busy timeout is StorageError.busy (UNAVAILABLE); the point reader serves the next read",
          .timeLimit(.minutes(1)))
    func busyPointRead() async throws {
        let (database, _, path) = try Self.openSQLite { $0.busyTimeout = 0.2 }
        try await Self.write(database, id: "r", version: 1)
        // A second file, locked by another process-like connection with an exclusive
        // (rollback-journal) transaction: a point read that looks into it waits out the busy
        // timeout. (The WAL file of the service itself never locks its readers out.)
        let lockedPath = path + "-locked"
        var unsafe = GRDB.Configuration()
        unsafe.allowsUnsafeTransactions = true
        let other = try DatabaseQueue(path: lockedPath, configuration: unsafe)
        try other.inDatabase { db in
            try db.execute(sql: "CREATE TABLE t (n INTEGER NOT NULL); INSERT INTO t VALUES (7)")
            try db.execute(sql: "BEGIN EXCLUSIVE")
        }
        let busy = await #expect(throws: StorageError.self) {
            _ = try await database.readPoint { db in
                try db.execute(sql: "ATTACH DATABASE ? AS locked", arguments: [lockedPath])
                return try db.fetchValue(Int64.self, sql: "SELECT n FROM locked.t")
            }
        }
        #expect(busy?.reason == .busy)
        #expect(busy?.rpcError == RPCError.unavailable("storage is busy; retry with the same request_id"))
        try other.inDatabase { db in try db.execute(sql: "ROLLBACK") }
        let after = try await database.readPoint { db in
            try db.execute(sql: "ATTACH DATABASE ? AS locked", arguments: [lockedPath])
            let values = (try db.fetchValue(Int64.self, sql: "SELECT n FROM locked.t"),
                          try db.fetchValue(Int64.self, sql: "SELECT version FROM records"))
            try db.execute(sql: "DETACH DATABASE locked")
            return values
        }
        #expect(after.0 == 7 && after.1 == 1)
        try other.close()
        await database.close()
    }
}

/// The last version the writer committed, shared with the readers.
private final class Committed: Sendable {
    let version = Atomic<Int64>(0)
}

/// What a point read on another thread returned.
private final class HeldRead: Sendable {
    let result = Mutex<Result<Int64?, any Error>?>(nil)
}

/// Any column value as it was read (for comparing it with what was bound).
private struct SQLValueBox: SQLValueConvertible {
    let value: SQLValue
    var sqlValue: SQLValue { value }
    static func fromSQL(_ value: SQLValue) -> SQLValueBox? { SQLValueBox(value: value) }
}
