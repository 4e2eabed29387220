import Foundation
import Logging
import Models
import RPC
import RPCWire
import ServiceKit
import ServiceTestSupport
import Storage
import TestSupport
import Testing
import Validation
@testable import AccountsService

private typealias A = AccountsV1.AccountsService

/// Retention of debtors' personal data on the test clock: once every account of a debtor is
/// closed and the pack's `record-retention` period has passed since the last closing, the
/// service's own job anonymises the debtor into a tombstone — unless an account hold of
/// reason COMPLAINT, DISPUTE or LEGAL_INSTRUCTION postpones it; the compliance officer's
/// audit (ListRetentionRecords) shows both.
@Suite("Accounts retention: debtors anonymised past retention, holds postpone it, the audit shows both", .serialized)
struct AccountsRetentionTests {
    /// The instant `hour`:00 UTC on `year`-`month`-`day`.
    static func utc(_ year: Int, _ month: Int, _ day: Int, _ hour: Int) -> Int64 {
        Int64(CivilDate(year: year, month: month, day: day)!.dayNumber) * 86_400_000 + Int64(hour) * 3_600_000
    }

    /// An instalment loan settled on 2026-03-10 (Shanghai) is kept until 2031-03-10 (cn-2026,
    /// consumer finance, 5 years); erasure is due once that date has ended in every zone: 12:00
    /// UTC on the 11th.
    static let due = utc(2031, 3, 11, 12)

    /// Free text written about the debtor in clear (not sealed): none of it may survive.
    static let markers = ["retention-marker-change-4471", "retention-marker-contact-7731", "retention-marker-hold-5520",
                          "retention-marker-payment-9902", "retention-marker-release-3318"]

    /// Another replica of the service on the harness's database (its data key): the one that
    /// runs the retention job.
    static func service(_ harness: AccountsHarness) throws -> AccountsService {
        let clock = harness.clock
        return AccountsService(database: harness.database, cipher: try cipher(harness), clock: ServiceClock { clock.now })
    }

    static func cipher(_ harness: AccountsHarness) throws -> DataCipher {
        DataCipher(key: try DataCipher.loadKey(path: harness.directory.appendingPathComponent("data.key").path, create: false).key)
    }

    /// The whole retention audit (every page), as a compliance officer.
    static func audit(_ harness: AccountsHarness, debtor: String = "", pageSize: Int32 = 0) async throws -> [AccountsV1.RetentionRecord] {
        let officer = try await harness.metadata(.compliance)
        var request = AccountsV1.ListRetentionRecordsRequest(pageSize: pageSize, debtorId: debtor)
        var records: [AccountsV1.RetentionRecord] = []
        repeat {
            let page = try await harness.client.unary(A.listRetentionRecords, request, metadata: officer)
            records += page.records
            request.pageToken = page.nextPageToken
        } while !request.pageToken.isEmpty
        return records
    }

    static func debtor(_ harness: AccountsHarness, _ id: String, reveal: Bool = false) async throws -> AccountsV1.Debtor {
        try await harness.client.unary(A.getDebtor, AccountsV1.GetDebtorRequest(
            debtorId: id, revealPersonalData: reveal, accessReason: reveal ? "retention test reads the stored values" : ""),
            metadata: try await harness.metadata(.compliance))
    }

    /// Pays the whole outstanding amount (3,000.00 CNY): the account is SETTLED.
    static func settle(_ harness: AccountsHarness, _ account: AccountsV1.Account, tag: String, note: String = "") async throws -> AccountsV1.Account {
        try await harness.client.unary(A.recordPayment, AccountsV1.RecordPaymentRequest(
            requestId: "settle-\(tag)", accountId: account.id, amount: TypeV1.Money(amountMinor: 300_000, currencyCode: "CNY"),
            receivedMs: harness.clock.now - 3_600_000, externalId: "txn-settle-\(tag)", note: note), metadata: try await harness.metadata(.platform))
    }

