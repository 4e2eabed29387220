import Foundation
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

/// ListVisitCandidates: the accounts a crew may visit in a region, best first.
extension AccountsService {
    func listVisitCandidates(_ request: AccountsV1.ListVisitCandidatesRequest, _ context: ServerContext) async throws -> AccountsV1.ListVisitCandidatesResponse {
        guard !request.regionCode.isEmpty else { throw RPCError.invalidArgument("region_code", "required") }
        try Validate.regionCode(request.regionCode, field: "region_code")
        let pageSize = try Validate.pageSize(request.pageSize)
        var minimum: Int64 = 0
        if let floor = request.minExpectedRecovery {
            minimum = try Validate.money(floor, field: "min_expected_recovery", currency: nil, allowZero: true)
        }
        guard request.excludeAccountIds.count <= 1000 else {
            throw RPCError.invalidArgument("exclude_account_ids", "at most 1000 ids")
        }
        for (index, id) in request.excludeAccountIds.enumerated() {
            try Validate.resourceID(id, field: "exclude_account_ids[\(index)]", prefix: "acc")
        }
        let scope = try context.requireScope()
        guard let narrowed = scope.narrow(agencyID: "", collectorID: nil) else { return AccountsV1.ListVisitCandidatesResponse() }
        let excluded = Set(request.excludeAccountIds)
        let filterKey = [request.regionCode, String(minimum), request.minExpectedRecovery?.currencyCode ?? "",
                         excluded.sorted().joined(separator: ","), narrowed.agencyID]
            .joined(separator: "\u{1F}")
        var offset = 0
        if !request.pageToken.isEmpty {
            guard let token = ListPageToken(request.pageToken), token.filter == ListPageToken.digest(filterKey) else {
                throw RPCError.invalidArgument("page_token", "not a token of a candidate list with these filters")
            }
            offset = Int(token.afterRow)
        }
        let store = self.store
        let configuration = self.configuration
        let now = clock.nowMs()
        let region = request.regionCode
        let fieldAccounts = try await store.database.read { db in
            try store.accounts(db, stage: .field, region: region).map { ($0, try store.contactStats(db, accountID: $0.id)) }
        }
        var ranked: [(account: AccountsV1.Account, lastVisitMs: Int64)] = []
        var deferred: [AccountsV1.DeferredVisitCandidate] = []
        for (stored, contacts) in fieldAccounts {
            var account = stored
            guard !account.onHold, !excluded.contains(account.id), scope.sees(agencyID: account.assignedAgencyId) else { continue }
            let zone = TimeZone(identifier: account.debtorTimeZone) ?? .gmt
            let today = CivilDate.today(in: zone, nowMs: now)
            if let deferral = VisitDeferral.of(account, today: today, zone: zone, nowMs: now, lastVisitMs: contacts.lastVisitMs,
                                               pack: configuration.rulePack) {
                deferred.append(AccountsV1.DeferredVisitCandidate(
                    accountId: account.id, assignedAgencyId: account.assignedAgencyId, reasons: deferral.reasons,
                    candidateFromDate: deferral.candidateFrom?.proto))
                continue
            }
            Self.refresh(&account, asOf: today, nowMs: now, configuration: configuration, contacts: contacts)
            guard (account.risk?.expectedRecovery?.amountMinor ?? 0) >= minimum else { continue }
            ranked.append((account, contacts.lastVisitMs))
        }
        // Expected recovery (highest first), then days past due (highest first), then id.
        ranked.sort {
            let (x, y) = ($0.account, $1.account)
            let (a, b) = (x.risk?.expectedRecovery?.amountMinor ?? 0, y.risk?.expectedRecovery?.amountMinor ?? 0)
            if a != b { return a > b }
            if x.daysPastDue != y.daysPastDue { return x.daysPastDue > y.daysPastDue }
            return x.id < y.id
        }
        let page = ranked.dropFirst(offset).prefix(pageSize)
        let debtorIDs = Array(Set(page.map(\.account.debtorId)))
        let debtors = try await store.database.read { db in
            try debtorIDs.reduce(into: [String: AccountsV1.Debtor]()) { $0[$1] = try store.debtor(db, id: $1) }
        }
        var response = AccountsV1.ListVisitCandidatesResponse()
        for (index, (account, lastVisitMs)) in zip(page.indices, page) {
            // A debtor without coordinates cannot be visited (rule `debtor-location`).
            guard let debtor = debtors[account.debtorId], let address = debtor.address, address.location != nil else { continue }
            response.candidates.append(AccountsV1.VisitCandidate(
                accountId: account.id, debtorId: debtor.id, rank: Int32(index + 1), debtorName: debtor.fullName,
                phoneMasked: PersonalDataMask.phone(debtor.phone), address: address, timeZone: debtor.timeZone,
                daysPastDue: account.daysPastDue, bucket: account.bucket, overdueAmount: account.overdueAmount,
                expectedRecovery: account.risk?.expectedRecovery, riskScore: account.risk?.score ?? 0,
                riskTier: account.risk?.tier ?? .unspecified, paymentProbability30dBp: account.risk?.paymentProbability30dBp ?? 0,
                assignedAgencyId: account.assignedAgencyId, lastVisitMs: lastVisitMs, accountVersion: account.version))
        }
        if request.includeDeferred && offset == 0 {
            response.deferred = deferred.sorted { $0.accountId < $1.accountId }
        }
        if offset + pageSize < ranked.count {
            response.nextPageToken = ListPageToken(afterRow: Int64(offset + pageSize), filter: ListPageToken.digest(filterKey)).text
        }
        return response
    }
}
