import Compliance
import Crypto
import Foundation
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

/// One record of each import, checked and written through the single RPCs' domain code:
/// CreateDebtor's validation, UpdateDebtor's correction and change trail, OpenAccount's
/// opening, RecordPayment's allocation.
extension AccountsService {
    /// An ImportAccounts record that passed validation (no database read yet).
    struct AccountRecord: Sendable {
        var importID: String
        var debtor: AccountsV1.Debtor
        var debtorDigest: String
        var opening: ValidOpening
        /// The digest of the whole account part, then (after a space) of its schedule alone: an
        /// account whose other terms changed keeps the schedule Doorstep has (with the payments
        /// recorded since), one whose schedule changed takes the lender's.
        var accountDigest: String
        var scheduleDigest: String { String(accountDigest.split(separator: " ").last ?? "") }
        var today: CivilDate
        /// What the record inserts when neither its debtor nor its account exists yet, made
        /// while the batch before is written (ids, sealing, opening, encodings): the write
        /// transaction, which every other writer waits for, only inserts it.
        var fresh: FreshRecord
    }

    /// A new debtor and account of an import record (``AccountRecord/fresh``).
    struct FreshRecord: Sendable {
        var debtor: AccountsV1.Debtor
        var sealedDebtor: Data
        /// Opened under `debtor`.
        var account: AccountsV1.Account
        var accountBody: [UInt8]
        var events: [(event: AccountsV1.TimelineEvent, encoded: [UInt8])]
    }

    /// An ImportPayments record that passed validation.
    struct PaymentRecord: Sendable {
        var importID: String
        var lenderID: String
        var accountExternalID: String
        var request: AccountsV1.RecordPaymentRequest
        var amountMinor: Int64
        var digest: String
    }

    static func importReference(_ importID: String, _ sequence: Int64) -> String { "import:\(importID):\(sequence)" }

    // MARK: Accounts

    func prepareAccountRecord(_ record: AccountsV1.ImportAccountsRequest, nowMs: Int64,
                              digestKey: SymmetricKey, actor: TypeV1.Actor) throws(DomainError) -> AccountRecord {
        try Validate.text(record.importId, field: "import_id", min: 1, max: 100)
        let debtor = try DebtorValidation.validate(record.debtor, rules: configuration.debtorRules)
        guard let imported = record.account else { throw .invalidArgument("account", "required") }
        let today = CivilDate.today(in: TimeZone(identifier: debtor.timeZone) ?? .gmt, nowMs: nowMs)
        var request = AccountsV1.OpenAccountRequest()
        request.requestId = "import"
        request.debtorId = Self.placeholderDebtorID
        request.externalId = imported.externalId
        request.lenderId = imported.lenderId
        request.product = imported.product
        request.productName = imported.productName
        request.principal = imported.principal
        request.openedDate = imported.openedDate
        request.instalments = imported.instalments
        request.assignedAgencyId = imported.assignedAgencyId
        let opening: ValidOpening
        do {
            opening = try AccountOpening.validate(request, asOf: today)
        } catch {
            if case .invalid(let field, let problem) = error { throw .invalidArgument("account.\(field)", problem) }
            throw error
        }
        do {
            // The account's digest covers its debtor too: the same account under another
            // debtor is a changed record (and refused).
            var keyed = imported
            keyed.assignedAgencyId += "\u{1F}" + debtor.externalId
            return AccountRecord(importID: record.importId, debtor: debtor,
                                 debtorDigest: try Self.importDigest(debtor, key: digestKey), opening: opening,
                                 accountDigest: try Self.importDigest(keyed, key: digestKey) + " "
                                    + Self.importDigest(AccountsV1.ImportedAccount(instalments: imported.instalments), key: digestKey),
                                 today: today,
                                 fresh: try freshRecord(debtor, opening: opening, today: today, nowMs: nowMs, actor: actor,
                                                        reference: Self.importReference(record.importId, record.sequence)))
        } catch {
            throw .invalidArgument("debtor", "cannot be encoded: \(error)")
        }
    }

