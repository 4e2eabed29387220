import Foundation
import GRDB
import Logging
import RPCWire

/// The embedded engine: one SQLite file (GRDB.swift), WAL journal (readers never block the
/// writer), `synchronous = FULL` (a committed transaction survives a crash or power loss),
/// foreign keys on, a busy timeout, the migrations applied in order at open and recorded in
/// GRDB's `grdb_migrations` table. One process per file.
///
/// Transactions run on GRDB's own dispatch queues (never on the caller's event loop); one
/// writer at a time, so every write transaction is serializable.
public final class SQLiteEngine: SQLEngine {
    /// Storage settings; every default is spelled out.
    public struct Configuration: Sendable {
        /// How long a writer waits for another writer's lock before UNAVAILABLE. Default 5 s.
        public var busyTimeout: TimeInterval = 5
        /// Concurrent readers. Default 4.
        public var maximumReaderCount: Int = 4

        public init() {}
        public static let defaults = Configuration()
    }

    public let path: String
    private let pool: DatabasePool
    private let logger: Logger

    var dialect: SQLDialect { .sqlite }
    /// The writer and the readers.
    let connections: Int
    var location: String { path }

    init(path: String, migrations: SQLDatabase.Migrations, configuration: Configuration = .defaults,
         logger: Logger) throws(StorageOpenError) {
        self.path = path
        self.logger = logger
        self.connections = 1 + configuration.maximumReaderCount
        var grdb = GRDB.Configuration()
        grdb.busyMode = .timeout(configuration.busyTimeout)
        grdb.maximumReaderCount = configuration.maximumReaderCount
        grdb.foreignKeysEnabled = true
        grdb.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            pool = try DatabasePool(path: path, configuration: grdb)
        } catch {
            throw StorageOpenError(location: path, problem: Self.describe(error))
        }
        var migrator = DatabaseMigrator()
        for step in migrations.steps {
            let sql = step.sqlite
            migrator.registerMigration(step.name) { db in
                if !sql.isEmpty { try db.execute(sql: sql) }
            }
        }
        do {
            try migrator.migrate(pool)
        } catch {
            throw StorageOpenError(location: path, problem: "migration failed: \(Self.describe(error))")
        }
    }

    /// One writer at a time: every isolation is serializable.
    func write<T: Sendable>(isolation _: SQLDatabase.Isolation, _ body: @escaping @Sendable (SQLSession) throws -> T) async throws -> T {
        do {
            return try await pool.write { db in try body(Self.session(db)) }
        } catch {
            throw mapError(error)
        }
    }

    /// The read runs with the global concurrent executor as its task executor, not the
    /// caller's. GRDB returns a reader to its pool when the awaiting task resumes; if that
    /// task preferred an event loop (RPC handlers do), the reader would come back only once
    /// that loop is free, and a point read blocking the same loop for a reader could then
    /// wait forever (seen at 16+ concurrent check-ins: calls hung until their deadline).
    func read<T: Sendable>(_ body: @escaping @Sendable (SQLSession) throws -> T) async throws -> T {
        let pool = self.pool
        do {
            return try await withTaskExecutorPreference(globalConcurrentExecutor) {
                try await pool.read { db in try body(Self.session(db)) }
            }
        } catch {
            throw mapError(error)
        }
    }

    /// On the calling thread: it is occupied for the duration of the read (lookups only).
    func readPoint<T: Sendable>(_ body: @escaping @Sendable (SQLSession) throws -> T) async throws -> T {
        do {
            return try readHere(body)
        } catch {
            throw mapError(error)
        }
    }

    func isAvailable() async -> Bool {
        (try? readHere { db in try db.fetchValue(Int.self, sql: "SELECT 1") }) == 1
    }

    /// Checkpoints the WAL into the main file and closes the connections (at shutdown).
    func close() async { closeHere() }

    /// GRDB's synchronous read, on the calling thread (from an async function the async
    /// overload would be chosen).
    func readHere<T>(_ body: (SQLSession) throws -> T) throws -> T {
        try pool.read { db in try body(Self.session(db)) }
    }

    private func closeHere() {
        do {
            try pool.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
            try pool.close()
        } catch {
            logger.warning("closing the database failed", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    private static func session(_ db: Database) -> SQLSession {
        SQLSession(dialect: .sqlite, driver: SQLiteDriver(db))
    }

    /// The closure's own errors (and cancellation) as they are; GRDB's as a ``StorageError``.
    /// An error that will reach the client as INTERNAL is logged here, where its detail is.
    private func mapError(_ error: any Error) -> any Error {
        guard let error = error as? DatabaseError else {
            if !(error is RPCErrorConvertible || error is CancellationError) {
                logger.error("transaction failed", metadata: ["path": "\(path)", "error": "\(error)"])
            }
            return error
        }
        if error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED {
            logger.warning("database busy", metadata: ["path": "\(path)"])
            return StorageError(reason: .busy, detail: "\(path): \(error.resultCode)")
        }
        logger.error("storage failure", metadata: ["path": "\(path)", "error": "\(error)"])
        return StorageError(reason: .failed, detail: "\(path): \(error.message ?? "\(error.resultCode)")")
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? DatabaseError { return error.message ?? "\(error.resultCode)" }
        return "\(error)"
    }
}

/// Statements on one GRDB connection, through its statement cache (each SQL text is
/// prepared once per connection).
final class SQLiteDriver: SQLDriver {
    private let db: Database

    init(_ db: Database) { self.db = db }

    func execute(_ sql: String, _ arguments: [SQLValue]) throws -> Int {
        try db.cachedStatement(sql: sql).execute(arguments: Self.arguments(arguments))
        return db.changesCount
    }

    func query(_ sql: String, _ arguments: [SQLValue], limit: Int?) throws -> [SQLRow] {
        let statement = try db.cachedStatement(sql: sql)
        let columns = SQLColumns(statement.columnNames)
        let cursor = try Row.fetchCursor(statement, arguments: Self.arguments(arguments))
        var rows: [SQLRow] = []
        while let row = try cursor.next() {
            rows.append(SQLRow(columns: columns, values: row.databaseValues.map(Self.value)))
            if let limit, rows.count >= limit { break }
        }
        return rows
    }

    private static func arguments(_ values: [SQLValue]) -> StatementArguments {
        StatementArguments(values.map { value -> DatabaseValue in
            switch value {
            case .null: .null
            case .integer(let v): v.databaseValue
            case .real(let v): v.databaseValue
            case .text(let v): v.databaseValue
            case .blob(let v): v.databaseValue
            }
        })
    }

    private static func value(_ value: DatabaseValue) -> SQLValue {
        switch value.storage {
        case .null: .null
        case .int64(let v): .integer(v)
        case .double(let v): .real(v)
        case .string(let v): .text(v)
        case .blob(let v): .blob(v)
        }
    }
}
