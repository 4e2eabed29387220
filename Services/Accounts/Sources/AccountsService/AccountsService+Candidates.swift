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
        if !request.agencyId.isEmpty { try Validate.resourceID(request.agencyId, field: "agency_id", prefix: "agy") }
        let scope = try context.requireScope()
        // An agency manager's candidates are silently those placed with its agency.
        guard let narrowed = scope.narrow(agencyID: request.agencyId, collectorID: nil) else {
            return AccountsV1.ListVisitCandidatesResponse()
        }
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
        let filter = AccountsStore.CandidateFilter(region: request.regionCode, agencyID: narrowed.agencyID,
                                                   minimumExpectedRecovery: minimum, excluded: excluded.sorted())
        let start = offset
        let region = request.regionCode
        let read = { @Sendable (checkStale: Bool) async throws -> (page: [CandidateRank], debtors: [String: AccountsV1.Debtor])? in
            try await store.database.read { db in
                // Entries whose figures predate their debtors' today are recomputed first.
                if checkStale, try !store.staleRanks(db, region: region, nowMs: now, limit: 1).isEmpty { return nil }
                // One more than the page: whether a next page exists.
                let page = try store.rankedCandidates(db, filter, nowMs: now, offset: start, limit: pageSize + 1)
                return (page, try store.debtors(db, ids: Array(Set(page.prefix(pageSize).map(\.debtorID)))))
            }
        }
        var found = try await read(true)
        if found == nil {
            try await Self.refreshStaleRanks(store: store, region: region, nowMs: now)
            found = try await read(false)
        }
        guard let (page, debtors) = found else { throw RPCError.internal("internal error") }
        var response = AccountsV1.ListVisitCandidatesResponse()
        var zones: [String: TimeZone] = [:]
        for (index, rank) in page.prefix(pageSize).enumerated() {
            // A debtor without coordinates, or whose address a visit found wrong, cannot be
            // visited (rule `debtor-location`).
            guard let debtor = debtors[rank.debtorID], !debtor.addressUnverified, let address = debtor.address, address.location != nil
            else { continue }
            let zone = zones[rank.timeZone] ?? (TimeZone(identifier: rank.timeZone) ?? .gmt)
            zones[rank.timeZone] = zone
            let daysPastDue = rank.daysPastDue(today: CivilDate.today(in: zone, nowMs: now))
            let money = { (minor: Int64) in TypeV1.Money(amountMinor: minor, currencyCode: rank.currency) }
            response.candidates.append(AccountsV1.VisitCandidate(
                accountId: rank.accountID, debtorId: debtor.id, rank: Int32(offset + index + 1), debtorName: debtor.fullName,
                phoneMasked: PersonalDataMask.phone(debtor.phone), address: address, timeZone: debtor.timeZone,
                daysPastDue: Int32(clamping: daysPastDue), bucket: configuration.delinquency.bucket(daysPastDue: daysPastDue),
                overdueAmount: money(rank.overdueMinor), expectedRecovery: money(rank.expectedRecoveryMinor),
                riskScore: rank.riskScore, riskTier: rank.riskTier, paymentProbability30dBp: rank.paymentProbabilityBp,
                assignedAgencyId: rank.agencyID, lastVisitMs: rank.lastVisitMs, accountVersion: rank.version))
        }
        if request.includeDeferred && offset == 0 {
            let (deferredAccounts, unverified) = try await store.database.read { db in
                let accounts = try store.deferredCandidates(db, filter, nowMs: now)
                let ids = Array(Set(accounts.map { $0.0.debtorId }))
                var wrong: Set<String> = []
                for start in stride(from: 0, to: ids.count, by: 500) {
                    let debtors = try store.debtors(db, ids: Array(ids[start..<min(start + 500, ids.count)]))
                    wrong.formUnion(debtors.values.filter(\.addressUnverified).map(\.id))
                }
                return (accounts, wrong)
            }
            // Not deferred but no candidate at all until the address is corrected.
            for (account, contacts) in deferredAccounts where !unverified.contains(account.debtorId) {
                let zone = TimeZone(identifier: account.debtorTimeZone) ?? .gmt
                let today = CivilDate.today(in: zone, nowMs: now)
                guard let deferral = VisitDeferral.of(account, today: today, zone: zone, nowMs: now, lastVisitMs: contacts.lastVisitMs,
                                                      pack: configuration.rulePack) else { continue }
                response.deferred.append(AccountsV1.DeferredVisitCandidate(
                    accountId: account.id, assignedAgencyId: account.assignedAgencyId, reasons: deferral.reasons,
                    candidateFromDate: deferral.candidateFrom?.proto))
            }
        }
        if page.count > pageSize {
            response.nextPageToken = ListPageToken(afterRow: Int64(offset + pageSize), filter: ListPageToken.digest(filterKey)).text
        }
        return response
    }

    /// Entries refreshed per write transaction when a read finds stale ones.
    static let rankRefreshBatch = 500

    /// Recomputes the region's ranking entries whose figures predate their debtors' today
    /// (the stage engine has not run yet today), in short write transactions.
    static func refreshStaleRanks(store: AccountsStore, region: String, nowMs: Int64) async throws {
        while true {
            let refreshed = try await store.database.write { db in
                let stale = try store.staleRanks(db, region: region, nowMs: nowMs, limit: rankRefreshBatch)
                try store.refreshRanks(db, accountIDs: stale, nowMs: nowMs)
                return stale.count
            }
            if refreshed < rankRefreshBatch { return }
        }
    }

    /// Ranks the FIELD accounts of a database written before the ranking existed (migration
    /// `accounts-v7-ranking` leaves a row in `ranking_backfill`), in write transactions of
    /// 5,000 rows scanned, then removes the row. Runs at the service's start; replicas
    /// starting together may both run it (each entry is an upsert). Returns how many
    /// accounts it ranked, nil when there was nothing to do.
    public func backfillRanking() async throws -> Int? {
        let store = self.store
        guard try await store.database.read({ db in try db.fetchValue(Int.self, sql: "SELECT COUNT(*) FROM ranking_backfill") ?? 0 }) > 0
        else { return nil }
        let now = clock.nowMs()
        let last = try await store.database.read { db in try db.fetchValue(Int64.self, sql: "SELECT MAX(rowid) FROM accounts") ?? 0 }
        var ranked = 0
        var after: Int64 = 0
        while after < last {
            let from = after
            ranked += try await store.database.write { db in
                let rows = try db.fetchAll(
                    sql: """
                        SELECT body, remote_attempts, connected_attempts, last_visit_ms FROM accounts
                        WHERE rowid > ? AND rowid <= ? AND stage = ?
                        """,
                    arguments: [from, from + 5_000, AccountsV1.Stage.field.rawValue])
                for row in rows {
                    let body: Data = row["body"]
                    try store.keepRank(db, account: try AccountsV1.Account(decoding: [UInt8](body)),
                                       contacts: AccountsStore.contactStats(row), nowMs: now)
                }
                return rows.count
            }
            after += 5_000
        }
        try await store.database.write { db in try db.execute(sql: "DELETE FROM ranking_backfill") }
        return ranked
    }
}