    /// The debtor (new ids, version 1) and the account opened under it that a record inserts
    /// when neither exists.
    private func freshRecord(_ validated: AccountsV1.Debtor, opening: ValidOpening, today: CivilDate, nowMs: Int64,
                             actor: TypeV1.Actor, reference: String) throws -> FreshRecord {
        let debtor = Self.newDebtor(validated, nowMs: nowMs)
        let (account, events) = Self.opened(opening, debtor: debtor, today: today, nowMs: nowMs, configuration: configuration,
                                            actor: actor, openedReason: Self.importOpenedReason(actor, reference),
                                            requestID: reference)
        return FreshRecord(debtor: debtor, sealedDebtor: try store.seal(debtor), account: account, accountBody: try account.encode(),
                           events: try AccountsStore.firstEvents(events, accountID: account.id, nowMs: nowMs))
    }

    static func importOpenedReason(_ actor: TypeV1.Actor, _ reference: String) -> String {
        "opened by \(actor.subject), imported (\(reference))"
    }

    /// A well-formed debtor id, only for AccountOpening's check of a field an import does
    /// not have.
    static let placeholderDebtorID = "dbt_00000000000000000000000000"

    static func importAccountRecord(_ record: AccountRecord, sequence: Int64, db: SQLSession, store: AccountsStore,
                                    configuration: Configuration, nowMs: Int64, actor: TypeV1.Actor,
                                    keys: inout [ImportKeyRow]) throws -> AccountsV1.ImportResult {
        let reference = importReference(record.importID, sequence)
        let opening = record.opening
        // One statement: the debtor and the account the record's keys name, and the last
        // import's digests of both (what the debtor's part writes changes none of the account's).
        let found = try db.fetchOne(
            sql: """
                SELECT d.id AS debtor_id, kd.digest AS debtor_digest,
                       a.id AS account_id, a.debtor_id AS account_debtor_id, ka.digest AS account_digest
                FROM (SELECT 1 AS one) AS one
                LEFT JOIN debtors d ON d.external_id = ?
                LEFT JOIN import_keys kd ON kd.kind = 'debtor' AND kd.external_key = ?
                LEFT JOIN accounts a ON a.lender_id = ? AND a.external_id = ?
                LEFT JOIN import_keys ka ON ka.kind = 'account' AND ka.external_key = ?
                """,
            arguments: [record.debtor.externalId, record.debtor.externalId, opening.lenderID, opening.externalID,
                        accountKey(opening)])
        let existingDebtor: (id: String?, digest: String?) = (found?["debtor_id"], found?["debtor_digest"])
        let existingAccount: (id: String?, debtorID: String?, digest: String?) =
            (found?["account_id"], found?["account_debtor_id"], found?["account_digest"])
        func write(_ keys: inout [ImportKeyRow]) throws -> (AccountsV1.Debtor, AccountsV1.ImportOutcome, String, AccountsV1.ImportOutcome) {
            let (debtor, debtorOutcome) = try importDebtor(record, existing: existingDebtor, reference: reference, db: db,
                                                           store: store, configuration: configuration, nowMs: nowMs, actor: actor,
                                                           keys: &keys)
            let (accountID, accountOutcome) = try importAccount(
                record, existing: existingAccount, debtor: debtor, newDebtor: debtorOutcome == .created, reference: reference,
                db: db, store: store, configuration: configuration, nowMs: nowMs, actor: actor, keys: &keys)
            return (debtor, debtorOutcome, accountID, accountOutcome)
        }
        // A savepoint only where a refusal can come after a write. A record whose debtor and
        // account are both new inserts rows checked before the transaction (``FreshRecord``);
        // one whose debtor and account match the last import's digests writes nothing.
        let fresh = existingDebtor.id == nil && existingAccount.id == nil
        let same = existingDebtor.id != nil && existingDebtor.digest == record.debtorDigest
            && existingAccount.digest == record.accountDigest && existingAccount.debtorID == existingDebtor.id
        let (debtor, debtorOutcome, accountID, accountOutcome) = fresh || same
            ? try write(&keys) : try db.savepoint { try write(&keys) }
        var result = AccountsV1.ImportResult()
        result.sequence = sequence
        result.debtorId = debtor.id
        result.accountId = accountID
        result.outcome = [debtorOutcome, accountOutcome].contains(.created) ? .created
            : [debtorOutcome, accountOutcome].contains(.updated) ? .updated : .unchanged
        return result
    }

