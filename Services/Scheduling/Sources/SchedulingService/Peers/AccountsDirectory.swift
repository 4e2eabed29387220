import Compliance
import Foundation
import Models
import RPC
import RPCWire
import ServiceAuth
import ServiceKit
import TransportSecurity

/// What scheduling needs to know about an account to judge a visit (accounts.proto
/// `Account` and its debtor's `Address`).
public struct AccountFacts: Sendable, Hashable {
    public var accountID: String
    public var debtorID: String
    public var stage: AccountsV1.Stage
    public var onHold: Bool
    public var regionCode: String
    public var timeZoneID: String
    /// The debtor's address (with coordinates when known).
    public var address: TypeV1.Address?
    /// The agency the account is assigned to (accounts.proto `assigned_agency_id`); empty
    /// if none.
    public var assignedAgencyID: String
    /// The visit that found the debtor's address wrong, while it is not corrected
    /// (accounts.proto `Debtor.address_unverified`, `wrong_address_finding`); nil otherwise.
    public var wrongAddress: AccountsV1.WrongAddressFinding?

    public init(accountID: String, debtorID: String, stage: AccountsV1.Stage, onHold: Bool, regionCode: String,
                timeZoneID: String, address: TypeV1.Address?, assignedAgencyID: String = "",
                wrongAddress: AccountsV1.WrongAddressFinding? = nil) {
        self.assignedAgencyID = assignedAgencyID
        self.wrongAddress = wrongAddress
        self.accountID = accountID
        self.debtorID = debtorID
        self.stage = stage
        self.onHold = onHold
        self.regionCode = regionCode
        self.timeZoneID = timeZoneID
        self.address = address
    }

    /// The account as `VisitPolicy` reads it; the zone falls back to UTC only for a record
    /// accounts would never return (its zones are validated).
    var visited: VisitedAccount {
        VisitedAccount(accountID: accountID, stage: stage, onHold: onHold, regionCode: regionCode,
                       timeZone: TimeZone(identifier: timeZoneID) ?? .gmt, location: address?.location, wrongAddress: wrongAddress)
    }
}

/// A region's visit candidates as a day plan reads them (accounts.proto
/// `ListVisitCandidatesResponse`): the top-ranked candidates, best first, and the accounts
/// accounts defers for now, with why.
public struct VisitCandidates: Sendable, Hashable {
    public var candidates: [AccountsV1.VisitCandidate]
    public var deferred: [AccountsV1.DeferredVisitCandidate]

    public init(candidates: [AccountsV1.VisitCandidate] = [], deferred: [AccountsV1.DeferredVisitCandidate] = []) {
        self.candidates = candidates
        self.deferred = deferred
    }
}

/// The accounts service as scheduling uses it: account facts for compliance, visit
/// candidates for day plans, and a debtor's accounts with their contact counters for the
/// contact budget. Errors are `RPCError`s ready to return to scheduling's caller, mapped by
/// `PeerFailure`: NOT_FOUND when accounts says so, UNAVAILABLE when it cannot be reached,
/// INTERNAL when it fails or refuses scheduling's token.
public protocol AccountsDirectory: Sendable {
    func account(_ accountID: String) async throws(RPCError) -> AccountFacts
    func debtor(_ debtorID: String) async throws(RPCError) -> AccountsV1.Debtor
    func accounts(ofDebtor debtorID: String) async throws(RPCError) -> [AccountsV1.Account]
    /// Up to `limit` top-ranked visit candidates of the region, best first, and the region's
    /// deferred accounts.
    func candidates(region: String, limit: Int) async throws(RPCError) -> VisitCandidates
    /// The same, only the accounts placed with (assigned to) `agencyID` (accounts.proto
    /// `ListVisitCandidatesRequest.agency_id`); "" = any.
    func candidates(region: String, agencyID: String, limit: Int) async throws(RPCError) -> VisitCandidates
    /// Places accounts (accounts.proto PlaceAccounts; scheduling sends placements by rule).
    func placeAccounts(_ request: AccountsV1.PlaceAccountsRequest) async throws(RPCError) -> AccountsV1.PlaceAccountsResponse
    /// Recalls placed accounts (accounts.proto RecallAccounts; scheduling recalls a suspended
    /// or exited agency's accounts).
    func recallAccounts(_ request: AccountsV1.RecallAccountsRequest) async throws(RPCError) -> AccountsV1.RecallAccountsResponse
}

