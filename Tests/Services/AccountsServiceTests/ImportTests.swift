import Foundation
import Models
import RPC
import RPCWire
import ServiceAuth
import ServiceKit
import ServiceTestSupport
import Storage
import TestSupport
import Testing
@testable import AccountsService

private typealias A = AccountsV1.AccountsService

/// Bulk loading over HTTP/2 (ImportAccounts, ImportPayments): records keyed by the lender's
/// external ids, one result per record after its batch committed; the same records again
/// change nothing, changed ones update with a timeline event naming the import, bad ones are
/// rejected with their field path while the others load, and a cut stream resumed by
/// sending everything again creates nothing twice.
@Suite("Bulk loading: ImportAccounts and ImportPayments", .serialized, .timeLimit(.minutes(3)),
       .enabled(if: ServedService.Transport.current == .loopback,
                "bidirectional streams need a server reached over HTTP/2; the in-process transport serves unary and server-streaming calls"))
struct ImportTests {
    static func cny(_ amount: Int64) -> TypeV1.Money { TypeV1.Money(amountMinor: amount, currencyCode: "CNY") }

    static func record(_ n: Int, importID: String = "file-1", broken: Bool = false, phone: String = "13812345678",
                       monthly: Int64 = 100_000) -> AccountsV1.ImportAccountsRequest {
        var record = AccountsV1.ImportAccountsRequest()
        record.sequence = Int64(n)
        record.importId = importID
        record.debtor = AccountsV1.Debtor(
            externalId: "cust-\(n)", fullName: "李四 \(n)", nationalId: broken ? "110105194912310021" : "11010519491231002X", phone: phone,
            address: TypeV1.Address(text: "上海市浦东新区", regionCode: "310115", location: TypeV1.GeoPoint(latitude: 31.23, longitude: 121.47)),
            timeZone: "Asia/Shanghai")
        record.account = AccountsV1.ImportedAccount(
            externalId: "loan-\(n)", lenderId: "lender-1", product: .instalmentLoan, principal: cny(300_000),
            openedDate: TypeV1.Date(year: 2025, month: 12, day: 20),
            instalments: [(1, 31), (2, 28), (3, 31)].map {
                AccountsV1.OpeningInstalment(dueDate: TypeV1.Date(year: 2026, month: Int32($0.0), day: Int32($0.1)), amountDue: cny(monthly))
            })
        return record
    }

    /// Sends every record on one ImportAccounts stream and returns the results.
    static func importAll<Request: ProtoMessage>(_ harness: AccountsHarness, _ method: MethodDescriptor<Request, AccountsV1.ImportResult>,
                                   _ records: [Request], role: Caller.Role = .platform) async throws -> [AccountsV1.ImportResult] {
        let call = try await harness.client.streamingCall(method, metadata: try await harness.metadata(role))
        let reader = Task { () throws -> [AccountsV1.ImportResult] in
            var results: [AccountsV1.ImportResult] = []
            for try await result in call.responses { results.append(result) }
            return results
        }
        do {
            for record in records { try await call.send(record) }
        } catch {
            // The server may end the call first (a refused caller); the reader reports why.
        }
        call.finish()
        return try await reader.value
    }

    /// Every account, page by page.
    static func allAccounts(_ harness: AccountsHarness) async throws -> [AccountsV1.Account] {
        var accounts: [AccountsV1.Account] = []
        var token = ""
        repeat {
            let page = try await harness.client.unary(A.listAccounts, AccountsV1.ListAccountsRequest(pageSize: 500, pageToken: token),
                                                      metadata: try await harness.metadata(.platform))
            accounts += page.accounts
            token = page.nextPageToken
        } while !token.isEmpty
        return accounts
    }

