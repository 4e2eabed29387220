import Logging
import ServiceLifecycle
import Storage

/// A sweep that runs once across the replicas of a service: each pass first takes the
/// job's lease (``JobLease``) for about one interval; a replica that finds it held by
/// another skips the pass.
public struct ExclusiveJob: Sendable {
    public let database: SQLDatabase
    public let job: String
    public let clock: ServiceClock
    public let holder: String

    public init(database: SQLDatabase, job: String, clock: ServiceClock, holder: String = ReplicaIdentity.current) {
        self.database = database
        self.job = job
        self.clock = clock
        self.holder = holder
    }

    /// Takes (or keeps) the lease until just before the next pass would; false when
    /// another replica holds it.
    func acquire(for interval: Duration) async throws -> Bool {
        let now = clock.nowMs()
        let intervalMs = interval.milliseconds
        let until = now + max(1, intervalMs - intervalMs / 10)
        let (job, holder) = (self.job, self.holder)
        // One atomic upsert of one row: row locks suffice.
        return try await database.write(isolation: .rowLocks) { db in
            try JobLease.acquire(db, name: job, holder: holder, nowMs: now, untilMs: until)
        }
    }
}

/// The loop of a background sweep: runs `pass` at once and then every `interval`, until
/// graceful shutdown or cancellation (also while it waits). With `exclusive`, a pass runs
/// only on the replica holding the job's lease. A pass that acted on something (returned a
/// count above 0) is logged at info as `done` with the count; a pass that threw is logged
/// as a warning with `failed` and tried again at the next tick, so one bad pass never
/// stops the sweep.
public func runPeriodically(every interval: Duration, exclusive: ExclusiveJob? = nil, logger: Logger, done: Logger.Message,
                            failed: Logger.Message, _ pass: () async throws -> Int) async {
    while !Task.isShuttingDownGracefully && !Task.isCancelled {
        do {
            if try await exclusive?.acquire(for: interval) ?? true {
                let count = try await pass()
                if count > 0 { logger.info(done, metadata: ["count": "\(count)"]) }
            }
        } catch {
            logger.warning(failed, metadata: ["error": "\(error)"])
        }
        do {
            try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        } catch {
            return
        }
    }
}
