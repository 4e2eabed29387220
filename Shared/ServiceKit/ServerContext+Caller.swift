import Models
import RPC
import RPCWire

extension ServerContext {
    /// The authenticated caller (the runtime always configures an authenticator).
    public func requireCaller() throws(RPCError) -> Caller {
        guard let caller else { throw RPCError.unauthenticated("no caller identity") }
        return caller
    }

    /// Who is calling, as it enters idempotency fingerprints: role, subject, agency, collector.
    public var callerKey: String {
        guard let caller else { return "-" }
        return [caller.role.rawValue, caller.subject, caller.agencyID ?? "", caller.collectorID ?? ""].joined(separator: "|")
    }
}

extension Caller {
    /// The caller as recorded in audit logs and on resources.
    public var actor: TypeV1.Actor {
        let role: TypeV1.Role = switch self.role {
        case .platform: .platform
        case .agencyManager: .agencyManager
        case .collector: .collector
        case .compliance: .compliance
        case .service: .service
        }
        return TypeV1.Actor(role: role, subject: subject, agencyId: agencyID ?? "", collectorId: collectorID ?? "")
    }
}
