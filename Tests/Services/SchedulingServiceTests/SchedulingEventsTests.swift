import Foundation
import Models
import RPC
import RPCWire
import SchedulingService
import ServiceKit
import ServiceTestSupport
import Testing
import Validation

private typealias S = SchedulingV1.SchedulingService

/// WatchEvents of the scheduling service: each appointment transition, each agency and
/// collector status change and each expiry warning is one event (CloudEvents, the resource
/// after the change as data), written with the change, in commit order; a refused call and a
/// replayed request write none.
@Suite("Scheduling events: appointments, agencies, collectors, expiry warnings", .serialized,
       .enabled(if: ServedService.Transport.current == .loopback,
                "the in-process transport serves no open-ended streams read as they arrive"))
struct SchedulingEventsTests {
    /// Reads events from an open watch, `count` at a time.
    static func watch(_ harness: SchedulingHarness, _ request: TypeV1.WatchEventsRequest) async throws -> EventStream {
        try await EventStream(harness.client, S.watchEvents, request, metadata: harness.platform)
    }

    /// `event`'s data in both encodings, checked to agree.
    static func appointment(_ event: TypeV1.Event) throws -> SchedulingV1.Appointment {
        let binary = try SchedulingV1.Appointment(decoding: event.data)
        #expect(try SchedulingV1.Appointment(jsonText: event.dataJson) == binary)
        return binary
    }

    static func reschedule(_ harness: SchedulingHarness, _ id: String, requestID: String, day: Int) async throws(RPCError) -> SchedulingV1.Appointment {
        try await harness.client.unary(S.rescheduleAppointment, SchedulingV1.RescheduleAppointmentRequest(
            requestId: requestID, appointmentId: id, windowStartMs: march(day, 10), windowEndMs: march(day, 12),
            reason: "the debtor asked for another morning"), metadata: harness.platform)
    }

    static func complete(_ harness: SchedulingHarness, _ id: String, requestID: String, visitID: String) async throws -> SchedulingV1.Appointment {
        try await harness.client.unary(S.completeAppointment, SchedulingV1.CompleteAppointmentRequest(
            requestId: requestID, appointmentId: id, visitId: visitID, checkedOutMs: harness.clock.now),
            metadata: try await harness.metadata(.service))
    }

    @Test("every appointment transition is one event, in order, its data what the call returned; refusals and replays add none",
          .timeLimit(.minutes(2)))
    func appointmentEvents() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        let watch = try await Self.watch(harness, .init(types: ["doorstep.scheduling.appointment.*"]))
        let first = harness.addAccount()
        let second = harness.addAccount()

