import Compliance
import Foundation
import Models
import RPC
import RPCWire
import ServiceAuth
import Storage
import TestSupport
import Testing
import Validation
@testable import AccountsService

private typealias A = AccountsV1.AccountsService

/// A wrong address found at the door can be corrected: a WRONG_ADDRESS visit (as the visits
/// outbox delivers it) makes the debtor's address unverified, so the debtor's accounts are no
/// visit candidates, deferred or not; UpdateDebtor corrects the address (or the phone, the
/// emergency contacts, the time zone) with a reason, and the debtor's change trail shows who
/// changed what, when and why, never the values.
@Suite("Debtor corrections: UpdateDebtor, a wrong address found at a visit, the change trail", .serialized)
struct DebtorCorrectionTests {
    static let day: Int64 = 86_400_000
    static let xuhui = TypeV1.Address(text: "上海市徐汇区漕溪北路 88 号", regionCode: "310104", postalCode: "200030",
                                      location: TypeV1.GeoPoint(latitude: 31.1880, longitude: 121.4370))
    static let pudongCorrected = TypeV1.Address(text: "上海市浦东新区张杨路 500 号 1 楼", regionCode: "310115",
                                                location: TypeV1.GeoPoint(latitude: 31.2280, longitude: 121.5150))

    static func update(_ harness: AccountsHarness, _ debtorID: String, requestID: String, mask: [String], _ debtor: AccountsV1.Debtor,
                       reason: String = "address confirmed by the debtor on the hotline, ticket 5521", expectedVersion: Int64 = 0,
                       role: Caller.Role = .platform) async throws(RPCError) -> AccountsV1.Debtor {
        let metadata = (try? await harness.metadata(role, agency: role == .agencyManager ? "agy_01J00000000000000000000000" : nil)) ?? [:]
        return try await harness.client.unary(A.updateDebtor, AccountsV1.UpdateDebtorRequest(
            requestId: requestID, debtorId: debtorID, expectedVersion: expectedVersion, debtor: debtor, updateMask: mask, reason: reason),
            metadata: metadata)
    }

    static func debtor(_ harness: AccountsHarness, _ id: String, reveal: Bool = false) async throws -> AccountsV1.Debtor {
        try await harness.client.unary(A.getDebtor, AccountsV1.GetDebtorRequest(
            debtorId: id, revealPersonalData: reveal, accessReason: reveal ? "test reads the stored values" : ""),
            metadata: try await harness.metadata(.platform))
    }

    static func trail(_ harness: AccountsHarness, _ debtorID: String, role: Caller.Role = .compliance) async throws -> [AccountsV1.DebtorChange] {
        var changes: [AccountsV1.DebtorChange] = []
        var token = ""
        repeat {
            let page = try await harness.client.unary(A.listDebtorChanges, AccountsV1.ListDebtorChangesRequest(
                debtorId: debtorID, pageSize: 1, pageToken: token), metadata: try await harness.metadata(role))
            changes += page.changes
            token = page.nextPageToken
        } while !token.isEmpty
        return changes
    }

    static func list(_ harness: AccountsHarness, region: String = "310115") async throws -> AccountsV1.ListVisitCandidatesResponse {
        try await harness.client.unary(A.listVisitCandidates, AccountsV1.ListVisitCandidatesRequest(regionCode: region, includeDeferred: true),
                                       metadata: try await harness.metadata(.service))
    }

    static func account(_ harness: AccountsHarness, _ id: String) async throws -> AccountsV1.Account {
        try await harness.client.unary(A.getAccount, AccountsV1.GetAccountRequest(accountId: id), metadata: try await harness.metadata(.platform))
    }

