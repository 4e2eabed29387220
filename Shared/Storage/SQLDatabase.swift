import Foundation
import Logging
import Metrics
import RPCWire
import Synchronization

/// A service's database, on one of two engines behind one interface:
///
/// - **SQLite** (the embedded default): one file in the data directory (``SQLiteEngine``);
///   one process per database.
/// - **PostgreSQL** (production, several replicas): a server named by a `postgres://` URL
///   (``PostgresEngine``), reached through postgres-nio's connection pool.
///
/// The stores are written once: a transaction body is a synchronous closure over a
/// ``SQLSession`` (statements with `?` placeholders, see ``SQLDialect``) and runs the same
/// way on both engines. Write transactions are **serializable** on both — SQLite has one
/// writer at a time; PostgreSQL runs them at `SERIALIZABLE` and retries a body whose
/// transaction lost a serialization race (for at most ``PostgresEngine/retryBudget``) — so a rule checked inside a transaction (a slot
/// still free, a version still current, a request id still unused) holds across every
/// replica. A body may therefore run more than once: it must not act outside the database
/// (no RPCs, no sink calls); what it sets outside is idempotent (``TransactionFlag``).
///
/// Errors thrown by the body (a rule's refusal, a validation error) pass through unchanged
/// and roll the transaction back; a failure of the storage is a ``StorageError``, logged
/// where it happened and turned into a status only at the edge.
public final class SQLDatabase: Sendable {
    /// The migrations of a service, applied in the order registered; each runs once, in a
    /// transaction, and is recorded in the database.
    public struct Migrations: Sendable {
        struct Step: Sendable {
            let name: String
            let sqlite: String
            let postgres: String
        }

        private(set) var steps: [Step] = []

        public init() {}

        /// Registers a migration: a name that never changes once shipped, and its SQL in
        /// SQLite's dialect (translated for PostgreSQL by ``SQLDialect/schema(_:)``).
        public mutating func add(_ name: String, sql: String) {
            steps.append(Step(name: name, sqlite: sql, postgres: SQLDialect.postgres.schema(sql)))
        }

        /// Registers a migration whose SQL differs between the engines beyond what
        /// ``SQLDialect/schema(_:)`` translates ("" = nothing to do on that engine).
        public mutating func add(_ name: String, sqlite: String, postgres: String) {
            steps.append(Step(name: name, sqlite: sqlite, postgres: postgres))
        }

        static func + (lhs: Migrations, rhs: Migrations) -> Migrations {
            var sum = lhs
            sum.steps += rhs.steps
            return sum
        }
    }

    /// Where a service keeps its data.
    public enum Location: Sendable, CustomStringConvertible {
        /// A SQLite file (created when missing).
        case sqlite(path: String)
        /// A PostgreSQL database.
        case postgres(PostgresSettings)

        /// For logs and errors: the path, or the URL without its password.
        public var description: String {
            switch self {
            case .sqlite(let path): path
            case .postgres(let settings): settings.redactedURL
            }
        }
    }

    let engine: any SQLEngine
    private let metrics: DatabaseMetrics

    /// The engine's dialect (the few clauses that differ, see ``SQLDialect``).
    public var dialect: SQLDialect { engine.dialect }
    /// Where the data is, for logs (never a password).
    public var location: String { engine.location }
    /// How many transactions can hold a connection at once.
    public var connections: Int { engine.connections }
    /// Whether point reads gain from being coalesced into one statement
    /// (``PointReadBatcher``): true where each statement is a round trip to a server.
    public var coalescesPointReads: Bool { engine.coalescesPointReads }

    init(engine: any SQLEngine) {
        self.engine = engine
        self.metrics = DatabaseMetrics(connections: engine.connections)
    }

