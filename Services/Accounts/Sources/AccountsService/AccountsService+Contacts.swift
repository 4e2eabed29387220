import Compliance
import Foundation
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
        try Self.validateMutation(requestID: request.requestId, accountID: request.accountId, expectedVersion: request.expectedVersion)
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
        return try await mutateAccount(request, requestID: request.requestId, accountID: request.accountId,
                                       expectedVersion: request.expectedVersion, context: context) { account, scope in
            let (db, store, pack) = (scope.db, scope.store, scope.configuration.rulePack)
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
            let (debtorDigest, numberDigest) = (digest(debtor.phone), digest(number))
            let past = history.map { PastContact($0.attempt, number: $0.numberDigest) }
            if ContactPolicy.isRemote(request.channel) {
                var violations: [TypeV1.Violation] = []
                if account.stage == .settled || account.stage == .writtenOff {
                    violations.append(RuleID.accountStage.violation(quoting: nil, subject: account.id, "account \(account.id) is \(account.stage.protoName ?? "closed")"))
                }
                if let hold = account.holds.first(where: \.active) {
                    violations.append(RuleID.accountHold.violation(quoting: nil, subject: hold.id, "hold \(hold.id) blocks all contact"))
                }
                violations += ContactPolicy.violations(
                    of: ProposedContact(request, number: numberDigest), history: past, pack: pack, debtorTimeZone: zone,
                    debtorNumber: debtorDigest)
                guard violations.isEmpty else {
                    throw RPCError.refused(violations, rulePackID: pack.id, rulePackVersion: pack.version)
                }
            }
            let now = scope.nowMs
            let attempt = AccountsV1.ContactAttempt(
                id: IDGenerator.make(prefix: "cta", nowMs: now), requestId: request.requestId, accountId: account.id,
                channel: request.channel, outcome: request.outcome, attemptedMs: request.attemptedMs,
                emergencyContactId: request.emergencyContactId, agencyId: request.agencyId, visitId: request.visitId,
                durationSeconds: request.durationSeconds, note: request.note, debtorAgreedTime: request.debtorAgreedTime,
                recordedMs: now, recordedBy: scope.actor)
            let remote = ContactPolicy.isRemote(request.channel)
            try store.insert(db, attempt: attempt, debtorID: debtor.id, remote: remote,
                             connected: ContactPolicy.isConnected(request.outcome), numberDigest: numberDigest)
            if request.outcome == .visitWrongAddress {
                try Self.recordWrongAddress(db, debtor: debtor, attempt: attempt, store: store, nowMs: now, actor: scope.actor,
                                            requestID: scope.requestID)
            }
            var summary = account.contactSummary ?? AccountsV1.ContactSummary()
            ContactPolicy.summary(history: past + [PastContact(attempt, number: numberDigest)], asOfMs: now, zone: zone,
                                  pack: pack, debtorNumber: debtorDigest).apply(to: &summary)
            // Toward the FIELD threshold: unsuccessful remote contacts while in REMOTE (or FIELD).
            if remote, ContactPolicy.isUnsuccessful(request.outcome), account.stage == .remote || account.stage == .field {
                summary.unsuccessfulRemoteContacts += 1
            }
            summary.lastAttempt = attempt
            account.contactSummary = summary
            return .changed([scope.event(.contactAttemptRecorded,
                                         reason: "\(request.channel.protoName ?? "") \(request.outcome.protoName ?? "")",
                                         details: .contactAttempt(attempt))])
        }
    }

    // MARK: Promises and plans

    func recordPromiseToPay(_ request: AccountsV1.RecordPromiseToPayRequest, _ context: ServerContext) async throws -> AccountsV1.Account {
        try PromiseRules.validate(request)
        try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc")
        return try await mutateAccount(request, requestID: request.requestId, accountID: request.accountId,
                                       expectedVersion: request.expectedVersion, context: context) { account, scope in
            let promise = try PromiseRules.make(request, account: account, today: scope.today, nowMs: scope.nowMs,
                                                id: IDGenerator.make(prefix: "ptp", nowMs: scope.nowMs),
                                                policy: scope.configuration.collection)
            account.promises.append(promise)
            return .changed([scope.event(.promiseRecorded, reason: "promise \(promise.id)", details: .promise(promise))])
        }
    }

    func proposeRepaymentPlan(_ request: AccountsV1.ProposeRepaymentPlanRequest, _ context: ServerContext) async throws -> AccountsV1.Account {
        try PlanRules.validate(request)
        try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc")
        return try await mutateAccount(request, requestID: request.requestId, accountID: request.accountId,
                                       expectedVersion: request.expectedVersion, context: context) { account, scope in
            let plan = try PlanRules.propose(request, account: account, today: scope.today, nowMs: scope.nowMs,
                                             id: IDGenerator.make(prefix: "rpl", nowMs: scope.nowMs), policy: scope.configuration.collection)
            let change = PlanRules.recordProposal(plan, in: account, nowMs: scope.nowMs, actor: scope.actor, requestID: scope.requestID)
            account = change.account
            return .changed(change.events)
        }
    }

    func acceptRepaymentPlan(_ request: AccountsV1.AcceptRepaymentPlanRequest, _ context: ServerContext) async throws -> AccountsV1.Account {
        try PlanRules.validate(request)
        try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc")
        return try await mutateAccount(request, requestID: request.requestId, accountID: request.accountId,
                                       expectedVersion: request.expectedVersion, context: context) { account, scope in
            let change = try PlanRules.accept(request.planId, account: account, nowMs: scope.nowMs, actor: scope.actor,
                                              requestID: scope.requestID)
            account = change.account
            return .changed(change.events)
        }
    }
}
