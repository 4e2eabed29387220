import Foundation
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

/// EvaluateStages: the daily run of the stage engine, one batch per call.
///
/// A run reads only the accounts whose next evaluation day has come (column
/// `next_evaluation_day`, `EvaluationSchedule`), in (day, row) order, and works through
/// them in short write transactions — each commits once it has run for
/// `evaluationTransactionBudget` (8 ms on SQLite) — so a payment never waits behind a whole
/// batch. A
/// request id acts once: its response is remembered after the batch; a retry after a crash
/// mid-batch re-runs it, and the accounts already done are no longer due.
extension AccountsService {
    static let defaultEvaluationBatch = 10_000
    static let maxEvaluationBatch = 100_000
    /// Accounts read per write transaction at most.
    static let evaluationChunk = 512

    func evaluateStages(_ request: AccountsV1.EvaluateStagesRequest, _ context: ServerContext) async throws -> AccountsV1.EvaluateStagesResponse {
        try Validate.requestID(request.requestId)
        let now = clock.nowMs()
        // No zone is ahead of UTC+14: a date after today there is after today everywhere.
        let latestToday = CivilDate.today(in: TimeZone(secondsFromGMT: 14 * 3600)!, nowMs: now)
        var asOf: CivilDate?
        if let date = request.asOfDate, date != TypeV1.Date() {
            let requested = try Validate.date(date, field: "as_of_date")
            guard requested <= latestToday else {
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
        var cursor = (day: Int.min, row: Int64(0))
        let dateKey = "stages-" + (asOf.map { String($0.dayNumber) } ?? "today")
        if !request.pageToken.isEmpty {
            guard request.accountIds.isEmpty else { throw RPCError.invalidArgument("page_token", "must be empty when account_ids are given") }
            guard let token = EvaluationPageToken(request.pageToken), token.dateKey == dateKey else {
                throw RPCError.invalidArgument("page_token", "issued for another as_of_date")
            }
            cursor = (token.afterDay, token.afterRow)
        }
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        if let remembered = try await store.database.read({ db in try Idempotency.lookup(db, key, as: AccountsV1.EvaluateStagesResponse.self) }) {
            return remembered
        }
        let ids = request.accountIds
        let pass = try await evaluationPass(ids: ids, asOf: asOf, cursor: cursor, batch: batch, nowMs: now, dayStartMs: 0)
        let (tally, exhausted) = (pass.tally, pass.exhausted)
        cursor = pass.cursor
        let configuration = self.configuration
        let requestedDay = asOf
        var response = tally.response(asOf: requestedDay)
        if ids.isEmpty, !exhausted {
            response.nextPageToken = EvaluationPageToken(afterDay: configuration.evaluateEveryAccount ? 0 : cursor.day,
                                                         afterRow: cursor.row, dateKey: dateKey).text
        }
        let finished = response
        return try await store.database.write { db in
            if let remembered = try Idempotency.lookup(db, key, as: AccountsV1.EvaluateStagesResponse.self) { return remembered }
            try Idempotency.remember(db, key, response: finished, nowMs: now)
            return finished
        }
    }

    /// One run of the stage engine over at most `batch` accounts: the named ones, or (none
    /// named) those due after `cursor` in (day, row) order, in write transactions of at most
    /// `evaluationTransactionBudget`. `dayStartMs` is the debtor-local time a day begins at
    /// for the run (0: midnight; the nightly job's `--nightly-evaluation-time`).
    func evaluationPass(ids: [String], asOf: CivilDate?, cursor start: (day: Int, row: Int64), batch: Int, nowMs now: Int64,
                        dayStartMs: Int64) async throws -> (tally: EvaluationTally, cursor: (day: Int, row: Int64), exhausted: Bool) {
        let store = self.store
        let configuration = self.configuration
        let requestedDay = asOf
        // The last day any account can be due for: the requested date, or today in the zone
        // furthest ahead (each account is then held to its own zone's today).
        let latestToday = CivilDate.today(in: TimeZone(secondsFromGMT: 14 * 3600)!, nowMs: now - dayStartMs)
        let bound = (asOf ?? latestToday).dayNumber
        let streamed = ids.isEmpty && !configuration.evaluateEveryAccount
        var cursor = start
        let budget = configuration.evaluationTransactionBudget
            ?? (store.database.dialect == .postgres ? .milliseconds(100) : .milliseconds(8))
        var tally = EvaluationTally()
        var remaining = batch
        var exhausted = false
        while remaining > 0 {
            let selection: AccountsStore.EvaluationSelection = if !ids.isEmpty {
                .ids(ids)
            } else if configuration.evaluateEveryAccount {
                .every(afterRow: cursor.row)
            } else {
                .due(throughDay: bound, afterDay: cursor.day, afterRow: cursor.row)
            }
            let limit = min(Self.evaluationChunk, remaining)
            // Row locks, not serializable: the run locks the accounts it reads, and a payment
            // (which makes its account due) need not lose a race to the run's range read.
            let step = try await store.database.write(isolation: .rowLocks) { db in
                var step = EvaluationTally()
                let rows = try store.accountsForEvaluation(db, selection, limit: limit)
                let started = ContinuousClock.now
                for row in rows {
                    try Self.evaluate(row, db: db, store: store, requestedDay: requestedDay, whenDue: streamed, nowMs: now,
                                      dayStartMs: dayStartMs, configuration: configuration, into: &step)
                    step.read += 1
                    step.last = (row.nextDay, row.row)
                    // Named accounts (at most 1000) go in one transaction.
                    if ids.isEmpty, ContinuousClock.now - started > budget { break }
                }
                step.exhausted = rows.count < limit && step.read == rows.count
                return step
            }
            tally.add(step)
            remaining -= step.read
            if let last = step.last { cursor = last }
            if !ids.isEmpty || step.exhausted {
                exhausted = true
                break
            }
        }
        return (tally, cursor, exhausted)
    }

    /// Evaluates one account in the caller's write transaction: as of the requested date or
    /// its debtor's today; skipped when already evaluated for a later date, or (`whenDue`, the
    /// streamed run) not yet due in its own zone. Writes the account and its events when anything changed, its
    /// evaluated and next evaluation days always.
    static func evaluate(_ row: AccountsStore.EvaluationRow, db: SQLSession, store: AccountsStore, requestedDay: CivilDate?,
                         whenDue: Bool, nowMs: Int64, dayStartMs: Int64 = 0, configuration: Configuration,
                         into tally: inout EvaluationTally) throws {
        let account = row.account
        let day = requestedDay ?? CivilDate.today(in: TimeZone(identifier: account.debtorTimeZone) ?? .gmt, nowMs: nowMs - dayStartMs)
        guard row.evaluatedDay <= day.dayNumber, !whenDue || row.nextDay <= day.dayNumber else {
            tally.skipped += 1
            return
        }
        var evaluation = StageEngine.evaluate(
            account, asOf: day, nowMs: nowMs, delinquency: configuration.delinquency, policy: configuration.collection,
            unsuccessfulRemoteContacts: Int(account.contactSummary?.unsuccessfulRemoteContacts ?? 0))
        if let expiry = try expirePlacement(&evaluation.account, day: day, nowMs: nowMs, db: db) { evaluation.events.append(expiry) }
        if let tierChange = refresh(&evaluation.account, asOf: day, nowMs: nowMs, configuration: configuration,
                                    contacts: row.contacts, actor: StageEngine.actor) {
            evaluation.events.append(tierChange)
        }
        let nextDay = EvaluationSchedule.nextDay(after: day, account: evaluation.account, contacts: row.contacts,
                                                 delinquency: configuration.delinquency, risk: configuration.risk)
        if !evaluation.events.isEmpty || evaluation.account.promises != account.promises
            || evaluation.account.repaymentPlans != account.repaymentPlans {
            evaluation.account.version += 1
            evaluation.account.updatedMs = nowMs
            try store.update(db, account: evaluation.account, contacts: row.contacts, nowMs: nowMs,
                             evaluated: (day.dayNumber, nextDay))
            try store.append(db, events: evaluation.events, accountID: account.id, nowMs: nowMs)
        } else {
            try store.setEvaluated(db, accountID: account.id, day: day.dayNumber, nextDay: nextDay)
            // Unchanged, but its ranking figures move with the days.
            if account.stage == .field { try store.keepRank(db, account: account, contacts: row.contacts, nowMs: nowMs) }
        }
        tally.evaluated += 1
        for change in evaluation.stageChanges { tally.transitions[StagePair(from: change.fromStage, to: change.toStage), default: 0] += 1 }
        tally.promisesKept += evaluation.promisesKept
        tally.promisesBroken += evaluation.promisesBroken
        tally.plansBroken += evaluation.plansBroken
        tally.plansCompleted += evaluation.plansCompleted
    }

    struct StagePair: Hashable {
        let from: AccountsV1.Stage
        let to: AccountsV1.Stage
    }

    /// What a run (or one of its transactions) did.
    struct EvaluationTally {
        var read = 0
        var evaluated = 0
        var skipped = 0
        var transitions: [StagePair: Int] = [:]
        var promisesKept = 0
        var promisesBroken = 0
        var plansBroken = 0
        var plansCompleted = 0
        var last: (day: Int, row: Int64)?
        var exhausted = false

        mutating func add(_ other: EvaluationTally) {
            read += other.read
            evaluated += other.evaluated
            skipped += other.skipped
            transitions.merge(other.transitions, uniquingKeysWith: +)
            promisesKept += other.promisesKept
            promisesBroken += other.promisesBroken
            plansBroken += other.plansBroken
            plansCompleted += other.plansCompleted
        }

        func response(asOf: CivilDate?) -> AccountsV1.EvaluateStagesResponse {
            var response = AccountsV1.EvaluateStagesResponse(asOfDate: asOf?.proto)
            response.accountsEvaluated = Int32(clamping: evaluated)
            response.accountsSkipped = Int32(clamping: skipped)
            response.promisesKept = Int32(clamping: promisesKept)
            response.promisesBroken = Int32(clamping: promisesBroken)
            response.plansBroken = Int32(clamping: plansBroken)
            response.plansCompleted = Int32(clamping: plansCompleted)
            response.transitions = transitions.sorted { ($0.key.from.rawValue, $0.key.to.rawValue) < ($1.key.from.rawValue, $1.key.to.rawValue) }
                .map { AccountsV1.StageTransitionCount(fromStage: $0.key.from, toStage: $0.key.to, accounts: Int32($0.value)) }
            return response
        }
    }
}
