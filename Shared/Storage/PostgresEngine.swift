import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import Synchronization

/// The production engine: a PostgreSQL database reached through postgres-nio's connection
/// pool (``PostgresSettings``), shared by any number of replicas of one service.
///
/// **How a transaction runs.** The stores' bodies are synchronous (one code path for both
/// engines), so a transaction leases a pooled connection, then runs on a thread of this
/// engine's own thread pool (as many threads as connections: never a Swift-concurrency or
/// event-loop thread), where each statement waits for its answer from the connection's
/// event loop. Measured here: a blocking point query costs less than the async API's
/// (one thread switch per transaction instead of two per statement).
///
/// **Isolation.** Writes run `SERIALIZABLE`; a body that loses a serialization race
/// (SQLSTATE 40001, or a deadlock, 40P01) is rolled back and run again on a fresh snapshot,
/// with jittered backoff, for up to ``retryBudget``, so the rules it checks hold across
/// replicas exactly as they do with SQLite's single writer. Writes that only lock the rows
/// they change (``SQLDatabase/Isolation/rowLocks``) run `READ COMMITTED`. Reads run `REPEATABLE READ READ ONLY` (one
/// snapshot); point reads run without a transaction.
///
/// **Faults.** A connection that cannot be leased within `acquireTimeout`, a connection
/// lost mid-transaction, the server shutting down or refusing connections: UNAVAILABLE
/// (``StorageError/Reason/unavailable``); the outcome of a COMMIT lost with its connection
/// is unknown, and the caller's retry with the same request id settles it. The pool opens
/// new connections by itself once the server is back (a restart, or a promoted standby
/// behind the same address): no restart of the service.
///
/// **Ownership.** `PostgresClient.run()` runs in a task owned by this engine, from
/// ``open(settings:migrations:logger:)`` until ``close()``; the thread pool likewise.
final class PostgresEngine: SQLEngine {
    /// How long a write keeps running its body again after serialization failures before it
    /// is given up as busy (measured: 32 crews booking at once lose a race about 12 times per
    /// visit, mostly to false conflicts of page-level predicate locks).
    static let retryBudget: Duration = .seconds(10)

    let settings: PostgresSettings
    private let client: PostgresClient
    private let runner: Task<Void, Never>
    private let threadPool: NIOThreadPool
    private let logger: Logger
    private let warnings = LogThrottle(interval: .seconds(5))

    var dialect: SQLDialect { .postgres }
    var connections: Int { settings.poolSize }
    /// Every statement is a round trip, with a pool lease and a thread switch before it.
    var coalescesPointReads: Bool { true }
    var location: String { settings.redactedURL }

    private init(settings: PostgresSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        var configuration = PostgresClient.Configuration(
            host: settings.host, port: settings.port, username: settings.username, password: settings.password,
            database: settings.database,
            tls: settings.tls == .require ? .require(.makeClientConfiguration()) : .disable)
        configuration.options.maximumConnections = settings.poolSize
        // Two stay open however idle the service is: the point-read batcher keeps two
        // statements in flight, and a burst of reads after a quiet minute would otherwise wait
        // for a connection to be opened (a backend forked and started on the server).
        configuration.options.minimumConnections = min(2, settings.poolSize)
        configuration.options.connectTimeout = settings.connectTimeout
        configuration.options.connectionIdleTimeout = .seconds(60)
        configuration.options.keepAliveBehavior = .init(frequency: .seconds(30))
        var parameters = [("statement_timeout", "\(settings.statementTimeout.milliseconds)"),
                          ("application_name", "doorstep")]
        if let schema = settings.schema { parameters.append(("search_path", schema)) }
        configuration.options.additionalStartupParameters = parameters
        var poolLogger = logger
        poolLogger.logLevel = max(logger.logLevel, .notice)  // the pool's connection chatter is debug detail
        let client = PostgresClient(configuration: configuration, backgroundLogger: poolLogger)
        self.client = client
        self.runner = Task { await client.run() }
        self.threadPool = NIOThreadPool(numberOfThreads: settings.poolSize)
        threadPool.start()
    }