    /// The record's debtor: the one its external id names (updated when the record's data
    /// differs, as UpdateDebtor would), or a new one.
    /// `existing`: the debtor the record's external id names and the last import's digest of it.
    private static func importDebtor(_ record: AccountRecord, existing: (id: String?, digest: String?), reference: String,
                                     db: SQLSession, store: AccountsStore, configuration: Configuration, nowMs: Int64,
                                     actor: TypeV1.Actor,
                                     keys: inout [ImportKeyRow]) throws -> (AccountsV1.Debtor, AccountsV1.ImportOutcome) {
        let externalID = record.debtor.externalId
        let (existingID, digest) = existing
        if let existingID, digest == record.debtorDigest {
            var known = record.debtor
            known.id = existingID
            return (known, .unchanged)
        }
        guard let existingID, let current = try store.debtor(db, id: existingID) else {
            let debtor = record.fresh.debtor
            try store.insert(db, debtor: debtor, sealed: record.fresh.sealedDebtor)
            keys.append(ImportKeyRow(kind: "debtor", key: externalID, resourceID: debtor.id, digest: record.debtorDigest))
            return (debtor, .created)
        }
        guard current.nationalId == record.debtor.nationalId else {
            throw DomainError.invalidArgument("debtor.national_id", "differs from the debtor on record (\(current.id)); an import does not change it")
        }
        guard current.fullName == record.debtor.fullName else {
            throw DomainError.invalidArgument("debtor.full_name", "differs from the debtor on record (\(current.id)); an import does not change it")
        }
        var mask: [DebtorCorrection.Field] = []
        if current.address != record.debtor.address { mask.append(.address) }
        if current.phone != record.debtor.phone { mask.append(.phone) }
        let withoutIDs = { (contacts: [AccountsV1.EmergencyContact]) in contacts.map { contact in
            var contact = contact
            contact.id = ""
            return contact
        } }
        if withoutIDs(current.emergencyContacts) != record.debtor.emergencyContacts { mask.append(.emergencyContacts) }
        if current.timeZone != record.debtor.timeZone { mask.append(.timeZone) }
        keys.append(ImportKeyRow(kind: "debtor", key: externalID, resourceID: current.id, digest: record.debtorDigest))
        guard !mask.isEmpty else { return (current, .unchanged) }
        let correction = try DebtorCorrection.corrected(current, with: record.debtor, mask: mask.map(\.rawValue),
                                                        newContactID: { IDGenerator.make(prefix: "emc", nowMs: nowMs) })
        var debtor = correction.debtor
        var changed = correction.fields.map(\.rawValue)
        if debtor.addressUnverified, correction.fields.contains(where: \.correctsAddress) {
            debtor.addressUnverified = false
            debtor.wrongAddressFinding = nil
            changed.append(DebtorCorrection.addressUnverifiedField)
        }
        debtor.version += 1
        debtor.updatedMs = nowMs
        try store.update(db, debtor: debtor)
        try store.append(db, change: AccountsV1.DebtorChange(
            kind: .updated, changedMs: nowMs, fields: changed, actor: actor, reason: "imported: \(reference)", requestId: reference,
            debtorVersion: debtor.version), debtorID: debtor.id)
        try carryOver(db, from: current, to: debtor, store: store, configuration: configuration, nowMs: nowMs, actor: actor,
                      requestID: reference)
        return (debtor, .updated)
    }

