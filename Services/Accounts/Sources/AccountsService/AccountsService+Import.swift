import Crypto
import Foundation
import Logging
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

/// Bulk loading (ImportAccounts, ImportPayments; docs/ARCHITECTURE.md "Bulk loading"): the
/// records of a stream are written in batches, many per write transaction, each record
/// under a savepoint so that a refused one leaves the others of its batch in; the results of
/// a batch are sent once it committed, which is what acknowledges its records.
extension AccountsService {
    /// How the import streams batch their records.
    struct ImportLimits: Sendable {
        /// Records taken from the stream as one batch at most (checked together, then written).
        /// Default 512.
        var batchRecords = 512
        /// Records read ahead of the writer at most (what the server holds of a fast client's
        /// stream, besides the connection's buffer). Default 2048.
        var queuedRecords = 2048
        /// How long one write transaction of an import may run on SQLite before it commits and
        /// the next begins (its one writer makes every other write wait meanwhile). Default 25 ms.
        var transactionBudget: Duration = .milliseconds(25)
        /// The same on PostgreSQL, where an import locks only its own rows. Default 250 ms.
        var postgresTransactionBudget: Duration = .milliseconds(250)

        static let defaults = ImportLimits()
    }

    func importAccounts(_ requests: RequestStream<AccountsV1.ImportAccountsRequest>, _ context: ServerContext,
                        _ responses: ResponseStream<AccountsV1.ImportResult>) async throws {
        let actor = try context.requireCaller().actor
        let start = ContinuousClock.now
        let counts = try await runImport(requests, sequence: \.sequence, responses: responses, prepare: { batch, nowMs in
            self.prepareAccountRecords(batch, nowMs: nowMs, actor: actor)
        }, commit: { prepared, nowMs in
            try await self.writeAccountRecords(prepared, nowMs: nowMs, actor: actor)
        })
        context.logger.notice("accounts imported", metadata: counts.metadata(since: start))
    }

    /// An ImportAccounts batch checked (no database).
    func prepareAccountRecords(_ batch: [Received<AccountsV1.ImportAccountsRequest>], nowMs: Int64,
                               actor: TypeV1.Actor) -> Prepared<AccountRecord> {
        let key = importDigestKey()
        return batch.map { received in
            (sequence: received.record.sequence, item: Result<AccountRecord, DomainError> { () throws(DomainError) -> AccountRecord in
                if let problem = received.problem { throw problem }
                return try self.prepareAccountRecord(received.record, nowMs: nowMs, digestKey: key, actor: actor)
            })
        }
    }

    /// An ImportAccounts batch written (``inImportTransaction(_:_:)``); its results in order.
    func writeAccountRecords(_ prepared: Prepared<AccountRecord>, nowMs: Int64,
                             actor: TypeV1.Actor) async throws -> [AccountsV1.ImportResult] {
        let store = self.store
        let configuration = self.configuration
        return try await inImportTransaction(prepared) { db, sequence, record, keys in
            try Self.importAccountRecord(record, sequence: sequence, db: db, store: store, configuration: configuration,
                                         nowMs: nowMs, actor: actor, keys: &keys)
        }
    }

    func importPayments(_ requests: RequestStream<AccountsV1.ImportPaymentsRequest>, _ context: ServerContext,
                        _ responses: ResponseStream<AccountsV1.ImportResult>) async throws {
        let actor = try context.requireCaller().actor
        let start = ContinuousClock.now
        let store = self.store
        let configuration = self.configuration
        let counts = try await runImport(requests, sequence: \.sequence, responses: responses, prepare: { batch, nowMs in
            let key = self.importDigestKey()
            return batch.map { received in
                (sequence: received.record.sequence, item: Result<PaymentRecord, DomainError> { () throws(DomainError) -> PaymentRecord in
                    if let problem = received.problem { throw problem }
                    return try self.preparePaymentRecord(received.record, nowMs: nowMs, digestKey: key)
                })
            }
        }, commit: { prepared, nowMs in
            try await self.inImportTransaction(prepared) { db, sequence, record, _ in
                try db.savepoint {
                    try Self.importPaymentRecord(record, sequence: sequence, db: db, store: store, configuration: configuration,
                                                 nowMs: nowMs, actor: actor)
                }
            }
        })
        context.logger.notice("payments imported", metadata: counts.metadata(since: start))
    }

