import Foundation
import Models
import RPC
import RPCWire
import TestSupport
import Testing

/// The collection workflow across the three executables as real processes, in dev mode with
/// one shared key and the test clock (`--test-clock-offset-file`) so that time can pass:
/// an overdue account reaches FIELD, a compliant visit is booked and announced, the crew
/// checks in inside the window, a promise is recorded and reaches accounts exactly once, and
/// the check-out completes the appointment.
@Suite("The workflow across three processes", .serialized)
struct WorkflowTests {
    static let day: Int64 = 86_400_000
    static let hour: Int64 = 3_600_000

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Polls `probe` until it returns true (bounded).
    static func eventually(_ what: String, timeout: Duration = .seconds(20), _ probe: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await probe() { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("timed out waiting for \(what)")
    }

    @Test("overdue → FIELD → book → notice → confirm → check in → promise reaches accounts once → check out completes", .timeLimit(.minutes(3)))
    func visitJourney() async throws {
        let directory = try makeTemporaryDirectory()
        let key = directory.appendingPathComponent("auth.key").path
        let keygen = try await runProduct("doorstep", ["keygen", "--key-file", key])
        try #require(keygen.status == 0, "\(keygen.output)")
        // Dev mode (no --auth-key-file) with the same key in each data directory.
        for name in ["accounts", "scheduling", "visits"] {
            let dataDir = directory.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: key, toPath: dataDir.appendingPathComponent("auth.key").path)
        }
        // The service clock starts at the next 10:00 Shanghai (02:00 UTC) after now.
        let offsetFile = directory.appendingPathComponent("clock-offset")
        let wall = Self.nowMs()
        let base = (wall / Self.day + 1) * Self.day + 2 * Self.hour
        var offset = base - wall
        try String(offset).write(to: offsetFile, atomically: true, encoding: .utf8)
        func start(_ name: String, _ extra: [String]) async throws -> RunningService {
            try await RunningService(name, [
                "--listen", "127.0.0.1:0", "--metrics-listen", "off", "--data-dir", directory.appendingPathComponent(name).path,
                "--test-clock-offset-file", offsetFile.path,
            ] + extra)
        }
        let accountsProcess = try await start("accounts", [])
        let schedulingProcess = try await start("scheduling", ["--accounts-addr", accountsProcess.address])
        let visitsProcess = try await start("visits", ["--accounts-addr", accountsProcess.address,
                                                       "--scheduling-addr", schedulingProcess.address])
        func token(_ arguments: [String]) async throws -> Metadata {
            let result = try await runProduct("doorstep", ["token", "--key-file", key] + arguments)
            try #require(result.status == 0, "\(result.output)")
            return ["authorization": "Bearer \(result.output.trimmingCharacters(in: .whitespacesAndNewlines))"]
        }
        let platform = try await token(["--role", "platform"])
        let accounts = GRPCClient(targets: [GRPCClient.Target(accountsProcess.address)!])
        let scheduling = GRPCClient(targets: [GRPCClient.Target(schedulingProcess.address)!])
        let visits = GRPCClient(targets: [GRPCClient.Target(visitsProcess.address)!])

        // An account 45+ days overdue (REMOTE), three undelivered SMS, stage evaluation → FIELD.
        let debtor = try await accounts.unary(AccountsV1.AccountsService.createDebtor, ServiceProcessTests.debtorRequest(), metadata: platform)
        var account = try await accounts.unary(AccountsV1.AccountsService.openAccount,
                                               ServiceProcessTests.accountRequest(debtorID: debtor.id), metadata: platform)
        #expect(account.stage == .remote)
        for attempt in 1...3 {
            account = try await accounts.unary(AccountsV1.AccountsService.recordContactAttempt, AccountsV1.RecordContactAttemptRequest(
                requestId: "sms-\(attempt)", accountId: account.id, channel: .sms, outcome: .smsUndelivered,
                attemptedMs: base - Int64(10 - attempt) * 60_000), metadata: platform)
        }
        _ = try await accounts.unary(AccountsV1.AccountsService.evaluateStages, AccountsV1.EvaluateStagesRequest(requestId: "eval-1"),
                                     metadata: platform)
        account = try await accounts.unary(AccountsV1.AccountsService.getAccount, AccountsV1.GetAccountRequest(accountId: account.id),
                                           metadata: platform)
        try #require(account.stage == .field, "stage \(account.stage): \(account.stageReason)")

        // The whitelist: an agency and two collectors working 08:00-20:00 Shanghai.
        let agency = try await scheduling.unary(SchedulingV1.SchedulingService.registerAgency, SchedulingV1.RegisterAgencyRequest(
            requestId: "agency", agency: SchedulingV1.Agency(
                displayName: "安心催收服务有限公司", licenceNumber: "LIC-WF", licenceExpiryDate: TypeV1.Date(year: 2099, month: 1, day: 1),
                regionsServed: ["310115"], lastInspectionDate: ServiceProcessTests.localDate(daysFromToday: -30))), metadata: platform)
        var crew: [String] = []
        for index in 1...2 {
            let collector = try await scheduling.unary(SchedulingV1.SchedulingService.registerCollector, SchedulingV1.RegisterCollectorRequest(
                requestId: "collector-\(index)", collector: SchedulingV1.Collector(
                    agencyId: agency.id, fullName: "催收员\(index)", certificationNumber: "CERT-WF-\(index)",
                    certificationExpiryDate: TypeV1.Date(year: 2099, month: 1, day: 1), regionCode: "310115",
                    homeLocation: TypeV1.GeoPoint(latitude: 31.22, longitude: 121.46), timeZone: "Asia/Shanghai",
                    shiftStart: TypeV1.TimeOfDay(hours: 8), shiftEnd: TypeV1.TimeOfDay(hours: 20), dailyCapacity: 6)),
                metadata: platform)
            crew.append(collector.id)
        }

        // Book two days ahead, 10:00-12:00: the notice is delivered (dev log sink) → NOTIFIED.
        let windowStart = base + 2 * Self.day
        var appointment = try await scheduling.unary(SchedulingV1.SchedulingService.bookAppointment, SchedulingV1.BookAppointmentRequest(
            requestId: "book-1", accountId: account.id, crewCollectorIds: crew, windowStartMs: windowStart,
            windowEndMs: windowStart + 2 * Self.hour, purpose: .discussRepayment), metadata: platform)
        let appointmentID = appointment.id
        try await Self.eventually("the notice to be delivered") {
            appointment = try await scheduling.unary(SchedulingV1.SchedulingService.getAppointment,
                                                     SchedulingV1.GetAppointmentRequest(appointmentId: appointmentID), metadata: platform)
            return appointment.state == .notified
        }
        let notices = try String(contentsOf: directory.appendingPathComponent("scheduling/notices.jsonl"), encoding: .utf8)
        #expect(notices.contains(appointment.notices.first?.id ?? "-"), "the notice is in the dev sink's log")
        appointment = try await scheduling.unary(SchedulingV1.SchedulingService.confirmAppointment, SchedulingV1.ConfirmAppointmentRequest(
            requestId: "confirm-1", appointmentId: appointmentID, confirmationChannel: .phone), metadata: platform)
        #expect(appointment.state == .confirmed)

        // Two days pass: the crew arrives 30 min into the window.
        offset += windowStart + 30 * 60_000 - (Self.nowMs() + offset)
        try String(offset).write(to: offsetFile, atomically: true, encoding: .utf8)
        try await Task.sleep(for: .milliseconds(150))
        let place = TypeV1.GeoPoint(latitude: 31.2306, longitude: 121.4739)
        var visit = VisitsV1.Visit()
        for member in crew {
            let collector = try await token(["--role", "collector", "--agency", agency.id, "--collector", member])
            visit = try await visits.unary(VisitsV1.VisitsService.checkIn, VisitsV1.CheckInRequest(
                requestId: "checkin-\(member)", appointmentId: appointmentID, collectorId: member, location: place,
                idShown: true, consentToEnter: true), metadata: collector)
        }
        #expect(visit.checkIns.count == 2 && visit.state == .checkedIn)
        let lead = try await token(["--role", "collector", "--agency", agency.id, "--collector", crew[0]])
        // A promise of 500.00 CNY in 5 days.
        let promised = ServiceProcessTests.localDate(daysFromToday: Int((windowStart - Self.nowMs()) / Self.day) + 5)
        visit = try await visits.unary(VisitsV1.VisitsService.recordOutcome, VisitsV1.RecordOutcomeRequest(
            requestId: "outcome-1", visitId: visit.id, collectorId: crew[0], code: .promiseToPay, willingness: .willing,
            ability: .partial, notes: "债务人承诺五日内还款",
            arrangement: .promise(VisitsV1.PromiseTerms(amount: TypeV1.Money(amountMinor: 50_000, currencyCode: "CNY"),
                                                        promisedDate: promised))), metadata: lead)
        #expect(visit.effects.map(\.kind) == [.contactAttempt, .promiseToPay])
        let visitID = visit.id
        try await Self.eventually("the consequences to reach accounts") {
            visit = try await visits.unary(VisitsV1.VisitsService.getVisit, VisitsV1.GetVisitRequest(visitId: visitID), metadata: platform)
            return visit.effects.allSatisfy { $0.delivery?.status == .delivered }
        }
        account = try await accounts.unary(AccountsV1.AccountsService.getAccount, AccountsV1.GetAccountRequest(accountId: account.id),
                                           metadata: platform)
        #expect(account.promises.filter { $0.sourceVisitId == visitID }.count == 1, "the promise arrives exactly once")
        #expect(account.contactSummary?.lastAttempt?.visitId == visitID)

        // Check-out with the recording's reference completes the appointment.
        visit = try await visits.unary(VisitsV1.VisitsService.checkOut, VisitsV1.CheckOutRequest(
            requestId: "checkout-1", visitId: visitID, collectorId: crew[0],
            evidence: VisitsV1.Evidence(recordingId: "rec-1", evidenceSha256: [UInt8](repeating: 7, count: 32))), metadata: lead)
        #expect(visit.state == .checkedOut)
        try await Self.eventually("the appointment to be completed") {
            appointment = try await scheduling.unary(SchedulingV1.SchedulingService.getAppointment,
                                                     SchedulingV1.GetAppointmentRequest(appointmentId: appointmentID), metadata: platform)
            return appointment.state == .completed
        }
        #expect(appointment.visitId == visitID)
        let chain = try await visits.unary(VisitsV1.VisitsService.verifyEvidenceChain,
                                           VisitsV1.VerifyEvidenceChainRequest(accountId: account.id), metadata: platform)
        #expect(chain.intact && chain.recordsChecked == 4)

        // The complaint path: filing holds the account and suspends the collector (through the
        // outbox), so a new booking is refused for both; resolving releases both, and it passes.
        let compliance = try await token(["--role", "compliance"])
        var complaint = try await visits.unary(VisitsV1.VisitsService.fileComplaint, VisitsV1.FileComplaintRequest(
            requestId: "complaint-1", accountId: account.id, visitId: visitID, collectorId: crew[0], category: .abuse,
            complaintText: "催收员言语辱骂", channel: .phoneHotline), metadata: compliance)
        #expect(complaint.status == .open && complaint.effects.map(\.kind) == [.placeHold, .suspendCollector])
        #expect(complaint.slaDueMs == complaint.receivedMs + 15 * Self.day, "cn-2026: 15 days")
        let complaintID = complaint.id
        try await Self.eventually("the hold and the suspension") {
            complaint = try await visits.unary(VisitsV1.VisitsService.getComplaint, VisitsV1.GetComplaintRequest(complaintId: complaintID),
                                               metadata: compliance)
            return complaint.effects.allSatisfy { $0.delivery?.status == .delivered }
        }
        #expect(Set(complaint.timeline.map(\.eventType)) == [.filed, .holdPlaced, .collectorSuspended])
        let nextWindow = windowStart + 2 * Self.day
        let check = { () async throws -> [String] in
            try await scheduling.unary(SchedulingV1.SchedulingService.checkCompliance, SchedulingV1.CheckComplianceRequest(
                accountId: account.id, crewCollectorIds: crew, windowStartMs: nextWindow, windowEndMs: nextWindow + 2 * Self.hour),
                metadata: platform).violations.map(\.ruleId)
        }
        #expect(try await check() == ["collector-status", "account-hold"])
        let refused = await #expect(throws: RPCError.self) {
            try await scheduling.unary(SchedulingV1.SchedulingService.bookAppointment, SchedulingV1.BookAppointmentRequest(
                requestId: "book-2", accountId: account.id, crewCollectorIds: crew, windowStartMs: nextWindow,
                windowEndMs: nextWindow + 2 * Self.hour, purpose: .followUpPromise), metadata: platform)
        }
        #expect(refused?.code == .failedPrecondition && refused?.message.contains("collector-status") == true)
        complaint = try await visits.unary(VisitsV1.VisitsService.resolveComplaint, VisitsV1.ResolveComplaintRequest(
            requestId: "resolve-1", complaintId: complaintID, resolution: .notUpheld, finding: "录音显示沟通文明，投诉不成立",
            releaseAccountHold: true, reinstateCollector: true), metadata: compliance)
        #expect(complaint.status == .notUpheld)
        try await Self.eventually("the hold released and the collector reinstated") {
            complaint = try await visits.unary(VisitsV1.VisitsService.getComplaint, VisitsV1.GetComplaintRequest(complaintId: complaintID),
                                               metadata: compliance)
            return complaint.effects.count == 4 && complaint.effects.allSatisfy { $0.delivery?.status == .delivered }
        }
        #expect(try await check() == [])
        let card = try await visits.unary(VisitsV1.VisitsService.getAgencyScorecard, VisitsV1.GetAgencyScorecardRequest(
            agencyId: agency.id, periodStartDate: ServiceProcessTests.localDate(daysFromToday: -1),
            periodEndDate: ServiceProcessTests.localDate(daysFromToday: 10)), metadata: compliance)
        #expect(card.visitsCompleted == 1 && card.complaintsReceived == 1 && card.promisesMade == 1 && card.promisesPending == 1)

