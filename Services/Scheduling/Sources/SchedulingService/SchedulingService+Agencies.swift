import Compliance
import Foundation
import Logging
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

extension SchedulingService {
    // MARK: Read

    func getAgency(_ request: SchedulingV1.GetAgencyRequest, _ context: ServerContext) async throws -> SchedulingV1.Agency {
        try Validate.resourceID(request.agencyId, field: "agency_id", prefix: "agy")
        let scope = try context.requireScope()
        let store = self.store
        return try await store.database.read { db in try Self.visibleAgency(db, store, id: request.agencyId, scope: scope) }
    }

    func listAgencies(_ request: SchedulingV1.ListAgenciesRequest, _ context: ServerContext) async throws -> SchedulingV1.ListAgenciesResponse {
        let pageSize = try Validate.pageSize(request.pageSize)
        if case .unrecognized(let value) = request.status { throw RPCError.invalidArgument("status", "unknown value \(value)") }
        if !request.regionCode.isEmpty { try Validate.regionCode(request.regionCode, field: "region_code") }
        // An agency manager's list is silently its own agency.
        guard let narrowed = try context.requireScope().narrow(agencyID: "", collectorID: nil) else {
            return SchedulingV1.ListAgenciesResponse()
        }
        let filter = AgencyFilter(agencyID: narrowed.agencyID, status: request.status, regionCode: request.regionCode)
        let after = try Self.agencyPageToken.decode(request.pageToken)
        let store = self.store
        return try await store.database.read { db in
            let page = try store.agencies(db, filter: filter, after: after, limit: pageSize + 1)
            var response = SchedulingV1.ListAgenciesResponse(agencies: Array(page.prefix(pageSize)))
            if page.count > pageSize, let last = response.agencies.last {
                response.nextPageToken = Self.agencyPageToken.encode(ms: last.createdMs, id: last.id)
            }
            return response
        }
    }

    /// Page tokens of ListAgencies: created_ms and id of the last row.
    static let agencyPageToken = KeysetPageToken(tag: "g1")

    /// The agency as `scope` may see it (an agency manager: its own), or NOT_FOUND.
    static func visibleAgency(_ db: SQLSession, _ store: SchedulingStore, id: String, scope: CallerScope) throws -> SchedulingV1.Agency {
        guard let agency = try store.agency(db, id: id), scope.sees(agencyID: agency.id) else {
            throw RPCError.notFound("agency \(id) not found")
        }
        return agency
    }

    // MARK: Update

