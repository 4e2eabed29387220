import Foundation
import Logging
import Models
import RPC
import RPCWire
import ServiceKit
import ServiceTestSupport
import Storage
import Testing
import Validation
@testable import VisitsService

private typealias V = VisitsV1.VisitsService

/// Record retention on the test clock: visits and complaints past their `retain_until_date`
/// are erased by the service's own job into tombstones, except where a hold applies (an OPEN
/// complaint, an account hold of reason COMPLAINT, DISPUTE or LEGAL_INSTRUCTION, a legal
/// referral); the compliance officer's audit (ListRetentionRecords) shows both.
@Suite("Retention: erasure past retain_until_date, holds postpone it, the audit shows both", .serialized)
struct RetentionTests {
    /// The instant `hour`:00 UTC on `year`-`month`-`day`.
    static func utc(_ year: Int, _ month: Int, _ day: Int, _ hour: Int) -> Int64 {
        Int64(CivilDate(year: year, month: month, day: day)!.dayNumber) * 86_400_000 + Int64(hour) * 3_600_000
    }

    /// The visits of 2026-03-12 are kept until 2031-03-12 (cn-2026, consumer finance, 5
    /// years); erasure is due once that date has ended in every zone: 12:00 UTC on the 13th.
    static let due = utc(2031, 3, 13, 12)

    /// A visit from check-in to check-out on `account` (2026-03-12 in Shanghai, or `daysLater`
    /// after), with both crew members, a MET_DEBTOR outcome and evidence: four chain records.
    static func completedVisit(_ harness: VisitsHarness, _ world: World, account: AccountsV1.Account, tag: String,
                               daysLater: Int64 = 0) async throws -> VisitsV1.Visit {
        let shift = daysLater * 86_400_000
        let appointment = harness.addAppointment(crew: [world.a.id, world.b.id], agency: world.agency, account: account,
                                                 start: march(12, 10) + shift, end: march(12, 12) + shift)
        harness.clock.set(march(12, 10, 5) + shift)
        let visit = try await harness.checkIn(appointment.id, as: world.a, requestID: "\(tag)-in-a")
        _ = try await harness.checkIn(appointment.id, as: world.b, requestID: "\(tag)-in-b")
        _ = try await harness.recordMetDebtor(visit.id, by: world.a, requestID: "\(tag)-outcome")
        return try await harness.checkOut(visit.id, by: world.a, requestID: "\(tag)-out")
    }

    /// The whole retention audit (every page), as a compliance officer.
    static func audit(_ harness: VisitsHarness, account: String = "", pageSize: Int32 = 0) async throws -> [VisitsV1.RetentionRecord] {
        let officer = try await harness.metadata(.compliance)
        var request = VisitsV1.ListRetentionRecordsRequest(pageSize: pageSize, accountId: account)
        var records: [VisitsV1.RetentionRecord] = []
        repeat {
            let page = try await harness.client.unary(V.listRetentionRecords, request, metadata: officer)
            records += page.records
            request.pageToken = page.nextPageToken
        } while !request.pageToken.isEmpty
        return records
    }

    // MARK: 1. Erasure

