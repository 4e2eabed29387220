import Logging
import ServiceKit
import ServiceLifecycle
import Storage

/// Keeps the event log from growing without end: every hour one replica (job lease
/// `events-purge`) purges the events older than `--events-retention-days` (default 90), oldest
/// first, in short write transactions of 5,000. A consumer whose cursor falls behind what was
/// purged is told (WatchEvents: OUT_OF_RANGE; a webhook subscription: PAUSED with the reason),
/// never silently skipped ahead. Metrics `doorstep_job_*{task="events-purge"}` (items = events
/// purged).
public struct EventLogRetention: Service {
    let log: EventLog
    let database: SQLDatabase
    let clock: ServiceClock
    let logger: Logger
    let days: Int

    public init(log: EventLog, database: SQLDatabase, clock: ServiceClock, logger: Logger, days: Int) {
        self.log = log
        self.database = database
        self.clock = clock
        self.logger = logger
        self.days = days
    }

    public func run() async throws {
        await runPeriodically(every: .seconds(3600), exclusive: ExclusiveJob(database: database, job: "events-purge", clock: clock),
                              logger: logger, done: "events purged past their retention", failed: "events purge failed") {
            try await purgeOnce()
        }
    }

    /// One pass: purges every event older than the retention; returns how many.
    public func purgeOnce() async throws -> Int {
        let cutoff = clock.nowMs() - Int64(days) * 86_400_000
        let (log, batch) = (self.log, 5_000)
        var total = 0
        while true {
            let purged = try await database.write(isolation: .rowLocks) { db in try log.purge(db, olderThanMs: cutoff, batch: batch) }
            total += purged
            if purged < batch { return total }
        }
    }
}

extension ServiceSetup {
    /// Runs the event log's retention beside the server (`--events-retention-days`; nothing
    /// when it is 0, keep forever).
    public mutating func hostEventLogRetention(_ log: EventLog, database: SQLDatabase, environment: ServiceEnvironment) {
        let days = environment.configuration.eventsRetentionDays
        guard days > 0 else { return }
        background.append(EventLogRetention(log: log, database: database, clock: environment.clock, logger: environment.logger,
                                            days: days))
    }
}