    /// UpdateAgency: the fields the mask names, checked as at registration; a new licence
    /// number must be free, and a region dropped from those served must no longer be worked.
    func updateAgency(_ request: SchedulingV1.UpdateAgencyRequest, _ context: ServerContext) async throws -> SchedulingV1.Agency {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.agencyId, field: "agency_id", prefix: "agy")
        _ = try RegistryValidation.updateMask(request.updateMask, of: RegistryValidation.AgencyField.self)
        guard request.agency != nil else { throw RPCError.invalidArgument("agency", "required: the new values") }
        let scope = try context.requireScope()
        let now = clock.nowMs()
        let today = CivilDate.today(in: .gmt, nowMs: now)
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        return try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            let current = try Self.visibleAgency(db, store, id: request.agencyId, scope: scope)
            try Self.checkVersion(request.expectedVersion, current.version, "agency")
            try Self.refuseIfExited(current, "updated")
            var agency = try RegistryValidation.updatedAgency(current, with: request.agency, mask: request.updateMask, today: today)
            if agency.licenceNumber != current.licenceNumber, try store.licenceTaken(db, agency.licenceNumber, excluding: agency.id) {
                throw RPCError(code: .alreadyExists, message: "an agency with licence_number '\(agency.licenceNumber)' already exists")
            }
            let dropped = current.regionsServed.filter { !agency.regionsServed.contains($0) }
            try Self.refuseDroppingWorkedRegions(db, store, agency: agency.id, dropped: dropped, nowMs: now)
            agency.version += 1
            agency.updatedMs = now
            try store.update(db, agency: agency)
            return agency
        }
    }

    /// `agency-region` for each dropped region that one of the agency's collectors works in,
    /// or that one of its appointments not yet ended is in: they would be refused from then on.
    static func refuseDroppingWorkedRegions(_ db: SQLSession, _ store: SchedulingStore, agency: String, dropped: [String], nowMs: Int64) throws {
        var violations: [TypeV1.Violation] = []
        for region in dropped {
            let shown = 5
            let collectors = try store.collectorIDs(db, agencyID: agency, region: region, limit: shown + 1)
            let appointments = try store.pendingAppointmentIDs(db, agencyID: agency, region: region, endingAfterMs: nowMs, limit: shown + 1)
            guard !collectors.isEmpty || !appointments.isEmpty else { continue }
            func listed(_ ids: [String], _ what: String) -> String? {
                guard !ids.isEmpty else { return nil }
                return "\(what) \(ids.prefix(shown).joined(separator: ", "))\(ids.count > shown ? " and more" : "")"
            }
            let users = [listed(collectors, "collectors"), listed(appointments, "appointments")].compactMap { $0 }.joined(separator: "; ")
            violations.append(RuleID.agencyRegion.violation(
                quoting: nil, field: "agency.regions_served", subject: agency,
                "region \(region) is still worked by agency \(agency): \(users); move or cancel them first"))
        }
        guard violations.isEmpty else { throw RPCError.refused(violations) }
    }

    // MARK: Inspections

    /// RecordInspection: kept in the history; PASSED moves last_inspection_date forward,
    /// FAILED suspends (cancelling the agency's future appointments).
    func recordInspection(_ request: SchedulingV1.RecordInspectionRequest, _ context: ServerContext) async throws -> SchedulingV1.Agency {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.agencyId, field: "agency_id", prefix: "agy")
        let now = clock.nowMs()
        let date = try RegistryValidation.inspection(request, today: CivilDate.today(in: .gmt, nowMs: now))
        let caller = try context.requireCaller()
        let scope = try CallerScope(caller)
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        let configuration = self.configuration
        let wrote = TransactionFlag()
        let agency = try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            var agency = try Self.visibleAgency(db, store, id: request.agencyId, scope: scope)
            let previousStatus = agency.status
            try Self.checkVersion(request.expectedVersion, agency.version, "agency")
            try Self.refuseIfExited(agency, "inspected")
            agency.inspections = AgencyLifecycle.appending(SchedulingV1.AgencyInspection(
                inspectionDate: date.proto, result: request.result, inspector: request.inspector, findings: request.findings,
                recordedBy: caller.actor, recordedMs: now), to: agency.inspections)
            if request.result == .passed {
                // An older inspection recorded late is kept in the history; the date never moves back.
                let last = CivilDate(agency.lastInspectionDate ?? TypeV1.Date())
                if last.map({ $0 < date }) ?? true { agency.lastInspectionDate = date.proto }
            } else {
                let reason = "failed inspection of \(date) by \(request.inspector): \(request.findings)"
                if agency.status == .active {
                    if try Self.changeStatus(&agency, on: .suspend, reason: reason, by: caller.actor, db, store, nowMs: now,
                                             configuration: configuration) {
                        wrote.set()
                    }
                } else {
                    agency.statusReason = reason
                }
            }
            agency.version += 1
            agency.updatedMs = now
            try store.update(db, agency: agency)
            try store.publishStatusChange(db, agency, from: previousStatus, nowMs: now)
            return agency
        }
        if wrote.isSet { noticeWritten() }
        if request.result == .failed { Self.logStatus(agency, context) }
        return agency
    }

    // MARK: Status

    func suspendAgency(_ request: SchedulingV1.SuspendAgencyRequest, _ context: ServerContext) async throws -> SchedulingV1.Agency {
        try await changeAgencyStatus(request, context, requestID: request.requestId, agencyID: request.agencyId,
                                     expectedVersion: request.expectedVersion, reason: request.reason, on: .suspend)
    }

    func reinstateAgency(_ request: SchedulingV1.ReinstateAgencyRequest, _ context: ServerContext) async throws -> SchedulingV1.Agency {
        try await changeAgencyStatus(request, context, requestID: request.requestId, agencyID: request.agencyId,
                                     expectedVersion: request.expectedVersion, reason: request.reason, on: .reinstate)
    }

    func exitAgency(_ request: SchedulingV1.ExitAgencyRequest, _ context: ServerContext) async throws -> SchedulingV1.Agency {
        try await changeAgencyStatus(request, context, requestID: request.requestId, agencyID: request.agencyId,
                                     expectedVersion: request.expectedVersion, reason: request.reason, on: .exit)
    }

    /// SuspendAgency, ReinstateAgency, ExitAgency: one idempotent, versioned status change.
    func changeAgencyStatus<Request: ProtoMessage>(
        _ request: Request, _ context: ServerContext, requestID: String, agencyID: String, expectedVersion: Int64, reason: String,
        on event: AgencyLifecycle.Event
    ) async throws -> SchedulingV1.Agency {
        try Validate.requestID(requestID)
        try Validate.resourceID(agencyID, field: "agency_id", prefix: "agy")
        try Validate.text(reason, field: "reason", min: 1, max: 500)
        let caller = try context.requireCaller()
        let scope = try CallerScope(caller)
        let now = clock.nowMs()
        let key = try Idempotency.Key(method: context.path, requestID: requestID, request: request, caller: context.callerKey)
        let store = self.store
        let configuration = self.configuration
        let wrote = TransactionFlag()
        let agency = try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            var agency = try Self.visibleAgency(db, store, id: agencyID, scope: scope)
            let previousStatus = agency.status
            try Self.checkVersion(expectedVersion, agency.version, "agency")
            if try Self.changeStatus(&agency, on: event, reason: reason, by: caller.actor, db, store, nowMs: now,
                                     configuration: configuration) {
                wrote.set()
            }
            agency.version += 1
            agency.updatedMs = now
            try store.update(db, agency: agency)
            try store.publishStatusChange(db, agency, from: previousStatus, nowMs: now)
            return agency
        }
        if wrote.isSet { noticeWritten() }
        Self.logStatus(agency, context)
        return agency
    }

    /// Moves `agency` on `event` (or refuses with `agency-state`) and records the change. A
    /// suspension or an exit cancels, in the caller's transaction, every appointment of the
    /// agency that is PROPOSED, NOTIFIED or CONFIRMED and starts after now, as
    /// CancelAppointment does (reason COMPLIANCE), and queues the recall of every account
    /// placed with the agency (``enqueueRecall(_:agencyID:reason:nowMs:)``). Returns whether a
    /// customer notice was written. The caller bumps the version and stores the agency.
    static func changeStatus(
        _ agency: inout SchedulingV1.Agency, on event: AgencyLifecycle.Event, reason: String, by actor: TypeV1.Actor,
        _ db: SQLSession, _ store: SchedulingStore, nowMs now: Int64, configuration: SchedulingConfiguration
    ) throws -> Bool {
        guard let next = AgencyLifecycle.next(agency.status, on: event) else {
            throw RPCError.refused(rule: RuleID.agencyState,
                                   "agency \(agency.id) is \(agency.status.protoName ?? "in an unknown status") and cannot be \(AgencyLifecycle.verb(event))",
                                   subjectID: agency.id)
        }
        var cancelled = 0
        var wroteNotice = false
        if AgencyLifecycle.cancelsAppointments(event) {
            let note = "agency \(agency.id) \(AgencyLifecycle.verb(event)): \(reason)"
            for var appointment in try store.pendingAppointments(db, agencyID: agency.id, startingAfterMs: now) {
                if try cancel(&appointment, db, store, reason: .compliance, note: note, by: actor, nowMs: now, configuration: configuration) {
                    wroteNotice = true
                }
                appointment.version += 1
                appointment.updatedMs = now
                try store.update(db, appointment: appointment)
                try store.publish(db, appointment, .cancelled, nowMs: now)
                cancelled += 1
            }
        }
        if AgencyLifecycle.cancelsAppointments(event) {
            try enqueueRecall(db, agencyID: agency.id, reason: "agency \(agency.id) \(AgencyLifecycle.verb(event)): \(reason)", nowMs: now)
        }
        agency.statusChanges = AgencyLifecycle.appending(SchedulingV1.AgencyStatusChange(
            previousStatus: agency.status, status: next, reason: reason, changedBy: actor, changedMs: now,
            appointmentsCancelled: Int32(clamping: cancelled)), to: agency.statusChanges)
        agency.status = next
        agency.statusReason = next == .active ? "" : reason
        return wroteNotice
    }

    /// `agency-state` when the agency has EXITED: nothing changes it again.
    static func refuseIfExited(_ agency: SchedulingV1.Agency, _ verb: String) throws {
        guard agency.status == .exited else { return }
        throw RPCError.refused(rule: RuleID.agencyState, "agency \(agency.id) has EXITED and cannot be \(verb)", subjectID: agency.id)
    }

    /// The audit line of an agency's status change: notice level, with who changed it, why,
    /// and how many appointments it cancelled.
    static func logStatus(_ agency: SchedulingV1.Agency, _ context: ServerContext) {
        guard let change = agency.statusChanges.last, change.changedMs == agency.updatedMs else { return }
        context.logger.notice("agency status changed", metadata: [
            "agency-id": "\(agency.id)", "version": "\(agency.version)",
            "from": "\(change.previousStatus.protoName ?? "?")", "to": "\(change.status.protoName ?? "?")",
            "changed-by": "\(change.changedBy?.role.protoName ?? "?") \(change.changedBy?.subject ?? "?")",
            "appointments-cancelled": "\(change.appointmentsCancelled)", "reason": "\(change.reason)",
        ])
    }
}