    @Test("created, unchanged on the same records, updated when changed (timeline and trail name the import), rejected with the field")
    func outcomes() async throws {
        let harness = try await AccountsHarness()
        defer { Task { await harness.close() } }
        let first = try await Self.importAll(harness, A.importAccounts, [Self.record(1), Self.record(2), Self.record(3, broken: true)])
        #expect(first.map(\.sequence) == [1, 2, 3])
        #expect(first.map(\.outcome) == [.created, .created, .rejected])
        #expect(first[2].code == Int32(StatusCode.invalidArgument.rawValue))
        #expect(first[2].refusal?.violations.first?.field == "debtor.national_id")

        let again = try await Self.importAll(harness, A.importAccounts, [Self.record(1), Self.record(2), Self.record(3, broken: true)])
        #expect(again.map(\.outcome) == [.unchanged, .unchanged, .rejected])
        #expect(again.map(\.accountId) == first.map(\.accountId))
        let platform = try await harness.metadata(.platform)
        let before = try await harness.client.unary(A.getAccount, AccountsV1.GetAccountRequest(accountId: first[1].accountId), metadata: platform)
        #expect(before.version == 1)

        let changed = try await Self.importAll(harness, A.importAccounts, [
            Self.record(1, importID: "file-2", phone: "13987654321"), Self.record(2, importID: "file-2", monthly: 120_000),
        ])
        #expect(changed.map(\.outcome) == [.updated, .updated])
        let account = try await harness.client.unary(A.getAccount, AccountsV1.GetAccountRequest(accountId: first[1].accountId), metadata: platform)
        #expect(account.version == 2)
        #expect(account.instalments.map { $0.amountDue?.amountMinor } == [120_000, 120_000, 120_000])
        let timeline = try await harness.client.unary(A.getAccountTimeline, AccountsV1.GetAccountTimelineRequest(accountId: account.id),
                                                      metadata: platform)
        let imported = timeline.events.filter { $0.eventType == .accountImported }
        #expect(imported.count == 1)
        #expect(imported.first?.reason.contains("file-2") == true && imported.first?.reason.contains("instalments") == true)
        let trail = try await harness.client.unary(A.listDebtorChanges, AccountsV1.ListDebtorChangesRequest(debtorId: first[0].debtorId),
                                                   metadata: platform)
        #expect(trail.changes.map(\.fields) == [["phone"]])
        #expect(trail.changes.first?.requestId == "import:file-2:1")
    }

    @Test("one write transaction: a new debtor's two accounts share it, a repeated record is unchanged, a refused record whose new debtor was written leaves nothing; the batch again changes nothing")
    func oneTransaction() async throws {
        let harness = try await AccountsHarness()
        defer { Task { await harness.close() } }
        let key = try DataCipher.loadKey(path: harness.directory.appendingPathComponent("data.key").path, create: false).key
        let clock = harness.clock
        let service = AccountsService(database: harness.database, cipher: DataCipher(key: key), clock: ServiceClock { clock.now })
        let actor = TypeV1.Actor(role: .platform, subject: "test-platform")
        var second = Self.record(2)
        second.debtor = Self.record(1).debtor
        var repeated = Self.record(1)
        repeated.sequence = 3
        // A new debtor with the first record's account, which belongs to another debtor: its
        // debtor is written before the account is refused.
        var refused = Self.record(4)
        refused.account = Self.record(1).account
        let batch = [Self.record(1), second, repeated, refused]
        // The service's own path for a batch, handed the whole batch at once (over a stream
        // the batches depend on how fast records arrive).
        func write() async throws -> [AccountsV1.ImportResult] {
            let nowMs = clock.now
            let prepared = service.prepareAccountRecords(batch.map { ($0, nil) }, nowMs: nowMs, actor: actor)
            return try await service.writeAccountRecords(prepared, nowMs: nowMs, actor: actor)
        }
        let results = try await write()
        #expect(results.map(\.outcome) == [.created, .created, .unchanged, .rejected])
        #expect(results[0].debtorId == results[1].debtorId && results[0].accountId != results[1].accountId)
        #expect(results[2].accountId == results[0].accountId && results[2].debtorId == results[0].debtorId)
        #expect(results[3].refusal?.violations.first?.field == "account.external_id")
        #expect(try await harness.database.read { db in try db.fetchValue(Int.self, sql: "SELECT COUNT(*) FROM debtors") } == 1)
        // Each account's two opening events, in the order written.
        let subjects = try await harness.database.read { db in try db.fetchValues(String.self, sql: "SELECT subject FROM events ORDER BY seq") }
        #expect(subjects == [results[0].accountId, results[0].accountId, results[1].accountId, results[1].accountId].map { "accounts/\($0)" })
        let again = try await write()
        #expect(again.map(\.outcome) == [.unchanged, .unchanged, .unchanged, .rejected])
        #expect(again.map(\.accountId).prefix(3) == results.map(\.accountId).prefix(3))
        #expect(try await Self.allAccounts(harness).count == 2)
    }

    @Test("1 % broken records: exactly those rejected, with their sequence and field; the rest loaded")
    func brokenRecords() async throws {
        let harness = try await AccountsHarness()
        defer { Task { await harness.close() } }
        let records = (1...600).map { Self.record($0, broken: $0 % 100 == 0) }
        let results = try await Self.importAll(harness, A.importAccounts, records)
        #expect(results.count == 600)
        #expect(results.filter { $0.outcome == .rejected }.map(\.sequence) == [100, 200, 300, 400, 500, 600])
        #expect(results.filter { $0.outcome == .created }.count == 594)
        #expect(Set(results.filter { $0.outcome == .rejected }.compactMap { $0.refusal?.violations.first?.field }) == ["debtor.national_id"])
        #expect(try await Self.allAccounts(harness).count == 594)
    }

