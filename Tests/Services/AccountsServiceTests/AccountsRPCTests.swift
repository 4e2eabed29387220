import Foundation
import Logging
import Models
import RPC
import RPCWire
import ServiceAuth
import ServiceKit
import ServiceTestSupport
import Storage
import Synchronization
import TestSupport
import Testing
import Validation
@testable import AccountsService

/// The accounts service behind a real gRPC server on 127.0.0.1 (port 0), on a real database
/// (a SQLite file, or a PostgreSQL schema: ``TestDatabase``), with a clock the test sets.
final class AccountsHarness: Sendable {
    let served: ServedService
    let client: GRPCClient
    let issuer: TokenIssuer
    let database: SQLDatabase
    let clock = SettableClock(nowMs: testEpochMs)  // 2026-03-10T00:00:00Z

    let directory: URL

    /// `directory`: the data directory to open (its accounts.sqlite and data.key); a new
    /// temporary one by default.
    init(configuration: AccountsService.Configuration = .defaults, directory existing: URL? = nil) async throws {
        let directory = try existing ?? makeTemporaryDirectory()
        self.directory = directory
        var logger = Logger(label: "doorstep.test.accounts")
        logger.logLevel = ProcessInfo.processInfo.environment["DOORSTEP_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        database = try await TestDatabase.open(file: "accounts.sqlite", in: directory, migrations: AccountsService.migrations, logger: logger)
        let key = DataCipher(key: try DataCipher.loadKey(path: directory.appendingPathComponent("data.key").path, create: true).key)
        let signing = try SigningKey.generate()
        issuer = TokenIssuer(key: signing)
        let clock = self.clock
        let service = AccountsService(database: database, cipher: key, configuration: configuration, clock: ServiceClock { clock.now })
        served = try await ServedService.start(service.definition, authenticator: try await TokenVerifier(key: signing), logger: logger)
        client = served.client
    }

    func close() async {
        await served.close()
        await database.close()
    }

    func metadata(_ role: Caller.Role, agency: String? = nil) async throws -> Metadata {
        let token = try await issuer.token(for: Caller(role: role, subject: "test-\(role.rawValue)", agencyID: agency))
        return ["authorization": "Bearer \(token)"]
    }

    /// A debtor and an account with three monthly instalments of 1,000.00 CNY, the first due
    /// 2026-01-31 (38 days past due on 2026-03-10, Asia/Shanghai).
    func openAccount(_ suffix: String = "1") async throws -> AccountsV1.Account {
        let platform = try await metadata(.platform)
        let debtor = try await client.unary(AccountsV1.AccountsService.createDebtor, AccountsV1.CreateDebtorRequest(
            requestId: "debtor-\(suffix)", debtor: AccountsV1.Debtor(
                externalId: "cust-\(suffix)", fullName: "李四", nationalId: "11010519491231002X", phone: "13812345678",
                address: TypeV1.Address(text: "上海市浦东新区", regionCode: "310115",
                                        location: TypeV1.GeoPoint(latitude: 31.2304, longitude: 121.4737)),
                timeZone: "Asia/Shanghai")),
            metadata: platform)
        let cny = { (amount: Int64) in TypeV1.Money(amountMinor: amount, currencyCode: "CNY") }
        return try await client.unary(AccountsV1.AccountsService.openAccount, AccountsV1.OpenAccountRequest(
            requestId: "account-\(suffix)", debtorId: debtor.id, externalId: "loan-\(suffix)", lenderId: "lender-1",
            product: .instalmentLoan, principal: cny(300_000), openedDate: TypeV1.Date(year: 2025, month: 12, day: 20),
            instalments: [(1, 31), (2, 28), (3, 31)].map {
                AccountsV1.OpeningInstalment(dueDate: TypeV1.Date(year: 2026, month: Int32($0.0), day: Int32($0.1)), amountDue: cny(100_000))
            }), metadata: platform)
    }

    func pay(_ account: AccountsV1.Account, _ amount: Int64, requestID: String, expectedVersion: Int64 = 0,
             externalID: String? = nil) async throws(RPCError) -> AccountsV1.Account {
        let platform = try? await metadata(.platform)
        return try await client.unary(AccountsV1.AccountsService.recordPayment, AccountsV1.RecordPaymentRequest(
            requestId: requestID, accountId: account.id, expectedVersion: expectedVersion,
            amount: TypeV1.Money(amountMinor: amount, currencyCode: "CNY"), receivedMs: clock.now - 3_600_000,
            externalId: externalID ?? "txn-\(requestID)"), metadata: platform ?? [:])
    }
}

@Suite("Accounts over gRPC: payments, holds, timeline", .serialized)
struct AccountsRPCTests {
    @Test("a payment is allocated oldest first, cures the stage, is idempotent and versioned", .timeLimit(.minutes(1)))
    func payments() async throws {
        let harness = try await AccountsHarness()
        let opened = try await harness.openAccount()
        #expect(opened.daysPastDue == 38)
        #expect(opened.stage == .remote)
        #expect(opened.version == 1)

        let paid = try await harness.pay(opened, 150_000, requestID: "pay-1", expectedVersion: 1)
        #expect(paid.version == 2)
        #expect(paid.instalments.map(\.status) == [.paid, .partiallyPaid, .unpaid])
        #expect(paid.payments.last?.allocations.map(\.amount?.amountMinor) == [100_000, 50_000])
        #expect(paid.daysPastDue == 10)  // now from 2026-02-28
        #expect(paid.stage == .remote)
        // The same request again: the first response, one payment.
        let retried = try await harness.pay(opened, 150_000, requestID: "pay-1", expectedVersion: 1)
        #expect(retried == paid)
        // A stale expected version: ABORTED, nothing changes.
        await #expect(throws: RPCError(code: .aborted, message: "stale version: expected 1, current 2")) {
            _ = try await harness.pay(opened, 1_000, requestID: "pay-2", expectedVersion: 1)
        }
        // The same lender transaction twice: ALREADY_EXISTS.
        let duplicate = await #expect(throws: RPCError.self) {
            _ = try await harness.pay(opened, 1_000, requestID: "pay-3", externalID: "txn-pay-1")
        }
        #expect(duplicate?.code == .alreadyExists)
        // Overpayment: refused, naming the rule and the outstanding amount.
        let over = await #expect(throws: RPCError.self) { _ = try await harness.pay(opened, 150_001, requestID: "pay-4") }
        #expect(over?.code == .failedPrecondition)
        #expect(over?.message == "payment-exceeds-outstanding: payment of 150001 exceeds the outstanding amount 150000 CNY")
        // Paying the rest of February leaves only March 31, not yet due: cured to CURRENT.
        let cured = try await harness.pay(opened, 50_000, requestID: "pay-5")
        #expect(cured.daysPastDue == 0)
        #expect(cured.stage == .current)
        #expect(cured.stageReason == "payment cured the account to 0 days past due")
        let settled = try await harness.pay(opened, 100_000, requestID: "pay-6")
        #expect(settled.stage == .settled)
        #expect(settled.outstandingAmount?.amountMinor == 0)
        #expect(settled.version == 4)  // refused calls changed nothing

