import Foundation
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

extension AccountsService {
    /// ListAccounts: filters combine with AND, oldest created first, BASIC view by default;
    /// agency managers see only accounts assigned to their agency. Days past due and buckets
    /// are as of today (debtor-local), so the bucket filter is applied after recomputing.
    func listAccounts(_ request: AccountsV1.ListAccountsRequest, _ context: ServerContext) async throws -> AccountsV1.ListAccountsResponse {
        let pageSize = try Validate.pageSize(request.pageSize)
        var query = AccountsStore.AccountQuery()
        if !request.debtorId.isEmpty { try Validate.resourceID(request.debtorId, field: "debtor_id", prefix: "dbt") }
        if !request.lenderId.isEmpty { try Validate.externalID(request.lenderId, field: "lender_id") }
        if !request.externalId.isEmpty { try Validate.externalID(request.externalId, field: "external_id") }
        if !request.regionCode.isEmpty { try Validate.regionCode(request.regionCode, field: "region_code") }
        if !request.assignedAgencyId.isEmpty { try Validate.resourceID(request.assignedAgencyId, field: "assigned_agency_id", prefix: "agy") }
        for (index, stage) in request.stages.enumerated() where stage == .unspecified || stage.protoName == nil {
            throw RPCError.invalidArgument("stages[\(index)]", "unknown stage \(stage.rawValue)")
        }
        for (index, bucket) in request.buckets.enumerated() where bucket == .unspecified || bucket.protoName == nil {
            throw RPCError.invalidArgument("buckets[\(index)]", "unknown bucket \(bucket.rawValue)")
        }
        if request.holdFilter.protoName == nil { throw RPCError.invalidArgument("hold_filter", "unknown value \(request.holdFilter.rawValue)") }
        // Results are silently restricted to what the caller may see.
        guard let narrowed = try context.requireScope().narrow(agencyID: request.assignedAgencyId, collectorID: nil) else {
            return AccountsV1.ListAccountsResponse()
        }
        query.debtorID = request.debtorId
        query.lenderID = request.lenderId
        query.externalID = request.externalId
        query.assignedAgencyID = narrowed.agencyID
        query.regionCode = request.regionCode
        query.stages = Array(Set(request.stages.map(\.rawValue))).sorted()
        let buckets = Set(request.buckets)
        // The token is only valid with the filters it was issued for.
        let filterKey = [query.debtorID, query.lenderID, query.externalID, query.assignedAgencyID,
                         query.stages.map(String.init).joined(separator: ","),
                         buckets.map(\.rawValue).sorted().map(String.init).joined(separator: ","),
                         request.regionCode, String(request.holdFilter.rawValue)].joined(separator: "\u{1F}")
        var after: Int64?
        if !request.pageToken.isEmpty {
            guard let token = ListPageToken(request.pageToken), token.filter == ListPageToken.digest(filterKey) else {
                throw RPCError.invalidArgument("page_token", "not a token of a list with these filters")
            }
            after = token.afterRow
        }
        let store = self.store
        let configuration = self.configuration
        let now = clock.nowMs()
        let batch = max(pageSize * 2, 64)
        let sqlQuery = query
        var page: [AccountsV1.Account] = []
        var lastRow: Int64 = 0
        var more = false
        scan: while true {
            let start = after
            let rows = try await store.database.read { db in try store.accounts(db, matching: sqlQuery, after: start, limit: batch) }
            for (row, stored, contacts) in rows {
                var account = stored
                after = row
                let today = CivilDate.today(in: TimeZone(identifier: account.debtorTimeZone) ?? .gmt, nowMs: now)
                Self.refresh(&account, asOf: today, nowMs: now, configuration: configuration, contacts: contacts)
                Self.showPlacement(&account, today: today)
                guard buckets.isEmpty || buckets.contains(account.bucket),
                      sqlQuery.assignedAgencyID.isEmpty || account.assignedAgencyId == sqlQuery.assignedAgencyID,
                      request.holdFilter != .onHold || account.onHold,
                      request.holdFilter != .notOnHold || !account.onHold
                else { continue }
                if page.count == pageSize {
                    more = true
                    break scan
                }
                if request.view != .full { account.basicView() }
                page.append(account)
                lastRow = row
            }
            if rows.count < batch { break }
        }
        var response = AccountsV1.ListAccountsResponse(accounts: page)
        if more {
            response.nextPageToken = ListPageToken(afterRow: lastRow, filter: ListPageToken.digest(filterKey)).text
        }
        return response
    }
}
