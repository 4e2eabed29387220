import Foundation
import Logging
import Models
import RPC
import RPCWire
import ServiceAuth
import ServiceKit
import ServiceTestSupport
import Storage
import TestSupport
import Testing
import Validation
@testable import AccountsService

private typealias A = AccountsV1.AccountsService

/// GetAccount keeps decoded accounts (StoredAccountCache), checked against the stored bytes on
/// every read: its answers must be the answers of a service that decodes every time, whatever
/// changes the row — this service's own writes, a write behind its back (another replica), the
/// contact counters alone, or the clock moving to another day.
@Suite("GetAccount's memo of decoded accounts", .serialized)
struct StoredAccountCacheTests {
    static func account(_ id: String) -> AccountsV1.Account {
        AccountsV1.Account(id: id, debtorId: "dbt-1", externalId: "loan-\(id)", lenderId: "lender-1", debtorTimeZone: "Asia/Shanghai",
                           version: 1)
    }

    @Test("the same bytes decode once; other bytes decode afresh; the bound holds; 0 turns it off")
    func entries() throws {
        let cache = StoredAccountCache(capacity: 4)
        let first = try Self.account("acc-1").encode()
        let a = try first.withUnsafeBytes { try cache.entry(id: "acc-1", bytes: $0) }
        let b = try first.withUnsafeBytes { try cache.entry(id: "acc-1", bytes: $0) }
        #expect(a.body.withUnsafeBufferPointer { $0.baseAddress } == b.body.withUnsafeBufferPointer { $0.baseAddress })
        #expect(cache.count == 1)
        #expect(a.zone.identifier == "Asia/Shanghai")

        var changed = Self.account("acc-1")
        changed.lenderId = "lender-2"
        let c = try changed.encode().withUnsafeBytes { try cache.entry(id: "acc-1", bytes: $0) }
        #expect(c.account.lenderId == "lender-2")
        #expect(cache.count == 1)

        // A refresh is remembered only with the body it was computed from.
        let refreshed = StoredAccountCache.Refreshed(dayNumber: 20_000, contacts: ContactStats(), full: try EncodedResponse(changed),
                                                     basic: try EncodedResponse(changed))
        cache.remember(refreshed, id: "acc-1", body: a.body)
        #expect(try changed.encode().withUnsafeBytes { try cache.entry(id: "acc-1", bytes: $0) }.refreshed == nil)
        cache.remember(refreshed, id: "acc-1", body: c.body)
        #expect(try changed.encode().withUnsafeBytes { try cache.entry(id: "acc-1", bytes: $0) }.refreshed?.dayNumber == 20_000)

        for index in 0..<20 {
            let bytes = try Self.account("acc-\(index)").encode()
            _ = try bytes.withUnsafeBytes { try cache.entry(id: "acc-\(index)", bytes: $0) }
            #expect(cache.count <= 4)
        }

        let off = StoredAccountCache(capacity: 0)
        let decoded = try first.withUnsafeBytes { try off.entry(id: "acc-1", bytes: $0) }
        #expect(decoded.account.externalId == "loan-acc-1")
        #expect(off.count == 0)
    }

    /// The answer without the instant of its risk assessment (the memo reports the first
    /// assessment of the day; a service without it assesses at every read).
    static func comparable(_ account: AccountsV1.Account) -> AccountsV1.Account {
        var account = account
        account.risk?.assessedMs = 0
        return account
    }

    @Test("the batched read (GetAccount's on PostgreSQL): a row per key as asked, duplicates and missing keys included, in order; the same through the VALUES list a key with a comma takes")
    func batchedRead() async throws {
        let harness = try await AccountsHarness()
        let first = try await harness.openAccount("1")
        let second = try await harness.openAccount("2")
        let store = AccountsStore(database: harness.database, cipher: DataCipher(key: try DataCipher.loadKey(
            path: harness.directory.appendingPathComponent("data.key").path, create: false).key))
        let cache = StoredAccountCache(capacity: 16)
        let missing = "acc_00000000000000000000000000"
        for ids in [[second.id, missing, first.id, second.id, first.id], [first.id, "acc_with,comma", second.id]] {
            let read = try await harness.database.readPoint { db in try store.accountsForRead(db, ids: ids, cache: cache) }
            #expect(read.count == ids.count)
            for (id, result) in zip(ids, read) {
                if id == first.id || id == second.id {
                    let entry = try #require(try result?.get()).entry
                    #expect(entry.account.id == id, "\(ids)")
                } else {
                    #expect(result == nil, "\(id)")
                }
            }
        }
        await harness.close()
    }

