import Events
import Foundation
import Logging
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

/// `doorstep.visits.v1.Visits`: visits (check-in, outcome, evidence, check-out) and
/// complaints. Reads are scoped: an agency manager sees its agency's records, a collector
/// the visits it was crew on; anything else is NOT_FOUND (existence is not disclosed).
public struct VisitsService: Sendable {
    let store: VisitsStore
    let clock: ServiceClock
    let configuration: VisitsConfiguration
    let peers: any VisitsPeers
    /// Called after a transaction queued consequences, so they are delivered promptly.
    let effectsWritten: @Sendable () -> Void
    let logger: Logger

    public init(database: SQLDatabase, clock: ServiceClock, configuration: VisitsConfiguration = .defaults,
                peers: any VisitsPeers, logger: Logger = Logger(label: "doorstep.visits"),
                effectsWritten: @escaping @Sendable () -> Void = {}) {
        self.logger = logger
        self.store = VisitsStore(database: database)
        self.clock = clock
        self.configuration = configuration
        self.peers = peers
        self.effectsWritten = effectsWritten
    }

    /// Outbox topic of visit consequences.
    public static let effectTopic = EffectEnvelope.topic

    public static let serviceName = "doorstep.visits.v1.Visits"
    public static var migrations: SQLDatabase.Migrations { VisitsStore.migrations }

    /// The service's methods with their roles (visits.proto role table).
    public var definition: ServiceDefinition {
        typealias V = VisitsV1.VisitsService
        var definition = ServiceDefinition()
        definition.unary(V.checkIn, roles: [.collector]) { try await checkIn($0, $1) }
        definition.unary(V.recordOutcome, roles: [.collector]) { try await recordOutcome($0, $1) }
        definition.unary(V.checkOut, roles: [.collector]) { try await checkOut($0, $1) }
        definition.unary(V.listVisits, roles: [.platform, .compliance, .agencyManager, .collector, .service]) { try await listVisits($0, $1) }
        definition.unary(V.verifyEvidenceChain, roles: [.platform, .compliance]) { try await verifyEvidenceChain($0, $1) }
        definition.unary(V.fileComplaint, roles: [.platform, .compliance]) { try await fileComplaint($0, $1) }
        definition.unary(V.extendComplaint, roles: [.compliance]) { try await extendComplaint($0, $1) }
        definition.unary(V.resolveComplaint, roles: [.compliance]) { try await resolveComplaint($0, $1) }
        definition.unary(V.listComplaints, roles: [.platform, .compliance, .agencyManager]) { try await listComplaints($0, $1) }
        definition.unary(V.getAgencyScorecard, roles: [.platform, .compliance, .agencyManager, .service]) { try await getAgencyScorecard($0, $1) }
        definition.unary(V.listRetentionRecords, roles: [.compliance]) { try await listRetentionRecords($0, $1) }
        definition.serverStreaming(V.watchEvents, roles: [.platform, .compliance, .service]) { request, context, responses in
            try await store.events.watch(request, context: context, database: store.database, responses: responses)
        }
        definition.unary(VisitsV1.VisitsService.getVisit,
                         roles: [.platform, .compliance, .agencyManager, .collector, .service]) { request, context in
            try await getVisit(request, context)
        }
        definition.unary(VisitsV1.VisitsService.getComplaint, roles: [.platform, .compliance, .agencyManager]) { request, context in
            try await getComplaint(request, context)
        }
        return definition
    }

    func getVisit(_ request: VisitsV1.GetVisitRequest, _ context: ServerContext) async throws -> VisitsV1.Visit {
        try Validate.resourceID(request.visitId, field: "visit_id", prefix: "vis")
        let scope = try context.requireScope()
        let store = self.store
        let id = request.visitId
        // One read transaction: the visit and its deliveries from one snapshot (a delivery
        // and the timeline event it writes commit together).
        let found = try await store.database.read { db -> VisitsV1.Visit? in
            guard let record = try store.visit(db, id: id), Self.may(scope, see: record) else { return nil }
            return try Self.withDeliveries(db, record.value)
        }
        guard let found else { throw RPCError.notFound("visit \(id) not found") }
        return found
    }

    func getComplaint(_ request: VisitsV1.GetComplaintRequest, _ context: ServerContext) async throws -> VisitsV1.Complaint {
        try Validate.resourceID(request.complaintId, field: "complaint_id", prefix: "cmp")
        let scope = try context.requireScope()
        let store = self.store
        let id = request.complaintId
        let now = clock.nowMs()
        // One read transaction: the complaint and its effects' deliveries from one snapshot.
        let found = try await store.database.read { db -> VisitsV1.Complaint? in
            guard let record = try store.complaint(db, id: id), Self.may(scope, see: record) else { return nil }
            return try Self.withDeliveries(db, record.value, nowMs: now)
        }
        guard let found else { throw RPCError.notFound("complaint \(id) not found") }
        return found
    }

    /// "own" (visits.proto): an agency manager its agency's records, a collector its own.
    static func may<Value>(_ scope: CallerScope, see record: VisibleRecord<Value>) -> Bool {
        scope.sees(agencyID: record.agencyID, collectorIDs: record.collectorIDs)
    }
}
