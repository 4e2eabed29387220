import Compliance
import Foundation
import Models
import Outbox
import RPC
import RPCWire
import ServiceKit
import ServiceTestSupport
import Testing
import Validation
import VisitsService

private typealias V = VisitsV1.VisitsService

/// Complaints over gRPC on loopback, on a real SQLite file, with scheduling and accounts
/// faked (`FakePeers`) and the hold and suspension delivered by an outbox dispatcher the test
/// drives. The clock starts at 2026-03-10 08:00 Asia/Shanghai.
@Suite("Complaints over gRPC: filing, SLA, extension, resolution, scorecard, roles", .serialized)
struct ComplaintRPCTests {
    static let day: Int64 = 86_400_000

    /// A compliance officer's token.
    static func compliance(_ harness: VisitsHarness) async throws -> Metadata {
        try await harness.metadata(.compliance)
    }

    static func file(_ harness: VisitsHarness, account: String, visit: String = "", collector: String = "",
                     category: VisitsV1.ComplaintCategory = .abuse, complexity: VisitsV1.ComplaintComplexity = .unspecified,
                     requestID: String, metadata: Metadata) async throws(RPCError) -> VisitsV1.Complaint {
        try await harness.client.unary(V.fileComplaint, VisitsV1.FileComplaintRequest(
            requestId: requestID, accountId: account, visitId: visit, collectorId: collector, category: category,
            complaintText: "催收员上门时言语辱骂", channel: .phoneHotline, complexity: complexity), metadata: metadata)
    }

    static func get(_ harness: VisitsHarness, _ id: String, metadata: Metadata) async throws(RPCError) -> VisitsV1.Complaint {
        try await harness.client.unary(V.getComplaint, VisitsV1.GetComplaintRequest(complaintId: id), metadata: metadata)
    }

    /// A visit of `world.a` and `world.b` on a new account, checked in (so visits knows the
    /// crew's agency).
    static func visit(_ harness: VisitsHarness, _ world: World, requestID: String) async throws -> VisitsV1.Visit {
        let appointment = harness.addAppointment(crew: [world.a.id, world.b.id], agency: world.agency)
        harness.clock.set(march(12, 10, 5))
        _ = try await harness.checkIn(appointment.id, as: world.a, requestID: "\(requestID)-a")
        return try await harness.checkIn(appointment.id, as: world.b, requestID: "\(requestID)-b")
    }

    // MARK: 1. Filing

