import Foundation
import Models
import RPC
import RPCWire
import ServiceAuth
import ServiceKit
import TransportSecurity

/// The agency scorecards scheduling ranks agencies by when it places accounts by rule
/// (visits.proto `GetAgencyScorecard`, which visits computes from its complaints and visit
/// outcomes). Errors are `RPCError`s ready for scheduling's caller, mapped by `PeerFailure`.
public protocol AgencyScorecards: Sendable {
    /// The agency's scorecard from `startDate` to yesterday; an agency visits has no record
    /// of yet has an empty scorecard (all counts 0).
    func scorecard(agencyID: String, startDate: TypeV1.Date) async throws(RPCError) -> VisitsV1.AgencyScorecard
}

/// `AgencyScorecards` over gRPC: calls the visits service as role `service`.
public final class GRPCAgencyScorecards: AgencyScorecards {
    private let peer: PeerClient

    public init(targets: [GRPCClient.Target], signingKey: SigningKeyStore, subject: String, timeout: Duration = .seconds(5),
                tls: ClientTLS? = nil) {
        self.peer = PeerClient(peer: "visits", targets: targets, signingKey: signingKey, subject: subject, timeout: timeout, tls: tls)
    }

    public func close() async { await peer.close() }

    public func scorecard(agencyID: String, startDate: TypeV1.Date) async throws(RPCError) -> VisitsV1.AgencyScorecard {
        do {
            return try await peer.call(VisitsV1.VisitsService.getAgencyScorecard,
                                       VisitsV1.GetAgencyScorecardRequest(agencyId: agencyID, periodStartDate: startDate))
        } catch {
            // Visits knows no visit or complaint of the agency yet: nothing against it.
            guard error.code == .notFound else { throw error }
            return VisitsV1.AgencyScorecard(agencyId: agencyID)
        }
    }
}
