import Foundation

/// What an engine runs one statement with, on the thread of the transaction that owns it.
protocol SQLDriver: AnyObject {
    /// Runs a statement that returns no rows; returns how many rows it changed.
    func execute(_ sql: String, _ arguments: [SQLValue]) throws -> Int
    /// Runs a query; returns its rows (at most `limit` when given).
    func query(_ sql: String, _ arguments: [SQLValue], limit: Int?) throws -> [SQLRow]
    /// Runs a query and hands its first row to `read` where the engine holds it; nil when
    /// there is no row.
    func firstRow<T>(_ sql: String, _ arguments: [SQLValue], _ read: (SQLRowInPlace) throws -> T) throws -> T?
    /// Runs a query and hands each of its rows, in order, to `read` where the engine holds it.
    func eachRow(_ sql: String, _ arguments: [SQLValue], _ read: (SQLRowInPlace) throws -> Void) throws
}

extension SQLDriver {
    /// An engine that copies its rows anyway: the first of them, copied.
    func firstRow<T>(_ sql: String, _ arguments: [SQLValue], _ read: (SQLRowInPlace) throws -> T) throws -> T? {
        guard let row = try query(sql, arguments, limit: 1).first else { return nil }
        return try read(SQLRowInPlace(.copied(row)))
    }

    /// An engine without rows of its own to lend: each row, copied.
    func eachRow(_ sql: String, _ arguments: [SQLValue], _ read: (SQLRowInPlace) throws -> Void) throws {
        for row in try query(sql, arguments, limit: nil) { try read(SQLRowInPlace(.copied(row))) }
    }
}

/// One transaction's access to the database, handed to the body of ``SQLDatabase/write(_:)``
/// and ``SQLDatabase/read(_:)``. Statements are written once, with `?` placeholders, for
/// both engines (``SQLDialect`` says what differs); the session runs them synchronously on
/// the transaction's own thread. Valid only inside the body it was handed to.
public final class SQLSession {
    /// The engine behind this session, for the few clauses that differ (row locks).
    public let dialect: SQLDialect
    let driver: any SQLDriver

    /// Work the transaction runs last, just before it commits (``beforeCommit(_:)``).
    private var finalSteps: [(SQLSession) throws -> Void] = []
    /// Work that runs once the transaction has committed (``afterCommit(_:)``).
    private var commitEffects: [@Sendable () -> Void] = []
    /// Keys ``firstTime(_:)`` has seen in this transaction.
    private var seenKeys: Set<String> = []
    /// Objects kept for the rest of the transaction (``local(_:make:)``).
    private var locals: [String: AnyObject] = [:]
    /// How many ``savepoint(_:)`` bodies are running (names nested savepoints).
    private var savepointDepth = 0

    init(dialect: SQLDialect, driver: any SQLDriver) {
        self.dialect = dialect
        self.driver = driver
    }

    /// Defers `step` to the end of the write transaction: steps run in the order they were
    /// deferred, after the body returned and right before COMMIT (a step that throws rolls
    /// the whole transaction back). A step deferred inside a ``savepoint(_:)`` whose body
    /// throws is dropped with the savepoint. For writes that must come last: ones that take a
    /// lock every writer queues for (the event log's), so that lock is held only for the
    /// commit and never while the transaction waits for another lock.
    public func beforeCommit(_ step: @escaping (SQLSession) throws -> Void) {
        finalSteps.append(step)
    }

    /// Runs `effect` once the write transaction has committed (never when it rolls back, nor
    /// when registered in a ``savepoint(_:)`` that was undone): e.g. waking whoever waits for
    /// what the transaction wrote. It must not fail and should not block.
    public func afterCommit(_ effect: @escaping @Sendable () -> Void) {
        commitEffects.append(effect)
    }

    /// True the first time `key` is asked in this transaction, false after (e.g. "this
    /// transaction already holds the event log's lock").
    public func firstTime(_ key: String) -> Bool {
        seenKeys.insert(key).inserted
    }

    /// The object kept under `key` for the rest of this transaction, made by `make` the first
    /// time it is asked for (e.g. rows gathered by ``beforeCommit(_:)`` steps to be written in
    /// one statement). Not undone by a savepoint: keep in it only what the final steps gather.
    public func local<T: AnyObject>(_ key: String, make: () -> T) -> T {
        if let kept = locals[key] as? T { return kept }
        let made = make()
        locals[key] = made
        return made
    }

    /// Runs `body` under a savepoint: when it throws, what it wrote (and the steps it
    /// deferred) is undone and the error rethrown, and the transaction goes on without it.
    public func savepoint<T>(_ body: () throws -> T) throws -> T {
        savepointDepth += 1
        defer { savepointDepth -= 1 }
        let name = "doorstep_savepoint_\(savepointDepth)"
        let deferred = (finalSteps.count, commitEffects.count)
        try execute(sql: "SAVEPOINT \(name)")
        do {
            let value = try body()
            try execute(sql: "RELEASE SAVEPOINT \(name)")
            return value
        } catch {
            finalSteps.removeSubrange(deferred.0...)
            commitEffects.removeSubrange(deferred.1...)
            try execute(sql: "ROLLBACK TO SAVEPOINT \(name)")
            try execute(sql: "RELEASE SAVEPOINT \(name)")
            throw error
        }
    }

