import Logging
import ServiceLifecycle
import Storage

/// What one retention pass did (the accounts service's over debtors, the visits service's over
/// visits and complaints).
public struct RetentionTally: Sendable, Hashable {
    /// Records erased (now tombstones).
    public var erased = 0
    /// Records newly postponed by a hold (an audit record written): the first pass that found
    /// a hold, or one that found another hold than the last.
    public var postponed = 0
    /// Records past retention kept because a hold covers them (postponed included).
    public var held = 0
    /// Records past retention kept because the service that knows their holds does not know
    /// them (visits: accounts answered NOT_FOUND): never erased when unsure.
    public var unresolved = 0

    public init() {}

    public static func + (lhs: RetentionTally, rhs: RetentionTally) -> RetentionTally {
        var sum = lhs
        sum.erased += rhs.erased
        sum.postponed += rhs.postponed
        sum.held += rhs.held
        sum.unresolved += rhs.unresolved
        return sum
    }
}

/// A service's retention job: every `interval` (`--retention-interval-seconds`, default 1 hour)
/// one replica (job lease `retention`) runs `pass`, which erases what is past its retention
/// and no hold covers. Metrics `doorstep_job_*{task="retention"}` (items = records erased); an
/// info line with `done` when a pass erased anything, one when holds postponed erasures, a
/// warning when a pass failed.
public struct RetentionSweep: Service {
    let database: SQLDatabase
    let clock: ServiceClock
    let logger: Logger
    let interval: Duration
    let done: Logger.Message
    let pass: @Sendable () async throws -> RetentionTally

    public init(database: SQLDatabase, clock: ServiceClock, logger: Logger, interval: Duration, done: Logger.Message,
                pass: @escaping @Sendable () async throws -> RetentionTally) {
        self.database = database
        self.clock = clock
        self.logger = logger
        self.interval = interval
        self.done = done
        self.pass = pass
    }

    public func run() async throws {
        await runPeriodically(every: interval, exclusive: ExclusiveJob(database: database, job: "retention", clock: clock),
                              logger: logger, done: done, failed: "retention pass failed") {
            let tally = try await pass()
            if tally.postponed > 0 || tally.unresolved > 0 {
                logger.info("erasures postponed by holds", metadata: [
                    "postponed": "\(tally.postponed)", "held": "\(tally.held)", "unresolved": "\(tally.unresolved)"])
            }
            return tally.erased
        }
    }
}
