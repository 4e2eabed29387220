import Compliance
import Events
import Foundation
import Logging
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

/// `doorstep.accounts.v1.Accounts`: debtors with protected personal data, accounts with
/// their instalment schedules and delinquency. Every mutation is idempotent by
/// `request_id`; responses mask personal data unless a permitted caller asks (audited).
public struct AccountsService: Sendable {
    /// Service settings; every default is spelled out.
    public struct Configuration: Sendable {
        /// National-ID and phone validation rules (from the rule pack). Default: PRC rules.
        public var debtorRules: DebtorRules = .defaults
        /// DPD thresholds of stages and buckets. Default: docs/DOMAIN.md ("Domain rules").
        public var delinquency: DelinquencyPolicy = .defaults
        /// Coefficients of the risk scorecard. Default: `RiskScorecard.defaults`.
        public var risk: RiskScorecard = .defaults
        /// Promise, plan, legal and write-off limits. Default: `CollectionPolicy.defaults`.
        public var collection: CollectionPolicy = .defaults
        /// The rule pack remote contacts are checked against. Default cn-2026.
        public var rulePack: RulePack = RulePacks.cn2026
        /// Whether EvaluateStages reads every account not SETTLED or WRITTEN_OFF instead of only
        /// those whose next evaluation day has come (`EvaluationSchedule`). The two give the same
        /// result; the full pass is the reference the streamed one is tested against. Default false.
        public var evaluateEveryAccount = false
        /// How long one EvaluateStages write transaction may run before it commits and the next
        /// begins. Default: 8 ms on SQLite, whose one writer makes every payment wait for it;
        /// 100 ms on PostgreSQL, where the run locks only the accounts it evaluates and each
        /// commit costs a flush.
        public var evaluationTransactionBudget: Duration?
        /// How many decoded accounts GetAccount keeps, each validated against the stored bytes on
        /// every read (`StoredAccountCache`); 0 turns the memo off. Default 4096.
        public var readCacheEntries = 4096

        public init() {}
        public static let defaults = Configuration()
    }

    let store: AccountsStore
    let configuration: Configuration
    let clock: ServiceClock
    let readCache: StoredAccountCache
    /// GetAccount's reads, coalesced into one statement per batch on PostgreSQL.
    let accountReads: PointReadBatcher<StoredAccountRead>

    public init(database: SQLDatabase, cipher: DataCipher, configuration: Configuration = .defaults, clock: ServiceClock) {
        let store = AccountsStore(database: database, cipher: cipher, configuration: configuration)
        let readCache = StoredAccountCache(capacity: configuration.readCacheEntries)
        self.store = store
        self.configuration = configuration
        self.clock = clock
        self.readCache = readCache
        self.accountReads = PointReadBatcher("account", database: database) { db, ids in
            try store.accountsForRead(db, ids: ids, cache: readCache)
        }
    }

    public static let serviceName = "doorstep.accounts.v1.Accounts"
    public static var migrations: SQLDatabase.Migrations { AccountsStore.migrations }

