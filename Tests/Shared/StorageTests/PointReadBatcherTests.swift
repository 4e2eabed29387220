import Foundation
import ServiceTestSupport
@testable import Storage
import Synchronization
import TestSupport
import Testing

/// `PointReadBatcher`: point reads coalesced into one statement per batch. Every test forces
/// coalescing, so it runs the batched statement on each engine this run has (PostgreSQL
/// coalesces by itself; SQLite does not).
@Suite("Coalesced point reads")
struct PointReadBatcherTests {
    struct Failed: Error, Equatable { let id: String }

    /// The last version a write was acknowledged for.
    final class Acknowledged: Sendable { let version = Atomic<Int64>(0) }

    /// The version of each id asked for, a row per id as asked, in one statement (as the
    /// accounts store's GetAccount lookup); "bad" is a row that cannot be used.
    static func versions(_ db: SQLSession, _ ids: [String]) throws -> [Result<Int64, any Error>?] {
        let keys = Array(repeating: "(?, ?)", count: ids.count).joined(separator: ", ")
        var arguments: SQLArguments = []
        for (position, id) in ids.enumerated() {
            arguments.append(position)
            arguments.append(id)
        }
        var results = [Result<Int64, any Error>?](repeating: nil, count: ids.count)
        for row in try db.fetchAll(sql: "WITH k(n, id) AS (VALUES \(keys)) SELECT k.n, r.version FROM k JOIN records r ON r.id = k.id",
                                   arguments: arguments) {
            let position: Int = row[0]
            results[position] = ids[position] == "bad" ? .failure(Failed(id: "bad")) : .success(row[1])
        }
        return results
    }

    static func insert(_ database: SQLDatabase, count: Int) async throws {
        try await database.write { db in
            for index in 0..<count {
                _ = try db.execute(sql: "INSERT INTO records (id, version, label, body) VALUES (?, ?, '', ?)",
                                   arguments: ["r\(index)", Int64(index), Data()])
            }
            _ = try db.execute(sql: "INSERT INTO records (id, version, label, body) VALUES ('bad', 0, '', ?)", arguments: [Data()])
        }
    }