    /// A second account of the debtor of `first`, brought to FIELD like the first.
    static func secondFieldAccount(_ harness: AccountsHarness, of first: AccountsV1.Account) async throws -> AccountsV1.Account {
        let cny = { (amount: Int64) in TypeV1.Money(amountMinor: amount, currencyCode: "CNY") }
        let opened = try await harness.client.unary(A.openAccount, AccountsV1.OpenAccountRequest(
            requestId: "second-\(first.id)", debtorId: first.debtorId, externalId: "loan-2-\(first.id)", lenderId: "lender-2",
            product: .cashLoan, principal: cny(200_000), openedDate: TypeV1.Date(year: 2025, month: 12, day: 25),
            instalments: [AccountsV1.OpeningInstalment(dueDate: TypeV1.Date(year: 2026, month: 1, day: 25), amountDue: cny(200_000))]),
            metadata: try await harness.metadata(.platform))
        let service = try await harness.metadata(.service)
        for attempt in 1...3 {
            _ = try await harness.client.unary(A.recordContactAttempt, AccountsV1.RecordContactAttemptRequest(
                requestId: "sms-2-\(attempt)", accountId: opened.id, channel: .sms, outcome: .smsUndelivered,
                attemptedMs: harness.clock.now + Int64(attempt) * 60_000 - 10 * 60_000), metadata: service)
        }
        _ = try await harness.client.unary(A.evaluateStages, AccountsV1.EvaluateStagesRequest(requestId: "eval-2-\(first.id)"),
                                           metadata: service)
        let account = try await Self.account(harness, opened.id)
        try #require(account.stage == .field, "\(account.stageReason)")
        return account
    }