    /// The service's methods with their roles (accounts.proto role table).
    public var definition: ServiceDefinition {
        var definition = ServiceDefinition()
        definition.unary(AccountsV1.AccountsService.createDebtor, roles: [.platform]) { request, context in
            try await createDebtor(request, context)
        }
        definition.unary(AccountsV1.AccountsService.getDebtor, roles: [.platform, .compliance, .agencyManager, .service]) { request, context in
            try await getDebtor(request, context)
        }
        definition.unary(AccountsV1.AccountsService.openAccount, roles: [.platform]) { request, context in
            try await openAccount(request, context)
        }
        definition.unaryEncoded(AccountsV1.AccountsService.getAccount, roles: [.platform, .compliance, .agencyManager, .service]) { request, context in
            try await getAccount(request, context)
        }
        definition.unary(AccountsV1.AccountsService.listAccounts, roles: [.platform, .compliance, .agencyManager, .service]) { request, context in
            try await listAccounts(request, context)
        }
        definition.unary(AccountsV1.AccountsService.recordPayment, roles: [.platform]) { request, context in
            try await recordPayment(request, context)
        }
        definition.unary(AccountsV1.AccountsService.placeHold, roles: [.platform, .compliance, .service]) { request, context in
            try await placeHold(request, context)
        }
        definition.unary(AccountsV1.AccountsService.releaseHold, roles: [.platform, .compliance, .service]) { request, context in
            try await releaseHold(request, context)
        }
        definition.unary(AccountsV1.AccountsService.recordContactAttempt, roles: [.platform, .service]) { request, context in
            try await recordContactAttempt(request, context)
        }
        definition.unary(AccountsV1.AccountsService.recordPromiseToPay, roles: [.platform, .service]) { request, context in
            try await recordPromiseToPay(request, context)
        }
        definition.unary(AccountsV1.AccountsService.proposeRepaymentPlan, roles: [.platform, .service]) { request, context in
            try await proposeRepaymentPlan(request, context)
        }
        definition.unary(AccountsV1.AccountsService.acceptRepaymentPlan, roles: [.platform, .service]) { request, context in
            try await acceptRepaymentPlan(request, context)
        }
        definition.unary(AccountsV1.AccountsService.evaluateStages, roles: [.platform, .service]) { request, context in
            try await evaluateStages(request, context)
        }
        definition.unary(AccountsV1.AccountsService.referToLegal, roles: [.platform]) { request, context in
            try await referToLegal(request, context)
        }
        definition.unary(AccountsV1.AccountsService.writeOff, roles: [.platform]) { request, context in
            try await writeOff(request, context)
        }
        definition.unary(AccountsV1.AccountsService.listVisitCandidates,
                         roles: [.platform, .compliance, .agencyManager, .service]) { request, context in
            try await listVisitCandidates(request, context)
        }
        definition.unary(AccountsV1.AccountsService.getAccountTimeline,
                         roles: [.platform, .compliance, .agencyManager, .service]) { request, context in
            try await getAccountTimeline(request, context)
        }
        definition.unary(AccountsV1.AccountsService.updateDebtor, roles: [.platform]) { request, context in
            try await updateDebtor(request, context)
        }
        definition.unary(AccountsV1.AccountsService.listDebtorChanges, roles: [.platform, .compliance]) { request, context in
            try await listDebtorChanges(request, context)
        }
        definition.unary(AccountsV1.AccountsService.placeAccounts, roles: [.platform, .service]) { request, context in
            try await placeAccounts(request, context)
        }
        definition.unary(AccountsV1.AccountsService.listPersonalDataAccess, roles: [.compliance]) { request, context in
            try await listPersonalDataAccess(request, context)
        }
        definition.serverStreaming(AccountsV1.AccountsService.exportDebtorRecord, roles: [.compliance]) { request, context, responses in
            try await exportDebtorRecord(request, context, responses)
        }
        definition.unary(AccountsV1.AccountsService.listRetentionRecords, roles: [.compliance]) { request, context in
            try await listRetentionRecords(request, context)
        }
        definition.serverStreaming(AccountsV1.AccountsService.watchEvents, roles: [.platform, .compliance, .service]) { request, context, responses in
            try await store.events.watch(request, context: context, database: store.database, responses: responses)
        }
        definition.unary(AccountsV1.AccountsService.recallAccounts, roles: [.platform, .compliance, .service]) { request, context in
            try await recallAccounts(request, context)
        }
        definition.bidirectionalStreaming(AccountsV1.AccountsService.importAccounts, roles: [.platform]) { requests, context, responses in
            try await importAccounts(requests, context, responses)
        }
        definition.bidirectionalStreaming(AccountsV1.AccountsService.importPayments, roles: [.platform]) { requests, context, responses in
            try await importPayments(requests, context, responses)
        }
        return definition
    }

    // MARK: Debtors

    func createDebtor(_ request: AccountsV1.CreateDebtorRequest, _ context: ServerContext) async throws -> AccountsV1.Debtor {
        try Validate.requestID(request.requestId)
        let validated = try DebtorValidation.validate(request.debtor, rules: configuration.debtorRules)
        let now = clock.nowMs()
        let key = try Idempotency.Key(
            method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        return try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            guard try !store.debtorExists(db, externalID: validated.externalId) else {
                throw RPCError(code: .alreadyExists, message: "a debtor with external_id '\(validated.externalId)' already exists")
            }
            let debtor = Self.newDebtor(validated, nowMs: now)
            try store.insert(db, debtor: debtor)
            return PersonalDataMask.masked(debtor)
        }
    }

    /// A validated debtor as created: new ids (its own, its emergency contacts'), version 1.
    static func newDebtor(_ validated: AccountsV1.Debtor, nowMs: Int64) -> AccountsV1.Debtor {
        var debtor = validated
        debtor.id = IDGenerator.make(prefix: "dbt", nowMs: nowMs)
        for index in debtor.emergencyContacts.indices {
            debtor.emergencyContacts[index].id = IDGenerator.make(prefix: "emc", nowMs: nowMs)
        }
        debtor.version = 1
        debtor.createdMs = nowMs
        debtor.updatedMs = nowMs
        return debtor
    }

