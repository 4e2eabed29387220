import Compliance
import Foundation
import Models
import RPC
import RPCWire
import SchedulingService
import ServiceTestSupport
import Testing

private typealias S = SchedulingV1.SchedulingService

/// An account whose debtor's address a visit found wrong (accounts' `Debtor.address_unverified`,
/// as `GRPCAccountsDirectory` reads it into `AccountFacts.wrongAddress`) cannot be booked: the
/// refusal names `debtor-location` with the visit and its day, until accounts says the address
/// was corrected.
@Suite("Scheduling: no booking at an address a visit found wrong", .serialized)
struct WrongAddressBookingTests {
    @Test("BookAppointment is FAILED_PRECONDITION debtor-location naming the visit; CheckCompliance agrees; booked once corrected",
          .timeLimit(.minutes(1)))
    func refusedUntilCorrected() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        var account = harness.addAccount()
        let crew = [world.c[0], world.c[1]]
        // Found wrong at a visit at 15:30 on 2026-03-09, Shanghai time.
        account.wrongAddress = AccountsV1.WrongAddressFinding(
            visitId: "vis_01J00000000000000000000001", accountId: account.accountID, visitedMs: march(9, 15, 30), recordedMs: march(9, 16))
        harness.accounts.put(account)

        let error = await #expect(throws: RPCError.self) {
            _ = try await harness.book(account.accountID, crew: crew, march(12, 10), march(12, 12), requestID: "book-w")
        }
        let refused = try refusal(of: error)
        #expect(refused.violations.map(\.ruleId) == ["debtor-location"])
        let violation = try #require(refused.violations.first)
        #expect(violation.subjectId == account.accountID)
        #expect(violation.detail == "the debtor's address was found wrong at visit vis_01J00000000000000000000001 on 2026-03-09; correct it with UpdateDebtor")
        #expect(try await harness.list().isEmpty, "nothing is booked on refusal")

        let check = try await harness.client.unary(S.checkCompliance, SchedulingV1.CheckComplianceRequest(
            accountId: account.accountID, crewCollectorIds: crew, windowStartMs: march(12, 10), windowEndMs: march(12, 12)),
            metadata: harness.platform)
        #expect(!check.compliant && check.violations == refused.violations)

        // Without coordinates as well: both findings, one rule.
        var both = account
        both.address?.location = nil
        harness.accounts.put(both)
        let twice = await #expect(throws: RPCError.self) {
            _ = try await harness.book(account.accountID, crew: crew, march(12, 10), march(12, 12), requestID: "book-w2")
        }
        #expect(try refusal(of: twice).violations.map(\.detail) == [
            "the debtor's address has no coordinates", violation.detail,
        ])

        // Accounts reports the address corrected: the same booking goes through.
        account.wrongAddress = nil
        harness.accounts.put(account)
        let booked = try await harness.book(account.accountID, crew: crew, march(12, 10), march(12, 12), requestID: "book-w3")
        #expect(booked.state == .proposed)
        await harness.close()
    }
}
