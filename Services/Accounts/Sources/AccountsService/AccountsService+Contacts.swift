import Compliance
import Foundation
import GRDB
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

/// Contact attempts (checked against the rule pack), promises to pay and repayment plans.
extension AccountsService {
    /// Which outcomes a channel may report (accounts.proto ContactOutcome).
    static func outcome(_ outcome: AccountsV1.ContactOutcome, fits channel: TypeV1.ContactChannel) -> Bool {
        switch channel {
        case .sms: return outcome == .smsDelivered || outcome == .smsUndelivered
        case .phone: return ContactPolicy.isRemoteOutcome(outcome) && outcome != .smsDelivered && outcome != .smsUndelivered
        case .visit: return [.visitMetDebtor, .visitNotHome, .visitWrongAddress, .visitThirdPartyOnly].contains(outcome)
        default: return false
        }
    }

    func recordContactAttempt(_ request: AccountsV1.RecordContactAttemptRequest, _ context: ServerContext) async throws -> AccountsV1.Account {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc")
        if request.expectedVersion < 0 { throw RPCError.invalidArgument("expected_version", "must not be negative") }
        switch request.channel {
        case .sms, .phone, .visit: break
        default: throw RPCError.invalidArgument("channel", "required (SMS, PHONE or VISIT)")
        }
        guard Self.outcome(request.outcome, fits: request.channel) else {
            throw RPCError.invalidArgument("outcome", "\(request.outcome.protoName ?? "\(request.outcome.rawValue)") is not an outcome of \(request.channel.protoName ?? "this channel")")
        }
        try Validate.instantMs(request.attemptedMs, field: "attempted_ms", required: true)
        let now = clock.nowMs()
        guard request.attemptedMs <= now + 5 * 60_000 else { throw RPCError.invalidArgument("attempted_ms", "must not be in the future") }
        guard request.attemptedMs >= now - 7 * 86_400_000 else { throw RPCError.invalidArgument("attempted_ms", "must not be more than 7 days ago") }
        if !request.emergencyContactId.isEmpty { try Validate.resourceID(request.emergencyContactId, field: "emergency_contact_id", prefix: "emc") }
        if !request.agencyId.isEmpty { try Validate.resourceID(request.agencyId, field: "agency_id", prefix: "agy") }
        if request.channel == .visit {
            try Validate.resourceID(request.visitId, field: "visit_id", prefix: "vis")
        } else if !request.visitId.isEmpty {
            throw RPCError.invalidArgument("visit_id", "must be empty unless channel is VISIT")
        }
        if request.channel == .phone {
            guard (0...86_400).contains(request.durationSeconds) else { throw RPCError.invalidArgument("duration_seconds", "must be 0-86400") }
        } else if request.durationSeconds != 0 {
            throw RPCError.invalidArgument("duration_seconds", "must be 0 unless channel is PHONE")
        }
        try Validate.text(request.note, field: "note", min: 0, max: 500)
        let caller = try context.requireCaller()
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        let configuration = self.configuration
        let pack = configuration.rulePack
        return try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            var account = try Self.accountForUpdate(db, store: store, id: request.accountId, expectedVersion: request.expectedVersion)
            guard let debtor = try store.debtor(db, id: account.debtorId) else { throw RPCError.internal("internal error") }
            var number = debtor.phone
            if !request.emergencyContactId.isEmpty {
                guard let contact = debtor.emergencyContacts.first(where: { $0.id == request.emergencyContactId }) else {
                    throw RPCError.notFound("emergency contact \(request.emergencyContactId) not found for debtor \(debtor.id)")
                }
                number = contact.phone
            }
            let zone = TimeZone(identifier: debtor.timeZone) ?? .gmt
            let history = try store.contactHistory(db, debtorID: debtor.id)
            let digest = { (value: String) in store.cipher.digest(value, purpose: "contact-number") }
            let debtorDigest = digest(debtor.phone)
            let past = history.map { PastContact($0.attempt, number: $0.numberDigest) }
            if ContactPolicy.isRemote(request.channel) {
                var violations: [TypeV1.Violation] = []
                if account.stage == .settled || account.stage == .writtenOff {
                    violations.append(.init(ruleId: "account-stage", detail: "account \(account.id) is \(account.stage.protoName ?? "closed")", subjectId: account.id))
                }
                if let hold = account.holds.first(where: \.active) {
                    violations.append(.init(ruleId: "account-hold", detail: "hold \(hold.id) blocks all contact", subjectId: hold.id))
                }
                violations += ContactPolicy.violations(
                    of: ProposedContact(request, number: digest(number)), history: past, pack: pack, debtorTimeZone: zone,
                    debtorNumber: debtorDigest)
                guard violations.isEmpty else {
                    throw RPCError.refused(violations, rulePackID: pack.id, rulePackVersion: pack.version)
                }
            }
            let attempt = AccountsV1.ContactAttempt(
                id: IDGenerator.make(prefix: "cta", nowMs: now), requestId: request.requestId, accountId: account.id,
                channel: request.channel, outcome: request.outcome, attemptedMs: request.attemptedMs,
                emergencyContactId: request.emergencyContactId, agencyId: request.agencyId, visitId: request.visitId,
                durationSeconds: request.durationSeconds, note: request.note, debtorAgreedTime: request.debtorAgreedTime,
                recordedMs: now, recordedBy: caller.actor)
            let remote = ContactPolicy.isRemote(request.channel)
            try store.insert(db, attempt: attempt, debtorID: debtor.id, remote: remote,
                             connected: ContactPolicy.isConnected(request.outcome), numberDigest: digest(number))
            var summary = account.contactSummary ?? AccountsV1.ContactSummary()
            ContactPolicy.summary(history: past + [PastContact(attempt, number: digest(number))], asOfMs: now, zone: zone,
                                  pack: pack, debtorNumber: debtorDigest).apply(to: &summary)
            // Toward the FIELD threshold: unsuccessful remote contacts while in REMOTE (or FIELD).
            if remote, ContactPolicy.isUnsuccessful(request.outcome), account.stage == .remote || account.stage == .field {
                summary.unsuccessfulRemoteContacts += 1
            }
            summary.lastAttempt = attempt
            account.contactSummary = summary
            var events = [Self.event(.contactAttemptRecorded, reason: "\(request.channel.protoName ?? "") \(request.outcome.protoName ?? "")",
                                     actor: caller.actor, requestID: request.requestId, details: .contactAttempt(attempt))]
            account.version += 1
            account.updatedMs = now
            let today = CivilDate.today(in: zone, nowMs: now)
            if let tierChange = Self.refresh(&account, asOf: today, nowMs: now, configuration: configuration,
                                             contacts: try store.contactStats(db, accountID: account.id),
                                             actor: caller.actor, requestID: request.requestId) {
                events.append(tierChange)
            }
            try store.update(db, account: account)
            try store.append(db, events: events, accountID: account.id, nowMs: now)
            return account
        }
    }

    // MARK: Promises and plans

    func recordPromiseToPay(_ request: AccountsV1.RecordPromiseToPayRequest, _ context: ServerContext) async throws -> AccountsV1.Account {
        try PromiseRules.validate(request)
        try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc")
        let caller = try context.requireCaller()
        let now = clock.nowMs()
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        let configuration = self.configuration
        return try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            var account = try Self.accountForUpdate(db, store: store, id: request.accountId, expectedVersion: request.expectedVersion)
            let today = CivilDate.today(in: TimeZone(identifier: account.debtorTimeZone) ?? .gmt, nowMs: now)
            let contacts = try store.contactStats(db, accountID: account.id)
            Self.refresh(&account, asOf: today, nowMs: now, configuration: configuration, contacts: contacts)
            let promise = try PromiseRules.make(request, account: account, today: today, nowMs: now,
                                                id: IDGenerator.make(prefix: "ptp", nowMs: now), policy: configuration.collection)
            account.promises.append(promise)
            account.version += 1
            account.updatedMs = now
            try store.update(db, account: account)
            try store.append(db, events: [Self.event(.promiseRecorded, reason: "promise \(promise.id)", actor: caller.actor,
                                                     requestID: request.requestId, details: .promise(promise))],
                             accountID: account.id, nowMs: now)
            return account
        }
    }

    func proposeRepaymentPlan(_ request: AccountsV1.ProposeRepaymentPlanRequest, _ context: ServerContext) async throws -> AccountsV1.Account {
        try PlanRules.validate(request)
        try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc")
        let caller = try context.requireCaller()
        let now = clock.nowMs()
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        let configuration = self.configuration
        return try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            var account = try Self.accountForUpdate(db, store: store, id: request.accountId, expectedVersion: request.expectedVersion)
            let today = CivilDate.today(in: TimeZone(identifier: account.debtorTimeZone) ?? .gmt, nowMs: now)
            Self.refresh(&account, asOf: today, nowMs: now, configuration: configuration,
                         contacts: try store.contactStats(db, accountID: account.id))
            let plan = try PlanRules.propose(request, account: account, today: today, nowMs: now,
                                             id: IDGenerator.make(prefix: "rpl", nowMs: now), policy: configuration.collection)
            let change = PlanRules.recordProposal(plan, in: account, nowMs: now, actor: caller.actor, requestID: request.requestId)
            account = change.account
            account.version += 1
            account.updatedMs = now
            try store.update(db, account: account)
            try store.append(db, events: change.events, accountID: account.id, nowMs: now)
            return account
        }
    }

    func acceptRepaymentPlan(_ request: AccountsV1.AcceptRepaymentPlanRequest, _ context: ServerContext) async throws -> AccountsV1.Account {
        try PlanRules.validate(request)
        try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc")
        let caller = try context.requireCaller()
        let now = clock.nowMs()
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        let configuration = self.configuration
        return try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            var account = try Self.accountForUpdate(db, store: store, id: request.accountId, expectedVersion: request.expectedVersion)
            let today = CivilDate.today(in: TimeZone(identifier: account.debtorTimeZone) ?? .gmt, nowMs: now)
            let contacts = try store.contactStats(db, accountID: account.id)
            Self.refresh(&account, asOf: today, nowMs: now, configuration: configuration, contacts: contacts)
            let change = try PlanRules.accept(request.planId, account: account, nowMs: now, actor: caller.actor, requestID: request.requestId)
            account = change.account
            account.version += 1
            account.updatedMs = now
            Self.refresh(&account, asOf: today, nowMs: now, configuration: configuration, contacts: contacts)
            try store.update(db, account: account)
            try store.append(db, events: change.events, accountID: account.id, nowMs: now)
            return account
        }
    }
}
