import Compliance
import Foundation
import Models
import Outbox
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

extension VisitsService {
    // MARK: File

    /// FileComplaint: starts the SLA clock (pack `complaint-sla`) and queues a COMPLAINT hold
    /// on the account and, when a collector is named, a COMPLAINT suspension — both through
    /// the outbox, so neither is lost while accounts or scheduling is down.
    func fileComplaint(_ request: VisitsV1.FileComplaintRequest, _ context: ServerContext) async throws -> VisitsV1.Complaint {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc")
        if !request.visitId.isEmpty { try Validate.resourceID(request.visitId, field: "visit_id", prefix: "vis") }
        if !request.collectorId.isEmpty { try Validate.resourceID(request.collectorId, field: "collector_id", prefix: "col") }
        switch request.category {
        case .unspecified: throw RPCError.invalidArgument("category", "required")
        case .unrecognized(let value): throw RPCError.invalidArgument("category", "unknown value \(value)")
        default: break
        }
        _ = try Validate.text(request.complaintText, field: "complaint_text", min: 1, max: 5000)
        switch request.channel {
        case .unspecified: throw RPCError.invalidArgument("channel", "required")
        case .unrecognized(let value): throw RPCError.invalidArgument("channel", "unknown value \(value)")
        default: break
        }
        if case .unrecognized(let value) = request.complexity { throw RPCError.invalidArgument("complexity", "unknown value \(value)") }
        let now = clock.nowMs()
        let received = request.receivedMs == 0 ? now : request.receivedMs
        guard received <= now else { throw RPCError.invalidArgument("received_ms", "must not be in the future") }
        guard received >= now - 30 * 86_400_000 else { throw RPCError.invalidArgument("received_ms", "must be within the last 30 days") }
        let caller = try context.requireCaller()
        let pack = configuration.rulePack
        let defaultZone = configuration.defaultTimeZone
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        if let remembered = try await store.database.read({ db in try Idempotency.lookup(db, key, as: VisitsV1.Complaint.self) }) {
            return remembered
        }
        // The account as accounts knows it: an unknown account is NOT_FOUND; its debtor and
        // product set the complaint's debtor and retention. A complaint line must work while
        // accounts is down, so then the complaint is filed with what visits knows (the hold
        // is queued either way).
        let account: AccountsV1.Account?
        do {
            account = try await peers.account(request.accountId)
        } catch where error.code == .notFound {
            throw RPCError.notFound("account \(request.accountId) not found")
        } catch {
            logger.warning("complaint filed without account facts: accounts unreachable",
                           metadata: ["account_id": "\(request.accountId)", "error": "\(error.message)"])
            account = nil
        }
        let complaint = try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            var agencyID = ""
            var debtorID = account?.debtorId ?? ""
            if !request.visitId.isEmpty {
                guard let visit = try store.visit(db, id: request.visitId)?.value else {
                    throw RPCError.notFound("visit \(request.visitId) not found")
                }
                guard visit.accountId == request.accountId else {
                    throw RPCError.invalidArgument("visit_id", "visit belongs to another account")
                }
                if !request.collectorId.isEmpty && !visit.crewCollectorIds.contains(request.collectorId) {
                    throw RPCError.invalidArgument("collector_id", "not on the visit's crew")
                }
                agencyID = visit.agencyId
                debtorID = visit.debtorId
            } else if debtorID.isEmpty, let visit = try store.latestVisit(db, accountID: request.accountId) {
                debtorID = visit.debtorId
            }
            // A named collector's agency is the one of their visits, so that the complaint
            // counts on that agency's scorecard even when it names no visit.
            if agencyID.isEmpty, !request.collectorId.isEmpty {
                agencyID = try store.agencyID(db, collectorID: request.collectorId) ?? ""
            }
            let complexity: VisitsV1.ComplaintComplexity = request.complexity == .unspecified ? .standard : request.complexity
            let slaDays = pack.complaintSLA.map { complexity == .complex ? $0.complexDays : $0.standardDays } ?? 15
            let id = IDGenerator.make(prefix: "cmp", nowMs: now)
            var complaint = VisitsV1.Complaint(
                id: id, accountId: request.accountId, debtorId: debtorID, visitId: request.visitId, collectorId: request.collectorId,
                agencyId: agencyID, category: request.category, complaintText: request.complaintText, channel: request.channel,
                complexity: complexity, receivedMs: received, slaDueMs: received + Int64(slaDays) * 86_400_000, status: .open,
                filedBy: caller.actor,
                retainUntilDate: Self.retainUntil(visitMs: received, zone: defaultZone,
                                                  product: account?.product ?? .instalmentLoan, pack: pack)?.proto,
                rulePackId: pack.id, rulePackVersion: pack.version, version: 1, createdMs: now, updatedMs: now)
            Self.event(&complaint, .filed, "filed via \(request.channel.protoName ?? "")", actor: caller.actor, at: now)
            try Self.queue(db, &complaint, .placeHold, "hold", service: "accounts", method: AccountsV1.AccountsService.placeHold.path,
                           AccountsV1.PlaceHoldRequest(requestId: "\(id).hold", accountId: request.accountId, reason: .complaint,
                                                       note: "complaint \(id)", complaintId: id), nowMs: now)
            if !request.collectorId.isEmpty {
                try Self.queue(db, &complaint, .suspendCollector, "suspend", service: "scheduling",
                               method: SchedulingV1.SchedulingService.suspendCollector.path,
                               SchedulingV1.SuspendCollectorRequest(requestId: "\(id).suspend", collectorId: request.collectorId,
                                                                    reason: .complaint, complaintId: id, note: "complaint \(id)"), nowMs: now)
            }
            try store.insert(db, complaint: complaint)
            try store.publish(db, complaint: complaint, after: 0, nowMs: now)
            return try Self.withDeliveries(db, complaint, nowMs: now)
        }
        effectsWritten()
        return complaint
    }

    // MARK: Extend and resolve

    func extendComplaint(_ request: VisitsV1.ExtendComplaintRequest, _ context: ServerContext) async throws -> VisitsV1.Complaint {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.complaintId, field: "complaint_id", prefix: "cmp")
        _ = try Validate.text(request.reason, field: "reason", min: 1, max: 2000)
        let sla = configuration.rulePack.complaintSLA
        return try await mutateComplaint(request, requestID: request.requestId, context, id: request.complaintId,
                                         expectedVersion: request.expectedVersion) { complaint, _, now, actor in
            guard complaint.status == .open else {
                throw RPCError.refused(rule: RuleID.complaintState, "complaint \(complaint.id) is \(complaint.status.protoName ?? "closed")",
                                       subjectID: complaint.id)
            }
            guard !complaint.extensionGranted, (sla?.maxExtensions ?? 1) > 0 else {
                throw RPCError.refused(rule: RuleID.complaintExtensionOnce, "complaint \(complaint.id) was already extended", subjectID: complaint.id)
            }
            let days = Int64(sla?.extensionDays ?? 30)
            complaint.slaExtension = VisitsV1.ComplaintExtension(grantedMs: now, reason: request.reason, grantedBy: actor,
                                                                 previousSlaDueMs: complaint.slaDueMs)
            complaint.extensionGranted = true
            complaint.slaDueMs += days * 86_400_000
            Self.event(&complaint, .extended, "SLA extended by \(days) days: \(request.reason)", actor: actor, at: now)
            return false
        }
    }

    func resolveComplaint(_ request: VisitsV1.ResolveComplaintRequest, _ context: ServerContext) async throws -> VisitsV1.Complaint {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.complaintId, field: "complaint_id", prefix: "cmp")
        guard request.resolution == .upheld || request.resolution == .notUpheld else {
            throw RPCError.invalidArgument("resolution", "must be COMPLAINT_STATUS_UPHELD or COMPLAINT_STATUS_NOT_UPHELD")
        }
        _ = try Validate.text(request.finding, field: "finding", min: 1, max: 5000)
        return try await mutateComplaint(request, requestID: request.requestId, context, id: request.complaintId,
                                         expectedVersion: request.expectedVersion) { complaint, db, now, actor in
            guard complaint.status == .open else {
                throw RPCError.refused(rule: RuleID.complaintState, "complaint \(complaint.id) is \(complaint.status.protoName ?? "closed")",
                                       subjectID: complaint.id)
            }
            complaint.status = request.resolution
            complaint.finding = request.finding
            complaint.resolvedMs = now
            complaint.resolvedBy = actor
            complaint.slaBreached = now > complaint.slaDueMs
            complaint.accountHoldReleased = request.releaseAccountHold
            complaint.collectorReinstated = request.reinstateCollector && !complaint.collectorId.isEmpty
            Self.event(&complaint, .resolved, "\(request.resolution.protoName ?? ""): \(request.finding)", actor: actor, at: now)
            var queued = false
            if request.releaseAccountHold {
                var release = AccountsV1.ReleaseHoldRequest(requestId: "\(complaint.id).release", accountId: complaint.accountId,
                                                            note: "complaint \(complaint.id) resolved")
                release.hold = .complaintId(complaint.id)
                try Self.queue(db, &complaint, .releaseHold, "release", service: "accounts",
                               method: AccountsV1.AccountsService.releaseHold.path, release, nowMs: now)
                queued = true
            }
            if complaint.collectorReinstated {
                var reinstate = SchedulingV1.ReinstateCollectorRequest(requestId: "\(complaint.id).reinstate", collectorId: complaint.collectorId,
                                                                       note: "complaint \(complaint.id) resolved")
                reinstate.suspension = .complaintId(complaint.id)
                try Self.queue(db, &complaint, .reinstateCollector, "reinstate", service: "scheduling",
                               method: SchedulingV1.SchedulingService.reinstateCollector.path, reinstate, nowMs: now)
                queued = true
            }
            return queued
        }
    }

    // MARK: List and scorecard

    func listComplaints(_ request: VisitsV1.ListComplaintsRequest, _ context: ServerContext) async throws -> VisitsV1.ListComplaintsResponse {
        let pageSize = try Validate.pageSize(request.pageSize)
        if !request.accountId.isEmpty { try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc") }
        if !request.collectorId.isEmpty { try Validate.resourceID(request.collectorId, field: "collector_id", prefix: "col") }
        if !request.agencyId.isEmpty { try Validate.resourceID(request.agencyId, field: "agency_id", prefix: "agy") }
        for (index, status) in request.statuses.enumerated() {
            if case .unrecognized(let value) = status { throw RPCError.invalidArgument("statuses[\(index)]", "unknown value \(value)") }
        }
        for (index, category) in request.categories.enumerated() {
            if case .unrecognized(let value) = category { throw RPCError.invalidArgument("categories[\(index)]", "unknown value \(value)") }
        }
        guard request.receivedFromMs >= 0, request.receivedToMs >= 0 else {
            throw RPCError.invalidArgument(request.receivedFromMs < 0 ? "received_from_ms" : "received_to_ms", "must not be negative")
        }
        var filter = request
        // Complaints are not listed by collector: a collector scope sees none.
        guard let narrowed = try context.requireScope().narrow(agencyID: filter.agencyId, collectorID: nil) else {
            return VisitsV1.ListComplaintsResponse()
        }
        filter.agencyId = narrowed.agencyID
        let after = try Self.pageToken.decode(request.pageToken)
        let now = clock.nowMs()
        let store = self.store
        let selected = filter
        return try await store.database.read { db in
            let page = try store.listComplaints(db, filter: selected, nowMs: now, after: after, limit: pageSize + 1)
            var response = VisitsV1.ListComplaintsResponse()
            response.complaints = try page.prefix(pageSize).map { try Self.withDeliveries(db, $0, nowMs: now) }
            if page.count > pageSize, let last = response.complaints.last {
                response.nextPageToken = Self.pageToken.encode(ms: last.slaDueMs, id: last.id)
            }
            return response
        }
    }

    func getAgencyScorecard(_ request: VisitsV1.GetAgencyScorecardRequest, _ context: ServerContext) async throws -> VisitsV1.AgencyScorecard {
        let agencyID = try context.requireScope().agency(requested: request.agencyId)
        try Validate.resourceID(agencyID, field: "agency_id", prefix: "agy")
        let zone = TimeZone(identifier: configuration.defaultTimeZone) ?? .gmt
        let now = clock.nowMs()
        let end = try Validate.optionalDate(request.periodEndDate, field: "period_end_date")
            ?? CivilDate.today(in: zone, nowMs: now).adding(days: -1)
        let start = try Validate.optionalDate(request.periodStartDate, field: "period_start_date") ?? end.adding(days: -30)
        guard start <= end else { throw RPCError.invalidArgument("period_end_date", "must not be before period_start_date") }
        guard end.days(since: start) <= 366 else { throw RPCError.invalidArgument("period_end_date", "at most 366 days after period_start_date") }
        let fromMs = Self.midnight(start, zone)
        let toMs = Self.midnight(end.adding(days: 1), zone)
        let store = self.store
        let (visits, complaints) = try await store.database.read { db in
            (try store.visits(db, agencyID: agencyID), try store.complaints(db, agencyID: agencyID))
        }
        guard !visits.isEmpty || !complaints.isEmpty else { throw RPCError.notFound("agency \(agencyID) not known to visits") }
        var card = VisitsV1.AgencyScorecard(agencyId: agencyID, periodStartDate: start.proto, periodEndDate: end.proto, computedMs: now)
        let completed = visits.filter { ($0.checkOut?.checkedOutMs ?? 0) >= fromMs && ($0.checkOut?.checkedOutMs ?? .max) < toMs }
        card.visitsCompleted = Int32(completed.count)
        let received = complaints.filter { $0.receivedMs >= fromMs && $0.receivedMs < toMs }
        card.complaintsReceived = Int32(received.count)
        card.complaintsUpheld = Int32(received.count { $0.status == .upheld })
        card.complaintsOpen = Int32(received.count { $0.status == .open })
        card.complaintsSlaBreached = Int32(received.count { $0.slaBreached || ($0.status == .open && now > $0.slaDueMs) })
        if !completed.isEmpty {
            card.complaintsPer1000Visits = Int32(Int(card.complaintsReceived) * 1000 / completed.count)
            card.upheldComplaintsPer1000Visits = Int32(Int(card.complaintsUpheld) * 1000 / completed.count)
        }
        // Promises made at the agency's visits in the period; their status is accounts'.
        let promiseVisits = visits.filter {
            $0.outcome?.code == .promiseToPay && ($0.outcome?.recordedMs ?? 0) >= fromMs && ($0.outcome?.recordedMs ?? .max) < toMs
        }
        for visit in promiseVisits {
            card.promisesMade += 1
            let account = try await peers.account(visit.accountId)
            switch account.promises.first(where: { $0.sourceVisitId == visit.id })?.status {
            case .kept?: card.promisesKept += 1
            case .broken?: card.promisesBroken += 1
            default: card.promisesPending += 1
            }
        }
        let resolved = card.promisesKept + card.promisesBroken
        card.brokenPromiseRateBp = resolved == 0 ? 0 : Int32(Int(card.promisesBroken) * 10_000 / Int(resolved))
        return card
    }

    static func midnight(_ date: CivilDate, _ zone: TimeZone) -> Int64 {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let instant = calendar.date(from: DateComponents(year: date.year, month: date.month, day: date.day)) ?? Date(timeIntervalSince1970: 0)
        return Int64((instant.timeIntervalSince1970 * 1000).rounded())
    }

    // MARK: Shared steps

    static func event(_ complaint: inout VisitsV1.Complaint, _ type: VisitsV1.ComplaintEventType, _ note: String,
                      actor: TypeV1.Actor, at ms: Int64) {
        complaint.timeline.append(VisitsV1.ComplaintEvent(sequence: Int32(complaint.timeline.count + 1), occurredMs: ms,
                                                          eventType: type, note: note, actor: actor))
    }

    static func queue<Request: ProtoMessage>(
        _ db: SQLSession, _ complaint: inout VisitsV1.Complaint, _ kind: VisitsV1.EffectKind, _ suffix: String, service: String,
        method: String, _ request: Request, nowMs: Int64
    ) throws {
        let effect = VisitsV1.Effect(kind: kind, targetService: service, requestId: "\(complaint.id).\(suffix)", createdMs: nowMs)
        let envelope = EffectEnvelope(service: service, method: method, request: Data(try request.encode()), kind: kind.rawValue)
        try Outbox.enqueue(db, try envelope.message(id: effect.requestId, nowMs: nowMs), nowMs: nowMs)
        complaint.effects.append(effect)
    }

    /// `complaint` with its effects' delivery states and the SLA breach flag as of now.
    static func withDeliveries(_ db: SQLSession, _ complaint: VisitsV1.Complaint, nowMs: Int64) throws -> VisitsV1.Complaint {
        var result = complaint
        if result.status == .open && nowMs > result.slaDueMs { result.slaBreached = true }
        try fillDeliveries(db, &result.effects)
        result.holdId = result.effects.first { $0.kind == .placeHold }?.resultId ?? ""
        return result
    }

    /// The outbox's `onDelivered` for visit and complaint consequences: a delivered
    /// complaint effect is written to the complaint's timeline (hold placed, collector
    /// suspended, hold released, collector reinstated).
    public func effectDelivered(_ db: SQLSession, message: OutboxMessage, deliveredMs: Int64) throws {
        guard let (kind, complaint) = try complaintEffect(db, message) else { return }
        let event: (VisitsV1.ComplaintEventType, String)
        switch kind {
        case .placeHold: event = (.holdPlaced, "accounts placed the COMPLAINT hold")
        case .suspendCollector: event = (.collectorSuspended, "scheduling suspended \(complaint.collectorId)")
        case .releaseHold: event = (.holdReleased, "accounts released the COMPLAINT hold")
        case .reinstateCollector: event = (.collectorReinstated, "scheduling reinstated \(complaint.collectorId)")
        default: return
        }
        try record(db, complaint, event.0, event.1, at: deliveredMs)
    }

    /// The outbox's `onFailed`: a complaint effect given up (retries exhausted) or refused
    /// for good by its peer is written to the complaint's timeline as EFFECT_FAILED with the
    /// last error, so the officer sees that the hold or suspension did not happen.
    public func effectFailed(_ db: SQLSession, message: OutboxMessage, error: String, failedMs: Int64) throws {
        guard let (kind, complaint) = try complaintEffect(db, message) else { return }
        try record(db, complaint, .effectFailed, "\(kind.protoName ?? "effect") failed: \(error)", at: failedMs)
    }

    /// The complaint and effect kind a visits outbox message belongs to (ids `cmp_….suffix`),
    /// or nil for a visit's effect.
    private func complaintEffect(_ db: SQLSession, _ message: OutboxMessage) throws -> (VisitsV1.EffectKind, VisitsV1.Complaint)? {
        guard message.id.hasPrefix("cmp_"), let dot = message.id.firstIndex(of: ".") else { return nil }
        guard let complaint = try store.complaint(db, id: String(message.id[..<dot]))?.value,
              let envelope = try? JSONDecoder().decode(EffectEnvelope.self, from: Data(message.payload)) else { return nil }
        return (VisitsV1.EffectKind(rawValue: envelope.kind), complaint)
    }

    private func record(_ db: SQLSession, _ complaint: VisitsV1.Complaint, _ type: VisitsV1.ComplaintEventType, _ note: String,
                        at ms: Int64) throws {
        // An erased complaint keeps no timeline (RetentionSweep.swift).
        guard complaint.erased == nil else { return }
        var complaint = complaint
        Self.event(&complaint, type, note, actor: TypeV1.Actor(role: .system, subject: "visits"), at: ms)
        complaint.version += 1
        complaint.updatedMs = ms
        try store.update(db, complaint: complaint)
        try store.publish(db, complaint: complaint, after: complaint.timeline.count - 1, nowMs: ms)
    }

    func mutateComplaint<Request: ProtoMessage>(
        _ request: Request, requestID: String, _ context: ServerContext, id: String, expectedVersion: Int64,
        _ change: @escaping @Sendable (inout VisitsV1.Complaint, SQLSession, Int64, TypeV1.Actor) throws -> Bool
    ) async throws -> VisitsV1.Complaint {
        let caller = try context.requireCaller()
        let scope = try CallerScope(caller)
        let key = try Idempotency.Key(method: context.path, requestID: requestID, request: request, caller: context.callerKey)
        let now = clock.nowMs()
        let store = self.store
        let queued = TransactionFlag()
        let result = try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            guard let record = try store.complaint(db, id: id), Self.may(scope, see: record) else {
                throw RPCError.notFound("complaint \(id) not found")
            }
            var complaint = record.value
            if expectedVersion != 0 && expectedVersion != complaint.version {
                throw RPCError(code: .aborted, message: "complaint is at version \(complaint.version), not expected_version \(expectedVersion); read it again and retry")
            }
            if try change(&complaint, db, now, caller.actor) { queued.set() }
            complaint.version += 1
            complaint.updatedMs = now
            try store.update(db, complaint: complaint)
            try store.publish(db, complaint: complaint, after: record.value.timeline.count, nowMs: now)
            return try Self.withDeliveries(db, complaint, nowMs: now)
        }
        if queued.isSet { effectsWritten() }
        return result
    }
}
