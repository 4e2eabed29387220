import Compliance
import Foundation
import Logging
import Models
import Outbox
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

/// The appointment state machine (scheduling.proto `AppointmentState`):
///
///     PROPOSED -> NOTIFIED -> CONFIRMED -> COMPLETED
///     PROPOSED | NOTIFIED | CONFIRMED -> CANCELLED
///     NOTIFIED | CONFIRMED -> MISSED -> (late completion) COMPLETED
///     PROPOSED | NOTIFIED | CONFIRMED -> PROPOSED (rescheduled)
public enum AppointmentTransitions {
    public enum Event: Sendable {
        case noticeDelivered, confirm, reschedule, cancel, complete, miss
    }

    /// The state after `event`, or nil when the event is not allowed in `state`.
    public static func next(_ state: SchedulingV1.AppointmentState, on event: Event) -> SchedulingV1.AppointmentState? {
        switch (event, state) {
        case (.noticeDelivered, .proposed): .notified
        case (.confirm, .notified): .confirmed
        case (.reschedule, .proposed), (.reschedule, .notified), (.reschedule, .confirmed): .proposed
        case (.cancel, .proposed), (.cancel, .notified), (.cancel, .confirmed): .cancelled
        case (.complete, .notified), (.complete, .confirmed), (.complete, .missed): .completed
        case (.miss, .notified), (.miss, .confirmed): .missed
        default: nil
        }
    }
}

extension SchedulingService {
    // MARK: Book

