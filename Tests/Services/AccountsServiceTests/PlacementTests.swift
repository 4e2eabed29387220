import Foundation
import Models
import RPC
import RPCWire
import ServiceAuth
import ServiceTestSupport
import Storage
import TestSupport
import Testing
import Validation
@testable import AccountsService

private typealias A = AccountsV1.AccountsService

/// Placements over gRPC: an account placed with an agency for a period and a reason, at most
/// one active placement per account, recalled early with a reason or expiring by itself, the
/// history on the timeline, and an agency manager seeing exactly the accounts placed with its
/// agency (GetAccount, ListAccounts, ListVisitCandidates).
@Suite("Placements: PlaceAccounts, RecallAccounts, expiry, what an agency manager sees", .serialized)
struct PlacementTests {
    static let day: Int64 = 86_400_000
    static let agencyA = "agy_01JA0000000000000000000000"
    static let agencyB = "agy_01JB0000000000000000000000"

    static func place(_ harness: AccountsHarness, _ ids: [String], agency: String, until: TypeV1.Date, requestID: String,
                      reason: String = "Q1 field contract, batch 7", role: Caller.Role = .platform) async throws(RPCError)
        -> AccountsV1.PlaceAccountsResponse {
        let metadata = (try? await harness.metadata(role, agency: role == .agencyManager ? agency : nil)) ?? [:]
        return try await harness.client.unary(A.placeAccounts, AccountsV1.PlaceAccountsRequest(
            requestId: requestID, agencyId: agency, accounts: ids.map { AccountsV1.PlacementTarget(accountId: $0) }, endDate: until,
            reason: reason), metadata: metadata)
    }

    static func recall(_ harness: AccountsHarness, _ ids: [String], agency: String = "", requestID: String,
                       reason: String = "the agency asked to hand the accounts back") async throws(RPCError) -> AccountsV1.RecallAccountsResponse {
        let metadata = (try? await harness.metadata(.platform)) ?? [:]
        return try await harness.client.unary(A.recallAccounts, AccountsV1.RecallAccountsRequest(
            requestId: requestID, accounts: ids.map { AccountsV1.PlacementTarget(accountId: $0) }, agencyId: agency, reason: reason),
            metadata: metadata)
    }

    static func account(_ harness: AccountsHarness, _ id: String, agency: String? = nil) async throws(RPCError) -> AccountsV1.Account {
        let metadata = (try? await harness.metadata(agency == nil ? .platform : .agencyManager, agency: agency)) ?? [:]
        return try await harness.client.unary(A.getAccount, AccountsV1.GetAccountRequest(accountId: id), metadata: metadata)
    }

    /// Every account an agency manager of `agency` lists (all pages).
    static func listed(_ harness: AccountsHarness, agency: String) async throws -> Set<String> {
        var ids: Set<String> = []
        var token = ""
        repeat {
            let page = try await harness.client.unary(A.listAccounts, AccountsV1.ListAccountsRequest(pageSize: 2, pageToken: token),
                                                      metadata: try await harness.metadata(.agencyManager, agency: agency))
            ids.formUnion(page.accounts.map(\.id))
            token = page.nextPageToken
        } while !token.isEmpty
        return ids
    }

    /// The region's candidates as an agency manager of `agency` sees them (or the platform
    /// asking for the agency's).
    static func candidates(_ harness: AccountsHarness, agency: String, asPlatform: Bool = false) async throws -> Set<String> {
        let metadata = asPlatform ? try await harness.metadata(.platform) : try await harness.metadata(.agencyManager, agency: agency)
        let page = try await harness.client.unary(A.listVisitCandidates, AccountsV1.ListVisitCandidatesRequest(
            regionCode: "310115", pageSize: 100, agencyId: asPlatform ? agency : ""), metadata: metadata)
        return Set(page.candidates.map(\.accountId))
    }

    static func timeline(_ harness: AccountsHarness, _ id: String) async throws -> [AccountsV1.TimelineEvent] {
        try await harness.client.unary(A.getAccountTimeline, AccountsV1.GetAccountTimelineRequest(
            accountId: id, eventTypes: [.accountPlaced, .accountRecalled, .placementExpired]),
            metadata: try await harness.metadata(.platform)).events
    }

