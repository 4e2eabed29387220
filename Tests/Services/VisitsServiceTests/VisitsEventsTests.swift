import Foundation
import Models
import Outbox
import RPC
import RPCWire
import ServiceKit
import ServiceTestSupport
import Testing
import VisitsService

private typealias V = VisitsV1.VisitsService

/// WatchEvents of the visits service: each check-in, outcome and check-out of a visit and
/// each filing, extension, resolution, SLA breach and failed consequence of a complaint is
/// one event (CloudEvents, the record after the change as data), written with the change, in
/// commit order; a refused call and a replayed request write none.
@Suite("Visits events: visits and complaints", .serialized,
       .enabled(if: ServedService.Transport.current == .loopback,
                "the in-process transport serves no open-ended streams read as they arrive"))
struct VisitsEventsTests {
    /// Reads events from an open watch, `count` at a time.
    static func watch(_ harness: VisitsHarness, _ request: TypeV1.WatchEventsRequest) async throws -> EventStream {
        try await EventStream(harness.client, V.watchEvents, request, metadata: harness.platform)
    }

    /// A peer that refuses every consequence for good (as accounts refuses a hold on a
    /// SETTLED account).
    struct RefusingSink: OutboxSink {
        func deliver(_ message: OutboxMessage) async throws(OutboxSinkError) {
            throw .permanent("accounts: FAILED_PRECONDITION account-stage: account is STAGE_SETTLED")
        }
    }

    static func checkCommon(_ events: [TypeV1.Event], schema: String) {
        #expect(events.allSatisfy { $0.source == "/doorstep/visits" && $0.specVersion == "1.0" && $0.dataSchema == schema })
        let cursors = events.map { Int64($0.cursor)! }
        #expect(cursors == cursors.sorted() && Set(cursors).count == cursors.count)
        #expect(Set(events.map(\.id)).count == events.count)
    }