    /// Everything the database holds about debtors and accounts, as text: every column a
    /// value could be copied into, with the debtors' sealed records opened with the data key.
    static func storedText(_ harness: AccountsHarness) async throws -> String {
        let cipher = try cipher(harness)
        return try await harness.database.read { db in
            var text = ""
            for row in try db.fetchAll(sql: "SELECT id, external_id, region_code, sealed FROM debtors") {
                let id: String = row["id"]
                let sealed: Data = row["sealed"]
                let debtor = try AccountsV1.Debtor(decoding: try cipher.open(sealed, context: id))
                text += "\(row["external_id"] as String) \(row["region_code"] as String) \(debtor.jsonText())\n"
            }
            let blobs: [(String, (Data) throws -> String)] = [
                ("SELECT body FROM debtor_changes", { try AccountsV1.DebtorChange(decoding: [UInt8]($0)).jsonText() }),
                ("SELECT body FROM contact_attempts", { try AccountsV1.ContactAttempt(decoding: [UInt8]($0)).jsonText() }),
                ("SELECT body FROM accounts", { try AccountsV1.Account(decoding: [UInt8]($0)).jsonText() }),
                ("SELECT body FROM timeline", { try AccountsV1.TimelineEvent(decoding: [UInt8]($0)).jsonText() }),
                ("SELECT body FROM retention_records", { try AccountsV1.RetentionRecord(decoding: [UInt8]($0)).jsonText() }),
                ("SELECT data FROM events WHERE data_schema = 'doorstep.accounts.v1.TimelineEvent'",
                 { try AccountsV1.TimelineEvent(decoding: [UInt8]($0)).jsonText() }),
                ("SELECT data FROM events WHERE data_schema = 'doorstep.accounts.v1.Debtor'",
                 { try AccountsV1.Debtor(decoding: [UInt8]($0)).jsonText() }),
            ]
            for (sql, render) in blobs {
                for value in try db.fetchValues(Data.self, sql: sql) { text += try render(value) + "\n" }
            }
            for sql in ["SELECT number_digest FROM contact_attempts", "SELECT reason FROM personal_data_access"] {
                text += try db.fetchValues(String.self, sql: sql).joined(separator: "\n") + "\n"
            }
            return text
        }
    }

    // MARK: 1. Erasure

