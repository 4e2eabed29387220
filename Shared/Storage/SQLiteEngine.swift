import Foundation
import GRDB
import GRDBSQLite
import Logging
import RPCWire

/// The embedded engine: one SQLite file (GRDB.swift), WAL journal (readers never block the
/// writer), `synchronous = FULL` (a committed transaction survives a crash or power loss),
/// foreign keys on, a busy timeout, the migrations applied in order at open and recorded in
/// GRDB's `grdb_migrations` table. One process per file.
///
/// Transactions run on GRDB's own dispatch queues (never on the caller's event loop); one
/// writer at a time, so every write transaction is serializable. Point reads run on the
/// calling thread, on connections of their own and without a transaction
/// (``SQLitePointReaders``).
public final class SQLiteEngine: SQLEngine {
    /// Storage settings; every default is spelled out.
    public struct Configuration: Sendable {
        /// How long a writer waits for another writer's lock before UNAVAILABLE. Default 5 s.
        public var busyTimeout: TimeInterval = 5
        /// Concurrent readers. Default 4.
        public var maximumReaderCount: Int = 4
        /// Connections for point reads (``SQLDatabase/readPoint(_:)``), opened as threads
        /// need them; a point read that finds them all busy takes one of the readers. Default 8.
        public var maximumPointReaderCount: Int = 8

        public init() {}
        public static let defaults = Configuration()
    }

    public let path: String
    private let pool: DatabasePool
    private let pointReaders: SQLitePointReaders
    private let logger: Logger

    var dialect: SQLDialect { .sqlite }
    /// A point read is a call on the caller's thread (``SQLitePointReaders``).
    var coalescesPointReads: Bool { false }
    /// The writer, the readers and the point readers.
    let connections: Int
    var location: String { path }

    init(path: String, migrations: SQLDatabase.Migrations, configuration: Configuration = .defaults,
         logger: Logger) throws(StorageOpenError) {
        self.path = path
        self.logger = logger
        self.connections = 1 + configuration.maximumReaderCount + max(0, configuration.maximumPointReaderCount)
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
        // Opened after the migrations: their statements are prepared against the final schema.
        pointReaders = SQLitePointReaders(path: path, configuration: grdb, capacity: configuration.maximumPointReaderCount)
    }

    /// One writer at a time: every isolation is serializable.
    func write<T: Sendable>(isolation _: SQLDatabase.Isolation, _ body: @escaping @Sendable (SQLSession) throws -> T) async throws -> T {
        do {
            let (value, effects) = try await pool.write { db in
                let session = Self.session(db)
                let value = try body(session)
                try session.runFinalSteps()
                return (value, session.takeCommitEffects())
            }
            for effect in effects { effect() }
            return value
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
            return try readPointHere(body)
        } catch {
            throw mapError(error)
        }
    }

    /// A point read on the calling thread, with no transaction around its statements: on a
    /// point reader (``SQLitePointReaders``), or on one of the pool's readers when every point
    /// reader is busy. Once closed, the pool refuses it.
    func readPointHere<T>(_ body: (SQLSession) throws -> T) throws -> T {
        guard let reader = try pointReaders.checkOut() else {
            return try pool.unsafeRead { db in try body(SQLSession(dialect: .sqlite, driver: SQLiteDriver(db, pointRead: true))) }
        }
        defer { pointReaders.checkIn(reader) }
        return try reader.inDatabase { db in try body(SQLSession(dialect: .sqlite, driver: SQLiteDriver(db, pointRead: true))) }
    }

    /// How many point readers are open (tests).
    var openPointReaders: Int { pointReaders.openCount }

    func isAvailable() async -> Bool {
        (try? readHere { db in try db.fetchValue(Int.self, sql: "SELECT 1") }) == 1
    }

    /// Checkpoints the WAL into the main file and closes the connections (at shutdown); a
    /// point read still running closes its connection when it ends.
    func close() async {
        pointReaders.close()
        closeHere()
    }

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
    /// A point read: a read-only connection outside any transaction, observed by nothing
    /// GRDB would have to tell, so ``firstRow(_:_:_:)`` steps GRDB's cached statement itself.
    private let pointRead: Bool