    @Test("placed by hand with a reason; one active placement per account; an agency manager sees exactly its placements; recalled with a reason; the history on the timeline",
          .timeLimit(.minutes(1)))
    func placeAndRecall() async throws {
        let harness = try await AccountsHarness()
        harness.clock.set(harness.clock.now + 2 * 3_600_000)  // 10:00 in Shanghai, 2026-03-10
        let a = try await VisitCandidateDeferralTests.fieldAccount(harness, "a")
        let b = try await VisitCandidateDeferralTests.fieldAccount(harness, "b")
        let c = try await VisitCandidateDeferralTests.fieldAccount(harness, "c")
        let until = TypeV1.Date(year: 2026, month: 4, day: 30)

        let placed = try await Self.place(harness, [a.id, b.id], agency: Self.agencyA, until: until, requestID: "place-1")
        #expect(placed.placements.map(\.accountId) == [a.id, b.id])
        for placement in placed.placements {
            #expect(placement.state == .active && placement.agencyId == Self.agencyA && placement.endDate == until)
            #expect(placement.startDate == TypeV1.Date(year: 2026, month: 3, day: 10))
            #expect(placement.reason == "Q1 field contract, batch 7" && placement.requestId == "place-1")
            #expect(placement.placedBy?.role == .platform && placement.id.hasPrefix("plc_"))
        }
        let read = try await Self.account(harness, a.id)
        #expect(read.assignedAgencyId == Self.agencyA && read.placement == placed.placements[0])
        #expect(read.version == a.version + 1)
        // The same request again: the first response, nothing placed twice.
        #expect(try await Self.place(harness, [a.id, b.id], agency: Self.agencyA, until: until, requestID: "place-1") == placed)
        #expect(try await Self.account(harness, a.id).version == a.version + 1)

        // Only one active placement: placing a and c with agency B places neither.
        let twice = await #expect(throws: RPCError.self) {
            _ = try await Self.place(harness, [c.id, a.id], agency: Self.agencyB, until: until, requestID: "place-2")
        }
        let refused = try refusal(of: twice)
        #expect(refused.violations.map(\.ruleId) == ["placement-active"])
        #expect(refused.violations.first?.field == "accounts[1].account_id" && refused.violations.first?.subjectId == a.id)
        #expect(try await Self.account(harness, c.id).assignedAgencyId == "", "all or nothing: c was not placed")

