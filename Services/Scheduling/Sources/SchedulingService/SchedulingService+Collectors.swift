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
            let previousStatus = collector.status
            collector.status = .suspended
            collector.version += 1
            collector.updatedMs = now
            try store.update(db, collector: collector)
            try store.publishStatusChange(db, collector, from: previousStatus, nowMs: now)
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
            let previousStatus = collector.status
            collector.status = collector.suspensions.contains(where: \.active) ? .suspended : .active
            collector.version += 1
            collector.updatedMs = now
            try store.update(db, collector: collector)
            try store.publishStatusChange(db, collector, from: previousStatus, nowMs: now)
            return collector
        }
    }

    // MARK: Read

    func getCollector(_ request: SchedulingV1.GetCollectorRequest, _ context: ServerContext) async throws -> SchedulingV1.Collector {
        try Validate.resourceID(request.collectorId, field: "collector_id", prefix: "col")
        let scope = try context.requireScope()
        let store = self.store
        return try await store.database.read { db in try Self.visibleCollector(db, store, id: request.collectorId, scope: scope) }
    }

    func listCollectors(_ request: SchedulingV1.ListCollectorsRequest, _ context: ServerContext) async throws -> SchedulingV1.ListCollectorsResponse {
        let pageSize = try Validate.pageSize(request.pageSize)
        if !request.agencyId.isEmpty { try Validate.resourceID(request.agencyId, field: "agency_id", prefix: "agy") }
        if case .unrecognized(let value) = request.status { throw RPCError.invalidArgument("status", "unknown value \(value)") }
        if !request.regionCode.isEmpty { try Validate.regionCode(request.regionCode, field: "region_code") }
        // Results are silently restricted to what the caller may see.
        guard let narrowed = try context.requireScope().narrow(agencyID: request.agencyId, collectorID: nil) else {
            return SchedulingV1.ListCollectorsResponse()
        }
        let filter = CollectorFilter(agencyID: narrowed.agencyID, status: request.status, regionCode: request.regionCode)
        let after = try Self.collectorPageToken.decode(request.pageToken)
        let store = self.store
        return try await store.database.read { db in
            let page = try store.collectors(db, filter: filter, after: after, limit: pageSize + 1)
            var response = SchedulingV1.ListCollectorsResponse(collectors: Array(page.prefix(pageSize)))
            if page.count > pageSize, let last = response.collectors.last {
                response.nextPageToken = Self.collectorPageToken.encode(ms: last.createdMs, id: last.id)
            }
            return response
        }
    }

    /// Page tokens of ListCollectors: created_ms and id of the last row.
    static let collectorPageToken = KeysetPageToken(tag: "k1")

    // MARK: Update

    /// UpdateCollector: the fields the mask names, checked as at registration; a new
    /// certification number must be free and a new region served by the agency.
    func updateCollector(_ request: SchedulingV1.UpdateCollectorRequest, _ context: ServerContext) async throws -> SchedulingV1.Collector {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.collectorId, field: "collector_id", prefix: "col")
        _ = try RegistryValidation.updateMask(request.updateMask, of: RegistryValidation.CollectorField.self)
        guard request.collector != nil else { throw RPCError.invalidArgument("collector", "required: the new values") }
        let scope = try context.requireScope()
        let now = clock.nowMs()
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        return try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            let current = try Self.visibleCollector(db, store, id: request.collectorId, scope: scope)
            try Self.checkVersion(request.expectedVersion, current.version, "collector")
            var collector = try RegistryValidation.updatedCollector(current, with: request.collector, mask: request.updateMask)
            if collector.certificationNumber != current.certificationNumber,
               try store.certificationTaken(db, collector.certificationNumber, excluding: collector.id) {
                throw RPCError(code: .alreadyExists,
                               message: "a collector with certification_number '\(collector.certificationNumber)' already exists")
            }
            if collector.regionCode != current.regionCode {
                guard let agency = try store.agency(db, id: collector.agencyId) else {
                    throw RPCError.notFound("agency \(collector.agencyId) not found")
                }
                guard agency.regionsServed.contains(collector.regionCode) else {
                    throw RPCError.refused([RuleID.agencyRegion.violation(
                        quoting: nil, field: "collector.region_code", subject: agency.id,
                        "agency \(agency.id) does not serve region \(collector.regionCode)")])
                }
            }
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
