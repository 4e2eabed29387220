import Foundation
import Models
import RPC
import RPCWire
import TestSupport
import Testing

/// The collection workflow across the three executables as real processes, in dev mode with
/// one shared key and the test clock (`--test-clock-offset-file`) so that time can pass:
/// overdue accounts get reminders and reach FIELD as weeks pass, a compliant visit is booked
/// (a non-compliant one refused) and announced, the day is planned, the crew checks in at the
/// right place and time (wrong ones refused), a promise reaches accounts exactly once, the
/// check-out completes the appointment and a payment settles the account; a complaint holds
/// an account and suspends a collector until it is resolved.
@Suite("The workflow across three processes", .serialized)
struct WorkflowTests {
    static let day: Int64 = 86_400_000
    static let hour: Int64 = 3_600_000

    /// Polls `probe` until it returns true (bounded).
    static func eventually(_ what: String, timeout: Duration = .seconds(20), _ probe: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await probe() { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("timed out waiting for \(what)")
    }

    /// The date of `ms` in Asia/Shanghai.
    static func shanghaiDate(_ ms: Int64) -> TypeV1.Date {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
        let parts = calendar.dateComponents([.year, .month, .day], from: Date(timeIntervalSince1970: Double(ms) / 1000))
        return TypeV1.Date(year: Int32(parts.year!), month: Int32(parts.month!), day: Int32(parts.day!))
    }

    /// A debtor in Pudong, `northMetres` north of the first one's address.
    static func debtor(_ number: Int, northMetres: Double) -> AccountsV1.CreateDebtorRequest {
        AccountsV1.CreateDebtorRequest(requestId: "debtor-\(number)", debtor: AccountsV1.Debtor(
            externalId: "cust-wf-\(number)", fullName: "债务人\(number)", nationalId: "11010519491231002X", phone: "1381234567\(number)",
            address: TypeV1.Address(text: "上海市浦东新区世纪大道\(100 + number)号", regionCode: "310115",
                                    location: TypeV1.GeoPoint(latitude: 31.2304 + northMetres / 111_195, longitude: 121.4737)),
            timeZone: "Asia/Shanghai"))
    }

    /// Three monthly instalments of 1,000.00 CNY, the first due 12 days ago (so REMOTE at
    /// opening: 12-13 days past due on the service clock).
    static func account(_ number: Int, debtorID: String) -> AccountsV1.OpenAccountRequest {
        let cny = { (amount: Int64) in TypeV1.Money(amountMinor: amount, currencyCode: "CNY") }
        return AccountsV1.OpenAccountRequest(
            requestId: "account-\(number)", debtorId: debtorID, externalId: "loan-wf-\(number)", lenderId: "lender-1",
            product: .instalmentLoan, principal: cny(300_000), openedDate: ServiceProcessTests.localDate(daysFromToday: -42),
            instalments: [-12, 18, 48].map { AccountsV1.OpeningInstalment(dueDate: ServiceProcessTests.localDate(daysFromToday: $0),
                                                                          amountDue: cny(100_000)) })
    }

    @Test("open → time passes → reminders → FIELD → candidates → book (one refused) → notice → plan → check in (refused: time, place) → promise reaches accounts once → check out → payment settles; complaint → hold + suspension → refused → resolved → released",
          .timeLimit(.minutes(3)), arguments: replicaCounts)
    func visitJourney(replicas: Int) async throws {
        // Dev mode, one key, one clock; the clock starts at the next 10:00 Shanghai. With two
        // replicas of each service, on a private PostgreSQL server: every client (the test's
        // and the services' own) names every replica and spreads its calls over them.
        let base = DevCluster.nextShanghaiTenOClock()
        let postgres = replicas > 1 ? try PostgresCluster() : nil
        defer { postgres?.remove() }
        let cluster = try await DevCluster(startingAt: base, postgres: postgres)
        let token = cluster.token
        func addresses(_ processes: [RunningService]) -> String { processes.map(\.address).joined(separator: ",") }
        var accountsProcesses: [RunningService] = []
        for replica in 1...replicas { accountsProcesses.append(try await cluster.start("accounts", replica: replica)) }
        var schedulingProcesses: [RunningService] = []
        for replica in 1...replicas {
            // Each replica's notices go to the default sink in its own data directory.
            schedulingProcesses.append(try await cluster.start("scheduling", replica: replica,
                                                               ["--accounts-addr", addresses(accountsProcesses)]))
        }
        var visitsProcesses: [RunningService] = []
        for replica in 1...replicas {
            visitsProcesses.append(try await cluster.start("visits", replica: replica, [
                "--accounts-addr", addresses(accountsProcesses), "--scheduling-addr", addresses(schedulingProcesses)]))
        }
        let platform = try await token(["--role", "platform"])
        let accounts = GRPCClient(targets: GRPCClient.Target.list(addresses(accountsProcesses))!)
        let scheduling = GRPCClient(targets: GRPCClient.Target.list(addresses(schedulingProcesses))!)
        let visits = GRPCClient(targets: GRPCClient.Target.list(addresses(visitsProcesses))!)
        func getAccount(_ id: String) async throws -> AccountsV1.Account {
            try await accounts.unary(AccountsV1.AccountsService.getAccount, AccountsV1.GetAccountRequest(accountId: id), metadata: platform)
        }
        // A consumer of each service's events for the whole story, as a lender's integration
        // would run one: the accounts one is cut off midway, and the visits service it watches
        // is killed (SIGKILL) and restarted; each resumes after the last event it kept.
        let watched: [(name: String, method: MethodDescriptor<TypeV1.WatchEventsRequest, TypeV1.Event>)] = [
            ("accounts", AccountsV1.AccountsService.watchEvents), ("scheduling", SchedulingV1.SchedulingService.watchEvents),
            ("visits", VisitsV1.VisitsService.watchEvents),
        ]
        func watchedAddresses(_ name: String) -> String {
            addresses(name == "accounts" ? accountsProcesses : name == "scheduling" ? schedulingProcesses : visitsProcesses)
        }
        let watchers = watched.map { EventWatcher($0.method, addresses: watchedAddresses($0.name), metadata: platform) }

        // Two accounts 12 days overdue (REMOTE); three undelivered SMS reminders each. Not
        // FIELD yet: too few days past due.
        var opened: [AccountsV1.Account] = []
        for (number, north) in [(1, 0.0), (2, 800.0)] {
            let debtor = try await accounts.unary(AccountsV1.AccountsService.createDebtor, Self.debtor(number, northMetres: north),
                                                  metadata: platform)
            var account = try await accounts.unary(AccountsV1.AccountsService.openAccount, Self.account(number, debtorID: debtor.id),
                                                   metadata: platform)
            #expect(account.stage == .remote, "stage \(account.stage): \(account.stageReason)")
            for attempt in 1...3 {
                account = try await accounts.unary(AccountsV1.AccountsService.recordContactAttempt, AccountsV1.RecordContactAttemptRequest(
                    requestId: "sms-\(number)-\(attempt)", accountId: account.id, channel: .sms, outcome: .smsUndelivered,
                    attemptedMs: base - Int64(10 - attempt) * 60_000), metadata: platform)
            }
            opened.append(account)
        }
        _ = try await accounts.unary(AccountsV1.AccountsService.evaluateStages, AccountsV1.EvaluateStagesRequest(requestId: "eval-1"),
                                     metadata: platform)
        #expect(try await getAccount(opened[0].id).stage == .remote)

        // Three weeks pass: 33-34 days past due with three unsuccessful reminders → FIELD.
        let today = base + 21 * Self.day
        try await cluster.travel(to: today)
        _ = try await accounts.unary(AccountsV1.AccountsService.evaluateStages, AccountsV1.EvaluateStagesRequest(requestId: "eval-2"),
                                     metadata: platform)
        var account = try await getAccount(opened[0].id)
        let other = try await getAccount(opened[1].id)
        try #require(account.stage == .field && other.stage == .field, "stages \(account.stage) \(other.stage): \(account.stageReason)")
        #expect(account.daysPastDue >= 31)

        // Both are visit candidates of the district.
        let candidates = try await accounts.unary(AccountsV1.AccountsService.listVisitCandidates,
                                                  AccountsV1.ListVisitCandidatesRequest(regionCode: "310115"), metadata: platform)
        #expect(Set(candidates.candidates.map(\.accountId)) == [account.id, other.id])

        // The whitelist: an agency and four collectors working 08:00-20:00 Shanghai.
        let agency = try await scheduling.unary(SchedulingV1.SchedulingService.registerAgency, SchedulingV1.RegisterAgencyRequest(
            requestId: "agency", agency: SchedulingV1.Agency(
                displayName: "安心催收服务有限公司", licenceNumber: "LIC-WF", licenceExpiryDate: TypeV1.Date(year: 2099, month: 1, day: 1),
                regionsServed: ["310115"], lastInspectionDate: ServiceProcessTests.localDate(daysFromToday: -30))), metadata: platform)
        var collectors: [String] = []
        for index in 1...4 {
            let collector = try await scheduling.unary(SchedulingV1.SchedulingService.registerCollector, SchedulingV1.RegisterCollectorRequest(
                requestId: "collector-\(index)", collector: SchedulingV1.Collector(
                    agencyId: agency.id, fullName: "催收员\(index)", certificationNumber: "CERT-WF-\(index)",
                    certificationExpiryDate: TypeV1.Date(year: 2099, month: 1, day: 1), regionCode: "310115",
                    homeLocation: TypeV1.GeoPoint(latitude: 31.22, longitude: 121.46), timeZone: "Asia/Shanghai",
                    shiftStart: TypeV1.TimeOfDay(hours: 8), shiftEnd: TypeV1.TimeOfDay(hours: 20), dailyCapacity: 6)),
                metadata: platform)
            collectors.append(collector.id)
        }
        let crew = Array(collectors.prefix(2))

        // Booking two days ahead: 21:00-23:00 is refused for contact hours and books nothing;
        // 10:00-12:00 is accepted, its notice delivered (dev log sink) → NOTIFIED → CONFIRMED.
        let windowStart = today + 2 * Self.day
        let lateNight = await #expect(throws: RPCError.self) {
            try await scheduling.unary(SchedulingV1.SchedulingService.bookAppointment, SchedulingV1.BookAppointmentRequest(
                requestId: "book-0", accountId: account.id, crewCollectorIds: crew, windowStartMs: windowStart + 11 * Self.hour,
                windowEndMs: windowStart + 13 * Self.hour, purpose: .discussRepayment), metadata: platform)
        }
        #expect(lateNight?.code == .failedPrecondition && lateNight?.message.contains("contact-hours") == true, "\(String(describing: lateNight))")
        let noneBooked = try await scheduling.unary(SchedulingV1.SchedulingService.listAppointments,
                                                    SchedulingV1.ListAppointmentsRequest(accountId: account.id), metadata: platform)
        #expect(noneBooked.appointments.isEmpty)
        var appointment = try await scheduling.unary(SchedulingV1.SchedulingService.bookAppointment, SchedulingV1.BookAppointmentRequest(
            requestId: "book-1", accountId: account.id, crewCollectorIds: crew, windowStartMs: windowStart,
            windowEndMs: windowStart + 2 * Self.hour, purpose: .discussRepayment), metadata: platform)
        let appointmentID = appointment.id
        try await Self.eventually("the notice to be delivered") {
            appointment = try await scheduling.unary(SchedulingV1.SchedulingService.getAppointment,
                                                     SchedulingV1.GetAppointmentRequest(appointmentId: appointmentID), metadata: platform)
            return appointment.state == .notified
        }
        let notices = try (1...replicas).map { replica in
            let file = cluster.directory.appendingPathComponent(replica == 1 ? "scheduling" : "scheduling-\(replica)")
                .appendingPathComponent("notices.jsonl")
            return FileManager.default.fileExists(atPath: file.path) ? try String(contentsOf: file, encoding: .utf8) : ""
        }.joined()
        #expect(notices.contains(appointment.notices.first?.id ?? "-"), "the notice is in the dev sink's log")
        appointment = try await scheduling.unary(SchedulingV1.SchedulingService.confirmAppointment, SchedulingV1.ConfirmAppointmentRequest(
            requestId: "confirm-1", appointmentId: appointmentID, confirmationChannel: .phone), metadata: platform)
        #expect(appointment.state == .confirmed)

        // The day's plan: the booked crew's route reaches the appointment inside its window;
        // the free collectors form a crew for the other candidate (or it is left out with a
        // reason); the booked account is not a candidate again.
        let plan = try await scheduling.unary(SchedulingV1.SchedulingService.planDay, SchedulingV1.PlanDayRequest(
            regionCode: "310115", date: Self.shanghaiDate(windowStart), options: SchedulingV1.PlanDayOptions(fillWithCandidates: true)),
            metadata: platform)
        #expect(plan.feasible)
        let booked = try #require(plan.routes.first { $0.crewCollectorIds == crew }, "\(plan.routes)")
        let stop = try #require(booked.stops.first { $0.target == .appointmentId(appointmentID) }, "\(booked.stops)")
        #expect(stop.serviceStartMs >= windowStart && stop.departureMs <= windowStart + 2 * Self.hour)
        let allStops = plan.routes.flatMap(\.stops)
        let otherStops = allStops.filter { $0.target == .accountId(other.id) }
        let otherLeftOut = plan.unassigned.filter { $0.target == .accountId(other.id) }
        #expect(otherStops.count + otherLeftOut.count == 1, "\(plan.routes) \(plan.unassigned)")
        #expect(!allStops.contains { $0.target == .accountId(account.id) } && !plan.unassigned.contains { $0.target == .accountId(account.id) })
        #expect(plan.totals?.appointmentsRouted == 1)

        // Check-in refused: two days early (the window), then at the window but 2 km away
        // (the geofence). Nothing is recorded.
        let place = TypeV1.GeoPoint(latitude: 31.2306, longitude: 121.4739)
        let lead = try await token(["--role", "collector", "--agency", agency.id, "--collector", crew[0]])
        let checkIn = { (requestID: String, location: TypeV1.GeoPoint, member: String, metadata: Metadata) async throws(RPCError) in
            try await visits.unary(VisitsV1.VisitsService.checkIn, VisitsV1.CheckInRequest(
                requestId: requestID, appointmentId: appointmentID, collectorId: member, location: location,
                idShown: true, consentToEnter: true), metadata: metadata)
        }
        let early = await #expect(throws: RPCError.self) { try await checkIn("early", place, crew[0], lead) }
        #expect(early?.code == .failedPrecondition && early?.message.contains("check-in-window") == true, "\(String(describing: early))")
        try await cluster.travel(to: windowStart + 30 * 60_000)
        let elsewhere = await #expect(throws: RPCError.self) {
            try await checkIn("elsewhere", TypeV1.GeoPoint(latitude: 31.2484, longitude: 121.4737), crew[0], lead)
        }
        #expect(elsewhere?.code == .failedPrecondition && elsewhere?.message.contains("check-in-geofence") == true,
                "\(String(describing: elsewhere))")
        #expect(elsewhere?.message.contains("check-in-window") == false)
        let noVisits = try await visits.unary(VisitsV1.VisitsService.listVisits, VisitsV1.ListVisitsRequest(accountId: account.id),
                                              metadata: platform)
        #expect(noVisits.visits.isEmpty)

        // The crew checks in at the door, 30 min into the window.
        var visit = VisitsV1.Visit()
        for member in crew {
            let collector = try await token(["--role", "collector", "--agency", agency.id, "--collector", member])
            visit = try await checkIn("checkin-\(member)", place, member, collector)
        }
        #expect(visit.checkIns.count == 2 && visit.state == .checkedIn)
        // A promise of 500.00 CNY in 5 days.
        let promised = Self.shanghaiDate(windowStart + 5 * Self.day)
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
        account = try await getAccount(account.id)
        #expect(account.promises.filter { $0.sourceVisitId == visitID }.count == 1, "the promise arrives exactly once")
        #expect(visit.effects.first { $0.kind == .promiseToPay }?.resultId == account.promises.first?.id, "the effect names the promise")
        #expect(account.promises.first?.status == .pending)
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

        watchers[0].disconnect()
        // Two days later the debtor pays the whole outstanding amount: the promise is kept and
        // the account is SETTLED, no longer a candidate.
        try await cluster.travel(to: windowStart + 2 * Self.day)
        let outstanding = try #require(account.outstandingAmount)
        account = try await accounts.unary(AccountsV1.AccountsService.recordPayment, AccountsV1.RecordPaymentRequest(
            requestId: "payment-1", accountId: account.id, amount: outstanding, receivedMs: windowStart + 2 * Self.day - 60_000,
            externalId: "txn-wf-1"), metadata: platform)
        #expect(account.stage == .settled, "\(account.stage): \(account.stageReason)")
        #expect(account.outstandingAmount?.amountMinor == 0)
        #expect(account.promises.first { $0.sourceVisitId == visitID }?.status == .kept)
        let remaining = try await accounts.unary(AccountsV1.AccountsService.listVisitCandidates,
                                                 AccountsV1.ListVisitCandidatesRequest(regionCode: "310115"), metadata: platform)
        #expect(remaining.candidates.map(\.accountId) == [other.id])

        // The visits service (its first replica) is killed and restarted on its address.
        let killed = await visitsProcesses[0].stop(signal: SIGKILL)
        #expect(killed.reason == .uncaughtSignal)
        visitsProcesses[0] = try await cluster.start("visits", listen: visitsProcesses[0].address, replica: 1, [
            "--accounts-addr", addresses(accountsProcesses), "--scheduling-addr", addresses(schedulingProcesses)])

        // The complaint path: the other debtor complains of a call by the lead collector.
        // Filing holds that account and suspends the collector (through the outbox), so a
        // booking is refused for both; resolving releases both, and the booking passes.
        let compliance = try await token(["--role", "compliance"])
        var complaint = try await visits.unary(VisitsV1.VisitsService.fileComplaint, VisitsV1.FileComplaintRequest(
            requestId: "complaint-1", accountId: other.id, collectorId: crew[0], category: .harassmentUnlawfulHours,
            complaintText: "催收员晚上十一点打电话", channel: .phoneHotline), metadata: compliance)
        #expect(complaint.status == .open && complaint.effects.map(\.kind) == [.placeHold, .suspendCollector])
        #expect(complaint.slaDueMs == complaint.receivedMs + 15 * Self.day, "cn-2026: 15 days")
        #expect(complaint.agencyId == agency.id && complaint.debtorId == other.debtorId)
        let complaintID = complaint.id
        try await Self.eventually("the hold and the suspension") {
            complaint = try await visits.unary(VisitsV1.VisitsService.getComplaint, VisitsV1.GetComplaintRequest(complaintId: complaintID),
                                               metadata: compliance)
            return complaint.effects.allSatisfy { $0.delivery?.status == .delivered }
        }
        #expect(complaint.timeline.map(\.eventType) == [.filed, .holdPlaced, .collectorSuspended]
                || complaint.timeline.map(\.eventType) == [.filed, .collectorSuspended, .holdPlaced])
        let held = try await getAccount(other.id)
        #expect(held.onHold && complaint.holdId == held.holds.first { $0.complaintId == complaintID }?.id && !complaint.holdId.isEmpty,
                "the complaint names the hold accounts placed")
        let nextWindow = windowStart + 4 * Self.day
        let check = { () async throws -> [String] in
            try await scheduling.unary(SchedulingV1.SchedulingService.checkCompliance, SchedulingV1.CheckComplianceRequest(
                accountId: other.id, crewCollectorIds: crew, windowStartMs: nextWindow, windowEndMs: nextWindow + 2 * Self.hour),
                metadata: platform).violations.map(\.ruleId)
        }
        #expect(try await check() == ["collector-status", "account-hold"])
        let book = { (requestID: String) async throws(RPCError) -> SchedulingV1.Appointment in
            try await scheduling.unary(SchedulingV1.SchedulingService.bookAppointment, SchedulingV1.BookAppointmentRequest(
                requestId: requestID, accountId: other.id, crewCollectorIds: crew, windowStartMs: nextWindow,
                windowEndMs: nextWindow + 2 * Self.hour, purpose: .discussRepayment), metadata: platform)
        }
        let refused = await #expect(throws: RPCError.self) { try await book("book-2") }
        #expect(refused?.code == .failedPrecondition && refused?.message.contains("collector-status") == true
                && refused?.message.contains("account-hold") == true)
        complaint = try await visits.unary(VisitsV1.VisitsService.resolveComplaint, VisitsV1.ResolveComplaintRequest(
            requestId: "resolve-1", complaintId: complaintID, resolution: .notUpheld, finding: "通话记录显示无夜间来电，投诉不成立",
            releaseAccountHold: true, reinstateCollector: true), metadata: compliance)
        #expect(complaint.status == .notUpheld)
        try await Self.eventually("the hold released and the collector reinstated") {
            complaint = try await visits.unary(VisitsV1.VisitsService.getComplaint, VisitsV1.GetComplaintRequest(complaintId: complaintID),
                                               metadata: compliance)
            return complaint.effects.count == 4 && complaint.effects.allSatisfy { $0.delivery?.status == .delivered }
        }
        #expect(try await check() == [])
        #expect(try await getAccount(other.id).onHold == false)
        #expect(try await book("book-3").state == .proposed)
        let card = try await visits.unary(VisitsV1.VisitsService.getAgencyScorecard, VisitsV1.GetAgencyScorecardRequest(
            agencyId: agency.id, periodStartDate: Self.shanghaiDate(today), periodEndDate: Self.shanghaiDate(nextWindow)),
            metadata: compliance)
        #expect(card.visitsCompleted == 1 && card.complaintsReceived == 1 && card.promisesMade == 1 && card.promisesKept == 1)
        #expect(card.brokenPromiseRateBp == 0 && card.complaintsUpheld == 0)

        // A manager of another agency sees nothing of this story through any read or list;
        // the agency's own manager sees its appointment, visit and complaint.
        let own = try await token(["--role", "agency_manager", "--agency", agency.id])
        let stranger = try await token(["--role", "agency_manager", "--agency", "agy_01J" + String(repeating: "9", count: 23)])
        func expectNotFound(_ what: String, _ call: () async throws -> Void) async {
            let error = await #expect(throws: RPCError.self, "\(what)") { try await call() }
            #expect(error?.code == .notFound, "\(what): \(String(describing: error))")
        }
        await expectNotFound("GetDebtor") {
            _ = try await accounts.unary(AccountsV1.AccountsService.getDebtor, AccountsV1.GetDebtorRequest(debtorId: other.debtorId), metadata: stranger)
        }
        await expectNotFound("GetAccount") {
            _ = try await accounts.unary(AccountsV1.AccountsService.getAccount, AccountsV1.GetAccountRequest(accountId: other.id), metadata: stranger)
        }
        await expectNotFound("GetAccountTimeline") {
            _ = try await accounts.unary(AccountsV1.AccountsService.getAccountTimeline,
                                         AccountsV1.GetAccountTimelineRequest(accountId: other.id), metadata: stranger)
        }
        for request in [AccountsV1.ListAccountsRequest(), AccountsV1.ListAccountsRequest(assignedAgencyId: agency.id)] {
            let listed = try await accounts.unary(AccountsV1.AccountsService.listAccounts, request, metadata: stranger)
            #expect(listed.accounts.isEmpty, "ListAccounts \(request)")
        }
        let strangerCandidates = try await accounts.unary(AccountsV1.AccountsService.listVisitCandidates,
                                                          AccountsV1.ListVisitCandidatesRequest(regionCode: "310115"), metadata: stranger)
        #expect(strangerCandidates.candidates.isEmpty)
        await expectNotFound("GetAppointment") {
            _ = try await scheduling.unary(SchedulingV1.SchedulingService.getAppointment,
                                           SchedulingV1.GetAppointmentRequest(appointmentId: appointmentID), metadata: stranger)
        }
        #expect(try await scheduling.unary(SchedulingV1.SchedulingService.getAppointment,
                                           SchedulingV1.GetAppointmentRequest(appointmentId: appointmentID), metadata: own).id == appointmentID)
        for request in [SchedulingV1.ListAppointmentsRequest(), SchedulingV1.ListAppointmentsRequest(agencyId: agency.id)] {
            #expect(try await scheduling.unary(SchedulingV1.SchedulingService.listAppointments, request, metadata: stranger).appointments.isEmpty)
            #expect(try await scheduling.unary(SchedulingV1.SchedulingService.listAppointments, request, metadata: own).appointments.count == 2)
        }
        let strangerPlan = try await scheduling.unary(SchedulingV1.SchedulingService.planDay, SchedulingV1.PlanDayRequest(
            regionCode: "310115", date: Self.shanghaiDate(nextWindow),
            options: SchedulingV1.PlanDayOptions(fillWithCandidates: true, includeUnconfirmed: true)), metadata: stranger)
        #expect(strangerPlan.routes.isEmpty && strangerPlan.unassigned.isEmpty, "\(strangerPlan)")
        await expectNotFound("GetVisit") {
            _ = try await visits.unary(VisitsV1.VisitsService.getVisit, VisitsV1.GetVisitRequest(visitId: visitID), metadata: stranger)
        }
        #expect(try await visits.unary(VisitsV1.VisitsService.getVisit, VisitsV1.GetVisitRequest(visitId: visitID), metadata: own).id == visitID)
        for request in [VisitsV1.ListVisitsRequest(), VisitsV1.ListVisitsRequest(agencyId: agency.id)] {
            #expect(try await visits.unary(VisitsV1.VisitsService.listVisits, request, metadata: stranger).visits.isEmpty)
            #expect(try await visits.unary(VisitsV1.VisitsService.listVisits, request, metadata: own).visits.count == 1)
        }
        for request in [VisitsV1.ListComplaintsRequest(), VisitsV1.ListComplaintsRequest(agencyId: agency.id)] {
            #expect(try await visits.unary(VisitsV1.VisitsService.listComplaints, request, metadata: stranger).complaints.isEmpty)
            #expect(try await visits.unary(VisitsV1.VisitsService.listComplaints, request, metadata: own).complaints.count == 1)
        }
        await expectNotFound("GetComplaint") {
            _ = try await visits.unary(VisitsV1.VisitsService.getComplaint, VisitsV1.GetComplaintRequest(complaintId: complaintID),
                                       metadata: stranger)
        }
        // A manager's scorecard is its own agency's, whatever it asks for (here one visits
        // has never heard of).
        let strangerCard = await #expect(throws: RPCError.self) {
            try await visits.unary(VisitsV1.VisitsService.getAgencyScorecard, VisitsV1.GetAgencyScorecardRequest(
                agencyId: agency.id, periodStartDate: Self.shanghaiDate(today), periodEndDate: Self.shanghaiDate(nextWindow)),
                metadata: stranger)
        }
        #expect(strangerCard?.code == .notFound && strangerCard?.message.contains(agency.id) == false, "\(String(describing: strangerCard))")

        // Every consumer received every event of its service's log, in the log's order (per
        // subject included), once, across the cut and the kill.
        var types: Set<String> = []
        for (watcher, service) in zip(watchers, watched) {
            let log = try await EventWatcher.wholeLog(service.method, addresses: watchedAddresses(service.name), metadata: platform)
            try await Self.eventually("the \(service.name) consumer to catch up") { watcher.events.count >= log.count }
            let seen = watcher.events
            #expect(Set(seen.map(\.id)).count == seen.count, "\(service.name): an event arrived twice")
            #expect(seen.prefix(log.count).map(\.id) == log.map(\.id), "\(service.name): the consumer's events differ from the log")
            types.formUnion(log.map(\.type))
            await watcher.stop()
        }
        #expect(watchers[0].reconnects >= 1 && watchers[2].reconnects >= 1)
        let storyTypes: Set<String> = [
            "doorstep.accounts.account.opened", "doorstep.accounts.account.contact_attempt_recorded",
            "doorstep.accounts.account.stage_changed", "doorstep.accounts.account.promise_recorded",
            "doorstep.accounts.account.payment_recorded", "doorstep.accounts.account.promise_kept",
            "doorstep.accounts.account.hold_placed", "doorstep.accounts.account.hold_released",
            "doorstep.scheduling.appointment.booked", "doorstep.scheduling.appointment.notified",
            "doorstep.scheduling.appointment.confirmed", "doorstep.scheduling.appointment.completed",
            "doorstep.scheduling.collector.status_changed",
            "doorstep.visits.visit.checked_in", "doorstep.visits.visit.outcome_recorded", "doorstep.visits.visit.checked_out",
            "doorstep.visits.complaint.filed", "doorstep.visits.complaint.resolved",
        ]
        #expect(storyTypes.subtracting(types).isEmpty, "missing: \(storyTypes.subtracting(types).sorted())")

        await accounts.close()
        await scheduling.close()
        await visits.close()
        for process in visitsProcesses + schedulingProcesses + accountsProcesses {
            let stop = await process.stop()
            #expect(stop.status == 0, "\(stop.stderr.suffix(2000))")
        }
    }

    /// The story runs on one process of each service (on the run's engine), and, where a
    /// PostgreSQL server can be started, on two replicas of each.
    static var replicaCounts: [Int] { PostgresCluster.isAvailable ? [1, 2] : [1] }

    @Test("the demo city: every district plans candidates; Scripts/demo-walk.sh walks a visit three times in a row, each on another account; the walked account is deferred; none left is said plainly; Scripts/demo-reset.sh puts the clock back",
          .timeLimit(.minutes(6)))
    func demoWalk() async throws {
        // As `DOORSTEP_DEMO=1 Scripts/run.sh` starts them: dev mode, the clock file at 0.
        let cluster = try await DevCluster()
        let key = cluster.keyFile
        let clockFile = cluster.clockFile
        let accountsProcess = try await cluster.start("accounts")
        let schedulingProcess = try await cluster.start("scheduling", ["--accounts-addr", accountsProcess.address])
        let visitsProcess = try await cluster.start("visits", ["--accounts-addr", accountsProcess.address,
                                                               "--scheduling-addr", schedulingProcess.address])
        let seed = try await runProduct("demo-seed", ["--accounts", accountsProcess.address, "--scheduling", schedulingProcess.address,
                                                      "--key-file", key, "--debtors", "60"])
        try #require(seed.status == 0, "\(seed.output)")
        let platform = try await cluster.token(["--role", "platform"])
        let accounts = GRPCClient(targets: [GRPCClient.Target(accountsProcess.address)!])
        let scheduling = GRPCClient(targets: [GRPCClient.Target(schedulingProcess.address)!])
        let visits = GRPCClient(targets: [GRPCClient.Target(visitsProcess.address)!])
        let districts = ["310115", "310104", "310101"]

        // Accounts at every stage the README names, and candidates in every district.
        var stages: Set<AccountsV1.Stage> = []
        var token = ""
        repeat {
            let page = try await accounts.unary(AccountsV1.AccountsService.listAccounts,
                                                AccountsV1.ListAccountsRequest(pageSize: 500, pageToken: token), metadata: platform)
            stages.formUnion(page.accounts.map(\.stage))
            token = page.nextPageToken
        } while !token.isEmpty
        #expect(stages == [.current, .reminder, .remote, .field, .legal, .writtenOff, .settled], "\(stages)")
        // Two days ahead on the services' clock (the walks move it).
        func plan(_ region: String) async throws -> SchedulingV1.PlanDayResponse {
            let offset = Int64(try String(contentsOf: clockFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            return try await scheduling.unary(SchedulingV1.SchedulingService.planDay, SchedulingV1.PlanDayRequest(
                regionCode: region, date: Self.shanghaiDate(DevCluster.nowMs() + offset + 2 * Self.day),
                options: SchedulingV1.PlanDayOptions(fillWithCandidates: true)), metadata: platform)
        }
        for region in districts {
            let candidates = try await accounts.unary(AccountsV1.AccountsService.listVisitCandidates,
                                                      AccountsV1.ListVisitCandidatesRequest(regionCode: region), metadata: platform)
            #expect(candidates.candidates.count >= 3, "\(region): \(candidates.candidates.count) candidates")
            let planned = try await plan(region)
            #expect((planned.totals?.candidatesRouted ?? 0) > 0, "\(region): no candidate routed: \(planned.unassigned)")
        }

        let environment = [
            "DOORSTEP_BIN=\(productsDirectory.path)", "DOORSTEP_ACCOUNTS=\(accountsProcess.address)",
            "DOORSTEP_SCHEDULING=\(schedulingProcess.address)", "DOORSTEP_VISITS=\(visitsProcess.address)",
            "DOORSTEP_KEY_FILE=\(key)", "DOORSTEP_CLOCK_FILE=\(clockFile.path)",
        ]
        func walk(_ extra: [String] = []) async throws -> (status: Int32, output: String) {
            let result = try await runProcessDetached("env", environment + extra + [
                "bash", repositoryRoot.appendingPathComponent("Scripts/demo-walk.sh").path,
            ])
            print(result.output)
            #expect(!result.output.contains("Traceback"), "a Python traceback:\n\(result.output)")
            return (result.status, result.output)
        }
        var walked: [String] = []
        for round in 1...3 {
            let result = try await walk()
            #expect(result.status == 0, "walk \(round):\n\(result.output)")
            for step in ["walk: planned acc_", "walk: booked apt_", "walk: checked in, visit vis_", "walk: accounts holds promise ptp_",
                         "walk: done"] {
                #expect(result.output.contains(step), "walk \(round): missing '\(step)' in:\n\(result.output)")
            }
            // What the walk did is in the services: the appointment completed, the promise on the account.
            let planned = try #require(result.output.split(separator: "\n").first { $0.hasPrefix("walk: planned ") })
            let account = String(planned.split(separator: " ")[2])
            let line = try #require(result.output.split(separator: "\n").first { $0.hasPrefix("walk: accounts holds promise") })
            let visitID = try #require(line.split(separator: " ").last.map(String.init))
            let visit = try await visits.unary(VisitsV1.VisitsService.getVisit, VisitsV1.GetVisitRequest(visitId: visitID), metadata: platform)
            #expect(visit.state == .checkedOut && visit.checkIns.count == 2 && visit.outcome?.code == .promiseToPay)
            #expect(visit.accountId == account)
            #expect(!walked.contains(account), "walk \(round) walked \(account) again (walked before: \(walked))")
            walked.append(account)

            // The visited account, with its promise, is no candidate now: its region's plan
            // lists it as deferred, naming the promise and the cool-down.
            let region = String(planned.split(separator: " ")[4])
            var item: SchedulingV1.UnassignedItem?
            try await Self.eventually("the walked account deferred in \(region)") {
                item = try await plan(region).unassigned.first { $0.target == SchedulingV1.UnassignedItem.Target.accountId(account) }
                return item?.violations.map(\.ruleId) == ["promise-pending", "visit-cool-down"]
            }
            #expect(item?.reason == .deferred, "\(String(describing: item))")
            #expect(item?.violations.map(\.ruleId) == ["promise-pending", "visit-cool-down"], "\(String(describing: item))")
        }
        #expect(Set(walked).count == 3)

        // A district without candidates: the walk says so plainly and exits 3.
        let empty = try await walk(["DOORSTEP_REGIONS=310230"])
        #expect(empty.status == 3, "\(empty.output)")
        #expect(empty.output.contains("walk: no account is left to walk"), "\(empty.output)")

        // The clock moved two days per walk; demo-reset puts it back.
        let moved = try #require(Int64(String(contentsOf: clockFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(moved > 5 * Self.day, "\(moved)")
        let reset = try await runProcessDetached("env", environment + [
            "bash", repositoryRoot.appendingPathComponent("Scripts/demo-reset.sh").path,
        ])
        #expect(reset.status == 0, "\(reset.output)")
        #expect(try String(contentsOf: clockFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) == "0")
        #expect(reset.output.contains("demo-reset: the demo clock is back on the wall clock"), "\(reset.output)")

        await accounts.close()
        await scheduling.close()
        await visits.close()
        for process in [visitsProcess, schedulingProcess, accountsProcess] {
            let stop = await process.stop()
            #expect(stop.status == 0, "\(stop.stderr.suffix(2000))")
        }
    }

    @Test("the same PlanDay request gives the same plan, byte for byte, in two scheduling processes", .timeLimit(.minutes(3)))
    func planDayIsDeterministicAcrossProcesses() async throws {
        let cluster = try await DevCluster()
        let accountsProcess = try await cluster.start("accounts")
        var schedulingProcess = try await cluster.start("scheduling", ["--accounts-addr", accountsProcess.address])
        let seed = try await runProduct("demo-seed", ["--accounts", accountsProcess.address, "--scheduling", schedulingProcess.address,
                                                      "--key-file", cluster.keyFile, "--debtors", "60"])
        try #require(seed.status == 0, "\(seed.output)")
        let platform = try await cluster.token(["--role", "platform"])
        // Three days ahead, so the advance-notice floor (now + 24 h) is before every contact
        // window and the plan does not depend on the second it is asked at.
        let request = SchedulingV1.PlanDayRequest(
            regionCode: "310115", date: Self.shanghaiDate(DevCluster.nowMs() + 3 * Self.day),
            options: SchedulingV1.PlanDayOptions(fillWithCandidates: true, timeLimitSeconds: 30))
        func plan() async throws -> [UInt8] {
            let client = GRPCClient(targets: [GRPCClient.Target(schedulingProcess.address)!])
            var response = try await client.unary(SchedulingV1.SchedulingService.planDay, request, metadata: platform)
            await client.close()
            #expect(response.routes.contains { !$0.stops.isEmpty }, "a plan with stops: \(response)")
            response.solveMillis = 0
            response.computedMs = 0
            return try response.encode()
        }
        let first = try await plan()
        let firstStop = await schedulingProcess.stop()
        #expect(firstStop.status == 0, "\(firstStop.stderr.suffix(2000))")
        schedulingProcess = try await cluster.start("scheduling", ["--accounts-addr", accountsProcess.address])
        let second = try await plan()
        #expect(first == second, "the plans differ after a restart")
        for process in [schedulingProcess, accountsProcess] {
            let stop = await process.stop()
            #expect(stop.status == 0, "\(stop.stderr.suffix(2000))")
        }
    }

    @Test("a stock Python grpcio client drives the story's first half; grpcio-status decodes the standard details of its refusals", .timeLimit(.minutes(3)))
    func grpcioStory() async throws {
        let base = DevCluster.nextShanghaiTenOClock()
        let cluster = try await DevCluster(startingAt: base)
        let accountsProcess = try await cluster.start("accounts")
        let schedulingProcess = try await cluster.start("scheduling", ["--accounts-addr", accountsProcess.address])
        let token = try await cluster.tokenText(["--role", "platform"])
        let script = repositoryRoot.appendingPathComponent("Tests/Integration/ServicesTests/Interop/story_grpcio.py").path
        let result = try await runProcessDetached("python3", [
            script, "--accounts", accountsProcess.address, "--scheduling", schedulingProcess.address,
            "--token", token, "--base-ms", String(base),
        ])
        print(result.output)
        #expect(result.status == 0, "\(result.output)")
        for step in ["open_account_remote", "reminders_then_field", "visit_candidate", "agency_and_crew", "refused_advance_notice",
                     "standard_error_details", "booked_notified_confirmed", "agency_suspended_visit_cancelled"] {
            #expect(result.output.contains("ok \(step)"), "\(step) did not pass")
        }
        for process in [schedulingProcess, accountsProcess] {
            let stop = await process.stop()
            #expect(stop.status == 0, "\(stop.stderr.suffix(2000))")
        }
    }
}