        let platform = try await harness.metadata(.platform)
        for (field, request) in [
            ("amount", AccountsV1.RecordPaymentRequest(requestId: "bad-1", accountId: opened.id, receivedMs: 1_773_000_000_000, externalId: "x")),
            ("received_ms", AccountsV1.RecordPaymentRequest(requestId: "bad-2", accountId: opened.id, amount: .init(amountMinor: 1, currencyCode: "CNY"), externalId: "x")),
            ("amount.currency_code", AccountsV1.RecordPaymentRequest(requestId: "bad-3", accountId: opened.id, amount: .init(amountMinor: 1, currencyCode: "USD"), receivedMs: 1_773_000_000_000, externalId: "x")),
            ("external_id", AccountsV1.RecordPaymentRequest(requestId: "bad-4", accountId: opened.id, amount: .init(amountMinor: 1, currencyCode: "CNY"), receivedMs: 1_773_000_000_000)),
            ("account_id", AccountsV1.RecordPaymentRequest(requestId: "bad-5", accountId: "acc_x", amount: .init(amountMinor: 1, currencyCode: "CNY"), receivedMs: 1_773_000_000_000, externalId: "x")),
        ] {
            let error = await #expect(throws: RPCError.self) {
                _ = try await harness.client.unary(AccountsV1.AccountsService.recordPayment, request, metadata: platform)
            }
            #expect(error?.code == .invalidArgument, "\(field)")
            #expect(error?.message.hasPrefix(field + ":") == true, "\(field): \(error?.message ?? "")")
        }
        let compliance = try await harness.metadata(.compliance)
        let denied = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(AccountsV1.AccountsService.recordPayment,
                                               AccountsV1.RecordPaymentRequest(requestId: "r", accountId: opened.id), metadata: compliance)
        }
        #expect(denied?.code == .permissionDenied)
        await harness.close()
    }

    @Test("a payment that reaches a promise keeps it at once (PROMISE_KEPT under the payment's request); a smaller one counts toward it",
          .timeLimit(.minutes(1)))
    func paymentKeepsPromise() async throws {
        let harness = try await AccountsHarness()
        let opened = try await harness.openAccount()
        let platform = try await harness.metadata(.platform)
        let today = CivilDate.today(in: TimeZone(identifier: "Asia/Shanghai")!, nowMs: harness.clock.now)
        let promised = try await harness.client.unary(AccountsV1.AccountsService.recordPromiseToPay, AccountsV1.RecordPromiseToPayRequest(
            requestId: "ptp-1", accountId: opened.id, amount: TypeV1.Money(amountMinor: 80_000, currencyCode: "CNY"),
            promisedDate: today.adding(days: 3).proto), metadata: platform)
        #expect(promised.promises.map(\.status) == [.pending])

        // Payments count from the promise on (`pay` dates them an hour before the clock).
        harness.clock.set(harness.clock.now + 2 * 3_600_000)
        let partial = try await harness.pay(opened, 30_000, requestID: "pay-1")
        #expect(partial.promises.first?.status == .pending)
        #expect(partial.promises.first?.amountPaid?.amountMinor == 30_000)
        let kept = try await harness.pay(opened, 50_000, requestID: "pay-2")
        let promise = try #require(kept.promises.first)
        #expect(promise.status == .kept && promise.amountPaid?.amountMinor == 80_000 && promise.resolvedMs == harness.clock.now)
        let timeline = try await harness.client.unary(AccountsV1.AccountsService.getAccountTimeline, AccountsV1.GetAccountTimelineRequest(
            accountId: opened.id, eventTypes: [.promiseKept]), metadata: platform)
        #expect(timeline.events.map(\.requestId) == ["pay-2"])
        // The stage engine later finds nothing left to do for it.
        let evaluated = try await harness.client.unary(AccountsV1.AccountsService.evaluateStages,
                                                       AccountsV1.EvaluateStagesRequest(requestId: "eval-1"), metadata: platform)
        #expect(evaluated.promisesKept == 0 && evaluated.promisesBroken == 0)
        await harness.close()
    }

    @Test("holds: placed, repeated for one complaint without effect, released once; refused on settled accounts", .timeLimit(.minutes(1)))
    func holds() async throws {
        let harness = try await AccountsHarness()
        let account = try await harness.openAccount()
        let compliance = try await harness.metadata(.compliance)
        let place = AccountsV1.PlaceHoldRequest(requestId: "hold-1", accountId: account.id, reason: .complaint,
                                                note: "complaint filed", complaintId: "cmp_01J00000000000000000000000")
        let held = try await harness.client.unary(AccountsV1.AccountsService.placeHold, place, metadata: compliance)
        #expect(held.onHold)
        #expect(held.holds.count == 1)
        var again = place
        again.requestId = "hold-2"
        let unchanged = try await harness.client.unary(AccountsV1.AccountsService.placeHold, again, metadata: compliance)
        #expect(unchanged.holds.count == 1 && unchanged.version == held.version)
        let released = try await harness.client.unary(AccountsV1.AccountsService.releaseHold, AccountsV1.ReleaseHoldRequest(
            requestId: "release-1", accountId: account.id, note: "resolved", hold: .complaintId("cmp_01J00000000000000000000000")),
            metadata: compliance)
        #expect(!released.onHold)
        #expect(released.holds.first?.releasedBy?.role == .compliance)
        let twice = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(AccountsV1.AccountsService.releaseHold, AccountsV1.ReleaseHoldRequest(
                requestId: "release-2", accountId: account.id, hold: .holdId(held.holds[0].id)), metadata: compliance)
        }
        #expect(twice?.message.hasPrefix("hold-released:") == true)
        let missingComplaint = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(AccountsV1.AccountsService.placeHold, AccountsV1.PlaceHoldRequest(
                requestId: "hold-3", accountId: account.id, reason: .complaint), metadata: compliance)
        }
        #expect(missingComplaint?.message.hasPrefix("complaint_id:") == true)
        _ = try await harness.pay(account, 300_000, requestID: "settle")
        let closed = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(AccountsV1.AccountsService.placeHold, AccountsV1.PlaceHoldRequest(
                requestId: "hold-4", accountId: account.id, reason: .dispute), metadata: compliance)
        }
        #expect(closed?.message.hasPrefix("account-stage:") == true)
        await harness.close()
    }

    @Test("the timeline lists every event in order, pages, filters, and hides other agencies' accounts", .timeLimit(.minutes(1)))
    func timeline() async throws {
        let harness = try await AccountsHarness()
        let account = try await harness.openAccount()
        _ = try await harness.pay(account, 100_000, requestID: "p1")
        _ = try await harness.pay(account, 100_000, requestID: "p2")
        let platform = try await harness.metadata(.platform)
        var events: [AccountsV1.TimelineEvent] = []
        var token = ""
        repeat {
            let page = try await harness.client.unary(AccountsV1.AccountsService.getAccountTimeline, AccountsV1.GetAccountTimelineRequest(
                accountId: account.id, pageSize: 2, pageToken: token), metadata: platform)
            #expect(page.events.count <= 2)
            events += page.events
            token = page.nextPageToken
        } while !token.isEmpty
        // Each payment raised the risk score across a tier boundary.
        #expect(events.map(\.eventType) == [.accountOpened, .stageChanged, .paymentRecorded, .riskTierChanged,
                                             .paymentRecorded, .stageChanged, .riskTierChanged])
        #expect(events.map(\.sequence) == Array(1...7))
        if case .risk(let risk) = events.last?.details {
            // Nothing overdue, but both past instalments were paid late: 700 - 100 = 600, tier C.
            #expect(risk.score == 600 && risk.tier == .c, "\(risk)")
        } else {
            Issue.record("the last event is not a risk tier change")
        }
        if case .stageChange(let change) = events[5].details {
            #expect(change.fromStage == .remote && change.toStage == .current)
        } else {
            Issue.record("the last event is not a stage change")
        }
        let payments = try await harness.client.unary(AccountsV1.AccountsService.getAccountTimeline, AccountsV1.GetAccountTimelineRequest(
            accountId: account.id, eventTypes: [.paymentRecorded]), metadata: platform)
        #expect(payments.events.count == 2)
        let mismatched = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(AccountsV1.AccountsService.getAccountTimeline, AccountsV1.GetAccountTimelineRequest(
                accountId: account.id, pageSize: 1, pageToken: TimelinePageToken(accountID: account.id, filter: "", afterSequence: 1).text,
                eventTypes: [.paymentRecorded]), metadata: platform)
        }
        #expect(mismatched?.message.hasPrefix("page_token:") == true)
        let manager = try await harness.metadata(.agencyManager, agency: "agy_01J00000000000000000000000")
        let hidden = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(AccountsV1.AccountsService.getAccountTimeline,
                                               AccountsV1.GetAccountTimelineRequest(accountId: account.id), metadata: manager)
        }
        #expect(hidden?.code == .notFound)
        await harness.close()
    }

    @Test("ListAccounts pages in creation order, filters by stage, bucket, hold and agency, and binds tokens to filters", .timeLimit(.minutes(1)))
    func listAccounts() async throws {
        let harness = try await AccountsHarness()
        var opened: [AccountsV1.Account] = []
        for n in 1...5 { opened.append(try await harness.openAccount("\(n)")) }
        // Account 2 cured to CURRENT (February paid), account 3 on hold.
        _ = try await harness.pay(opened[1], 200_000, requestID: "cure-2")
        let compliance = try await harness.metadata(.compliance)
        _ = try await harness.client.unary(AccountsV1.AccountsService.placeHold, AccountsV1.PlaceHoldRequest(
            requestId: "hold-3", accountId: opened[2].id, reason: .hardship), metadata: compliance)
        let platform = try await harness.metadata(.platform)
        func list(_ request: AccountsV1.ListAccountsRequest) async throws -> [String] {
            var ids: [String] = []
            var request = request
            repeat {
                let page = try await harness.client.unary(AccountsV1.AccountsService.listAccounts, request, metadata: platform)
                #expect(page.accounts.count <= max(Int(request.pageSize), 0) || request.pageSize == 0)
                #expect(page.accounts.allSatisfy { $0.instalments.isEmpty }, "BASIC view by default")
                ids += page.accounts.map(\.id)
                request.pageToken = page.nextPageToken
            } while !request.pageToken.isEmpty
            return ids
        }
        #expect(try await list(.init(pageSize: 2)) == opened.map(\.id))
        #expect(try await list(.init(pageSize: 2, stages: [.remote])) == [opened[0], opened[2], opened[3], opened[4]].map(\.id))
        #expect(try await list(.init(buckets: [.current])) == [opened[1].id])
        #expect(try await list(.init(buckets: [.m2])) == [opened[0], opened[2], opened[3], opened[4]].map(\.id))
        #expect(try await list(.init(holdFilter: .onHold)) == [opened[2].id])
        #expect(try await list(.init(pageSize: 1, holdFilter: .notOnHold)).count == 4)
        #expect(try await list(.init(lenderId: "lender-1", externalId: "loan-4")) == [opened[3].id])
        #expect(try await list(.init(regionCode: "999999")).isEmpty)
        let full = try await harness.client.unary(AccountsV1.AccountsService.listAccounts, .init(pageSize: 1, view: .full), metadata: platform)
        #expect(full.accounts.first?.instalments.count == 3)
        let wrongToken = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(AccountsV1.AccountsService.listAccounts,
                                               .init(pageSize: 1, pageToken: full.nextPageToken, stages: [.remote]), metadata: platform)
        }
        #expect(wrongToken?.message.hasPrefix("page_token:") == true)
        let negative = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(AccountsV1.AccountsService.listAccounts, .init(pageSize: -1), metadata: platform)
        }
        #expect(negative?.message.hasPrefix("page_size:") == true)
        // An agency manager sees only its agency's accounts (none are assigned here).
        let manager = try await harness.metadata(.agencyManager, agency: "agy_01J00000000000000000000000")
        let managed = try await harness.client.unary(AccountsV1.AccountsService.listAccounts, .init(), metadata: manager)
        #expect(managed.accounts.isEmpty)
        await harness.close()
    }

    @Test("personal data: masked per role, full only for platform/compliance with a reason, every full read audited", .timeLimit(.minutes(1)))
    func personalData() async throws {
        let harness = try await AccountsHarness()
        let account = try await harness.openAccount()
        let debtorID = account.debtorId
        func read(_ role: Caller.Role, agency: String? = nil, reveal: Bool = false, reason: String = "") async throws(RPCError) -> AccountsV1.Debtor {
            let metadata = (try? await harness.metadata(role, agency: agency)) ?? [:]
            return try await harness.client.unary(AccountsV1.AccountsService.getDebtor, AccountsV1.GetDebtorRequest(
                debtorId: debtorID, revealPersonalData: reveal, accessReason: reason), metadata: metadata)
        }
        for role in [Caller.Role.platform, .compliance, .service] {
            let masked = try await read(role)
            #expect(masked.personalDataMasked && masked.phone == "138****5678" && masked.nationalId == "110***********002X", "\(role)")
        }
        let full = try await read(.platform, reveal: true, reason: "hotline identity check, ticket 7")
        #expect(!full.personalDataMasked && full.phone == "+8613812345678" && full.nationalId == "11010519491231002X")
        _ = try await read(.compliance, reveal: true, reason: "complaint investigation")
        let noReason = await #expect(throws: RPCError.self) { _ = try await read(.platform, reveal: true) }
        #expect(noReason?.message.hasPrefix("access_reason:") == true)
        let service = await #expect(throws: RPCError.self) { _ = try await read(.service, reveal: true, reason: "x") }
        #expect(service?.code == .permissionDenied)
        let manager = await #expect(throws: RPCError.self) {
            _ = try await read(.agencyManager, agency: "agy_01J00000000000000000000000")
        }
        #expect(manager?.code == .notFound, "another agency's debtor is not disclosed")
        let collector = await #expect(throws: RPCError.self) { _ = try await read(.collector) }
        #expect(collector?.code == .permissionDenied)
        // Exactly the two unmasked reads are in the audit log, with who, why and when.
        let audit = try await harness.database.read { db in
            try db.fetchAll(sql: "SELECT role, subject, debtor_id, reason, at_ms FROM personal_data_access ORDER BY id").map {
                (role: $0["role"] as String, subject: $0["subject"] as String, debtor: $0["debtor_id"] as String,
                 reason: $0["reason"] as String, at: $0["at_ms"] as Int64)
            }
        }
        #expect(audit.count == 2)
        #expect(audit.map(\.role) == ["ROLE_PLATFORM", "ROLE_COMPLIANCE"])
        #expect(audit.map(\.reason) == ["hotline identity check, ticket 7", "complaint investigation"])
        #expect(audit.allSatisfy { $0.debtor == debtorID && $0.at == harness.clock.now })
        #expect(audit.first?.subject == "test-platform")
        await harness.close()
    }
}