    /// Connects (retrying for `startupTimeout`) and migrates; throws one line naming the
    /// server when it cannot be reached in time.
    static func open(settings: PostgresSettings, migrations: SQLDatabase.Migrations,
                     logger: Logger) async throws(StorageOpenError) -> PostgresEngine {
        let engine = PostgresEngine(settings: settings, logger: logger)
        let deadline = ContinuousClock.now + settings.startupTimeout
        while true {
            do {
                // Each probe waits at most what is left of the startup timeout (at least 1 s).
                let left = max(.seconds(1), min(settings.acquireTimeout, deadline - ContinuousClock.now))
                _ = try await engine.run(kind: .point, acquireTimeout: left) { db in try db.fetchValue(Int.self, sql: "SELECT 1") }
                break
            } catch {
                let reason = PostgresFailure.describe(error)
                if ContinuousClock.now >= deadline {
                    await engine.close()
                    throw StorageOpenError(location: settings.redactedURL,
                                           problem: "cannot reach \(settings.host):\(settings.port) within \(settings.startupTimeout) (\(reason))")
                }
                logger.warning("database not reachable yet; retrying",
                               metadata: ["database": "\(settings.redactedURL)", "error": "\(reason)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
        do {
            try await engine.migrate(migrations)
        } catch {
            await engine.close()
            throw StorageOpenError(location: settings.redactedURL, problem: "migration failed: \(PostgresFailure.describe(error))")
        }
        return engine
    }

    // MARK: Transactions

    enum Kind {
        case write
        case writeRowLocks
        case read
        case point

        var begin: String? {
            switch self {
            case .write: "BEGIN ISOLATION LEVEL SERIALIZABLE"
            case .writeRowLocks: "BEGIN ISOLATION LEVEL READ COMMITTED"
            case .read: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
            case .point: nil
            }
        }
    }

    func write<T: Sendable>(isolation: SQLDatabase.Isolation, _ body: @escaping @Sendable (SQLSession) throws -> T) async throws -> T {
        try await mapped { try await run(kind: isolation == .serializable ? .write : .writeRowLocks, body) }
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (SQLSession) throws -> T) async throws -> T {
        try await mapped { try await run(kind: .read, body) }
    }

    func readPoint<T: Sendable>(_ body: @escaping @Sendable (SQLSession) throws -> T) async throws -> T {
        try await mapped { try await run(kind: .point, body) }
    }

    func isAvailable() async -> Bool {
        (try? await run(kind: .point) { db in try db.fetchValue(Int.self, sql: "SELECT 1") }) == 1
    }

    func close() async {
        runner.cancel()
        await runner.value
        try? await threadPool.shutdownGracefully()
    }

    /// Leases a connection (at most `acquireTimeout`), runs the transaction on the thread
    /// pool, and — when the connection turned out closed before anything ran on it — does it
    /// once more on another (nothing was sent, so nothing can have happened twice).
    private func run<T: Sendable>(kind: Kind, acquireTimeout: Duration? = nil,
                                  _ body: @escaping @Sendable (SQLSession) throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do {
                return try await withLeasedConnection(timeout: acquireTimeout ?? settings.acquireTimeout) { [threadPool, logger, settings] connection in
                    try await threadPool.runIfActive {
                        try Self.transaction(kind: kind, connection: connection, settings: settings, logger: logger, body)
                    }
                }
            } catch PostgresFailure.closedBeforeUse where attempt < 2 {
                attempt += 1
            }
        }
    }

    /// The body of one transaction, on a pool thread: BEGIN, body, COMMIT; ROLLBACK when it
    /// throws; the whole again after a serialization failure (writes only).
    private static func transaction<T>(kind: Kind, connection: PostgresConnection, settings: PostgresSettings, logger: Logger,
                                       _ body: (SQLSession) throws -> T) throws -> T {
        let driver = PostgresDriver(connection: connection, logger: logger,
                                    timeout: settings.statementTimeout + .seconds(5))
        let giveUp = ContinuousClock.now + retryBudget
        var attempt = 1
        while true {
            do {
                if let begin = kind.begin { _ = try driver.execute(begin, []) }
                let session = SQLSession(dialect: .postgres, driver: driver)
                let value = try body(session)
                if kind.begin != nil {
                    try session.runFinalSteps()
                    try driver.commit()
                    session.runCommitEffects()
                }
                return value
            } catch {
                if kind.begin != nil, !connection.isClosed { _ = try? driver.execute("ROLLBACK", []) }
                if kind != .read, kind != .point, ContinuousClock.now < giveUp, !connection.isClosed,
                   PostgresFailure.isSerializationFailure(error) {
                    // Back off a little, with jitter, so the racers do not meet again at once.
                    let ceiling = min(20_000, 250 << min(attempt, 7))
                    usleep(UInt32.random(in: UInt32(ceiling / 4)...UInt32(ceiling)))
                    attempt += 1
                    continue
                }
                throw error
            }
        }
    }

    /// `body` with a pooled connection, or UNAVAILABLE when none can be had within
    /// `acquireTimeout` (the pool keeps trying to connect while the server is down; a lease
    /// would otherwise wait for as long). The timer and the lease race once, through one
    /// atomic: a body never starts after its call was answered UNAVAILABLE.
    private func withLeasedConnection<T: Sendable>(timeout: Duration,
                                                   _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let race = LeaseRace()
        let client = self.client
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await client.withConnection { connection in
                    guard race.claim(.leased) else { throw CancellationError() }
                    return try await body(connection)
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                guard race.claim(.timedOut) else { return nil }
                throw PostgresFailure.noConnection(timeout)
            }
            while let result = try await group.next() {
                if let value = result {
                    group.cancelAll()
                    return value
                }
            }
            throw CancellationError()
        }
    }

    // MARK: Migrations

    /// Applies the missing migrations, each in its own transaction, under an advisory lock
    /// (replicas starting together take turns; the second finds them applied).
    private func migrate(_ migrations: SQLDatabase.Migrations) async throws {
        let schema = settings.schema
        let steps = migrations.steps
        let lockName = "doorstep-migrations/\(settings.database)/\(schema ?? "public")"
        _ = try await run(kind: .point) { db -> Bool in
            _ = try db.fetchOne(sql: "SELECT pg_advisory_lock(hashtext(?))", arguments: [lockName])
            defer { _ = try? db.fetchOne(sql: "SELECT pg_advisory_unlock(hashtext(?))", arguments: [lockName]) }
            if let schema { try db.execute(sql: "CREATE SCHEMA IF NOT EXISTS \(schema)") }
            try db.execute(sql: "CREATE TABLE IF NOT EXISTS doorstep_migrations (name TEXT PRIMARY KEY, applied_ms BIGINT NOT NULL)")
            let applied = Set(try db.fetchValues(String.self, sql: "SELECT name FROM doorstep_migrations"))
            for step in steps where !applied.contains(step.name) {
                try db.execute(sql: "BEGIN")
                do {
                    for statement in Self.statements(step.postgres) { try db.execute(sql: statement) }
                    try db.execute(sql: "INSERT INTO doorstep_migrations (name, applied_ms) VALUES (?, ?)",
                                   arguments: [step.name, Int64(Date().timeIntervalSince1970 * 1000)])
                    try db.execute(sql: "COMMIT")
                } catch {
                    _ = try? db.execute(sql: "ROLLBACK")
                    throw PostgresFailure.migration(step.name, PostgresFailure.describe(error))
                }
            }
            return true
        }
    }

    /// A migration script split into statements at top-level semicolons (the extended
    /// protocol takes one statement at a time).
    static func statements(_ script: String) -> [String] {
        var statements: [String] = []
        var current = ""
        var quote: Character?
        for character in script {
            if let open = quote {
                if character == open { quote = nil }
            } else if character == "'" || character == "\"" {
                quote = character
            } else if character == ";" {
                statements.append(current)
                current = ""
                continue
            }
            current.append(character)
        }
        statements.append(current)
        return statements.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
    }

    // MARK: Errors

    /// The body's own errors pass; the engine's become a ``StorageError`` (logged here).
    private func mapped<T>(_ operation: () async throws -> T) async throws -> T {
        do {
            return try await operation()
        } catch {
            guard let reason = PostgresFailure.reason(error) else { throw error }
            let detail = PostgresFailure.describe(error)
            switch reason {
            case .failed:
                logger.error("storage failure", metadata: ["database": "\(location)", "error": "\(detail)"])
            case .busy, .unavailable:
                // An outage fails every call: one warning, then at most one every 5 s with how
                // many were left out (health says the rest).
                if let suppressed = warnings.admit() {
                    logger.warning("storage \(reason)", metadata: [
                        "database": "\(location)", "error": "\(detail)", "similar-since-last": "\(suppressed)"])
                }
            }
            throw StorageError(reason: reason, detail: "\(location): \(detail)")
        }
    }

}

/// At most one log line per interval: ``admit()`` says whether to log now, and how many
/// were left out since the last one.
final class LogThrottle: Sendable {
    private let interval: Duration
    private let state = Mutex<(last: ContinuousClock.Instant?, suppressed: Int)>((nil, 0))

    init(interval: Duration) { self.interval = interval }

    func admit() -> Int? {
        let now = ContinuousClock.now
        return state.withLock { state -> Int? in
            if let last = state.last, now - last < interval {
                state.suppressed += 1
                return nil
            }
            let suppressed = state.suppressed
            state = (now, 0)
            return suppressed
        }
    }
}

/// Who wins between a lease and its timeout (exactly one claim succeeds).
private final class LeaseRace: Sendable {
    enum Winner: UInt8 {
        case leased = 1
        case timedOut = 2
    }

    private let state = Atomic<UInt8>(0)

    func claim(_ winner: Winner) -> Bool {
        state.compareExchange(expected: 0, desired: winner.rawValue, ordering: .acquiringAndReleasing).exchanged
    }
}

/// The engine's own failures, and the reading of postgres-nio's.
enum PostgresFailure: Error, CustomStringConvertible {
    /// The leased connection was already closed; nothing was sent on it.
    case closedBeforeUse
    /// The connection closed while a transaction was using it.
    case connectionLost
    /// No pooled connection within the acquire timeout.
    case noConnection(Duration)
    /// A statement got no answer within the client-side timeout; its connection is dropped.
    case noAnswer(Duration)
    /// COMMIT answered ROLLBACK (the transaction had failed).
    case commitRolledBack
    case migration(String, String)

    var description: String {
        switch self {
        case .closedBeforeUse, .connectionLost: "the connection to the database closed"
        case .noConnection(let timeout): "no database connection within \(timeout)"
        case .noAnswer(let timeout): "no answer from the database within \(timeout)"
        case .commitRolledBack: "the transaction was rolled back at commit"
        case .migration(let name, let problem): "\(name): \(problem)"
        }
    }

    static func sqlState(_ error: any Error) -> String? {
        (error as? PSQLError)?.serverInfo?[.sqlState]
    }

    static func isSerializationFailure(_ error: any Error) -> Bool {
        let state = sqlState(error)
        return state == "40001" || state == "40P01"
    }

    /// nil for errors that are not the engine's (the body's own pass through unchanged).
    static func reason(_ error: any Error) -> StorageError.Reason? {
        if let failure = error as? PostgresFailure {
            switch failure {
            case .closedBeforeUse, .connectionLost, .noConnection, .noAnswer: return .unavailable
            case .commitRolledBack, .migration: return .failed
            }
        }
        if let error = error as? PSQLError {
            if let state = error.serverInfo?[.sqlState] {
                switch state {
                case "40001", "40P01", "55P03", "57014": return .busy  // serialization, deadlock, lock or statement timeout
                case "57P01", "57P02", "57P03", "53300", "25006": return .unavailable  // shutdown, too many connections, read-only standby
                default: return state.hasPrefix("08") ? .unavailable : .failed
                }
            }
            switch error.code {
            case .serverClosedConnection, .clientClosedConnection, .connectionError, .uncleanShutdown, .poolClosed:
                return .unavailable
            default:
                return .failed
            }
        }
        if error is PostgresDecodingError { return .failed }
        return nil
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                return "\(message) (SQLSTATE \(error.serverInfo?[.sqlState] ?? "?"))"
            }
            if let underlying = error.underlying { return "\(error.code): \(underlying)" }
            return "\(error.code)"
        }
        if error is PostgresDecodingError { return String(reflecting: error) }
        return "\(error)"
    }
}