    /// Opens the database at `location` and applies the migrations not yet applied (the
    /// shared tables first: idempotency, job leases). Several processes may open the same
    /// PostgreSQL database at once: migrations run under a lock, once. Throws a
    /// `StorageOpenError` with a one-line reason (unreachable, not writable, a migration failed).
    public static func open(_ location: Location, migrations: Migrations, logger: Logger) async throws(StorageOpenError) -> SQLDatabase {
        let all = withSharedTables(migrations)
        switch location {
        case .sqlite(let path):
            return SQLDatabase(engine: try SQLiteEngine(path: path, migrations: all, logger: logger))
        case .postgres(let settings):
            return SQLDatabase(engine: try await PostgresEngine.open(settings: settings, migrations: all, logger: logger))
        }
    }

    /// Opens (creating if needed) the SQLite file at `path`; see ``open(_:migrations:logger:)``.
    public convenience init(path: String, migrations: Migrations, configuration: SQLiteEngine.Configuration = .defaults,
                            logger: Logger) throws(StorageOpenError) {
        self.init(engine: try SQLiteEngine(path: path, migrations: Self.withSharedTables(migrations),
                                           configuration: configuration, logger: logger))
    }

    /// How a write transaction is isolated from concurrent ones.
    public enum Isolation: Sendable {
        /// As if transactions ran one at a time (the default): a rule checked in the body
        /// holds when it commits. On PostgreSQL the body may run more than once.
        case serializable
        /// PostgreSQL's READ COMMITTED (SQLite has only one writer: serializable there). For
        /// bodies that lock or change exactly the rows they name and check nothing else —
        /// claiming outbox messages with `FOR UPDATE SKIP LOCKED`, an atomic upsert of a
        /// lease, a purge by age — where predicate tracking would only make other writers
        /// (every booking inserts outbox rows) lose races for nothing.
        case rowLocks
    }

    /// The tables every service has (remembered responses, job leases) before its own.
    private static func withSharedTables(_ migrations: Migrations) -> Migrations {
        Idempotency.migrations + JobLease.migrations + migrations
    }

    /// Runs `body` in one write transaction (committed when it returns, rolled back when it
    /// throws; on PostgreSQL at `serializable`, run again when it lost a serialization race).
    @discardableResult
    public func write<T: Sendable>(isolation: Isolation = .serializable,
                                   _ body: @escaping @Sendable (SQLSession) throws -> T) async throws -> T {
        try await metrics.measure(metrics.write) { try await engine.write(isolation: isolation, body) }
    }

    /// Runs `body` on a read-only snapshot.
    public func read<T: Sendable>(_ body: @escaping @Sendable (SQLSession) throws -> T) async throws -> T {
        try await metrics.measure(metrics.read) { try await engine.read(body) }
    }

    /// Runs a short read (a lookup by key) the cheapest way the engine has: without a
    /// transaction around it on both engines, and on SQLite on the calling thread (two thread
    /// switches cost more than a page-cache-hot read), on a read-only connection of its own
    /// (``SQLitePointReaders``). Never for scans, and not for reads that must agree with each
    /// other: on both engines each statement sees the last commit as of its own start (a
    /// record and the deliveries written in the same commit can disagree) — read them in one
    /// statement, or use ``read(_:)``. ``SQLSession/readFirstRow(sql:arguments:_:)`` reads the
    /// looked-up row in place.
    public func readPoint<T: Sendable>(_ body: @escaping @Sendable (SQLSession) throws -> T) async throws -> T {
        try await metrics.measure(metrics.read) { try await engine.readPoint(body) }
    }

    /// Whether the database answers now (a trivial query within a few seconds); the
    /// service's health follows it.
    public func isAvailable() async -> Bool { await engine.isAvailable() }

    /// Closes the connections (SQLite: checkpoints the WAL into the file first).
    public func close() async { await engine.close() }
}

