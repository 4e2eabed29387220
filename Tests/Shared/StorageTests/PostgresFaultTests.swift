import Foundation
import Logging
import RPCWire
import Storage
import TestSupport
import Testing

/// PostgreSQL faults, each on a private server of its own (``PostgresCluster``) that the
/// test stops, crashes and restarts: what a service sees, and that it recovers by itself.
@Suite("PostgreSQL faults", .enabled(if: PostgresCluster.isAvailable), .serialized)
struct PostgresFaultTests {
    static func settings(_ url: String) throws -> PostgresSettings {
        var settings = try PostgresSettings(url: url)
        settings.acquireTimeout = .seconds(1)
        settings.connectTimeout = .seconds(1)
        settings.startupTimeout = .seconds(2)
        settings.poolSize = 4
        return settings
    }

    @Test("unreachable at start: retried for the startup timeout, then one line naming the server", .timeLimit(.minutes(1)))
    func unreachableAtStart() async throws {
        let port = try freeLoopbackPort()
        let started = ContinuousClock.now
        let error = await #expect(throws: StorageOpenError.self) {
            _ = try await SQLDatabase.open(.postgres(try Self.settings("postgres://doorstep:secret@127.0.0.1:\(port)/accounts")),
                                           migrations: EngineTests.migrations, logger: StorageTests.logger)
        }
        let waited = ContinuousClock.now - started
        #expect(waited >= .seconds(2) && waited < .seconds(10), "retried for about the startup timeout: \(waited)")
        #expect(error?.description.hasPrefix("database postgres://doorstep@127.0.0.1:\(port)/accounts: cannot reach 127.0.0.1:\(port) within 2.0 seconds (") == true,
                "\(error?.description ?? "")")
        #expect(error?.description.contains("secret") == false)
        #expect(!(error?.description.contains("\n") ?? true), "one line")
    }

    @Test("replicas starting together on a fresh database: every migration applied once, all of them open", .timeLimit(.minutes(1)))
    func concurrentMigrations() async throws {
        let cluster = try PostgresCluster()
        defer { cluster.remove() }
        let opened = try await withThrowingTaskGroup(of: SQLDatabase.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    try await SQLDatabase.open(.postgres(try Self.settings(cluster.url(schema: "svc"))),
                                               migrations: EngineTests.migrations, logger: StorageTests.logger)
                }
            }
            return try await group.reduce(into: [SQLDatabase]()) { $0.append($1) }
        }
        #expect(opened.count == 4)
        let applied = try await opened[0].read { db in
            try db.fetchAll(sql: "SELECT name, COUNT(*) AS n FROM doorstep_migrations GROUP BY name ORDER BY name")
        }
        #expect(applied.map { $0["name"] as String } == ["doorstep-idempotency-v1", "doorstep-job-leases-v1", "values-v1", "values-v2-log-line"])
        #expect(applied.allSatisfy { $0["n"] as Int == 1 })
        for database in opened { await database.close() }
    }

    @Test("the server down: writes and reads answer UNAVAILABLE (never INTERNAL) and isAvailable is false; back up: the same database object works again and every committed write is there", .timeLimit(.minutes(2)))
    func outageAndRecovery() async throws {
        let cluster = try PostgresCluster()
        defer { cluster.remove() }
        let database = try await SQLDatabase.open(.postgres(try Self.settings(cluster.url())), migrations: EngineTests.migrations,
                                                  logger: StorageTests.logger)
        for n in 0..<10 {
            try await database.write { db in try db.execute(sql: "INSERT INTO items (id, n) VALUES (?, ?)", arguments: ["a\(n)", n]) }
        }
        try cluster.stop(mode: "immediate")
        for attempt in 0..<3 {
            let write = await #expect(throws: StorageError.self) {
                try await database.write { db in try db.execute(sql: "INSERT INTO items (id, n) VALUES (?, ?)", arguments: ["down\(attempt)", 0]) }
            }
            #expect(write?.reason == .unavailable, "\(write?.description ?? "")")
            #expect(write?.rpcError.code == .unavailable)
            let read = await #expect(throws: StorageError.self) {
                try await database.readPoint { db in try db.fetchValue(Int.self, sql: "SELECT COUNT(*) FROM items") }
            }
            #expect(read?.reason == .unavailable)
        }
        #expect(await !database.isAvailable())
        try cluster.start()
        // No reopening: the pool connects again by itself.
        let deadline = ContinuousClock.now + .seconds(20)
        var recovered = false
        while ContinuousClock.now < deadline {
            if (try? await database.write({ db in try db.execute(sql: "INSERT INTO items (id, n) VALUES ('back', 1)") })) != nil {
                recovered = true
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(recovered)
        #expect(await database.isAvailable())
        let ids = try await database.read { db in try db.fetchValues(String.self, sql: "SELECT id FROM items ORDER BY n, id") }
        #expect(Set(ids) == Set((0..<10).map { "a\($0)" } + ["back"]), "every committed write, none of the refused ones")
        await database.close()
    }

    @Test("a crash-restart (pg_ctl restart -m immediate) under concurrent writes: every acknowledged write survives; the writers carry on without reopening", .timeLimit(.minutes(2)))
    func restartUnderLoad() async throws {
        let cluster = try PostgresCluster()
        defer { cluster.remove() }
        let database = try await SQLDatabase.open(.postgres(try Self.settings(cluster.url())), migrations: EngineTests.migrations,
                                                  logger: StorageTests.logger)
        let restart = Task.detached {
            try await Task.sleep(for: .milliseconds(300))
            try cluster.restart(mode: "immediate")
        }
        // Four writers, each 150 inserts, each retried while UNAVAILABLE (as a client retries).
        let acknowledged = try await withThrowingTaskGroup(of: [String].self) { group in
            for writer in 0..<4 {
                group.addTask {
                    var done: [String] = []
                    for n in 0..<150 {
                        let id = "w\(writer)-\(n)"
                        var attempts = 0
                        while true {
                            do {
                                // Idempotent by key, as a request id makes an RPC.
                                try await database.write { db in
                                    try db.execute(sql: "INSERT INTO items (id, n) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                                                   arguments: [id, n])
                                }
                                done.append(id)
                                break
                            } catch let error as StorageError where error.reason != .failed && attempts < 200 {
                                attempts += 1
                                try await Task.sleep(for: .milliseconds(50))
                            }
                        }
                        try await Task.sleep(for: .milliseconds(2))
                    }
                    return done
                }
            }
            return try await group.reduce(into: [String]()) { $0 += $1 }
        }
        try await restart.value
        #expect(acknowledged.count == 600)
        let stored = Set(try await database.read { db in try db.fetchValues(String.self, sql: "SELECT id FROM items") })
        #expect(stored.isSuperset(of: acknowledged), "lost: \(Set(acknowledged).subtracting(stored).sorted().prefix(5))")
        let log = (try? String(contentsOf: cluster.directory.appendingPathComponent("server.log"), encoding: .utf8)) ?? ""
        #expect(log.contains("database system was interrupted") || log.contains("was not properly shut down"),
                "the server really crashed and recovered")
        await database.close()
    }
}