    /// Runs the deferred steps (the engines call it before COMMIT); a step may defer more.
    func runFinalSteps() throws {
        var index = 0
        while index < finalSteps.count {
            try finalSteps[index](self)
            index += 1
        }
        finalSteps.removeAll()
    }

    /// Runs the effects registered with ``afterCommit(_:)`` (the engines call it after COMMIT
    /// succeeded).
    func runCommitEffects() {
        for effect in takeCommitEffects() { effect() }
    }

    /// The effects registered with ``afterCommit(_:)``, for an engine that commits after the
    /// session is gone (SQLite: GRDB commits when the write closure returns).
    func takeCommitEffects() -> [@Sendable () -> Void] {
        defer { commitEffects.removeAll() }
        return commitEffects
    }

    /// Runs an INSERT, UPDATE, DELETE or DDL statement; returns the number of rows changed.
    @discardableResult
    public func execute(sql: String, arguments: SQLArguments = []) throws -> Int {
        let started = ContinuousClock.now
        defer { DatabaseMetrics.execute.record(duration: ContinuousClock.now - started) }
        return try driver.execute(sql, arguments.values)
    }

    /// Every row of a query.
    public func fetchAll(sql: String, arguments: SQLArguments = []) throws -> [SQLRow] {
        try query(sql, arguments, limit: nil)
    }

    /// The first row of a query, or nil.
    public func fetchOne(sql: String, arguments: SQLArguments = []) throws -> SQLRow? {
        try query(sql, arguments, limit: 1).first
    }

    /// Reads the first row of a query in place: `read` gets the row where the engine holds it
    /// (``SQLRowInPlace``; on SQLite a blob is lent, not copied) and returns what it makes of
    /// it; nil when there is no row. For a lookup by key whose stored record is decoded at once.
    public func readFirstRow<T>(sql: String, arguments: SQLArguments = [], _ read: (SQLRowInPlace) throws -> T) throws -> T? {
        let started = ContinuousClock.now
        defer { DatabaseMetrics.query.record(duration: ContinuousClock.now - started) }
        return try driver.firstRow(sql, arguments.values, read)
    }

    /// Reads every row of a query in place, in order (``SQLRowInPlace``; on PostgreSQL a bytea
    /// is lent from the answer's buffer, not copied): for many records decoded at once.
    public func readRows(sql: String, arguments: SQLArguments = [], _ read: (SQLRowInPlace) throws -> Void) throws {
        let started = ContinuousClock.now
        defer { DatabaseMetrics.query.record(duration: ContinuousClock.now - started) }
        try driver.eachRow(sql, arguments.values, read)
    }

    private func query(_ sql: String, _ arguments: SQLArguments, limit: Int?) throws -> [SQLRow] {
        let started = ContinuousClock.now
        defer { DatabaseMetrics.query.record(duration: ContinuousClock.now - started) }
        return try driver.query(sql, arguments.values, limit: limit)
    }

    /// The first column of the first row as `T`; nil when there is no row or it is NULL.
    public func fetchValue<T: SQLValueConvertible>(_: T.Type, sql: String, arguments: SQLArguments = []) throws -> T? {
        guard let row = try fetchOne(sql: sql, arguments: arguments), let first = row.values.first else { return nil }
        if case .null = first { return nil }
        return row[0] as T
    }

    /// Reads a query's rows in order, `batchSize` at a time (`LIMIT`/`OFFSET` appended to
    /// `sql`, which must not have its own), handing each to `visit` until it returns false or
    /// the rows run out: for scans that filter in Swift and stop at a page, without loading
    /// every row. Run it inside one transaction (a read) so the batches see one snapshot.
    public func scan(sql: String, arguments: SQLArguments = [], batchSize: Int = 256,
                     _ visit: (SQLRow) throws -> Bool) throws {
        var offset = 0
        while true {
            var batchArguments = arguments
            batchArguments.append(batchSize)
            batchArguments.append(offset)
            let rows = try fetchAll(sql: sql + " LIMIT ? OFFSET ?", arguments: batchArguments)
            for row in rows where try !visit(row) { return }
            if rows.count < batchSize { return }
            offset += rows.count
        }
    }

    /// The first column of every row as `T`.
    public func fetchValues<T: SQLValueConvertible>(_: T.Type, sql: String, arguments: SQLArguments = []) throws -> [T] {
        try fetchAll(sql: sql, arguments: arguments).map { $0[0] as T }
    }
}
