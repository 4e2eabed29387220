import Compliance
import Foundation
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

extension SchedulingService {
    /// SuspendCollector: adds an active suspension; the collector is SUSPENDED while any is
    /// active. A second COMPLAINT suspension for the same complaint returns the collector
    /// unchanged (the visits service's outbox may deliver twice).
    func suspendCollector(_ request: SchedulingV1.SuspendCollectorRequest, _ context: ServerContext) async throws -> SchedulingV1.Collector {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.collectorId, field: "collector_id", prefix: "col")
        switch request.reason {
        case .complaint:
            try Validate.resourceID(request.complaintId, field: "complaint_id", prefix: "cmp")
        case .agencyDecision, .credentialReview, .other:
            guard request.complaintId.isEmpty else {
                throw RPCError.invalidArgument("complaint_id", "must be empty unless reason is SUSPENSION_REASON_COMPLAINT")
            }
        default:
            throw RPCError.invalidArgument("reason", "required")
        }
        _ = try Validate.text(request.note, field: "note", min: 0, max: 500)
        let caller = try context.requireCaller()
        let scope = try CallerScope(caller)
        if case .agency = scope, request.reason != .agencyDecision {
            throw RPCError.permissionDenied("an agency manager may only suspend for SUSPENSION_REASON_AGENCY_DECISION")
        }
        let now = clock.nowMs()
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        return try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            var collector = try Self.visibleCollector(db, store, id: request.collectorId, scope: scope)
            try Self.checkVersion(request.expectedVersion, collector.version, "collector")
            if request.reason == .complaint,
               collector.suspensions.contains(where: { $0.active && $0.complaintId == request.complaintId }) {
                return collector
            }
            collector.suspensions.append(SchedulingV1.Suspension(
                id: IDGenerator.make(prefix: "sus", nowMs: now), reason: request.reason, complaintId: request.complaintId,
                note: request.note, suspendedMs: now, suspendedBy: caller.actor, active: true))
            collector.status = .suspended
            collector.version += 1
            collector.updatedMs = now
            try store.update(db, collector: collector)
            return collector
        }
    }

    /// ReinstateCollector: lifts one active suspension (by id or complaint); ACTIVE again
    /// when none remains.
    func reinstateCollector(_ request: SchedulingV1.ReinstateCollectorRequest, _ context: ServerContext) async throws -> SchedulingV1.Collector {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.collectorId, field: "collector_id", prefix: "col")
        let selector: (byComplaint: Bool, id: String)
        switch request.suspension {
        case .suspensionId(let id):
            try Validate.resourceID(id, field: "suspension_id", prefix: "sus")
            selector = (false, id)
        case .complaintId(let id):
            try Validate.resourceID(id, field: "complaint_id", prefix: "cmp")
            selector = (true, id)
        case nil:
            throw RPCError.invalidArgument("suspension", "required")
        }
        _ = try Validate.text(request.note, field: "note", min: 0, max: 500)
        let caller = try context.requireCaller()
        let scope = try CallerScope(caller)
        let now = clock.nowMs()
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        return try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            var collector = try Self.visibleCollector(db, store, id: request.collectorId, scope: scope)
            try Self.checkVersion(request.expectedVersion, collector.version, "collector")
            let matches = collector.suspensions.indices.filter {
                selector.byComplaint ? collector.suspensions[$0].complaintId == selector.id : collector.suspensions[$0].id == selector.id
            }
            guard !matches.isEmpty else {
                throw RPCError.notFound(selector.byComplaint
                    ? "no suspension of collector \(collector.id) for complaint \(selector.id)"
                    : "suspension \(selector.id) of collector \(collector.id) not found")
            }
            guard let index = matches.first(where: { collector.suspensions[$0].active }) else {
                throw RPCError.refused(rule: RuleID.suspensionLifted, "suspension \(collector.suspensions[matches[0]].id) was already lifted",
                                       subjectID: collector.suspensions[matches[0]].id)
            }
            if case .agency = scope, collector.suspensions[index].reason != .agencyDecision {
                throw RPCError.permissionDenied("an agency manager may only lift SUSPENSION_REASON_AGENCY_DECISION suspensions")
            }
            collector.suspensions[index].active = false
            collector.suspensions[index].liftedMs = now
            collector.suspensions[index].liftedBy = caller.actor
            collector.suspensions[index].liftNote = request.note
            collector.status = collector.suspensions.contains(where: \.active) ? .suspended : .active
            collector.version += 1
            collector.updatedMs = now
            try store.update(db, collector: collector)
            return collector
        }
    }

    /// The collector as `scope` may see it (agency managers: their agency's), or NOT_FOUND.
    static func visibleCollector(_ db: SQLSession, _ store: SchedulingStore, id: String, scope: CallerScope) throws -> SchedulingV1.Collector {
        guard let collector = try store.collector(db, id: id), scope.sees(agencyID: collector.agencyId, collectorIDs: [collector.id]) else {
            throw RPCError.notFound("collector \(id) not found")
        }
        return collector
    }

    /// ABORTED when `expected` is set and differs from the record's version.
    static func checkVersion(_ expected: Int64, _ actual: Int64, _ what: String) throws {
        if expected != 0 && expected != actual {
            throw RPCError(code: .aborted, message: "\(what) is at version \(actual), not expected_version \(expected); read it again and retry")
        }
    }
}
