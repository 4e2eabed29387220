import Compliance
import Events
import Foundation
import Logging
import Models
import Outbox
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

/// `doorstep.scheduling.v1.Scheduling`: the agency whitelist and its certified collectors over
/// their whole life (renewals, inspections, suspension and exit), compliance as code on every
/// booking, appointments with their state machine and customer notices (transactional
/// outbox), day plans and the contact budget. Every mutation is idempotent by `request_id`
/// and versioned.
public struct SchedulingService: Sendable {
    let store: SchedulingStore
    let clock: ServiceClock
    let configuration: SchedulingConfiguration
    let accounts: any AccountsDirectory
    /// Called after a transaction wrote a customer notice, so it is delivered promptly.
    let noticeWritten: @Sendable () -> Void
    /// The agencies' scorecards PlaceRegion ranks by; nil: PlaceRegion is UNAVAILABLE.
    let scorecards: (any AgencyScorecards)?

    public init(database: SQLDatabase, clock: ServiceClock, configuration: SchedulingConfiguration = .defaults,
                accounts: any AccountsDirectory, noticeWritten: @escaping @Sendable () -> Void = {},
                scorecards: (any AgencyScorecards)? = nil) {
        self.store = SchedulingStore(database: database)
        self.clock = clock
        self.configuration = configuration
        self.accounts = accounts
        self.noticeWritten = noticeWritten
        self.scorecards = scorecards
    }

    public static let serviceName = "doorstep.scheduling.v1.Scheduling"
    public static var migrations: SQLDatabase.Migrations { SchedulingStore.migrations }
    /// Outbox topic of customer notices.
    public static let noticeTopic = "customer-notice"

    /// The service's methods with their roles (scheduling.proto role table).
    public var definition: ServiceDefinition {
        typealias S = SchedulingV1.SchedulingService
        var definition = ServiceDefinition()
        definition.unary(S.registerAgency, roles: [.platform]) { try await registerAgency($0, $1) }
        definition.unary(S.registerCollector, roles: [.platform, .agencyManager]) { try await registerCollector($0, $1) }
        definition.unary(S.suspendCollector, roles: [.platform, .compliance, .agencyManager, .service]) { try await suspendCollector($0, $1) }
        definition.unary(S.reinstateCollector, roles: [.platform, .compliance, .agencyManager, .service]) { try await reinstateCollector($0, $1) }
        definition.unary(S.getAgency, roles: [.platform, .compliance, .agencyManager, .service]) { try await getAgency($0, $1) }
        definition.unary(S.listAgencies, roles: [.platform, .compliance, .agencyManager, .service]) { try await listAgencies($0, $1) }
        definition.unary(S.updateAgency, roles: [.platform]) { try await updateAgency($0, $1) }
        definition.unary(S.recordInspection, roles: [.platform]) { try await recordInspection($0, $1) }
        definition.unary(S.suspendAgency, roles: [.platform]) { try await suspendAgency($0, $1) }
        definition.unary(S.reinstateAgency, roles: [.platform]) { try await reinstateAgency($0, $1) }
        definition.unary(S.exitAgency, roles: [.platform]) { try await exitAgency($0, $1) }
        definition.unary(S.getCollector, roles: [.platform, .compliance, .agencyManager, .service]) { try await getCollector($0, $1) }
        definition.unary(S.listCollectors, roles: [.platform, .compliance, .agencyManager, .service]) { try await listCollectors($0, $1) }
        definition.unary(S.updateCollector, roles: [.platform]) { try await updateCollector($0, $1) }
        definition.unary(S.listExpiring, roles: [.platform, .compliance, .agencyManager, .service]) { try await listExpiring($0, $1) }
        definition.unary(S.checkCompliance, roles: [.platform, .compliance, .agencyManager, .service]) { try await checkCompliance($0, $1) }
        definition.unary(S.bookAppointment, roles: [.platform, .agencyManager]) { try await bookAppointment($0, $1) }
        definition.unary(S.confirmAppointment, roles: [.platform, .agencyManager]) { try await confirmAppointment($0, $1) }
        definition.unary(S.rescheduleAppointment, roles: [.platform, .agencyManager]) { try await rescheduleAppointment($0, $1) }
        definition.unary(S.cancelAppointment, roles: [.platform, .compliance, .agencyManager, .service]) { try await cancelAppointment($0, $1) }
        definition.unary(S.completeAppointment, roles: [.platform, .service]) { try await completeAppointment($0, $1) }
        definition.unary(S.getAppointment, roles: [.platform, .compliance, .agencyManager, .collector, .service]) { try await getAppointment($0, $1) }
        definition.unary(S.listAppointments, roles: [.platform, .compliance, .agencyManager, .collector, .service]) { try await listAppointments($0, $1) }
        definition.unary(S.planDay, roles: [.platform, .agencyManager, .service]) { try await planDay($0, $1) }
        definition.unary(S.getContactBudget, roles: [.platform, .compliance, .service]) { try await getContactBudget($0, $1) }
        definition.unary(S.placeRegion, roles: [.platform]) { try await placeRegion($0, $1) }
        definition.serverStreaming(S.watchEvents, roles: [.platform, .compliance, .service]) { request, context, responses in
            try await store.events.watch(request, context: context, database: store.database, responses: responses)
        }
        return definition
    }

    // MARK: Registry

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
        let scope = try context.requireScope()
        if case .agency = scope, !scope.sees(agencyID: validated.agencyId) {
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
                violations.append(RuleID.agencyStatus.violation(
                    quoting: nil, subject: agency.id, "agency \(agency.id) is \(agency.status.protoName ?? "not active")"))
            }
            if !agency.regionsServed.contains(collector.regionCode) {
                violations.append(RuleID.agencyRegion.violation(
                    quoting: nil, field: "collector.region_code", subject: agency.id,
                    "agency \(agency.id) does not serve region \(collector.regionCode)"))
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

// MARK: Visibility

extension SchedulingService {
    /// The appointment `id` as `scope` may see it (scheduling.proto: "own" for agency
    /// managers is their agency's crews, for collectors the appointments they are in), or
    /// NOT_FOUND (another agency's record is not disclosed).
    static func visibleAppointment(_ db: SQLSession, _ store: SchedulingStore, id: String, scope: CallerScope) throws -> SchedulingV1.Appointment {
        guard let appointment = try store.appointment(db, id: id),
              scope.sees(agencyID: appointment.agencyId, collectorIDs: appointment.crewCollectorIds) else {
            throw RPCError.notFound("appointment \(id) not found")
        }
        return appointment
    }

    /// `appointment` with each notice's delivery state from the outbox.
    static func withDeliveries(_ db: SQLSession, _ appointment: SchedulingV1.Appointment) throws -> SchedulingV1.Appointment {
        guard !appointment.notices.isEmpty else { return appointment }
        let deliveries = try Outbox.deliveries(db, ids: appointment.notices.map(\.id))
        var result = appointment
        for index in result.notices.indices {
            if let delivery = deliveries[result.notices[index].id] { result.notices[index].delivery = delivery.proto }
        }
        return result
    }
}
