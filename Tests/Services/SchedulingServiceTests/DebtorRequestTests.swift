import Compliance
import Foundation
import Models
import RPC
import RPCWire
import SchedulingService
import ServiceTestSupport
import Testing

private typealias S = SchedulingV1.SchedulingService

/// A window the debtor asked for lifts `contact-hours` only with the debtor's request on
/// record (channel, time, reference), from a role the rule pack trusts with it; the request
/// is kept on the appointment, its reschedule history and its notice.
@Suite("Scheduling: a debtor-requested window carries its evidence", .serialized)
struct DebtorRequestTests {
    /// 22:30-23:30 on 2026-03-12 Asia/Shanghai: after cn-2026's 22:00.
    static let lateStart = march(12, 22, 30)
    static let lateEnd = march(12, 23, 30)

    /// The debtor's request, made by phone yesterday evening.
    static func evidence(reference: String = "rec-2026-0311-0042") -> SchedulingV1.DebtorRequestedWindow {
        SchedulingV1.DebtorRequestedWindow(channel: .phone, requestedMs: march(9, 19), reference: reference)
    }

    /// Two collectors of the world's agency who work 06:00-24:00, so only contact hours
    /// speak against a late window.
    static func lateCrew(_ harness: SchedulingHarness, _ world: World) async throws -> [String] {
        var crew: [String] = []
        for index in 1...2 {
            let collector = try await harness.client.unary(S.registerCollector, SchedulingV1.RegisterCollectorRequest(
                requestId: "late-collector-\(index)", collector: SchedulingV1.Collector(
                    agencyId: world.agency.id, fullName: "晚班\(index)", certificationNumber: "SH-CERT-LATE-\(index)",
                    certificationExpiryDate: TypeV1.Date(year: 2027, month: 6, day: 30), regionCode: "310115",
                    homeLocation: Places.nearby, timeZone: "Asia/Shanghai", shiftStart: TypeV1.TimeOfDay(hours: 6, minutes: 0),
                    shiftEnd: TypeV1.TimeOfDay(hours: 24, minutes: 0), dailyCapacity: 6)),
                metadata: harness.platform)
            crew.append(collector.id)
        }
        return crew
    }

    /// A harness with the world, the late crew and a FIELD account.
    static func setUp(_ configuration: SchedulingConfiguration = .defaults) async throws
        -> (SchedulingHarness, World, [String], AccountFacts) {
        let harness = try await SchedulingHarness(configuration: configuration)
        let world = try await harness.setUpWorld()
        return (harness, world, try await lateCrew(harness, world), harness.addAccount())
    }

    static func request(_ account: String, _ crew: [String], id: String, evidence: SchedulingV1.DebtorRequestedWindow?,
                        flag: Bool = false) -> SchedulingV1.BookAppointmentRequest {
        SchedulingV1.BookAppointmentRequest(
            requestId: id, accountId: account, crewCollectorIds: crew, windowStartMs: lateStart, windowEndMs: lateEnd,
            purpose: .discussRepayment, debtorRequestedWindow: flag, debtorRequest: evidence)
    }

    @Test("the flag alone, or incomplete evidence, is INVALID_ARGUMENT naming debtor_request; nothing is booked", .timeLimit(.minutes(1)))
    func evidenceRequired() async throws {
        let (harness, _, crew, account) = try await Self.setUp()

        let flagOnly = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(S.bookAppointment, Self.request(account.accountID, crew, id: "b1", evidence: nil, flag: true),
                                               metadata: harness.platform)
        }
        #expect(flagOnly?.code == .invalidArgument)
        #expect(flagOnly?.message.hasPrefix("debtor_request:") == true, "\(flagOnly?.message ?? "")")

