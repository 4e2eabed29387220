import Models

/// An agency's whitelist lifecycle (scheduling.proto `AgencyStatus`):
///
///     ACTIVE -> SUSPENDED -> ACTIVE
///     ACTIVE | SUSPENDED -> EXITED (final)
///
/// SuspendAgency, a FAILED RecordInspection, ReinstateAgency and ExitAgency move it; any other
/// move is refused with `agency-state`. An agency's inspection and status histories keep the
/// `historyLimit` most recent entries.
public enum AgencyLifecycle {
    /// What moves an agency: SuspendAgency (or a FAILED inspection), ReinstateAgency, ExitAgency.
    public enum Event: Sendable {
        case suspend, reinstate, exit
    }

    /// Entries kept in `Agency.inspections` and `Agency.status_changes` (the oldest go first).
    public static let historyLimit = 50

    /// The status after `event`, or nil when the event is not allowed in `status`.
    public static func next(_ status: SchedulingV1.AgencyStatus, on event: Event) -> SchedulingV1.AgencyStatus? {
        switch (event, status) {
        case (.suspend, .active): .suspended
        case (.reinstate, .suspended): .active
        case (.exit, .active), (.exit, .suspended): .exited
        default: nil
        }
    }

    /// Whether the event leaves the agency off the whitelist, so that its future appointments
    /// are cancelled.
    public static func cancelsAppointments(_ event: Event) -> Bool {
        event != .reinstate
    }

    /// What `event` is called in refusals and logs.
    static func verb(_ event: Event) -> String {
        switch event {
        case .suspend: "suspended"
        case .reinstate: "reinstated"
        case .exit: "exited"
        }
    }

    /// `history` with `entry` appended, keeping the `historyLimit` most recent entries.
    public static func appending<Entry>(_ entry: Entry, to history: [Entry]) -> [Entry] {
        Array((history + [entry]).suffix(historyLimit))
    }
}