    @Test("check-ins, outcome and check-out: one event each, in order, the data the visit the call returned; refusals and replays add none",
          .timeLimit(.minutes(1)))
    func visitEvents() async throws {
        let harness = try await VisitsHarness()
        let world = try await harness.setUpWorld()
        let watch = try await Self.watch(harness, .init(types: ["doorstep.visits.visit.*"]))
        let appointment = harness.addAppointment(crew: [world.a.id, world.b.id], agency: world.agency)
        harness.clock.set(march(12, 10, 5))

        let notOnCrew = await #expect(throws: RPCError.self) {
            _ = try await harness.checkIn(appointment.id, as: world.c, requestID: "in-c")
        }
        #expect(notOnCrew?.code == .permissionDenied)
        let first = try await harness.checkIn(appointment.id, as: world.a, requestID: "in-a")
        #expect(try await harness.checkIn(appointment.id, as: world.a, requestID: "in-a").version == first.version, "a replay")
        let twice = await #expect(throws: RPCError.self) { _ = try await harness.checkIn(appointment.id, as: world.a, requestID: "in-a2") }
        #expect(twice?.code == .alreadyExists)
        let second = try await harness.checkIn(appointment.id, as: world.b, requestID: "in-b")
        let outcome = try await harness.recordMetDebtor(first.id, by: world.a, requestID: "outcome-1")
        let again = await #expect(throws: RPCError.self) { _ = try await harness.recordMetDebtor(first.id, by: world.b, requestID: "outcome-2") }
        #expect(try refusedRules(again) == ["visit-state"])
        let noEvidence = await #expect(throws: RPCError.self) {
            _ = try await harness.checkOut(first.id, by: world.a, requestID: "out-0", evidence: nil)
        }
        #expect(try refusedRules(noEvidence) == ["evidence-required"])
        let closed = try await harness.checkOut(first.id, by: world.a, requestID: "out-1")
        #expect(try await harness.checkOut(first.id, by: world.a, requestID: "out-1").version == closed.version, "a replay")

        let expected = [("checked_in", first), ("checked_in", second), ("outcome_recorded", outcome), ("checked_out", closed)]
        let received = try await watch.take(expected.count)
        #expect(received.map(\.type) == expected.map { "doorstep.visits.visit.\($0.0)" })
        #expect(received.allSatisfy { $0.subject == "visits/\(first.id)" })
        #expect(try received.map { try VisitsV1.Visit(decoding: $0.data) } == expected.map { $0.1 },
                "the data is the visit as the call returned it")
        #expect(try received.map { try VisitsV1.Visit(jsonText: $0.dataJson) } == expected.map { $0.1 })
        #expect(received.map(\.timeMs) == expected.map { $0.1.updatedMs })
        Self.checkCommon(received, schema: "doorstep.visits.v1.Visit")

        // Nothing else was written: the next event is the next change.
        let next = harness.addAppointment(crew: [world.c.id, world.d.id], agency: world.agency, start: march(12, 9), end: march(12, 11))
        let marker = try await harness.checkIn(next.id, as: world.c, requestID: "in-next")
        let after = try await watch.take(1)
        #expect(after.map(\.subject) == ["visits/\(marker.id)"] && after.first?.type == "doorstep.visits.visit.checked_in")
        watch.call.cancel()
        await harness.close()
    }

    @Test("complaints filed, extended, resolved, SLA-breached and with a failed consequence: one event each, in order per complaint",
          .timeLimit(.minutes(1)))
    func complaintEvents() async throws {
        let harness = try await VisitsHarness()
        let officer = try await harness.metadata(.compliance)
        let watch = try await Self.watch(harness, .init(types: ["doorstep.visits.complaint.*"]))
        let account = harness.addAccount()
        func file(_ requestID: String, category: VisitsV1.ComplaintCategory = .abuse) async throws(RPCError) -> VisitsV1.Complaint {
            try await harness.client.unary(V.fileComplaint, VisitsV1.FileComplaintRequest(
                requestId: requestID, accountId: account.id, category: category, complaintText: "催收员上门时言语辱骂",
                channel: .phoneHotline), metadata: officer)
        }
        func extend(_ id: String, _ requestID: String) async throws(RPCError) -> VisitsV1.Complaint {
            try await harness.client.unary(V.extendComplaint, VisitsV1.ExtendComplaintRequest(
                requestId: requestID, complaintId: id, reason: "需调取通话录音核实"), metadata: officer)
        }
        func resolve(_ id: String, _ requestID: String) async throws(RPCError) -> VisitsV1.Complaint {
            try await harness.client.unary(V.resolveComplaint, VisitsV1.ResolveComplaintRequest(
                requestId: requestID, complaintId: id, resolution: .upheld, finding: "录音核实"), metadata: officer)
        }
        func get(_ id: String) async throws -> VisitsV1.Complaint {
            try await harness.client.unary(V.getComplaint, VisitsV1.GetComplaintRequest(complaintId: id), metadata: officer)
        }

        let unfiled = await #expect(throws: RPCError.self) { _ = try await file("complaint-0", category: .unspecified) }
        #expect(unfiled?.code == .invalidArgument)
        let first = try await file("complaint-1")
        #expect(try await file("complaint-1").id == first.id, "a replay")
        let extended = try await extend(first.id, "extend-1")
        let twice = await #expect(throws: RPCError.self) { _ = try await extend(first.id, "extend-2") }
        #expect(try refusedRules(twice) == ["complaint-extension-once"])
        let second = try await file("complaint-2", category: .threat)
        let resolved = try await resolve(second.id, "resolve-1")
        #expect(try await resolve(second.id, "resolve-1").version == resolved.version, "a replay")
        let closed = await #expect(throws: RPCError.self) { _ = try await resolve(second.id, "resolve-2") }
        #expect(try refusedRules(closed) == ["complaint-state"])

        // Past the extended due time: the sweep records the breach of the open one, once.
        harness.clock.set(extended.slaDueMs + 1)
        let sweep = ComplaintSLASweep(database: harness.database, clock: ServiceClock { harness.clock.now }, logger: harness.logger)
        #expect(try await sweep.sweep() == 1)
        #expect(try await sweep.sweep() == 0)
        let breached = try await get(first.id)
        // Accounts refuses both holds for good: each complaint records the failure.
        #expect(await harness.dispatcher(sink: RefusingSink()).dispatchDue() == 0)
        let firstFailed = try await get(first.id)
        let secondFailed = try await get(second.id)
        #expect(firstFailed.timeline.map(\.eventType) == [.filed, .extended, .slaBreached, .effectFailed])
        #expect(secondFailed.timeline.map(\.eventType) == [.filed, .resolved, .effectFailed])

        let received = try await watch.take(7)
        Self.checkCommon(received, schema: "doorstep.visits.v1.Complaint")
        // Until the dispatcher ran, the order of the calls; then one failure each.
        #expect(received.prefix(5).map(\.type) == ["filed", "extended", "filed", "resolved", "sla_breached"].map { "doorstep.visits.complaint.\($0)" })
        #expect(received.suffix(2).allSatisfy { $0.type == "doorstep.visits.complaint.effect_failed" })
        for (complaint, expected) in [(first, [("filed", first), ("extended", extended), ("sla_breached", breached),
                                               ("effect_failed", firstFailed)]),
                                      (second, [("filed", second), ("resolved", resolved), ("effect_failed", secondFailed)])] {
            let own = received.filter { $0.subject == "complaints/\(complaint.id)" }
            #expect(own.map(\.type) == expected.map { "doorstep.visits.complaint.\($0.0)" })
            #expect(try own.map { try VisitsV1.Complaint(decoding: $0.data) } == expected.map { $0.1 },
                    "the data is the complaint as the call (or a read right after the change) returned it")
            #expect(try own.map { try VisitsV1.Complaint(jsonText: $0.dataJson) } == expected.map { $0.1 })
        }
        #expect(received.first { $0.type.hasSuffix(".sla_breached") }?.timeMs == harness.clock.now)

        // Nothing else was written: the next event is the next change.
        let third = try await file("complaint-3")
        let after = try await watch.take(1)
        #expect(after.map(\.subject) == ["complaints/\(third.id)"] && after.first?.type == "doorstep.visits.complaint.filed")
        watch.call.cancel()
        await harness.close()
    }
}
