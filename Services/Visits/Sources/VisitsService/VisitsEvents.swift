import Events
import Models
import Storage

/// The visits service's domain events (docs/EVENTS.md "Visits"), each appended to the event
/// log in the write transaction of the change it records. The data is the visit or complaint
/// as it is after the change, in the form its RPCs return it (effects with their delivery
/// states; a complaint's SLA breach as of the change).
extension VisitsStore {
    /// The event type of a visit that is now in `state`: a crew member checked in (one event
    /// per member), the outcome was recorded, the visit was checked out.
    static func visitEventType(_ state: VisitsV1.VisitState) -> String? {
        switch state {
        case .checkedIn: "doorstep.visits.visit.checked_in"
        case .outcomeRecorded: "doorstep.visits.visit.outcome_recorded"
        case .checkedOut: "doorstep.visits.visit.checked_out"
        default: nil
        }
    }

    /// The event type a complaint timeline entry of `type` is published as; nil for the
    /// entries that only confirm a delivered consequence (hold placed or released, collector
    /// suspended or reinstated).
    static func complaintEventType(_ type: VisitsV1.ComplaintEventType) -> String? {
        switch type {
        case .filed: "doorstep.visits.complaint.filed"
        case .extended: "doorstep.visits.complaint.extended"
        case .resolved: "doorstep.visits.complaint.resolved"
        case .slaBreached: "doorstep.visits.complaint.sla_breached"
        case .effectFailed: "doorstep.visits.complaint.effect_failed"
        default: nil
        }
    }

    /// Records the change that left `visit` (as stored) in its state.
    func publish(_ db: SQLSession, visit: VisitsV1.Visit, nowMs: Int64) throws {
        guard let type = Self.visitEventType(visit.state) else { return }
        try events.append(db, type: type, subject: "visits/\(visit.id)", data: VisitsService.withDeliveries(db, visit), nowMs: nowMs)
    }

    /// Records the entries of `complaint`'s timeline after the first `previousCount` (those
    /// the change added), one event each, in order.
    func publish(_ db: SQLSession, complaint: VisitsV1.Complaint, after previousCount: Int, nowMs: Int64) throws {
        let added = complaint.timeline.dropFirst(previousCount).compactMap { Self.complaintEventType($0.eventType) }
        guard !added.isEmpty else { return }
        let data = try VisitsService.withDeliveries(db, complaint, nowMs: nowMs)
        for type in added {
            try events.append(db, type: type, subject: "complaints/\(complaint.id)", data: data, nowMs: nowMs)
        }
    }
}
