import Compliance
import Foundation
import Models
import Outbox
import RPC
import RPCWire
import ServiceTestSupport
import Testing
import Validation
import VisitsService

/// The visits service over gRPC on loopback, on a real SQLite file, with scheduling and
/// accounts faked (`FakePeers`) and effects delivered by an outbox dispatcher the test
/// drives. Unless a test moves it, the clock stands at 2026-03-10 08:00 Asia/Shanghai;
/// appointments are 2026-03-12 10:00-12:00 there by default.
@Suite("Visits over gRPC: check-in, outcome, check-out, evidence chain, roles", .serialized)
struct VisitsRPCTests {
    // MARK: 1. Check-in

    @Test("check-in: the first crew member opens the visit, the second joins it; once per collector; replays", .timeLimit(.minutes(1)))
    func checkInHappyPath() async throws {
        let harness = try await VisitsHarness()
        let world = try await harness.setUpWorld()
        let crew = [world.a.id, world.b.id]
        let appointment = harness.addAppointment(crew: crew, agency: world.agency)
        #expect(appointment.windowStartMs == 1_773_280_800_000)  // 2026-03-12T02:00:00Z
        harness.clock.set(march(12, 10, 5))

        let first = try await harness.checkIn(appointment.id, as: world.a, requestID: "checkin-a", deviceTimeMs: march(12, 10, 4))
        try Validate.resourceID(first.id, field: "id", prefix: "vis")
        #expect(first.state == .checkedIn)
        #expect(first.appointmentId == appointment.id)
        #expect(first.accountId == appointment.accountId)
        #expect(first.debtorId == appointment.debtorId)
        #expect(first.agencyId == world.agency)
        #expect(first.crewCollectorIds == crew)
        #expect(first.windowStartMs == march(12, 10) && first.windowEndMs == march(12, 12))
        #expect(first.version == 1)
        #expect(first.createdMs == harness.clock.now && first.updatedMs == harness.clock.now)
        #expect(first.rulePackId == "cn-2026")
        #expect(first.rulePackVersion == RulePacks.cn2026.version)
        // cn-2026 record-retention: 5 years for consumer finance, from the visit's local date.
        #expect(first.retainUntilDate == TypeV1.Date(year: 2031, month: 3, day: 12))
        #expect(first.outcome == nil && first.checkOut == nil && first.effects.isEmpty)

        #expect(first.checkIns.count == 1)
        let checkIn = try #require(first.checkIns.first)
        #expect(checkIn.collectorId == world.a.id)
        #expect(checkIn.checkedInMs == harness.clock.now)
        #expect(checkIn.location == Places.fiftyMetresNorth)
        #expect((35...65).contains(checkIn.distanceMeters), "distance \(checkIn.distanceMeters) m; about 50 m expected")
        #expect(checkIn.idShown)
        #expect(!checkIn.consentToEnter)
        #expect(checkIn.locationAccuracyMeters == 8)
        #expect(checkIn.deviceTimeMs == march(12, 10, 4))

        #expect(first.chainRecords.count == 1)
        let record = try #require(first.chainRecords.first)
        #expect(record.sequence == 1)
        #expect(record.kind == .checkIn)
        #expect(record.appendedMs == harness.clock.now)
        #expect(record.previousSha256 == [UInt8](repeating: 0, count: 32), "the account's first record follows 32 zero bytes")
        #expect(record.recordSha256 == sha256(record.previousSha256 + record.payload))
        let entry = try VisitsV1.ChainEntry(decoding: record.payload)
        #expect(entry.accountId == appointment.accountId)
        #expect(entry.visitId == first.id)
        #expect(entry.sequence == 1)
        #expect(entry.content == .checkIn(checkIn))

        // The second crew member joins the same visit, two minutes later, at the door.
        harness.clock.advance(120_000)
        let second = try await harness.checkIn(appointment.id, as: world.b, requestID: "checkin-b", at: Places.home)
        #expect(second.id == first.id)
        #expect(second.state == .checkedIn)
        #expect(second.version == 2)
        #expect(second.createdMs == first.createdMs)
        #expect(second.updatedMs == harness.clock.now)
        #expect(second.checkIns.map(\.collectorId) == crew)
        #expect(second.checkIns.last?.distanceMeters == 0)
        #expect(second.checkIns.last?.checkedInMs == harness.clock.now)
        #expect(second.chainRecords.map(\.sequence) == [1, 2])
        #expect(second.chainRecords.map(\.kind) == [.checkIn, .checkIn])
        #expect(second.chainRecords.first == record)
        #expect(second.chainRecords.last?.previousSha256 == record.recordSha256)
        #expect(second.chainRecords.last.map { $0.recordSha256 == sha256($0.previousSha256 + $0.payload) } == true)

        // The same collector again, as a new request: ALREADY_EXISTS, nothing changes.
        let again = await #expect(throws: RPCError.self) {
            _ = try await harness.checkIn(appointment.id, as: world.a, requestID: "checkin-a-again")
        }
        #expect(again?.code == .alreadyExists, "\(String(describing: again))")