    /// The record's account: the one its lender and external id name (new terms or a new
    /// schedule when the record differs), or a new one opened as OpenAccount opens it.
    /// `existing`: the account the record's lender and external id name, its debtor, and the
    /// last import's digest of it. `newDebtor`: `debtor` was inserted by this record.
    private static func importAccount(_ record: AccountRecord, existing: (id: String?, debtorID: String?, digest: String?),
                                      debtor: AccountsV1.Debtor, newDebtor: Bool, reference: String, db: SQLSession,
                                      store: AccountsStore, configuration: Configuration, nowMs: Int64, actor: TypeV1.Actor,
                                      keys: inout [ImportKeyRow]) throws -> (String, AccountsV1.ImportOutcome) {
        let opening = record.opening
        let externalKey = accountKey(opening)
        let digest = existing.digest
        guard let accountID = existing.id else {
            let fresh = record.fresh
            if debtor.id == fresh.debtor.id {
                try store.insert(db, account: fresh.account, nowMs: nowMs, newDebtor: newDebtor, body: fresh.accountBody)
                try store.appendFirst(db, events: fresh.events)
                keys.append(ImportKeyRow(kind: "account", key: externalKey, resourceID: fresh.account.id, digest: record.accountDigest))
                return (fresh.account.id, .created)
            }
            // A new account of a debtor on record: opened under that debtor.
            let (account, events) = opened(opening, debtor: debtor, today: record.today, nowMs: nowMs, configuration: configuration,
                                           actor: actor, openedReason: importOpenedReason(actor, reference), requestID: reference)
            try store.insert(db, account: account, nowMs: nowMs, newDebtor: newDebtor)
            try store.appendFirst(db, events: try AccountsStore.firstEvents(events, accountID: account.id, nowMs: nowMs))
            keys.append(ImportKeyRow(kind: "account", key: externalKey, resourceID: account.id, digest: record.accountDigest))
            return (account.id, .created)
        }
        let debtorID = existing.debtorID ?? ""
        if digest == record.accountDigest, debtorID == debtor.id { return (accountID, .unchanged) }
        guard debtorID == debtor.id else {
            throw DomainError.invalidArgument("account.external_id",
                                              "lender \(opening.lenderID)'s account '\(opening.externalID)' belongs to another debtor")
        }
        guard var account = try store.account(db, id: accountID) else { throw DomainError.notFound("account \(accountID) not found") }
        let currency = opening.currency
        var what: [String] = []
        if account.product != opening.product { what.append("product"); account.product = opening.product }
        if account.productName != opening.productName { what.append("product_name"); account.productName = opening.productName }
        let principal = TypeV1.Money(amountMinor: opening.principalMinor, currencyCode: currency)
        if account.principal != principal {
            guard account.principal?.currencyCode == currency else {
                throw DomainError.invalidArgument("account.principal.currency_code",
                                                  "must be \(account.principal?.currencyCode ?? ""), the account's currency")
            }
            what.append("principal")
            account.principal = principal
        }
        if account.openedDate != opening.openedDate.proto { what.append("opened_date"); account.openedDate = opening.openedDate.proto }
        // The schedule is replaced only when the lender's changed (or was never imported): the
        // account's own differs from the last file by the payments recorded since.
        let scheduleChanged = digest.map { $0.split(separator: " ").last.map(String.init) != record.scheduleDigest } ?? true
        if scheduleChanged, account.instalments != opening.instalments {
            what.append("instalments")
            account.instalments = opening.instalments
        }
        let agency = opening.assignedAgencyID ?? ""
        if account.assignedAgencyId != agency { what.append("assigned_agency_id"); account.assignedAgencyId = agency }
        keys.append(ImportKeyRow(kind: "account", key: externalKey, resourceID: account.id, digest: record.accountDigest))
        guard !what.isEmpty else { return (account.id, .unchanged) }
        let today = CivilDate.today(in: TimeZone(identifier: account.debtorTimeZone) ?? .gmt, nowMs: nowMs)
        var events = [event(.accountImported, reason: "imported (\(reference)): \(what.joined(separator: ", "))", actor: actor,
                            requestID: reference)]
        let policy = configuration.delinquency
        let delinquency = Delinquency.compute(instalments: account.instalments, asOf: today, policy: policy)
        if let decision = StageCure.afterPayment(stage: account.stage, delinquency: delinquency, policy: policy) {
            events.append(stageChange(&account, to: decision, daysPastDue: delinquency.daysPastDue, nowMs: nowMs, actor: actor,
                                      requestID: reference))
        }
        account.version += 1
        account.updatedMs = nowMs
        let contacts = try store.contactStats(db, accountID: account.id)
        if let tierChange = refresh(&account, asOf: today, nowMs: nowMs, configuration: configuration, contacts: contacts,
                                    actor: actor, requestID: reference) {
            events.append(tierChange)
        }
        try store.update(db, account: account, contacts: contacts, nowMs: nowMs)
        try store.append(db, events: events, accountID: account.id, nowMs: nowMs)
        return (account.id, .updated)
    }