    /// A record with the problem found before reading the database (a bad sequence), if any.
    typealias Received<Record> = (record: Record, problem: DomainError?)
    /// A batch's records after the checks that need no database: each ready to write, or why not.
    typealias Prepared<Record> = [(sequence: Int64, item: Result<Record, DomainError>)]

    /// Reads the stream ahead of the writer (at most `queuedRecords`), takes every record
    /// queued (at most `batchRecords`) as one batch, checks it (`prepare`, no database) while
    /// the previous batch is being written, writes it (`commit`, one transaction) once the
    /// previous one committed, and sends each batch's results after its commit. Sequence
    /// numbers must increase within the stream.
    private func runImport<Record: Sendable, Ready: Sendable>(
        _ requests: RequestStream<Record>, sequence: KeyPath<Record, Int64> & Sendable,
        responses: ResponseStream<AccountsV1.ImportResult>,
        prepare: @escaping @Sendable ([Received<Record>], Int64) -> Prepared<Ready>,
        commit: @escaping @Sendable (Prepared<Ready>, Int64) async throws -> [AccountsV1.ImportResult]
    ) async throws -> ImportCounts {
        let limits = ImportLimits.defaults
        let inbox = ImportInbox<Record>(capacity: limits.queuedRecords)
        let clock = self.clock
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    for try await record in requests {
                        guard await inbox.put(record) else { return }
                    }
                    inbox.finish(nil)
                } catch {
                    inbox.finish(error)
                }
            }
            var counts = ImportCounts()
            var previous: Int64 = 0
            // The batch before: its commit (the next one starts after it) and the sending of its
            // results (the next batch's are sent after them). A batch's results go out as soon
            // as it committed, whether or not more records come.
            var before: (commit: Task<[AccountsV1.ImportResult], any Error>, send: Task<ImportCounts, any Error>)?
            do {
                while true {
                    let records = try await inbox.take(upTo: limits.batchRecords)
                    if records.isEmpty { break }
                    var batch: [Received<Record>] = []
                    batch.reserveCapacity(records.count)
                    for record in records {
                        let number = record[keyPath: sequence]
                        if number <= 0 {
                            batch.append((record, .invalidArgument("sequence", "must be greater than 0")))
                        } else if number <= previous {
                            batch.append((record, .invalidArgument("sequence", "must be greater than the previous record's (\(previous))")))
                        } else {
                            previous = number
                            batch.append((record, nil))
                        }
                    }
                    let nowMs = clock.nowMs()
                    // Checked while the batch before is written; written once it committed (so
                    // at most one batch waits behind the one being written).
                    let prepared = prepare(batch, nowMs)
                    _ = try await before?.commit.value
                    let commitTask = Task { try await commit(prepared, nowMs) }
                    let sendBefore = before?.send
                    let sendTask = Task {
                        do {
                            // The counts of the stream so far: the batches before, then this one.
                            var counts = try await sendBefore?.value ?? ImportCounts()
                            let results = try await commitTask.value
                            counts.batches += 1
                            for result in results {
                                counts.add(result.outcome)
                                try await responses.send(result)
                            }
                            return counts
                        } catch {
                            // Ends the call: the reader's next take throws it.
                            inbox.finish(error)
                            throw error
                        }
                    }
                    before = (commitTask, sendTask)
                }
                counts = try await before?.send.value ?? ImportCounts()
            } catch {
                before?.commit.cancel()
                before?.send.cancel()
                inbox.finish(CancellationError())
                group.cancelAll()
                throw error
            }
            try await group.waitForAll()
            return counts
        }
    }

    /// Runs `body` for each record of a batch in write transactions of at most
    /// ``ImportLimits/transactionBudget`` each (a record is not split; the others wait for
    /// the database's one writer meanwhile on SQLite). A record refused (a `DomainError` or
    /// `RPCError`) is answered REJECTED; `body` must then have written nothing of it: it runs
    /// under a savepoint whatever can be refused after its first write. Any other error
    /// (storage) fails the batch. The import keys a record adds to its last argument are
    /// written with the others of its transaction, at its end, in a few statements (those of
    /// a refused record are dropped).
    func inImportTransaction<Ready: Sendable>(
        _ prepared: Prepared<Ready>,
        _ body: @escaping @Sendable (SQLSession, Int64, Ready, inout [ImportKeyRow]) throws -> AccountsV1.ImportResult
    ) async throws -> [AccountsV1.ImportResult] {
        let store = self.store
        let budget = store.database.dialect == .postgres ? ImportLimits.defaults.postgresTransactionBudget
            : ImportLimits.defaults.transactionBudget
        var results: [AccountsV1.ImportResult] = []
        results.reserveCapacity(prepared.count)
        while results.count < prepared.count {
            let start = results.count
            results += try await store.database.write { db in
                let deadline = ContinuousClock.now + budget
                var done: [AccountsV1.ImportResult] = []
                var keys: [ImportKeyRow] = []
                for (sequence, item) in prepared[start...] {
                    switch item {
                    case .failure(let problem):
                        done.append(Self.rejected(sequence, problem))
                    case .success(let record):
                        var recordKeys: [ImportKeyRow] = []
                        do {
                            done.append(try body(db, sequence, record, &recordKeys))
                            keys += recordKeys
                        } catch {
                            guard error is DomainError || error is RPCError else { throw error }
                            done.append(Self.rejected(sequence, error))
                        }
                    }
                    if ContinuousClock.now >= deadline { break }
                }
                try store.setImportKeys(db, keys)
                return done
            }
        }
        return results
    }

    /// REJECTED with the status the single RPC would have returned: the code, the message,
    /// and for INVALID_ARGUMENT / FAILED_PRECONDITION the field path or rule id.
    static func rejected(_ sequence: Int64, _ error: any Error) -> AccountsV1.ImportResult {
        var result = AccountsV1.ImportResult()
        result.sequence = sequence
        result.outcome = .rejected
        // Through the status the single RPC returns (a domain refusal's Refusal is made there).
        let rpc = RPCError(from: error)
        result.code = Int32(rpc.code.rawValue)
        result.message = rpc.message
        if let details = rpc.details, let refusal = RPCError.refusal(inDetails: details) {
            result.refusal = refusal
        } else if rpc.code == .invalidArgument, let colon = rpc.message.firstIndex(of: ":"),
                  !rpc.message[..<colon].contains(" ") {
            let detail = rpc.message[rpc.message.index(after: colon)...].drop { $0 == " " }
            result.refusal = TypeV1.Refusal(violations: [TypeV1.Violation(field: String(rpc.message[..<colon]), detail: String(detail))])
        }
        return result
    }

    /// The key of the records' digests: derived from the data key (an HMAC of a constant
    /// under it), so a digest of personal data cannot be recomputed without the data key.
    /// Derived once per batch (the derivation is what costs; the HMACs are cheap).
    func importDigestKey() -> SymmetricKey {
        SymmetricKey(data: Data(base64Encoded: store.cipher.digest("import-record-digest", purpose: "import-keys")) ?? Data())
    }

    /// A keyed digest of a record's content (never read back; compared with the next
    /// import's).
    static func importDigest(_ message: some ProtoMessage, key: SymmetricKey) throws -> String {
        Data(HMAC<SHA256>.authenticationCode(for: try message.encode(), using: key)).base64EncodedString()
    }
}