    @Test("a WRONG_ADDRESS visit takes the debtor's accounts out of the candidates (not deferred: none at all) until UpdateDebtor corrects the address; the trail shows who and why",
          .timeLimit(.minutes(1)))
    func wrongAddressThenCorrection() async throws {
        let harness = try await AccountsHarness()
        harness.clock.set(harness.clock.now + 2 * 3_600_000)  // 10:00 in Shanghai
        let account = try await VisitCandidateDeferralTests.fieldAccount(harness, "w")
        let sibling = try await Self.secondFieldAccount(harness, of: account)
        let other = try await VisitCandidateDeferralTests.fieldAccount(harness, "x")
        #expect(Set(try await Self.list(harness).candidates.map(\.accountId)) == [account.id, sibling.id, other.id])

        // The crew finds that the debtor does not live there; visits' outbox tells accounts.
        // Both of the debtor's accounts leave the candidates, the one not visited too.
        let visit = try await VisitCandidateDeferralTests.visit(harness, account, outcome: .visitWrongAddress)
        var listed = try await Self.list(harness)
        #expect(listed.candidates.map(\.accountId) == [other.id])
        #expect(listed.deferred.isEmpty, "an unverified address is not a deferral: the accounts are no candidates at all")
        let unverified = try await Self.debtor(harness, account.debtorId)
        #expect(unverified.addressUnverified)
        #expect(unverified.wrongAddressFinding == AccountsV1.WrongAddressFinding(
            visitId: visit.visitID, accountId: account.id, visitedMs: visit.atMs, recordedMs: harness.clock.now))
        #expect(unverified.version == 2)
        // The outbox delivers again (a retry): the first response, nothing recorded twice.
        _ = try await harness.client.unary(A.recordContactAttempt, AccountsV1.RecordContactAttemptRequest(
            requestId: "\(visit.visitID).contact", accountId: account.id, channel: .visit, outcome: .visitWrongAddress,
            attemptedMs: visit.atMs, visitId: visit.visitID), metadata: try await harness.metadata(.service))
        #expect(try await Self.debtor(harness, account.debtorId).version == 2)
        var trail = try await Self.trail(harness, account.debtorId)
        #expect(trail.count == 1)
        let found = try #require(trail.first)
        #expect(found.sequence == 1 && found.kind == .addressFoundWrong && found.fields == ["address_unverified"])
        #expect(found.actor?.role == .service && found.actor?.subject == "test-service")
        #expect(found.visitId == visit.visitID && found.requestId == "\(visit.visitID).contact" && found.debtorVersion == 2)
        #expect(found.reason.contains(visit.visitID) && found.reason.contains("2026-03-10"), "\(found.reason)")

        // A week on, the visit's cool-down is over, but the address is still unverified.
        harness.clock.advance(7 * Self.day)
        listed = try await Self.list(harness)
        #expect(listed.candidates.map(\.accountId) == [other.id])
        #expect(listed.deferred.isEmpty)

        // The address is corrected: both accounts are candidates again, at the new address.
        let accountBefore = try await Self.account(harness, account.id)
        let corrected = try await Self.update(harness, account.debtorId, requestID: "fix-1", mask: ["address"],
                                              AccountsV1.Debtor(address: Self.pudongCorrected), expectedVersion: 2)
        #expect(!corrected.addressUnverified && corrected.wrongAddressFinding == nil)
        #expect(corrected.address == Self.pudongCorrected && corrected.version == 3 && corrected.updatedMs == harness.clock.now)
        #expect(corrected.personalDataMasked && corrected.phone == "138****5678" && corrected.nationalId == "110***********002X")
        listed = try await Self.list(harness)
        #expect(Set(listed.candidates.map(\.accountId)) == [account.id, sibling.id, other.id])
        #expect(listed.candidates.filter { $0.debtorId == account.debtorId }.allSatisfy { $0.address == Self.pudongCorrected })
        #expect(listed.deferred.isEmpty)
        // Same region, same zone: the accounts themselves did not change.
        #expect(try await Self.account(harness, account.id).version == accountBefore.version)

        // Who changed what, when and why: the visits service found it, the platform fixed it.
        trail = try await Self.trail(harness, account.debtorId)
        #expect(trail.map(\.sequence) == [1, 2])
        #expect(trail.map(\.kind) == [.addressFoundWrong, .updated])
        let fix = trail[1]
        #expect(fix.fields == ["address", "address_unverified"])
        #expect(fix.actor?.role == .platform && fix.actor?.subject == "test-platform")
        #expect(fix.reason == "address confirmed by the debtor on the hotline, ticket 5521")
        #expect(fix.requestId == "fix-1" && fix.debtorVersion == 3 && fix.changedMs == harness.clock.now)
        #expect(fix.visitId.isEmpty)
        #expect(try await Self.trail(harness, account.debtorId, role: .platform) == trail)
        await harness.close()
    }

    @Test("corrected right after the visit, the account is back in the ranking, deferred by the visit's cool-down (a visit counts whatever its outcome)",
          .timeLimit(.minutes(1)))
    func correctionWithinCoolDown() async throws {
        let harness = try await AccountsHarness()
        harness.clock.set(harness.clock.now + 2 * 3_600_000)
        let account = try await VisitCandidateDeferralTests.fieldAccount(harness, "c")
        _ = try await VisitCandidateDeferralTests.visit(harness, account, outcome: .visitWrongAddress)
        #expect(try await Self.list(harness).deferred.isEmpty)
        _ = try await Self.update(harness, account.debtorId, requestID: "fix-c", mask: ["address"], AccountsV1.Debtor(address: Self.pudongCorrected))
        let listed = try await Self.list(harness)
        #expect(listed.candidates.isEmpty)
        #expect(listed.deferred.map(\.accountId) == [account.id])
        #expect(listed.deferred.first?.reasons.map(\.ruleId) == ["visit-cool-down"])
        await harness.close()
    }

    @Test("a wrong-address visit that took place before the last correction leaves the address verified", .timeLimit(.minutes(1)))
    func lateDeliveryAfterCorrection() async throws {
        let harness = try await AccountsHarness()
        harness.clock.set(harness.clock.now + 2 * 3_600_000)
        let account = try await VisitCandidateDeferralTests.fieldAccount(harness, "l")
        // Corrected now; the visit (checked in 30 minutes ago, at the old address) arrives after.
        _ = try await Self.update(harness, account.debtorId, requestID: "fix-l", mask: ["address.location"],
                                  AccountsV1.Debtor(address: TypeV1.Address(location: TypeV1.GeoPoint(latitude: 31.24, longitude: 121.50))))
        _ = try await VisitCandidateDeferralTests.visit(harness, account, outcome: .visitWrongAddress)
        let debtor = try await Self.debtor(harness, account.debtorId)
        #expect(!debtor.addressUnverified)
        #expect(debtor.address?.text == "上海市浦东新区", "address.location changes only the coordinates")
        #expect(debtor.address?.location == TypeV1.GeoPoint(latitude: 31.24, longitude: 121.50))
        #expect(try await Self.trail(harness, account.debtorId).map(\.kind) == [.updated])
        await harness.close()
    }

    @Test("a new region and time zone move every account of the debtor: new version, DEBTOR_UPDATED, the new region's candidates",
          .timeLimit(.minutes(1)))
    func regionChangeMovesAccounts() async throws {
        let harness = try await AccountsHarness()
        harness.clock.set(harness.clock.now + 2 * 3_600_000)
        let first = try await VisitCandidateDeferralTests.fieldAccount(harness, "r")
        let second = try await Self.secondFieldAccount(harness, of: first)
        let firstBefore = try await Self.account(harness, first.id)
        #expect(Set(try await Self.list(harness).candidates.map(\.accountId)) == [first.id, second.id])
        #expect(try await Self.list(harness, region: "310104").candidates.isEmpty)

        let moved = try await Self.update(harness, first.debtorId, requestID: "move-1", mask: ["address", "time_zone"],
                                          AccountsV1.Debtor(address: Self.xuhui, timeZone: "Asia/Urumqi"),
                                          reason: "debtor moved, lender's address register, case 88")
        #expect(moved.address == Self.xuhui && moved.timeZone == "Asia/Urumqi")
        #expect(try await Self.list(harness).candidates.isEmpty)
        let xuhui = try await Self.list(harness, region: "310104")
        #expect(Set(xuhui.candidates.map(\.accountId)) == [first.id, second.id])
        #expect(xuhui.candidates.allSatisfy { $0.address == Self.xuhui && $0.timeZone == "Asia/Urumqi" })

        for id in [first.id, second.id] {
            let account = try await Self.account(harness, id)
            #expect(account.regionCode == "310104" && account.debtorTimeZone == "Asia/Urumqi")
            let timeline = try await harness.client.unary(A.getAccountTimeline, AccountsV1.GetAccountTimelineRequest(
                accountId: id, eventTypes: [.debtorUpdated]), metadata: try await harness.metadata(.platform))
            let event = try #require(timeline.events.first)
            #expect(timeline.events.count == 1)
            #expect(event.reason == "debtor \(first.debtorId) corrected: region 310115 → 310104; time zone Asia/Shanghai → Asia/Urumqi")
            #expect(event.actor?.role == .platform && event.requestId == "move-1")
            #expect(xuhui.candidates.first { $0.accountId == id }?.accountVersion == account.version)
        }
        #expect(try await Self.account(harness, first.id).version == firstBefore.version + 1)
        // ListAccounts by region follows the accounts.
        let inXuhui = try await harness.client.unary(A.listAccounts, AccountsV1.ListAccountsRequest(regionCode: "310104"),
                                                     metadata: try await harness.metadata(.platform))
        #expect(Set(inXuhui.accounts.map(\.id)) == [first.id, second.id])
        let trail = try await Self.trail(harness, first.debtorId)
        #expect(trail.map(\.fields) == [["address", "time_zone"]])
        #expect(trail.first?.reason == "debtor moved, lender's address register, case 88")
        await harness.close()
    }

    @Test("a new phone: a NUMBER_INVALID on the old one no longer counts; contacts keep their ids, new ones get theirs; masked out, full in",
          .timeLimit(.minutes(1)))
    func phoneAndEmergencyContacts() async throws {
        let harness = try await AccountsHarness()
        harness.clock.set(harness.clock.now + 2 * 3_600_000)
        let platform = try await harness.metadata(.platform)
        let created = try await harness.client.unary(A.createDebtor, AccountsV1.CreateDebtorRequest(
            requestId: "debtor-p", debtor: AccountsV1.Debtor(
                externalId: "cust-p", fullName: "王五", nationalId: "11010519491231002X", phone: "13812345678",
                address: Self.pudongCorrected, timeZone: "Asia/Shanghai",
                emergencyContacts: [AccountsV1.EmergencyContact(fullName: "王母", relationship: .parent, phone: "13700001111")],
                addressUnverified: true)),
            metadata: platform)
        #expect(!created.addressUnverified, "output only: ignored on CreateDebtor")
        let cny = { (amount: Int64) in TypeV1.Money(amountMinor: amount, currencyCode: "CNY") }
        let account = try await harness.client.unary(A.openAccount, AccountsV1.OpenAccountRequest(
            requestId: "account-p", debtorId: created.id, externalId: "loan-p", lenderId: "lender-1", product: .cashLoan,
            principal: cny(100_000), openedDate: TypeV1.Date(year: 2026, month: 1, day: 1),
            instalments: [AccountsV1.OpeningInstalment(dueDate: TypeV1.Date(year: 2026, month: 2, day: 1), amountDue: cny(100_000))]),
            metadata: platform)
        let invalid = try await harness.client.unary(A.recordContactAttempt, AccountsV1.RecordContactAttemptRequest(
            requestId: "call-1", accountId: account.id, channel: .phone, outcome: .numberInvalid, attemptedMs: harness.clock.now - 60_000),
            metadata: try await harness.metadata(.service))
        #expect(invalid.contactSummary?.debtorNumberInvalid == true)

        let keptID = created.emergencyContacts[0].id
        let updated = try await Self.update(harness, created.id, requestID: "phone-1", mask: ["phone", "emergency_contacts"],
            AccountsV1.Debtor(fullName: "not in the mask", phone: "13912345670", emergencyContacts: [
                AccountsV1.EmergencyContact(id: keptID, fullName: "王母", relationship: .parent, phone: "13700002222"),
                AccountsV1.EmergencyContact(fullName: "赵六", relationship: .friend, phone: "+8613600003333"),
            ]), reason: "new number given by the debtor at the branch, form 42", expectedVersion: 1)
        #expect(updated.fullName == "王五", "a field not in update_mask keeps its value")
        #expect(updated.phone == "139****5670" && updated.personalDataMasked)
        #expect(updated.emergencyContacts.map(\.phone) == ["137****2222", "136****3333"])
        #expect(updated.emergencyContacts[0].id == keptID)
        #expect(updated.emergencyContacts[1].id.hasPrefix("emc_") && updated.emergencyContacts[1].id != keptID)
        let full = try await Self.debtor(harness, created.id, reveal: true)
        #expect(full.phone == "+8613912345670")
        #expect(full.emergencyContacts.map(\.phone) == ["+8613700002222", "+8613600003333"])

        let after = try await Self.account(harness, account.id)
        #expect(after.contactSummary?.debtorNumberInvalid == false, "the invalid number was the old one")
        #expect(after.version == invalid.version + 1)
        let events = try await harness.client.unary(A.getAccountTimeline, AccountsV1.GetAccountTimelineRequest(
            accountId: account.id, eventTypes: [.debtorUpdated]), metadata: platform)
        #expect(events.events.map(\.reason) == ["debtor \(created.id) corrected: phone changed, contact counters recomputed"])
        #expect(try await Self.trail(harness, created.id).map(\.fields) == [["phone", "emergency_contacts"]])
        await harness.close()
    }

    @Test("UpdateDebtor: each bad field named, NOT_FOUND, ABORTED on a stale version, idempotent by request_id, platform only",
          .timeLimit(.minutes(1)))
    func validationVersionsRoles() async throws {
        let harness = try await AccountsHarness()
        let account = try await harness.openAccount()
        let id = account.debtorId
        let unknownContact = "emc_01J00000000000000000000000"
        let cases: [(field: String, mask: [String], debtor: AccountsV1.Debtor?, reason: String)] = [
            ("update_mask", [], AccountsV1.Debtor(), "r"),
            ("update_mask[0]", ["national_id"], AccountsV1.Debtor(), "r"),
            ("update_mask[1]", ["phone", "phone"], AccountsV1.Debtor(phone: "13912345670"), "r"),
            ("update_mask[1]", ["address", "address.location"], AccountsV1.Debtor(address: Self.xuhui), "r"),
            ("debtor", ["phone"], nil, "r"),
            ("reason", ["phone"], AccountsV1.Debtor(phone: "13912345670"), ""),
            ("debtor.phone", ["phone"], AccountsV1.Debtor(phone: "123"), "r"),
            ("debtor.address", ["address"], AccountsV1.Debtor(), "r"),
            ("debtor.address.region_code", ["address"], AccountsV1.Debtor(address: TypeV1.Address(text: "某地")), "r"),
            ("debtor.address.location.latitude", ["address.location"],
             AccountsV1.Debtor(address: TypeV1.Address(location: TypeV1.GeoPoint(latitude: 91, longitude: 121))), "r"),
            ("debtor.address.location", ["address.location"], AccountsV1.Debtor(address: TypeV1.Address(text: "x")), "r"),
            ("debtor.time_zone", ["time_zone"], AccountsV1.Debtor(timeZone: "Mars/Olympus_Mons"), "r"),
            ("debtor.emergency_contacts[0].id", ["emergency_contacts"], AccountsV1.Debtor(emergencyContacts: [
                AccountsV1.EmergencyContact(id: unknownContact, fullName: "某人", relationship: .friend, phone: "13700001111")]), "r"),
            ("debtor.emergency_contacts[0].relationship", ["emergency_contacts"], AccountsV1.Debtor(emergencyContacts: [
                AccountsV1.EmergencyContact(fullName: "某人", phone: "13700001111")]), "r"),
        ]
        for (index, bad) in cases.enumerated() {
            let error = await #expect(throws: RPCError.self) {
                _ = try await harness.client.unary(A.updateDebtor, AccountsV1.UpdateDebtorRequest(
                    requestId: "bad-\(index)", debtorId: id, debtor: bad.debtor, updateMask: bad.mask, reason: bad.reason),
                    metadata: try await harness.metadata(.platform))
            }
            #expect(error?.code == .invalidArgument, "\(bad.field)")
            #expect(error?.message.hasPrefix(bad.field + ":") == true, "\(bad.field): \(error?.message ?? "")")
        }
        for (field, request) in [
            ("request_id", AccountsV1.UpdateDebtorRequest(debtorId: id, debtor: .init(phone: "13912345670"), updateMask: ["phone"], reason: "r")),
            ("debtor_id", AccountsV1.UpdateDebtorRequest(requestId: "x", debtorId: "acc_01J00000000000000000000000",
                                                         debtor: .init(phone: "13912345670"), updateMask: ["phone"], reason: "r")),
            ("expected_version", AccountsV1.UpdateDebtorRequest(requestId: "x", debtorId: id, expectedVersion: -1,
                                                                debtor: .init(phone: "13912345670"), updateMask: ["phone"], reason: "r")),
        ] {
            let error = await #expect(throws: RPCError.self) {
                _ = try await harness.client.unary(A.updateDebtor, request, metadata: try await harness.metadata(.platform))
            }
            #expect(error?.message.hasPrefix(field + ":") == true, "\(field): \(error?.message ?? "")")
        }
        // Nothing was changed by any of them.
        #expect(try await Self.debtor(harness, id).version == 1)
        #expect(try await Self.trail(harness, id).isEmpty)

        let missing = await #expect(throws: RPCError.self) {
            _ = try await Self.update(harness, "dbt_01J00000000000000000000000", requestID: "nf", mask: ["time_zone"],
                                      AccountsV1.Debtor(timeZone: "Asia/Urumqi"))
        }
        #expect(missing?.code == .notFound)

        // Once, by request id: a retry returns the first response; the id with another body
        // is refused; a stale expected version is ABORTED.
        let first = try await Self.update(harness, id, requestID: "tz-1", mask: ["time_zone"], AccountsV1.Debtor(timeZone: "Asia/Urumqi"),
                                          expectedVersion: 1)
        #expect(first.version == 2)
        #expect(try await Self.update(harness, id, requestID: "tz-1", mask: ["time_zone"], AccountsV1.Debtor(timeZone: "Asia/Urumqi"),
                                      expectedVersion: 1) == first)
        let reused = await #expect(throws: RPCError.self) {
            _ = try await Self.update(harness, id, requestID: "tz-1", mask: ["time_zone"], AccountsV1.Debtor(timeZone: "Asia/Harbin"))
        }
        #expect(reused?.code == .invalidArgument && reused?.message.hasPrefix("request_id:") == true)
        let stale = await #expect(throws: RPCError.self) {
            _ = try await Self.update(harness, id, requestID: "tz-2", mask: ["time_zone"], AccountsV1.Debtor(timeZone: "Asia/Harbin"),
                                      expectedVersion: 1)
        }
        #expect(stale == RPCError(code: .aborted, message: "stale version: expected 1, current 2"))
        #expect(try await Self.trail(harness, id).count == 1)

        // Only the platform corrects; platform and compliance read the trail.
        for role in [Caller.Role.compliance, .agencyManager, .service, .collector] {
            let denied = await #expect(throws: RPCError.self) {
                _ = try await Self.update(harness, id, requestID: "role-\(role.rawValue)", mask: ["time_zone"],
                                          AccountsV1.Debtor(timeZone: "Asia/Harbin"), role: role)
            }
            #expect(denied?.code == .permissionDenied, "\(role)")
        }
        for role in [Caller.Role.agencyManager, .service, .collector] {
            let denied = await #expect(throws: RPCError.self) {
                _ = try await harness.client.unary(A.listDebtorChanges, AccountsV1.ListDebtorChangesRequest(debtorId: id),
                                                   metadata: try await harness.metadata(
                                                       role, agency: role == .agencyManager ? "agy_01J00000000000000000000000" : nil))
            }
            #expect(denied?.code == .permissionDenied, "\(role)")
        }
        // The trail's paging: a token is of one debtor only; an unknown debtor is NOT_FOUND.
        _ = try await Self.update(harness, id, requestID: "tz-3", mask: ["time_zone"], AccountsV1.Debtor(timeZone: "Asia/Shanghai"))
        let compliance = try await harness.metadata(.compliance)
        let page = try await harness.client.unary(A.listDebtorChanges, AccountsV1.ListDebtorChangesRequest(debtorId: id, pageSize: 1),
                                                  metadata: compliance)
        #expect(page.changes.map(\.sequence) == [1] && !page.nextPageToken.isEmpty)
        let other = try await harness.openAccount("2")
        let wrongToken = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(A.listDebtorChanges, AccountsV1.ListDebtorChangesRequest(
                debtorId: other.debtorId, pageToken: page.nextPageToken), metadata: compliance)
        }
        #expect(wrongToken?.code == .invalidArgument && wrongToken?.message.hasPrefix("page_token:") == true)
        let unknown = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(A.listDebtorChanges, AccountsV1.ListDebtorChangesRequest(
                debtorId: "dbt_01J00000000000000000000000"), metadata: compliance)
        }
        #expect(unknown?.code == .notFound)
        await harness.close()
    }

    @Test("corrected personal data stays sealed at rest; the trail keeps field names and reasons, no values", .timeLimit(.minutes(1)))
    func sealedAtRest() async throws {
        let harness = try await AccountsHarness()
        let account = try await harness.openAccount()
        _ = try await Self.update(harness, account.debtorId, requestID: "seal-1", mask: ["phone", "emergency_contacts"],
            AccountsV1.Debtor(phone: "13987650123", emergencyContacts: [
                AccountsV1.EmergencyContact(fullName: "钱七", relationship: .sibling, phone: "13698761234")]),
            reason: "sealed-at-rest-check-ticket-9931")
        let stored = try await harness.database.read { db in
            try db.fetchValues(Data.self, sql: "SELECT body FROM debtor_changes WHERE debtor_id = ?", arguments: [account.debtorId])
        }
        #expect(stored.count == 1)
        let change = try AccountsV1.DebtorChange(decoding: [UInt8](try #require(stored.first)))
        #expect(change.fields == ["phone", "emergency_contacts"])
        #expect(change.reason == "sealed-at-rest-check-ticket-9931")
        // What the database keeps on disk (the SQLite file and its WAL; on PostgreSQL every
        // table, index and WAL file): the reason is there in clear, the new numbers nowhere.
        let files = ["accounts.sqlite", "accounts.sqlite-wal"].map { harness.directory.appendingPathComponent($0) }
        #expect(try databaseFilesContain("sealed-at-rest-check-ticket-9931", sqliteFiles: files), "the scan sees the stored data")
        for number in ["13987650123", "13698761234"] {
            #expect(try !databaseFilesContain(number, sqliteFiles: files), "\(number) is stored in clear")
        }
        await harness.close()
    }
}