    @Test("past retention a visit becomes a tombstone with its legal basis; not a minute early; the chain still verifies; once",
          .timeLimit(.minutes(1)))
    func erasure() async throws {
        let harness = try await VisitsHarness()
        defer { Task { await harness.close() } }
        let world = try await harness.setUpWorld()
        let account = harness.addAccount()
        let old = try await Self.completedVisit(harness, world, account: account, tag: "old")
        // A year later on the same account: kept until 2032, its chain records follow the old ones.
        let newer = try await Self.completedVisit(harness, world, account: account, tag: "new", daysLater: 365)
        #expect(old.retainUntilDate == TypeV1.Date(year: 2031, month: 3, day: 12))
        #expect(old.chainRecords.count == 4 && newer.chainRecords.first?.sequence == 5)

        // 11:59 UTC on 2031-03-13: 2031-03-12 has not ended everywhere yet.
        harness.clock.set(Self.due - 60_000)
        #expect(try await harness.service.retentionPass().erased == 0)
        #expect(try await harness.getVisit(old.id).erased == nil)

        harness.clock.set(Self.due)
        let pass = try await harness.service.retentionPass()
        #expect(pass.erased == 1 && pass.held == 0 && pass.postponed == 0)
        let tombstone = try await harness.getVisit(old.id)
        let erased = try #require(tombstone.erased)
        #expect(erased.erasedMs == Self.due && erased.erasedBy?.role == .system && erased.erasedBy?.subject == "visits/retention")
        #expect(erased.ruleId == "record-retention" && erased.rulePackId == "cn-2026" && erased.rulePackVersion == old.rulePackVersion)
        #expect(erased.retainUntilDate == old.retainUntilDate)
        // What shows the visit existed stays; the debtor, the evidence and its content go.
        #expect(tombstone.id == old.id && tombstone.appointmentId == old.appointmentId && tombstone.accountId == account.id)
        #expect(tombstone.agencyId == world.agency && tombstone.crewCollectorIds == old.crewCollectorIds)
        #expect(tombstone.windowStartMs == old.windowStartMs && tombstone.state == .checkedOut && tombstone.createdMs == old.createdMs)
        #expect(tombstone.debtorId.isEmpty && tombstone.checkIns.isEmpty && tombstone.outcome == nil && tombstone.checkOut == nil)
        #expect(tombstone.chainRecords.isEmpty && tombstone.effects.isEmpty)
        #expect(tombstone.version == old.version + 1 && tombstone.updatedMs == Self.due)
        // The visit's events (checked in, outcome, checked out) carry the tombstone now, not the
        // evidence, and the erasure is an event of its own; the newer visit's events are untouched.
        let logged = try await harness.database.read { db in try VisitsStore.eventLog.events(db, after: 0, types: .all, limit: 1000) }
        let oldEvents = logged.filter { $0.subject == "visits/\(old.id)" }
        #expect(oldEvents.count >= 4 && oldEvents.last?.type == "doorstep.visits.visit.erased")
        #expect(try oldEvents.allSatisfy { try VisitsV1.Visit(decoding: $0.data) == tombstone })
        #expect(!oldEvents.contains { $0.dataJson.contains(old.debtorId) })
        #expect(try logged.filter { $0.subject == "visits/\(newer.id)" }.allSatisfy { try VisitsV1.Visit(decoding: $0.data).erased == nil })
        // Listed as the tombstone too; the newer visit is untouched.
        let listed = try await harness.listVisits(VisitsV1.ListVisitsRequest(accountId: account.id))
        #expect(listed.map(\.id) == [old.id, newer.id] && listed[0].erased != nil && listed[1].erased == nil)
        #expect(try await harness.getVisit(newer.id).outcome?.notes == "债务人表示下月发工资后联系")

        // The chain: the erased records keep their place; the newer ones still link to them.
        let chain = try await harness.verifyChain(account.id)
        #expect(chain.intact && chain.recordsChecked == 8 && chain.recordsErased == 4, "\(chain.problem)")
        #expect(chain.headSha256 == newer.chainRecords.last?.recordSha256)

        // The audit: one ERASED record with the legal basis, for compliance only.
        let audit = try await Self.audit(harness)
        #expect(audit.map(\.action) == [.erased])
        let record = try #require(audit.first)
        #expect(record.recordType == .visit && record.recordId == old.id && record.accountId == account.id && record.sequence > 0)
        #expect(record.ruleId == "record-retention" && record.rulePackId == "cn-2026" && record.retainUntilDate == old.retainUntilDate)
        #expect(record.hold == nil && record.actor?.subject == "visits/retention" && record.recordedMs == Self.due)
        let denied = await #expect(throws: RPCError.self) {
            try await harness.client.unary(V.listRetentionRecords, VisitsV1.ListRetentionRecordsRequest(), metadata: harness.platform)
        }
        #expect(denied?.code == .permissionDenied)

        // Idempotent: a later pass changes nothing and writes no second record.
        harness.clock.advance(3_600_000)
        #expect(try await harness.service.retentionPass() == RetentionTally())
        #expect(try await harness.getVisit(old.id) == tombstone)
        #expect(try await Self.audit(harness).count == 1)

        // An erased visit takes no more changes.
        let late = await #expect(throws: RPCError.self) { try await harness.checkOut(old.id, by: world.a, requestID: "late-out") }
        #expect(try refusedRules(late) == ["visit-state"])