        await accounts.close()
        await scheduling.close()
        await visits.close()
        for process in [visitsProcess, schedulingProcess, accountsProcess] {
            let stop = await process.stop()
            #expect(stop.status == 0, "\(stop.stderr.suffix(2000))")
        }
    }

    @Test("a stock Python grpcio client drives the story's first half", .timeLimit(.minutes(3)))
    func grpcioStory() async throws {
        let directory = try makeTemporaryDirectory()
        let key = directory.appendingPathComponent("auth.key").path
        _ = try await runProduct("doorstep", ["keygen", "--key-file", key])
        for name in ["accounts", "scheduling"] {
            let dataDir = directory.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: key, toPath: dataDir.appendingPathComponent("auth.key").path)
        }
        let offsetFile = directory.appendingPathComponent("clock-offset")
        let wall = Self.nowMs()
        let base = (wall / Self.day + 1) * Self.day + 2 * Self.hour
        try String(base - wall).write(to: offsetFile, atomically: true, encoding: .utf8)
        func start(_ name: String, _ extra: [String]) async throws -> RunningService {
            try await RunningService(name, [
                "--listen", "127.0.0.1:0", "--metrics-listen", "off", "--data-dir", directory.appendingPathComponent(name).path,
                "--test-clock-offset-file", offsetFile.path,
            ] + extra)
        }
        let accountsProcess = try await start("accounts", [])
        let schedulingProcess = try await start("scheduling", ["--accounts-addr", accountsProcess.address])
        let token = try await runProduct("doorstep", ["token", "--role", "platform", "--key-file", key])
        let script = repositoryRoot.appendingPathComponent("Tests/ServicesTests/Interop/story_grpcio.py").path
        let result = try await runProcessDetached("python3", [
            script, "--accounts", accountsProcess.address, "--scheduling", schedulingProcess.address,
            "--token", token.output.trimmingCharacters(in: .whitespacesAndNewlines), "--base-ms", String(base),
        ])
        print(result.output)
        #expect(result.status == 0, "\(result.output)")
        for step in ["open_account_remote", "reminders_then_field", "visit_candidate", "agency_and_crew", "refused_advance_notice",
                     "booked_notified_confirmed"] {
            #expect(result.output.contains("ok \(step)"), "\(step) did not pass")
        }
        for process in [schedulingProcess, accountsProcess] {
            let stop = await process.stop()
            #expect(stop.status == 0, "\(stop.stderr.suffix(2000))")
        }
    }
}