    func getDebtor(_ request: AccountsV1.GetDebtorRequest, _ context: ServerContext) async throws -> AccountsV1.Debtor {
        try Validate.resourceID(request.debtorId, field: "debtor_id", prefix: "dbt")
        let caller = try context.requireCaller()
        let scope = try CallerScope(caller)
        if request.revealPersonalData {
            guard caller.role == .platform || caller.role == .compliance else {
                throw RPCError.permissionDenied("role \(caller.role.rawValue) may not see personal data unmasked")
            }
            _ = try Validate.text(request.accessReason, field: "access_reason", min: 1, max: 500)
        }
        let reason = request.accessReason
        let store = self.store
        let now = clock.nowMs()
        let id = request.debtorId
        let reveal = request.revealPersonalData
        let actor = caller.actor
        let read: @Sendable (SQLSession) throws -> AccountsV1.Debtor = { db in
            guard let debtor = try store.debtor(db, id: id),
                  try Self.mayRead(debtorID: id, scope: scope, today: CivilDate.today(in: TimeZone(identifier: debtor.timeZone) ?? .gmt, nowMs: now),
                                   store: store, db)
            else {
                throw RPCError.notFound("debtor \(id) not found")
            }
            guard reveal else { return PersonalDataMask.masked(debtor) }
            try store.auditPersonalDataRead(
                db, debtorID: id, actor: actor, fields: ["national_id", "phone", "emergency_contacts.phone"], reason: reason, atMs: now)
            var full = debtor
            full.personalDataMasked = false
            return full
        }
        // An unmasked read writes its audit line in the same transaction: no read without a record.
        let debtor = reveal ? try await store.database.write(read) : try await store.database.readPoint(read)
        if reveal {
            context.logger.notice("personal data read unmasked", metadata: ["debtor-id": "\(id)", "reason": "\(reason)"])
        }
        return debtor
    }

    /// Whether `scope` sees the debtor: an agency manager only debtors of accounts assigned to
    /// its agency — not by a placement that ended before `today` (the debtor's) and that the
    /// nightly run has not expired yet, as GetAccount shows it (``showPlacement(_:today:)``).
    static func mayRead(debtorID: String, scope: CallerScope, today: CivilDate, store: AccountsStore, _ db: SQLSession) throws -> Bool {
        guard let narrowed = scope.narrow(agencyID: "", collectorID: nil) else { return false }
        if narrowed.agencyID.isEmpty { return true }
        return try db.fetchValue(Bool.self, sql: """
            SELECT EXISTS (SELECT 1 FROM accounts a WHERE a.debtor_id = ? AND a.assigned_agency_id = ?
                AND NOT EXISTS (SELECT 1 FROM placements p WHERE p.account_id = a.id AND p.state = 1 AND p.agency_id = a.assigned_agency_id
                                AND p.end_day < ?))
            """, arguments: [debtorID, narrowed.agencyID, today.dayNumber]) ?? false
    }

    // MARK: Accounts

