import Compliance
import Foundation
import Models
import Outbox
import RPC
import RPCWire
import SchedulingService
import ServiceTestSupport
import Testing
import Validation

private typealias S = SchedulingV1.SchedulingService

/// The scheduling service over gRPC on loopback, on a real SQLite file, with the accounts
/// service faked (`FakeAccounts`) and notices delivered by an outbox dispatcher the test
/// drives. The clock stands at 2026-03-10 08:00 Asia/Shanghai unless a test moves it.
@Suite("Scheduling over gRPC: bookings, compliance, notices, roles, plans, budgets", .serialized)
struct SchedulingRPCTests {
    // MARK: 1. Booking

    @Test("a compliant booking is PROPOSED with a pending BOOKED notice and is idempotent by request_id", .timeLimit(.minutes(1)))
    func bookHappyPath() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        let account = harness.addAccount()
        let crew = [world.c[0], world.c[1]]
        let start = march(12, 10)
        let end = march(12, 12)
        #expect(start == 1_773_280_800_000)  // 2026-03-12T02:00:00Z

        let booked = try await harness.book(account.accountID, crew: crew, start, end, requestID: "book-1")
        #expect(booked.id.hasPrefix("apt_"))
        #expect(booked.state == .proposed)
        #expect(booked.version == 1)
        #expect(booked.accountId == account.accountID)
        #expect(booked.debtorId == account.debtorID)
        #expect(booked.agencyId == world.agency.id)
        #expect(booked.crewCollectorIds == crew)
        #expect(booked.windowStartMs == start && booked.windowEndMs == end)
        #expect(booked.debtorTimeZone == "Asia/Shanghai")
        #expect(booked.regionCode == "310115")
        #expect(booked.address?.location == Places.home)
        #expect(booked.rulePackId == "cn-2026")
        #expect(booked.rulePackVersion == RulePacks.cn2026.version)
        #expect(booked.bookedBy?.role == .platform)
        #expect(booked.createdMs == harness.clock.now)

        #expect(booked.notices.count == 1)
        let notice = try #require(booked.notices.first)
        #expect(notice.id.hasPrefix("ntc_"))
        #expect(notice.kind == .booked)
        #expect(notice.appointmentId == booked.id)
        #expect(notice.accountId == account.accountID)
        #expect(notice.debtorId == account.debtorID)
        #expect(notice.windowStartMs == start && notice.windowEndMs == end)
        #expect(notice.debtorTimeZone == "Asia/Shanghai")
        #expect(notice.localWindowText == "2026-03-12 10:00-12:00 (Asia/Shanghai)")
        #expect(notice.purpose == .discussRepayment)
        #expect(!notice.purposeText.isEmpty, "the purpose is stated in words even when the request gives none")
        #expect(notice.collectorNames == [world.collectors[0].fullName, world.collectors[1].fullName])
        #expect(notice.agencyName == world.agency.displayName)
        #expect(!notice.complaintInstructions.isEmpty)
        #expect(notice.delivery?.status == .pending)
        #expect(notice.delivery?.deliveredMs == 0)

        // GetAppointment reads the same, delivery state included.
        let read = try await harness.get(booked.id)
        #expect(read.id == booked.id && read.state == .proposed && read.version == 1)
        #expect(read.notices.map(\.id) == [notice.id])
        #expect(read.notices.first?.delivery?.status == .pending)

        // The same request again: the same appointment, nothing new booked.
        let replay = try await harness.book(account.accountID, crew: crew, start, end, requestID: "book-1")
        #expect(replay.id == booked.id)
        #expect(replay.version == 1)
        #expect(try await harness.list().map(\.id) == [booked.id])

