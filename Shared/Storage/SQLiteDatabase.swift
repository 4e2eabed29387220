import Foundation
import GRDB
import Logging
import RPCWire

/// One service's SQLite database: a file in the data directory, WAL journal (readers never
/// block the writer), `synchronous = FULL` (a committed transaction survives a crash or
/// power loss), foreign keys on, a busy timeout, and the service's migrations applied in
/// order at open.
///
/// Every read and write goes through ``read(_:)`` / ``write(_:)``, which run on GRDB's own
/// dispatch queues (never on the caller's event loop). An error thrown by the closure — a
/// rule's refusal, a validation error — passes through unchanged (the transaction is rolled
/// back: a refused request changes nothing); a failure of the storage itself is a
/// ``StorageError``, logged here and converted to a status only at the edge.
public final class SQLiteDatabase: Sendable {
    /// Storage settings; every default is spelled out.
    public struct Configuration: Sendable {
        /// How long a writer waits for another writer's lock before UNAVAILABLE. Default 5 s.
        public var busyTimeout: TimeInterval = 5
        /// Concurrent readers. Default 4.
        public var maximumReaderCount: Int = 4

        public init() {}
        public static let defaults = Configuration()
    }

    /// The migrations of a service, applied in the order registered; each runs once, in a
    /// transaction, and is recorded in the file (GRDB's `grdb_migrations` table).
    public struct Migrations: Sendable {
        fileprivate var steps: [(name: String, sql: String)] = []

        public init() {}

        /// Registers a migration: a name that never changes once shipped, and its SQL.
        public mutating func add(_ name: String, sql: String) {
            steps.append((name, sql))
        }
    }

    public let path: String
    private let pool: DatabasePool
    private let logger: Logger

    /// Opens (creating if needed) `path` and migrates it. Throws a `StorageOpenError` with a
    /// one-line reason (not writable, not a database, a migration failed).
    public init(path: String, migrations: Migrations, configuration: Configuration = .defaults, logger: Logger) throws(StorageOpenError) {
        self.path = path
        self.logger = logger
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
            throw StorageOpenError(path: path, problem: Self.describe(error))
        }
        var migrator = DatabaseMigrator()
        for step in Idempotency.migrations.steps + migrations.steps {
            let sql = step.sql
            migrator.registerMigration(step.name) { db in try db.execute(sql: sql) }
        }
        do {
            try migrator.migrate(pool)
        } catch {
            throw StorageOpenError(path: path, problem: "migration failed: \(Self.describe(error))")
        }
    }

    /// Runs `body` in one write transaction (committed when it returns, rolled back when it throws).
    public func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.write(body)
        } catch {
            throw mapError(error)
        }
    }

    /// Runs `body` on a read-only snapshot.
    ///
    /// The read runs with the global concurrent executor as its task executor, not the
    /// caller's. GRDB returns a reader to its pool when the awaiting task resumes; if that
    /// task preferred an event loop (RPC handlers do), the reader would come back only once
    /// that loop is free, and a ``readPoint(_:)`` blocking the same loop for a reader could
    /// then wait forever (seen at 16+ concurrent check-ins: calls hung until their deadline).
    public func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let pool = self.pool
        do {
            return try await withTaskExecutorPreference(globalConcurrentExecutor) {
                try await pool.read(body)
            }
        } catch {
            throw mapError(error)
        }
    }

    /// Runs a short read (a lookup by key) on the calling thread instead of handing it to a
    /// reader queue and back: two thread switches cost more than a page-cache-hot point read.
    /// For lookups only — never scans — since it occupies the caller (an event loop, when
    /// handlers run there) for the duration of the read. Errors as in ``read(_:)``.
    public func readPoint<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.read(body)
        } catch {
            throw mapError(error)
        }
    }

    /// Checkpoints the WAL into the main file and closes the connections (at shutdown).
    public func close() {
        do {
            try pool.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
            try pool.close()
        } catch {
            logger.warning("closing the database failed", metadata: ["path": "\(path)", "error": "\(error)"])
        }
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

/// Why a database could not be opened, in one line.
public struct StorageOpenError: Error, Sendable, CustomStringConvertible {
    public let path: String
    public let problem: String
    public var description: String { "database \(path): \(problem)" }
}

/// A failure of the storage itself, not of the rules a transaction applies: the engine busy
/// or locked (the caller may retry), or failing. It reaches a client only through
/// `RPCErrorConvertible`, at the edge: UNAVAILABLE for a busy engine, INTERNAL with no
/// detail for a failure (the detail is logged where it happened).
public struct StorageError: Error, RPCErrorConvertible, CustomStringConvertible {
    public enum Reason: Sendable, Hashable {
        /// Another writer holds the lock past the busy timeout: retry.
        case busy
        /// Anything else the engine reported.
        case failed
    }

    public let reason: Reason
    /// What the engine said, for logs (never sent to a client).
    public let detail: String

    public init(reason: Reason, detail: String) {
        self.reason = reason
        self.detail = detail
    }

    public var rpcError: RPCError {
        switch reason {
        case .busy: .unavailable("storage is busy; retry with the same request_id")
        case .failed: .internal("internal error")
        }
    }

    public var description: String { "storage \(reason): \(detail)" }
}
