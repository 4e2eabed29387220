import Foundation
import Logging
import Metrics
import Models
import RPCWire
import ServiceKit
import ServiceLifecycle
import Storage

/// Writes SLA_BREACHED on the timeline of each open complaint whose SLA due time (visits.proto
/// `sla_due_ms`, the rule pack's `complaint-sla`, extension included) has passed, once per
/// complaint, and sets its `sla_breached`. Runs beside the server; each pass handles a
/// bounded batch, most overdue first; one replica at a time (``ExclusiveJob``). `ListComplaints` with `overdue_only` lists the same
/// complaints whether or not a pass has run yet.
public struct ComplaintSLASweep: Service {
    let database: SQLDatabase
    let clock: ServiceClock
    let logger: Logger
    let interval: Duration

    public init(database: SQLDatabase, clock: ServiceClock, logger: Logger, interval: Duration = .seconds(60)) {
        self.database = database
        self.clock = clock
        self.logger = logger
        self.interval = interval
    }

    /// One pass; returns how many complaints had their breach recorded.
    @discardableResult
    public func sweep() async throws -> Int {
        let now = clock.nowMs()
        let store = VisitsStore(database: database)
        let recorded = try await database.write { db in
            var count = 0
            for id in try store.unnotedBreaches(db, nowMs: now, limit: 500) {
                guard var complaint = try store.complaint(db, id: id)?.value else { continue }
                let due = Date(timeIntervalSince1970: Double(complaint.slaDueMs) / 1000).ISO8601Format()
                complaint.slaBreached = true
                VisitsService.event(&complaint, .slaBreached, "SLA due \(due) passed with the complaint open",
                                    actor: TypeV1.Actor(role: .system, subject: "visits"), at: now)
                complaint.version += 1
                complaint.updatedMs = now
                try store.update(db, complaint: complaint)
                try store.publish(db, complaint: complaint, after: complaint.timeline.count - 1, nowMs: now)
                try store.noteBreach(db, complaintID: id)
                count += 1
            }
            return count
        }
        Self.breaches.increment(by: recorded)
        return recorded
    }

    /// `doorstep_complaints_sla_breached_total`: breaches recorded (once per complaint, by
    /// whichever replica's pass recorded it).
    static let breaches = Counter(label: "doorstep_complaints_sla_breached_total")

    public func run() async throws {
        await runPeriodically(every: interval, exclusive: ExclusiveJob(database: database, job: "complaint-sla-sweep", clock: clock),
                              logger: logger, done: "complaint SLA breaches recorded", failed: "complaint SLA sweep failed") {
            try await sweep()
        }
    }
}
