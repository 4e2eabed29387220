import Compliance
import Foundation
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

/// Payments, holds and the timeline: mutations of an existing account, each idempotent by
/// `request_id`, checked against `expected_version` (AIP-154), recorded on the timeline.
extension AccountsService {
    /// Loads the account a mutation changes: NOT_FOUND, or ABORTED on a stale expected version.
    static func accountForUpdate(_ db: SQLSession, store: AccountsStore, id: String, expectedVersion: Int64) throws -> AccountsV1.Account {
        guard let account = try store.account(db, id: id) else { throw RPCError.notFound("account \(id) not found") }
        if expectedVersion != 0, expectedVersion != account.version {
            throw RPCError(code: .aborted, message: "stale version: expected \(expectedVersion), current \(account.version)")
        }
        return account
    }

    static func event(_ type: AccountsV1.TimelineEventType, reason: String, actor: TypeV1.Actor, requestID: String,
                      details: AccountsV1.TimelineEvent.Details? = nil) -> AccountsV1.TimelineEvent {
        var event = AccountsV1.TimelineEvent()
        event.eventType = type
        event.reason = reason
        event.actor = actor
        event.requestId = requestID
        event.details = details
        return event
    }

    static func stageChange(_ account: inout AccountsV1.Account, to decision: StageDecision, daysPastDue: Int, nowMs: Int64,
                            actor: TypeV1.Actor, requestID: String) -> AccountsV1.TimelineEvent {
        let change = AccountsV1.StageChange(fromStage: account.stage, toStage: decision.stage, daysPastDue: Int32(clamping: daysPastDue))
        account.stage = decision.stage
        account.stageReason = decision.reason
        account.stageEnteredMs = nowMs
        return event(.stageChanged, reason: decision.reason, actor: actor, requestID: requestID, details: .stageChange(change))
    }

    /// The request fields every mutation of an existing account carries, checked first.
    static func validateMutation(requestID: String, accountID: String, expectedVersion: Int64) throws(DomainError) {
        try Validate.requestID(requestID)
        try Validate.resourceID(accountID, field: "account_id", prefix: "acc")
        if expectedVersion < 0 { throw DomainError.invalidArgument("expected_version", "must not be negative") }
    }

    /// What a mutation sees besides the account: the transaction, the store, the debtor-local
    /// date and the instant, who is calling, for which request.
    struct MutationScope {
        let db: SQLSession
        let store: AccountsStore
        let configuration: Configuration
        let today: CivilDate
        let nowMs: Int64
        let actor: TypeV1.Actor
        let requestID: String

        func event(_ type: AccountsV1.TimelineEventType, reason: String,
                   details: AccountsV1.TimelineEvent.Details? = nil) -> AccountsV1.TimelineEvent {
            AccountsService.event(type, reason: reason, actor: actor, requestID: requestID, details: details)
        }
    }

    /// What a mutation did: the timeline events to record, or nothing (the account is returned
    /// as it stands and nothing is written).
    enum MutationOutcome {
        case changed([AccountsV1.TimelineEvent])
        case unchanged
    }