/// What each engine provides behind ``SQLDatabase``.
protocol SQLEngine: Sendable {
    var dialect: SQLDialect { get }
    /// How many transactions can hold a connection at once (the pool's size).
    var connections: Int { get }
    var coalescesPointReads: Bool { get }
    var location: String { get }
    func write<T: Sendable>(isolation: SQLDatabase.Isolation, _ body: @escaping @Sendable (SQLSession) throws -> T) async throws -> T
    func read<T: Sendable>(_ body: @escaping @Sendable (SQLSession) throws -> T) async throws -> T
    func readPoint<T: Sendable>(_ body: @escaping @Sendable (SQLSession) throws -> T) async throws -> T
    func isAvailable() async -> Bool
    func close() async
}

/// Why a database could not be opened, in one line.
public struct StorageOpenError: Error, Sendable, CustomStringConvertible {
    /// The file, or the URL without its password.
    public let location: String
    public let problem: String

    public init(location: String, problem: String) {
        self.location = location
        self.problem = problem
    }

    public var description: String { "database \(location): \(problem)" }
}

/// A failure of the storage itself, not of the rules a transaction applies. It reaches a
/// client only through `RPCErrorConvertible`, at the edge: UNAVAILABLE when the database is
/// busy or cannot be reached (the caller retries with the same request id, which acts at
/// most once), INTERNAL with no detail for anything else (the detail is logged where it
/// happened).
public struct StorageError: Error, RPCErrorConvertible, CustomStringConvertible {
    public enum Reason: Sendable, Hashable {
        /// Contention outlasted the engine's patience (SQLite's busy timeout; PostgreSQL's
        /// serialization retries or statement timeout): retry.
        case busy
        /// The database cannot be reached (connection refused or lost, server shutting
        /// down, a standby that cannot take writes): retry once it is back.
        case unavailable
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
        case .unavailable: .unavailable("storage is unavailable; retry with the same request_id")
        case .failed: .internal("internal error")
        }
    }

    public var description: String { "storage \(reason): \(detail)" }
}

/// The database's metrics: `doorstep_db_transaction_seconds{kind="read"|"write"}` (each
/// transaction from its call to its end, waiting for a connection and retries included),
/// `doorstep_db_statement_seconds{kind="query"|"execute"}` (each statement on its
/// connection),
/// and the pool: `doorstep_db_pool_max` and `doorstep_db_pool_connections{state="in_use"|"idle"}`,
/// where in use counts the transactions running or waiting for a connection (so in use
/// above the maximum means callers queue). The statement timers are the process's own, made
/// on first use: bootstrap `MetricsSystem` before the first statement runs (the services do).
final class DatabaseMetrics: Sendable {
    static let query = Metrics.Timer(label: "doorstep_db_statement_seconds", dimensions: [("kind", "query")])
    static let execute = Metrics.Timer(label: "doorstep_db_statement_seconds", dimensions: [("kind", "execute")])
    let write = Metrics.Timer(label: "doorstep_db_transaction_seconds", dimensions: [("kind", "write")])
    let read = Metrics.Timer(label: "doorstep_db_transaction_seconds", dimensions: [("kind", "read")])
    private let inUse = Gauge(label: "doorstep_db_pool_connections", dimensions: [("state", "in_use")])
    private let idle = Gauge(label: "doorstep_db_pool_connections", dimensions: [("state", "idle")])
    private let active = Atomic<Int>(0)
    private let connections: Int

    init(connections: Int) {
        self.connections = connections
        Gauge(label: "doorstep_db_pool_max").record(connections)
        publish(0)
    }

    func measure<T>(_ timer: Metrics.Timer, _ body: () async throws -> T) async throws -> T {
        publish(active.add(1, ordering: .relaxed).newValue)
        let started = ContinuousClock.now
        defer {
            timer.record(duration: ContinuousClock.now - started)
            publish(active.subtract(1, ordering: .relaxed).newValue)
        }
        return try await body()
    }

    private func publish(_ running: Int) {
        inUse.record(running)
        idle.record(max(0, connections - running))
    }
}
