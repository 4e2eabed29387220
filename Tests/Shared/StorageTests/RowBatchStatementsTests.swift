import Foundation
import ServiceTestSupport
@testable import Storage
import TestSupport
import Testing

/// `RowBatchStatements`: many rows in few multi-row statements, on each engine this run has.
@Suite("Multi-row statements")
struct RowBatchStatementsTests {
    @Test("sizes: the largest power of two left that fits, each time; the limit rounded down to a power of two within 1…128")
    func sizes() {
        #expect(RowBatchStatements.sizes(0, maxRows: 128) == [])
        #expect(RowBatchStatements.sizes(1, maxRows: 128) == [1])
        #expect(RowBatchStatements.sizes(128, maxRows: 128) == [128])
        #expect(RowBatchStatements.sizes(130, maxRows: 128) == [128, 2])
        #expect(RowBatchStatements.sizes(300, maxRows: 128) == [128, 128, 32, 8, 4])
        #expect(RowBatchStatements.sizes(7, maxRows: 4) == [4, 2, 1])
        #expect(RowBatchStatements(prefix: "", tuple: "(?)", maxRows: 100).maxRows == 64)
        #expect(RowBatchStatements(prefix: "", tuple: "(?)", maxRows: 1000).maxRows == 128)
        #expect(RowBatchStatements(prefix: "", tuple: "(?)", maxRows: 0).maxRows == 1)
    }

    @Test("0, 1, 130 and 300 rows written in order, every value where it belongs; the suffix applies (an upsert)",
          arguments: [0, 1, 130, 300])
    func writes(count: Int) async throws {
        let database = try await PointReadTests.open()
        let inserts = RowBatchStatements(prefix: "INSERT INTO records (id, version, label, body) VALUES ", tuple: "(?, ?, ?, ?)")
        let upserts = RowBatchStatements(prefix: "INSERT INTO records (id, version, label, body) VALUES ", tuple: "(?, ?, ?, ?)",
                                         suffix: " ON CONFLICT (id) DO UPDATE SET version = excluded.version, label = excluded.label")
        let rows = (0..<count).map { (id: String(format: "r%04d", $0), version: Int64($0), label: "row \($0)") }
        let written = try await database.write { db in
            try inserts.execute(db, rows) { row in [row.id, row.version, row.label, Data([UInt8(truncatingIfNeeded: row.version)])] }
        }
        #expect(written == count)
        // Every other row again, changed: the upsert's clause rewrites them.
        let again = rows.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        let upserted = try await database.write { db in
            try upserts.execute(db, again) { row in [row.id, row.version + 1_000, row.label + " again", Data()] }
        }
        #expect(upserted == again.count)
        let stored = try await database.read { db in
            try db.fetchAll(sql: "SELECT id, version, label, body FROM records ORDER BY id").map { row in
                (id: row["id"] as String, version: row["version"] as Int64, label: row["label"] as String, body: row["body"] as Data)
            }
        }
        #expect(stored.count == count)
        for (index, row) in stored.enumerated() {
            let upsertedRow = index % 2 == 0
            #expect(row.id == String(format: "r%04d", index))
            #expect(row.version == Int64(index) + (upsertedRow ? 1_000 : 0))
            #expect(row.label == "row \(index)" + (upsertedRow ? " again" : ""))
            #expect(row.body == Data([UInt8(truncatingIfNeeded: index)]))  // the clause leaves the body
        }
        await database.close()
    }
}
