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

/// The instant of `year`-`month`-`day` `hour`:00 in Asia/Shanghai (UTC+8, no daylight saving).
private func shanghai(_ year: Int, _ month: Int, _ day: Int, _ hour: Int = 8) -> Int64 {
    guard let date = CivilDate(year: year, month: month, day: day) else {
        fatalError("test constant \(year)-\(month)-\(day) is not a valid date")
    }
    return (Int64(date.dayNumber) * 86_400 + Int64(hour - 8) * 3_600) * 1000
}

private func date(_ year: Int32, _ month: Int32, _ day: Int32) -> TypeV1.Date {
    TypeV1.Date(year: year, month: month, day: day)
}

/// The registry's calls, as a platform caller unless `metadata` says otherwise.
private extension SchedulingHarness {
    func agency(_ id: String, metadata: Metadata? = nil) async throws(RPCError) -> SchedulingV1.Agency {
        try await client.unary(S.getAgency, SchedulingV1.GetAgencyRequest(agencyId: id), metadata: metadata ?? platform)
    }

    func suspendAgency(_ id: String, reason: String, requestID: String, expectedVersion: Int64 = 0,
                       metadata: Metadata? = nil) async throws(RPCError) -> SchedulingV1.Agency {
        try await client.unary(S.suspendAgency, SchedulingV1.SuspendAgencyRequest(
            requestId: requestID, agencyId: id, expectedVersion: expectedVersion, reason: reason), metadata: metadata ?? platform)
    }

    func reinstateAgency(_ id: String, reason: String, requestID: String, expectedVersion: Int64 = 0) async throws(RPCError) -> SchedulingV1.Agency {
        try await client.unary(S.reinstateAgency, SchedulingV1.ReinstateAgencyRequest(
            requestId: requestID, agencyId: id, expectedVersion: expectedVersion, reason: reason), metadata: platform)
    }

    func exitAgency(_ id: String, reason: String, requestID: String, expectedVersion: Int64 = 0) async throws(RPCError) -> SchedulingV1.Agency {
        try await client.unary(S.exitAgency, SchedulingV1.ExitAgencyRequest(
            requestId: requestID, agencyId: id, expectedVersion: expectedVersion, reason: reason), metadata: platform)
    }

    func recordInspection(_ id: String, on day: TypeV1.Date, _ result: SchedulingV1.InspectionResult, findings: String = "",
                          requestID: String, expectedVersion: Int64 = 0) async throws(RPCError) -> SchedulingV1.Agency {
        try await client.unary(S.recordInspection, SchedulingV1.RecordInspectionRequest(
            requestId: requestID, agencyId: id, expectedVersion: expectedVersion, inspectionDate: day, result: result,
            inspector: "上海市地方金融监督管理局 检查组 3", findings: findings), metadata: platform)
    }

    func updateAgency(_ id: String, _ mask: [String], _ values: SchedulingV1.Agency?, requestID: String,
                      expectedVersion: Int64 = 0) async throws(RPCError) -> SchedulingV1.Agency {
        try await client.unary(S.updateAgency, SchedulingV1.UpdateAgencyRequest(
            requestId: requestID, agencyId: id, expectedVersion: expectedVersion, agency: values, updateMask: mask), metadata: platform)
    }

    func updateCollector(_ id: String, _ mask: [String], _ values: SchedulingV1.Collector?, requestID: String,
                         expectedVersion: Int64 = 0) async throws(RPCError) -> SchedulingV1.Collector {
        try await client.unary(S.updateCollector, SchedulingV1.UpdateCollectorRequest(
            requestId: requestID, collectorId: id, expectedVersion: expectedVersion, collector: values, updateMask: mask),
            metadata: platform)
    }

    func expiring(within days: Int32, agency: String = "", pageSize: Int32 = 0, pageToken: String = "",
                  metadata: Metadata? = nil) async throws(RPCError) -> SchedulingV1.ListExpiringResponse {
        try await client.unary(S.listExpiring, SchedulingV1.ListExpiringRequest(
            withinDays: days, agencyId: agency, pageSize: pageSize, pageToken: pageToken), metadata: metadata ?? platform)
    }

    /// Every agency the caller may see (all pages).
    func agencies(_ request: SchedulingV1.ListAgenciesRequest = .init(), metadata: Metadata? = nil) async throws(RPCError) -> [SchedulingV1.Agency] {
        var request = request
        var result: [SchedulingV1.Agency] = []
        repeat {
            let page = try await client.unary(S.listAgencies, request, metadata: metadata ?? platform)
            result += page.agencies
            request.pageToken = page.nextPageToken
        } while !request.pageToken.isEmpty
        return result
    }

    /// Every collector the caller may see (all pages).
    func collectors(_ request: SchedulingV1.ListCollectorsRequest = .init(), metadata: Metadata? = nil) async throws(RPCError) -> [SchedulingV1.Collector] {
        var request = request
        var result: [SchedulingV1.Collector] = []
        repeat {
            let page = try await client.unary(S.listCollectors, request, metadata: metadata ?? platform)
            result += page.collectors
            request.pageToken = page.nextPageToken
        } while !request.pageToken.isEmpty
        return result
    }

    /// A second agency (licence `licence`) with two collectors of its own.
    func otherAgency(licence: String = "SH-COLL-2025-0777", licenceExpiry: TypeV1.Date = date(2028, 6, 30))
        async throws -> (agency: SchedulingV1.Agency, crew: [String]) {
        let agency = try await client.unary(S.registerAgency, SchedulingV1.RegisterAgencyRequest(
            requestId: "agency-\(licence)", agency: SchedulingV1.Agency(
                displayName: "浦东另一家催收公司 \(licence)", licenceNumber: licence, licenceExpiryDate: licenceExpiry,
                regionsServed: ["310115"], lastInspectionDate: date(2026, 2, 1))), metadata: platform)
        var crew: [String] = []
        for index in 0..<2 {
            crew.append(try await registerCollector(agency: agency.id, name: "他司催收员\(index)",
                                                    certification: "CERT-\(licence)-\(index)", home: Places.nearby).id)
        }
        return (agency, crew)
    }
}

