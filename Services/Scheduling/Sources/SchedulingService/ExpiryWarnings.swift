import Foundation
import Logging
import Models
import ServiceKit
import ServiceLifecycle
import Storage
import Validation

/// Warns of what will soon stop an agency's bookings, as events: every `interval` (default
/// one hour, `--expiry-warnings-interval-seconds`) one replica (job lease `expiry-warnings`)
/// looks at what ListExpiring lists ``SchedulingService/expiryWarningDays`` ahead and emits
/// an event for each licence, inspection or certification that has reached a warning
/// threshold it was not yet warned at (``SchedulingService/warnExpiring()``). What was warned
/// is kept in the database, so a restart or another replica does not repeat it. Metrics
/// `doorstep_job_*{task="expiry-warnings"}`; an info line when a pass warned of anything.
public struct ExpiryWarnings: Service {
    let service: SchedulingService
    let logger: Logger
    let interval: Duration

    public init(service: SchedulingService, logger: Logger, interval: Duration) {
        self.service = service
        self.logger = logger
        self.interval = interval
    }

    public func run() async throws {
        await runPeriodically(every: interval,
                              exclusive: ExclusiveJob(database: service.store.database, job: "expiry-warnings", clock: service.clock),
                              logger: logger, done: "expiry warnings emitted", failed: "expiry warnings failed") {
            try await service.warnExpiring()
        }
    }
}

extension SchedulingService {
    /// The warning thresholds, in days left until the last valid day: an item is warned of
    /// once when it has 90 days or fewer left, once at 30, once at 7 and once when its last
    /// valid day has come (0, or passed). A pass that finds an item past several thresholds
    /// at once (a new record, or the job was off) warns once, at the tightest.
    public static let expiryWarningDays = [90, 30, 7, 0]

    /// Event type and subject of the warning of `item`:
    /// "doorstep.scheduling.agency.licence_expiring", "….agency.inspection_expiring" or
    /// "….collector.certification_expiring".
    static func expiryEvent(_ item: SchedulingV1.ExpiringItem) -> (type: String, subject: String) {
        switch item.kind {
        case .agencyInspection: ("doorstep.scheduling.agency.inspection_expiring", "agencies/\(item.resourceId)")
        case .collectorCertification: ("doorstep.scheduling.collector.certification_expiring", "collectors/\(item.resourceId)")
        default: ("doorstep.scheduling.agency.licence_expiring", "agencies/\(item.resourceId)")
        }
    }

    /// One pass of the expiry warnings: in one write transaction, the items ListExpiring
    /// would list today (in the default zone) up to the widest threshold ahead; for each, the
    /// tightest threshold it has reached, and when that (item, last valid day, threshold) was
    /// not warned of before, an event whose data is the item, remembered in
    /// `expiry_warnings`. A renewal moves the last valid day, so the new date is warned of
    /// afresh. Returns how many warnings it emitted.
    public func warnExpiring() async throws -> Int {
        let now = clock.nowMs()
        let today = CivilDate.today(in: TimeZone(identifier: configuration.defaultTimeZone) ?? .gmt, nowMs: now)
        let thresholds = Self.expiryWarningDays
        let horizon = today.adding(days: thresholds.max() ?? 0)
        let months = configuration.rulePack.inspectionValidityMonths
        let store = self.store
        return try await store.database.write { db in
            let (agencies, collectors) = try store.watchedRegistry(db, agencyID: "")
            var warned = 0
            for item in RenewalWatch.items(agencies: agencies, collectors: collectors, today: today, horizon: horizon,
                                           inspectionValidityMonths: months) {
                guard let threshold = thresholds.filter({ Int(item.daysLeft) <= $0 }).min(),
                      let lastValid = CivilDate(item.lastValidDate ?? TypeV1.Date()) else { continue }
                let inserted = try db.execute(sql: """
                    INSERT INTO expiry_warnings (kind, resource_id, last_valid_day, threshold_days, warned_ms) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT DO NOTHING
                    """, arguments: [item.kind.rawValue, item.resourceId, lastValid.dayNumber, threshold, now])
                guard inserted > 0 else { continue }
                let event = Self.expiryEvent(item)
                try store.events.append(db, type: event.type, subject: event.subject, data: item, nowMs: now)
                warned += 1
            }
            return warned
        }
    }
}