    @Test("a stream cut after some results, resumed by sending everything again, creates every account exactly once")
    func resumeAfterCut() async throws {
        let harness = try await AccountsHarness()
        defer { Task { await harness.close() } }
        let records = (1...400).map { Self.record($0) }
        let call = try await harness.client.streamingCall(A.importAccounts, metadata: try await harness.metadata(.platform))
        let sender = Task {
            for record in records { try await call.send(record) }
        }
        var acknowledged: [AccountsV1.ImportResult] = []
        for try await result in call.responses {
            acknowledged.append(result)
            if acknowledged.count >= 50 { break }
        }
        call.cancel()
        _ = await sender.result
        #expect(acknowledged.count >= 50)
        let resumed = try await Self.importAll(harness, A.importAccounts, records)
        #expect(resumed.count == 400)
        #expect(resumed.filter { $0.outcome == .rejected }.isEmpty)
        let createdTwice = Set(acknowledged.map(\.sequence)).intersection(resumed.filter { $0.outcome == .created }.map(\.sequence))
        #expect(createdTwice.isEmpty)
        let listed = try await Self.allAccounts(harness)
        #expect(listed.count == 400)
        #expect(Set(listed.map(\.externalId)).count == 400)
    }

    @Test("each record is answered once its batch committed, without waiting for more records or the half-close")
    func answeredWithoutHalfClose() async throws {
        let harness = try await AccountsHarness()
        defer { Task { await harness.close() } }
        let call = try await harness.client.streamingCall(A.importAccounts, metadata: try await harness.metadata(.platform))
        var responses = call.responses.makeAsyncIterator()
        for round in 1...3 {
            try await call.send(Self.record(round))
            let result = try #require(try await responses.next())
            #expect(result.sequence == Int64(round) && result.outcome == .created)
        }
        call.finish()
        #expect(try await responses.next() == nil)
    }

    @Test("only platform may import: PERMISSION_DENIED for service and agency managers")
    func roles() async throws {
        let harness = try await AccountsHarness()
        defer { Task { await harness.close() } }
        for role in [Caller.Role.service, .compliance] {
            await #expect(throws: RPCError.self) {
                _ = try await Self.importAll(harness, A.importAccounts, [Self.record(1)], role: role)
            }
            do {
                _ = try await Self.importAll(harness, A.importPayments, [AccountsV1.ImportPaymentsRequest()], role: role)
                Issue.record("\(role) imported payments")
            } catch let error as RPCError {
                #expect(error.code == .permissionDenied)
            }
        }
    }

    @Test("payments: recorded once by external id, the same again unchanged, another amount for the id rejected, an unknown account NOT_FOUND")
    func payments() async throws {
        let harness = try await AccountsHarness()
        defer { Task { await harness.close() } }
        _ = try await Self.importAll(harness, A.importAccounts, [Self.record(1)])
        func payment(_ sequence: Int64, _ external: String, amount: Int64, account: String = "loan-1") -> AccountsV1.ImportPaymentsRequest {
            AccountsV1.ImportPaymentsRequest(sequence: sequence, importId: "payments-1", lenderId: "lender-1", accountExternalId: account,
                                             externalId: external, amount: Self.cny(amount), receivedMs: harness.clock.now - 3_600_000)
        }
        let first = try await Self.importAll(harness, A.importPayments, [
            payment(1, "txn-1", amount: 50_000), payment(2, "txn-2", amount: 30_000), payment(3, "txn-3", amount: 1, account: "loan-404"),
        ])
        #expect(first.map(\.outcome) == [.created, .created, .rejected])
        #expect(first[2].code == Int32(StatusCode.notFound.rawValue))
        let again = try await Self.importAll(harness, A.importPayments, [payment(1, "txn-1", amount: 50_000), payment(2, "txn-2", amount: 31_000)])
        #expect(again.map(\.outcome) == [.unchanged, .rejected])
        #expect(again[1].code == Int32(StatusCode.alreadyExists.rawValue))
        let account = try await harness.client.unary(A.getAccount, AccountsV1.GetAccountRequest(accountId: first[0].accountId),
                                                     metadata: try await harness.metadata(.platform))
        #expect(account.payments.map(\.externalId) == ["txn-1", "txn-2"])
        #expect(account.outstandingAmount == Self.cny(220_000))
        #expect(account.payments.map { $0.amount?.amountMinor ?? 0 } == [50_000, 30_000])
    }
}