        // The first appointment: booked, notified, confirmed, rescheduled, notified, cancelled.
        let booked = try await harness.book(first.accountID, crew: [world.c[0], world.c[1]], march(12, 10), march(12, 12),
                                            requestID: "book-1")
        #expect(try await harness.book(first.accountID, crew: [world.c[0], world.c[1]], march(12, 10), march(12, 12),
                                       requestID: "book-1").id == booked.id, "a replay")
        await harness.deliverNotices()
        let notified = try await harness.get(booked.id)
        let confirmed = try await harness.confirm(booked.id, requestID: "confirm-1")
        #expect(try await harness.confirm(booked.id, requestID: "confirm-1").version == confirmed.version, "a replay")
        let refused = await #expect(throws: RPCError.self) { _ = try await harness.confirm(booked.id, requestID: "confirm-2") }
        #expect(try refusedRules(refused) == ["appointment-state"])
        let stale = await #expect(throws: RPCError.self) {
            _ = try await harness.cancel(booked.id, requestID: "cancel-0", expectedVersion: confirmed.version - 1)
        }
        #expect(stale?.code == .aborted)
        let rescheduled = try await Self.reschedule(harness, booked.id, requestID: "move-1", day: 13)
        await harness.deliverNotices()
        let renotified = try await harness.get(booked.id)
        let cancelled = try await harness.cancel(booked.id, requestID: "cancel-1")
        #expect(try await harness.cancel(booked.id, requestID: "cancel-1").version == cancelled.version, "a replay")

        // The second: booked, notified, missed after its window and the grace, completed late.
        let other = try await harness.book(second.accountID, crew: [world.c[2], world.c[3]], march(12, 14), march(12, 16),
                                           requestID: "book-2")
        await harness.deliverNotices()
        let otherNotified = try await harness.get(other.id)
        harness.clock.set(march(12, 18, 1))
        let sweep = MissedAppointmentSweep(database: harness.database, graceMinutes: 120, clock: ServiceClock { harness.clock.now },
                                           logger: harness.logger)
        #expect(try await sweep.sweep() == 1)
        #expect(try await sweep.sweep() == 0)
        let missed = try await harness.get(other.id)
        let visitID = IDGenerator.make(prefix: "vis", nowMs: harness.clock.now)
        let completed = try await Self.complete(harness, other.id, requestID: "complete-1", visitID: visitID)
        let unchanged = try await Self.complete(harness, other.id, requestID: "complete-2", visitID: visitID)
        #expect(unchanged.version == completed.version, "delivered twice: already in effect, no change")

        let expected: [(String, SchedulingV1.Appointment)] = [
            ("booked", booked), ("notified", notified), ("confirmed", confirmed), ("rescheduled", rescheduled),
            ("notified", renotified), ("cancelled", cancelled),
            ("booked", other), ("notified", otherNotified), ("missed", missed), ("completed", completed),
        ]
        let received = try await watch.take(expected.count)
        #expect(received.map(\.type) == expected.map { "doorstep.scheduling.appointment.\($0.0)" })
        #expect(received.map(\.subject) == expected.map { "appointments/\($0.1.id)" })
        #expect(try received.map(Self.appointment) == expected.map { $0.1 }, "the data is the appointment as the call returned it")
        #expect(received.allSatisfy { $0.source == "/doorstep/scheduling" && $0.specVersion == "1.0"
                                      && $0.dataSchema == "doorstep.scheduling.v1.Appointment" })
        #expect(received.map(\.timeMs) == expected.map { $0.1.updatedMs })
        let cursors = received.map { Int64($0.cursor)! }
        #expect(cursors == cursors.sorted() && Set(cursors).count == cursors.count)
        #expect(Set(received.map(\.id)).count == received.count)

        // Nothing else was written: the next event is the next change.
        let third = harness.addAccount()
        let marker = try await harness.book(third.accountID, crew: [world.c[0], world.c[1]], march(14, 14), march(14, 16),
                                            requestID: "book-3")
        let next = try await watch.take(1)
        #expect(next.map(\.subject) == ["appointments/\(marker.id)"] && next.first?.type == "doorstep.scheduling.appointment.booked")
        watch.call.cancel()
        await harness.close()
    }

    @Test("agency and collector status changes: one event each, after the appointments a suspension cancels; none without a change",
          .timeLimit(.minutes(2)))
    func statusEvents() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        let watch = try await Self.watch(harness, .init(types: ["doorstep.scheduling.agency.*", "doorstep.scheduling.collector.*",
                                                           "doorstep.scheduling.appointment.cancelled"]))
        let account = harness.addAccount()
        let booked = try await harness.book(account.accountID, crew: [world.c[0], world.c[1]], march(12, 10), march(12, 12),
                                            requestID: "book-1")
        let manager = try await harness.metadata(.agencyManager, agency: world.agency.id)

        // A collector: the first suspension and the lifting of the last one change its status.
        func suspend(_ reason: SchedulingV1.SuspensionReason, _ requestID: String) async throws -> SchedulingV1.Collector {
            try await harness.client.unary(S.suspendCollector, SchedulingV1.SuspendCollectorRequest(
                requestId: requestID, collectorId: world.c[3], reason: reason, note: "under review"), metadata: harness.platform)
        }
        func lift(_ suspension: String, _ requestID: String) async throws -> SchedulingV1.Collector {
            var request = SchedulingV1.ReinstateCollectorRequest(requestId: requestID, collectorId: world.c[3], note: "cleared")
            request.suspension = .suspensionId(suspension)
            return try await harness.client.unary(S.reinstateCollector, request, metadata: harness.platform)
        }
        let suspended = try await suspend(.agencyDecision, "suspend-c-1")
        let twice = try await suspend(.credentialReview, "suspend-c-2")
        #expect(twice.status == .suspended && twice.suspensions.count == 2)
        let partly = try await lift(twice.suspensions[0].id, "lift-1")
        #expect(partly.status == .suspended, "one suspension still active")
        let liftedAgain = await #expect(throws: RPCError.self) { _ = try await lift(twice.suspensions[0].id, "lift-2") }
        #expect(try refusedRules(liftedAgain) == ["suspension-lifted"])
        let active = try await lift(twice.suspensions[1].id, "lift-3")
        #expect(active.status == .active)

        // The agency: a suspension cancels the booked appointment first; a refused move and a
        // passed inspection change nothing; a failed inspection suspends; the exit is final.
        let agencySuspended = try await harness.client.unary(S.suspendAgency, SchedulingV1.SuspendAgencyRequest(
            requestId: "suspend-a-1", agencyId: world.agency.id, reason: "licence under review"), metadata: harness.platform)
        let cancelled = try await harness.get(booked.id)
        #expect(cancelled.state == .cancelled && cancelled.cancellation?.reason == .compliance)
        let again = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(S.suspendAgency, SchedulingV1.SuspendAgencyRequest(
                requestId: "suspend-a-2", agencyId: world.agency.id, reason: "again"), metadata: harness.platform)
        }
        #expect(try refusedRules(again) == ["agency-state"])
        let byManager = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(S.reinstateAgency, SchedulingV1.ReinstateAgencyRequest(
                requestId: "reinstate-0", agencyId: world.agency.id, reason: "we fixed it"), metadata: manager)
        }
        #expect(byManager?.code == .permissionDenied)
        let reinstated = try await harness.client.unary(S.reinstateAgency, SchedulingV1.ReinstateAgencyRequest(
            requestId: "reinstate-1", agencyId: world.agency.id, reason: "licence confirmed"), metadata: harness.platform)
        func inspect(_ result: SchedulingV1.InspectionResult, _ requestID: String) async throws -> SchedulingV1.Agency {
            try await harness.client.unary(S.recordInspection, SchedulingV1.RecordInspectionRequest(
                requestId: requestID, agencyId: world.agency.id, inspectionDate: TypeV1.Date(year: 2026, month: 3, day: 9),
                result: result, inspector: "上海市地方金融监督管理局 检查组 3", findings: result == .failed ? "录音缺失" : ""),
                metadata: harness.platform)
        }
        let passed = try await inspect(.passed, "inspect-1")
        #expect(passed.status == .active)
        let failed = try await inspect(.failed, "inspect-2")
        #expect(failed.status == .suspended)
        let exited = try await harness.client.unary(S.exitAgency, SchedulingV1.ExitAgencyRequest(
            requestId: "exit-1", agencyId: world.agency.id, reason: "left the market"), metadata: harness.platform)

        let expected: [(type: String, subject: String)] = [
            ("collector.status_changed", "collectors/\(world.c[3])"), ("collector.status_changed", "collectors/\(world.c[3])"),
            ("appointment.cancelled", "appointments/\(booked.id)"), ("agency.status_changed", "agencies/\(world.agency.id)"),
            ("agency.status_changed", "agencies/\(world.agency.id)"), ("agency.status_changed", "agencies/\(world.agency.id)"),
            ("agency.status_changed", "agencies/\(world.agency.id)"),
        ]
        let received = try await watch.take(expected.count)
        #expect(received.map(\.type) == expected.map { "doorstep.scheduling.\($0.type)" })
        #expect(received.map(\.subject) == expected.map(\.subject))
        #expect(try SchedulingV1.Collector(decoding: received[0].data) == suspended)
        #expect(try SchedulingV1.Collector(decoding: received[1].data) == active)
        #expect(try Self.appointment(received[2]) == cancelled)
        let agencies = try received[3...].map { try SchedulingV1.Agency(decoding: $0.data) }
        #expect(agencies == [agencySuspended, reinstated, failed, exited])
        #expect(agencies.map(\.status) == [.suspended, .active, .suspended, .exited])
        #expect(try received[3...].map { try SchedulingV1.Agency(jsonText: $0.dataJson) } == agencies)

        // Nothing else: the next event is the next change.
        _ = try await suspend(.agencyDecision, "suspend-c-3")
        #expect(try await watch.take(1).map(\.type) == ["doorstep.scheduling.collector.status_changed"])
        watch.call.cancel()
        await harness.close()
    }

    @Test("expiry warnings: once per item and threshold on the test clock; a restart does not repeat them; a renewal warns afresh",
          .timeLimit(.minutes(2)))
    func expiryWarnings() async throws {
        let harness = try await SchedulingHarness()
        _ = try await harness.setUpWorld()  // valid for long: never warned of
        let agency = try await harness.client.unary(S.registerAgency, SchedulingV1.RegisterAgencyRequest(
            requestId: "agency-soon", agency: SchedulingV1.Agency(
                displayName: "浦东示例催收服务有限公司", licenceNumber: "SH-COLL-2024-0099",
                licenceExpiryDate: TypeV1.Date(year: 2026, month: 5, day: 31), regionsServed: ["310115"],
                lastInspectionDate: TypeV1.Date(year: 2026, month: 1, day: 20))),
            metadata: harness.platform)
        let collector = try await harness.client.unary(S.registerCollector, SchedulingV1.RegisterCollectorRequest(
            requestId: "collector-soon", collector: SchedulingV1.Collector(
                agencyId: agency.id, fullName: "赵敏", certificationNumber: "SH-CERT-0099",
                certificationExpiryDate: TypeV1.Date(year: 2026, month: 3, day: 15), regionCode: "310115", homeLocation: Places.home,
                timeZone: "Asia/Shanghai", shiftStart: TypeV1.TimeOfDay(hours: 8, minutes: 0),
                shiftEnd: TypeV1.TimeOfDay(hours: 20, minutes: 0), dailyCapacity: 6)),
            metadata: harness.platform)
        let watch = try await Self.watch(harness, .init(types: ["doorstep.scheduling.agency.licence_expiring",
                                                           "doorstep.scheduling.agency.inspection_expiring",
                                                           "doorstep.scheduling.collector.certification_expiring"]))
        let service = harness.service
        func read(_ count: Int) async throws -> [(type: String, subject: String, item: SchedulingV1.ExpiringItem)] {
            try await watch.take(count).map { event in
                let item = try SchedulingV1.ExpiringItem(decoding: event.data)
                #expect(try SchedulingV1.ExpiringItem(jsonText: event.dataJson) == item)
                #expect(event.timeMs == harness.clock.now)
                return (event.type, event.subject, item)
            }
        }

        // 2026-03-10: the certification has 5 days left (threshold 7), the licence 82 (90).
        #expect(try await service.warnExpiring() == 2)
        let first = try await read(2)
        #expect(first.map(\.type) == ["doorstep.scheduling.collector.certification_expiring", "doorstep.scheduling.agency.licence_expiring"])
        #expect(first.map(\.subject) == ["collectors/\(collector.id)", "agencies/\(agency.id)"])
        #expect(first.map(\.item.daysLeft) == [5, 82])
        // The data is what ListExpiring lists for the item that day.
        let listed = try await harness.client.unary(S.listExpiring, SchedulingV1.ListExpiringRequest(withinDays: 90), metadata: harness.platform)
        #expect(listed.items == first.map(\.item))
        #expect(try await service.warnExpiring() == 0, "warned of once")

        // A restart: a new service on the same database remembers what was warned of.
        let restarted = SchedulingService(database: harness.database, clock: ServiceClock { harness.clock.now }, accounts: harness.accounts)
        #expect(try await restarted.warnExpiring() == 0)

        // 2026-03-15: the certification's last valid day (threshold 0); the licence is still in 90.
        harness.clock.set(march(15, 9))
        #expect(try await restarted.warnExpiring() == 1)
        #expect(try await service.warnExpiring() == 0)
        let lastDay = try await read(1)
        #expect(lastDay.map(\.subject) == ["collectors/\(collector.id)"] && lastDay.map(\.item.daysLeft) == [0])

        // 2026-05-01: the licence has 30 days left; the lapsed certification is not repeated.
        harness.clock.set(march(10, 9) + 52 * 86_400_000)
        #expect(try await service.warnExpiring() == 1)
        let thirty = try await read(1)
        #expect(thirty.map(\.type) == ["doorstep.scheduling.agency.licence_expiring"] && thirty.map(\.item.daysLeft) == [30])

        // Renewed to 2026-06-30: 60 days left, the new date is warned of at 90.
        _ = try await harness.client.unary(S.updateAgency, SchedulingV1.UpdateAgencyRequest(
            requestId: "renew-1", agencyId: agency.id,
            agency: SchedulingV1.Agency(licenceExpiryDate: TypeV1.Date(year: 2026, month: 6, day: 30)),
            updateMask: ["licence_expiry_date"]), metadata: harness.platform)
        #expect(try await service.warnExpiring() == 1)
        let renewed = try await read(1)
        #expect(renewed.map(\.item.daysLeft) == [60] && renewed.first?.item.lastValidDate == TypeV1.Date(year: 2026, month: 6, day: 30))
        #expect(try await service.warnExpiring() == 0)
        watch.call.cancel()
        await harness.close()
    }

    @Test("--expiry-warnings-interval-seconds: default 3600, 0 or off disables, bounds named")
    func expiryWarningsInterval() throws {
        var options = try SchedulingOptions.parse([])
        #expect(try options.expiryWarningsInterval(environment: [:]) == .seconds(3600))
        #expect(try options.expiryWarningsInterval(environment: ["DOORSTEP_EXPIRY_WARNINGS_INTERVAL_SECONDS": "off"]) == nil)
        #expect(try options.expiryWarningsInterval(environment: ["DOORSTEP_EXPIRY_WARNINGS_INTERVAL_SECONDS": "0"]) == nil)
        #expect(try options.expiryWarningsInterval(environment: ["DOORSTEP_EXPIRY_WARNINGS_INTERVAL_SECONDS": "600"]) == .seconds(600))
        options = try SchedulingOptions.parse(["--expiry-warnings-interval-seconds", "86400"])
        #expect(try options.expiryWarningsInterval(environment: ["DOORSTEP_EXPIRY_WARNINGS_INTERVAL_SECONDS": "off"]) == .seconds(86_400))
        options = try SchedulingOptions.parse(["--expiry-warnings-interval-seconds", "86401"])
        #expect(throws: ConfigurationError.self) { try options.expiryWarningsInterval(environment: [:]) }
        do {
            _ = try options.expiryWarningsInterval(environment: [:])
        } catch {
            #expect(error.description == "--expiry-warnings-interval-seconds: '86401' is not a number of seconds in 1...86400, 0 or off")
        }
    }
}
