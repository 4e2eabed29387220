import Models
import SchedulingService
import Testing

/// The appointment state machine of scheduling.proto, every (state, event) pair.
@Suite("Appointment state machine")
struct AppointmentTransitionsTests {
    typealias State = SchedulingV1.AppointmentState
    typealias Event = AppointmentTransitions.Event

    /// The allowed transitions, as the contract's diagram lists them; every other pair is refused.
    static let allowed: [String: State] = [
        "proposed/noticeDelivered": .notified,
        "notified/confirm": .confirmed,
        "proposed/reschedule": .proposed, "notified/reschedule": .proposed, "confirmed/reschedule": .proposed,
        "proposed/cancel": .cancelled, "notified/cancel": .cancelled, "confirmed/cancel": .cancelled,
        "notified/complete": .completed, "confirmed/complete": .completed, "missed/complete": .completed,
        "notified/miss": .missed, "confirmed/miss": .missed,
    ]

    @Test("every state × event: allowed pairs move as the diagram says, all others are refused")
    func table() {
        let states: [(String, State)] = [("proposed", .proposed), ("notified", .notified), ("confirmed", .confirmed),
                                         ("completed", .completed), ("cancelled", .cancelled), ("missed", .missed)]
        let events: [(String, Event)] = [("noticeDelivered", .noticeDelivered), ("confirm", .confirm), ("reschedule", .reschedule),
                                         ("cancel", .cancel), ("complete", .complete), ("miss", .miss)]
        var checked = 0
        for (stateName, state) in states {
            for (eventName, event) in events {
                let expected = Self.allowed["\(stateName)/\(eventName)"]
                #expect(AppointmentTransitions.next(state, on: event) == expected, "\(stateName) on \(eventName)")
                checked += 1
            }
        }
        #expect(checked == 36)
        #expect(Self.allowed.count == 13)
    }

    @Test("terminal states accept nothing but a late completion of a missed visit")
    func terminal() {
        for event in [Event.noticeDelivered, .confirm, .reschedule, .cancel, .complete, .miss] {
            #expect(AppointmentTransitions.next(.completed, on: event) == nil)
            #expect(AppointmentTransitions.next(.cancelled, on: event) == nil)
        }
        #expect(AppointmentTransitions.next(.missed, on: .complete) == .completed)
        #expect(AppointmentTransitions.next(.unspecified, on: .confirm) == nil)
    }
}
