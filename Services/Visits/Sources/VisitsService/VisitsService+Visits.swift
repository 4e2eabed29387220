import Compliance
import Foundation
import Models
import Outbox
import RPC
import RPCWire
import RoutePlanner
import ServiceKit
import Storage
import Validation

/// Settings of the visits service; every default is spelled out.
public struct VisitsConfiguration: Sendable {
    /// The rule pack (crew size, evidence, record retention). Default cn-2026.
    public var rulePack: RulePack = RulePacks.cn2026
    /// Check-in is allowed this long before the window opens and after it closes (default 15).
    public var checkInGraceMinutes: Int = 15
    /// Check-in is allowed within this great-circle distance of the debtor's coordinates,
    /// metres (default 200).
    public var geofenceMeters: Int = 200
    /// IANA zone of the agency scorecard's days, and of a complaint's retention date when the
    /// debtor's zone is unknown (default Asia/Shanghai).
    public var defaultTimeZone: String = "Asia/Shanghai"

    public init() {}
    public static let defaults = VisitsConfiguration()

    /// Whether check-out needs an evidence reference (`evidence-required` in the pack).
    public var evidenceRequired: Bool { rulePack.rule(.evidenceRequired) != nil }
}

extension VisitsService {
    // MARK: CheckIn

    func checkIn(_ request: VisitsV1.CheckInRequest, _ context: ServerContext) async throws -> VisitsV1.Visit {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.appointmentId, field: "appointment_id", prefix: "apt")
        try Validate.resourceID(request.collectorId, field: "collector_id", prefix: "col")
        let location = try Validate.geoPoint(request.location, field: "location", required: true)!
        guard (0...10_000).contains(request.locationAccuracyMeters) else {
            throw RPCError.invalidArgument("location_accuracy_meters", "must be 0-10000")
        }
        guard request.deviceTimeMs >= 0 else { throw RPCError.invalidArgument("device_time_ms", "must not be negative") }
        let caller = try context.requireCaller()
        guard caller.collectorID == request.collectorId else {
            throw RPCError.permissionDenied("collector_id must be the token's collector")
        }
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        if let remembered = try await store.database.read({ db in try Idempotency.lookup(db, key, as: VisitsV1.Visit.self) }) {
            return remembered
        }
        let appointment = try await peers.appointment(request.appointmentId)
        guard appointment.crewCollectorIds.contains(request.collectorId) else {
            throw RPCError.permissionDenied("collector \(request.collectorId) is not on the crew of appointment \(appointment.id)")
        }
        let now = clock.nowMs()
        let configuration = self.configuration
        var violations: [TypeV1.Violation] = []
        if appointment.state != .notified && appointment.state != .confirmed {
            violations.append(RuleID.appointmentState.violation(
                quoting: nil, subject: appointment.id,
                "appointment \(appointment.id) is \(appointment.state.protoName ?? "not visitable")"))
        }
        let grace = Int64(configuration.checkInGraceMinutes) * 60_000
        if now < appointment.windowStartMs - grace || now > appointment.windowEndMs + grace {
            violations.append(RuleID.checkInWindow.violation(
                quoting: nil, subject: appointment.id,
                "check-in at \(now) is outside the window [\(appointment.windowStartMs), \(appointment.windowEndMs)] ± \(configuration.checkInGraceMinutes) min"))
        }
        var distance = -1
        if let target = appointment.address?.location {
            distance = Int(Geo.haversineMeters(latitude1: location.latitude, longitude1: location.longitude,
                                               latitude2: target.latitude, longitude2: target.longitude).rounded())
            if distance > configuration.geofenceMeters {
                violations.append(RuleID.checkInGeofence.violation(
                    quoting: nil, field: "location", "\(distance) m from the debtor's address; allowed \(configuration.geofenceMeters) m"))
            }
        } else {
            violations.append(RuleID.checkInGeofence.violation(quoting: nil, field: "location", "the appointment's address has no coordinates"))
        }
        if !request.idShown {
            violations.append(RuleID.idShown.violation(quoting: nil, field: "id_shown", "the collector must show identification"))
        }
        // Compliance as of now, asked of scheduling (which asks accounts).
        if appointment.state == .notified || appointment.state == .confirmed {
            let compliance = try await peers.checkInCompliance(appointmentID: appointment.id)
            violations += compliance.violations
        }
        guard violations.isEmpty else {
            throw RPCError.refused(violations, rulePackID: configuration.rulePack.id, rulePackVersion: configuration.rulePack.version)
        }
        let account = try await peers.account(appointment.accountId)
        let retainUntil = Self.retainUntil(visitMs: appointment.windowStartMs, zone: appointment.debtorTimeZone,
                                           product: account.product, pack: configuration.rulePack)
        let record = VisitsV1.CheckInRecord(
            collectorId: request.collectorId, checkedInMs: now, location: location, locationAccuracyMeters: request.locationAccuracyMeters,
            distanceMeters: Int32(max(distance, 0)), idShown: request.idShown, consentToEnter: request.consentToEnter,
            deviceTimeMs: request.deviceTimeMs)
        return try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            var visit: VisitsV1.Visit
            if let existing = try store.visit(db, appointmentID: appointment.id) {
                visit = existing
                guard visit.erased == nil else {
                    throw RPCError.refused(rule: RuleID.visitState, "visit \(visit.id) was erased past its retention", subjectID: visit.id)
                }
                guard visit.state != .checkedOut else {
                    throw RPCError.refused(rule: RuleID.visitState, "visit \(visit.id) is already checked out", subjectID: visit.id)
                }
                guard !visit.checkIns.contains(where: { $0.collectorId == request.collectorId }) else {
                    throw RPCError(code: .alreadyExists, message: "collector \(request.collectorId) already checked in to visit \(visit.id)")
                }
                visit.version += 1
            } else {
                visit = VisitsV1.Visit(
                    id: IDGenerator.make(prefix: "vis", nowMs: now), appointmentId: appointment.id, accountId: appointment.accountId,
                    debtorId: appointment.debtorId, agencyId: appointment.agencyId, crewCollectorIds: appointment.crewCollectorIds,
                    windowStartMs: appointment.windowStartMs, windowEndMs: appointment.windowEndMs, state: .checkedIn,
                    retainUntilDate: retainUntil?.proto, rulePackId: configuration.rulePack.id,
                    rulePackVersion: configuration.rulePack.version, version: 1, createdMs: now)
            }
            visit.checkIns.append(record)
            visit.chainRecords.append(try EvidenceChain.append(db, accountID: visit.accountId, visitID: visit.id, kind: .checkIn,
                                                               content: .checkIn(record), nowMs: now))
            visit.updatedMs = now
            if visit.version == 1 { try store.insert(db, visit: visit) } else { try store.update(db, visit: visit) }
            try store.publish(db, visit: visit, nowMs: now)
            return try Self.withDeliveries(db, visit)
        }
    }

    /// The date the visit's records must be kept until (pack `record-retention` by product),
    /// or nil when the pack sets none.
    static func retainUntil(visitMs: Int64, zone: String, product: AccountsV1.ProductType, pack: RulePack) -> CivilDate? {
        guard let retention = pack.retention else { return nil }
        let years = product == .creditCard ? retention.creditCardYears : retention.consumerFinanceYears
        return CivilDate.today(in: TimeZone(identifier: zone) ?? .gmt, nowMs: visitMs).adding(months: 12 * years)
    }

    // MARK: RecordOutcome

    func recordOutcome(_ request: VisitsV1.RecordOutcomeRequest, _ context: ServerContext) async throws -> VisitsV1.Visit {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.visitId, field: "visit_id", prefix: "vis")
        try Validate.resourceID(request.collectorId, field: "collector_id", prefix: "col")
        try OutcomeRules.validate(request)
        let caller = try context.requireCaller()
        guard caller.collectorID == request.collectorId else {
            throw RPCError.permissionDenied("collector_id must be the token's collector")
        }
        let crewSize = configuration.rulePack.crewSize
        return try await mutateVisit(request, requestID: request.requestId, context, id: request.visitId,
                                     expectedVersion: request.expectedVersion, collectorID: request.collectorId) { visit, db, now in
            guard visit.state == .checkedIn else {
                throw RPCError.refused(rule: RuleID.visitState, "visit \(visit.id) is \(visit.state.protoName ?? "closed"); the outcome is recorded once",
                                       subjectID: visit.id)
            }
            guard visit.checkIns.count >= crewSize else {
                throw RPCError.refused(rule: RuleID.crewPresent,
                                       "\(visit.checkIns.count) crew member(s) checked in; the pack requires \(crewSize)", subjectID: visit.id)
            }
            var outcome = VisitsV1.VisitOutcome(
                code: request.code, willingness: request.willingness, ability: request.ability, notes: request.notes,
                reportedPayment: request.reportedPayment, recordedByCollectorId: request.collectorId, recordedMs: now)
            switch request.arrangement {
            case .promise(let promise): outcome.arrangement = .promise(promise)
            case .plan(let plan): outcome.arrangement = .plan(plan)
            case nil: break
            }
            visit.outcome = outcome
            visit.state = .outcomeRecorded
            visit.chainRecords.append(try EvidenceChain.append(db, accountID: visit.accountId, visitID: visit.id, kind: .outcome,
                                                               content: .outcome(outcome), nowMs: now))
            for effect in try OutcomeRules.effects(of: outcome, visit: visit, nowMs: now) {
                try Outbox.enqueue(db, try effect.envelope.message(id: effect.effect.requestId, nowMs: now), nowMs: now)
                visit.effects.append(effect.effect)
            }
        }
    }

    // MARK: CheckOut

    func checkOut(_ request: VisitsV1.CheckOutRequest, _ context: ServerContext) async throws -> VisitsV1.Visit {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.visitId, field: "visit_id", prefix: "vis")
        try Validate.resourceID(request.collectorId, field: "collector_id", prefix: "col")
        if let evidence = request.evidence {
            _ = try Validate.text(evidence.recordingId, field: "evidence.recording_id", min: 1, max: 128)
            guard evidence.evidenceSha256.count == 32 else {
                throw RPCError.invalidArgument("evidence.evidence_sha256", "must be exactly 32 bytes")
            }
            guard evidence.durationSeconds >= 0 else { throw RPCError.invalidArgument("evidence.duration_seconds", "must not be negative") }
            guard evidence.sizeBytes >= 0 else { throw RPCError.invalidArgument("evidence.size_bytes", "must not be negative") }
            guard evidence.recordingStartedMs >= 0 else { throw RPCError.invalidArgument("evidence.recording_started_ms", "must not be negative") }
            _ = try Validate.text(evidence.mediaType, field: "evidence.media_type", min: 0, max: 100)
        }
        let location = try Validate.geoPoint(request.location, field: "location", required: false)
        let caller = try context.requireCaller()
        guard caller.collectorID == request.collectorId else {
            throw RPCError.permissionDenied("collector_id must be the token's collector")
        }
        let evidenceRequired = configuration.evidenceRequired
        let pack = configuration.rulePack
        return try await mutateVisit(request, requestID: request.requestId, context, id: request.visitId,
                                     expectedVersion: request.expectedVersion, collectorID: request.collectorId) { visit, db, now in
            switch visit.state {
            case .checkedOut:
                throw RPCError.refused(rule: RuleID.visitState, "visit \(visit.id) is already checked out", subjectID: visit.id)
            case .checkedIn:
                throw RPCError.refused(rule: RuleID.outcomeRequired, "record the visit's outcome before checking out", subjectID: visit.id)
            default:
                break
            }
            if evidenceRequired && request.evidence == nil {
                throw RPCError.refused([RuleID.evidenceRequired.violation(quoting: pack, field: "evidence",
                                                                          "\(pack.id) requires the recording's id and SHA-256")],
                                       rulePackID: pack.id, rulePackVersion: pack.version)
            }
            let record = VisitsV1.CheckOutRecord(collectorId: request.collectorId, checkedOutMs: now, evidence: request.evidence,
                                                 location: location)
            visit.checkOut = record
            visit.state = .checkedOut
            visit.chainRecords.append(try EvidenceChain.append(db, accountID: visit.accountId, visitID: visit.id, kind: .checkOut,
                                                               content: .checkOut(record), nowMs: now))
            let completion = SchedulingV1.CompleteAppointmentRequest(
                requestId: "\(visit.id).complete", appointmentId: visit.appointmentId, visitId: visit.id, checkedOutMs: now)
            let effect = VisitsV1.Effect(kind: .completeAppointment, targetService: "scheduling", requestId: completion.requestId, createdMs: now)
            let envelope = EffectEnvelope(service: "scheduling", method: SchedulingV1.SchedulingService.completeAppointment.path,
                                          request: Data(try completion.encode()), kind: effect.kind.rawValue)
            try Outbox.enqueue(db, try envelope.message(id: effect.requestId, nowMs: now), nowMs: now)
            visit.effects.append(effect)
        }
    }

    // MARK: Reads

    func listVisits(_ request: VisitsV1.ListVisitsRequest, _ context: ServerContext) async throws -> VisitsV1.ListVisitsResponse {
        let pageSize = try Validate.pageSize(request.pageSize)
        if !request.accountId.isEmpty { try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc") }
        if !request.appointmentId.isEmpty { try Validate.resourceID(request.appointmentId, field: "appointment_id", prefix: "apt") }
        if !request.collectorId.isEmpty { try Validate.resourceID(request.collectorId, field: "collector_id", prefix: "col") }
        if !request.agencyId.isEmpty { try Validate.resourceID(request.agencyId, field: "agency_id", prefix: "agy") }
        for (index, state) in request.states.enumerated() {
            if case .unrecognized(let value) = state { throw RPCError.invalidArgument("states[\(index)]", "unknown value \(value)") }
        }
        for (index, code) in request.outcomeCodes.enumerated() {
            if case .unrecognized(let value) = code { throw RPCError.invalidArgument("outcome_codes[\(index)]", "unknown value \(value)") }
        }
        guard request.checkedInFromMs >= 0 else { throw RPCError.invalidArgument("checked_in_from_ms", "must not be negative") }
        guard request.checkedInToMs >= 0 else { throw RPCError.invalidArgument("checked_in_to_ms", "must not be negative") }
        var filter = request
        guard let narrowed = try context.requireScope().narrow(agencyID: filter.agencyId, collectorID: filter.collectorId) else {
            return VisitsV1.ListVisitsResponse()
        }
        (filter.agencyId, filter.collectorId) = narrowed
        let after = try Self.pageToken.decode(request.pageToken)
        let store = self.store
        let selected = filter
        return try await store.database.read { db in
            let page = try store.list(db, filter: selected, after: after, limit: pageSize + 1)
            var response = VisitsV1.ListVisitsResponse()
            response.visits = try page.prefix(pageSize).map { try Self.withDeliveries(db, $0) }
            if page.count > pageSize, let last = response.visits.last {
                response.nextPageToken = Self.pageToken.encode(ms: last.createdMs, id: last.id)
            }
            return response
        }
    }

    func verifyEvidenceChain(_ request: VisitsV1.VerifyEvidenceChainRequest, _ context: ServerContext) async throws -> VisitsV1.VerifyEvidenceChainResponse {
        try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc")
        let store = self.store
        let accountID = request.accountId
        let (records, erased) = try await store.database.read { db in
            (try EvidenceChain.records(db, accountID: accountID), try EvidenceChain.erasedSequences(db, accountID: accountID))
        }
        guard !records.isEmpty else { throw RPCError.notFound("no visit records for account \(accountID)") }
        let result = EvidenceChain.verify(records, accountID: accountID, erased: erased)
        return VisitsV1.VerifyEvidenceChainResponse(
            accountId: accountID, intact: result.intact, recordsChecked: result.recordsChecked, headSequence: result.headSequence,
            headSha256: result.headSHA256, firstBrokenSequence: result.firstBrokenSequence, problem: result.problem,
            verifiedMs: clock.nowMs(), recordsErased: result.recordsErased)
    }

    // MARK: Shared steps

    /// One change of one visit: idempotent write transaction, visibility (NOT_FOUND), the
    /// collector checked in to it (PERMISSION_DENIED), expected version (ABORTED), `change`,
    /// version and timestamps, write; then wakes the effect dispatcher.
    func mutateVisit<Request: ProtoMessage>(
        _ request: Request, requestID: String, _ context: ServerContext, id: String, expectedVersion: Int64, collectorID: String,
        _ change: @escaping @Sendable (inout VisitsV1.Visit, SQLSession, Int64) throws -> Void
    ) async throws -> VisitsV1.Visit {
        let scope = try context.requireScope()
        let key = try Idempotency.Key(method: context.path, requestID: requestID, request: request, caller: context.callerKey)
        let now = clock.nowMs()
        let store = self.store
        let result = try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            guard let record = try store.visit(db, id: id), Self.may(scope, see: record) else {
                throw RPCError.notFound("visit \(id) not found")
            }
            var visit = record.value
            guard visit.erased == nil else {
                throw RPCError.refused(rule: RuleID.visitState, "visit \(id) was erased past its retention", subjectID: id)
            }
            guard visit.checkIns.contains(where: { $0.collectorId == collectorID }) else {
                throw RPCError.permissionDenied("collector \(collectorID) has not checked in to visit \(id)")
            }
            if expectedVersion != 0 && expectedVersion != visit.version {
                throw RPCError(code: .aborted, message: "visit is at version \(visit.version), not expected_version \(expectedVersion); read it again and retry")
            }
            try change(&visit, db, now)
            visit.version += 1
            visit.updatedMs = now
            try store.update(db, visit: visit)
            try store.publish(db, visit: visit, nowMs: now)
            return try Self.withDeliveries(db, visit)
        }
        effectsWritten()
        return result
    }

    /// `visit` with each effect's delivery state from the outbox.
    static func withDeliveries(_ db: SQLSession, _ visit: VisitsV1.Visit) throws -> VisitsV1.Visit {
        var result = visit
        try fillDeliveries(db, &result.effects)
        return result
    }

    /// Sets each effect's delivery state from the outbox (an effect's request id is its
    /// outbox message id).
    static func fillDeliveries(_ db: SQLSession, _ effects: inout [VisitsV1.Effect]) throws {
        guard !effects.isEmpty else { return }
        let deliveries = try Outbox.deliveries(db, ids: effects.map(\.requestId))
        for index in effects.indices {
            if let delivery = deliveries[effects[index].requestId] {
                effects[index].delivery = delivery.proto
                effects[index].resultId = delivery.result
            }
        }
    }
}

extension VisitsService {
    /// Page tokens of ListVisits (created_ms, id of the last row) and ListComplaints
    /// (sla_due_ms, id).
    static let pageToken = KeysetPageToken(tag: "v1")
}