/// Statements on one leased connection, each waiting (on a pool thread) for its answer.
final class PostgresDriver: SQLDriver {
    let connection: PostgresConnection
    private let logger: Logger
    private let timeout: Duration
    private var used = false

    init(connection: PostgresConnection, logger: Logger, timeout: Duration) {
        self.connection = connection
        self.logger = logger
        self.timeout = timeout
    }

    func execute(_ sql: String, _ arguments: [SQLValue]) throws -> Int {
        try run(sql, arguments).metadata.rows ?? 0
    }

    func query(_ sql: String, _ arguments: [SQLValue], limit: Int?) throws -> [SQLRow] {
        let result = try run(sql, arguments)
        guard let first = result.rows.first else { return [] }
        let columns = SQLColumns(first.map(\.columnName))
        var rows: [SQLRow] = []
        rows.reserveCapacity(limit.map { min($0, result.rows.count) } ?? result.rows.count)
        for row in result.rows {
            rows.append(SQLRow(columns: columns, values: try row.map(Self.value)))
            if let limit, rows.count >= limit { break }
        }
        return rows
    }

    func eachRow(_ sql: String, _ arguments: [SQLValue], _ read: (SQLRowInPlace) throws -> Void) throws {
        for row in try run(sql, arguments).rows { try read(SQLRowInPlace(.postgres(PostgresRandomAccessRow(row)))) }
    }

