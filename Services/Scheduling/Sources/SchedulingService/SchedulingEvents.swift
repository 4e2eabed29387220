import Events
import Models
import Storage

/// The scheduling service's domain events (docs/EVENTS.md "Scheduling"), each appended to the
/// event log in the write transaction of the change it records. The data is the resource as
/// it is after the change, in the form its RPCs return it (an appointment with its notices'
/// delivery states).
extension SchedulingStore {
    /// What happened to an appointment: the last part of its event type.
    enum AppointmentEvent: String, Sendable {
        case booked, notified, confirmed, rescheduled, cancelled, missed, completed

        /// The event a transition of the state machine records.
        init(_ transition: AppointmentTransitions.Event) {
            switch transition {
            case .noticeDelivered: self = .notified
            case .confirm: self = .confirmed
            case .reschedule: self = .rescheduled
            case .cancel: self = .cancelled
            case .complete: self = .completed
            case .miss: self = .missed
            }
        }

        var type: String { "doorstep.scheduling.appointment.\(rawValue)" }
    }

    static let agencyStatusChanged = "doorstep.scheduling.agency.status_changed"
    static let collectorStatusChanged = "doorstep.scheduling.collector.status_changed"
    static let regionPlaced = "doorstep.scheduling.region.placed"

    /// Records `event` of `appointment` (as stored after the change).
    func publish(_ db: SQLSession, _ appointment: SchedulingV1.Appointment, _ event: AppointmentEvent, nowMs: Int64) throws {
        try events.append(db, type: event.type, subject: "appointments/\(appointment.id)",
                          data: SchedulingService.withDeliveries(db, appointment), nowMs: nowMs)
    }

    /// Records the agency's status change when its status is no longer `previous` (a
    /// suspension, a FAILED inspection that suspends, a reinstatement, an exit).
    func publishStatusChange(_ db: SQLSession, _ agency: SchedulingV1.Agency, from previous: SchedulingV1.AgencyStatus,
                             nowMs: Int64) throws {
        guard agency.status != previous else { return }
        try events.append(db, type: Self.agencyStatusChanged, subject: "agencies/\(agency.id)", data: agency, nowMs: nowMs)
    }

    /// Records the collector's status change when its status is no longer `previous`: the
    /// first active suspension (ACTIVE to SUSPENDED) and the lifting of the last one
    /// (SUSPENDED to ACTIVE); a further suspension of a SUSPENDED collector is not one.
    func publishStatusChange(_ db: SQLSession, _ collector: SchedulingV1.Collector, from previous: SchedulingV1.CollectorStatus,
                             nowMs: Int64) throws {
        guard collector.status != previous else { return }
        try events.append(db, type: Self.collectorStatusChanged, subject: "collectors/\(collector.id)", data: collector, nowMs: nowMs)
    }

    /// Records a PlaceRegion run (the ranking, what accounts placed and what it left
    /// unplaced), in the transaction that keeps its response.
    func publishRegionPlaced(_ db: SQLSession, region: String, _ response: SchedulingV1.PlaceRegionResponse, nowMs: Int64) throws {
        try events.append(db, type: Self.regionPlaced, subject: "regions/\(region)", data: response, nowMs: nowMs)
    }
}