        // Blanking a record that belongs to a kept visit is tampering, not erasure.
        _ = try await harness.database.write { db in
            try db.execute(sql: "UPDATE visits SET erased_ms = 0 WHERE id = ?", arguments: [old.id])
        }
        let tampered = try await harness.verifyChain(account.id)
        #expect(!tampered.intact && tampered.firstBrokenSequence == 1 && tampered.problem.contains("not erased"), "\(tampered.problem)")
    }

    // MARK: 2. Holds

    @Test("an open complaint, a DISPUTE hold and a legal referral each postpone erasure, audited once per hold; released, it goes",
          .timeLimit(.minutes(1)))
    func holds() async throws {
        let harness = try await VisitsHarness()
        defer { Task { await harness.close() } }
        let world = try await harness.setUpWorld()
        let officer = try await harness.metadata(.compliance)
        let account = harness.addAccount()
        let visit = try await Self.completedVisit(harness, world, account: account, tag: "held")
        let complaint = try await harness.client.unary(V.fileComplaint, VisitsV1.FileComplaintRequest(
            requestId: "complaint-1", accountId: account.id, visitId: visit.id, collectorId: world.a.id, category: .abuse,
            complaintText: "催收员上门时言语辱骂", channel: .phoneHotline), metadata: officer)
        #expect(complaint.retainUntilDate == TypeV1.Date(year: 2031, month: 3, day: 12))
        // Another account's visit, with no hold: erased in the same passes.
        let free = try await Self.completedVisit(harness, world, account: harness.addAccount(), tag: "free")

        func holdKinds() async throws -> [VisitsV1.RetentionHoldKind] {
            try await Self.audit(harness, account: account.id).compactMap { $0.action == .postponed ? $0.hold?.kind : nil }
        }

        // 1. The complaint is OPEN: it holds itself and the visit.
        harness.clock.set(Self.due + 86_400_000)
        var pass = try await harness.service.retentionPass()
        #expect(pass.erased == 1 && pass.held == 2 && pass.postponed == 2)
        #expect(try await harness.getVisit(free.id).erased != nil)
        #expect(try await harness.getVisit(visit.id).outcome != nil)
        var audit = try await Self.audit(harness, account: account.id)
        #expect(audit.map(\.action) == [.postponed, .postponed])
        #expect(audit.map(\.recordId) == [visit.id, complaint.id])
        #expect(audit.allSatisfy { $0.hold == VisitsV1.RetentionHold(kind: .openComplaint, id: complaint.id, note: "complaint \(complaint.id) is OPEN") })
        // The same hold next pass: kept, no new audit record.
        harness.clock.advance(3_600_000)
        pass = try await harness.service.retentionPass()
        #expect(pass.erased == 0 && pass.held == 2 && pass.postponed == 0)
        #expect(try await holdKinds() == [.openComplaint, .openComplaint])

        // 2. Resolved; but the debtor disputes the debt (and is in hardship, which holds nothing).
        _ = try await harness.client.unary(V.resolveComplaint, VisitsV1.ResolveComplaintRequest(
            requestId: "resolve-1", complaintId: complaint.id, resolution: .notUpheld, finding: "录音核实无辱骂"), metadata: officer)
        harness.peers.update(account: account.id) {
            $0.holds = [AccountsV1.Hold(id: "hld_hardship", reason: .hardship, note: "失业", active: true),
                        AccountsV1.Hold(id: "hld_dispute", reason: .dispute, note: "债务人对金额有异议", active: true)]
        }
        harness.clock.advance(3_600_000)
        pass = try await harness.service.retentionPass()
        #expect(pass.erased == 0 && pass.postponed == 2)
        audit = try await Self.audit(harness, account: account.id)
        #expect(audit.suffix(2).allSatisfy {
            $0.hold == VisitsV1.RetentionHold(kind: .accountHold, id: "hld_dispute", note: "HOLD_REASON_DISPUTE: 债务人对金额有异议")
        })

        // 3. The dispute is over, but the account is in litigation.
        harness.peers.update(account: account.id) {
            $0.holds[1].active = false
            $0.stage = .legal
            $0.legalReferral = AccountsV1.LegalReferral(reason: "拒不还款", caseReference: "(2031)沪0115民初1234号")
        }
        harness.clock.advance(3_600_000)
        pass = try await harness.service.retentionPass()
        #expect(pass.erased == 0 && pass.postponed == 2)
        #expect(try await holdKinds() == [.openComplaint, .openComplaint, .accountHold, .accountHold, .legalReferral, .legalReferral])
        #expect(try await Self.audit(harness, account: account.id).last?.hold?.note == "referred to litigation, (2031)沪0115民初1234号")
        #expect(try await harness.getVisit(visit.id).erased == nil)

        // 4. Written off after judgment: only the HARDSHIP hold is left, and it holds nothing.
        harness.peers.update(account: account.id) { $0.stage = .writtenOff }
        harness.clock.advance(3_600_000)
        pass = try await harness.service.retentionPass()
        #expect(pass.erased == 2 && pass.held == 0)
        audit = try await Self.audit(harness, account: account.id)
        #expect(audit.map(\.action) == [.postponed, .postponed, .postponed, .postponed, .postponed, .postponed, .erased, .erased])
        #expect(audit.suffix(2).map(\.recordId) == [visit.id, complaint.id] && audit.suffix(2).allSatisfy { $0.hold == nil })
        // Paged the same way: two at a time.
        #expect(try await Self.audit(harness, account: account.id, pageSize: 2) == audit)
        #expect(try await Self.audit(harness).count == 9)

        let gone = try await harness.client.unary(V.getComplaint, VisitsV1.GetComplaintRequest(complaintId: complaint.id), metadata: officer)
        let erasure = try #require(gone.erased)
        #expect(erasure.ruleId == "record-retention" && erasure.retainUntilDate == complaint.retainUntilDate)
        #expect(gone.complaintText.isEmpty && gone.finding.isEmpty && gone.timeline.isEmpty && gone.debtorId.isEmpty && gone.effects.isEmpty)
        #expect(gone.status == .notUpheld && gone.category == .abuse && gone.receivedMs == complaint.receivedMs && gone.visitId == visit.id)
        #expect(try await harness.getVisit(visit.id).erased != nil)
    }

    // MARK: 3. Never erase when unsure

    @Test("accounts unreachable: the pass fails and erases nothing; an account accounts does not know is kept", .timeLimit(.minutes(1)))
    func unsure() async throws {
        let harness = try await VisitsHarness()
        defer { Task { await harness.close() } }
        let world = try await harness.setUpWorld()
        let account = harness.addAccount()
        let visit = try await Self.completedVisit(harness, world, account: account, tag: "unsure")
        let unknown = harness.addAccount()
        let orphan = try await Self.completedVisit(harness, world, account: unknown, tag: "orphan")
        harness.clock.set(Self.due)

        harness.peers.setUnavailable(true)
        let failed = await #expect(throws: RPCError.self) { try await harness.service.retentionPass() }
        #expect(failed?.code == .unavailable)
        harness.peers.setUnavailable(false)
        #expect(try await harness.getVisit(visit.id).erased == nil)
        #expect(try await Self.audit(harness).isEmpty)

        harness.peers.remove(account: unknown.id)
        let pass = try await harness.service.retentionPass()
        #expect(pass.erased == 1 && pass.unresolved == 1)
        #expect(try await harness.getVisit(visit.id).erased != nil)
        #expect(try await harness.getVisit(orphan.id).erased == nil)
        #expect(try await Self.audit(harness).map(\.recordId) == [visit.id])
    }

    // MARK: 4. By itself

    @Test("the job runs by itself: the clock passes the date, no call erases the visit", .timeLimit(.minutes(1)))
    func runsByItself() async throws {
        let harness = try await VisitsHarness()
        defer { Task { await harness.close() } }
        let world = try await harness.setUpWorld()
        let visit = try await Self.completedVisit(harness, world, account: harness.addAccount(), tag: "job")
        let clock = harness.clock
        let job = RetentionSweep(service: harness.service, database: harness.database, clock: ServiceClock { clock.now },
                                 logger: harness.logger, interval: .milliseconds(50))
        let running = Task { try await job.run() }
        try await Task.sleep(for: .milliseconds(150))
        #expect(try await harness.getVisit(visit.id).erased == nil, "erased before its date")
        clock.set(Self.due)
        var erased: VisitsV1.Erasure?
        for _ in 0..<200 where erased == nil {
            try await Task.sleep(for: .milliseconds(50))
            erased = try await harness.getVisit(visit.id).erased
        }
        running.cancel()
        _ = await running.result
        #expect(erased?.erasedMs == Self.due)
        #expect(try await Self.audit(harness).map(\.action) == [.erased])
    }

    // MARK: 5. The flag

    @Test("--retention-interval-seconds: default 3600; environment; off and 0 turn it off; a bad value names its source")
    func flag() throws {
        func interval(_ arguments: [String], _ environment: [String: String] = [:]) throws -> Duration? {
            try VisitsOptions.parse(arguments).retentionInterval(environment: environment)
        }
        #expect(try interval([]) == .seconds(3600))
        #expect(try interval([], ["DOORSTEP_RETENTION_INTERVAL_SECONDS": "600"]) == .seconds(600))
        #expect(try interval(["--retention-interval-seconds", "60"], ["DOORSTEP_RETENTION_INTERVAL_SECONDS": "600"]) == .seconds(60))
        #expect(try interval(["--retention-interval-seconds", "off"]) == nil)
        #expect(try interval([], ["DOORSTEP_RETENTION_INTERVAL_SECONDS": "0"]) == nil)
        #expect(try interval(["--retention-interval-seconds", "86400"]) == .seconds(86_400))
        #expect(throws: ConfigurationError.self) { try interval(["--retention-interval-seconds", "86401"]) }
        do {
            _ = try interval([], ["DOORSTEP_RETENTION_INTERVAL_SECONDS": "hourly"])
            Issue.record("resolved")
        } catch {
            #expect("\(error)" == "DOORSTEP_RETENTION_INTERVAL_SECONDS: 'hourly' is not a number of seconds in 1...86400, 0 or off")
        }
    }
}