    /// COMMIT, failing when the server rolled the transaction back instead.
    func commit() throws {
        guard try run("COMMIT", []).metadata.command == "COMMIT" else { throw PostgresFailure.commitRolledBack }
    }

    /// Sends one statement and waits for all of its answer. A query written to a closed
    /// connection would never be answered, so that is checked first; an answer that does
    /// not come within the timeout drops the connection (its state is unknown; the pool
    /// replaces it).
    private func run(_ sql: String, _ arguments: [SQLValue]) throws -> PostgresQueryResult {
        guard !connection.isClosed else { throw used ? PostgresFailure.connectionLost : PostgresFailure.closedBeforeUse }
        used = true
        var bindings = PostgresBindings(capacity: arguments.count)
        for argument in arguments {
            switch argument {
            case .null: bindings.appendNull()
            case .integer(let v): bindings.append(v)
            case .real(let v): bindings.append(v)
            case .text(let v): bindings.append(v)
            case .blob(let v): bindings.append(ByteBuffer(bytes: v))
            }
        }
        let query = PostgresQuery(unsafeSQL: PlaceholderCache.shared.postgresText(sql), binds: bindings)
        let future: EventLoopFuture<PostgresQueryResult> = connection.query(query, logger: logger)
        let answer = Answer<PostgresQueryResult>()
        future.whenComplete { answer.set($0) }
        // A statement sent just as the connection closed is never answered: the wait also
        // ends when the connection is found closed (checked every 100 ms).
        let connection = self.connection
        let result: Result<PostgresQueryResult, any Error>
        switch answer.wait(timeout: timeout, abandoned: { connection.isClosed }) {
        case .answered(let answered):
            result = answered
        case .abandoned:
            throw PostgresFailure.connectionLost
        case .timedOut:
            _ = connection.close() as EventLoopFuture<Void>
            throw PostgresFailure.noAnswer(timeout)
        }
        do {
            return try result.get()
        } catch let error as PSQLError where connection.isClosed && error.serverInfo == nil {
            throw PostgresFailure.connectionLost
        }
    }

