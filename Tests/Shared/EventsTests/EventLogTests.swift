import Events
import Foundation
import Logging
import Models
import ServiceTestSupport
import Storage
import Synchronization
import TestSupport
import Testing

/// The event log on each engine this run has (SQLite always, PostgreSQL on PostgreSQL runs):
/// events are written with their transaction or not at all, and cursors follow commit order,
/// so a reader that resumes after the last cursor it saw never misses one.
@Suite("The event log: written with the change, cursors in commit order")
struct EventLogTests {
    static let logger = Logger(label: "doorstep.test.events")

    static func open() async throws -> (SQLDatabase, EventLog) {
        var migrations = SQLDatabase.Migrations()
        EventLog.addMigrations(to: &migrations)
        EventLog.addRetentionMigrations(to: &migrations)
        let database = try await TestDatabase.open(file: "events.sqlite", in: try makeTemporaryDirectory(), migrations: migrations,
                                                   logger: logger)
        return (database, EventLog(source: "/doorstep/test"))
    }

    /// A small message to carry: a date.
    static func data(_ n: Int) -> TypeV1.Date { TypeV1.Date(year: 2026, month: 1 + Int32(n % 12), day: 1 + Int32(n % 28)) }

    @Test("an event is written with its transaction or not at all; both encodings; CloudEvents attributes; type filters")
    func writtenWithTheChange() async throws {
        let (database, log) = try await Self.open()
        struct Refused: Error {}
        try await database.write { db in
            try log.append(db, type: "doorstep.test.thing.created", subject: "things/t1", data: Self.data(1), nowMs: 1_765_000_000_123)
            try log.append(db, type: "doorstep.test.thing.changed", subject: "things/t1", data: Self.data(2), id: "evt_fixed", nowMs: 1_765_000_000_124)
        }
        await #expect(throws: Refused.self) {
            try await database.write { db in
                try log.append(db, type: "doorstep.test.thing.created", subject: "things/t2", data: Self.data(3), nowMs: 1)
                throw Refused()
            }
        }
        try await database.write { db in
            try log.append(db, type: "doorstep.test.other.created", subject: "others/o1", data: Self.data(4), nowMs: 1_765_000_000_125)
        }
        let all = try await database.read { db in try log.events(db, after: 0, types: .all, limit: 100) }
        #expect(all.map(\.subject) == ["things/t1", "things/t1", "others/o1"])
        let first = try #require(all.first)
        #expect(first.specVersion == "1.0" && first.source == "/doorstep/test" && first.type == "doorstep.test.thing.created")
        #expect(first.id.hasPrefix("evt_") && all[1].id == "evt_fixed")
        #expect(first.time == "2025-12-06T05:46:40.123Z" && first.timeMs == 1_765_000_000_123)
        #expect(first.dataContentType == "application/json" && first.dataSchema == "doorstep.type.v1.Date")
        #expect(try TypeV1.Date(decoding: first.data) == Self.data(1))
        #expect(try TypeV1.Date(jsonText: first.dataJson) == Self.data(1))
        #expect(all.map { Int64($0.cursor)! } == all.map { Int64($0.cursor)! }.sorted())

