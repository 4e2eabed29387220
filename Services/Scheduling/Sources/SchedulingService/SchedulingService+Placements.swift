import Foundation
import Models
import Outbox
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

/// Placements seen from scheduling (docs/DOMAIN.md "Placements"): PlaceRegion places a region's
/// unplaced FIELD accounts with the region's agencies by rule, and a suspended or exited
/// agency's accounts are recalled. Accounts owns placements (it keeps the one-active rule and
/// counts what each agency holds in the transaction that places); scheduling owns the
/// agencies (status, regions, `placement_capacity`) and asks visits for their scorecards, so
/// the rule runs here and hands accounts the agencies in rank order with their capacities.
extension SchedulingService {
    /// Outbox topic of the recalls of a suspended or exited agency's accounts; each message's
    /// payload is an encoded accounts.proto `RecallAccountsRequest` whose request_id is the
    /// message id (the same on every delivery, so accounts acts once).
    public static let recallTopic = "placement-recall"
    /// Days of scorecard PlaceRegion ranks agencies by (up to yesterday).
    static let scorecardDays = 90

    // MARK: PlaceRegion

    func placeRegion(_ request: SchedulingV1.PlaceRegionRequest, _ context: ServerContext) async throws -> SchedulingV1.PlaceRegionResponse {
        try Validate.requestID(request.requestId)
        try Validate.regionCode(request.regionCode, field: "region_code")
        let now = clock.nowMs()
        let end = try Validate.date(request.endDate, field: "end_date")
        let latestToday = CivilDate.today(in: TimeZone(secondsFromGMT: 14 * 3600)!, nowMs: now)
        guard end > latestToday else { throw RPCError.invalidArgument("end_date", "must be after today (\(latestToday))") }
        guard end <= latestToday.adding(days: 366) else { throw RPCError.invalidArgument("end_date", "must be at most 366 days ahead") }
        try Validate.text(request.reason, field: "reason", min: 1, max: 200)
        guard let scorecards else {
            throw RPCError(code: .unavailable, message: "visits service: no scorecards to rank agencies by")
        }
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        if let remembered = try await store.database.read({ db in try Idempotency.lookup(db, key, as: SchedulingV1.PlaceRegionResponse.self) }) {
            return remembered
        }
        let region = request.regionCode
        let agencies = try await store.database.read { db in
            try store.agencies(db, filter: AgencyFilter(status: .active, regionCode: region), after: nil, limit: 1000)
        }.filter { $0.placementCapacity > 0 }
        let start = CivilDate.today(in: .gmt, nowMs: now).adding(days: -Self.scorecardDays).proto
        var cards: [(SchedulingV1.Agency, VisitsV1.AgencyScorecard)] = []
        for agency in agencies {
            cards.append((agency, try await scorecards.scorecard(agencyID: agency.id, startDate: start)))
        }
        let ranked = cards.sorted { Self.ranksBefore($0.1, $1.1, $0.0.id, $1.0.id) }
        var response = SchedulingV1.PlaceRegionResponse()
        for (index, (agency, card)) in ranked.enumerated() {
            response.agencies.append(SchedulingV1.RegionAgencyRank(
                agencyId: agency.id, rank: Int32(index + 1), placementCapacity: agency.placementCapacity,
                upheldComplaintsPer1000Visits: card.upheldComplaintsPer1000Visits, promisesKept: card.promisesKept,
                brokenPromiseRateBp: card.brokenPromiseRateBp))
        }
        if !ranked.isEmpty {
            let quotas = ranked.enumerated().map { index, entry in
                let card = entry.1
                return AccountsV1.AgencyQuota(
                    agencyId: entry.0.id, capacity: entry.0.placementCapacity,
                    reason: "rank \(index + 1) of \(ranked.count) by scorecard since \(CivilDate(start).map { "\($0)" } ?? "?"): "
                        + "\(card.upheldComplaintsPer1000Visits) upheld complaints per 1000 visits, \(card.promisesKept) promises kept, "
                        + "\(card.promisesBroken) broken")
            }
            // The same request id: a retry of this call places nothing twice. The request
            // accounts gets is kept before it is sent, and a retry sends that one again even if
            // the scorecards have moved meanwhile (a different request under the same id would
            // be refused by accounts as a reuse of the id).
            let computed = AccountsV1.PlaceAccountsRequest(
                requestId: request.requestId, endDate: request.endDate, reason: request.reason,
                region: AccountsV1.RegionPlacement(regionCode: region, agencies: quotas))
            let forwardKey = try Idempotency.Key(method: context.path + "#accounts", requestID: request.requestId, request: request,
                                                 caller: context.callerKey)
            let forwarded = try await store.database.write { db in
                if let kept = try Idempotency.lookup(db, forwardKey, as: AccountsV1.PlaceAccountsRequest.self) { return kept }
                try Idempotency.remember(db, forwardKey, response: computed, nowMs: now)
                return computed
            }
            let placed = try await accounts.placeAccounts(forwarded)
            response.placements = placed.placements.map {
                SchedulingV1.RegionPlacementItem(accountId: $0.accountId, agencyId: $0.agencyId, placementId: $0.id, reason: $0.reason)
            }
            response.accountsLeftUnplaced = placed.accountsLeftUnplaced
            for index in response.agencies.indices {
                let id = response.agencies[index].agencyId
                response.agencies[index].accountsPlaced = Int32(response.placements.count { $0.agencyId == id })
            }
        }
        let finished = response
        let result = try await store.database.write { db in
            if let remembered = try Idempotency.lookup(db, key, as: SchedulingV1.PlaceRegionResponse.self) { return remembered }
            try Idempotency.remember(db, key, response: finished, nowMs: now)
            try store.publishRegionPlaced(db, region: region, finished, nowMs: now)
            return finished
        }
        context.logger.notice("region placed by rule", metadata: [
            "region": "\(region)", "agencies": "\(result.agencies.count)", "placed": "\(result.placements.count)",
            "left-unplaced": "\(result.accountsLeftUnplaced)",
        ])
        return result
    }

