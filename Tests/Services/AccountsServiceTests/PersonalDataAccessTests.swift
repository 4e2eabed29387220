import Foundation
import Models
import RPC
import RPCWire
import ServiceTestSupport
import Storage
import Testing
@testable import AccountsService

private typealias A = AccountsV1.AccountsService

/// The compliance officer's read of who saw which debtor's unmasked personal data: every
/// revealing GetDebtor is listed with its reader, fields, time and reason; masked reads are
/// not; the filters combine; pages follow one query; only compliance may ask.
@Suite("ListPersonalDataAccess: the audit of unmasked personal data", .serialized)
struct PersonalDataAccessTests {
    static func reveal(_ harness: AccountsHarness, _ debtorId: String, role: Caller.Role, reason: String) async throws {
        _ = try await harness.client.unary(A.getDebtor, AccountsV1.GetDebtorRequest(
            debtorId: debtorId, revealPersonalData: true, accessReason: reason), metadata: try await harness.metadata(role))
    }

    static func list(_ harness: AccountsHarness, _ request: AccountsV1.ListPersonalDataAccessRequest,
                     role: Caller.Role = .compliance) async throws(RPCError) -> AccountsV1.ListPersonalDataAccessResponse {
        let metadata = (try? await harness.metadata(role, agency: role == .agencyManager ? "agy_01JA0000000000000000000000" : nil)) ?? [:]
        return try await harness.client.unary(A.listPersonalDataAccess, request, metadata: metadata)
    }

    /// Every page of `request`, `pageSize` at a time.
    static func all(_ harness: AccountsHarness, _ request: AccountsV1.ListPersonalDataAccessRequest,
                    pageSize: Int32 = 100) async throws -> [AccountsV1.PersonalDataAccess] {
        var request = request
        request.pageSize = pageSize
        var found: [AccountsV1.PersonalDataAccess] = []
        repeat {
            let page = try await list(harness, request)
            found += page.accesses
            request.pageToken = page.nextPageToken
        } while !request.pageToken.isEmpty
        return found
    }

