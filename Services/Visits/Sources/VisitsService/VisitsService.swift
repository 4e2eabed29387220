import Foundation
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

    public init(database: SQLiteDatabase, clock: ServiceClock) {
        self.store = VisitsStore(database: database)
        self.clock = clock
    }

    public static let serviceName = "doorstep.visits.v1.Visits"
    public static var migrations: SQLiteDatabase.Migrations { VisitsStore.migrations }

    /// The service's methods with their roles (visits.proto role table).
    public var definition: ServiceDefinition {
        var definition = ServiceDefinition()
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
        let caller = try context.requireCaller()
        let store = self.store
        let id = request.visitId
        guard let record = try store.database.readPoint({ db in try store.visit(db, id: id) }), Self.may(caller, see: record) else {
            throw RPCError.notFound("visit \(id) not found")
        }
        return record.value
    }

    func getComplaint(_ request: VisitsV1.GetComplaintRequest, _ context: ServerContext) async throws -> VisitsV1.Complaint {
        try Validate.resourceID(request.complaintId, field: "complaint_id", prefix: "cmp")
        let caller = try context.requireCaller()
        let store = self.store
        let id = request.complaintId
        guard let record = try store.database.readPoint({ db in try store.complaint(db, id: id) }), Self.may(caller, see: record) else {
            throw RPCError.notFound("complaint \(id) not found")
        }
        return record.value
    }

    /// "own" (visits.proto): an agency manager its agency's records, a collector its own.
    static func may<Value>(_ caller: Caller, see record: VisibleRecord<Value>) -> Bool {
        switch caller.role {
        case .agencyManager: return caller.agencyID == record.agencyID
        case .collector: return caller.collectorID.map { record.collectorIDs.contains($0) } ?? false
        case .platform, .compliance, .service: return true
        }
    }
}