    init(_ db: Database, pointRead: Bool = false) {
        self.db = db
        self.pointRead = pointRead
    }

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

    /// The first row, its values read from the statement only when asked for (a blob without a
    /// copy): in a point read the cached statement bound, stepped once and reset here through
    /// SQLite's C API; in a transaction through GRDB's statement-backed row, so GRDB's checks
    /// (an aborted transaction, observers) still apply.
    func firstRow<T>(_ sql: String, _ arguments: [SQLValue], _ read: (SQLRowInPlace) throws -> T) throws -> T? {
        let statement = try db.cachedStatement(sql: sql)
        if pointRead {
            // Bound here, one step, the row read in place, reset.
            try Self.bind(arguments, to: statement)
            let stepped = statement.sqliteStatement
            defer { sqlite3_reset(stepped) }
            switch sqlite3_step(stepped) {
            case SQLITE_ROW:
                return try read(SQLRowInPlace(.statement(stepped)))
            case SQLITE_DONE:
                return nil
            case let code:
                throw DatabaseError(resultCode: ResultCode(rawValue: code),
                                    message: String(cString: sqlite3_errmsg(db.sqliteConnection)), sql: sql)
            }
        }
        let cursor = try Row.fetchCursor(statement, arguments: Self.arguments(arguments))
        guard let row = try cursor.next() else { return nil }
        return try read(SQLRowInPlace(.sqlite(row)))
    }

    /// Binds `values` to GRDB's cached `statement` through SQLite's C API, as GRDB binds them
    /// but without building its argument list first: reset, then every parameter bound, so
    /// nothing of an earlier binding remains; text and blobs copied by SQLite. GRDB's own
    /// record of the statement's arguments is left as it was, which is harmless: every other
    /// use of a statement in this driver goes through GRDB with its arguments, which binds
    /// them again.
    private static func bind(_ values: [SQLValue], to statement: Statement) throws {
        let raw = statement.sqliteStatement
        guard Int(sqlite3_bind_parameter_count(raw)) == values.count else {
            throw DatabaseError(resultCode: .SQLITE_MISUSE,
                                message: "\(values.count) arguments for \(sqlite3_bind_parameter_count(raw)) placeholders",
                                sql: statement.sql)
        }
        sqlite3_reset(raw)
        for (index, value) in zip(CInt(1)..., values) {
            let code: CInt
            switch value {
            case .null:
                code = sqlite3_bind_null(raw, index)
            case .integer(let v):
                code = sqlite3_bind_int64(raw, index, v)
            case .real(let v):
                code = sqlite3_bind_double(raw, index, v)
            case .text(let v):
                // As GRDB binds text: up to the first U+0000, so both paths find the same rows.
                code = sqlite3_bind_text(raw, index, v, -1, sqliteTransient)
            case .blob(let v):
                code = v.withUnsafeBytes { sqlite3_bind_blob(raw, index, $0.baseAddress, CInt($0.count), sqliteTransient) }
            }
            guard code == SQLITE_OK else {
                throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errstr(code)), sql: statement.sql)
            }
        }
    }

    /// GRDB's arguments for `values`. Through the initializer over optional existentials: the
    /// one over a sequence of one `DatabaseValueConvertible` type maps with a key path that is
    /// instantiated at run time on every call (perf: 12 % of an import's writer thread).
    private static func arguments(_ values: [SQLValue]) -> StatementArguments {
        StatementArguments(values.map { value -> (any DatabaseValueConvertible)? in
            switch value {
            case .null: nil
            case .integer(let v): v
            case .real(let v): v
            case .text(let v): v
            case .blob(let v): v
            }
        })
    }

    static func value(_ value: DatabaseValue) -> SQLValue {
        switch value.storage {
        case .null: .null
        case .int64(let v): .integer(v)
        case .double(let v): .real(v)
        case .string(let v): .text(v)
        case .blob(let v): .blob(v)
        }
    }
}

/// SQLite's `SQLITE_TRANSIENT` (a macro Swift cannot import): SQLite copies the bound value.
private let sqliteTransient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