/// One row of `import_keys` to write.
struct ImportKeyRow: Sendable {
    var kind: String
    var key: String
    var resourceID: String
    var digest: String
}

/// How many records of a stream ended how (the import's log line).
struct ImportCounts: Sendable {
    var created = 0
    var updated = 0
    var unchanged = 0
    var rejected = 0
    /// Write transactions.
    var batches = 0

    mutating func add(_ outcome: AccountsV1.ImportOutcome) {
        switch outcome {
        case .created: created += 1
        case .updated: updated += 1
        case .unchanged: unchanged += 1
        default: rejected += 1
        }
    }

    func metadata(since start: ContinuousClock.Instant) -> Logger.Metadata {
        let seconds = Double((ContinuousClock.now - start).milliseconds) / 1000
        let total = created + updated + unchanged + rejected
        return ["created": "\(created)", "updated": "\(updated)", "unchanged": "\(unchanged)", "rejected": "\(rejected)",
                "batches": "\(batches)",
                "records-per-second": "\(seconds > 0 ? Int(Double(total) / seconds) : total)"]
    }
}

extension AccountsStore {
    /// The resource an import key names and the digest of the last record imported for it.
    func importKey(_ db: SQLSession, kind: String, key: String) throws -> (resourceID: String, digest: String)? {
        guard let row = try db.fetchOne(sql: "SELECT resource_id, digest FROM import_keys WHERE kind = ? AND external_key = ?",
                                        arguments: [kind, key]) else { return nil }
        return (row["resource_id"], row["digest"])
    }