    func bookAppointment(_ request: SchedulingV1.BookAppointmentRequest, _ context: ServerContext) async throws -> SchedulingV1.Appointment {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc")
        try Self.validateCrew(request.crewCollectorIds)
        try Self.validateWindow(startMs: request.windowStartMs, endMs: request.windowEndMs)
        try Self.validatePurpose(request.purpose)
        _ = try Validate.text(request.purposeText, field: "purpose_text", min: 0, max: 500)
        _ = try Validate.text(request.note, field: "note", min: 0, max: 500)
        let caller = try context.requireCaller()
        let scope = try CallerScope(caller)
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        if let remembered = try await store.database.read({ db in
            try Idempotency.lookup(db, key, as: SchedulingV1.Appointment.self)
        }) {
            return remembered
        }
        let now = clock.nowMs()
        let configuration = self.configuration
        let debtorRequest = try Self.debtorRequest(request.debtorRequest, flag: request.debtorRequestedWindow, caller: caller,
                                                   nowMs: now, pack: configuration.rulePack)
        let account = try await accounts.account(request.accountId)
        let appointment = try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            let visit = ProposedVisit(crew: request.crewCollectorIds, windowStartMs: request.windowStartMs,
                                      windowEndMs: request.windowEndMs, debtorRequest: debtorRequest)
            let judgement = try Self.judge(db, store, visit: visit, account: account, excluding: nil, scope: scope,
                                           nowMs: now, configuration: configuration)
            guard judgement.violations.isEmpty else {
                throw RPCError.refused(judgement.violations, rulePackID: configuration.rulePack.id,
                                       rulePackVersion: configuration.rulePack.version)
            }
            var appointment = SchedulingV1.Appointment(
                id: IDGenerator.make(prefix: "apt", nowMs: now), accountId: account.accountID, debtorId: account.debtorID,
                agencyId: judgement.collectors[request.crewCollectorIds[0]]?.agencyId ?? "",
                crewCollectorIds: request.crewCollectorIds, state: .proposed, windowStartMs: request.windowStartMs,
                windowEndMs: request.windowEndMs, debtorTimeZone: account.timeZoneID, purpose: request.purpose,
                purposeText: request.purposeText, regionCode: account.regionCode, address: account.address,
                debtorRequestedWindow: debtorRequest != nil, note: request.note,
                rulePackId: configuration.rulePack.id, rulePackVersion: configuration.rulePack.version,
                bookedBy: caller.actor, version: 1, createdMs: now, updatedMs: now, debtorRequest: debtorRequest)
            try Self.writeNotice(db, kind: .booked, for: &appointment, judgement: judgement, nowMs: now, configuration: configuration)
            try store.insert(db, appointment: appointment)
            try store.publish(db, appointment, .booked, nowMs: now)
            return try Self.withDeliveries(db, appointment)
        }
        noticeWritten()
        Self.logDebtorRequest(appointment, context)
        return appointment
    }

    // MARK: Confirm

    func confirmAppointment(_ request: SchedulingV1.ConfirmAppointmentRequest, _ context: ServerContext) async throws -> SchedulingV1.Appointment {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.appointmentId, field: "appointment_id", prefix: "apt")
        if case .unrecognized(let value) = request.confirmationChannel {
            throw RPCError.invalidArgument("confirmation_channel", "unknown value \(value)")
        }
        _ = try Validate.text(request.note, field: "note", min: 0, max: 500)
        return try await mutateAppointment(request, context, id: request.appointmentId, expectedVersion: request.expectedVersion,
                                           on: .confirm) { appointment, _, now in
            try Self.transition(&appointment, on: .confirm, "only a NOTIFIED appointment can be confirmed")
            appointment.confirmedMs = now
            if !request.note.isEmpty { appointment.note = request.note }
            return false
        }
    }

    // MARK: Reschedule

    func rescheduleAppointment(_ request: SchedulingV1.RescheduleAppointmentRequest, _ context: ServerContext) async throws -> SchedulingV1.Appointment {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.appointmentId, field: "appointment_id", prefix: "apt")
        try Self.validateWindow(startMs: request.windowStartMs, endMs: request.windowEndMs)
        try Self.validateCrew(request.crewCollectorIds, required: false)
        _ = try Validate.text(request.reason, field: "reason", min: 1, max: 500)
        let caller = try context.requireCaller()
        let scope = try CallerScope(caller)
        let store = self.store
        let appointmentID = request.appointmentId
        let configuration = self.configuration
        let debtorRequest = try Self.debtorRequest(request.debtorRequest, flag: request.debtorRequestedWindow, caller: caller,
                                                   nowMs: clock.nowMs(), pack: configuration.rulePack)
        let current = try await store.database.read { db in try Self.visibleAppointment(db, store, id: appointmentID, scope: scope) }
        let account = try await accounts.account(current.accountId)
        let result = try await mutateAppointment(request, context, id: request.appointmentId, expectedVersion: request.expectedVersion,
                                                 on: .reschedule) { appointment, db, now in
            let previousState = appointment.state
            try Self.transition(&appointment, on: .reschedule, "only PROPOSED, NOTIFIED or CONFIRMED appointments can be rescheduled")
            let crew = request.crewCollectorIds.isEmpty ? appointment.crewCollectorIds : request.crewCollectorIds
            let visit = ProposedVisit(crew: crew, windowStartMs: request.windowStartMs, windowEndMs: request.windowEndMs,
                                      debtorRequest: debtorRequest)
            let judgement = try Self.judge(db, store, visit: visit, account: account, excluding: appointment.id, scope: scope,
                                           nowMs: now, configuration: configuration)
            guard judgement.violations.isEmpty else {
                throw RPCError.refused(judgement.violations, rulePackID: configuration.rulePack.id,
                                       rulePackVersion: configuration.rulePack.version)
            }
            appointment.reschedules.append(SchedulingV1.Reschedule(
                rescheduledMs: now, previousWindowStartMs: appointment.windowStartMs, previousWindowEndMs: appointment.windowEndMs,
                previousCrewCollectorIds: appointment.crewCollectorIds, newWindowStartMs: request.windowStartMs,
                newWindowEndMs: request.windowEndMs, newCrewCollectorIds: crew, previousState: previousState,
                reason: request.reason, rescheduledBy: caller.actor, debtorRequest: debtorRequest))
            appointment.windowStartMs = request.windowStartMs
            appointment.windowEndMs = request.windowEndMs
            appointment.crewCollectorIds = crew
            appointment.agencyId = judgement.collectors[crew[0]]?.agencyId ?? appointment.agencyId
            appointment.debtorRequestedWindow = debtorRequest != nil
            appointment.debtorRequest = debtorRequest
            appointment.address = account.address
            appointment.confirmedMs = 0
            appointment.rulePackId = configuration.rulePack.id
            appointment.rulePackVersion = configuration.rulePack.version
            try Self.writeNotice(db, kind: .rescheduled, for: &appointment, judgement: judgement, nowMs: now, configuration: configuration)
            return true
        }
        Self.logDebtorRequest(result, context)
        return result
    }

    // MARK: Cancel

    func cancelAppointment(_ request: SchedulingV1.CancelAppointmentRequest, _ context: ServerContext) async throws -> SchedulingV1.Appointment {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.appointmentId, field: "appointment_id", prefix: "apt")
        switch request.reason {
        case .unspecified, .unrecognized: throw RPCError.invalidArgument("reason", "required")
        default: break
        }
        _ = try Validate.text(request.note, field: "note", min: 0, max: 500)
        let caller = try context.requireCaller()
        let store = self.store
        let configuration = self.configuration
        return try await mutateAppointment(request, context, id: request.appointmentId, expectedVersion: request.expectedVersion,
                                           on: .cancel) { appointment, db, now in
            try Self.cancel(&appointment, db, store, reason: request.reason, note: request.note, by: caller.actor, nowMs: now,
                            configuration: configuration)
        }
    }

    /// Cancels `appointment` (PROPOSED, NOTIFIED or CONFIRMED, else `appointment-state`) in
    /// the caller's transaction and, when it was announced, writes the CANCELLED notice to the
    /// outbox; returns whether it wrote one. The caller bumps the version and stores it.
    /// CancelAppointment and an agency's suspension or exit cancel through here.
    static func cancel(
        _ appointment: inout SchedulingV1.Appointment, _ db: SQLSession, _ store: SchedulingStore,
        reason: SchedulingV1.CancellationReason, note: String, by actor: TypeV1.Actor, nowMs now: Int64,
        configuration: SchedulingConfiguration
    ) throws -> Bool {
        try transition(&appointment, on: .cancel, "only PROPOSED, NOTIFIED or CONFIRMED appointments can be cancelled")
        appointment.cancellation = SchedulingV1.Cancellation(cancelledMs: now, reason: reason, note: note, cancelledBy: actor)
        // A notice already delivered — or still pending, so it may yet arrive — is
        // followed by a cancellation notice: the debtor never waits for a crew that
        // will not come.
        let deliveries = try Outbox.deliveries(db, ids: appointment.notices.map(\.id))
        let announced = deliveries.values.contains { $0.status == .delivered || $0.status == .pending }
        guard announced else { return false }
        var collectors: [String: SchedulingV1.Collector] = [:]
        for member in appointment.crewCollectorIds { collectors[member] = try store.collector(db, id: member) }
        let agencies = try store.agencies(db, ids: collectors.values.map(\.agencyId))
        try writeNotice(db, kind: .cancelled, for: &appointment,
                        judgement: VisitJudgement(collectors: collectors, agencies: agencies, violations: []),
                        nowMs: now, configuration: configuration)
        return true
    }

    // MARK: Complete

    func completeAppointment(_ request: SchedulingV1.CompleteAppointmentRequest, _ context: ServerContext) async throws -> SchedulingV1.Appointment {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.appointmentId, field: "appointment_id", prefix: "apt")
        try Validate.resourceID(request.visitId, field: "visit_id", prefix: "vis")
        _ = try Validate.instantMs(request.checkedOutMs, field: "checked_out_ms", required: true)
        return try await mutateAppointment(request, context, id: request.appointmentId, expectedVersion: request.expectedVersion,
                                           on: .complete, unchangedIf: { $0.state == .completed && $0.visitId == request.visitId }) { appointment, _, now in
            try Self.transition(&appointment, on: .complete, "only NOTIFIED, CONFIRMED or MISSED appointments can be completed")
            appointment.visitId = request.visitId
            appointment.completedMs = now
            return false
        }
    }

    // MARK: Read

    func getAppointment(_ request: SchedulingV1.GetAppointmentRequest, _ context: ServerContext) async throws -> SchedulingV1.Appointment {
        try Validate.resourceID(request.appointmentId, field: "appointment_id", prefix: "apt")
        let scope = try context.requireScope()
        let store = self.store
        // One read transaction: the appointment and its notices' deliveries from one snapshot
        // (on PostgreSQL a point read runs each statement on its own).
        return try await store.database.read { db in
            try Self.withDeliveries(db, Self.visibleAppointment(db, store, id: request.appointmentId, scope: scope))
        }
    }

    func listAppointments(_ request: SchedulingV1.ListAppointmentsRequest, _ context: ServerContext) async throws -> SchedulingV1.ListAppointmentsResponse {
        let pageSize = try Validate.pageSize(request.pageSize)
        var filter = AppointmentFilter()
        if !request.accountId.isEmpty { try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc") }
        if !request.collectorId.isEmpty { try Validate.resourceID(request.collectorId, field: "collector_id", prefix: "col") }
        if !request.agencyId.isEmpty { try Validate.resourceID(request.agencyId, field: "agency_id", prefix: "agy") }
        if !request.regionCode.isEmpty { try Validate.regionCode(request.regionCode, field: "region_code") }
        for (index, state) in request.states.enumerated() {
            if case .unrecognized(let value) = state { throw RPCError.invalidArgument("states[\(index)]", "unknown value \(value)") }
        }
        guard request.windowFromMs >= 0 else { throw RPCError.invalidArgument("window_from_ms", "must not be negative") }
        guard request.windowToMs >= 0 else { throw RPCError.invalidArgument("window_to_ms", "must not be negative") }
        filter.accountID = request.accountId
        filter.collectorID = request.collectorId
        filter.agencyID = request.agencyId
        filter.regionCode = request.regionCode
        filter.states = request.states.filter { $0 != .unspecified }
        filter.windowFromMs = request.windowFromMs
        filter.windowToMs = request.windowToMs
        // Results are silently restricted to what the caller may see.
        guard let narrowed = try context.requireScope().narrow(agencyID: filter.agencyID, collectorID: filter.collectorID) else {
            return SchedulingV1.ListAppointmentsResponse()
        }
        (filter.agencyID, filter.collectorID) = narrowed
        let after = try Self.pageToken.decode(request.pageToken)
        let store = self.store
        let selected = filter
        return try await store.database.read { db in
            let page = try store.list(db, filter: selected, after: after, limit: pageSize + 1)
            var response = SchedulingV1.ListAppointmentsResponse()
            response.appointments = try page.prefix(pageSize).map { try Self.withDeliveries(db, $0) }
            if page.count > pageSize, let last = response.appointments.last {
                response.nextPageToken = Self.pageToken.encode(ms: last.windowStartMs, id: last.id)
            }
            return response
        }
    }

    /// Page tokens of ListAppointments: window_start_ms and id of the last row.
    static let pageToken = KeysetPageToken(tag: "a1")

    // MARK: Shared steps

    /// One mutation of one appointment: idempotent write transaction, visibility (NOT_FOUND),
    /// expected version (ABORTED), `change`, version and timestamps, write, and the event of
    /// `transition` in the same transaction. `change` returns whether it wrote a customer
    /// notice (the dispatcher is then woken). `unchangedIf` returns the appointment as is
    /// (no event) when the request is already in effect.
    func mutateAppointment<Request: ProtoMessage>(
        _ request: Request, _ context: ServerContext, id: String, expectedVersion: Int64, on transition: AppointmentTransitions.Event,
        unchangedIf: @escaping @Sendable (SchedulingV1.Appointment) -> Bool = { _ in false },
        _ change: @escaping @Sendable (inout SchedulingV1.Appointment, SQLSession, Int64) throws -> Bool
    ) async throws -> SchedulingV1.Appointment {
        let caller = try context.requireCaller()
        let scope = try CallerScope(caller)
        let requestID = try Self.requestID(of: request)
        let key = try Idempotency.Key(method: context.path, requestID: requestID, request: request, caller: context.callerKey)
        let now = clock.nowMs()
        let store = self.store
        let wrote = TransactionFlag()
        let result = try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            var appointment = try Self.visibleAppointment(db, store, id: id, scope: scope)
            if unchangedIf(appointment) { return try Self.withDeliveries(db, appointment) }
            try Self.checkVersion(expectedVersion, appointment.version, "appointment")
            if try change(&appointment, db, now) { wrote.set() }
            appointment.version += 1
            appointment.updatedMs = now
            try store.update(db, appointment: appointment)
            try store.publish(db, appointment, .init(transition), nowMs: now)
            return try Self.withDeliveries(db, appointment)
        }
        if wrote.isSet { noticeWritten() }
        return result
    }

    static func requestID<Request: ProtoMessage>(of request: Request) throws -> String {
        switch request {
        case let r as SchedulingV1.ConfirmAppointmentRequest: r.requestId
        case let r as SchedulingV1.RescheduleAppointmentRequest: r.requestId
        case let r as SchedulingV1.CancelAppointmentRequest: r.requestId
        case let r as SchedulingV1.CompleteAppointmentRequest: r.requestId
        default: throw RPCError.internal("internal error")
        }
    }

    /// Applies `event` or refuses with `appointment-state`.
    static func transition(_ appointment: inout SchedulingV1.Appointment, on event: AppointmentTransitions.Event, _ rule: String) throws {
        guard let next = AppointmentTransitions.next(appointment.state, on: event) else {
            throw RPCError.refused(rule: RuleID.appointmentState,
                                   "appointment \(appointment.id) is \(appointment.state.protoName ?? "in an unknown state"); \(rule)",
                                   subjectID: appointment.id)
        }
        appointment.state = next
    }

    /// The audit line of a window booked at the debtor's request: notice level, with who
    /// recorded the request and its reference (the appointment and its reschedule history
    /// keep the same).
    static func logDebtorRequest(_ appointment: SchedulingV1.Appointment, _ context: ServerContext) {
        guard let request = appointment.debtorRequest else { return }
        context.logger.notice("visit window booked at the debtor's request", metadata: [
            "appointment-id": "\(appointment.id)", "version": "\(appointment.version)",
            "recorded-by": "\(request.recordedBy?.role.protoName ?? "?") \(request.recordedBy?.subject ?? "?")",
            "channel": "\(request.channel.protoName ?? "?")", "requested-ms": "\(request.requestedMs)",
            "reference": "\(request.reference)",
        ])
    }

    static func validatePurpose(_ purpose: SchedulingV1.VisitPurpose) throws {
        switch purpose {
        case .unspecified: throw RPCError.invalidArgument("purpose", "required")
        case .unrecognized(let value): throw RPCError.invalidArgument("purpose", "unknown value \(value)")
        default: break
        }
    }
}
