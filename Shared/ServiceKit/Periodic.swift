import Logging
import ServiceLifecycle

/// The loop of a background sweep: runs `pass` at once and then every `interval`, until
/// graceful shutdown or cancellation (also while it waits). A pass that acted on something
/// (returned a count above 0) is logged at info as `done` with the count; a pass that threw is
/// logged as a warning with `failed` and tried again at the next tick, so one bad pass never
/// stops the sweep.
public func runPeriodically(every interval: Duration, logger: Logger, done: Logger.Message, failed: Logger.Message,
                            _ pass: () async throws -> Int) async {
    while !Task.isShuttingDownGracefully && !Task.isCancelled {
        do {
            let count = try await pass()
            if count > 0 { logger.info(done, metadata: ["count": "\(count)"]) }
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