        // Agency A's manager sees exactly a and b; agency B's nothing.
        #expect(try await Self.listed(harness, agency: Self.agencyA) == [a.id, b.id])
        #expect(try await Self.candidates(harness, agency: Self.agencyA) == [a.id, b.id])
        #expect(try await Self.candidates(harness, agency: Self.agencyA, asPlatform: true) == [a.id, b.id])
        #expect(try await Self.listed(harness, agency: Self.agencyB) == [])
        #expect(try await Self.candidates(harness, agency: Self.agencyB) == [])
        #expect(try await Self.account(harness, b.id, agency: Self.agencyA).id == b.id)
        await #expect(throws: RPCError(code: .notFound, message: "account \(c.id) not found")) {
            _ = try await Self.account(harness, c.id, agency: Self.agencyA)
        }

        // Recalled early with a reason: unplaced, out of A's sight, placeable again.
        let recalled = try await Self.recall(harness, [a.id], requestID: "recall-1")
        #expect(recalled.placements.map(\.id) == [placed.placements[0].id])
        #expect(recalled.placements.first?.state == .recalled && recalled.placements.first?.endReason == "the agency asked to hand the accounts back")
        let unplaced = try await Self.account(harness, a.id)
        #expect(unplaced.assignedAgencyId == "" && unplaced.placement == nil)
        #expect(try await Self.listed(harness, agency: Self.agencyA) == [b.id])
        #expect(try await Self.candidates(harness, agency: Self.agencyA) == [b.id])
        await #expect(throws: RPCError.self) { _ = try await Self.account(harness, a.id, agency: Self.agencyA) }
        let again = await #expect(throws: RPCError.self) { _ = try await Self.recall(harness, [a.id], requestID: "recall-2") }
        #expect(try refusal(of: again).violations.map(\.ruleId) == ["placement-missing"])
        let wrongAgency = await #expect(throws: RPCError.self) {
            _ = try await Self.recall(harness, [b.id], agency: Self.agencyB, requestID: "recall-3")
        }
        #expect(try refusal(of: wrongAgency).violations.first?.detail == "account \(b.id) is placed with agency \(Self.agencyA), not \(Self.agencyB)")
        let second = try await Self.place(harness, [a.id], agency: Self.agencyB, until: until, requestID: "place-3", reason: "moved to B")
        #expect(try await Self.account(harness, a.id).placement == second.placements.first)

        // The history: placed with A, recalled, placed with B.
        let events = try await Self.timeline(harness, a.id)
        #expect(events.map(\.eventType) == [.accountPlaced, .accountRecalled, .accountPlaced])
        guard case .placement(let first)? = events.first?.details, case .placement(let ended)? = events.dropFirst().first?.details else {
            Issue.record("placement events carry their placement")
            return
        }
        #expect(first.agencyId == Self.agencyA && first.state == .active)
        #expect(ended.id == first.id && ended.state == .recalled && ended.endedBy?.role == .platform)
        #expect(events[1].reason == "recalled from agency \(Self.agencyA): the agency asked to hand the accounts back")
        #expect(events[2].reason.hasSuffix("moved to B"), "\(events[2].reason)")
        await harness.close()
    }

    @Test("a placement expires by itself after its end date: reads show it unplaced at once, the stage engine records PLACEMENT_EXPIRED",
          .timeLimit(.minutes(1)))
    func expiry() async throws {
        let harness = try await AccountsHarness()
        harness.clock.set(harness.clock.now + 2 * 3_600_000)
        let a = try await VisitCandidateDeferralTests.fieldAccount(harness, "a")
        let b = try await VisitCandidateDeferralTests.fieldAccount(harness, "b")
        _ = try await Self.place(harness, [a.id], agency: Self.agencyA, until: TypeV1.Date(year: 2026, month: 3, day: 12), requestID: "short")
        _ = try await Self.place(harness, [b.id], agency: Self.agencyA, until: TypeV1.Date(year: 2026, month: 6, day: 30), requestID: "long")
        let service = try await harness.metadata(.service)
        _ = try await harness.client.unary(A.evaluateStages, AccountsV1.EvaluateStagesRequest(requestId: "run-10"), metadata: service)

        // The last day of the placement: still placed.
        harness.clock.advance(2 * Self.day)  // 2026-03-12 10:00
        _ = try await harness.client.unary(A.evaluateStages, AccountsV1.EvaluateStagesRequest(requestId: "run-12"), metadata: service)
        #expect(try await Self.account(harness, a.id).assignedAgencyId == Self.agencyA)
        #expect(try await Self.candidates(harness, agency: Self.agencyA) == [a.id, b.id])
        let debtor = { (id: String) async throws -> AccountsV1.Debtor in
            try await harness.client.unary(A.getDebtor, AccountsV1.GetDebtorRequest(debtorId: id),
                                           metadata: try await harness.metadata(.agencyManager, agency: Self.agencyA))
        }
        #expect(try await debtor(a.debtorId).id == a.debtorId)

        // The day after: reads already show it unplaced, before any run.
        harness.clock.advance(Self.day)  // 2026-03-13 10:00
        let read = try await Self.account(harness, a.id)
        #expect(read.assignedAgencyId == "" && read.placement == nil)
        await #expect(throws: RPCError.self) { _ = try await Self.account(harness, a.id, agency: Self.agencyA) }
        let manager = try await harness.metadata(.agencyManager, agency: Self.agencyA)
        await #expect(throws: RPCError(code: .notFound, message: "account \(a.id) not found")) {
            _ = try await harness.client.unary(A.getAccountTimeline, AccountsV1.GetAccountTimelineRequest(accountId: a.id), metadata: manager)
        }
        #expect(try await harness.client.unary(A.getAccountTimeline, AccountsV1.GetAccountTimelineRequest(accountId: b.id),
                                               metadata: manager).events.count > 0)
        // Nor the debtor, whose only account it was.
        await #expect(throws: RPCError(code: .notFound, message: "debtor \(a.debtorId) not found")) { _ = try await debtor(a.debtorId) }
        #expect(try await debtor(b.debtorId).id == b.debtorId)
        #expect(try await Self.listed(harness, agency: Self.agencyA) == [b.id])
        #expect(try await Self.candidates(harness, agency: Self.agencyA) == [b.id])
        #expect(try await Self.timeline(harness, a.id).map(\.eventType) == [.accountPlaced])

        // The streamed nightly run finds the account due that day and records the expiry.
        _ = try await harness.client.unary(A.evaluateStages, AccountsV1.EvaluateStagesRequest(requestId: "run-13"), metadata: service)
        let events = try await Self.timeline(harness, a.id)
        #expect(events.map(\.eventType) == [.accountPlaced, .placementExpired])
        if case .placement(let expired)? = events.last?.details {
            #expect(expired.state == .expired && expired.endReason == "placement with agency \(Self.agencyA) ended on 2026-03-12")
            #expect(expired.endedBy?.role == .system)
        } else {
            Issue.record("PLACEMENT_EXPIRED carries the placement")
        }
        #expect(try await Self.timeline(harness, b.id).map(\.eventType) == [.accountPlaced])
        // Expired, the account is placed again at once.
        let next = try await Self.place(harness, [a.id], agency: Self.agencyB, until: TypeV1.Date(year: 2026, month: 4, day: 30),
                                        requestID: "again")
        #expect(next.placements.first?.state == .active)
        await harness.close()
    }

    @Test("recalling an agency's accounts (accounts empty) recalls every one placed with it, once per request id; an agency with none is no error",
          .timeLimit(.minutes(1)))
    func recallAgency() async throws {
        let harness = try await AccountsHarness()
        harness.clock.set(harness.clock.now + 2 * 3_600_000)
        let accounts = [try await VisitCandidateDeferralTests.fieldAccount(harness, "a"),
                        try await VisitCandidateDeferralTests.fieldAccount(harness, "b"),
                        try await VisitCandidateDeferralTests.fieldAccount(harness, "c")]
        let until = TypeV1.Date(year: 2026, month: 4, day: 30)
        _ = try await Self.place(harness, [accounts[0].id, accounts[1].id], agency: Self.agencyA, until: until, requestID: "p-a")
        _ = try await Self.place(harness, [accounts[2].id], agency: Self.agencyB, until: until, requestID: "p-b")
        let recalled = try await Self.recall(harness, [], agency: Self.agencyA, requestID: "rcl-1", reason: "agency suspended: licence lapsed")
        #expect(Set(recalled.placements.map(\.accountId)) == [accounts[0].id, accounts[1].id])
        #expect(try await Self.recall(harness, [], agency: Self.agencyA, requestID: "rcl-1", reason: "agency suspended: licence lapsed") == recalled)
        #expect(try await Self.listed(harness, agency: Self.agencyA) == [])
        #expect(try await Self.listed(harness, agency: Self.agencyB) == [accounts[2].id])
        #expect(try await Self.recall(harness, [], agency: Self.agencyA, requestID: "rcl-2", reason: "again").placements.isEmpty)
        #expect(try await Self.timeline(harness, accounts[0].id).map(\.eventType) == [.accountPlaced, .accountRecalled])
        await harness.close()
    }

    @Test("bad requests name the field; roles follow the proto's table", .timeLimit(.minutes(1)))
    func validation() async throws {
        let harness = try await AccountsHarness()
        let a = try await harness.openAccount("a")
        let until = TypeV1.Date(year: 2026, month: 4, day: 30)
        let platform = try await harness.metadata(.platform)
        let target = AccountsV1.PlacementTarget(accountId: a.id)
        for (field, request) in [
            ("end_date", AccountsV1.PlaceAccountsRequest(requestId: "v1", agencyId: Self.agencyA, accounts: [target],
                                                         endDate: TypeV1.Date(year: 2026, month: 3, day: 10), reason: "r")),
            ("end_date", AccountsV1.PlaceAccountsRequest(requestId: "v2", agencyId: Self.agencyA, accounts: [target],
                                                         endDate: TypeV1.Date(year: 2027, month: 5, day: 1), reason: "r")),
            ("accounts[1].account_id", AccountsV1.PlaceAccountsRequest(requestId: "v3", agencyId: Self.agencyA, accounts: [target, target],
                                                                       endDate: until, reason: "r")),
            ("reason", AccountsV1.PlaceAccountsRequest(requestId: "v4", agencyId: Self.agencyA, accounts: [target], endDate: until)),
            ("agency_id", AccountsV1.PlaceAccountsRequest(requestId: "v5", agencyId: "agency-a", accounts: [target], endDate: until, reason: "r")),
            ("region.agencies[0].capacity", AccountsV1.PlaceAccountsRequest(requestId: "v6", endDate: until, reason: "r", region: AccountsV1.RegionPlacement(
                regionCode: "310115", agencies: [AccountsV1.AgencyQuota(agencyId: Self.agencyA)]))),
            ("accounts", AccountsV1.PlaceAccountsRequest(requestId: "v7", accounts: [target], endDate: until, reason: "r", region: AccountsV1.RegionPlacement(
                regionCode: "310115", agencies: [AccountsV1.AgencyQuota(agencyId: Self.agencyA, capacity: 1)]))),
        ] {
            let error = await #expect(throws: RPCError.self) { _ = try await harness.client.unary(A.placeAccounts, request, metadata: platform) }
            #expect(error?.code == .invalidArgument && error?.message.hasPrefix(field + ":") == true, "\(field): \(error?.message ?? "")")
        }
        let recallError = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(A.recallAccounts, AccountsV1.RecallAccountsRequest(requestId: "r1", reason: "r"), metadata: platform)
        }
        #expect(recallError?.message == "agency_id: required when accounts is empty")
        let manager = await #expect(throws: RPCError.self) {
            _ = try await Self.place(harness, [a.id], agency: Self.agencyA, until: until, requestID: "m1", role: .agencyManager)
        }
        #expect(manager?.code == .permissionDenied)
        let missing = await #expect(throws: RPCError.self) {
            _ = try await Self.place(harness, ["acc_01JZZZZZZZZZZZZZZZZZZZZZZZ"], agency: Self.agencyA, until: until, requestID: "m2")
        }
        #expect(missing?.code == .notFound)
        await harness.close()
    }
}
