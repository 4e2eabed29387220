import Logging
import ServiceLifecycle
import Storage

/// Forgets remembered responses older than the retention period (default 24 h), at start
/// and then every 30 minutes, until graceful shutdown; one replica at a time.
public struct IdempotencyPurge: Service {
    let database: SQLDatabase
    let retentionMs: Int64
    let clock: ServiceClock
    let logger: Logger

    public init(database: SQLDatabase, configuration: ServiceConfiguration, clock: ServiceClock, logger: Logger) {
        self.database = database
        self.retentionMs = Int64(configuration.idempotencyRetentionHours) * 3_600_000
        self.clock = clock
        self.logger = logger
    }

    public func run() async throws {
        await runPeriodically(every: .seconds(1800), exclusive: .init(database: database, job: "idempotency-purge", clock: clock),
                              logger: logger, done: "purged remembered responses", failed: "idempotency purge failed") {
            try await Idempotency.purge(in: database, nowMs: clock.nowMs(), retentionMs: retentionMs)
        }
    }
}