        // The first request again: its response, from memory (the peers are not asked).
        let callsBeforeReplay = harness.peers.calls
        let replay = try await harness.checkIn(appointment.id, as: world.a, requestID: "checkin-a", deviceTimeMs: march(12, 10, 4))
        #expect(replay == first)
        #expect(harness.peers.calls == callsBeforeReplay)
        // The same request_id with another body: INVALID_ARGUMENT.
        let reused = await #expect(throws: RPCError.self) {
            _ = try await harness.checkIn(appointment.id, as: world.a, requestID: "checkin-a", at: Places.home, deviceTimeMs: march(12, 10, 4))
        }
        #expect(reused?.code == .invalidArgument)
        #expect(reused?.message.hasPrefix("request_id:") == true, "\(reused?.message ?? "")")

        let read = try await harness.getVisit(first.id)
        #expect(read == second)
        #expect(try await harness.listVisits().map(\.id) == [first.id])

        // A credit card's visit records are kept 2 years (cn-2026).
        let card = harness.addAccount(product: .creditCard)
        let cardAppointment = harness.addAppointment(crew: [world.c.id, world.d.id], agency: world.agency, account: card)
        let cardVisit = try await harness.checkIn(cardAppointment.id, as: world.c, requestID: "checkin-card")
        #expect(cardVisit.id != first.id)
        #expect(cardVisit.accountId == card.id)
        #expect(cardVisit.retainUntilDate == TypeV1.Date(year: 2028, month: 3, day: 12))
        #expect(cardVisit.chainRecords.map(\.sequence) == [1], "each account has its own chain")
        await harness.close()
    }

    // MARK: 2. Check-in refusals

    @Test("check-in refusals: every rule at once, nothing recorded; crew, token, appointment state, unknown, peers down", .timeLimit(.minutes(1)))
    func checkInRefusals() async throws {
        let harness = try await VisitsHarness()
        let world = try await harness.setUpWorld()
        let crew = [world.a.id, world.b.id]
        let appointment = harness.addAppointment(crew: crew, agency: world.agency)
        harness.peers.setViolations([TypeV1.Violation(ruleId: "collector-status", detail: "collector \(world.a.id) is SUSPENDED",
                                                      subjectId: world.a.id)], for: appointment.id)
        // 16 minutes after the window closed (grace 15), 500 m away, no ID shown, and
        // scheduling reports the collector suspended.
        harness.clock.set(march(12, 12, 16))
        let error = await #expect(throws: RPCError.self) {
            _ = try await harness.checkIn(appointment.id, as: world.a, requestID: "checkin-bad", at: Places.fiveHundredMetresNorth,
                                          idShown: false)
        }
        #expect(error?.code == .failedPrecondition)
        for rule in ["check-in-window", "check-in-geofence", "id-shown", "collector-status"] {
            #expect(error?.message.contains(rule) == true, "\(rule) not named in '\(error?.message ?? "")'")
        }
        let refused = try refusal(of: error)
        #expect(refused.violations.map(\.ruleId) == ["check-in-window", "check-in-geofence", "id-shown", "collector-status"])
        #expect(refused.rulePackId == "cn-2026")
        #expect(refused.rulePackVersion == RulePacks.cn2026.version)
        let geofence = refused.violations.first { $0.ruleId == "check-in-geofence" }
        #expect(geofence?.field == "location")
        #expect(geofence?.detail.hasPrefix("500 m") == true, "\(geofence?.detail ?? "")")
        #expect(refused.violations.first { $0.ruleId == "id-shown" }?.field == "id_shown")
        #expect(refused.violations.first { $0.ruleId == "collector-status" }?.subjectId == world.a.id)
        #expect(try await harness.listVisits().isEmpty, "a refused check-in records nothing")

        // At the edge of the grace, 50 m away, ID shown, no longer suspended: checked in.
        harness.peers.setViolations([], for: appointment.id)
        harness.clock.set(march(12, 12, 15))
        let edge = try await harness.checkIn(appointment.id, as: world.a, requestID: "checkin-edge")
        #expect(edge.state == .checkedIn)
        // The geofence alone.
        let far = await #expect(throws: RPCError.self) {
            _ = try await harness.checkIn(appointment.id, as: world.b, requestID: "checkin-far", at: Places.fiveHundredMetresNorth)
        }
        #expect(try refusedRules(far) == ["check-in-geofence"])
        #expect(try await harness.getVisit(edge.id).checkIns.count == 1)

        // The window alone: 16 minutes early is refused, 15 minutes early is allowed.
        let tomorrow = harness.addAppointment(crew: crew, agency: world.agency, start: march(13, 10), end: march(13, 12))
        harness.clock.set(march(13, 9, 44))
        let early = await #expect(throws: RPCError.self) {
            _ = try await harness.checkIn(tomorrow.id, as: world.a, requestID: "checkin-early")
        }
        #expect(try refusedRules(early) == ["check-in-window"])
        harness.clock.set(march(13, 9, 45))
        let onTime = try await harness.checkIn(tomorrow.id, as: world.a, requestID: "checkin-early-2")
        #expect(onTime.appointmentId == tomorrow.id)

        // Not on the crew, or the token's collector is someone else: PERMISSION_DENIED.
        harness.clock.set(march(13, 10, 30))
        let outsider = await #expect(throws: RPCError.self) {
            _ = try await harness.checkIn(tomorrow.id, as: world.c, requestID: "checkin-outsider")
        }
        #expect(outsider?.code == .permissionDenied, "\(String(describing: outsider))")
        let impostor = await #expect(throws: RPCError.self) {
            _ = try await harness.checkIn(tomorrow.id, as: world.a, collectorID: world.b.id, requestID: "checkin-impostor")
        }
        #expect(impostor?.code == .permissionDenied, "\(String(describing: impostor))")
        #expect(try await harness.getVisit(onTime.id).checkIns.map(\.collectorId) == [world.a.id])

        // A cancelled appointment cannot be visited.
        let cancelled = harness.addAppointment(crew: crew, agency: world.agency, state: .cancelled, start: march(13, 10), end: march(13, 12))
        let closed = await #expect(throws: RPCError.self) {
            _ = try await harness.checkIn(cancelled.id, as: world.a, requestID: "checkin-cancelled")
        }
        #expect(try refusedRules(closed) == ["appointment-state"])
        #expect(closed?.message.contains("CANCELLED") == true, "\(closed?.message ?? "")")

        // An appointment scheduling does not know: NOT_FOUND.
        let unknown = await #expect(throws: RPCError.self) {
            _ = try await harness.checkIn(IDGenerator.make(prefix: "apt", nowMs: harness.clock.now), as: world.a, requestID: "checkin-unknown")
        }
        #expect(unknown?.code == .notFound, "\(String(describing: unknown))")

        // Peers unreachable: UNAVAILABLE, nothing recorded, and the same request succeeds later.
        let down = harness.addAppointment(crew: crew, agency: world.agency, start: march(13, 10), end: march(13, 12))
        harness.peers.setUnavailable(true)
        let unavailable = await #expect(throws: RPCError.self) {
            _ = try await harness.checkIn(down.id, as: world.a, requestID: "checkin-down")
        }
        #expect(unavailable?.code == .unavailable, "\(String(describing: unavailable))")
        harness.peers.setUnavailable(false)
        #expect(try await harness.listVisits(VisitsV1.ListVisitsRequest(appointmentId: down.id)).isEmpty)
        let recovered = try await harness.checkIn(down.id, as: world.a, requestID: "checkin-down")
        #expect(recovered.appointmentId == down.id)

        let visited = try await harness.listVisits().map(\.appointmentId)
        #expect(Set(visited) == [appointment.id, tomorrow.id, down.id])
        #expect(visited.count == 3)
        await harness.close()
    }

    // MARK: 3. Outcome

    @Test("outcome: crew present, per-code requirements, once; contact and promise delivered to accounts; hardship hold", .timeLimit(.minutes(1)))
    func recordOutcome() async throws {
        let harness = try await VisitsHarness()
        let world = try await harness.setUpWorld()
        let appointment = harness.addAppointment(crew: [world.a.id, world.b.id], agency: world.agency)
        harness.clock.set(march(12, 10, 5))
        let visit = try await harness.checkIn(appointment.id, as: world.a, requestID: "checkin-a")
        let checkedInMs = harness.clock.now
        let terms = VisitsV1.PromiseTerms(amount: TypeV1.Money(amountMinor: 50_000, currencyCode: "CNY"),
                                          promisedDate: TypeV1.Date(year: 2026, month: 3, day: 20))

        // One of a crew of two checked in (cn-2026 crew size 2).
        let alone = await #expect(throws: RPCError.self) {
            _ = try await harness.recordOutcome(visit.id, by: world.a, requestID: "outcome-alone", code: .promiseToPay,
                                                willingness: .willing, ability: .partial, arrangement: .promise(terms))
        }
        #expect(try refusedRules(alone) == ["crew-present"])
        #expect(try await harness.getVisit(visit.id).state == .checkedIn)

        harness.clock.advance(60_000)
        _ = try await harness.checkIn(appointment.id, as: world.b, requestID: "checkin-b")
        harness.clock.advance(30 * 60_000)

        // What each code requires: INVALID_ARGUMENT naming the field.
        let noPromise = await #expect(throws: RPCError.self) {
            _ = try await harness.recordOutcome(visit.id, by: world.a, requestID: "outcome-no-promise", code: .promiseToPay,
                                                willingness: .willing, ability: .partial)
        }
        #expect(noPromise?.code == .invalidArgument)
        #expect(noPromise?.message.hasPrefix("promise:") == true, "\(noPromise?.message ?? "")")
        let notHome = await #expect(throws: RPCError.self) {
            _ = try await harness.recordOutcome(visit.id, by: world.a, requestID: "outcome-not-home", code: .notHome, willingness: .willing)
        }
        #expect(notHome?.code == .invalidArgument)
        #expect(notHome?.message.hasPrefix("willingness:") == true, "\(notHome?.message ?? "")")
        let phone = await #expect(throws: RPCError.self) {
            _ = try await harness.recordOutcome(visit.id, by: world.a, requestID: "outcome-phone", code: .metDebtor, willingness: .reluctant,
                                                ability: .unable, notes: "债务人手机 13812345678，下周再联系")
        }
        #expect(phone?.code == .invalidArgument)
        #expect(phone?.message.hasPrefix("notes:") == true, "\(phone?.message ?? "")")
        // A stale expected_version: ABORTED.
        let stale = await #expect(throws: RPCError.self) {
            _ = try await harness.recordOutcome(visit.id, by: world.a, requestID: "outcome-stale", code: .promiseToPay, willingness: .willing,
                                                ability: .partial, arrangement: .promise(terms), expectedVersion: 1)
        }
        #expect(stale?.code == .aborted, "\(String(describing: stale))")
        #expect(harness.wakes.value == 0)

        let recorded = try await harness.recordOutcome(visit.id, by: world.a, requestID: "outcome-1", code: .promiseToPay,
                                                       willingness: .willing, ability: .partial, notes: "承诺 3 月 20 日前还款 500 元",
                                                       arrangement: .promise(terms), expectedVersion: 2)
        #expect(recorded.state == .outcomeRecorded)
        #expect(recorded.version == 3)
        #expect(recorded.updatedMs == harness.clock.now)
        let outcome = try #require(recorded.outcome)
        #expect(outcome.code == .promiseToPay)
        #expect(outcome.willingness == .willing)
        #expect(outcome.ability == .partial)
        #expect(outcome.notes == "承诺 3 月 20 日前还款 500 元")
        #expect(outcome.arrangement == .promise(terms))
        #expect(outcome.recordedByCollectorId == world.a.id)
        #expect(outcome.recordedMs == harness.clock.now)

        #expect(recorded.chainRecords.map(\.sequence) == [1, 2, 3])
        #expect(recorded.chainRecords.map(\.kind) == [.checkIn, .checkIn, .outcome])
        let outcomeRecord = try #require(recorded.chainRecords.last)
        #expect(outcomeRecord.previousSha256 == recorded.chainRecords[1].recordSha256)
        #expect(outcomeRecord.recordSha256 == sha256(outcomeRecord.previousSha256 + outcomeRecord.payload))
        #expect(try VisitsV1.ChainEntry(decoding: outcomeRecord.payload).content == .outcome(outcome))

        #expect(recorded.effects.map(\.kind) == [.contactAttempt, .promiseToPay])
        #expect(recorded.effects.map(\.targetService) == ["accounts", "accounts"])
        #expect(recorded.effects.map(\.requestId) == ["\(visit.id).contact", "\(visit.id).promise"])
        for effect in recorded.effects {
            #expect(effect.delivery?.status == .pending, "\(effect.requestId)")
            #expect(effect.delivery?.attempts == 0)
            #expect(effect.delivery?.deliveredMs == 0)
            #expect(effect.createdMs == harness.clock.now)
        }
        #expect(harness.wakes.value == 1, "the dispatcher is woken after the outcome commits")

        // The outcome is recorded once.
        let twice = await #expect(throws: RPCError.self) {
            _ = try await harness.recordMetDebtor(visit.id, by: world.b, requestID: "outcome-2")
        }
        #expect(try refusedRules(twice) == ["visit-state"])
        let replay = try await harness.recordOutcome(visit.id, by: world.a, requestID: "outcome-1", code: .promiseToPay,
                                                     willingness: .willing, ability: .partial, notes: "承诺 3 月 20 日前还款 500 元",
                                                     arrangement: .promise(terms), expectedVersion: 2)
        #expect(replay == recorded)

        // Delivery: a VISIT contact attempt and the promise, each with its stable request id.
        let sink = RecordingSink()
        let dispatcher = harness.dispatcher(sink: sink)
        #expect(await dispatcher.dispatchDue() == 2)
        let delivered = sink.delivered
        #expect(delivered.map(\.id) == ["\(visit.id).contact", "\(visit.id).promise"])
        #expect(delivered.allSatisfy { $0.topic == VisitsService.effectTopic })
        try #require(delivered.count == 2)

        let contact = try DeliveredEffect(delivered[0])
        #expect(contact.service == "accounts")
        #expect(contact.method == AccountsV1.AccountsService.recordContactAttempt.path)
        #expect(contact.kind == VisitsV1.EffectKind.contactAttempt.rawValue)
        let attempt = try AccountsV1.RecordContactAttemptRequest(decoding: contact.request)
        #expect(attempt.requestId == "\(visit.id).contact")
        #expect(attempt.accountId == appointment.accountId)
        #expect(attempt.channel == .visit)
        #expect(attempt.outcome == .visitMetDebtor)
        #expect(attempt.visitId == visit.id)
        #expect(attempt.agencyId == world.agency)
        #expect(attempt.attemptedMs == checkedInMs, "the attempt is dated at the first check-in")

        let promised = try DeliveredEffect(delivered[1])
        #expect(promised.service == "accounts")
        #expect(promised.method == AccountsV1.AccountsService.recordPromiseToPay.path)
        #expect(promised.kind == VisitsV1.EffectKind.promiseToPay.rawValue)
        let promise = try AccountsV1.RecordPromiseToPayRequest(decoding: promised.request)
        #expect(promise.requestId == "\(visit.id).promise")
        #expect(promise.accountId == appointment.accountId)
        #expect(promise.amount == TypeV1.Money(amountMinor: 50_000, currencyCode: "CNY"))
        #expect(promise.promisedDate == TypeV1.Date(year: 2026, month: 3, day: 20))
        #expect(promise.sourceVisitId == visit.id)

        let read = try await harness.getVisit(visit.id)
        let statuses = read.effects.map { $0.delivery?.status ?? TypeV1.DeliveryStatus.unspecified }
        #expect(statuses == [.delivered, .delivered])
        #expect(read.effects.allSatisfy { $0.delivery?.deliveredMs == harness.clock.now && $0.delivery?.attempts == 1 })
        #expect(await dispatcher.dispatchDue() == 0, "delivered once")
        #expect(sink.calls == 2)

        // HARDSHIP on another visit places a HARDSHIP hold.
        let other = harness.addAppointment(crew: [world.c.id, world.d.id], agency: world.agency)
        let hardshipVisit = try await harness.checkIn(other.id, as: world.c, requestID: "checkin-c")
        _ = try await harness.checkIn(other.id, as: world.d, requestID: "checkin-d")
        let hardship = try await harness.recordOutcome(hardshipVisit.id, by: world.d, requestID: "outcome-hardship", code: .hardship,
                                                       willingness: .willing, ability: .unable, notes: "债务人失业三个月，无力还款")
        #expect(hardship.state == .outcomeRecorded)
        #expect(hardship.effects.map(\.kind) == [.contactAttempt, .placeHold])
        #expect(hardship.effects.map(\.requestId) == ["\(hardshipVisit.id).contact", "\(hardshipVisit.id).hold"])
        #expect(hardship.effects.last?.targetService == "accounts")
        #expect(hardship.effects.last?.delivery?.status == .pending)
        let holdSink = RecordingSink()
        #expect(await harness.dispatcher(sink: holdSink).dispatchDue() == 2)
        let holdMessage = try #require(holdSink.delivered.first { $0.id == "\(hardshipVisit.id).hold" })
        let hold = try DeliveredEffect(holdMessage)
        #expect(hold.service == "accounts")
        #expect(hold.method == AccountsV1.AccountsService.placeHold.path)
        #expect(hold.kind == VisitsV1.EffectKind.placeHold.rawValue)
        let holdRequest = try AccountsV1.PlaceHoldRequest(decoding: hold.request)
        #expect(holdRequest.requestId == "\(hardshipVisit.id).hold")
        #expect(holdRequest.accountId == other.accountId)
        #expect(holdRequest.reason == .hardship)
        await harness.close()
    }

    // MARK: 4. Check-out

    @Test("check-out: after the outcome, with evidence; a CHECK_OUT record and the appointment's completion queued", .timeLimit(.minutes(1)))
    func checkOut() async throws {
        let harness = try await VisitsHarness()
        let world = try await harness.setUpWorld()
        // A crew of three; only two check in.
        let appointment = harness.addAppointment(crew: [world.a.id, world.b.id, world.c.id], agency: world.agency)
        harness.clock.set(march(12, 10, 5))
        let visit = try await harness.checkIn(appointment.id, as: world.a, requestID: "checkin-a")
        _ = try await harness.checkIn(appointment.id, as: world.b, requestID: "checkin-b")
        harness.clock.advance(20 * 60_000)

        let early = await #expect(throws: RPCError.self) {
            _ = try await harness.checkOut(visit.id, by: world.a, requestID: "checkout-early")
        }
        #expect(try refusedRules(early) == ["outcome-required"])

        let withOutcome = try await harness.recordMetDebtor(visit.id, by: world.b, requestID: "outcome-1")
        #expect(withOutcome.state == .outcomeRecorded)
        harness.clock.advance(5 * 60_000)

        // cn-2026 requires the recording's reference.
        let bare = await #expect(throws: RPCError.self) {
            _ = try await harness.checkOut(visit.id, by: world.a, requestID: "checkout-bare", evidence: nil)
        }
        let bareRefusal = try refusal(of: bare)
        #expect(bareRefusal.violations.map(\.ruleId) == ["evidence-required"])
        #expect(bareRefusal.rulePackId == "cn-2026")
        #expect(bareRefusal.violations.first?.field == "evidence")
        #expect(bareRefusal.violations.first?.ruleText.isEmpty == false, "a pack rule is quoted")
        // A digest of 31 bytes is malformed.
        let short = await #expect(throws: RPCError.self) {
            _ = try await harness.checkOut(visit.id, by: world.a, requestID: "checkout-short",
                                           evidence: VisitsHarness.evidence(sha256: [UInt8](repeating: 0xAB, count: 31)))
        }
        #expect(short?.code == .invalidArgument)
        #expect(short?.message.hasPrefix("evidence.evidence_sha256:") == true, "\(short?.message ?? "")")
        // On the crew but never checked in.
        let absent = await #expect(throws: RPCError.self) {
            _ = try await harness.checkOut(visit.id, by: world.c, requestID: "checkout-absent")
        }
        #expect(absent?.code == .permissionDenied, "\(String(describing: absent))")
        #expect(try await harness.getVisit(visit.id).state == .outcomeRecorded)

        let closed = try await harness.checkOut(visit.id, by: world.a, requestID: "checkout-1")
        #expect(closed.state == .checkedOut)
        #expect(closed.version == withOutcome.version + 1)
        #expect(closed.updatedMs == harness.clock.now)
        let checkOut = try #require(closed.checkOut)
        #expect(checkOut.collectorId == world.a.id)
        #expect(checkOut.checkedOutMs == harness.clock.now)
        #expect(checkOut.evidence == VisitsHarness.evidence())
        #expect(checkOut.location == Places.home)
        #expect(closed.chainRecords.map(\.sequence) == [1, 2, 3, 4])
        #expect(closed.chainRecords.map(\.kind) == [.checkIn, .checkIn, .outcome, .checkOut])
        let last = try #require(closed.chainRecords.last)
        #expect(last.previousSha256 == closed.chainRecords[2].recordSha256)
        #expect(last.recordSha256 == sha256(last.previousSha256 + last.payload))
        #expect(try VisitsV1.ChainEntry(decoding: last.payload).content == .checkOut(checkOut))
        #expect(closed.effects.map(\.kind) == [.contactAttempt, .completeAppointment])
        let completion = try #require(closed.effects.last)
        #expect(completion.targetService == "scheduling")
        #expect(completion.requestId == "\(visit.id).complete")
        #expect(completion.createdMs == harness.clock.now)
        #expect(completion.delivery?.status == .pending)

        // Closed for good: no second check-out, no late check-in.
        let again = await #expect(throws: RPCError.self) {
            _ = try await harness.checkOut(visit.id, by: world.b, requestID: "checkout-2")
        }
        #expect(try refusedRules(again) == ["visit-state"])
        let late = await #expect(throws: RPCError.self) {
            _ = try await harness.checkIn(appointment.id, as: world.c, requestID: "checkin-c-late")
        }
        #expect(try refusedRules(late) == ["visit-state"])

        // Delivery: scheduling is told to complete the appointment.
        let sink = RecordingSink()
        #expect(await harness.dispatcher(sink: sink).dispatchDue() == 2)
        let message = try #require(sink.delivered.first { $0.id == "\(visit.id).complete" })
        let effect = try DeliveredEffect(message)
        #expect(effect.service == "scheduling")
        #expect(effect.method == SchedulingV1.SchedulingService.completeAppointment.path)
        #expect(effect.kind == VisitsV1.EffectKind.completeAppointment.rawValue)
        let complete = try SchedulingV1.CompleteAppointmentRequest(decoding: effect.request)
        #expect(complete.requestId == "\(visit.id).complete")
        #expect(complete.appointmentId == appointment.id)
        #expect(complete.visitId == visit.id)
        #expect(complete.checkedOutMs == checkOut.checkedOutMs)
        let read = try await harness.getVisit(visit.id)
        let statuses = read.effects.map { $0.delivery?.status ?? TypeV1.DeliveryStatus.unspecified }
        #expect(statuses == [.delivered, .delivered])
        await harness.close()
    }

    // MARK: 5. Evidence chain

    @Test("evidence chain: two visits of one account link up and verify; a changed byte is found", .timeLimit(.minutes(1)))
    func evidenceChain() async throws {
        let harness = try await VisitsHarness()
        let world = try await harness.setUpWorld()
        let account = harness.addAccount()
        let crew = [world.a.id, world.b.id]
        let first = harness.addAppointment(crew: crew, agency: world.agency, account: account)
        let second = harness.addAppointment(crew: crew, agency: world.agency, account: account, start: march(13, 10), end: march(13, 12))
        harness.clock.set(march(12, 10, 5))
        let one = try await completeVisit(harness, first.id, world, tag: "one")
        harness.clock.set(march(13, 10, 5))
        let two = try await completeVisit(harness, second.id, world, tag: "two")
        #expect(one.id != two.id)
        #expect(one.chainRecords.map(\.sequence) == [1, 2, 3, 4])
        #expect(two.chainRecords.map(\.sequence) == [5, 6, 7, 8], "the second visit continues the account's chain")

        // Recomputed here with swift-crypto: each record hashes its predecessor's hash and its payload.
        let records = one.chainRecords + two.chainRecords
        var previous = [UInt8](repeating: 0, count: 32)
        for (index, record) in records.enumerated() {
            #expect(record.sequence == Int64(index + 1))
            #expect(record.previousSha256 == previous, "record \(record.sequence)")
            #expect(record.recordSha256 == sha256(record.previousSha256 + record.payload), "record \(record.sequence)")
            let entry = try VisitsV1.ChainEntry(decoding: record.payload)
            #expect(entry.accountId == account.id)
            #expect(entry.sequence == record.sequence)
            #expect(entry.appendedMs == record.appendedMs)
            #expect(entry.visitId == (index < 4 ? one.id : two.id))
            previous = record.recordSha256
        }
        #expect(records.map(\.kind) == [.checkIn, .checkIn, .outcome, .checkOut, .checkIn, .checkIn, .outcome, .checkOut])
        #expect(EvidenceChain.verify(records, accountID: account.id).intact)

        let verified = try await harness.verifyChain(account.id)
        #expect(verified.accountId == account.id)
        #expect(verified.intact)
        #expect(verified.recordsChecked == 8)
        #expect(verified.headSequence == 8)
        #expect(verified.headSha256 == two.chainRecords.last?.recordSha256)
        #expect(verified.headSha256.count == 32)
        #expect(verified.firstBrokenSequence == 0)
        #expect(verified.problem.isEmpty)
        #expect(verified.verifiedMs == harness.clock.now)
        let byCompliance = try await harness.verifyChain(account.id, metadata: try await harness.metadata(.compliance))
        #expect(byCompliance.intact && byCompliance.recordsChecked == 8)

        // Change one byte of record 2's stored payload behind the service's back.
        let stored = try await harness.database.read { db in
            try db.fetchValue(Data.self, sql: "SELECT payload FROM chain_records WHERE account_id = ? AND sequence = 2", arguments: [account.id])
        }
        var bytes = try #require(stored)
        #expect([UInt8](bytes) == records[1].payload, "the payload is stored as hashed")
        let middle = bytes.startIndex + bytes.count / 2
        bytes[middle] ^= 0x01
        let tampered = bytes
        let changed = try await harness.database.write { db -> Int in
            try db.execute(sql: "UPDATE chain_records SET payload = ? WHERE account_id = ? AND sequence = 2",
                           arguments: [tampered, account.id])
        }
        #expect(changed == 1)

        let broken = try await harness.verifyChain(account.id)
        #expect(!broken.intact)
        #expect(broken.firstBrokenSequence == 2)
        #expect(broken.problem.contains("record 2"), "\(broken.problem)")
        #expect(broken.recordsChecked == 1)
        #expect(broken.headSequence == 8)

        // An account without records.
        let unknown = await #expect(throws: RPCError.self) {
            _ = try await harness.verifyChain(IDGenerator.make(prefix: "acc", nowMs: harness.clock.now))
        }
        #expect(unknown?.code == .notFound, "\(String(describing: unknown))")
        await harness.close()
    }

    // MARK: 6. Roles

    @Test("roles: managers and collectors see their own visits; only collectors act on visits", .timeLimit(.minutes(1)))
    func roles() async throws {
        let harness = try await VisitsHarness()
        let x = try await harness.setUpWorld()
        let y = try await harness.setUpWorld()
        harness.clock.set(march(12, 10, 5))
        let ours = harness.addAppointment(crew: [x.a.id, x.b.id], agency: x.agency)
        let theirs = harness.addAppointment(crew: [y.a.id, y.b.id], agency: y.agency)
        let ourVisit = try await harness.checkIn(ours.id, as: x.a, requestID: "checkin-x")
        harness.clock.advance(1_000)
        let theirVisit = try await harness.checkIn(theirs.id, as: y.a, requestID: "checkin-y")

        // Agency managers: their agency's visits; another agency's are not disclosed.
        #expect(try await harness.getVisit(ourVisit.id, metadata: x.manager).id == ourVisit.id)
        let hidden = await #expect(throws: RPCError.self) { _ = try await harness.getVisit(ourVisit.id, metadata: y.manager) }
        #expect(hidden?.code == .notFound, "\(String(describing: hidden))")
        #expect(try await harness.listVisits(metadata: x.manager).map(\.id) == [ourVisit.id])
        #expect(try await harness.listVisits(metadata: y.manager).map(\.id) == [theirVisit.id])
        #expect(try await harness.listVisits(VisitsV1.ListVisitsRequest(agencyId: y.agency), metadata: x.manager).isEmpty)

        // Collectors: the visits whose crew includes them, checked in or not.
        #expect(try await harness.getVisit(ourVisit.id, metadata: x.b.metadata).id == ourVisit.id)
        let notTheirs = await #expect(throws: RPCError.self) { _ = try await harness.getVisit(theirVisit.id, metadata: x.a.metadata) }
        #expect(notTheirs?.code == .notFound, "\(String(describing: notTheirs))")
        #expect(try await harness.listVisits(metadata: x.a.metadata).map(\.id) == [ourVisit.id])
        #expect(try await harness.listVisits(metadata: y.b.metadata).map(\.id) == [theirVisit.id])
        #expect(try await harness.listVisits(metadata: x.c.metadata).isEmpty)
        #expect(try await harness.listVisits(VisitsV1.ListVisitsRequest(collectorId: y.a.id), metadata: x.a.metadata).isEmpty)
        // Another agency's collector cannot act on the visit either (it does not exist for them).
        let foreign = await #expect(throws: RPCError.self) {
            _ = try await harness.recordMetDebtor(ourVisit.id, by: y.a, requestID: "outcome-foreign")
        }
        #expect(foreign?.code == .notFound, "\(String(describing: foreign))")

        // Platform and service see everything.
        #expect(try await harness.listVisits().map(\.id) == [ourVisit.id, theirVisit.id])
        let serviceToken = try await harness.metadata(.service)
        let seenByService = try await harness.listVisits(metadata: serviceToken).map(\.id)
        #expect(Set(seenByService) == [ourVisit.id, theirVisit.id])

        // Only collectors check in and record outcomes; only platform and compliance verify chains.
        let platformCheckIn = await #expect(throws: RPCError.self) {
            _ = try await harness.checkIn(ours.id, as: x.b, requestID: "checkin-platform", metadata: harness.platform)
        }
        #expect(platformCheckIn?.code == .permissionDenied, "\(String(describing: platformCheckIn))")
        let managerOutcome = await #expect(throws: RPCError.self) {
            _ = try await harness.recordOutcome(ourVisit.id, by: x.a, requestID: "outcome-manager", code: .notHome, metadata: x.manager)
        }
        #expect(managerOutcome?.code == .permissionDenied, "\(String(describing: managerOutcome))")
        let collectorVerify = await #expect(throws: RPCError.self) {
            _ = try await harness.verifyChain(ours.accountId, metadata: x.a.metadata)
        }
        #expect(collectorVerify?.code == .permissionDenied, "\(String(describing: collectorVerify))")
        let read = try await harness.getVisit(ourVisit.id)
        #expect(read.checkIns.map(\.collectorId) == [x.a.id])
        #expect(read.state == .checkedIn && read.version == 1)
        await harness.close()
    }
}

/// One visit from start to end: both crew members check in, the first records MET_DEBTOR
/// half an hour later and checks out (with evidence) five minutes after that. Returns the
/// checked-out visit.
private func completeVisit(_ harness: VisitsHarness, _ appointmentID: String, _ world: World, tag: String) async throws -> VisitsV1.Visit {
    let visit = try await harness.checkIn(appointmentID, as: world.a, requestID: "checkin-\(tag)-a")
    harness.clock.advance(60_000)
    _ = try await harness.checkIn(appointmentID, as: world.b, requestID: "checkin-\(tag)-b")
    harness.clock.advance(30 * 60_000)
    _ = try await harness.recordMetDebtor(visit.id, by: world.a, requestID: "outcome-\(tag)")
    harness.clock.advance(5 * 60_000)
    let closed = try await harness.checkOut(visit.id, by: world.a, requestID: "checkout-\(tag)")
    #expect(closed.state == .checkedOut)
    return closed
}
