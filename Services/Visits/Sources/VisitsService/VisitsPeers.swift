import Foundation
import Models
import Outbox
import RPC
import RPCWire
import ServiceAuth
import ServiceKit
import TransportSecurity

/// What the visits service asks of the other services at check-in: the appointment, the
/// compliance re-check (scheduling.proto CheckCompliance with check_point CHECK_IN, which
/// also asks accounts for stage and holds) and the account (its product sets record retention;
/// its promises feed the agency scorecard).
/// Errors are ready for the caller, mapped by `PeerFailure`: NOT_FOUND, UNAVAILABLE when a
/// peer cannot be reached, INTERNAL when it fails or refuses the visits service's token.
public protocol VisitsPeers: Sendable {
    func appointment(_ id: String) async throws(RPCError) -> SchedulingV1.Appointment
    func checkInCompliance(appointmentID: String) async throws(RPCError) -> SchedulingV1.CheckComplianceResponse
    func account(_ id: String) async throws(RPCError) -> AccountsV1.Account
}

/// `VisitsPeers` over gRPC, as role `service`.
public final class GRPCVisitsPeers: VisitsPeers {
    let accounts: PeerClient
    let scheduling: PeerClient

    public init(accounts: [GRPCClient.Target], scheduling: [GRPCClient.Target], signingKey: SigningKeyStore, tls: ClientTLS? = nil) {
        self.accounts = PeerClient(peer: "accounts", targets: accounts, signingKey: signingKey, subject: "visits", tls: tls)
        self.scheduling = PeerClient(peer: "scheduling", targets: scheduling, signingKey: signingKey, subject: "visits",
                                     timeout: .seconds(10), tls: tls)
    }

    public func close() async {
        await accounts.close()
        await scheduling.close()
    }

    public func appointment(_ id: String) async throws(RPCError) -> SchedulingV1.Appointment {
        try await scheduling.call(SchedulingV1.SchedulingService.getAppointment, SchedulingV1.GetAppointmentRequest(appointmentId: id))
    }

    public func checkInCompliance(appointmentID: String) async throws(RPCError) -> SchedulingV1.CheckComplianceResponse {
        try await scheduling.call(SchedulingV1.SchedulingService.checkCompliance,
                                  SchedulingV1.CheckComplianceRequest(appointmentId: appointmentID, checkPoint: .checkIn))
    }

    public func account(_ id: String) async throws(RPCError) -> AccountsV1.Account {
        try await accounts.call(AccountsV1.AccountsService.getAccount, AccountsV1.GetAccountRequest(accountId: id, view: .full))
    }

    /// The outbox sink delivering visit and complaint consequences to these peers.
    public var effectSink: PeerEffectSink { PeerEffectSink(peers: ["accounts": accounts, "scheduling": scheduling]) }
}

/// One queued consequence as the outbox stores it: which peer, which method, the encoded
/// request (its request_id is the effect's, stable across retries, so the peer acts once).
struct EffectEnvelope: Codable, Sendable, Hashable {
    var service: String
    var method: String
    var request: Data
    var kind: Int32

    static let topic = "visit-effect"

    func message(id: String, nowMs: Int64) throws -> OutboxMessage {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return OutboxMessage(id: id, topic: Self.topic, payload: Array(try encoder.encode(self)), createdMs: nowMs)
    }
}

/// Delivers `EffectEnvelope`s by calling the peer. OK acknowledges; the peer's refusals
/// (NOT_FOUND, INVALID_ARGUMENT, FAILED_PRECONDITION, PERMISSION_DENIED, UNIMPLEMENTED) are
/// permanent — the effect is FAILED and visible on the visit; anything else is retried. A
/// repayment plan is proposed and then accepted, each step idempotent by its own request id.
/// The id of what the peer created or changed (`Effect.result_id`) is read from its answer.
public struct PeerEffectSink: OutboxSink {
    let peers: [String: PeerClient]

    public func deliver(_ message: OutboxMessage) async throws(OutboxSinkError) {
        _ = try await deliverForResult(message)
    }

