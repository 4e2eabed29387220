import Logging
import ServiceLifecycle
import Storage

/// Forgets remembered responses older than the retention period (default 24 h), at start
/// and then every 30 minutes, until graceful shutdown.
public struct IdempotencyPurge: Service {
    let database: SQLiteDatabase
    let retentionMs: Int64
    let clock: ServiceClock
    let logger: Logger

    public init(database: SQLiteDatabase, configuration: ServiceConfiguration, clock: ServiceClock, logger: Logger) {
        self.database = database
        self.retentionMs = Int64(configuration.idempotencyRetentionHours) * 3_600_000
        self.clock = clock
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let purged = try await Idempotency.purge(in: database, nowMs: clock.nowMs(), retentionMs: retentionMs)
                if purged > 0 { logger.info("purged remembered responses", metadata: ["count": "\(purged)"]) }
            } catch {
                logger.warning("idempotency purge failed", metadata: ["error": "\(error)"])
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1800)) }
            } catch {
                return
            }
        }
    }
}