/// The expected INVALID_ARGUMENT of `call`, whose message starts with `field` and a colon.
private func invalid(_ field: String, _ call: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async {
    let error = await #expect(throws: RPCError.self, sourceLocation: sourceLocation) { try await call() }
    #expect(error?.code == .invalidArgument, "\(String(describing: error))", sourceLocation: sourceLocation)
    #expect(error?.message.hasPrefix("\(field):") == true, "\(error?.message ?? "")", sourceLocation: sourceLocation)
}

/// Agencies and collectors over their whole life (issue #13): inspections falling due and
/// renewed, suspension (which cancels future appointments with notices), reinstatement and
/// exit, updates of licences and certifications, ListExpiring, and who may do what. Real gRPC
/// over loopback on a real database, the accounts service faked; the clock starts at
/// 2026-03-10 08:00 Asia/Shanghai. The world's agency was inspected on 2026-01-15 (valid until
/// 2027-01-15 under cn-2026), its licence runs to 2027-12-31, its collectors' certifications
/// to 2027-06-30.
@Suite("Scheduling: agencies and collectors over their whole life", .serialized)
struct AgencyLifecycleTests {
    @Test("twelve months after its inspection an agency is refused at booking; ListExpiring names it 30 days ahead; a passed inspection makes it bookable again",
          .timeLimit(.minutes(1)))
    func inspectionFallsDue() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        let crew = [world.c[0], world.c[1]]

        // 30 days before the inspection period ends, ListExpiring names it; 29 days ahead, not yet.
        harness.clock.set(shanghai(2026, 12, 16))
        let ahead = try await harness.expiring(within: 30)
        #expect(ahead.asOfDate == date(2026, 12, 16))
        #expect(ahead.timeZone == "Asia/Shanghai")
        #expect(ahead.items.map(\.kind) == [.agencyInspection], "the licence and certifications run longer: \(ahead.items)")
        let due = try #require(ahead.items.first)
        #expect(due.resourceId == world.agency.id && due.agencyId == world.agency.id)
        #expect(due.name == world.agency.displayName)
        #expect(due.reference == "2026-01-15")
        #expect(due.lastValidDate == date(2027, 1, 15))
        #expect(due.daysLeft == 30)
        #expect(due.ruleId == "agency-inspection")
        #expect(due.detail.contains("2027-01-15") && due.detail.contains("30 days left"), "\(due.detail)")
        #expect(ahead.nextPageToken.isEmpty)
        #expect(try await harness.expiring(within: 29).items.isEmpty)

        // The period's last day is still bookable; the day after is refused for the inspection alone.
        harness.clock.set(shanghai(2027, 1, 13))
        let lastDay = try await harness.book(harness.addAccount().accountID, crew: crew, shanghai(2027, 1, 15, 10),
                                             shanghai(2027, 1, 15, 12), requestID: "book-last-day")
        #expect(lastDay.state == .proposed)
        let account = harness.addAccount()
        let late = await #expect(throws: RPCError.self) {
            _ = try await harness.book(account.accountID, crew: crew, shanghai(2027, 1, 16, 10), shanghai(2027, 1, 16, 12),
                                       requestID: "book-after-period")
        }
        let refused = try refusal(of: late)
        #expect(refused.violations.map(\.ruleId) == ["agency-inspection"])
        #expect(refused.violations.first?.subjectId == world.agency.id)
        #expect(try await harness.list(SchedulingV1.ListAppointmentsRequest(accountId: account.accountID)).isEmpty)
        // Now due in 2 days.
        #expect(try await harness.expiring(within: 30).items.map(\.daysLeft) == [2])

        // A passed inspection today: last_inspection_date moves, the agency is bookable again.
        let inspected = try await harness.recordInspection(world.agency.id, on: date(2027, 1, 13), .passed, requestID: "inspect-1",
                                                           expectedVersion: world.agency.version)
        #expect(inspected.lastInspectionDate == date(2027, 1, 13))
        #expect(inspected.status == .active)
        #expect(inspected.version == world.agency.version + 1)
        #expect(inspected.updatedMs == harness.clock.now)
        let record = try #require(inspected.inspections.first)
        #expect(inspected.inspections.count == 1)
        #expect(record.inspectionDate == date(2027, 1, 13) && record.result == .passed)
        #expect(record.recordedBy?.role == .platform && record.recordedMs == harness.clock.now)
        #expect(try await harness.agency(world.agency.id) == inspected)
        let booked = try await harness.book(account.accountID, crew: crew, shanghai(2027, 1, 16, 10), shanghai(2027, 1, 16, 12),
                                            requestID: "book-after-inspection")
        #expect(booked.state == .proposed)
        #expect(try await harness.expiring(within: 30).items.isEmpty)

        // An older passed inspection recorded late is kept, but never moves the date back.
        let older = try await harness.recordInspection(world.agency.id, on: date(2026, 11, 2), .passed, requestID: "inspect-0")
        #expect(older.lastInspectionDate == date(2027, 1, 13))
        #expect(older.inspections.map(\.inspectionDate) == [date(2027, 1, 13), date(2026, 11, 2)])
        // The same request again: the first response, nothing recorded twice.
        let replay = try await harness.recordInspection(world.agency.id, on: date(2026, 11, 2), .passed, requestID: "inspect-0")
        #expect(replay == older)
        #expect(try await harness.agency(world.agency.id).inspections.count == 2)
        await harness.close()
    }

    @Test("suspending an agency cancels its future appointments in one go, each with a CANCELLED notice to the debtor; reinstating does not bring them back",
          .timeLimit(.minutes(1)))
    func suspensionCancelsFutureAppointments() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        let other = try await harness.otherAgency()
        let crew = [world.c[0], world.c[1]]
        let sink = RecordingSink()
        let dispatcher = harness.dispatcher(sink: sink)

        let underWay = try await harness.book(harness.addAccount().accountID, crew: crew, march(12, 10), march(12, 12), requestID: "book-12")
        let confirmed = try await harness.book(harness.addAccount().accountID, crew: crew, march(13, 10), march(13, 12), requestID: "book-13")
        let theirs = try await harness.book(harness.addAccount().accountID, crew: other.crew, march(13, 10), march(13, 12),
                                            requestID: "book-theirs")
        #expect(await dispatcher.dispatchDue() == 3)
        #expect(try await harness.confirm(confirmed.id, requestID: "confirm-13").state == .confirmed)
        // Booked later: its BOOKED notice is still pending when the agency is suspended.
        let proposed = try await harness.book(harness.addAccount().accountID, crew: crew, march(14, 10), march(14, 12), requestID: "book-14")
        #expect(proposed.state == .proposed)

        // The first visit is under way when the agency is suspended.
        harness.clock.set(march(12, 10, 30))
        let reason = "licence under review by the regulator"
        let suspended = try await harness.suspendAgency(world.agency.id, reason: reason, requestID: "suspend-1", expectedVersion: 1)
        #expect(suspended.status == .suspended)
        #expect(suspended.statusReason == reason)
        #expect(suspended.version == 2)
        let change = try #require(suspended.statusChanges.last)
        #expect(suspended.statusChanges.count == 1)
        #expect(change.previousStatus == .active && change.status == .suspended)
        #expect(change.reason == reason)
        #expect(change.changedBy?.role == .platform)
        #expect(change.changedMs == harness.clock.now)
        #expect(change.appointmentsCancelled == 2)

        for appointment in [confirmed, proposed] {
            let read = try await harness.get(appointment.id)
            #expect(read.state == .cancelled, "\(appointment.id)")
            #expect(read.cancellation?.reason == .compliance)
            #expect(read.cancellation?.cancelledMs == harness.clock.now)
            #expect(read.cancellation?.cancelledBy?.role == .platform)
            #expect(read.cancellation?.note.contains(world.agency.id) == true && read.cancellation?.note.contains(reason) == true)
            #expect(read.notices.last?.kind == .cancelled)
            #expect(read.notices.last?.delivery?.status == .pending)
        }
        #expect(try await harness.get(underWay.id).state == .notified, "a visit under way is not cancelled")
        #expect(try await harness.get(theirs.id).state == .notified, "another agency's appointment is untouched")

        // The cancellation notices reach the debtors through the outbox (with the pending BOOKED one).
        #expect(await dispatcher.dispatchDue() == 3)
        let notices = try sink.delivered.suffix(3).map { try SchedulingV1.CustomerNotice(jsonText: String(decoding: $0.payload, as: UTF8.self)) }
        let cancellations = notices.filter { $0.kind == .cancelled }
        #expect(Set(cancellations.map(\.appointmentId)) == [confirmed.id, proposed.id])
        #expect(cancellations.allSatisfy { $0.agencyName == world.agency.displayName })
        #expect(cancellations.allSatisfy { $0.collectorNames == [world.collectors[0].fullName, world.collectors[1].fullName] })
        #expect(try await harness.get(proposed.id).state == .cancelled, "a late BOOKED delivery does not revive it")

        // The same request again: the first response, nothing cancelled or sent twice.
        let replay = try await harness.suspendAgency(world.agency.id, reason: reason, requestID: "suspend-1", expectedVersion: 1)
        #expect(replay == suspended)
        #expect(await dispatcher.dispatchDue() == 0)

        // Booking with the suspended agency: agency-status, quoting the reason.
        let refused = await #expect(throws: RPCError.self) {
            _ = try await harness.book(harness.addAccount().accountID, crew: crew, march(15, 10), march(15, 12), requestID: "book-15")
        }
        #expect(try refusedRules(refused) == ["agency-status"])
        #expect(refused?.message.contains(reason) == true, "\(refused?.message ?? "")")
        // Suspended twice: agency-state; a stale version: ABORTED.
        let twice = await #expect(throws: RPCError.self) {
            _ = try await harness.suspendAgency(world.agency.id, reason: "again", requestID: "suspend-2")
        }
        #expect(try refusedRules(twice) == ["agency-state"])
        let stale = await #expect(throws: RPCError.self) {
            _ = try await harness.reinstateAgency(world.agency.id, reason: "review closed", requestID: "reinstate-0", expectedVersion: 1)
        }
        #expect(stale?.code == .aborted)

        // Reinstated: ACTIVE and bookable; what was cancelled stays cancelled.
        let reinstated = try await harness.reinstateAgency(world.agency.id, reason: "review closed", requestID: "reinstate-1",
                                                           expectedVersion: 2)
        #expect(reinstated.status == .active)
        #expect(reinstated.statusReason.isEmpty)
        #expect(reinstated.version == 3)
        #expect(reinstated.statusChanges.map(\.status) == [.suspended, .active])
        #expect(reinstated.statusChanges.last?.appointmentsCancelled == 0)
        #expect(try await harness.get(confirmed.id).state == .cancelled)
        let again = try await harness.book(harness.addAccount().accountID, crew: crew, march(15, 10), march(15, 12), requestID: "book-15b")
        #expect(again.state == .proposed)
        let reinstatedTwice = await #expect(throws: RPCError.self) {
            _ = try await harness.reinstateAgency(world.agency.id, reason: "again", requestID: "reinstate-2")
        }
        #expect(try refusedRules(reinstatedTwice) == ["agency-state"])
        await harness.close()
    }

    @Test("a FAILED inspection suspends the agency and cancels its future appointments; a passed re-inspection alone does not reinstate it",
          .timeLimit(.minutes(1)))
    func failedInspectionSuspends() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        let crew = [world.c[0], world.c[1]]
        let booked = try await harness.book(harness.addAccount().accountID, crew: crew, march(12, 10), march(12, 12), requestID: "book-1")

        // Malformed inspections are refused naming the field; nothing changes.
        await invalid("findings") {
            _ = try await harness.recordInspection(world.agency.id, on: date(2026, 3, 9), .failed, requestID: "inspect-x1")
        }
        await invalid("inspection_date") {
            _ = try await harness.recordInspection(world.agency.id, on: date(2026, 3, 11), .passed, requestID: "inspect-x2")
        }
        await invalid("inspection_date") {
            _ = try await harness.recordInspection(world.agency.id, on: date(2026, 2, 30), .passed, requestID: "inspect-x3")
        }
        await invalid("result") {
            _ = try await harness.recordInspection(world.agency.id, on: date(2026, 3, 9), .unspecified, requestID: "inspect-x4")
        }
        await invalid("agency_id") {
            _ = try await harness.recordInspection("agy_nope", on: date(2026, 3, 9), .passed, requestID: "inspect-x5")
        }
        #expect(try await harness.agency(world.agency.id).version == 1)

        let findings = "no visit recordings kept for February; two collectors without ID cards"
        let failed = try await harness.recordInspection(world.agency.id, on: date(2026, 3, 9), .failed, findings: findings,
                                                        requestID: "inspect-1")
        #expect(failed.status == .suspended)
        #expect(failed.statusReason.contains("failed inspection of 2026-03-09") && failed.statusReason.contains(findings),
                "\(failed.statusReason)")
        #expect(failed.lastInspectionDate == date(2026, 1, 15), "a failed inspection does not renew")
        #expect(failed.inspections.map(\.result) == [.failed])
        #expect(failed.inspections.first?.findings == findings)
        #expect(failed.statusChanges.count == 1)
        #expect(failed.statusChanges.first?.appointmentsCancelled == 1)
        #expect(failed.version == 2)
        let cancelled = try await harness.get(booked.id)
        #expect(cancelled.state == .cancelled)
        #expect(cancelled.cancellation?.reason == .compliance)
        #expect(cancelled.notices.map(\.kind) == [.booked, .cancelled])
        let refused = await #expect(throws: RPCError.self) {
            _ = try await harness.book(harness.addAccount().accountID, crew: crew, march(13, 10), march(13, 12), requestID: "book-2")
        }
        #expect(try refusedRules(refused) == ["agency-status"])

        // Re-inspected and passed: the date moves, the agency stays suspended until reinstated.
        let passed = try await harness.recordInspection(world.agency.id, on: date(2026, 3, 10), .passed, requestID: "inspect-2")
        #expect(passed.lastInspectionDate == date(2026, 3, 10))
        #expect(passed.status == .suspended)
        #expect(passed.inspections.map(\.result) == [.failed, .passed])
        // A second failure while suspended: still suspended, with the new reason, no new change.
        let again = try await harness.recordInspection(world.agency.id, on: date(2026, 3, 10), .failed, findings: "records still missing",
                                                       requestID: "inspect-3")
        #expect(again.status == .suspended)
        #expect(again.statusReason.contains("records still missing"))
        #expect(again.statusChanges.count == 1)
        let reinstated = try await harness.reinstateAgency(world.agency.id, reason: "records handed in", requestID: "reinstate-1")
        #expect(reinstated.status == .active)
        let rebooked = try await harness.book(harness.addAccount().accountID, crew: crew, march(13, 10), march(13, 12), requestID: "book-3")
        #expect(rebooked.state == .proposed)
        await harness.close()
    }

    @Test("EXITED is final: nothing changes the agency again, its appointments are cancelled, ListExpiring forgets it",
          .timeLimit(.minutes(1)))
    func exitIsFinal() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        let other = try await harness.otherAgency()
        let booked = try await harness.book(harness.addAccount().accountID, crew: [world.c[0], world.c[1]], march(12, 10), march(12, 12),
                                            requestID: "book-1")
        #expect(try await harness.expiring(within: 365).items.contains { $0.resourceId == world.agency.id })

        let exited = try await harness.exitAgency(world.agency.id, reason: "contract ended", requestID: "exit-1")
        #expect(exited.status == .exited)
        #expect(exited.statusReason == "contract ended")
        #expect(exited.statusChanges.first?.appointmentsCancelled == 1)
        #expect(try await harness.get(booked.id).state == .cancelled)

        for (name, call) in [
            ("reinstate", { _ = try await harness.reinstateAgency(world.agency.id, reason: "back", requestID: "reinstate-1") }),
            ("suspend", { _ = try await harness.suspendAgency(world.agency.id, reason: "again", requestID: "suspend-1") }),
            ("exit", { _ = try await harness.exitAgency(world.agency.id, reason: "again", requestID: "exit-2") }),
            ("update", { _ = try await harness.updateAgency(world.agency.id, ["daily_visit_capacity"],
                                                            SchedulingV1.Agency(dailyVisitCapacity: 5), requestID: "update-1") }),
            ("inspect", { _ = try await harness.recordInspection(world.agency.id, on: date(2026, 3, 9), .passed, requestID: "inspect-1") }),
        ] as [(String, () async throws -> Void)] {
            let error = await #expect(throws: RPCError.self, "\(name)") { try await call() }
            #expect(try refusedRules(error) == ["agency-state"], "\(name)")
        }
        #expect(try await harness.agency(world.agency.id) == exited)
        // No new collectors, no bookings.
        let collector = await #expect(throws: RPCError.self) {
            _ = try await harness.registerCollector(agency: world.agency.id, name: "新人", certification: "SH-CERT-NEW", home: Places.home)
        }
        #expect(try refusedRules(collector) == ["agency-status"])
        let booking = await #expect(throws: RPCError.self) {
            _ = try await harness.book(harness.addAccount().accountID, crew: [world.c[2], world.c[3]], march(13, 10), march(13, 12),
                                       requestID: "book-2")
        }
        #expect(try refusedRules(booking) == ["agency-status"])
        // Out of ListExpiring; listed under EXITED.
        let watched = try await harness.expiring(within: 365).items
        #expect(!watched.contains { $0.agencyId == world.agency.id })
        #expect(watched.contains { $0.agencyId == other.agency.id })
        #expect(try await harness.agencies(SchedulingV1.ListAgenciesRequest(status: .exited)).map(\.id) == [world.agency.id])
        #expect(try await harness.agencies(SchedulingV1.ListAgenciesRequest(status: .active)).map(\.id) == [other.agency.id])

        // A suspended agency may exit too.
        _ = try await harness.suspendAgency(other.agency.id, reason: "pending review", requestID: "suspend-other")
        let gone = try await harness.exitAgency(other.agency.id, reason: "review failed", requestID: "exit-other")
        #expect(gone.statusChanges.map(\.status) == [.suspended, .exited])
        await harness.close()
    }

    @Test("UpdateAgency renews a licence through update_mask; fields it does not name stay; errors name the field; versions and licences are enforced",
          .timeLimit(.minutes(1)))
    func updateAgency() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        // An agency whose licence runs out at the end of the month.
        let other = try await harness.otherAgency(licence: "SH-COLL-2023-0100", licenceExpiry: date(2026, 3, 31))
        let soon = try await harness.expiring(within: 30)
        let licence = try #require(soon.items.first { $0.kind == .agencyLicence })
        #expect(licence.resourceId == other.agency.id && licence.reference == "SH-COLL-2023-0100")
        #expect(licence.daysLeft == 21 && licence.ruleId == "agency-licence")

        let contact = SchedulingV1.ContactDetails(name: "王经理", phone: "+86 21 5888 0000", email: "ops@example.cn")
        let renewal = SchedulingV1.Agency(displayName: "ignored: not in the mask", licenceNumber: "SH-COLL-2026-0042",
                                          licenceExpiryDate: date(2029, 3, 31), dailyVisitCapacity: 40, contact: contact)
        let mask = ["licence_number", "licence_expiry_date", "daily_visit_capacity", "contact"]
        let renewed = try await harness.updateAgency(other.agency.id, mask, renewal, requestID: "renew-1", expectedVersion: 1)
        #expect(renewed.licenceNumber == "SH-COLL-2026-0042")
        #expect(renewed.licenceExpiryDate == date(2029, 3, 31))
        #expect(renewed.dailyVisitCapacity == 40)
        #expect(renewed.contact == contact)
        #expect(renewed.displayName == other.agency.displayName)
        #expect(renewed.regionsServed == other.agency.regionsServed)
        #expect(renewed.lastInspectionDate == other.agency.lastInspectionDate)
        #expect(renewed.status == .active && renewed.version == 2 && renewed.updatedMs == harness.clock.now)
        #expect(renewed.createdMs == other.agency.createdMs)
        #expect(try await harness.agency(other.agency.id) == renewed)
        #expect(try await harness.updateAgency(other.agency.id, mask, renewal, requestID: "renew-1", expectedVersion: 1) == renewed)
        #expect(try await harness.expiring(within: 30).items.isEmpty, "renewed in time")
        // The old licence number is free again; the new one is taken.
        let taken = await #expect(throws: RPCError.self) {
            _ = try await harness.updateAgency(world.agency.id, ["licence_number"], SchedulingV1.Agency(licenceNumber: "SH-COLL-2026-0042"),
                                               requestID: "steal-1")
        }
        #expect(taken?.code == .alreadyExists)
        let stale = await #expect(throws: RPCError.self) {
            _ = try await harness.updateAgency(other.agency.id, ["daily_visit_capacity"], SchedulingV1.Agency(dailyVisitCapacity: 50),
                                               requestID: "stale-1", expectedVersion: 1)
        }
        #expect(stale?.code == .aborted)

        // Every mistake names its field; nothing changes.
        let id = other.agency.id
        await invalid("update_mask") { _ = try await harness.updateAgency(id, [], renewal, requestID: "bad-1") }
        await invalid("update_mask[1]") { _ = try await harness.updateAgency(id, ["contact", "status"], renewal, requestID: "bad-2") }
        await invalid("update_mask[1]") { _ = try await harness.updateAgency(id, ["contact", "contact"], renewal, requestID: "bad-3") }
        await invalid("update_mask[0]") {
            _ = try await harness.updateAgency(id, ["last_inspection_date"], renewal, requestID: "bad-4")
        }
        await invalid("agency") { _ = try await harness.updateAgency(id, ["contact"], nil, requestID: "bad-5") }
        await invalid("agency.licence_expiry_date") {
            _ = try await harness.updateAgency(id, ["licence_expiry_date"], SchedulingV1.Agency(licenceExpiryDate: date(2027, 2, 29)),
                                               requestID: "bad-6")
        }
        await invalid("agency.regions_served") {
            _ = try await harness.updateAgency(id, ["regions_served"], SchedulingV1.Agency(), requestID: "bad-7")
        }
        await invalid("agency.contact.phone") {
            _ = try await harness.updateAgency(id, ["contact"], SchedulingV1.Agency(contact: SchedulingV1.ContactDetails(name: "王经理")),
                                               requestID: "bad-8")
        }
        await invalid("agency.contact.email") {
            _ = try await harness.updateAgency(id, ["contact"], SchedulingV1.Agency(contact: SchedulingV1.ContactDetails(email: "ops at example")),
                                               requestID: "bad-9")
        }
        await invalid("agency.contact.phone") {
            _ = try await harness.updateAgency(id, ["contact"], SchedulingV1.Agency(contact: SchedulingV1.ContactDetails(phone: "call me")),
                                               requestID: "bad-10")
        }
        await invalid("agency.daily_visit_capacity") {
            _ = try await harness.updateAgency(id, ["daily_visit_capacity"], SchedulingV1.Agency(dailyVisitCapacity: -1), requestID: "bad-11")
        }
        #expect(try await harness.agency(id) == renewed)

        // Regions: adding one is free; dropping one the agency still works in is agency-region.
        let wider = try await harness.updateAgency(world.agency.id, ["regions_served"],
                                                   SchedulingV1.Agency(regionsServed: ["310115", "310104"]), requestID: "regions-1")
        #expect(wider.regionsServed == ["310115", "310104"])
        let dropped = await #expect(throws: RPCError.self) {
            _ = try await harness.updateAgency(world.agency.id, ["regions_served"], SchedulingV1.Agency(regionsServed: ["310104"]),
                                               requestID: "regions-2")
        }
        let regionRefusal = try refusal(of: dropped)
        #expect(regionRefusal.violations.map(\.ruleId) == ["agency-region"])
        #expect(regionRefusal.violations.first?.field == "agency.regions_served")
        #expect(dropped?.message.contains(world.c[0]) == true, "\(dropped?.message ?? "")")
        let narrower = try await harness.updateAgency(world.agency.id, ["regions_served"], SchedulingV1.Agency(regionsServed: ["310115"]),
                                                      requestID: "regions-3")
        #expect(narrower.regionsServed == ["310115"])
        // An unset contact in the mask removes it.
        let removed = try await harness.updateAgency(other.agency.id, ["contact"], SchedulingV1.Agency(), requestID: "contact-off")
        #expect(removed.contact == nil)
        await harness.close()
    }

    @Test("collectors: read, listed a page at a time with filters, certifications and shifts renewed by UpdateCollector, ListExpiring names them",
          .timeLimit(.minutes(1)))
    func collectors() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        let other = try await harness.otherAgency()

        #expect(try await harness.client.unary(S.getCollector, SchedulingV1.GetCollectorRequest(collectorId: world.c[2]),
                                               metadata: harness.platform) == world.collectors[2])
        // Registered at the same instant, so in id order.
        let ours = world.c.sorted()
        let first = try await harness.client.unary(S.listCollectors, SchedulingV1.ListCollectorsRequest(pageSize: 3, agencyId: world.agency.id),
                                                   metadata: harness.platform)
        #expect(first.collectors.map(\.id) == Array(ours.prefix(3)))
        #expect(!first.nextPageToken.isEmpty)
        let rest = try await harness.client.unary(S.listCollectors, SchedulingV1.ListCollectorsRequest(
            pageSize: 3, pageToken: first.nextPageToken, agencyId: world.agency.id), metadata: harness.platform)
        #expect(rest.collectors.map(\.id) == [ours[3]])
        #expect(rest.nextPageToken.isEmpty)
        #expect(try await harness.collectors().map(\.id) == (world.c + other.crew).sorted(), "registration order: one instant, by id")
        #expect(try await harness.collectors(SchedulingV1.ListCollectorsRequest(regionCode: "310104")).isEmpty)
        await invalid("region_code") { _ = try await harness.collectors(SchedulingV1.ListCollectorsRequest(regionCode: "31 0115")) }
        await invalid("page_size") { _ = try await harness.collectors(SchedulingV1.ListCollectorsRequest(pageSize: -1)) }
        await invalid("page_token") { _ = try await harness.collectors(SchedulingV1.ListCollectorsRequest(pageToken: "bm9wZQ==")) }
        _ = try await harness.client.unary(S.suspendCollector, SchedulingV1.SuspendCollectorRequest(
            requestId: "suspend-c1", collectorId: world.c[1], reason: .credentialReview), metadata: harness.platform)
        #expect(try await harness.collectors(SchedulingV1.ListCollectorsRequest(status: .suspended)).map(\.id) == [world.c[1]])

        // A certification expiring in 10 days is named; after it, bookings with them fail.
        let short = try await harness.updateCollector(world.c[3], ["certification_expiry_date"],
                                                      SchedulingV1.Collector(certificationExpiryDate: date(2026, 3, 20)), requestID: "short-1")
        let soon = try await harness.expiring(within: 30)
        #expect(soon.items.map(\.kind) == [.collectorCertification])
        #expect(soon.items.first?.resourceId == world.c[3] && soon.items.first?.agencyId == world.agency.id)
        #expect(soon.items.first?.daysLeft == 10 && soon.items.first?.ruleId == "collector-certification")
        #expect(soon.items.first?.reference == short.certificationNumber && soon.items.first?.name == short.fullName)
        let expired = await #expect(throws: RPCError.self) {
            _ = try await harness.book(harness.addAccount().accountID, crew: [world.c[2], world.c[3]], march(21, 10), march(21, 12),
                                       requestID: "book-21")
        }
        #expect(try refusedRules(expired) == ["collector-certification"])

        // Renewed, with a new shift and a contact: bookable; suspensions and agency untouched.
        let contact = SchedulingV1.ContactDetails(phone: "13800138000")
        let renewal = SchedulingV1.Collector(
            agencyId: other.agency.id, certificationNumber: "SH-CERT-2026-9001", certificationExpiryDate: date(2028, 3, 31),
            shiftStart: TypeV1.TimeOfDay(hours: 9, minutes: 0), shiftEnd: TypeV1.TimeOfDay(hours: 21, minutes: 30), contact: contact)
        let mask = ["certification_number", "certification_expiry_date", "shift_start", "shift_end", "contact"]
        let renewed = try await harness.updateCollector(world.c[3], mask, renewal, requestID: "renew-1", expectedVersion: short.version)
        #expect(renewed.certificationNumber == "SH-CERT-2026-9001" && renewed.certificationExpiryDate == date(2028, 3, 31))
        #expect(renewed.shiftStart == TypeV1.TimeOfDay(hours: 9, minutes: 0) && renewed.shiftEnd == TypeV1.TimeOfDay(hours: 21, minutes: 30))
        #expect(renewed.contact == contact)
        #expect(renewed.agencyId == world.agency.id, "agency_id is not in the mask (and cannot be)")
        #expect(renewed.fullName == world.collectors[3].fullName && renewed.homeLocation == world.collectors[3].homeLocation)
        #expect(renewed.version == short.version + 1)
        #expect(try await harness.expiring(within: 30).items.isEmpty)
        let booked = try await harness.book(harness.addAccount().accountID, crew: [world.c[2], world.c[3]], march(21, 10), march(21, 12),
                                            requestID: "book-21b")
        #expect(booked.state == .proposed)
        let suspended = try await harness.updateCollector(world.c[1], ["daily_capacity"], SchedulingV1.Collector(dailyCapacity: 8),
                                                          requestID: "capacity-1")
        #expect(suspended.status == .suspended && suspended.suspensions.count == 1 && suspended.dailyCapacity == 8)

        // Mistakes name their field; the store keeps certifications unique and regions served.
        await invalid("collector.shift_end") {
            _ = try await harness.updateCollector(world.c[0], ["shift_end"], SchedulingV1.Collector(shiftEnd: TypeV1.TimeOfDay(hours: 7, minutes: 0)),
                                                  requestID: "bad-1")
        }
        await invalid("update_mask[0]") { _ = try await harness.updateCollector(world.c[0], ["agency_id"], renewal, requestID: "bad-2") }
        await invalid("update_mask[0]") { _ = try await harness.updateCollector(world.c[0], ["suspensions"], renewal, requestID: "bad-3") }
        await invalid("collector.time_zone") {
            _ = try await harness.updateCollector(world.c[0], ["time_zone"], SchedulingV1.Collector(timeZone: "CST"), requestID: "bad-4")
        }
        await invalid("collector.daily_capacity") {
            _ = try await harness.updateCollector(world.c[0], ["daily_capacity"], SchedulingV1.Collector(dailyCapacity: 51), requestID: "bad-5")
        }
        let duplicate = await #expect(throws: RPCError.self) {
            _ = try await harness.updateCollector(world.c[0], ["certification_number"],
                                                  SchedulingV1.Collector(certificationNumber: "SH-CERT-2026-9001"), requestID: "dup-1")
        }
        #expect(duplicate?.code == .alreadyExists)
        let region = await #expect(throws: RPCError.self) {
            _ = try await harness.updateCollector(world.c[0], ["region_code"], SchedulingV1.Collector(regionCode: "310104"), requestID: "region-1")
        }
        let refused = try refusal(of: region)
        #expect(refused.violations.map(\.ruleId) == ["agency-region"] && refused.violations.first?.field == "collector.region_code")
        let stale = await #expect(throws: RPCError.self) {
            _ = try await harness.updateCollector(world.c[0], ["full_name"], SchedulingV1.Collector(fullName: "张伟伟"), requestID: "stale-1",
                                                  expectedVersion: 7)
        }
        #expect(stale?.code == .aborted)
        #expect(try await harness.client.unary(S.getCollector, SchedulingV1.GetCollectorRequest(collectorId: world.c[0]),
                                               metadata: harness.platform) == world.collectors[0])
        let unknown = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(S.getCollector, SchedulingV1.GetCollectorRequest(
                collectorId: IDGenerator.make(prefix: "col", nowMs: harness.clock.now)), metadata: harness.platform)
        }
        #expect(unknown?.code == .notFound)
        await harness.close()
    }

    @Test("ListAgencies and ListExpiring: filters, order by date, every page once, bounds of within_days", .timeLimit(.minutes(1)))
    func listsAndPages() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        let expired = try await harness.otherAgency(licence: "LIC-EXPIRED", licenceExpiry: date(2026, 3, 1))
        let lastDay = try await harness.otherAgency(licence: "LIC-TODAY", licenceExpiry: date(2026, 3, 10))
        let later = try await harness.otherAgency(licence: "LIC-APRIL", licenceExpiry: date(2026, 4, 20))
        _ = try await harness.updateCollector(later.crew[1], ["certification_expiry_date"],
                                              SchedulingV1.Collector(certificationExpiryDate: date(2026, 4, 1)), requestID: "cert-1")
        _ = try await harness.updateAgency(later.agency.id, ["regions_served"], SchedulingV1.Agency(regionsServed: ["310115", "310104"]),
                                           requestID: "regions-1")

        let all = try await harness.expiring(within: 60)
        #expect(all.items.map(\.resourceId) == [expired.agency.id, lastDay.agency.id, later.crew[1], later.agency.id])
        #expect(all.items.map(\.daysLeft) == [-9, 0, 22, 41])
        #expect(all.items.map(\.kind) == [.agencyLicence, .agencyLicence, .collectorCertification, .agencyLicence])
        #expect(all.items.first?.detail.contains("9 days ago") == true, "\(all.items.first?.detail ?? "")")
        // One item a page: every item once, in the same order.
        var paged: [SchedulingV1.ExpiringItem] = []
        var token = ""
        repeat {
            let page = try await harness.expiring(within: 60, pageSize: 1, pageToken: token)
            #expect(page.items.count <= 1)
            paged += page.items
            token = page.nextPageToken
        } while !token.isEmpty
        #expect(paged == all.items)
        #expect(try await harness.expiring(within: 60, agency: later.agency.id).items.map(\.resourceId) == [later.crew[1], later.agency.id])
        await invalid("within_days") { _ = try await harness.expiring(within: 0) }
        await invalid("within_days") { _ = try await harness.expiring(within: 366) }
        #expect(try await harness.expiring(within: 365).items.count >= 4)
        await invalid("page_token") { _ = try await harness.expiring(within: 60, pageToken: "garbage") }
        await invalid("page_token") {
            let token = try await harness.client.unary(S.listCollectors, SchedulingV1.ListCollectorsRequest(pageSize: 1),
                                                       metadata: harness.platform).nextPageToken
            _ = try await harness.expiring(within: 60, pageToken: token)
        }

        // ListAgencies: registration order (all at one instant, so by id), a page at a time,
        // by status and by region.
        let agencies = [world.agency.id, expired.agency.id, lastDay.agency.id, later.agency.id].sorted()
        #expect(try await harness.agencies(SchedulingV1.ListAgenciesRequest(pageSize: 1)).map(\.id) == agencies)
        #expect(try await harness.agencies(SchedulingV1.ListAgenciesRequest(regionCode: "310104")).map(\.id) == [later.agency.id])
        #expect(try await harness.agencies(SchedulingV1.ListAgenciesRequest(pageSize: 1, regionCode: "310115")).map(\.id) == agencies)
        _ = try await harness.suspendAgency(expired.agency.id, reason: "licence expired", requestID: "suspend-1")
        #expect(try await harness.agencies(SchedulingV1.ListAgenciesRequest(status: .suspended)).map(\.id) == [expired.agency.id])
        #expect(try await harness.agencies(SchedulingV1.ListAgenciesRequest(status: .active, regionCode: "310104")).map(\.id) == [later.agency.id])
        await invalid("region_code") { _ = try await harness.agencies(SchedulingV1.ListAgenciesRequest(regionCode: "31 0115")) }
        await invalid("status") { _ = try await harness.agencies(SchedulingV1.ListAgenciesRequest(status: .unrecognized(9))) }
        await harness.close()
    }

    @Test("roles: platform writes; compliance and services read; an agency manager reads its own agency, collectors and renewals only",
          .timeLimit(.minutes(1)))
    func roles() async throws {
        let harness = try await SchedulingHarness()
        let world = try await harness.setUpWorld()
        let other = try await harness.otherAgency(licence: "SH-COLL-2023-0100", licenceExpiry: date(2026, 3, 31))
        _ = try await harness.updateCollector(world.c[0], ["certification_expiry_date"],
                                              SchedulingV1.Collector(certificationExpiryDate: date(2026, 3, 25)), requestID: "cert-1")
        let manager = try await harness.metadata(.agencyManager, agency: world.agency.id)
        let compliance = try await harness.metadata(.compliance)
        let service = try await harness.metadata(.service)
        let collector = try await harness.metadata(.collector, agency: world.agency.id, collector: world.c[0])

        // The manager: its own agency and collectors, nothing of the other agency's.
        #expect(try await harness.agency(world.agency.id, metadata: manager).id == world.agency.id)
        let hidden = await #expect(throws: RPCError.self) { _ = try await harness.agency(other.agency.id, metadata: manager) }
        #expect(hidden?.code == .notFound)
        #expect(try await harness.agencies(metadata: manager).map(\.id) == [world.agency.id])
        #expect(try await harness.collectors(metadata: manager).map(\.id) == world.c.sorted())
        #expect(try await harness.collectors(SchedulingV1.ListCollectorsRequest(agencyId: other.agency.id), metadata: manager).isEmpty)
        let foreign = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(S.getCollector, SchedulingV1.GetCollectorRequest(collectorId: other.crew[0]), metadata: manager)
        }
        #expect(foreign?.code == .notFound)
        #expect(try await harness.expiring(within: 30, metadata: manager).items.map(\.resourceId) == [world.c[0]])
        #expect(try await harness.expiring(within: 30, agency: other.agency.id, metadata: manager).items.isEmpty)
        #expect(try await harness.expiring(within: 30).items.map(\.resourceId) == [world.c[0], other.agency.id])
        // ...and may change none of it.
        let writes: [(String, (Metadata) async throws -> Void)] = [
            ("UpdateAgency", { metadata in
                _ = try await harness.client.unary(S.updateAgency, SchedulingV1.UpdateAgencyRequest(
                    requestId: "u-1", agencyId: world.agency.id, agency: SchedulingV1.Agency(dailyVisitCapacity: 9),
                    updateMask: ["daily_visit_capacity"]), metadata: metadata) }),
            ("RecordInspection", { metadata in
                _ = try await harness.client.unary(S.recordInspection, SchedulingV1.RecordInspectionRequest(
                    requestId: "i-1", agencyId: world.agency.id, inspectionDate: date(2026, 3, 9), result: .passed, inspector: "x"),
                    metadata: metadata) }),
            ("SuspendAgency", { metadata in _ = try await harness.suspendAgency(world.agency.id, reason: "r", requestID: "s-1", metadata: metadata) }),
            ("ReinstateAgency", { metadata in
                _ = try await harness.client.unary(S.reinstateAgency, SchedulingV1.ReinstateAgencyRequest(
                    requestId: "r-1", agencyId: world.agency.id, reason: "r"), metadata: metadata) }),
            ("ExitAgency", { metadata in
                _ = try await harness.client.unary(S.exitAgency, SchedulingV1.ExitAgencyRequest(
                    requestId: "e-1", agencyId: world.agency.id, reason: "r"), metadata: metadata) }),
            ("UpdateCollector", { metadata in
                _ = try await harness.client.unary(S.updateCollector, SchedulingV1.UpdateCollectorRequest(
                    requestId: "c-1", collectorId: world.c[0], collector: SchedulingV1.Collector(dailyCapacity: 3),
                    updateMask: ["daily_capacity"]), metadata: metadata) }),
        ]
        for (name, write) in writes {
            for (role, metadata) in [("agency_manager", manager), ("compliance", compliance), ("service", service), ("collector", collector)] {
                let denied = await #expect(throws: RPCError.self, "\(name) as \(role)") { try await write(metadata) }
                #expect(denied?.code == .permissionDenied, "\(name) as \(role): \(String(describing: denied))")
            }
        }
        #expect(try await harness.agency(world.agency.id) == world.agency, "nothing changed")

        // Compliance and services read everything; collectors read none of it.
        #expect(try await harness.agencies(metadata: compliance).count == 2)
        #expect(try await harness.collectors(metadata: service).count == 6)
        #expect(try await harness.expiring(within: 30, metadata: compliance).items.count == 2)
        let reads: [(String, () async throws -> Void)] = [
            ("GetAgency", { _ = try await harness.agency(world.agency.id, metadata: collector) }),
            ("ListAgencies", { _ = try await harness.agencies(metadata: collector) }),
            ("GetCollector", { _ = try await harness.client.unary(S.getCollector, SchedulingV1.GetCollectorRequest(collectorId: world.c[0]),
                                                                  metadata: collector) }),
            ("ListCollectors", { _ = try await harness.collectors(metadata: collector) }),
            ("ListExpiring", { _ = try await harness.expiring(within: 30, metadata: collector) }),
        ]
        for (name, read) in reads {
            let denied = await #expect(throws: RPCError.self, "\(name) as collector") { try await read() }
            #expect(denied?.code == .permissionDenied, "\(name)")
        }
        await harness.close()
    }
}
