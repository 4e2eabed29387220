import Foundation
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

/// `doorstep.scheduling.v1.Scheduling`: the agency whitelist and its certified collectors
/// (bookings, compliance and day plans build on them). Every mutation is idempotent by
/// `request_id`.
public struct SchedulingService: Sendable {
    let store: SchedulingStore
    let clock: ServiceClock

    public init(database: SQLiteDatabase, clock: ServiceClock) {
        self.store = SchedulingStore(database: database)
        self.clock = clock
    }

    public static let serviceName = "doorstep.scheduling.v1.Scheduling"
    public static var migrations: SQLiteDatabase.Migrations { SchedulingStore.migrations }

    /// The service's methods with their roles (scheduling.proto role table).
    public var definition: ServiceDefinition {
        var definition = ServiceDefinition()
        definition.unary(SchedulingV1.SchedulingService.registerAgency, roles: [.platform]) { request, context in
            try await registerAgency(request, context)
        }
        definition.unary(SchedulingV1.SchedulingService.registerCollector, roles: [.platform, .agencyManager]) { request, context in
            try await registerCollector(request, context)
        }
        return definition
    }

    func registerAgency(_ request: SchedulingV1.RegisterAgencyRequest, _ context: ServerContext) async throws -> SchedulingV1.Agency {
        try Validate.requestID(request.requestId)
        let now = clock.nowMs()
        let validated = try RegistryValidation.agency(request.agency, today: CivilDate.today(in: .gmt, nowMs: now))
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        return try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            var agency = validated
            guard try !store.licenceTaken(db, agency.licenceNumber) else {
                throw RPCError(code: .alreadyExists, message: "an agency with licence_number '\(agency.licenceNumber)' already exists")
            }
            agency.id = IDGenerator.make(prefix: "agy", nowMs: now)
            agency.status = .active
            agency.statusReason = ""
            agency.version = 1
            agency.createdMs = now
            agency.updatedMs = now
            try store.insert(db, agency: agency)
            return agency
        }
    }

    func registerCollector(_ request: SchedulingV1.RegisterCollectorRequest, _ context: ServerContext) async throws -> SchedulingV1.Collector {
        try Validate.requestID(request.requestId)
        let validated = try RegistryValidation.collector(request.collector)
        if let caller = context.caller, caller.role == .agencyManager, caller.agencyID != validated.agencyId {
            throw RPCError.permissionDenied("an agency manager registers collectors of its own agency only")
        }
        let now = clock.nowMs()
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        return try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            var collector = validated
            guard let agency = try store.agency(db, id: collector.agencyId) else {
                throw RPCError.notFound("agency \(collector.agencyId) not found")
            }
            var violations: [TypeV1.Violation] = []
            if agency.status != .active {
                violations.append(TypeV1.Violation(
                    ruleId: "agency-status", detail: "agency \(agency.id) is \(agency.status.protoName ?? "not active")",
                    subjectId: agency.id))
            }
            if !agency.regionsServed.contains(collector.regionCode) {
                violations.append(TypeV1.Violation(
                    ruleId: "agency-region", field: "collector.region_code",
                    detail: "agency \(agency.id) does not serve region \(collector.regionCode)", subjectId: agency.id))
            }
            guard violations.isEmpty else { throw RPCError.refused(violations) }
            guard try !store.certificationTaken(db, collector.certificationNumber) else {
                throw RPCError(code: .alreadyExists,
                               message: "a collector with certification_number '\(collector.certificationNumber)' already exists")
            }
            collector.id = IDGenerator.make(prefix: "col", nowMs: now)
            collector.status = .active
            collector.suspensions = []
            collector.version = 1
            collector.createdMs = now
            collector.updatedMs = now
            try store.insert(db, collector: collector)
            return collector
        }
    }
}