    /// A result cell in the storage classes the stores read (see ``SQLValue``).
    static func value(_ cell: PostgresCell) throws -> SQLValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .int2, .int4, .int8, .oid: return .integer(try cell.decode(Int64.self))
        case .bool: return .integer(try cell.decode(Bool.self) ? 1 : 0)
        case .float4, .float8: return .real(try cell.decode(Double.self))
        case .numeric:  // SUM of BIGINT: an integer when it is one
            let number = try cell.decode(Decimal.self)
            var rounded = Decimal()
            var copy = number
            NSDecimalRound(&rounded, &copy, 0, .plain)
            if rounded == number, let integer = Int64(exactly: NSDecimalNumber(decimal: number).doubleValue) {
                return .integer(integer)
            }
            return .real(NSDecimalNumber(decimal: number).doubleValue)
        case .bytea:
            let buffer = try cell.decode(ByteBuffer.self)
            return .blob(buffer.readableBytesView.withContiguousStorageIfAvailable { Data($0) } ?? Data(buffer.readableBytesView))
        default: return .text(try cell.decode(String.self))
        }
    }
}

/// One statement's answer, handed from the event loop to the waiting pool thread.
private final class Answer<Value: Sendable>: Sendable {
    private let result = Mutex<Result<Value, any Error>?>(nil)
    private let done = DispatchSemaphore(value: 0)