    /// The placement rule's order: fewer upheld complaints per 1000 visits, then more
    /// promises kept, then a lower broken-promise rate, then the agency id.
    static func ranksBefore(_ a: VisitsV1.AgencyScorecard, _ b: VisitsV1.AgencyScorecard, _ idA: String, _ idB: String) -> Bool {
        (a.upheldComplaintsPer1000Visits, -Int(a.promisesKept), a.brokenPromiseRateBp, idA)
            < (b.upheldComplaintsPer1000Visits, -Int(b.promisesKept), b.brokenPromiseRateBp, idB)
    }

    // MARK: Recalls

    /// Queues, in the caller's transaction, the recall of every account placed with the agency
    /// (delivered by the dispatcher of ``recallTopic`` through ``PlacementRecallSink``).
    static func enqueueRecall(_ db: SQLSession, agencyID: String, reason: String, nowMs: Int64) throws {
        let id = IDGenerator.make(prefix: "rcl", nowMs: nowMs)
        let recall = AccountsV1.RecallAccountsRequest(requestId: id, agencyId: agencyID, reason: String(reason.prefix(500)))
        try Outbox.enqueue(db, OutboxMessage(id: id, topic: recallTopic, payload: try recall.encode(), createdMs: nowMs), nowMs: nowMs)
    }
}

/// Delivers the recalls of ``SchedulingService/recallTopic`` to accounts (RecallAccounts). OK
/// acknowledges; accounts' word about the request (NOT_FOUND, INVALID_ARGUMENT,
/// FAILED_PRECONDITION) is permanent; anything else (accounts unreachable, overloaded,
/// refusing scheduling's token) is retried with the outbox's backoff.
public struct PlacementRecallSink: OutboxSink {
    let accounts: any AccountsDirectory

    public init(accounts: any AccountsDirectory) {
        self.accounts = accounts
    }

    public func deliver(_ message: OutboxMessage) async throws(OutboxSinkError) {
        _ = try await deliverForResult(message)
    }

    public func deliverForResult(_ message: OutboxMessage) async throws(OutboxSinkError) -> String {
        let request: AccountsV1.RecallAccountsRequest
        do { request = try AccountsV1.RecallAccountsRequest(decoding: message.payload) } catch {
            throw .permanent("malformed recall: \(error)")
        }
        do {
            let response = try await accounts.recallAccounts(request)
            return "\(response.placements.count) accounts recalled"
        } catch {
            switch error.code {
            case .notFound, .invalidArgument, .failedPrecondition, .alreadyExists, .outOfRange:
                throw .permanent("accounts refused the recall: \(error.code) \(error.message)")
            default:
                throw .retryable("accounts: \(error.code) \(error.message)")
            }
        }
    }
}