    @Test("a settled debtor past retention becomes a tombstone: personal data and free text gone, the books kept; not a minute early; once",
          .timeLimit(.minutes(1)))
    func erasure() async throws {
        let harness = try await AccountsHarness()
        defer { Task { await harness.close() } }
        let platform = try await harness.metadata(.platform)
        let service = try await harness.metadata(.service)
        let compliance = try await harness.metadata(.compliance)
        let account = try await harness.openAccount("gone")
        let debtorID = account.debtorId
        // Free text about the person: a correction's reason, a call note, a HARDSHIP hold (it
        // postpones nothing) and its release, a payment note.
        _ = try await harness.client.unary(A.updateDebtor, AccountsV1.UpdateDebtorRequest(
            requestId: "fix-phone", debtorId: debtorID, debtor: AccountsV1.Debtor(phone: "13987650123"), updateMask: ["phone"],
            reason: Self.markers[0]), metadata: platform)
        _ = try await harness.client.unary(A.recordContactAttempt, AccountsV1.RecordContactAttemptRequest(
            requestId: "call-1", accountId: account.id, channel: .phone, outcome: .noAnswer, attemptedMs: harness.clock.now,
            note: Self.markers[1]), metadata: service)
        let held = try await harness.client.unary(A.placeHold, AccountsV1.PlaceHoldRequest(
            requestId: "hardship", accountId: account.id, reason: .hardship, note: Self.markers[2]), metadata: platform)
        let settled = try await Self.settle(harness, account, tag: "gone", note: Self.markers[3])
        #expect(settled.stage == .settled)
        _ = try await harness.client.unary(A.releaseHold, AccountsV1.ReleaseHoldRequest(
            requestId: "release", accountId: account.id, note: Self.markers[4], hold: .holdId(try #require(held.holds.first).id)),
            metadata: platform)
        // Another debtor whose account stays open: never due.
        let open = try await harness.openAccount("open")
        let before = try await Self.storedText(harness)
        for marker in Self.markers + ["李四", "11010519491231002X", "+8613987650123"] {
            #expect(before.contains(marker), "the scan sees \(marker) before the erasure")
        }
        let job = try Self.service(harness)

        // 11:59 UTC on 2031-03-11: 2031-03-10 has not ended everywhere yet.
        harness.clock.set(Self.due - 60_000)
        #expect(try await job.retentionPass() == RetentionTally())
        #expect(try await Self.debtor(harness, debtorID).erased == nil)

        harness.clock.set(Self.due)
        #expect(try await job.retentionPass() == { var tally = RetentionTally(); tally.erased = 1; return tally }())
        // GetDebtor, masked or revealed: the tombstone, no error.
        let tombstone = try await Self.debtor(harness, debtorID, reveal: true)
        let erased = try #require(tombstone.erased)
        #expect(erased.erasedMs == Self.due && erased.erasedBy?.role == .system && erased.erasedBy?.subject == "accounts/retention")
        #expect(erased.ruleId == "record-retention" && erased.rulePackId == "cn-2026" && !erased.rulePackVersion.isEmpty)
        #expect(erased.retainUntilDate == TypeV1.Date(year: 2031, month: 3, day: 10))
        #expect(tombstone.id == debtorID && tombstone.externalId == "cust-gone" && tombstone.timeZone == "Asia/Shanghai")
        #expect(tombstone.address == TypeV1.Address(regionCode: "310115"))
        #expect(tombstone.fullName.isEmpty && tombstone.nationalId.isEmpty && tombstone.phone.isEmpty && tombstone.emergencyContacts.isEmpty)
        #expect(try await Self.debtor(harness, debtorID).erased == erased)
        #expect(try await Self.debtor(harness, open.debtorId).fullName == "李四", "the open debtor is untouched")

        // The books stay: amounts, dates, statuses; the words about the person go.
        let books = try await harness.client.unary(A.getAccount, AccountsV1.GetAccountRequest(accountId: account.id), metadata: compliance)
        #expect(books.stage == .settled && books.outstandingAmount?.amountMinor == 0 && books.principal == settled.principal)
        #expect(books.payments.map(\.amount) == settled.payments.map(\.amount) && books.payments.allSatisfy { $0.note.isEmpty })
        #expect(books.holds.count == 1 && books.holds[0].reason == .hardship && books.holds[0].note.isEmpty && books.holds[0].releaseNote.isEmpty)
        #expect(books.stageReason.isEmpty && books.version > settled.version)
        let listed = try await harness.client.unary(A.listAccounts, AccountsV1.ListAccountsRequest(debtorId: debtorID, view: .full),
                                                    metadata: compliance)
        #expect(listed.accounts.map(\.id) == [account.id] && listed.accounts[0].payments.allSatisfy { $0.note.isEmpty })
        let timeline = try await harness.client.unary(A.getAccountTimeline, AccountsV1.GetAccountTimelineRequest(accountId: account.id),
                                                      metadata: compliance)
        #expect(timeline.events.count >= 5 && timeline.events.allSatisfy { $0.reason.isEmpty })
        #expect(timeline.events.contains { if case .payment(let payment)? = $0.details { payment.amount?.amountMinor == 300_000 } else { false } })
        let trail = try await harness.client.unary(A.listDebtorChanges, AccountsV1.ListDebtorChangesRequest(debtorId: debtorID),
                                                   metadata: compliance)
        #expect(trail.changes.map(\.fields) == [["phone"]] && trail.changes[0].reason.isEmpty && trail.changes[0].actor?.role == .platform)
        // The subject-access export: the tombstone first.
        let parts = try await harness.client.serverStreamingCollect(A.exportDebtorRecord, AccountsV1.ExportDebtorRecordRequest(
            debtorId: debtorID, accessReason: "subject access request SAR-2031-7"), metadata: compliance)
        guard case .debtor(let exported)? = parts.first?.part else { Issue.record("no debtor part"); return }
        #expect(exported.erased == erased && exported.fullName.isEmpty)

        // Nothing personal is left anywhere the service stores it (sealed records opened);
        // the open debtor's data is.
        let after = try await Self.storedText(harness)
        for gone in Self.markers + ["+8613987650123"] {
            #expect(!after.contains(gone), "\(gone) survived the erasure")
        }
        // Both debtors had the same name, national id and address text: only the open one's are left.
        for value in ["李四", "11010519491231002X", "上海市浦东新区"] {
            #expect(before.components(separatedBy: value).count == 3 && after.components(separatedBy: value).count == 2,
                    "\(value): only the open debtor's is left")
        }
        // On disk the personal data was never in clear (sealed), and still is not.
        let files = ["accounts.sqlite", "accounts.sqlite-wal"].map { harness.directory.appendingPathComponent($0) }
        for value in ["11010519491231002X", "+8613987650123", "13987650123"] {
            #expect(try !databaseFilesContain(value, sqliteFiles: files), "\(value) is stored in clear")
        }

        // The events: the account's carry no free text; the erasure is an event of its own.
        let logged = try await harness.database.read { db in try AccountsStore.eventLog.events(db, after: 0, types: .all, limit: 1000) }
        #expect(!logged.contains { event in Self.markers.contains { event.dataJson.contains($0) } })
        let erasedEvent = try #require(logged.last)
        #expect(erasedEvent.type == "doorstep.accounts.debtor.erased" && erasedEvent.subject == "debtors/\(debtorID)")
        #expect(try AccountsV1.Debtor(decoding: erasedEvent.data) == tombstone)

        // The audit: one ERASED record with the legal basis, for compliance only.
        let audit = try await Self.audit(harness)
        #expect(audit.map(\.action) == [.erased])
        let record = try #require(audit.first)
        #expect(record.debtorId == debtorID && record.accountIds == [account.id] && record.sequence > 0 && record.hold == nil)
        #expect(record.ruleId == "record-retention" && record.rulePackId == "cn-2026" && record.retainUntilDate == erased.retainUntilDate)
        #expect(record.actor?.subject == "accounts/retention" && record.recordedMs == Self.due)
        let denied = await #expect(throws: RPCError.self) {
            try await harness.client.unary(A.listRetentionRecords, AccountsV1.ListRetentionRecordsRequest(), metadata: platform)
        }
        #expect(denied?.code == .permissionDenied)

        // Idempotent: a later pass changes nothing and writes no second record.
        harness.clock.advance(3_600_000)
        #expect(try await job.retentionPass() == RetentionTally())
        #expect(try await Self.debtor(harness, debtorID, reveal: true) == tombstone)
        #expect(try await Self.audit(harness).count == 1)

        // The tombstone takes no personal data and no new account.
        let refill = await #expect(throws: RPCError.self) {
            try await harness.client.unary(A.updateDebtor, AccountsV1.UpdateDebtorRequest(
                requestId: "refill", debtorId: debtorID, debtor: AccountsV1.Debtor(phone: "13987650123"), updateMask: ["phone"],
                reason: "late correction"), metadata: platform)
        }
        #expect(refill?.code == .failedPrecondition && refill?.message.hasPrefix("record-retention:") == true, "\(refill?.message ?? "")")
        let reopened = await #expect(throws: RPCError.self) {
            try await harness.client.unary(A.openAccount, AccountsV1.OpenAccountRequest(
                requestId: "reopen", debtorId: debtorID, externalId: "loan-again", lenderId: "lender-1", product: .instalmentLoan,
                principal: TypeV1.Money(amountMinor: 100_000, currencyCode: "CNY"), openedDate: TypeV1.Date(year: 2031, month: 3, day: 1),
                instalments: [AccountsV1.OpeningInstalment(dueDate: TypeV1.Date(year: 2031, month: 4, day: 1),
                                                           amountDue: TypeV1.Money(amountMinor: 100_000, currencyCode: "CNY"))]),
                metadata: platform)
        }
        #expect(reopened?.code == .failedPrecondition)
    }

    // MARK: 2. Open accounts, the last closing, holds

    @Test("an open account keeps the debtor; retention counts from the last closing; a DISPUTE hold postpones it, audited once; released, it goes",
          .timeLimit(.minutes(1)))
    func holds() async throws {
        let harness = try await AccountsHarness()
        defer { Task { await harness.close() } }
        let platform = try await harness.metadata(.platform)
        let compliance = try await harness.metadata(.compliance)
        let first = try await harness.openAccount("held")
        let debtorID = first.debtorId
        // A second account of the same debtor, a credit card (2 years), still open.
        let cny = { (amount: Int64) in TypeV1.Money(amountMinor: amount, currencyCode: "CNY") }
        let card = try await harness.client.unary(A.openAccount, AccountsV1.OpenAccountRequest(
            requestId: "card", debtorId: debtorID, externalId: "card-1", lenderId: "lender-1", product: .creditCard,
            principal: cny(100_000), openedDate: TypeV1.Date(year: 2026, month: 1, day: 5),
            instalments: [AccountsV1.OpeningInstalment(dueDate: TypeV1.Date(year: 2026, month: 4, day: 30), amountDue: cny(100_000))]),
            metadata: platform)
        let dispute = try await harness.client.unary(A.placeHold, AccountsV1.PlaceHoldRequest(
            requestId: "dispute", accountId: first.id, reason: .dispute, note: "债务人对金额有异议"), metadata: compliance)
        let holdID = try #require(dispute.holds.first).id
        _ = try await Self.settle(harness, first, tag: "held")
        let job = try Self.service(harness)

        // Five years on the loan is past its retention, but the card is open: never due, no audit.
        harness.clock.set(Self.due)
        #expect(try await job.retentionPass() == RetentionTally())
        #expect(try await Self.audit(harness).isEmpty)

        // The card is paid off on 2031-06-01 (Shanghai): two more years from then (credit card),
        // but the loan's five years from 2026-03-10 end earlier: the card's date counts.
        harness.clock.set(Self.utc(2031, 6, 1, 4))
        let paid = try await harness.client.unary(A.recordPayment, AccountsV1.RecordPaymentRequest(
            requestId: "card-paid", accountId: card.id, amount: cny(100_000), receivedMs: harness.clock.now - 60_000,
            externalId: "txn-card"), metadata: platform)
        #expect(paid.stage == .settled)
        let cardDue = Self.utc(2033, 6, 2, 12)
        harness.clock.set(cardDue - 60_000)
        #expect(try await job.retentionPass() == RetentionTally())
        #expect(try await Self.debtor(harness, debtorID).erased == nil)

        // Due now, but the DISPUTE hold (placed while the loan was open) postpones it: audited once.
        harness.clock.set(cardDue)
        var pass = try await job.retentionPass()
        #expect(pass.erased == 0 && pass.held == 1 && pass.postponed == 1)
        var audit = try await Self.audit(harness, debtor: debtorID)
        #expect(audit.map(\.action) == [.postponed])
        #expect(audit[0].hold == AccountsV1.RetentionHold(kind: .accountHold, id: holdID, note: "HOLD_REASON_DISPUTE", accountId: first.id))
        #expect(audit[0].retainUntilDate == TypeV1.Date(year: 2033, month: 6, day: 1) && Set(audit[0].accountIds) == [first.id, card.id])
        harness.clock.advance(3_600_000)
        pass = try await job.retentionPass()
        #expect(pass.erased == 0 && pass.held == 1 && pass.postponed == 0)
        #expect(try await Self.audit(harness).count == 1)
        #expect(try await Self.debtor(harness, debtorID).fullName == "李四")

        // Released: erased at the next pass.
        _ = try await harness.client.unary(A.releaseHold, AccountsV1.ReleaseHoldRequest(
            requestId: "release", accountId: first.id, note: "争议已解决", hold: .holdId(holdID)), metadata: compliance)
        harness.clock.advance(3_600_000)
        pass = try await job.retentionPass()
        #expect(pass.erased == 1 && pass.held == 0)
        audit = try await Self.audit(harness, debtor: debtorID)
        #expect(audit.map(\.action) == [.postponed, .erased] && audit[1].hold == nil)
        #expect(try await Self.audit(harness, debtor: debtorID, pageSize: 1) == audit, "paged one at a time")
        #expect(try await Self.debtor(harness, debtorID).erased?.retainUntilDate == TypeV1.Date(year: 2033, month: 6, day: 1))
        let books = try await harness.client.unary(A.getAccount, AccountsV1.GetAccountRequest(accountId: first.id), metadata: compliance)
        #expect(books.holds.map(\.note) == [""] && books.holds.map(\.releaseNote) == [""] && books.holds[0].reason == .dispute)
    }

    // MARK: 3. By itself

    @Test("the job runs by itself: the clock passes the date, no call erases the debtor", .timeLimit(.minutes(1)))
    func runsByItself() async throws {
        let harness = try await AccountsHarness()
        defer { Task { await harness.close() } }
        let account = try await harness.openAccount("job")
        _ = try await Self.settle(harness, account, tag: "job")
        let clock = harness.clock
        let sweep = RetentionSweep(service: try Self.service(harness), database: harness.database, clock: ServiceClock { clock.now },
                                   logger: Logger(label: "doorstep.test.retention"), interval: .milliseconds(50))
        let running = Task { try await sweep.run() }
        try await Task.sleep(for: .milliseconds(150))
        #expect(try await Self.debtor(harness, account.debtorId).erased == nil, "erased before its date")
        clock.set(Self.due)
        var erased: AccountsV1.Erasure?
        for _ in 0..<200 where erased == nil {
            try await Task.sleep(for: .milliseconds(50))
            erased = try await Self.debtor(harness, account.debtorId).erased
        }
        running.cancel()
        _ = await running.result
        #expect(erased?.erasedMs == Self.due)
        #expect(try await Self.audit(harness).map(\.action) == [.erased])
    }

    // MARK: 4. The flag

    @Test("--retention-interval-seconds: default 3600; environment; off and 0 turn it off; a bad value names its source")
    func flag() throws {
        func interval(_ arguments: [String], _ environment: [String: String] = [:]) throws -> Duration? {
            try AccountsOptions.parse(arguments).retentionInterval(environment: environment)
        }
        #expect(try interval([]) == .seconds(3600))
        #expect(try interval([], ["DOORSTEP_RETENTION_INTERVAL_SECONDS": "600"]) == .seconds(600))
        #expect(try interval(["--retention-interval-seconds", "60"], ["DOORSTEP_RETENTION_INTERVAL_SECONDS": "600"]) == .seconds(60))
        #expect(try interval(["--retention-interval-seconds", "off"]) == nil)
        #expect(try interval([], ["DOORSTEP_RETENTION_INTERVAL_SECONDS": "0"]) == nil)
        #expect(throws: ConfigurationError.self) { try interval(["--retention-interval-seconds", "86401"]) }
        do {
            _ = try interval([], ["DOORSTEP_RETENTION_INTERVAL_SECONDS": "hourly"])
            Issue.record("resolved")
        } catch {
            #expect("\(error)" == "DOORSTEP_RETENTION_INTERVAL_SECONDS: 'hourly' is not a number of seconds in 1...86400, 0 or off")
        }
    }
}