    func set(_ value: Result<Value, any Error>) {
        result.withLock { $0 = value }
        done.signal()
    }

    enum Outcome {
        case answered(Result<Value, any Error>)
        /// `abandoned` said so before an answer came.
        case abandoned
        case timedOut
    }

    /// The answer; or, when none came, `abandoned` once it says so (asked every 100 ms), or
    /// `timedOut` after `timeout`.
    func wait(timeout: Duration, abandoned: () -> Bool) -> Outcome {
        let deadline = ContinuousClock.now + timeout
        while true {
            let left = deadline - ContinuousClock.now
            let slice = min(left, .milliseconds(100))
            let nanoseconds = max(0, slice.components.seconds * 1_000_000_000 + slice.components.attoseconds / 1_000_000_000)
            if done.wait(timeout: .now() + .nanoseconds(Int(nanoseconds))) == .success {
                if let value = result.withLock({ $0 }) { return .answered(value) }
            }
            if abandoned() {
                // An answer may have raced the close: prefer it.
                if let value = result.withLock({ $0 }) { return .answered(value) }
                return .abandoned
            }
            if ContinuousClock.now >= deadline { return .timedOut }
        }
    }
}

/// `?` → `$n` once per SQL text (the stores' texts are few and fixed, except `IN (?, ?, …)`
/// lists; the cache forgets everything when it passes its bound).
final class PlaceholderCache: Sendable {
    static let shared = PlaceholderCache()
    private let texts = Mutex<[String: String]>([:])

    func postgresText(_ sql: String) -> String {
        if let cached = texts.withLock({ $0[sql] }) { return cached }
        let converted = SQLDialect.postgresText(sql)
        texts.withLock { texts in
            if texts.count >= 2048 { texts.removeAll(keepingCapacity: true) }
            texts[sql] = converted
        }
        return converted
    }
}