    /// The import key of an account: its lender and external id.
    private static func accountKey(_ opening: ValidOpening) -> String { opening.lenderID + "\u{1F}" + opening.externalID }

    /// A new account from a validated opening (OpenAccount's and ImportAccounts'), with its
    /// opening events: ACCOUNT_OPENED saying `openedReason`, and the opening stage.
    static func opened(_ opening: ValidOpening, debtor: AccountsV1.Debtor, today: CivilDate, nowMs: Int64,
                       configuration: Configuration, actor: TypeV1.Actor, openedReason: String,
                       requestID reference: String) -> (AccountsV1.Account, [AccountsV1.TimelineEvent]) {
        let policy = configuration.delinquency
        var account = AccountsV1.Account()
        account.id = IDGenerator.make(prefix: "acc", nowMs: nowMs)
        account.debtorId = debtor.id
        account.externalId = opening.externalID
        account.lenderId = opening.lenderID
        account.product = opening.product
        account.productName = opening.productName
        account.principal = TypeV1.Money(amountMinor: opening.principalMinor, currencyCode: opening.currency)
        account.openedDate = opening.openedDate.proto
        account.instalments = opening.instalments
        account.assignedAgencyId = opening.assignedAgencyID ?? ""
        account.regionCode = debtor.address?.regionCode ?? ""
        account.debtorTimeZone = debtor.timeZone
        account.waivedAmount = TypeV1.Money(amountMinor: 0, currencyCode: opening.currency)
        let delinquency = Delinquency.compute(instalments: account.instalments, asOf: today, policy: policy)
        let stage = Delinquency.openingStage(daysPastDue: delinquency.daysPastDue, policy: policy)
        account.stage = stage.stage
        account.stageReason = stage.reason
        account.stageEnteredMs = nowMs
        account.version = 1
        account.createdMs = nowMs
        account.updatedMs = nowMs
        refresh(&account, asOf: today, nowMs: nowMs, configuration: configuration, contacts: ContactStats())
        return (account, [
            event(.accountOpened, reason: openedReason, actor: actor, requestID: reference),
            event(.stageChanged, reason: stage.reason, actor: actor, requestID: reference,
                  details: .stageChange(AccountsV1.StageChange(fromStage: .unspecified, toStage: stage.stage,
                                                               daysPastDue: Int32(clamping: delinquency.daysPastDue)))),
        ])
    }

    // MARK: Payments

    func preparePaymentRecord(_ record: AccountsV1.ImportPaymentsRequest, nowMs: Int64,
                              digestKey: SymmetricKey) throws(DomainError) -> PaymentRecord {
        try Validate.text(record.importId, field: "import_id", min: 1, max: 100)
        try AccountOpening.lenderID(record.lenderId, field: "lender_id")
        try Validate.externalID(record.accountExternalId, field: "account_external_id")
        try Validate.externalID(record.externalId, field: "external_id")
        let amount = try Validate.money(record.amount, field: "amount", currency: nil, allowZero: false)
        try Validate.instantMs(record.receivedMs, field: "received_ms", required: true)
        guard record.receivedMs <= nowMs + 5 * 60_000 else { throw .invalidArgument("received_ms", "must not be in the future") }
        try Validate.text(record.note, field: "note", min: 0, max: 500)
        var request = AccountsV1.RecordPaymentRequest()
        request.requestId = Self.importReference(record.importId, record.sequence)
        request.amount = record.amount
        request.receivedMs = record.receivedMs
        request.externalId = record.externalId
        request.note = record.note
        var keyed = record
        keyed.sequence = 0
        keyed.importId = ""
        keyed.note = ""
        let digest: String
        do {
            digest = try Self.importDigest(keyed, key: digestKey)
        } catch {
            throw .invalidArgument("note", "cannot be encoded: \(error)")
        }
        return PaymentRecord(importID: record.importId, lenderID: record.lenderId, accountExternalID: record.accountExternalId,
                             request: request, amountMinor: amount, digest: digest)
    }