    @Test("600 concurrent reads, duplicates and missing ids among them, during 200 writes: each answers its own id, never older than the last write acknowledged before it was asked",
          .timeLimit(.minutes(2)))
    func answersAsAlone() async throws {
        let database = try await PointReadTests.open()
        try await Self.insert(database, count: 50)
        try await PointReadTests.write(database, id: "w", version: 0)
        let batches = Mutex<[Int]>([])
        let batcher = PointReadBatcher<Int64>("record", database: database, maxBatch: 16, coalesce: true) { db, ids in
            batches.withLock { $0.append(ids.count) }
            return try Self.versions(db, ids)
        }
        let acknowledged = Acknowledged()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for version in 1...200 as ClosedRange<Int64> {
                    try await PointReadTests.write(database, id: "w", version: version)
                    acknowledged.version.store(version, ordering: .sequentiallyConsistent)
                }
            }
            for index in 0..<600 {
                group.addTask {
                    switch index % 4 {
                    case 0:
                        let before = acknowledged.version.load(ordering: .sequentiallyConsistent)
                        let read = try #require(try await batcher.read("w"))
                        #expect(read >= before, "a read asked after version \(before) was acknowledged answered \(read)")
                    case 1:
                        #expect(try await batcher.read("missing-\(index)") == nil)
                    case 2:
                        #expect(try await batcher.read("r\(index % 7)") == Int64(index % 7))  // the same few ids, often in one batch
                    default:
                        #expect(try await batcher.read("r\(index % 50)") == Int64(index % 50))
                    }
                }
            }
            try await group.waitForAll()
        }
        let sizes = batches.withLock { $0 }
        #expect(sizes.reduce(0, +) == 600)
        #expect(sizes.allSatisfy { (1...16).contains($0) }, "\(sizes)")
        await database.close()
    }

    @Test("reads that arrive while the batches run wait and go together: with one batch at a time, 1 read, then 64, then the other 35",
          .timeLimit(.minutes(1)))
    func waitingReadsGoTogether() async throws {
        let database = try await PointReadTests.open()
        try await Self.insert(database, count: 100)
        let batches = Mutex<[Int]>([])
        let entered = Atomic<Bool>(false)
        let box = Mutex<PointReadBatcher<Int64>?>(nil)
        let batcher = PointReadBatcher<Int64>("record", database: database, maxBatch: 64, maxInFlight: 1, coalesce: true) { db, ids in
            // The first batch holds its statement until the other 99 reads wait behind it.
            if !entered.exchange(true, ordering: .sequentiallyConsistent) {
                let deadline = Date().addingTimeInterval(30)
                while (box.withLock { $0 }?.waiting ?? 0) < 99, Date() < deadline { usleep(1000) }
            }
            batches.withLock { $0.append(ids.count) }
            return try Self.versions(db, ids)
        }
        box.withLock { $0 = batcher }
        defer { box.withLock { $0 = nil } }  // the fetch closure holds the box: no cycle left behind
        let first = Task { try await batcher.read("r0") }
        while !entered.load(ordering: .sequentiallyConsistent) { try await Task.sleep(for: .milliseconds(1)) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 1..<100 {
                group.addTask {
                    let read = try await batcher.read("r\(index)")
                    #expect(read == Int64(index))
                }
            }
            try await group.waitForAll()
        }
        #expect(try await first.value == 0)
        #expect(batches.withLock { $0 } == [1, 64, 35])
        #expect(batcher.waiting == 0)
        await database.close()
    }

    @Test("a row that cannot be used fails its own read only; a statement that fails fails its batch, and the next batch reads again",
          .timeLimit(.minutes(1)))
    func failures() async throws {
        let database = try await PointReadTests.open()
        try await Self.insert(database, count: 10)
        let breakNext = Atomic<Bool>(false)
        let batcher = PointReadBatcher<Int64>("record", database: database, coalesce: true) { db, ids in
            if breakNext.exchange(false, ordering: .sequentiallyConsistent) {
                _ = try db.fetchAll(sql: "SELECT no_such_column FROM records")
            }
            return try Self.versions(db, ids)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<40 {
                group.addTask {
                    if index % 10 == 3 {
                        await #expect(throws: Failed(id: "bad")) { _ = try await batcher.read("bad") }
                    } else {
                        let read = try await batcher.read("r\(index % 10)")
                        #expect(read == Int64(index % 10))
                    }
                }
            }
            try await group.waitForAll()
        }
        breakNext.store(true, ordering: .sequentiallyConsistent)
        await #expect(throws: StorageError.self) { _ = try await batcher.read("r1") }
        #expect(try await batcher.read("r2") == 2)
        await database.close()
    }

    @Test("without coalescing (SQLite's default) a read is the same fetch of one key, at once")
    func passThrough() async throws {
        let database = try await PointReadTests.open()
        try await Self.insert(database, count: 3)
        let batches = Mutex<[Int]>([])
        let batcher = PointReadBatcher<Int64>("record", database: database, coalesce: false) { db, ids in
            batches.withLock { $0.append(ids.count) }
            return try Self.versions(db, ids)
        }
        #expect(try await batcher.read("r2") == 2)
        #expect(try await batcher.read("nope") == nil)
        await #expect(throws: Failed(id: "bad")) { _ = try await batcher.read("bad") }
        #expect(batches.withLock { $0 } == [1, 1, 1])
        #expect(PointReadBatcher<Int64>("record", database: database) { _, _ in [] }.maxInFlight == min(2, database.connections))
        #expect(PointReadBatcher<Int64>("record", database: database, maxInFlight: 10_000) { _, _ in [] }.maxInFlight == database.connections)
        await database.close()
    }
}