    /// The first events of a new account's timeline, numbered from 1, with their ids and
    /// encodings (ready for ``appendFirst(_:events:)``, e.g. made outside the write transaction).
    static func firstEvents(_ events: [AccountsV1.TimelineEvent], accountID: String,
                            nowMs: Int64) throws -> [(event: AccountsV1.TimelineEvent, encoded: [UInt8])] {
        try events.enumerated().map { index, original in
            var event = original
            event.id = IDGenerator.make(prefix: "evt", nowMs: nowMs)
            event.accountId = accountID
            event.sequence = Int64(index + 1)
            event.occurredMs = nowMs
            return (event, try event.encode())
        }
    }

    /// The timeline of an account just inserted (``firstEvents(_:accountID:nowMs:)``), in one
    /// statement (``append(_:events:accountID:nowMs:)`` without looking for the last number first).
    func appendFirst(_ db: SQLSession, events: [(event: AccountsV1.TimelineEvent, encoded: [UInt8])]) throws {
        guard let accountID = events.first?.event.accountId else { return }
        var arguments: [any SQLValueConvertible] = []
        for (event, body) in events {
            arguments += [accountID, event.sequence, event.eventType.rawValue, Data(body)] as [any SQLValueConvertible]
            try publish(db, event, encoded: body)
        }
        try db.execute(
            sql: "INSERT INTO timeline (account_id, sequence, event_type, body) VALUES "
                + Array(repeating: "(?, ?, ?, ?)", count: events.count).joined(separator: ", "),
            arguments: SQLArguments(arguments))
    }

    /// Records the resources and digests of the records just imported for their keys, the
    /// last row of a key winning, in statements of 2^k rows (at most 128: few distinct
    /// statements for the engines' caches; PostgreSQL refuses a statement that upserts one
    /// key twice).
    func setImportKeys(_ db: SQLSession, _ rows: [ImportKeyRow]) throws {
        var unique: [ImportKeyRow] = []
        unique.reserveCapacity(rows.count)
        var positions: [String: Int] = [:]
        for row in rows {
            let key = row.kind + "\u{1F}" + row.key
            if let position = positions[key] {
                unique[position] = row
            } else {
                positions[key] = unique.count
                unique.append(row)
            }
        }
        try Self.importKeyUpserts.execute(db, unique) { row in [row.kind, row.key, row.resourceID, row.digest] }
    }

    /// The upserts of up to 128 import keys in one statement.
    private static let importKeyUpserts = RowBatchStatements(
        prefix: "INSERT INTO import_keys (kind, external_key, resource_id, digest) VALUES ", tuple: "(?, ?, ?, ?)",
        suffix: " ON CONFLICT (kind, external_key) DO UPDATE SET resource_id = excluded.resource_id, digest = excluded.digest")

    /// Records the resource and digest of the record just imported for a key.
    func setImportKey(_ db: SQLSession, kind: String, key: String, resourceID: String, digest: String) throws {
        try db.execute(
            sql: """
                INSERT INTO import_keys (kind, external_key, resource_id, digest) VALUES (?, ?, ?, ?)
                ON CONFLICT (kind, external_key) DO UPDATE SET resource_id = excluded.resource_id, digest = excluded.digest
                """,
            arguments: [kind, key, resourceID, digest])
    }
}
