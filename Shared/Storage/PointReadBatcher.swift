import Metrics
import Synchronization

/// Point reads of one kind (a record by its key) coalesced into one statement per batch on an
/// engine where every statement is a round trip to a server (PostgreSQL): reads that arrive
/// while `maxInFlight` batches are running wait, and the next batch takes up to `maxBatch` of
/// them at once. An idle service reads alone at once (no timer, no added latency); a loaded one
/// pays the statement's fixed cost — the pool lease, the thread switch, the round trip, the
/// server's parse and plan — once per batch instead of once per read.
///
/// Nothing about the answer changes: each batch is one statement started after every read in
/// it arrived, so a read sees every commit acknowledged before it was asked, as a read of its
/// own would (``SQLDatabase/readPoint(_:)``). Each read gets its own row: a key asked twice in
/// one batch is looked up twice (`fetch` is handed the keys as asked, duplicates included).
///
/// On SQLite, whose point reads are in-process calls on the caller's thread, a read is the
/// same `fetch` of one key, run through ``SQLDatabase/readPoint(_:)`` at once.
///
/// Metric: `doorstep_db_point_read_batch_size{reads}` (histogram), the reads each statement
/// served; `reads` names the kind (e.g. `account`).
public final class PointReadBatcher<Value: Sendable>: Sendable {
    /// Reads the rows of `keys`, in the same order: `nil` where a key has no row, a failure
    /// where one row cannot be used (it fails that read only). A thrown error (the database
    /// unavailable) fails every read of the batch.
    public typealias Fetch = @Sendable (SQLSession, _ keys: [String]) throws -> [Result<Value, any Error>?]

    private struct Waiting {
        let key: String
        let continuation: UnsafeContinuation<Value?, any Error>
    }

    private struct State {
        var waiting: [Waiting] = []
        var inFlight = 0
    }

    private let database: SQLDatabase
    private let fetch: Fetch
    private let coalesces: Bool
    /// The most reads one statement serves.
    public let maxBatch: Int
    /// The most batches running at once. Two keep the round trip busy (one statement on its
    /// way while the rows of the other are used); more only split the waiting reads into
    /// smaller batches, each with the fixed cost again.
    public let maxInFlight: Int
    private let state = Mutex(State())
    private let sizes: Recorder

    /// `name`: the kind of read, for the metric; `maxBatch`: 1…1000; `maxInFlight`: 1 up to
    /// the database's connection count (default 2); `coalesce`: by default whether the engine
    /// gains from it (PostgreSQL).
    public init(_ name: String, database: SQLDatabase, maxBatch: Int = 128, maxInFlight: Int? = nil, coalesce: Bool? = nil,
                fetch: @escaping Fetch) {
        self.database = database
        self.fetch = fetch
        self.sizes = Recorder(label: SQLDatabase.pointReadBatchSizeMetric, dimensions: [("reads", name)], aggregate: true)
        self.maxBatch = min(1000, max(1, maxBatch))
        self.maxInFlight = max(1, min(maxInFlight ?? 2, database.connections))
        self.coalesces = coalesce ?? database.coalescesPointReads
    }

    /// How many reads wait for a batch to take them now.
    public var waiting: Int { state.withLock { $0.waiting.count } }

    /// The row of `key` (nil when there is none).
    public func read(_ key: String) async throws -> Value? {
        guard coalesces else {
            let fetch = self.fetch
            sizes.record(1)
            guard let result = try await database.readPoint({ db in try Self.checked(fetch(db, [key]), count: 1)[0] }) else { return nil }
            return try result.get()
        }
        // Resumed exactly once: by the batch that takes the read, with its row or its error.
        return try await withUnsafeThrowingContinuation { continuation in
            let batch = state.withLock { state -> [Waiting]? in
                state.waiting.append(Waiting(key: key, continuation: continuation))
                return Self.take(&state, maxBatch: maxBatch, maxInFlight: maxInFlight)
            }
            if let batch { start(batch) }
        }
    }

    /// The next batch when one may start now (and counts it as running).
    private static func take(_ state: inout State, maxBatch: Int, maxInFlight: Int) -> [Waiting]? {
        guard state.inFlight < maxInFlight, !state.waiting.isEmpty else { return nil }
        let count = min(maxBatch, state.waiting.count)
        let batch = Array(state.waiting.prefix(count))
        state.waiting.removeFirst(count)
        state.inFlight += 1
        return batch
    }

    /// Runs `first`, then whatever waits meanwhile, until nothing does.
    private func start(_ first: [Waiting]) {
        Task {
            var batch = first
            while true {
                let keys = batch.map { $0.key }
                let fetch = self.fetch
                sizes.record(keys.count)
                do {
                    let results = try await database.readPoint { db in try Self.checked(fetch(db, keys), count: keys.count) }
                    for index in batch.indices {
                        switch results[index] {
                        case nil: batch[index].continuation.resume(returning: nil)
                        case .success(let value): batch[index].continuation.resume(returning: value)
                        case .failure(let error): batch[index].continuation.resume(throwing: error)
                        }
                    }
                } catch {
                    for waiting in batch { waiting.continuation.resume(throwing: error) }
                }
                let next = state.withLock { state -> [Waiting]? in
                    state.inFlight -= 1
                    return Self.take(&state, maxBatch: maxBatch, maxInFlight: maxInFlight)
                }
                guard let next else { return }
                batch = next
            }
        }
    }

    private static func checked(_ results: [Result<Value, any Error>?], count: Int) throws -> [Result<Value, any Error>?] {
        guard results.count == count else {
            throw StorageError(reason: .failed, detail: "a batched point read answered \(results.count) rows for \(count) keys")
        }
        return results
    }
}

extension SQLDatabase {
    /// The name of ``PointReadBatcher``'s histogram of reads per statement (its buckets are set
    /// where the metrics system is bootstrapped).
    public static let pointReadBatchSizeMetric = "doorstep_db_point_read_batch_size"
}