    public func deliverForResult(_ message: OutboxMessage) async throws(OutboxSinkError) -> String {
        let envelope: EffectEnvelope
        do { envelope = try JSONDecoder().decode(EffectEnvelope.self, from: Data(message.payload)) } catch {
            throw .permanent("malformed effect: \(error)")
        }
        guard let peer = peers[envelope.service] else { throw .permanent("unknown service \(envelope.service)") }
        let messages = try await call(peer, path: envelope.method, request: [UInt8](envelope.request))
        let kind = VisitsV1.EffectKind(rawValue: envelope.kind)
        guard kind == .repaymentPlan else {
            return messages.first.map { Self.resultID(kind, request: [UInt8](envelope.request), response: $0) } ?? ""
        }
        // Second step: accept the plan the first step proposed.
        guard let proposal = try? AccountsV1.ProposeRepaymentPlanRequest(decoding: [UInt8](envelope.request)),
              let first = messages.first, let account = try? AccountsV1.Account(decoding: first),
              let plan = account.repaymentPlans.last(where: { $0.requestId == proposal.requestId }) else {
            throw .permanent("the proposed plan is missing from accounts' response")
        }
        let accept = AccountsV1.AcceptRepaymentPlanRequest(requestId: proposal.requestId + ".accept", accountId: proposal.accountId,
                                                           planId: plan.id)
        let encoded: [UInt8]
        do { encoded = try accept.encode() } catch { throw .permanent("cannot encode the acceptance: \(error)") }
        _ = try await call(peer, path: AccountsV1.AccountsService.acceptRepaymentPlan.path, request: encoded)
        return plan.id
    }

    /// The id of what an effect's call created or changed, found in the peer's answer by the
    /// effect's request id (or its complaint): the contact attempt, the promise, the hold
    /// placed or released, the appointment completed, the suspension placed or lifted; "" if
    /// the answer does not show it.
    public static func resultID(_ kind: VisitsV1.EffectKind, request: [UInt8], response: [UInt8]) -> String {
        switch kind {
        case .contactAttempt:
            guard let sent = try? AccountsV1.RecordContactAttemptRequest(decoding: request),
                  let attempt = (try? AccountsV1.Account(decoding: response))?.contactSummary?.lastAttempt,
                  attempt.requestId == sent.requestId else { return "" }
            return attempt.id
        case .promiseToPay:
            guard let sent = try? AccountsV1.RecordPromiseToPayRequest(decoding: request),
                  let account = try? AccountsV1.Account(decoding: response) else { return "" }
            return account.promises.first { $0.requestId == sent.requestId }?.id ?? ""
        case .placeHold:
            guard let sent = try? AccountsV1.PlaceHoldRequest(decoding: request),
                  let account = try? AccountsV1.Account(decoding: response) else { return "" }
            let hold = account.holds.first { $0.requestId == sent.requestId }
                ?? account.holds.first { !sent.complaintId.isEmpty && $0.complaintId == sent.complaintId && $0.active }
            return hold?.id ?? ""
        case .releaseHold:
            guard let sent = try? AccountsV1.ReleaseHoldRequest(decoding: request),
                  let account = try? AccountsV1.Account(decoding: response) else { return "" }
            switch sent.hold {
            case .holdId(let id)?: return id
            case .complaintId(let complaint)?: return account.holds.last { $0.complaintId == complaint }?.id ?? ""
            case nil: return ""
            }
        case .completeAppointment:
            return (try? SchedulingV1.Appointment(decoding: response))?.id ?? ""
        case .suspendCollector:
            guard let sent = try? SchedulingV1.SuspendCollectorRequest(decoding: request),
                  let collector = try? SchedulingV1.Collector(decoding: response) else { return "" }
            return collector.suspensions.last { $0.complaintId == sent.complaintId }?.id ?? ""
        case .reinstateCollector:
            guard let sent = try? SchedulingV1.ReinstateCollectorRequest(decoding: request),
                  let collector = try? SchedulingV1.Collector(decoding: response) else { return "" }
            switch sent.suspension {
            case .suspensionId(let id)?: return id
            case .complaintId(let complaint)?: return collector.suspensions.last { $0.complaintId == complaint }?.id ?? ""
            case nil: return ""
            }
        case .repaymentPlan, .unspecified, .unrecognized: return ""
        }
    }

    private func call(_ peer: PeerClient, path: String, request: [UInt8]) async throws(OutboxSinkError) -> [[UInt8]] {
        let result: (status: Status, messages: [[UInt8]])
        do { result = try await peer.rawCall(path: path, request: request) } catch { throw .retryable("\(error.code): \(error.message)") }
        switch result.status.code {
        case .ok:
            return result.messages
        case .notFound, .invalidArgument, .failedPrecondition, .permissionDenied, .unimplemented, .outOfRange:
            throw .permanent("\(peer.peer) \(path): \(result.status.code) \(result.status.message)")
        default:
            throw .retryable("\(peer.peer) \(path): \(result.status.code) \(result.status.message)")
        }
    }
}