    /// The one path of every mutation of an existing account: idempotent by request id (a
    /// retry returns the first response), in one transaction; the account loaded for update
    /// (NOT_FOUND, ABORTED on a stale expected version) and brought up to today; `change`
    /// applies the request; then the version and update time move, risk is recomputed (a tier
    /// change is recorded), and the account and its events are written. A thrown error
    /// rolls everything back.
    func mutateAccount<Request: ProtoMessage>(
        _ request: Request, requestID: String, accountID: String, expectedVersion: Int64, context: ServerContext,
        _ change: @escaping @Sendable (_ account: inout AccountsV1.Account, _ scope: MutationScope) throws -> MutationOutcome
    ) async throws -> AccountsV1.Account {
        let caller = try context.requireCaller()
        let now = clock.nowMs()
        let key = try Idempotency.Key(method: context.path, requestID: requestID, request: request, caller: context.callerKey)
        let store = self.store
        let configuration = self.configuration
        return try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            var account = try Self.accountForUpdate(db, store: store, id: accountID, expectedVersion: expectedVersion)
            let today = CivilDate.today(in: TimeZone(identifier: account.debtorTimeZone) ?? .gmt, nowMs: now)
            Self.refresh(&account, asOf: today, nowMs: now, configuration: configuration,
                         contacts: try store.contactStats(db, accountID: account.id))
            let scope = MutationScope(db: db, store: store, configuration: configuration, today: today, nowMs: now,
                                      actor: caller.actor, requestID: requestID)
            guard case .changed(var events) = try change(&account, scope) else { return account }
            account.version += 1
            account.updatedMs = now
            let contacts = try store.contactStats(db, accountID: account.id)
            if let tierChange = Self.refresh(&account, asOf: today, nowMs: now, configuration: configuration,
                                             contacts: contacts, actor: caller.actor, requestID: requestID) {
                events.append(tierChange)
            }
            try store.update(db, account: account, contacts: contacts, nowMs: now)
            try store.append(db, events: events, accountID: account.id, nowMs: now)
            return account
        }
    }

    // MARK: Payments

    func recordPayment(_ request: AccountsV1.RecordPaymentRequest, _ context: ServerContext) async throws -> AccountsV1.Account {
        try Self.validateMutation(requestID: request.requestId, accountID: request.accountId, expectedVersion: request.expectedVersion)
        let amount = try Validate.money(request.amount, field: "amount", currency: nil, allowZero: false)
        try Validate.instantMs(request.receivedMs, field: "received_ms", required: true)
        guard request.receivedMs <= clock.nowMs() + 5 * 60_000 else {
            throw RPCError.invalidArgument("received_ms", "must not be in the future")
        }
        try Validate.externalID(request.externalId, field: "external_id")
        try Validate.text(request.note, field: "note", min: 0, max: 500)
        return try await mutateAccount(request, requestID: request.requestId, accountID: request.accountId,
                                       expectedVersion: request.expectedVersion, context: context) { account, scope in
            .changed(try Self.applyPayment(request, amount: amount, to: &account, scope: scope))
        }
    }

    /// RecordPayment's change of the account (also ImportPayments'): the payment allocated,
    /// promises and the active plan brought up to date, a stage cured; returns the events.
    /// `request` passed validation; `amount` is its amount in minor units.
    static func applyPayment(_ request: AccountsV1.RecordPaymentRequest, amount: Int64, to account: inout AccountsV1.Account,
                             scope: MutationScope) throws -> [AccountsV1.TimelineEvent] {
        let currency = account.principal?.currencyCode ?? ""
        guard request.amount?.currencyCode == currency else {
            throw RPCError.invalidArgument("amount.currency_code", "must be \(currency), the account's currency")
        }
        let paidDate = CivilDate.today(in: TimeZone(identifier: account.debtorTimeZone) ?? .gmt, nowMs: request.receivedMs)
        if let opened = account.openedDate.flatMap(CivilDate.init), paidDate < opened {
            throw RPCError.invalidArgument("received_ms", "must not be before the account's opened_date \(opened)")
        }
        guard !account.payments.contains(where: { $0.externalId == request.externalId }) else {
            throw RPCError(code: .alreadyExists,
                           message: "a payment with external_id '\(request.externalId)' is already recorded on \(account.id)")
        }
        let (schedule, allocations) = try PaymentAllocation.apply(amount, currency: currency, paidDate: paidDate, to: account.instalments)
        account.instalments = schedule
        let payment = AccountsV1.Payment(
            id: IDGenerator.make(prefix: "pay", nowMs: scope.nowMs), requestId: request.requestId,
            amount: TypeV1.Money(amountMinor: amount, currencyCode: currency), receivedMs: request.receivedMs,
            externalId: request.externalId, allocations: allocations, note: request.note, recordedMs: scope.nowMs)
        account.payments.append(payment)
        var events = [scope.event(.paymentRecorded, reason: "payment \(payment.id) of \(amount) \(currency)", details: .payment(payment))]
        // Promises and the active plan are brought up to date at once (steps 1 and 2 of
        // the stage engine): a promise the payment completes is KEPT now, not at the next
        // EvaluateStages run.
        var evaluation = StageEvaluation(account: account)
        let zone = TimeZone(identifier: account.debtorTimeZone) ?? .gmt
        StageEngine.resolvePromises(&evaluation, asOf: scope.today, zone: zone, nowMs: scope.nowMs, actor: StageEngine.actor)
        _ = StageEngine.progressPlans(&evaluation, asOf: scope.today, zone: zone, nowMs: scope.nowMs, actor: StageEngine.actor)
        account = evaluation.account
        events += evaluation.events.map { event in
            var event = event
            event.requestId = scope.requestID
            return event
        }
        let policy = scope.configuration.delinquency
        let delinquency = Delinquency.compute(instalments: account.instalments, asOf: scope.today, policy: policy)
        if let decision = StageCure.afterPayment(stage: account.stage, delinquency: delinquency, policy: policy) {
            events.append(Self.stageChange(&account, to: decision, daysPastDue: delinquency.daysPastDue, nowMs: scope.nowMs,
                                           actor: scope.actor, requestID: scope.requestID))
        }
        return events
    }

    // MARK: Holds

    func placeHold(_ request: AccountsV1.PlaceHoldRequest, _ context: ServerContext) async throws -> AccountsV1.Account {
        try Self.validateMutation(requestID: request.requestId, accountID: request.accountId, expectedVersion: request.expectedVersion)
        switch request.reason {
        case .unspecified, .unrecognized: throw RPCError.invalidArgument("reason", "required")
        case .complaint: try Validate.resourceID(request.complaintId, field: "complaint_id", prefix: "cmp")
        case .dispute, .hardship, .legalInstruction:
            guard request.complaintId.isEmpty else {
                throw RPCError.invalidArgument("complaint_id", "must be empty unless reason is HOLD_REASON_COMPLAINT")
            }
        }
        try Validate.text(request.note, field: "note", min: 0, max: 500)
        return try await mutateAccount(request, requestID: request.requestId, accountID: request.accountId,
                                       expectedVersion: request.expectedVersion, context: context) { account, scope in
            guard account.stage != .settled, account.stage != .writtenOff else {
                throw RPCError.refused(rule: RuleID.accountStage, "account \(account.id) is \(account.stage.protoName ?? "closed")",
                                       subjectID: account.id)
            }
            // A second COMPLAINT hold for the same complaint changes nothing.
            if request.reason == .complaint,
               account.holds.contains(where: { $0.active && $0.reason == .complaint && $0.complaintId == request.complaintId }) {
                return .unchanged
            }
            let hold = AccountsV1.Hold(
                id: IDGenerator.make(prefix: "hld", nowMs: scope.nowMs), requestId: request.requestId, reason: request.reason,
                note: request.note, complaintId: request.complaintId, placedMs: scope.nowMs, placedBy: scope.actor, active: true)
            account.holds.append(hold)
            account.onHold = true
            return .changed([scope.event(.holdPlaced, reason: "hold \(hold.id) placed (\(hold.reason.protoName ?? ""))", details: .hold(hold))])
        }
    }

    func releaseHold(_ request: AccountsV1.ReleaseHoldRequest, _ context: ServerContext) async throws -> AccountsV1.Account {
        try Self.validateMutation(requestID: request.requestId, accountID: request.accountId, expectedVersion: request.expectedVersion)
        switch request.hold {
        case .holdId(let id): try Validate.resourceID(id, field: "hold_id", prefix: "hld")
        case .complaintId(let id): try Validate.resourceID(id, field: "complaint_id", prefix: "cmp")
        case nil: throw RPCError.invalidArgument("hold", "hold_id or complaint_id is required")
        }
        try Validate.text(request.note, field: "note", min: 0, max: 500)
        return try await mutateAccount(request, requestID: request.requestId, accountID: request.accountId,
                                       expectedVersion: request.expectedVersion, context: context) { account, scope in
            let index: Int?
            switch request.hold {
            case .holdId(let id): index = account.holds.firstIndex { $0.id == id }
            case .complaintId(let id):
                index = account.holds.firstIndex { $0.complaintId == id && $0.active } ?? account.holds.firstIndex { $0.complaintId == id }
            case nil: index = nil
            }
            guard let index else { throw RPCError.notFound("no such hold on account \(account.id)") }
            guard account.holds[index].active else {
                throw RPCError.refused(rule: RuleID.holdReleased, "hold \(account.holds[index].id) was already released",
                                       subjectID: account.holds[index].id)
            }
            account.holds[index].active = false
            account.holds[index].releasedMs = scope.nowMs
            account.holds[index].releasedBy = scope.actor
            account.holds[index].releaseNote = request.note
            account.onHold = account.holds.contains { $0.active }
            return .changed([scope.event(.holdReleased, reason: "hold \(account.holds[index].id) released",
                                         details: .hold(account.holds[index]))])
        }
    }

    // MARK: Timeline

    func getAccountTimeline(_ request: AccountsV1.GetAccountTimelineRequest, _ context: ServerContext) async throws -> AccountsV1.GetAccountTimelineResponse {
        try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc")
        let pageSize = try Validate.pageSize(request.pageSize, defaultSize: 100, max: 1000)
        let types = request.eventTypes.map(\.rawValue).sorted()
        let filter = types.map(String.init).joined(separator: ",")
        var after: Int64 = 0
        if !request.pageToken.isEmpty {
            guard let token = TimelinePageToken(request.pageToken), token.accountID == request.accountId, token.filter == filter else {
                throw RPCError.invalidArgument("page_token", "not a token of this account's timeline with these filters")
            }
            after = token.afterSequence
        }
        let scope = try context.requireScope()
        let store = self.store
        let id = request.accountId
        let startAfter = after
        let (account, events) = try await store.database.read { db in
            (try store.account(db, id: id), try store.timeline(db, accountID: id, after: startAfter, types: types, limit: pageSize + 1))
        }
        guard let account, scope.sees(agencyID: Self.shownAgency(account, nowMs: clock.nowMs())) else {
            throw RPCError.notFound("account \(id) not found")
        }
        var response = AccountsV1.GetAccountTimelineResponse(events: Array(events.prefix(pageSize)))
        if events.count > pageSize, let last = response.events.last {
            response.nextPageToken = TimelinePageToken(accountID: id, filter: filter, afterSequence: last.sequence).text
        }
        return response
    }
}