        for (field, bad) in [
            ("debtor_request.reference", Self.evidence(reference: "")),
            ("debtor_request.channel", SchedulingV1.DebtorRequestedWindow(requestedMs: march(9, 19), reference: "rec-1")),
            ("debtor_request.requested_ms", SchedulingV1.DebtorRequestedWindow(channel: .sms, reference: "msg-1")),
            ("debtor_request.requested_ms", SchedulingV1.DebtorRequestedWindow(channel: .sms, requestedMs: march(11, 9), reference: "msg-1")),
        ] {
            let error = await #expect(throws: RPCError.self) {
                _ = try await harness.client.unary(S.bookAppointment, Self.request(account.accountID, crew, id: "b-\(field)", evidence: bad),
                                                   metadata: harness.platform)
            }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.hasPrefix("\(field):") == true, "\(error?.message ?? "")")
        }

        // The dry run refuses the flag alone the same way.
        let dryRun = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(S.checkCompliance, SchedulingV1.CheckComplianceRequest(
                accountId: account.accountID, crewCollectorIds: crew, windowStartMs: Self.lateStart, windowEndMs: Self.lateEnd,
                debtorRequestedWindow: true), metadata: harness.platform)
        }
        #expect(dryRun?.code == .invalidArgument)
        #expect(dryRun?.message.hasPrefix("debtor_request:") == true)
        #expect(try await harness.list().isEmpty)
        await harness.close()
    }

    @Test("an agency manager may not record the debtor's request under cn-2026; a pack that trusts managers accepts it",
          .timeLimit(.minutes(1)))
    func trustedRoles() async throws {
        let (harness, world, crew, account) = try await Self.setUp()
        let manager = try await harness.metadata(.agencyManager, agency: world.agency.id)
        let denied = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(S.bookAppointment, Self.request(account.accountID, crew, id: "m1", evidence: Self.evidence()),
                                               metadata: manager)
        }
        #expect(denied?.code == .permissionDenied)
        #expect(denied?.message.contains("debtor_request") == true, "\(denied?.message ?? "")")
        // Without the request the window is simply outside contact hours.
        let refused = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(S.bookAppointment, Self.request(account.accountID, crew, id: "m2", evidence: nil),
                                               metadata: manager)
        }
        #expect(try refusedRules(refused) == ["contact-hours"])
        await harness.close()

        var configuration = SchedulingConfiguration.defaults
        configuration.rulePack.debtorRequestTrustedRoles = [.platform, .agencyManager]
        let (trusting, trustingWorld, trustingCrew, trustingAccount) = try await Self.setUp(configuration)
        let trustingManager = try await trusting.metadata(.agencyManager, agency: trustingWorld.agency.id)
        let booked = try await trusting.client.unary(
            S.bookAppointment, Self.request(trustingAccount.accountID, trustingCrew, id: "m3", evidence: Self.evidence()),
            metadata: trustingManager)
        #expect(booked.debtorRequest?.recordedBy?.role == .agencyManager)
        await trusting.close()
    }

    @Test("with the request on record the late window is booked, and the appointment, its notice and its history show the request",
          .timeLimit(.minutes(1)))
    func shownAndKept() async throws {
        let (harness, _, crew, account) = try await Self.setUp()

        // The dry run agrees before anything is booked.
        let check = try await harness.client.unary(S.checkCompliance, SchedulingV1.CheckComplianceRequest(
            accountId: account.accountID, crewCollectorIds: crew, windowStartMs: Self.lateStart, windowEndMs: Self.lateEnd,
            debtorRequest: Self.evidence()), metadata: harness.platform)
        #expect(check.compliant, "\(check.violations.map(\.ruleId))")

        let booked = try await harness.client.unary(
            S.bookAppointment, Self.request(account.accountID, crew, id: "p1", evidence: Self.evidence()), metadata: harness.platform)
        #expect(booked.debtorRequestedWindow)
        let request = try #require(booked.debtorRequest)
        #expect(request.channel == .phone && request.requestedMs == march(9, 19) && request.reference == "rec-2026-0311-0042")
        #expect(request.recordedBy?.role == .platform && request.recordedBy?.subject == "test-platform")
        #expect(request.recordedMs == harness.clock.now)
        #expect(try await harness.get(booked.id).debtorRequest == request)
        // The notice tells the debtor the window was theirs, not who recorded it.
        let notice = try #require(booked.notices.first?.debtorRequest)
        #expect(notice == SchedulingV1.DebtorRequestedWindow(channel: .phone, requestedMs: march(9, 19), reference: "rec-2026-0311-0042"))

        // At check-in (the visits service asks) the recorded request still lifts contact hours.
        await harness.deliverNotices()
        harness.clock.set(Self.lateStart)
        let service = try await harness.metadata(.service)
        let atCheckIn = try await harness.client.unary(S.checkCompliance, SchedulingV1.CheckComplianceRequest(
            appointmentId: booked.id, checkPoint: .checkIn), metadata: service)
        #expect(atCheckIn.compliant, "\(atCheckIn.violations.map(\.ruleId))")

        // Moved to another late window without the debtor's request: contact-hours again.
        harness.clock.set(testEpochMs)
        var move = SchedulingV1.RescheduleAppointmentRequest(
            requestId: "r1", appointmentId: booked.id, windowStartMs: Self.lateStart + 86_400_000,
            windowEndMs: Self.lateEnd + 86_400_000, reason: "the debtor is away")
        let refused = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(S.rescheduleAppointment, move, metadata: harness.platform)
        }
        #expect(try refusedRules(refused) == ["contact-hours"])
        // With the debtor's new request: moved, and the history keeps it.
        move.requestId = "r2"
        move.debtorRequest = Self.evidence(reference: "sms-88231")
        let moved = try await harness.client.unary(S.rescheduleAppointment, move, metadata: harness.platform)
        #expect(moved.debtorRequest?.reference == "sms-88231")
        #expect(moved.reschedules.last?.debtorRequest?.reference == "sms-88231")
        #expect(moved.notices.last?.debtorRequest?.reference == "sms-88231")
        // Back inside contact hours without a request: the request is gone from the appointment.
        let daytime = try await harness.client.unary(S.rescheduleAppointment, SchedulingV1.RescheduleAppointmentRequest(
            requestId: "r3", appointmentId: booked.id, windowStartMs: march(13, 10), windowEndMs: march(13, 11),
            reason: "the debtor prefers the morning"), metadata: harness.platform)
        #expect(daytime.debtorRequest == nil && !daytime.debtorRequestedWindow)
        #expect(daytime.reschedules.count == 2 && daytime.reschedules.first?.debtorRequest?.reference == "sms-88231")
        await harness.close()
    }
}