    static func importPaymentRecord(_ record: PaymentRecord, sequence: Int64, db: SQLSession, store: AccountsStore,
                                    configuration: Configuration, nowMs: Int64, actor: TypeV1.Actor) throws -> AccountsV1.ImportResult {
        var result = AccountsV1.ImportResult()
        result.sequence = sequence
        let externalKey = [record.lenderID, record.accountExternalID, record.request.externalId].joined(separator: "\u{1F}")
        if let key = try store.importKey(db, kind: "payment", key: externalKey), key.digest == record.digest {
            let parts = key.resourceID.split(separator: "/")
            result.accountId = parts.first.map(String.init) ?? ""
            result.paymentId = parts.count > 1 ? String(parts[1]) : ""
            result.outcome = .unchanged
            return result
        }
        guard let accountID = try db.fetchValue(String.self, sql: "SELECT id FROM accounts WHERE lender_id = ? AND external_id = ?",
                                                arguments: [record.lenderID, record.accountExternalID]),
              var account = try store.account(db, id: accountID) else {
            throw DomainError.notFound("lender \(record.lenderID) has no account '\(record.accountExternalID)'")
        }
        result.accountId = account.id
        if let recorded = account.payments.first(where: { $0.externalId == record.request.externalId }) {
            guard recorded.amount?.amountMinor == record.amountMinor, recorded.amount?.currencyCode == record.request.amount?.currencyCode,
                  recorded.receivedMs == record.request.receivedMs else {
                throw RPCError(code: .alreadyExists, message: "a payment with external_id '\(record.request.externalId)' is already "
                               + "recorded on \(account.id) with another amount or time; imports do not correct payments")
            }
            try store.setImportKey(db, kind: "payment", key: externalKey, resourceID: "\(account.id)/\(recorded.id)", digest: record.digest)
            result.paymentId = recorded.id
            result.outcome = .unchanged
            return result
        }
        // RecordPayment's path (mutateAccount), in this transaction.
        let today = CivilDate.today(in: TimeZone(identifier: account.debtorTimeZone) ?? .gmt, nowMs: nowMs)
        refresh(&account, asOf: today, nowMs: nowMs, configuration: configuration, contacts: try store.contactStats(db, accountID: account.id))
        let scope = MutationScope(db: db, store: store, configuration: configuration, today: today, nowMs: nowMs, actor: actor,
                                  requestID: record.request.requestId)
        var events = try applyPayment(record.request, amount: record.amountMinor, to: &account, scope: scope)
        account.version += 1
        account.updatedMs = nowMs
        let contacts = try store.contactStats(db, accountID: account.id)
        if let tierChange = refresh(&account, asOf: today, nowMs: nowMs, configuration: configuration, contacts: contacts,
                                    actor: actor, requestID: record.request.requestId) {
            events.append(tierChange)
        }
        try store.update(db, account: account, contacts: contacts, nowMs: nowMs)
        try store.append(db, events: events, accountID: account.id, nowMs: nowMs)
        let paymentID = account.payments.last?.id ?? ""
        try store.setImportKey(db, kind: "payment", key: externalKey, resourceID: "\(account.id)/\(paymentID)", digest: record.digest)
        result.paymentId = paymentID
        result.outcome = .created
        return result
    }
}