        func types(_ filter: [String]) async throws -> [String] {
            let parsed = try TypeFilter(parsing: filter)
            return try await database.read { db in try log.events(db, after: 0, types: parsed, limit: 100) }.map(\.type)
        }
        #expect(try await types(["doorstep.test.thing.changed"]) == ["doorstep.test.thing.changed"])
        #expect(try await types(["doorstep.test.thing.*"]) == ["doorstep.test.thing.created", "doorstep.test.thing.changed"])
        #expect(try await types(["doorstep.test.other.created", "doorstep.test.thing.changed"]).count == 2)
        for bad in ["Doorstep.test", "", "a b", "doorstep.*.created", "doorstep.test.t*", String(repeating: "a", count: 201)] {
            #expect(throws: TypeFilterError.self, "\(bad)") { try TypeFilter(parsing: [bad]) }
        }
        #expect(throws: TypeFilterError.self) { try TypeFilter(parsing: Array(repeating: "a", count: 51)) }
        // After the last cursor: nothing.
        let last = try await database.read { db in try log.lastCursor(db) }
        #expect(try await database.read { db in try log.events(db, after: last, types: .all, limit: 100) }.isEmpty)
        await database.close()
    }

    @Test("a transaction of 300 events (inserted together at commit) keeps them in the order appended; those of an undone savepoint are not written; a step deferred after them appends more")
    func manyInOneTransaction() async throws {
        let (database, log) = try await Self.open()
        struct Refused: Error {}
        try await database.write { db in
            for n in 0..<300 {
                if n % 50 == 7 {
                    _ = try? db.savepoint { () throws -> Void in
                        try log.append(db, type: "doorstep.test.thing.undone", subject: "things/u\(n)", data: Self.data(n), nowMs: 1)
                        throw Refused()
                    }
                }
                try log.append(db, type: "doorstep.test.thing.created", subject: "things/t\(n)", data: Self.data(n), nowMs: Int64(n))
            }
            // A final step that writes an event of its own, after the 300 were gathered.
            db.beforeCommit { db in
                try log.append(db, type: "doorstep.test.thing.last", subject: "things/last", data: Self.data(0), nowMs: 300)
            }
        }
        let all = try await database.read { db in try log.events(db, after: 0, types: .all, limit: 1_000) }
        #expect(all.map(\.subject) == (0..<300).map { "things/t\($0)" } + ["things/last"])
        #expect(all.map(\.timeMs) == (0...300).map(Int64.init))
        #expect(try all.enumerated().allSatisfy { index, event in try TypeV1.Date(decoding: event.data) == Self.data(index % 300) })
        await database.close()
    }

    @Test("purging takes the oldest events older than the cutoff, a prefix of the log, and records how far it went")
    func purge() async throws {
        let (database, log) = try await Self.open()
        // Written at 1000, 2000, 3000, then 1500 (a clock set back): the prefix older than
        // 2500 is the first two; the 1500 one waits behind the 3000 one.
        for (n, time) in [1000, 2000, 3000, 1500].enumerated() {
            try await database.write { db in
                try log.append(db, type: "doorstep.test.thing.changed", subject: "things/t\(n)", data: Self.data(n), nowMs: Int64(time))
            }
        }
        let before = try await database.read { db in try log.events(db, after: 0, types: .all, limit: 100) }
        #expect(try await database.read { db in try log.purgedThrough(db) } == 0)
        #expect(try await database.write { db in try log.purge(db, olderThanMs: 2500, batch: 100) } == 2)
        #expect(try await database.read { db in try log.purgedThrough(db) } == Int64(before[1].cursor))
        #expect(try await database.read { db in try log.events(db, after: 0, types: .all, limit: 100) }.map(\.id)
                == before.suffix(2).map(\.id))
        #expect(try await database.write { db in try log.purge(db, olderThanMs: 2500, batch: 100) } == 0)
        // In batches: one at a time.
        #expect(try await database.write { db in try log.purge(db, olderThanMs: 5000, batch: 1) } == 1)
        #expect(try await database.write { db in try log.purge(db, olderThanMs: 5000, batch: 1) } == 1)
        #expect(try await database.read { db in try log.count(db) } == 0)
        #expect(try await database.read { db in try log.purgedThrough(db) } == Int64(before[3].cursor))
        await database.close()
    }

    @Test("8 concurrent writers × 25 transactions: a reader polling all along, resuming after the last cursor it saw, sees every event once, in cursor order")
    func commitOrder() async throws {
        let (database, log) = try await Self.open()
        let seen = Mutex<[TypeV1.Event]>([])
        let writing = Mutex(true)
        let reader = Task {
            var cursor: Int64 = 0
            while true {
                let done = writing.withLock { !$0 }
                let after = cursor
                let batch = try await database.read { db in try log.events(db, after: after, types: .all, limit: 50) }
                seen.withLock { $0 += batch }
                if let last = batch.last { cursor = Int64(last.cursor)! }
                // One more pass after the writers stopped picks up the last commits.
                if done && batch.isEmpty { return }
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    for n in 0..<25 {
                        try await database.write { db in
                            try db.execute(sql: "SELECT 1")
                            for part in 0..<(1 + n % 3) {
                                try log.append(db, type: "doorstep.test.thing.changed", subject: "things/w\(writer)",
                                               data: Self.data(n * 3 + part), nowMs: Int64(n))
                            }
                            // Transactions overlap: some take longer between their first statement and commit.
                            if n % 4 == writer % 4 { usleep(UInt32.random(in: 200...2_000)) }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        writing.withLock { $0 = false }
        try await reader.value
        let all = try await database.read { db in try log.events(db, after: 0, types: .all, limit: 10_000) }
        let perWriter = 9 * 1 + 8 * 2 + 8 * 3  // one, two or three events in turn over 25 transactions
        #expect(all.count == 8 * perWriter)
        let read = seen.withLock { $0 }
        let missed = Set(all.map(\.id)).subtracting(read.map(\.id)).count
        let repeated = read.count - Set(read.map(\.id)).count
        #expect(missed == 0 && repeated == 0 && read.map(\.id) == all.map(\.id),
                "the reader missed \(missed) and repeated \(repeated) of \(all.count) events")
        // Per subject, the events are in the order their writer committed them.
        for writer in 0..<8 {
            let mine = all.filter { $0.subject == "things/w\(writer)" }.map(\.timeMs)
            #expect(mine == mine.sorted())
        }
        await database.close()
    }
}