    func openAccount(_ request: AccountsV1.OpenAccountRequest, _ context: ServerContext) async throws -> AccountsV1.Account {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.debtorId, field: "debtor_id", prefix: "dbt")
        let store = self.store
        let now = clock.nowMs()
        let debtorID = request.debtorId
        guard let debtor = try await store.database.read({ db in try store.debtor(db, id: debtorID) }) else {
            throw RPCError.notFound("debtor \(debtorID) not found")
        }
        let zone = TimeZone(identifier: debtor.timeZone) ?? .gmt
        let today = CivilDate.today(in: zone, nowMs: now)
        let opening = try AccountOpening.validate(request, asOf: today)
        let key = try Idempotency.Key(
            method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let configuration = self.configuration
        let actor = try context.requireCaller().actor
        return try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            // Read again in the transaction: the region and zone copied are the current ones.
            guard let debtor = try store.debtor(db, id: debtorID) else {
                throw RPCError.notFound("debtor \(debtorID) not found")
            }
            guard debtor.erased == nil else {
                throw RPCError.refused(rule: RuleID.recordRetention, "debtor \(debtorID) was anonymised past its retention", subjectID: debtorID)
            }
            guard try !store.accountExists(db, lenderID: opening.lenderID, externalID: opening.externalID) else {
                throw RPCError(code: .alreadyExists,
                               message: "lender \(opening.lenderID) already has an account with external_id '\(opening.externalID)'")
            }
            let (account, events) = Self.opened(opening, debtor: debtor, today: today, nowMs: now, configuration: configuration,
                                                actor: actor, openedReason: "opened by \(actor.subject)", requestID: request.requestId)
            try store.insert(db, account: account, nowMs: now)
            try store.append(db, events: events, accountID: account.id, nowMs: now)
            return account
        }
    }

    func getAccount(_ request: AccountsV1.GetAccountRequest, _ context: ServerContext) async throws -> EncodedResponse<AccountsV1.Account> {
        try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc")
        let scope = try context.requireScope()
        let id = request.accountId
        let cache = self.readCache
        // One statement: the account and its contact counters come from the same row (with
        // the other reads of its batch on PostgreSQL).
        let stored = try await accountReads.read(id)
        let now = clock.nowMs()
        // A placement past its end date no longer shows its agency (nor lets it read the account).
        guard let stored, case let today = CivilDate.today(in: stored.entry.zone, nowMs: now),
              scope.sees(agencyID: Self.shownAgency(stored.entry.account, today: today))
        else {
            throw RPCError.notFound("account \(id) not found")
        }
        // Days past due move with the clock: recomputed as of today, debtor-local — once a day
        // per stored body and set of contact counters, and kept encoded (StoredAccountCache).
        if let refreshed = stored.entry.refreshed, refreshed.dayNumber == today.dayNumber, refreshed.contacts == stored.contacts {
            return request.view == .basic ? refreshed.basic : refreshed.full
        }
        var account = stored.entry.account
        Self.refresh(&account, asOf: today, nowMs: now, configuration: configuration, contacts: stored.contacts)
        Self.showPlacement(&account, today: today)
        var basic = account
        basic.basicView()
        let refreshed = StoredAccountCache.Refreshed(dayNumber: today.dayNumber, contacts: stored.contacts,
                                                     full: try EncodedResponse(account), basic: try EncodedResponse(basic))
        cache.remember(refreshed, id: id, body: stored.entry.body)
        return request.view == .basic ? refreshed.basic : refreshed.full
    }

    static func apply(_ delinquency: Delinquency, to account: inout AccountsV1.Account, asOf: CivilDate) {
        let currency = account.principal?.currencyCode ?? ""
        account.outstandingAmount = TypeV1.Money(amountMinor: delinquency.outstandingMinor, currencyCode: currency)
        account.overdueAmount = TypeV1.Money(amountMinor: delinquency.overdueMinor, currencyCode: currency)
        account.daysPastDue = Int32(clamping: delinquency.daysPastDue)
        account.bucket = delinquency.bucket
        account.oldestUnpaidDueDate = delinquency.oldestUnpaidDueDate?.proto
        account.asOfDate = asOf.proto
    }

    /// Recomputes delinquency and risk as of `asOf`; returns a RISK_TIER_CHANGED event when
    /// the tier moved (reads recompute too, but record nothing).
    @discardableResult
    static func refresh(_ account: inout AccountsV1.Account, asOf: CivilDate, nowMs: Int64, configuration: Configuration,
                        contacts: ContactStats, actor: TypeV1.Actor? = nil, requestID: String = "") -> AccountsV1.TimelineEvent? {
        let delinquency = Delinquency.compute(instalments: account.instalments, asOf: asOf, policy: configuration.delinquency)
        apply(delinquency, to: &account, asOf: asOf)
        let previous = account.risk?.tier
        let risk = configuration.risk.assess(
            RiskScorecard.inputs(of: account, delinquency: delinquency, today: asOf, remoteAttempts: contacts.remote,
                                 connectedAttempts: contacts.connected),
            assessedMs: nowMs)
        account.risk = risk
        guard let actor, let previous, previous != risk.tier else { return nil }
        return event(.riskTierChanged, reason: "risk tier \(previous.protoName ?? "?") → \(risk.tier.protoName ?? "?") (score \(risk.score))",
                     actor: actor, requestID: requestID, details: .risk(risk))
    }
}

extension AccountsV1.Account {
    /// ACCOUNT_VIEW_BASIC: the lists are returned empty, summaries kept.
    mutating func basicView() {
        instalments = []
        payments = []
        promises = []
        repaymentPlans = []
        holds = []
    }
}