    @Test("filing: validated; the SLA clock by complexity; hold and suspension queued, delivered, on the timeline once; replays",
          .timeLimit(.minutes(1)))
    func filing() async throws {
        let harness = try await VisitsHarness()
        defer { Task { await harness.close() } }
        let world = try await harness.setUpWorld()
        let officer = try await Self.compliance(harness)
        let visit = try await Self.visit(harness, world, requestID: "visit-1")

        // Bad input is INVALID_ARGUMENT naming the field; nothing is filed.
        let missingCategory = await #expect(throws: RPCError.self) {
            try await harness.client.unary(V.fileComplaint, VisitsV1.FileComplaintRequest(
                requestId: "bad-1", accountId: visit.accountId, complaintText: "x", channel: .app), metadata: officer)
        }
        #expect(missingCategory?.code == .invalidArgument && missingCategory?.message.contains("category") == true)
        let emptyText = await #expect(throws: RPCError.self) {
            try await harness.client.unary(V.fileComplaint, VisitsV1.FileComplaintRequest(
                requestId: "bad-2", accountId: visit.accountId, category: .threat, channel: .app), metadata: officer)
        }
        #expect(emptyText?.code == .invalidArgument && emptyText?.message.contains("complaint_text") == true)
        let future = await #expect(throws: RPCError.self) {
            try await harness.client.unary(V.fileComplaint, VisitsV1.FileComplaintRequest(
                requestId: "bad-3", accountId: visit.accountId, category: .threat, complaintText: "x", channel: .app,
                receivedMs: harness.clock.now + Self.day), metadata: officer)
        }
        #expect(future?.code == .invalidArgument && future?.message.contains("received_ms") == true)
        let otherAccountsVisit = await #expect(throws: RPCError.self) {
            try await Self.file(harness, account: harness.addAccount().id, visit: visit.id, requestID: "bad-4", metadata: officer)
        }
        #expect(otherAccountsVisit?.code == .invalidArgument && otherAccountsVisit?.message.contains("visit_id") == true)
        let notOnCrew = await #expect(throws: RPCError.self) {
            try await Self.file(harness, account: visit.accountId, visit: visit.id, collector: world.c.id, requestID: "bad-5",
                                metadata: officer)
        }
        #expect(notOnCrew?.code == .invalidArgument && notOnCrew?.message.contains("collector_id") == true)
        // An account accounts does not know is NOT_FOUND.
        let unknown = await #expect(throws: RPCError.self) {
            try await Self.file(harness, account: IDGenerator.make(prefix: "acc", nowMs: harness.clock.now), requestID: "bad-6",
                                metadata: officer)
        }
        #expect(unknown?.code == .notFound)
        let none = try await harness.client.unary(V.listComplaints, VisitsV1.ListComplaintsRequest(), metadata: officer)
        #expect(none.complaints.isEmpty)

        let wakesBefore = harness.wakes.value
        let complaint = try await Self.file(harness, account: visit.accountId, visit: visit.id, collector: world.a.id,
                                            requestID: "complaint-1", metadata: officer)
        #expect(complaint.status == .open)
        #expect(complaint.agencyId == world.agency && complaint.debtorId == visit.debtorId)
        #expect(complaint.receivedMs == harness.clock.now)
        #expect(complaint.slaDueMs == complaint.receivedMs + 15 * Self.day, "cn-2026 standard: 15 days")
        #expect(complaint.complexity == .standard)
        #expect(complaint.retainUntilDate == TypeV1.Date(year: 2031, month: 3, day: 12), "cn-2026 consumer finance: 5 years")
        #expect(complaint.rulePackId == "cn-2026")
        #expect(complaint.filedBy?.role == .compliance)
        #expect(complaint.timeline.map(\.eventType) == [.filed])
        #expect(complaint.effects.map(\.kind) == [.placeHold, .suspendCollector])
        #expect(complaint.effects.allSatisfy { $0.delivery?.status == .pending })
        #expect(harness.wakes.value == wakesBefore + 1, "the dispatcher is woken after filing commits")
        let replay = try await Self.file(harness, account: visit.accountId, visit: visit.id, collector: world.a.id,
                                         requestID: "complaint-1", metadata: officer)
        #expect(replay.id == complaint.id && replay.version == complaint.version)
        let reused = await #expect(throws: RPCError.self) {
            try await Self.file(harness, account: visit.accountId, requestID: "complaint-1", metadata: officer)
        }
        #expect(reused?.code == .invalidArgument && reused?.message.contains("request_id") == true)

        // Delivery: a COMPLAINT hold to accounts and a COMPLAINT suspension to scheduling,
        // each with a stable request id; each lands on the timeline once.
        let sink = RecordingSink()
        let dispatcher = harness.dispatcher(sink: sink)
        #expect(await dispatcher.dispatchDue() == 2)
        let hold = try DeliveredEffect(try #require(sink.delivered.first { $0.id.hasSuffix(".hold") }))
        #expect(hold.service == "accounts" && hold.method == AccountsV1.AccountsService.placeHold.path)
        let holdRequest = try AccountsV1.PlaceHoldRequest(decoding: [UInt8](hold.request))
        #expect(holdRequest.accountId == visit.accountId && holdRequest.reason == .complaint && holdRequest.complaintId == complaint.id)
        #expect(holdRequest.requestId == "\(complaint.id).hold")
        let suspend = try DeliveredEffect(try #require(sink.delivered.first { $0.id.hasSuffix(".suspend") }))
        #expect(suspend.service == "scheduling" && suspend.method == SchedulingV1.SchedulingService.suspendCollector.path)
        let suspendRequest = try SchedulingV1.SuspendCollectorRequest(decoding: [UInt8](suspend.request))
        #expect(suspendRequest.collectorId == world.a.id && suspendRequest.reason == .complaint && suspendRequest.complaintId == complaint.id)
        #expect(await dispatcher.dispatchDue() == 0, "delivered once")
        let delivered = try await Self.get(harness, complaint.id, metadata: officer)
        #expect(delivered.timeline.map(\.eventType) == [.filed, .holdPlaced, .collectorSuspended])
        #expect(delivered.timeline.map(\.sequence) == [1, 2, 3])
        #expect(delivered.effects.allSatisfy { $0.delivery?.status == .delivered })
        #expect(delivered.version == complaint.version + 2)

        // A complex complaint has 30 days; one naming nobody queues only the hold.
        let complex = try await Self.file(harness, account: visit.accountId, category: .harassmentUnlawfulHours, complexity: .complex,
                                          requestID: "complaint-2", metadata: officer)
        #expect(complex.slaDueMs == complex.receivedMs + 30 * Self.day)
        #expect(complex.effects.map(\.kind) == [.placeHold])
        #expect(complex.agencyId.isEmpty && complex.collectorId.isEmpty)
    }

    @Test("a complaint naming only a collector counts for the collector's agency; with accounts down it is still filed",
          .timeLimit(.minutes(1)))
    func collectorOnlyAndAccountsDown() async throws {
        let harness = try await VisitsHarness()
        defer { Task { await harness.close() } }
        let world = try await harness.setUpWorld()
        let officer = try await Self.compliance(harness)
        _ = try await Self.visit(harness, world, requestID: "visit-1")

        // Another debtor, never visited, complains of a call by world.a at 23:00.
        let other = harness.addAccount(product: .creditCard)
        let complaint = try await Self.file(harness, account: other.id, collector: world.a.id, category: .harassmentUnlawfulHours,
                                            requestID: "complaint-1", metadata: officer)
        #expect(complaint.agencyId == world.agency, "the agency of world.a's visits")
        #expect(complaint.debtorId == other.debtorId, "the debtor as accounts knows it")
        #expect(complaint.retainUntilDate == TypeV1.Date(year: 2028, month: 3, day: 12), "credit card: 2 years")
        let managerView = try await harness.client.unary(V.listComplaints, VisitsV1.ListComplaintsRequest(), metadata: world.manager)
        #expect(managerView.complaints.map(\.id) == [complaint.id])

        // A collector visits has never seen: no agency.
        let stranger = IDGenerator.make(prefix: "col", nowMs: harness.clock.now)
        let unplaced = try await Self.file(harness, account: other.id, collector: stranger, requestID: "complaint-2", metadata: officer)
        #expect(unplaced.agencyId.isEmpty && unplaced.effects.map(\.kind) == [.placeHold, .suspendCollector])

        // Accounts unreachable: the complaint line keeps working; the hold is queued.
        harness.peers.setUnavailable(true)
        let offline = try await Self.file(harness, account: other.id, collector: world.b.id, requestID: "complaint-3", metadata: officer)
        #expect(offline.status == .open && offline.agencyId == world.agency)
        #expect(offline.debtorId.isEmpty, "unknown until accounts answers: visits never visited this account")
        #expect(offline.effects.map(\.kind) == [.placeHold, .suspendCollector])
    }

    /// A peer that refuses every effect for good, as accounts refuses a hold on a SETTLED
    /// account.
    struct RefusingSink: OutboxSink {
        func deliver(_ message: OutboxMessage) async throws(OutboxSinkError) {
            throw .permanent("accounts: FAILED_PRECONDITION account-stage: account is STAGE_SETTLED")
        }
    }

    @Test("an effect a peer refuses for good is EFFECT_FAILED on the timeline, with the peer's reason, once", .timeLimit(.minutes(1)))
    func effectFailed() async throws {
        let harness = try await VisitsHarness()
        defer { Task { await harness.close() } }
        let officer = try await Self.compliance(harness)
        let account = harness.addAccount()
        let complaint = try await Self.file(harness, account: account.id, requestID: "complaint-1", metadata: officer)
        let dispatcher = harness.dispatcher(sink: RefusingSink())
        #expect(await dispatcher.dispatchDue() == 0)
        #expect(await dispatcher.dispatchDue() == 0)
        let failed = try await Self.get(harness, complaint.id, metadata: officer)
        #expect(failed.effects.map { $0.delivery?.status } == [.failed])
        #expect(failed.timeline.map(\.eventType) == [.filed, .effectFailed])
        let note = try #require(failed.timeline.last?.note)
        #expect(note.contains("PLACE_HOLD") && note.contains("account-stage"), "\(note)")
        #expect(failed.timeline.last?.actor?.role == .system)
    }

    // MARK: 2. Extension and resolution

    @Test("extended once by 30 days; resolved once: upheld keeps hold and suspension, not upheld releases both", .timeLimit(.minutes(1)))
    func extendAndResolve() async throws {
        let harness = try await VisitsHarness()
        defer { Task { await harness.close() } }
        let world = try await harness.setUpWorld()
        let officer = try await Self.compliance(harness)
        let visit = try await Self.visit(harness, world, requestID: "visit-1")
        let first = try await Self.file(harness, account: visit.accountId, visit: visit.id, collector: world.a.id,
                                        requestID: "complaint-1", metadata: officer)

        let extend = { (requestID: String, id: String, version: Int64) async throws(RPCError) -> VisitsV1.Complaint in
            try await harness.client.unary(V.extendComplaint, VisitsV1.ExtendComplaintRequest(
                requestId: requestID, complaintId: id, expectedVersion: version, reason: "需调取通话录音核实"), metadata: officer)
        }
        let stale = await #expect(throws: RPCError.self) { try await extend("extend-0", first.id, first.version + 5) }
        #expect(stale?.code == .aborted)
        let extended = try await extend("extend-1", first.id, first.version)
        #expect(extended.extensionGranted && extended.slaDueMs == first.slaDueMs + 30 * Self.day)
        #expect(extended.slaExtension?.previousSlaDueMs == first.slaDueMs && extended.slaExtension?.grantedBy?.role == .compliance)
        #expect(extended.timeline.last?.eventType == .extended)
        let twice = await #expect(throws: RPCError.self) { try await extend("extend-2", first.id, 0) }
        #expect(try refusedRules(twice) == ["complaint-extension-once"])
        let byPlatform = await #expect(throws: RPCError.self) {
            try await harness.client.unary(V.extendComplaint, VisitsV1.ExtendComplaintRequest(
                requestId: "extend-3", complaintId: first.id, reason: "x"), metadata: harness.platform)
        }
        #expect(byPlatform?.code == .permissionDenied)

        let resolve = { (requestID: String, id: String, resolution: VisitsV1.ComplaintStatus, release: Bool, reinstate: Bool)
            async throws(RPCError) -> VisitsV1.Complaint in
            try await harness.client.unary(V.resolveComplaint, VisitsV1.ResolveComplaintRequest(
                requestId: requestID, complaintId: id, resolution: resolution, finding: "录音核实",
                releaseAccountHold: release, reinstateCollector: reinstate), metadata: officer)
        }
        let notAResolution = await #expect(throws: RPCError.self) { try await resolve("resolve-0", first.id, .open, true, true) }
        #expect(notAResolution?.code == .invalidArgument && notAResolution?.message.contains("resolution") == true)

        // Upheld: the hold and the suspension stay; nothing new is queued.
        let upheld = try await resolve("resolve-1", first.id, .upheld, false, false)
        #expect(upheld.status == .upheld && upheld.resolvedMs == harness.clock.now && upheld.resolvedBy?.role == .compliance)
        #expect(!upheld.accountHoldReleased && !upheld.collectorReinstated && !upheld.slaBreached)
        #expect(upheld.effects.map(\.kind) == [.placeHold, .suspendCollector])
        #expect(try await resolve("resolve-1", first.id, .upheld, false, false).version == upheld.version, "a replay")
        let again = await #expect(throws: RPCError.self) { try await resolve("resolve-2", first.id, .notUpheld, true, true) }
        #expect(try refusedRules(again) == ["complaint-state"])
        let lateExtension = await #expect(throws: RPCError.self) { try await extend("extend-4", first.id, 0) }
        #expect(try refusedRules(lateExtension) == ["complaint-state"])

        // Not upheld, releasing both: a release and a reinstatement are queued and delivered.
        let second = try await Self.file(harness, account: visit.accountId, visit: visit.id, collector: world.b.id,
                                         requestID: "complaint-2", metadata: officer)
        let cleared = try await resolve("resolve-3", second.id, .notUpheld, true, true)
        #expect(cleared.status == .notUpheld && cleared.accountHoldReleased && cleared.collectorReinstated)
        #expect(cleared.effects.map(\.kind) == [.placeHold, .suspendCollector, .releaseHold, .reinstateCollector])
        let sink = RecordingSink()
        #expect(await harness.dispatcher(sink: sink).dispatchDue() == 6, "two of the first complaint, four of the second")
        let release = try DeliveredEffect(try #require(sink.delivered.first { $0.id == "\(second.id).release" }))
        let releaseRequest = try AccountsV1.ReleaseHoldRequest(decoding: [UInt8](release.request))
        #expect(releaseRequest.accountId == visit.accountId && releaseRequest.hold == .complaintId(second.id))
        let reinstate = try DeliveredEffect(try #require(sink.delivered.first { $0.id == "\(second.id).reinstate" }))
        let reinstateRequest = try SchedulingV1.ReinstateCollectorRequest(decoding: [UInt8](reinstate.request))
        #expect(reinstateRequest.collectorId == world.b.id && reinstateRequest.suspension == .complaintId(second.id))
        let final = try await Self.get(harness, second.id, metadata: officer)
        // Resolved before the dispatcher ran: the timeline shows what happened when.
        #expect(final.timeline.map(\.eventType) == [.filed, .resolved, .holdPlaced, .collectorSuspended, .holdReleased, .collectorReinstated])
    }

    // MARK: 3. SLA, lists, scorecard

    @Test("past the SLA: listed as overdue at once; the sweep writes SLA_BREACHED once; the scorecard counts it", .timeLimit(.minutes(1)))
    func slaBreach() async throws {
        let harness = try await VisitsHarness()
        defer { Task { await harness.close() } }
        let world = try await harness.setUpWorld()
        let officer = try await Self.compliance(harness)
        let visit = try await Self.visit(harness, world, requestID: "visit-1")
        _ = try await harness.recordMetDebtor(visit.id, by: world.a, requestID: "outcome-1")
        _ = try await harness.checkOut(visit.id, by: world.a, requestID: "checkout-1")
        let late = try await Self.file(harness, account: visit.accountId, visit: visit.id, collector: world.a.id,
                                       requestID: "complaint-1", metadata: officer)
        let extended = try await Self.file(harness, account: visit.accountId, visit: visit.id, collector: world.b.id,
                                           category: .threat, requestID: "complaint-2", metadata: officer)
        _ = try await harness.client.unary(V.extendComplaint, VisitsV1.ExtendComplaintRequest(
            requestId: "extend-1", complaintId: extended.id, reason: "需第三方核实"), metadata: officer)
        let sweep = ComplaintSLASweep(database: harness.database, clock: ServiceClock { harness.clock.now }, logger: harness.logger)
        #expect(try await sweep.sweep() == 0, "nothing is due yet")

        harness.clock.set(late.slaDueMs + 1)
        let overdue = try await harness.client.unary(V.listComplaints, VisitsV1.ListComplaintsRequest(overdueOnly: true), metadata: officer)
        #expect(overdue.complaints.map(\.id) == [late.id], "the extended one is not due")
        #expect(overdue.complaints.first?.slaBreached == true)
        #expect(try await sweep.sweep() == 1)
        #expect(try await sweep.sweep() == 0, "recorded once")
        let breached = try await Self.get(harness, late.id, metadata: officer)
        #expect(breached.timeline.map(\.eventType) == [.filed, .slaBreached])
        #expect(breached.timeline.last?.actor?.role == .system && breached.timeline.last?.occurredMs == harness.clock.now)
        #expect(breached.slaBreached && breached.version == late.version + 1)
        let open = try await harness.client.unary(V.listComplaints, VisitsV1.ListComplaintsRequest(statuses: [.open], categories: [.threat]),
                                                  metadata: officer)
        #expect(open.complaints.map(\.id) == [extended.id])

        let card = try await harness.client.unary(V.getAgencyScorecard, VisitsV1.GetAgencyScorecardRequest(
            agencyId: world.agency, periodStartDate: TypeV1.Date(year: 2026, month: 3, day: 1),
            periodEndDate: TypeV1.Date(year: 2026, month: 3, day: 31)), metadata: officer)
        #expect(card.visitsCompleted == 1 && card.complaintsReceived == 2 && card.complaintsOpen == 2)
        #expect(card.complaintsSlaBreached == 1 && card.complaintsUpheld == 0)
        #expect(card.complaintsPer1000Visits == 2000)
        let managerCard = try await harness.client.unary(V.getAgencyScorecard, VisitsV1.GetAgencyScorecardRequest(
            agencyId: "agy_someone_else", periodStartDate: TypeV1.Date(year: 2026, month: 3, day: 1),
            periodEndDate: TypeV1.Date(year: 2026, month: 3, day: 31)), metadata: world.manager)
        #expect(managerCard.agencyId == world.agency, "an agency manager sees only their own agency's card")
    }

    @Test("roles: only platform and compliance file; managers see only their agency's complaints; collectors none",
          .timeLimit(.minutes(1)))
    func roles() async throws {
        let harness = try await VisitsHarness()
        defer { Task { await harness.close() } }
        let world = try await harness.setUpWorld()
        let officer = try await Self.compliance(harness)
        let visit = try await Self.visit(harness, world, requestID: "visit-1")
        let complaint = try await Self.file(harness, account: visit.accountId, visit: visit.id, collector: world.a.id,
                                            requestID: "complaint-1", metadata: officer)
        for caller in [world.a.metadata, world.manager] {
            let denied = await #expect(throws: RPCError.self) {
                try await Self.file(harness, account: visit.accountId, requestID: "complaint-x", metadata: caller)
            }
            #expect(denied?.code == .permissionDenied)
        }
        let collectorRead = await #expect(throws: RPCError.self) { try await Self.get(harness, complaint.id, metadata: world.a.metadata) }
        #expect(collectorRead?.code == .permissionDenied)
        #expect(try await Self.get(harness, complaint.id, metadata: world.manager).id == complaint.id)
        let outsider = try await harness.metadata(.agencyManager, agency: "agy_other_agency")
        let hidden = await #expect(throws: RPCError.self) { try await Self.get(harness, complaint.id, metadata: outsider) }
        #expect(hidden?.code == .notFound, "another agency's complaint does not exist for them")
        let outsiderList = try await harness.client.unary(V.listComplaints, VisitsV1.ListComplaintsRequest(), metadata: outsider)
        #expect(outsiderList.complaints.isEmpty)
        let forced = try await harness.client.unary(V.listComplaints, VisitsV1.ListComplaintsRequest(agencyId: world.agency),
                                                    metadata: outsider)
        #expect(forced.complaints.isEmpty, "naming another agency does not widen the view")
    }
}