extension AccountsDirectory {
    /// A directory that cannot filter by agency filters the region's candidates itself.
    public func candidates(region: String, agencyID: String, limit: Int) async throws(RPCError) -> VisitCandidates {
        var all = try await candidates(region: region, limit: limit)
        guard !agencyID.isEmpty else { return all }
        all.candidates.removeAll { $0.assignedAgencyId != agencyID }
        all.deferred.removeAll { $0.assignedAgencyId != agencyID }
        return all
    }

    public func placeAccounts(_ request: AccountsV1.PlaceAccountsRequest) async throws(RPCError) -> AccountsV1.PlaceAccountsResponse {
        throw RPCError(code: .unimplemented, message: "this accounts directory does not place accounts")
    }

    public func recallAccounts(_ request: AccountsV1.RecallAccountsRequest) async throws(RPCError) -> AccountsV1.RecallAccountsResponse {
        throw RPCError(code: .unimplemented, message: "this accounts directory does not recall accounts")
    }
}

/// `AccountsDirectory` over gRPC: calls the accounts service as role `service`
/// (`PeerClient`: a token minted from the shared signing key, errors mapped for the caller).
public final class GRPCAccountsDirectory: AccountsDirectory {
    private let peer: PeerClient

    public init(targets: [GRPCClient.Target], signingKey: SigningKeyStore, subject: String, timeout: Duration = .seconds(5),
                tls: ClientTLS? = nil) {
        self.peer = PeerClient(peer: "accounts", targets: targets, signingKey: signingKey, subject: subject, timeout: timeout,
                               tls: tls)
    }

    public func close() async { await peer.close() }

    private func call<Request, Response>(_ method: MethodDescriptor<Request, Response>, _ request: Request) async throws(RPCError) -> Response {
        try await peer.call(method, request)
    }

    public func account(_ accountID: String) async throws(RPCError) -> AccountFacts {
        let account = try await call(AccountsV1.AccountsService.getAccount,
                                     AccountsV1.GetAccountRequest(accountId: accountID, view: .basic))
        let debtor = try await self.debtor(account.debtorId)
        return AccountFacts(accountID: account.id, debtorID: account.debtorId, stage: account.stage, onHold: account.onHold,
                            regionCode: account.regionCode, timeZoneID: account.debtorTimeZone, address: debtor.address,
                            assignedAgencyID: account.assignedAgencyId,
                            wrongAddress: debtor.addressUnverified ? debtor.wrongAddressFinding ?? AccountsV1.WrongAddressFinding() : nil)
    }

    public func debtor(_ debtorID: String) async throws(RPCError) -> AccountsV1.Debtor {
        try await call(AccountsV1.AccountsService.getDebtor, AccountsV1.GetDebtorRequest(debtorId: debtorID))
    }

    public func accounts(ofDebtor debtorID: String) async throws(RPCError) -> [AccountsV1.Account] {
        var result: [AccountsV1.Account] = []
        var token = ""
        repeat {
            let page = try await call(AccountsV1.AccountsService.listAccounts,
                                      AccountsV1.ListAccountsRequest(pageSize: 500, pageToken: token, debtorId: debtorID))
            result += page.accounts
            token = page.nextPageToken
        } while !token.isEmpty && result.count < 10_000
        return result
    }

    public func candidates(region: String, limit: Int) async throws(RPCError) -> VisitCandidates {
        try await candidates(region: region, agencyID: "", limit: limit)
    }

    public func placeAccounts(_ request: AccountsV1.PlaceAccountsRequest) async throws(RPCError) -> AccountsV1.PlaceAccountsResponse {
        try await call(AccountsV1.AccountsService.placeAccounts, request)
    }

    public func recallAccounts(_ request: AccountsV1.RecallAccountsRequest) async throws(RPCError) -> AccountsV1.RecallAccountsResponse {
        try await call(AccountsV1.AccountsService.recallAccounts, request)
    }

    public func candidates(region: String, agencyID: String, limit: Int) async throws(RPCError) -> VisitCandidates {
        var result = VisitCandidates()
        var token = ""
        repeat {
            let size = Int32(min(500, limit - result.candidates.count))
            let page = try await call(AccountsV1.AccountsService.listVisitCandidates, AccountsV1.ListVisitCandidatesRequest(
                regionCode: region, pageSize: size, pageToken: token, includeDeferred: token.isEmpty, agencyId: agencyID))
            result.candidates += page.candidates
            result.deferred += page.deferred
            token = page.nextPageToken
        } while !token.isEmpty && result.candidates.count < limit
        result.candidates = Array(result.candidates.prefix(limit))
        return result
    }
}