    @Test("answers equal a service that decodes every read, across writes, foreign writes, counters and days",
          .timeLimit(.minutes(2)))
    func sameAnswers() async throws {
        let harness = try await AccountsHarness()  // the default: the memo on
        var uncached = AccountsService.Configuration()
        uncached.readCacheEntries = 0
        let cipher = DataCipher(key: try DataCipher.loadKey(path: harness.directory.appendingPathComponent("data.key").path, create: false).key)
        let clock = harness.clock
        let signing = try SigningKey.generate()
        let issuer = TokenIssuer(key: signing)
        var logger = Logger(label: "doorstep.test.accounts.uncached")
        logger.logLevel = .critical
        let reference = try await ServedService.start(
            AccountsService(database: harness.database, cipher: cipher, configuration: uncached, clock: ServiceClock { clock.now }).definition,
            authenticator: try await TokenVerifier(key: signing), logger: logger)
        let referenceMetadata: Metadata = ["authorization": "Bearer \(try await issuer.token(for: Caller(role: .platform, subject: "test-platform")))"]

        let opened = try await harness.openAccount()
        let read = { (view: AccountsV1.AccountView) async throws -> (AccountsV1.Account, AccountsV1.Account) in
            let request = AccountsV1.GetAccountRequest(accountId: opened.id, view: view)
            return (try await harness.client.unary(A.getAccount, request, metadata: try await harness.metadata(.platform)),
                    try await reference.client.unary(A.getAccount, request, metadata: referenceMetadata))
        }
        func expectSame(_ label: String) async throws -> AccountsV1.Account {
            for view in [AccountsV1.AccountView.unspecified, .basic] {
                let (cached, fresh) = try await read(view)
                #expect(Self.comparable(cached) == Self.comparable(fresh), "\(label), view \(view)")
            }
            return try await read(.unspecified).0
        }

        let first = try await expectSame("opened")
        #expect(first.daysPastDue == 38)
        // Later the same day: the memo answers, with the assessment it made first.
        clock.advance(3_600_000)
        let later = try await expectSame("an hour later")
        #expect(later.risk?.assessedMs == first.risk?.assessedMs)
        #expect(try await read(.unspecified).1.risk?.assessedMs == clock.now)

        // This service's own write.
        let paid = try await harness.pay(opened, 150_000, requestID: "pay-memo")
        let afterPayment = try await expectSame("after a payment")
        #expect(afterPayment.payments.count == 1)
        #expect(afterPayment.version == paid.version)
        #expect(afterPayment.daysPastDue == paid.daysPastDue)

        // A write behind the service's back (another replica, a restore): the bytes differ.
        try await harness.database.write { db in
            guard let body = try db.fetchValue(Data.self, sql: "SELECT body FROM accounts WHERE id = ?", arguments: [opened.id]) else { return }
            var stored = try AccountsV1.Account(decoding: [UInt8](body))
            stored.lenderId = "lender-corrected"
            _ = try db.execute(sql: "UPDATE accounts SET body = ? WHERE id = ?", arguments: [Data(try stored.encode()), opened.id])
        }
        #expect(try await expectSame("after a foreign write").lenderId == "lender-corrected")

        // The contact counters alone (they live beside the body): risk is recomputed.
        _ = try await harness.database.write { db in
            try db.execute(sql: "UPDATE accounts SET remote_attempts = remote_attempts + 6 WHERE id = ?", arguments: [opened.id])
        }
        _ = try await expectSame("after the counters moved")

        // Another day: days past due move.
        clock.advance(2 * 86_400_000)
        #expect(try await expectSame("two days later").daysPastDue == afterPayment.daysPastDue + 2)
        await reference.close()
        await harness.close()
    }
}
