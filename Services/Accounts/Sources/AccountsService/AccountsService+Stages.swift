import Foundation
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

/// EvaluateStages: the daily run of the stage engine, one batch per call.
extension AccountsService {
    static let defaultEvaluationBatch = 10_000
    static let maxEvaluationBatch = 100_000

    func evaluateStages(_ request: AccountsV1.EvaluateStagesRequest, _ context: ServerContext) async throws -> AccountsV1.EvaluateStagesResponse {
        try Validate.requestID(request.requestId)
        let now = clock.nowMs()
        var asOf: CivilDate?
        if let date = request.asOfDate, date != TypeV1.Date() {
            let requested = try Validate.date(date, field: "as_of_date")
            // No zone is ahead of UTC+14: a date after today there is after today everywhere.
            guard requested <= CivilDate.today(in: TimeZone(secondsFromGMT: 14 * 3600)!, nowMs: now) else {
                throw RPCError.invalidArgument("as_of_date", "after the service clock's date")
            }
            asOf = requested
        }
        guard request.pageSize >= 0 else { throw RPCError.invalidArgument("page_size", "must not be negative") }
        let batch = request.pageSize == 0 ? Self.defaultEvaluationBatch : min(Int(request.pageSize), Self.maxEvaluationBatch)
        guard request.accountIds.count <= 1000 else { throw RPCError.invalidArgument("account_ids", "at most 1000 ids") }
        for (index, id) in request.accountIds.enumerated() {
            try Validate.resourceID(id, field: "account_ids[\(index)]", prefix: "acc")
        }
        var after: Int64 = 0
        let dateKey = asOf.map { String($0.dayNumber) } ?? "today"
        if !request.pageToken.isEmpty {
            guard request.accountIds.isEmpty else { throw RPCError.invalidArgument("page_token", "must be empty when account_ids are given") }
            guard let token = ListPageToken(request.pageToken), token.filter == "stages-" + dateKey else {
                throw RPCError.invalidArgument("page_token", "issued for another as_of_date")
            }
            after = token.afterRow
        }
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        let configuration = self.configuration
        let ids = request.accountIds
        let (start, requestedDay) = (after, asOf)
        return try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            let rows = try store.accountsForEvaluation(db, ids: ids, after: start, limit: batch)
            var response = AccountsV1.EvaluateStagesResponse(asOfDate: requestedDay?.proto)
            var transitions: [Pair: Int] = [:]
            for (_, evaluatedDay, account) in rows {
                let day = requestedDay ?? CivilDate.today(in: TimeZone(identifier: account.debtorTimeZone) ?? .gmt, nowMs: now)
                guard evaluatedDay <= day.dayNumber else {
                    response.accountsSkipped += 1
                    continue
                }
                var evaluation = StageEngine.evaluate(
                    account, asOf: day, nowMs: now, delinquency: configuration.delinquency, policy: configuration.collection,
                    unsuccessfulRemoteContacts: Int(account.contactSummary?.unsuccessfulRemoteContacts ?? 0))
                if let tierChange = Self.refresh(&evaluation.account, asOf: day, nowMs: now, configuration: configuration,
                                                 contacts: try store.contactStats(db, accountID: account.id),
                                                 actor: StageEngine.actor) {
                    evaluation.events.append(tierChange)
                }
                if !evaluation.events.isEmpty || evaluation.account.promises != account.promises
                    || evaluation.account.repaymentPlans != account.repaymentPlans {
                    evaluation.account.version += 1
                    evaluation.account.updatedMs = now
                    try store.update(db, account: evaluation.account)
                    try store.append(db, events: evaluation.events, accountID: account.id, nowMs: now)
                }
                if evaluatedDay != day.dayNumber { try store.setEvaluatedDay(db, accountID: account.id, day: day.dayNumber) }
                response.accountsEvaluated += 1
                for change in evaluation.stageChanges { transitions[Pair(from: change.fromStage, to: change.toStage), default: 0] += 1 }
                response.promisesKept += Int32(evaluation.promisesKept)
                response.promisesBroken += Int32(evaluation.promisesBroken)
                response.plansBroken += Int32(evaluation.plansBroken)
                response.plansCompleted += Int32(evaluation.plansCompleted)
            }
            response.transitions = transitions.sorted { ($0.key.from.rawValue, $0.key.to.rawValue) < ($1.key.from.rawValue, $1.key.to.rawValue) }
                .map { AccountsV1.StageTransitionCount(fromStage: $0.key.from, toStage: $0.key.to, accounts: Int32($0.value)) }
            if ids.isEmpty, rows.count == batch, let last = rows.last {
                response.nextPageToken = ListPageToken(afterRow: last.row, filter: "stages-" + dateKey).text
            }
            return response
        }
    }

    private struct Pair: Hashable {
        let from: AccountsV1.Stage
        let to: AccountsV1.Stage
    }
}