    @Test("revealing reads are listed oldest first with reader, fields, time and reason; filters combine; pages; roles",
          .timeLimit(.minutes(1)))
    func audit() async throws {
        let harness = try await AccountsHarness()
        let first = try await harness.openAccount("1")
        let second = try await harness.openAccount("2")
        let start = harness.clock.now

        try await Self.reveal(harness, first.debtorId, role: .platform, reason: "hotline call 7781: caller verified")
        harness.clock.advance(60_000)
        try await Self.reveal(harness, first.debtorId, role: .compliance, reason: "complaint C-12 review")
        harness.clock.advance(60_000)
        try await Self.reveal(harness, second.debtorId, role: .platform, reason: "dispute D-3 evidence")
        // Masked reads reveal nothing and are not in the audit.
        _ = try await harness.client.unary(A.getDebtor, AccountsV1.GetDebtorRequest(debtorId: first.debtorId),
                                           metadata: try await harness.metadata(.platform))
        // A read by an agency's staff as a future role could make it (written as GetDebtor does).
        try await harness.database.write { db in
            let key = try DataCipher.loadKey(path: harness.directory.appendingPathComponent("data.key").path, create: false).key
            try AccountsStore(database: harness.database, cipher: DataCipher(key: key), configuration: .defaults)
                .auditPersonalDataRead(db, debtorID: second.debtorId,
                                       actor: TypeV1.Actor(role: .agencyManager, subject: "mgr-7", agencyId: "agy_01JA0000000000000000000000"),
                                       fields: ["phone"], reason: "visit planning", atMs: start + 180_000)
        }

        let everything = try await Self.all(harness, .init())
        #expect(everything.map(\.reason) == ["hotline call 7781: caller verified", "complaint C-12 review", "dispute D-3 evidence",
                                             "visit planning"])
        #expect(everything.map(\.sequence) == everything.map(\.sequence).sorted())
        let firstRead = try #require(everything.first)
        #expect(firstRead.debtorId == first.debtorId)
        #expect(firstRead.actor == TypeV1.Actor(role: .platform, subject: "test-platform"))
        #expect(firstRead.fields == ["national_id", "phone", "emergency_contacts.phone"])
        #expect(firstRead.accessedMs == start)
        #expect(everything[1].actor?.role == .compliance)
        #expect(everything[1].accessedMs == start + 60_000)
        // One at a time: the same reads.
        #expect(try await Self.all(harness, .init(), pageSize: 1) == everything)

        #expect(try await Self.all(harness, .init(debtorId: first.debtorId)).map(\.reason)
                == ["hotline call 7781: caller verified", "complaint C-12 review"])
        #expect(try await Self.all(harness, .init(actorSubject: "test-platform")).map(\.reason)
                == ["hotline call 7781: caller verified", "dispute D-3 evidence"])
        #expect(try await Self.all(harness, .init(debtorId: second.debtorId, actorSubject: "test-platform")).map(\.reason)
                == ["dispute D-3 evidence"])
        #expect(try await Self.all(harness, .init(agencyId: "agy_01JA0000000000000000000000")).map(\.reason) == ["visit planning"])
        #expect(try await Self.all(harness, .init(startMs: start + 60_000, endMs: start + 120_000)).map(\.reason)
                == ["complaint C-12 review"])
        #expect(try await Self.all(harness, .init(startMs: start + 120_000)).count == 2)
        #expect(try await Self.all(harness, .init(actorSubject: "nobody")).isEmpty)

        // A page token belongs to its query.
        let page = try await Self.list(harness, .init(pageSize: 1))
        let refusals: [(AccountsV1.ListPersonalDataAccessRequest, String)] = [
            (.init(debtorId: first.debtorId, pageSize: 1, pageToken: page.nextPageToken), "page_token: not a token of this query"),
            // Bad filters name their field.
            (.init(startMs: start, endMs: start), "end_ms: must be after start_ms"),
            (.init(debtorId: "acc_1"), "debtor_id: "),
            (.init(agencyId: "agency-7"), "agency_id: "),
            (.init(startMs: -5), "start_ms: "),
        ]
        for (request, message) in refusals {
            do {
                _ = try await Self.list(harness, request)
                Issue.record("accepted \(request)")
            } catch {
                #expect(error.code == .invalidArgument && error.message.hasPrefix(message), "\(error)")
            }
        }
        // Compliance only.
        for role in [Caller.Role.platform, .agencyManager, .service] {
            do {
                _ = try await Self.list(harness, .init(), role: role)
                Issue.record("\(role) listed the audit")
            } catch {
                #expect(error.code == .permissionDenied, "\(role)")
            }
        }
        await harness.close()
    }

    @Test("a subject-access export streams the debtor unmasked, accounts, timelines, contacts, changes and the access log, and records itself",
          .timeLimit(.minutes(1)))
    func export() async throws {
        let harness = try await AccountsHarness()
        harness.clock.advance(2 * 3_600_000)  // 10:00 in Shanghai: within contact hours
        let opened = try await harness.openAccount("1")
        let other = try await harness.openAccount("2")
        _ = try await harness.pay(opened, 50_000, requestID: "pay-export")
        _ = try await harness.client.unary(A.recordContactAttempt, AccountsV1.RecordContactAttemptRequest(
            requestId: "call-export", accountId: opened.id, channel: .sms, outcome: .smsDelivered,
            attemptedMs: harness.clock.now - 60_000), metadata: try await harness.metadata(.service))
        try await Self.reveal(harness, opened.debtorId, role: .platform, reason: "hotline call 7781")
        harness.clock.advance(60_000)

        let compliance = try await harness.metadata(.compliance)
        let request = AccountsV1.ExportDebtorRecordRequest(debtorId: opened.debtorId, accessReason: "subject access request SAR-114")
        let parts = try await harness.client.serverStreamingCollect(A.exportDebtorRecord, request, metadata: compliance)
        let kinds = parts.map { part -> String in
            switch part.part {
            case .debtor: "debtor"
            case .account: "account"
            case .timelineEvent: "event"
            case .contactAttempt: "contact"
            case .debtorChange: "change"
            case .personalDataAccess: "access"
            case nil: "none"
            }
        }
        // In the documented order: debtor, accounts, events, contacts, changes, accesses.
        let order = ["debtor", "account", "event", "contact", "change", "access"]
        #expect(kinds == kinds.sorted { order.firstIndex(of: $0)! < order.firstIndex(of: $1)! }, "\(kinds)")
        guard case .debtor(let debtor)? = parts.first?.part else {
            Issue.record("the first part is not the debtor: \(kinds)")
            return
        }
        #expect(!debtor.personalDataMasked && debtor.nationalId == "11010519491231002X" && debtor.phone.hasSuffix("13812345678"), "\(debtor.phone)")
        // The other debtor's account is not part of it.
        let accounts = parts.compactMap { if case .account(let account)? = $0.part { account } else { nil } }
        #expect(accounts.map(\.id) == [opened.id])
        #expect(accounts.first?.payments.count == 1)
        #expect(!accounts.contains { $0.id == other.id })
        let events = parts.compactMap { if case .timelineEvent(let event)? = $0.part { event } else { nil } }
        let timeline = try await harness.client.unary(A.getAccountTimeline, AccountsV1.GetAccountTimelineRequest(accountId: opened.id, pageSize: 1000),
                                                      metadata: compliance)
        #expect(events == timeline.events)
        let contacts = parts.compactMap { if case .contactAttempt(let attempt)? = $0.part { attempt } else { nil } }
        #expect(contacts.map(\.requestId) == ["call-export"])
        let accesses = parts.compactMap { if case .personalDataAccess(let access)? = $0.part { access } else { nil } }
        #expect(accesses.map(\.reason) == ["hotline call 7781", "subject access request SAR-114"])
        #expect(accesses.last?.fields == ["export"] && accesses.last?.actor?.role == .compliance && accesses.last?.accessedMs == harness.clock.now)
        // The export is in the audit for anyone who reviews it later.
        #expect(try await Self.all(harness, .init(debtorId: opened.debtorId)).last?.fields == ["export"])

        for (request, code) in [(AccountsV1.ExportDebtorRecordRequest(debtorId: opened.debtorId), StatusCode.invalidArgument),
                                (.init(debtorId: "dbt_01J00000000000000000000000", accessReason: "x"), .notFound)] {
            do {
                _ = try await harness.client.serverStreamingCollect(A.exportDebtorRecord, request, metadata: compliance)
                Issue.record("exported \(request)")
            } catch {
                #expect(error.code == code, "\(error)")
            }
        }
        for role in [Caller.Role.platform, .service] {
            let metadata = try await harness.metadata(role)
            do {
                _ = try await harness.client.serverStreamingCollect(A.exportDebtorRecord, request, metadata: metadata)
                Issue.record("\(role) exported")
            } catch {
                #expect(error.code == .permissionDenied, "\(role)")
            }
        }
        await harness.close()
    }
}