        // The same request_id with another body: INVALID_ARGUMENT, nothing booked.
        let reused = await #expect(throws: RPCError.self) {
            _ = try await harness.book(account.accountID, crew: crew, start, end - 1_800_000, requestID: "book-1")
        }
        #expect(reused?.code == .invalidArgument)
        #expect(reused?.message.hasPrefix("request_id:") == true, "\(reused?.message ?? "")")
        #expect(try await harness.list().map(\.id) == [booked.id])
        await harness.close()
    }

    // MARK: 2. Every violation at once

    @Test("a refusal names every violated rule at once, books nothing, and CheckCompliance agrees", .timeLimit(.minutes(1)))
    func refusalNamesEveryRule() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        let held = harness.addAccount(onHold: true)
        // A crew of one, 07:30-09:30 on 2026-03-11: before contact hours (and the shift), and
        // only 23.5 h from now; the account is on hold.
        let start = march(11, 7, 30)
        let end = march(11, 9, 30)
        let request = SchedulingV1.BookAppointmentRequest(
            requestId: "book-bad", accountId: held.accountID, crewCollectorIds: [world.c[0]], windowStartMs: start,
            windowEndMs: end, purpose: .discussRepayment)
        let error = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(S.bookAppointment, request, metadata: harness.platform)
        }
        #expect(error?.code == .failedPrecondition)
        for rule in ["crew-size", "contact-hours", "advance-notice", "account-hold"] {
            #expect(error?.message.contains(rule) == true, "\(rule) not named in '\(error?.message ?? "")'")
        }
        let refused = try refusal(of: error)
        #expect(refused.rulePackId == "cn-2026")
        #expect(refused.rulePackVersion == RulePacks.cn2026.version)
        let rules = refused.violations.map(\.ruleId)
        // Every violation, in the order of the contract's rule list (07:30 is also outside
        // the collector's 08:00-20:00 shift).
        #expect(rules == ["contact-hours", "advance-notice", "crew-size", "collector-shift", "account-hold"])
        #expect(refused.violations.first { $0.ruleId == "crew-size" }?.field == "crew_collector_ids")
        #expect(refused.violations.first { $0.ruleId == "account-hold" }?.subjectId == held.accountID)
        #expect(refused.violations.first { $0.ruleId == "contact-hours" }?.ruleSource.isEmpty == false,
                "a pack rule cites its source")
        #expect(try await harness.list().isEmpty)

        // The dry run: the same verdict, still nothing booked.
        let check = try await harness.client.unary(S.checkCompliance, SchedulingV1.CheckComplianceRequest(
            accountId: held.accountID, crewCollectorIds: [world.c[0]], windowStartMs: start, windowEndMs: end),
            metadata: harness.platform)
        #expect(!check.compliant)
        #expect(check.violations.map(\.ruleId) == rules)
        #expect(check.rulePackId == "cn-2026")
        #expect(check.debtorTimeZone == "Asia/Shanghai")
        #expect(check.checkedMs == harness.clock.now)
        #expect(try await harness.list().isEmpty)

        // The same dry run for a lawful visit is compliant.
        let lawful = harness.addAccount()
        let good = try await harness.client.unary(S.checkCompliance, SchedulingV1.CheckComplianceRequest(
            accountId: lawful.accountID, crewCollectorIds: [world.c[0], world.c[1]], windowStartMs: march(12, 10),
            windowEndMs: march(12, 12)), metadata: harness.platform)
        #expect(good.compliant)
        #expect(good.violations.isEmpty)
        #expect(try await harness.list().isEmpty)
        await harness.close()
    }

    // MARK: 3. Double-booking

    @Test("a crew cannot be in two places: overlap and travel time refuse, cancelling frees the crew", .timeLimit(.minutes(1)))
    func doubleBooking() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        let crew = [world.c[0], world.c[1]]
        let first = harness.addAccount()
        let far = harness.addAccount(location: Places.north10km)
        let third = harness.addAccount(location: Places.north10kmEast1km)
        let booked = try await harness.book(first.accountID, crew: crew, march(12, 10), march(12, 12), requestID: "book-1")

        // Overlapping 11:00-13:00.
        let overlap = await #expect(throws: RPCError.self) {
            _ = try await harness.book(far.accountID, crew: crew, march(12, 11), march(12, 13), requestID: "book-2")
        }
        let overlapRules = try refusedRules(overlap)
        #expect(overlapRules == ["collector-double-booked", "collector-double-booked"], "one per crew member")
        #expect(overlap?.message.contains(booked.id) == true)

        // 12:00-14:00: no overlap, but 0 min to cover 13 km of road.
        let tight = await #expect(throws: RPCError.self) {
            _ = try await harness.book(far.accountID, crew: crew, march(12, 12), march(12, 14), requestID: "book-3")
        }
        let tightRules = try refusedRules(tight)
        #expect(Set(tightRules) == ["collector-double-booked"])
        #expect(tight?.message.contains("travel") == true, "\(tight?.message ?? "")")

        // Two hours after the first window: time enough to travel.
        let later = try await harness.book(third.accountID, crew: crew, march(12, 14), march(12, 16), requestID: "book-4")
        #expect(later.state == .proposed)

        // Cancelling the first frees the crew for the overlapping window.
        let cancelled = try await harness.cancel(booked.id, requestID: "cancel-1", expectedVersion: 1)
        #expect(cancelled.state == .cancelled)
        #expect(cancelled.version == 2)
        #expect(cancelled.cancellation?.reason == .debtorRequest)
        #expect(cancelled.cancellation?.cancelledBy?.role == .platform)
        let moved = try await harness.book(far.accountID, crew: crew, march(12, 11), march(12, 13), requestID: "book-5")
        #expect(moved.state == .proposed)
        let live = try await harness.list(SchedulingV1.ListAppointmentsRequest(states: [.proposed]))
        #expect(Set(live.map(\.id)) == [later.id, moved.id])
        await harness.close()
    }

    // MARK: 4. Visit caps

    @Test("visit caps: one visit per account per local day, two per 7 days", .timeLimit(.minutes(1)))
    func visitCaps() async throws {
        var configuration = SchedulingConfiguration()
        configuration.visitRules.visitDailyCap = 1
        let harness = try await SchedulingHarness(configuration: configuration)
        let world = try await harness.setUpWorld()
        let account = harness.addAccount()
        _ = try await harness.book(account.accountID, crew: [world.c[0], world.c[1]], march(12, 10), march(12, 12), requestID: "book-1")

        // Another crew, no overlap, same local day.
        let sameDay = await #expect(throws: RPCError.self) {
            _ = try await harness.book(account.accountID, crew: [world.c[2], world.c[3]], march(12, 14), march(12, 16),
                                       requestID: "book-2")
        }
        let refused = try refusal(of: sameDay)
        #expect(refused.violations.map(\.ruleId) == ["visit-daily-cap"])
        #expect(refused.violations.first?.subjectId == account.accountID)

        // The next local day is another day...
        let nextDay = try await harness.book(account.accountID, crew: [world.c[2], world.c[3]], march(13, 10), march(13, 12),
                                             requestID: "book-3")
        #expect(nextDay.state == .proposed)
        // ...but a third visit within 7 days breaks the weekly cap (2).
        let third = await #expect(throws: RPCError.self) {
            _ = try await harness.book(account.accountID, crew: [world.c[2], world.c[3]], march(14, 10), march(14, 12),
                                       requestID: "book-4")
        }
        #expect(try refusedRules(third) == ["visit-weekly-cap"])
        #expect(try await harness.list().count == 2)
        await harness.close()
    }

    // MARK: 5. State machine

    @Test("PROPOSED → NOTIFIED by the delivered notice → CONFIRMED → COMPLETED; reschedule and stale versions", .timeLimit(.minutes(1)))
    func stateMachine() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        let first = harness.addAccount()
        let second = harness.addAccount(location: Places.north10km)
        let sink = RecordingSink()
        let dispatcher = harness.dispatcher(sink: sink)

        let apt = try await harness.book(first.accountID, crew: [world.c[0], world.c[1]], march(12, 10), march(12, 12),
                                         requestID: "book-1")
        let other = try await harness.book(second.accountID, crew: [world.c[2], world.c[3]], march(12, 14), march(12, 16),
                                           requestID: "book-2")

        // No confirmation before the debtor was notified.
        let early = await #expect(throws: RPCError.self) { _ = try await harness.confirm(apt.id, requestID: "confirm-0") }
        #expect(try refusedRules(early) == ["appointment-state"])
        #expect(early?.message.hasPrefix("appointment-state:") == true)

        // The dispatcher delivers both notices; the appointments become NOTIFIED.
        let sent = await dispatcher.dispatchDue()
        #expect(sent == 2)
        #expect(Set(sink.delivered.map(\.id)) == Set((apt.notices + other.notices).map(\.id)))
        let message = try #require(sink.delivered.first { $0.id == apt.notices.first?.id })
        #expect(message.topic == SchedulingService.noticeTopic)
        let payload = try SchedulingV1.CustomerNotice(jsonText: String(decoding: message.payload, as: UTF8.self))
        #expect(payload.appointmentId == apt.id)
        #expect(payload.kind == .booked)
        #expect(payload.localWindowText == "2026-03-12 10:00-12:00 (Asia/Shanghai)")
        #expect(payload.delivery == nil, "delivery progress is not part of the delivered payload")

        let notified = try await harness.get(apt.id)
        #expect(notified.state == .notified)
        #expect(notified.version == 2)
        let delivery = try #require(notified.notices.first?.delivery)
        #expect(delivery.status == .delivered)
        #expect(delivery.deliveredMs == harness.clock.now)
        #expect(delivery.attempts == 1)
        // Nothing more is due.
        #expect(await dispatcher.dispatchDue() == 0)
        #expect(sink.calls == 2)

        let confirmed = try await harness.confirm(apt.id, requestID: "confirm-1", expectedVersion: 2)
        #expect(confirmed.state == .confirmed)
        #expect(confirmed.version == 3)
        #expect(confirmed.confirmedMs == harness.clock.now)

        // Reschedule the other (NOTIFIED) appointment to the next morning.
        let before = try await harness.get(other.id)
        #expect(before.state == .notified)
        let reschedule = SchedulingV1.RescheduleAppointmentRequest(
            requestId: "reschedule-1", appointmentId: other.id, expectedVersion: before.version, windowStartMs: march(13, 10),
            windowEndMs: march(13, 12), reason: "the debtor asked for the next morning")
        let rescheduled = try await harness.client.unary(S.rescheduleAppointment, reschedule, metadata: harness.platform)
        #expect(rescheduled.state == .proposed)
        #expect(rescheduled.version == before.version + 1)
        #expect(rescheduled.windowStartMs == march(13, 10) && rescheduled.windowEndMs == march(13, 12))
        #expect(rescheduled.crewCollectorIds == [world.c[2], world.c[3]], "an empty crew keeps the current one")
        #expect(rescheduled.reschedules.count == 1)
        let move = try #require(rescheduled.reschedules.first)
        #expect(move.previousWindowStartMs == march(12, 14) && move.previousWindowEndMs == march(12, 16))
        #expect(move.newWindowStartMs == march(13, 10) && move.newWindowEndMs == march(13, 12))
        #expect(move.previousState == .notified)
        #expect(move.previousCrewCollectorIds == [world.c[2], world.c[3]])
        #expect(move.reason == "the debtor asked for the next morning")
        #expect(rescheduled.notices.map(\.kind) == [.booked, .rescheduled])
        #expect(rescheduled.notices.last?.localWindowText == "2026-03-13 10:00-12:00 (Asia/Shanghai)")
        #expect(rescheduled.notices.last?.delivery?.status == .pending)
        #expect(rescheduled.notices.first?.delivery?.status == .delivered)

        // A stale expected_version: ABORTED, nothing changes.
        var stale = reschedule
        stale.requestId = "reschedule-2"
        stale.windowStartMs = march(13, 14)
        stale.windowEndMs = march(13, 16)
        let aborted = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(S.rescheduleAppointment, stale, metadata: harness.platform)
        }
        #expect(aborted?.code == .aborted)
        #expect(try await harness.get(other.id).version == rescheduled.version)

        // The new notice delivered: NOTIFIED again.
        #expect(await dispatcher.dispatchDue() == 1)
        let renotified = try await harness.get(other.id)
        #expect(renotified.state == .notified)
        #expect(renotified.notices.last?.delivery?.status == .delivered)

        // The visit takes place; the visits service completes the appointment.
        harness.clock.set(march(12, 11, 30))
        let service = try await harness.metadata(.service)
        let visitID = IDGenerator.make(prefix: "vis", nowMs: harness.clock.now)
        let complete = SchedulingV1.CompleteAppointmentRequest(
            requestId: "complete-1", appointmentId: apt.id, visitId: visitID, checkedOutMs: harness.clock.now)
        let completed = try await harness.client.unary(S.completeAppointment, complete, metadata: service)
        #expect(completed.state == .completed)
        #expect(completed.version == 4)
        #expect(completed.visitId == visitID)
        #expect(completed.completedMs == harness.clock.now)
        // Delivered twice by the visits service's outbox (another request id): unchanged.
        var again = complete
        again.requestId = "complete-2"
        let unchanged = try await harness.client.unary(S.completeAppointment, again, metadata: service)
        #expect(unchanged.state == .completed && unchanged.version == 4)
        // An agency manager may not complete.
        let manager = try await harness.metadata(.agencyManager, agency: world.agency.id)
        let denied = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(S.completeAppointment, again, metadata: manager)
        }
        #expect(denied?.code == .permissionDenied)

        // A completed appointment cannot be cancelled.
        let late = await #expect(throws: RPCError.self) { _ = try await harness.cancel(apt.id, requestID: "cancel-1") }
        #expect(try refusedRules(late) == ["appointment-state"])
        #expect(try await harness.get(apt.id).state == .completed)
        await harness.close()
    }

    // MARK: 6. Failing sink

    @Test("a failing receiver: retried with backoff, attempts and last error visible, delivered once", .timeLimit(.minutes(1)))
    func failingSink() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        let account = harness.addAccount()
        let sink = RecordingSink(failures: 2)
        let dispatcher = harness.dispatcher(sink: sink)
        let apt = try await harness.book(account.accountID, crew: [world.c[0], world.c[1]], march(12, 10), march(12, 12),
                                         requestID: "book-1")
        let noticeID = try #require(apt.notices.first?.id)

        await dispatcher.dispatchDue()
        #expect(sink.calls == 1)
        var read = try await harness.get(apt.id)
        #expect(read.state == .proposed)
        var delivery = try #require(read.notices.first?.delivery)
        #expect(delivery.status == .pending)
        #expect(delivery.attempts == 1)
        #expect(delivery.lastError.contains("HTTP 503"), "\(delivery.lastError)")
        #expect(delivery.lastAttemptMs == harness.clock.now)
        #expect(delivery.nextAttemptMs > harness.clock.now, "a retry waits for its backoff")
        #expect(delivery.deliveredMs == 0)
        // Not due yet: nothing is attempted at the same instant.
        await dispatcher.dispatchDue()
        #expect(sink.calls == 1)

        await harness.dispatch(dispatcher, until: { sink.calls >= 2 })
        #expect(sink.calls == 2)
        read = try await harness.get(apt.id)
        #expect(read.state == .proposed)
        delivery = try #require(read.notices.first?.delivery)
        #expect(delivery.status == .pending)
        #expect(delivery.attempts == 2)
        #expect(delivery.lastError.contains("HTTP 503"))

        await harness.dispatch(dispatcher, until: { sink.calls >= 3 })
        #expect(sink.calls == 3)
        read = try await harness.get(apt.id)
        #expect(read.state == .notified)
        delivery = try #require(read.notices.first?.delivery)
        #expect(delivery.status == .delivered)
        #expect(delivery.attempts == 3)
        #expect(delivery.deliveredMs == harness.clock.now)
        #expect(delivery.nextAttemptMs == 0)

        // Delivered exactly once, and never again.
        harness.clock.advance(3_600_000)
        #expect(await dispatcher.dispatchDue() == 0)
        #expect(sink.calls == 3)
        #expect(sink.delivered.map(\.id) == [noticeID])
        await harness.close()
    }

    // MARK: 7. Roles

    @Test("roles: agency managers and collectors see their own, book only with their own crews", .timeLimit(.minutes(1)))
    func roles() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        let otherAgency = try await harness.registerAgency(name: "浦东另一家催收公司", licence: "SH-COLL-2025-0777")
        var others: [String] = []
        for (index, name) in ["赵敏", "孙强"].enumerated() {
            others.append(try await harness.registerCollector(
                agency: otherAgency.id, name: name, certification: "SH-CERT-OTHER-\(index)",
                home: TypeV1.GeoPoint(latitude: 31.24, longitude: 121.48)).id)
        }
        let first = harness.addAccount()
        let second = harness.addAccount(location: Places.north10km)
        let ours = try await harness.book(first.accountID, crew: [world.c[0], world.c[1]], march(12, 10), march(12, 12),
                                          requestID: "book-1")
        let managerX = try await harness.metadata(.agencyManager, agency: world.agency.id)
        let managerY = try await harness.metadata(.agencyManager, agency: otherAgency.id)

        // The other agency books with its own crew.
        let theirs = try await harness.book(second.accountID, crew: others, march(12, 10), march(12, 12), requestID: "book-y",
                                            metadata: managerY)
        #expect(theirs.agencyId == otherAgency.id)
        #expect(theirs.bookedBy?.role == .agencyManager)
        #expect(theirs.bookedBy?.agencyId == otherAgency.id)

        // Another agency's appointment is not disclosed; its collectors cannot be booked.
        let hidden = await #expect(throws: RPCError.self) { _ = try await harness.get(ours.id, metadata: managerY) }
        #expect(hidden?.code == .notFound)
        let foreignCrew = await #expect(throws: RPCError.self) {
            _ = try await harness.book(second.accountID, crew: [world.c[2], world.c[3]], march(13, 10), march(13, 12),
                                       requestID: "book-y2", metadata: managerY)
        }
        #expect(foreignCrew?.code == .permissionDenied)
        // An account assigned to another agency is not theirs to book or check, even with
        // their own crew; the agency it is assigned to may.
        let assigned = harness.addAccount(assignedAgency: world.agency.id)
        let foreignAccount = await #expect(throws: RPCError.self) {
            _ = try await harness.book(assigned.accountID, crew: others, march(13, 10), march(13, 12), requestID: "book-y4",
                                       metadata: managerY)
        }
        #expect(foreignAccount?.code == .permissionDenied && foreignAccount?.message.contains("another agency") == true)
        let foreignCheck = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(S.checkCompliance, SchedulingV1.CheckComplianceRequest(
                accountId: assigned.accountID, crewCollectorIds: others, windowStartMs: march(13, 10), windowEndMs: march(13, 12)),
                metadata: managerY)
        }
        #expect(foreignCheck?.code == .permissionDenied)
        #expect(try await harness.list(SchedulingV1.ListAppointmentsRequest(accountId: assigned.accountID)).isEmpty)
        let ownCheck = try await harness.client.unary(S.checkCompliance, SchedulingV1.CheckComplianceRequest(
            accountId: assigned.accountID, crewCollectorIds: [world.c[2], world.c[3]], windowStartMs: march(13, 10),
            windowEndMs: march(13, 12)), metadata: managerX)
        #expect(ownCheck.compliant, "the agency it is assigned to may: \(ownCheck.violations)")
        let foreignCollector = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(S.registerCollector, SchedulingV1.RegisterCollectorRequest(
                requestId: "collector-y3", collector: SchedulingV1.Collector(
                    agencyId: world.agency.id, fullName: "周杰", certificationNumber: "SH-CERT-OTHER-9",
                    certificationExpiryDate: TypeV1.Date(year: 2027, month: 6, day: 30), regionCode: "310115",
                    homeLocation: Places.home, timeZone: "Asia/Shanghai", shiftStart: TypeV1.TimeOfDay(hours: 8, minutes: 0),
                    shiftEnd: TypeV1.TimeOfDay(hours: 20, minutes: 0), dailyCapacity: 6)), metadata: managerY)
        }
        #expect(foreignCollector?.code == .permissionDenied)

        // Lists are silently restricted to the caller's own.
        #expect(try await harness.list(metadata: managerY).map(\.id) == [theirs.id])
        #expect(try await harness.list(metadata: managerX).map(\.id) == [ours.id])
        #expect(try await harness.list(SchedulingV1.ListAppointmentsRequest(agencyId: otherAgency.id), metadata: managerX).isEmpty)
        let everything = try await harness.list()
        #expect(Set(everything.map(\.id)) == [ours.id, theirs.id])
        #expect(try await harness.get(ours.id, metadata: managerX).id == ours.id)

        // A collector sees the appointments whose crew includes them, and nothing else.
        let member = try await harness.metadata(.collector, agency: world.agency.id, collector: world.c[0])
        #expect(try await harness.get(ours.id, metadata: member).id == ours.id)
        let notTheirs = await #expect(throws: RPCError.self) { _ = try await harness.get(theirs.id, metadata: member) }
        #expect(notTheirs?.code == .notFound)
        #expect(try await harness.list(metadata: member).map(\.id) == [ours.id])
        let bystander = try await harness.metadata(.collector, agency: world.agency.id, collector: world.c[2])
        let notInCrew = await #expect(throws: RPCError.self) { _ = try await harness.get(ours.id, metadata: bystander) }
        #expect(notInCrew?.code == .notFound)
        #expect(try await harness.list(metadata: bystander).isEmpty)
        let collectorBooks = await #expect(throws: RPCError.self) {
            _ = try await harness.book(first.accountID, crew: [world.c[0], world.c[1]], march(13, 10), march(13, 12),
                                       requestID: "book-c", metadata: member)
        }
        #expect(collectorBooks?.code == .permissionDenied)
        #expect(try await harness.list().count == 2)
        await harness.close()
    }

    // MARK: 8. Suspensions

    @Test("suspension: a suspended member fails collector-status; one suspension per complaint; lifted once", .timeLimit(.minutes(1)))
    func suspendAndReinstate() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        let account = harness.addAccount()
        let crew = [world.c[0], world.c[1]]
        let complaintID = IDGenerator.make(prefix: "cmp", nowMs: harness.clock.now)
        let suspend = SchedulingV1.SuspendCollectorRequest(
            requestId: "suspend-1", collectorId: world.c[1], reason: .complaint, complaintId: complaintID,
            note: "named in a complaint")
        let suspended = try await harness.client.unary(S.suspendCollector, suspend, metadata: harness.platform)
        #expect(suspended.status == .suspended)
        #expect(suspended.version == 2)
        #expect(suspended.suspensions.count == 1)
        let suspension = try #require(suspended.suspensions.first)
        #expect(suspension.id.hasPrefix("sus_"))
        #expect(suspension.active)
        #expect(suspension.reason == .complaint)
        #expect(suspension.complaintId == complaintID)
        #expect(suspension.suspendedBy?.role == .platform)

        // A booking with them fails collector-status, naming the member.
        let refusedBooking = await #expect(throws: RPCError.self) {
            _ = try await harness.book(account.accountID, crew: crew, march(12, 10), march(12, 12), requestID: "book-1")
        }
        let refused = try refusal(of: refusedBooking)
        #expect(refused.violations.map(\.ruleId) == ["collector-status"])
        #expect(refused.violations.first?.subjectId == world.c[1])
        #expect(refused.violations.first?.field == "crew_collector_ids[1]")
        #expect(try await harness.list().isEmpty)

        // The same complaint again (another request): unchanged.
        var again = suspend
        again.requestId = "suspend-2"
        let unchanged = try await harness.client.unary(S.suspendCollector, again, metadata: harness.platform)
        #expect(unchanged.version == suspended.version)
        #expect(unchanged.suspensions.count == 1)
        #expect(unchanged.status == .suspended)

        // Lifted by complaint id: ACTIVE again, and bookable.
        let reinstate = SchedulingV1.ReinstateCollectorRequest(
            requestId: "reinstate-1", collectorId: world.c[1], note: "complaint dismissed", suspension: .complaintId(complaintID))
        let reinstated = try await harness.client.unary(S.reinstateCollector, reinstate, metadata: harness.platform)
        #expect(reinstated.status == .active)
        #expect(reinstated.version == 3)
        #expect(reinstated.suspensions.count == 1)
        #expect(reinstated.suspensions.first?.active == false)
        #expect(reinstated.suspensions.first?.liftedMs == harness.clock.now)
        #expect(reinstated.suspensions.first?.liftedBy?.role == .platform)
        let booked = try await harness.book(account.accountID, crew: crew, march(12, 10), march(12, 12), requestID: "book-2")
        #expect(booked.state == .proposed)

        // Lifting it again: suspension-lifted.
        var twice = reinstate
        twice.requestId = "reinstate-2"
        let lifted = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(S.reinstateCollector, twice, metadata: harness.platform)
        }
        #expect(lifted?.code == .failedPrecondition)
        #expect(lifted?.message.hasPrefix("suspension-lifted:") == true, "\(lifted?.message ?? "")")

        // An agency manager may not place complaint suspensions, only its own decisions.
        let manager = try await harness.metadata(.agencyManager, agency: world.agency.id)
        let byManager = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(S.suspendCollector, SchedulingV1.SuspendCollectorRequest(
                requestId: "suspend-m1", collectorId: world.c[2], reason: .complaint,
                complaintId: IDGenerator.make(prefix: "cmp", nowMs: harness.clock.now)), metadata: manager)
        }
        #expect(byManager?.code == .permissionDenied)
        let decided = try await harness.client.unary(S.suspendCollector, SchedulingV1.SuspendCollectorRequest(
            requestId: "suspend-m2", collectorId: world.c[2], reason: .agencyDecision, note: "retraining"), metadata: manager)
        #expect(decided.status == .suspended)
        let decision = try #require(decided.suspensions.first?.id)
        let lift = try await harness.client.unary(S.reinstateCollector, SchedulingV1.ReinstateCollectorRequest(
            requestId: "reinstate-m", collectorId: world.c[2], suspension: .suspensionId(decision)), metadata: manager)
        #expect(lift.status == .active)
        await harness.close()
    }

    // MARK: 9. Accounts unreachable

    @Test("accounts unreachable: BookAppointment is UNAVAILABLE and books nothing; a retry books", .timeLimit(.minutes(1)))
    func accountsUnavailable() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        let account = harness.addAccount()
        let crew = [world.c[0], world.c[1]]
        harness.accounts.setUnavailable(true)
        let error = await #expect(throws: RPCError.self) {
            _ = try await harness.book(account.accountID, crew: crew, march(12, 10), march(12, 12), requestID: "book-1")
        }
        #expect(error?.code == .unavailable)
        #expect(try await harness.list().isEmpty)
        let check = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(S.checkCompliance, SchedulingV1.CheckComplianceRequest(
                accountId: account.accountID, crewCollectorIds: crew, windowStartMs: march(12, 10), windowEndMs: march(12, 12)),
                metadata: harness.platform)
        }
        #expect(check?.code == .unavailable)
        #expect(harness.accounts.calls >= 2)

        // Accounts back: the same request_id books (the failure was not remembered).
        harness.accounts.setUnavailable(false)
        let booked = try await harness.book(account.accountID, crew: crew, march(12, 10), march(12, 12), requestID: "book-1")
        #expect(booked.state == .proposed)
        #expect(try await harness.list().map(\.id) == [booked.id])
        await harness.close()
    }

    // MARK: 10. Day plans

    @Test("PlanDay routes confirmed appointments in window order and accounts for every candidate", .timeLimit(.minutes(1)))
    func planDay() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        let crew = [world.c[0], world.c[1]]
        let first = harness.addAccount()
        let second = harness.addAccount(location: Places.north10km)
        // Booked in reverse window order: the plan orders by time, not by booking.
        let afternoon = try await harness.book(second.accountID, crew: crew, march(12, 14), march(12, 16), requestID: "book-pm")
        let morning = try await harness.book(first.accountID, crew: crew, march(12, 10), march(12, 12), requestID: "book-am")
        await harness.deliverNotices()
        for (index, apt) in [morning, afternoon].enumerated() {
            let confirmed = try await harness.confirm(apt.id, requestID: "confirm-\(index)")
            #expect(confirmed.state == .confirmed)
        }
        let day = TypeV1.Date(year: 2026, month: 3, day: 12)

        let plan = try await harness.client.unary(S.planDay, SchedulingV1.PlanDayRequest(regionCode: "310115", date: day),
                                                  metadata: harness.platform)
        #expect(plan.regionCode == "310115")
        #expect(plan.date == day)
        #expect(plan.timeZone == "Asia/Shanghai")
        #expect(plan.rulePackId == "cn-2026")
        #expect(plan.computedMs == harness.clock.now)
        #expect(plan.feasible)
        #expect(plan.unassigned.isEmpty)
        #expect(plan.routes.count == 1)
        let route = try #require(plan.routes.first)
        #expect(route.crewCollectorIds == crew)
        #expect(route.agencyId == world.agency.id)
        #expect(route.capacity == 6)
        #expect(route.stops.map(\.target) == [SchedulingV1.Stop.Target.appointmentId(morning.id),
                                              SchedulingV1.Stop.Target.appointmentId(afternoon.id)])
        #expect(route.stops.map(\.sequence) == [1, 2])
        for (stop, apt) in zip(route.stops, [morning, afternoon]) {
            #expect(stop.windowStartMs == apt.windowStartMs && stop.windowEndMs == apt.windowEndMs)
            #expect(stop.etaMs <= stop.serviceStartMs)
            #expect(stop.serviceStartMs >= apt.windowStartMs, "service starts inside the window")
            #expect(stop.departureMs <= apt.windowEndMs, "the visit ends inside the window")
            #expect(stop.etaMs <= apt.windowEndMs)
            #expect(stop.serviceSeconds == 1800)
        }
        #expect(route.stops[0].location == Places.home)
        // ~10 km apart: about 13 km by road.
        let leg = route.stops[1].travelDistanceMeters
        #expect(leg >= 12_000 && leg <= 14_000, "\(leg)")
        #expect(route.distanceMeters >= Int64(route.stops[1].travelDistanceMeters))
        let totals = try #require(plan.totals)
        #expect(totals.appointmentsRouted == 2)
        #expect(totals.candidatesRouted == 0)
        #expect(totals.routes == 1)
        #expect(totals.stops == 2)
        #expect(totals.unassigned == 0)

        // Filling free capacity: the two other collectors form a crew; the one candidate is
        // either routed or left out with a reason — exactly once.
        let candidateID = IDGenerator.make(prefix: "acc", nowMs: harness.clock.now)
        harness.accounts.setCandidates([AccountsV1.VisitCandidate(
            accountId: candidateID, debtorId: IDGenerator.make(prefix: "dbt", nowMs: harness.clock.now), rank: 1,
            address: TypeV1.Address(text: "上海市浦东新区", regionCode: "310115", location: Places.nearby),
            timeZone: "Asia/Shanghai", daysPastDue: 45,
            expectedRecovery: TypeV1.Money(amountMinor: 500_000, currencyCode: "CNY"))], region: "310115")
        let filled = try await harness.client.unary(S.planDay, SchedulingV1.PlanDayRequest(
            regionCode: "310115", date: day, options: SchedulingV1.PlanDayOptions(fillWithCandidates: true)),
            metadata: harness.platform)
        let candidateStops = filled.routes.flatMap(\.stops).filter { $0.target == SchedulingV1.Stop.Target.accountId(candidateID) }
        let candidateLeftOut = filled.unassigned.filter { $0.target == SchedulingV1.UnassignedItem.Target.accountId(candidateID) }
        #expect(candidateStops.count + candidateLeftOut.count == 1, "\(filled.routes) \(filled.unassigned)")
        if let stop = candidateStops.first {
            #expect(stop.expectedRecovery?.amountMinor == 500_000)
            #expect(stop.windowStartMs >= march(12, 8) && stop.windowEndMs <= march(12, 22), "inside contact hours")
            #expect(stop.windowStartMs >= harness.clock.now + 24 * 3_600_000, "bookable with 24 h notice")
            #expect(stop.serviceStartMs >= stop.windowStartMs && stop.serviceStartMs < stop.windowEndMs)
            #expect(filled.totals?.candidatesRouted == 1)
        }
        if let item = candidateLeftOut.first {
            #expect(item.reason != .unspecified)
            #expect(!item.detail.isEmpty)
        }
        #expect(filled.totals?.appointmentsRouted == 2)
        #expect(filled.routes.allSatisfy { !$0.stops.isEmpty })
        let appointmentStops = filled.routes.flatMap(\.stops).compactMap { stop -> String? in
            if case .appointmentId(let id)? = stop.target { return id }
            return nil
        }
        #expect(appointmentStops.sorted() == [morning.id, afternoon.id].sorted())
        #expect(filled.routes.first { $0.stops.contains { $0.target == SchedulingV1.Stop.Target.appointmentId(morning.id) } }?
            .crewCollectorIds == crew, "appointments keep their booked crew")

        // A NOTIFIED (unconfirmed) appointment is routed only when asked for.
        let third = harness.addAccount(location: Places.nearby)
        let unconfirmed = try await harness.book(third.accountID, crew: [world.c[2], world.c[3]], march(12, 10), march(12, 12),
                                                 requestID: "book-3")
        await harness.deliverNotices()
        #expect(try await harness.get(unconfirmed.id).state == .notified)
        let confirmedOnly = try await harness.client.unary(S.planDay, SchedulingV1.PlanDayRequest(regionCode: "310115", date: day),
                                                           metadata: harness.platform)
        #expect(confirmedOnly.totals?.appointmentsRouted == 2)
        let withNotified = try await harness.client.unary(S.planDay, SchedulingV1.PlanDayRequest(
            regionCode: "310115", date: day, options: SchedulingV1.PlanDayOptions(includeUnconfirmed: true)),
            metadata: harness.platform)
        #expect(withNotified.totals?.appointmentsRouted == 3)
        #expect(withNotified.routes.count == 2)

        // An agency manager plans only its own agency's crews.
        let stranger = try await harness.metadata(.agencyManager, agency: IDGenerator.make(prefix: "agy", nowMs: harness.clock.now))
        let foreign = try await harness.client.unary(S.planDay, SchedulingV1.PlanDayRequest(regionCode: "310115", date: day),
                                                     metadata: stranger)
        #expect(foreign.routes.isEmpty)
        #expect(foreign.totals?.appointmentsRouted ?? 0 == 0)

        // A past day cannot be planned.
        let past = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(S.planDay, SchedulingV1.PlanDayRequest(
                regionCode: "310115", date: TypeV1.Date(year: 2026, month: 3, day: 9)), metadata: harness.platform)
        }
        #expect(past?.code == .invalidArgument)
        #expect(past?.message.hasPrefix("date:") == true, "\(past?.message ?? "")")
        await harness.close()
    }

    @Test("PlanDay lists the accounts accounts defers as DEFERRED with their rules, never as stops; a manager sees only its own",
          .timeLimit(.minutes(1)))
    func planDayDeferred() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        let now = harness.clock.now
        let candidateID = IDGenerator.make(prefix: "acc", nowMs: now)
        let promised = IDGenerator.make(prefix: "acc", nowMs: now)
        let keeping = IDGenerator.make(prefix: "acc", nowMs: now)
        let otherAgency = IDGenerator.make(prefix: "agy", nowMs: now)
        harness.accounts.setCandidates([AccountsV1.VisitCandidate(
            accountId: candidateID, debtorId: IDGenerator.make(prefix: "dbt", nowMs: now), rank: 1,
            address: TypeV1.Address(text: "上海市浦东新区", regionCode: "310115", location: Places.nearby),
            timeZone: "Asia/Shanghai", daysPastDue: 45, expectedRecovery: TypeV1.Money(amountMinor: 500_000, currencyCode: "CNY"),
            assignedAgencyId: world.agency.id)], region: "310115")
        let promiseReasons = [
            TypeV1.Violation(ruleId: "promise-pending", detail: "promise ptp_1 to pay by 2026-03-13 is pending"),
            TypeV1.Violation(ruleId: "visit-cool-down", detail: "visited on 2026-03-10; cn-2026 allows the next visit from 2026-03-17"),
        ]
        harness.accounts.setDeferred([
            AccountsV1.DeferredVisitCandidate(accountId: promised, assignedAgencyId: world.agency.id, reasons: promiseReasons,
                                              candidateFromDate: TypeV1.Date(year: 2026, month: 3, day: 17)),
            AccountsV1.DeferredVisitCandidate(accountId: keeping, assignedAgencyId: otherAgency,
                                              reasons: [TypeV1.Violation(ruleId: "plan-kept", detail: "repayment plan rpl_1 is being kept")]),
        ], region: "310115")
        let day = TypeV1.Date(year: 2026, month: 3, day: 12)
        let request = SchedulingV1.PlanDayRequest(regionCode: "310115", date: day,
                                                  options: SchedulingV1.PlanDayOptions(fillWithCandidates: true))
        let plan = try await harness.client.unary(S.planDay, request, metadata: harness.platform)
        let stops = plan.routes.flatMap(\.stops).compactMap { stop -> String? in
            if case .accountId(let id)? = stop.target { return id }
            return nil
        }
        #expect(!stops.contains(promised) && !stops.contains(keeping), "\(plan.routes)")
        func leftOut(_ id: String, in plan: SchedulingV1.PlanDayResponse) -> SchedulingV1.UnassignedItem? {
            plan.unassigned.first { $0.target == SchedulingV1.UnassignedItem.Target.accountId(id) }
        }
        let promiseItem = try #require(leftOut(promised, in: plan), "\(plan.unassigned)")
        #expect(promiseItem.reason == .deferred)
        #expect(promiseItem.violations == promiseReasons)
        #expect(promiseItem.detail == "not a visit candidate until 2026-03-17: promise-pending, visit-cool-down", "\(promiseItem.detail)")
        let planItem = try #require(leftOut(keeping, in: plan), "\(plan.unassigned)")
        #expect(planItem.reason == .deferred)
        #expect(planItem.detail == "not a visit candidate while its repayment plan is kept: plan-kept", "\(planItem.detail)")
        #expect(plan.totals?.unassigned == Int32(plan.unassigned.count))
        // The candidate itself is routed or left out for a reason of its own, never DEFERRED.
        #expect(leftOut(candidateID, in: plan)?.reason != .deferred)

        // An agency manager sees only its own agency's deferred accounts.
        let manager = try await harness.metadata(.agencyManager, agency: world.agency.id)
        let own = try await harness.client.unary(S.planDay, request, metadata: manager)
        #expect(leftOut(promised, in: own)?.reason == .deferred)
        #expect(leftOut(keeping, in: own) == nil, "\(own.unassigned)")
        // Without candidates nothing is asked of accounts, and nothing is listed as deferred.
        let bare = try await harness.client.unary(S.planDay, SchedulingV1.PlanDayRequest(regionCode: "310115", date: day),
                                                  metadata: harness.platform)
        #expect(bare.unassigned.allSatisfy { $0.reason != .deferred })
        await harness.close()
    }

    // MARK: 11. Contact budget

    @Test("GetContactBudget: connected calls from accounts' counters, visits from live appointments", .timeLimit(.minutes(1)))
    func contactBudget() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        let account = harness.addAccount()
        harness.accounts.put(account: AccountsV1.Account(
            id: account.accountID, debtorId: account.debtorID, stage: .field, onHold: false,
            contactSummary: AccountsV1.ContactSummary(
                countsDate: TypeV1.Date(year: 2026, month: 3, day: 10), connectedCallsToday: 2, callAttemptsToday: 2),
            regionCode: "310115", debtorTimeZone: "Asia/Shanghai"))
        func budget(_ date: TypeV1.Date? = nil) async throws(RPCError) -> SchedulingV1.ContactBudget {
            try await harness.client.unary(S.getContactBudget, SchedulingV1.GetContactBudgetRequest(
                debtorId: account.debtorID, date: date), metadata: harness.platform)
        }
        func line(_ budget: SchedulingV1.ContactBudget, _ rule: String, account: String = "") -> SchedulingV1.BudgetLine? {
            budget.lines.first { $0.ruleId == rule && $0.accountId == account }
        }

        // Today (2026-03-10, 08:00 debtor-local).
        let today = try await budget()
        #expect(today.debtorId == account.debtorID)
        #expect(today.date == TypeV1.Date(year: 2026, month: 3, day: 10))
        #expect(today.timeZone == "Asia/Shanghai")
        #expect(today.rulePackId == "cn-2026")
        #expect(today.contactWindowStart == TypeV1.TimeOfDay(hours: 8, minutes: 0))
        #expect(today.contactWindowEnd == TypeV1.TimeOfDay(hours: 22, minutes: 0))
        let calls = try #require(line(today, "daily-connected-calls"))
        #expect(calls.channel == .phone)
        #expect(!calls.unlimited)
        #expect(calls.limit == 3 && calls.used == 2 && calls.remaining == 1)
        #expect(calls.periodDays == 1)
        let visitsToday = try #require(line(today, "visit-daily-cap", account: account.accountID))
        #expect(visitsToday.channel == .visit)
        #expect(visitsToday.limit == 1 && visitsToday.used == 0 && visitsToday.remaining == 1)
        #expect(today.contactAllowedNow, "08:00 is inside 08:00-22:00 and a call is left")
        #expect(today.accounts.map(\.accountId) == [account.accountID])
        #expect(today.accounts.first?.contactAllowed == true)
        #expect(today.computedMs == harness.clock.now)

        // A visit booked for 2026-03-12 uses that day's visit budget; today's calls do not count there.
        let apt = try await harness.book(account.accountID, crew: [world.c[0], world.c[1]], march(12, 10), march(12, 12),
                                         requestID: "book-1")
        let visitDay = TypeV1.Date(year: 2026, month: 3, day: 12)
        let thatDay = try await budget(visitDay)
        #expect(thatDay.date == visitDay)
        let dailyVisits = try #require(line(thatDay, "visit-daily-cap", account: account.accountID))
        #expect(dailyVisits.limit == 1 && dailyVisits.used == 1 && dailyVisits.remaining == 0)
        let weeklyVisits = try #require(line(thatDay, "visit-weekly-cap", account: account.accountID))
        #expect(weeklyVisits.limit == 2 && weeklyVisits.used == 1 && weeklyVisits.remaining == 1)
        #expect(weeklyVisits.periodDays == 7)
        #expect(line(thatDay, "daily-connected-calls")?.used == 0, "counters of an earlier day do not count")
        #expect(!thatDay.contactAllowedNow)
        #expect(thatDay.nextAllowedMs == march(12, 8))
        let todayAgain = try await budget()
        #expect(line(todayAgain, "visit-daily-cap", account: account.accountID)?.used == 0)

        // Cancelled appointments free the visit budget.
        _ = try await harness.cancel(apt.id, requestID: "cancel-1")
        let afterCancel = try await budget(visitDay)
        #expect(line(afterCancel, "visit-daily-cap", account: account.accountID)?.used == 0)

        // Unknown debtors, days too far ahead, callers without the role.
        let unknown = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(S.getContactBudget, SchedulingV1.GetContactBudgetRequest(
                debtorId: IDGenerator.make(prefix: "dbt", nowMs: harness.clock.now)), metadata: harness.platform)
        }
        #expect(unknown?.code == .notFound)
        let tooFar = await #expect(throws: RPCError.self) { _ = try await budget(TypeV1.Date(year: 2026, month: 3, day: 18)) }
        #expect(tooFar?.code == .invalidArgument)
        #expect(tooFar?.message.hasPrefix("date:") == true)
        let manager = try await harness.metadata(.agencyManager, agency: world.agency.id)
        let denied = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(S.getContactBudget, SchedulingV1.GetContactBudgetRequest(debtorId: account.debtorID),
                                               metadata: manager)
        }
        #expect(denied?.code == .permissionDenied)
        await harness.close()
    }
}
