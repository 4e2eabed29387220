import Foundation
import Logging
import Metrics
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
///
/// Each pass that ran is in the metrics, labelled `task` with the job's name (the exclusive
/// job's, or `name`): `doorstep_job_runs_total{task, result="ok"|"error"}`,
/// `doorstep_job_last_run_timestamp_seconds` (wall clock, when it ended),
/// `doorstep_job_duration_seconds` and `doorstep_job_items` (of the last run), and
/// `doorstep_job_interval_seconds`. A replica that skipped because another holds the lease
/// records nothing, so the freshest run across replicas is the `max` of the timestamps.
public func runPeriodically(every interval: Duration, exclusive: ExclusiveJob? = nil, name: String? = nil, logger: Logger,
                            done: Logger.Message, failed: Logger.Message, _ pass: () async throws -> Int) async {
    let metrics = JobMetrics(job: exclusive?.job ?? name ?? "unnamed", interval: interval)
    while !Task.isShuttingDownGracefully && !Task.isCancelled {
        let started = ContinuousClock.now
        do {
            if try await exclusive?.acquire(for: interval) ?? true {
                let count = try await pass()
                let duration = ContinuousClock.now - started
                metrics.ran(items: count, duration: duration)
                if count > 0 { logger.info(done, metadata: ["count": "\(count)", "duration-ms": "\(duration.milliseconds)"]) }
            }
        } catch {
            metrics.failed()
            logger.warning(failed, metadata: ["error": "\(error)"])
        }
        do {
            try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        } catch {
            return
        }
    }
}

/// The metrics of one background job (see ``runPeriodically(every:exclusive:name:logger:done:failed:_:)``).
struct JobMetrics {
    private let ok: Counter
    private let error: Counter
    private let lastRun: Gauge
    private let duration: Gauge
    private let items: Gauge

    init(job: String, interval: Duration) {
        // `task`, not `job`: Prometheus's own `job` label names the scrape job (the service).
        let labels = [("task", job)]
        ok = Counter(label: "doorstep_job_runs_total", dimensions: labels + [("result", "ok")])
        error = Counter(label: "doorstep_job_runs_total", dimensions: labels + [("result", "error")])
        lastRun = Gauge(label: "doorstep_job_last_run_timestamp_seconds", dimensions: labels)
        duration = Gauge(label: "doorstep_job_duration_seconds", dimensions: labels)
        items = Gauge(label: "doorstep_job_items", dimensions: labels)
        Gauge(label: "doorstep_job_interval_seconds", dimensions: labels).record(Double(interval.milliseconds) / 1000)
    }

    func ran(items count: Int, duration elapsed: Duration) {
        ok.increment()
        lastRun.record(Date().timeIntervalSince1970)
        duration.record(Double(elapsed.milliseconds) / 1000)
        items.record(count)
    }

    func failed() { error.increment() }
}
