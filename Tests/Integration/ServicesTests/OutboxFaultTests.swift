import Foundation
import Models
import RPC
import RPCWire
import TestSupport
import Testing

/// kill -9 of a receiving service while the visits outbox delivers: nothing lost, nothing
/// doubled (issue #6 "Fault test").
@Suite("Outbox under kill -9", .serialized)
struct OutboxFaultTests {
    static let day: Int64 = 86_400_000
    static let hour: Int64 = 3_600_000

    @Test("kill -9 accounts while visits records 100 outcomes, then kill -9 visits while its outbox holds undelivered promises: every promise arrives exactly once", .timeLimit(.minutes(5)))
    func killAccountsMidDelivery() async throws {
        let base = DevCluster.nextShanghaiTenOClock()
        let cluster = try await DevCluster(startingAt: base)
        func start(_ name: String, listen: String = "127.0.0.1:0", _ extra: [String] = []) async throws -> RunningService {
            try await cluster.start(name, listen: listen, ["--log-level", "error"] + extra)
        }
        var accountsProcess = try await start("accounts")
        let accountsAddress = accountsProcess.address
        let schedulingProcess = try await start("scheduling", ["--accounts-addr", accountsAddress])
        var visitsProcess = try await start("visits", ["--accounts-addr", accountsAddress, "--scheduling-addr", schedulingProcess.address])
        let token = cluster.token
        let platform = try await token(["--role", "platform"])
        let accounts = GRPCClient(targets: [GRPCClient.Target(accountsAddress)!])
        let scheduling = GRPCClient(targets: [GRPCClient.Target(schedulingProcess.address)!])
        let visits = GRPCClient(targets: [GRPCClient.Target(visitsProcess.address)!])

        // 100 accounts of one debtor, each in FIELD.
        let count = 100
        let debtor = try await accounts.unary(AccountsV1.AccountsService.createDebtor, ServiceProcessTests.debtorRequest(), metadata: platform)
        var accountIDs: [String] = []
        for index in 0..<count {
            var request = ServiceProcessTests.accountRequest(debtorID: debtor.id)
            request.requestId = "open-\(index)"
            request.externalId = "loan-fault-\(index)"
            let account = try await accounts.unary(AccountsV1.AccountsService.openAccount, request, metadata: platform)
            for attempt in 1...3 {
                _ = try await accounts.unary(AccountsV1.AccountsService.recordContactAttempt, AccountsV1.RecordContactAttemptRequest(
                    requestId: "sms-\(index)-\(attempt)", accountId: account.id, channel: .sms, outcome: .smsUndelivered,
                    attemptedMs: base - Int64(10 - attempt) * 60_000), metadata: platform)
            }
            accountIDs.append(account.id)
        }
        _ = try await accounts.unary(AccountsV1.AccountsService.evaluateStages, AccountsV1.EvaluateStagesRequest(requestId: "eval"),
                                     metadata: platform)

        // 25 crews of two, four back-to-back one-hour windows each, two days ahead.
        let agency = try await scheduling.unary(SchedulingV1.SchedulingService.registerAgency, SchedulingV1.RegisterAgencyRequest(
            requestId: "agency", agency: SchedulingV1.Agency(
                displayName: "Agency", licenceNumber: "LIC-F", licenceExpiryDate: TypeV1.Date(year: 2099, month: 1, day: 1),
                regionsServed: ["310115"], lastInspectionDate: ServiceProcessTests.localDate(daysFromToday: -30))), metadata: platform)
        var crews: [[String]] = []
        for crewIndex in 0..<(count / 4) {
            var crew: [String] = []
            for member in 0..<2 {
                let collector = try await scheduling.unary(SchedulingV1.SchedulingService.registerCollector, SchedulingV1.RegisterCollectorRequest(
                    requestId: "col-\(crewIndex)-\(member)", collector: SchedulingV1.Collector(
                        agencyId: agency.id, fullName: "C\(crewIndex)-\(member)", certificationNumber: "CF-\(crewIndex)-\(member)",
                        certificationExpiryDate: TypeV1.Date(year: 2099, month: 1, day: 1), regionCode: "310115",
                        homeLocation: TypeV1.GeoPoint(latitude: 31.23, longitude: 121.47), timeZone: "Asia/Shanghai",
                        shiftStart: TypeV1.TimeOfDay(hours: 8), shiftEnd: TypeV1.TimeOfDay(hours: 20), dailyCapacity: 6)), metadata: platform)
                crew.append(collector.id)
            }
            crews.append(crew)
        }
        let dayStart = base + 2 * Self.day  // 10:00 two days ahead
        var appointments: [(id: String, crew: [String], start: Int64)] = []
        for (index, accountID) in accountIDs.enumerated() {
            let crew = crews[index / 4]
            let start = dayStart + Int64(index % 4) * Self.hour
            let booked = try await scheduling.unary(SchedulingV1.SchedulingService.bookAppointment, SchedulingV1.BookAppointmentRequest(
                requestId: "book-\(index)", accountId: accountID, crewCollectorIds: crew, windowStartMs: start,
                windowEndMs: start + Self.hour, purpose: .discussRepayment), metadata: platform)
            appointments.append((booked.id, crew, start))
        }
        try await WorkflowTests.eventually("every notice delivered", timeout: .seconds(60)) {
            let page = try await scheduling.unary(SchedulingV1.SchedulingService.listAppointments, SchedulingV1.ListAppointmentsRequest(
                pageSize: 500, states: [.notified]), metadata: platform)
            return page.appointments.count == count
        }

        // Every crew checks in, slot by slot (the clock moves into each window).
        var visitOfAccount: [Int: String] = [:]
        let place = TypeV1.GeoPoint(latitude: 31.2305, longitude: 121.4738)
        for slot in 0..<4 {
            try await cluster.travel(to: dayStart + Int64(slot) * Self.hour + 10 * 60_000)
            for (index, appointment) in appointments.enumerated() where index % 4 == slot {
                for member in appointment.crew {
                    let collector = try await token(["--role", "collector", "--agency", agency.id, "--collector", member])
                    let visit = try await visits.unary(VisitsV1.VisitsService.checkIn, VisitsV1.CheckInRequest(
                        requestId: "in-\(index)-\(member)", appointmentId: appointment.id, collectorId: member, location: place,
                        idShown: true), metadata: collector)
                    visitOfAccount[index] = visit.id
                }
            }
        }
        // 100 outcomes, each a promise. Accounts is killed with SIGKILL right after the 30th
        // (while its consequences are being delivered) and restarted on the same address after
        // the 70th: visits keeps committing outcomes locally, and the outbox retries. After the
        // 90th accounts is killed again and stays down, so the last ten outcomes' promises
        // cannot have been delivered when visits is killed in turn.
        var visitIDs: [String] = []
        for index in 0..<count {
            let appointment = appointments[index]
            let lead = try await token(["--role", "collector", "--agency", agency.id, "--collector", appointment.crew[0]])
            let visit = try await visits.unary(VisitsV1.VisitsService.recordOutcome, VisitsV1.RecordOutcomeRequest(
                requestId: "outcome-\(index)", visitId: visitOfAccount[index]!, collectorId: appointment.crew[0], code: .promiseToPay,
                willingness: .willing, ability: .partial,
                arrangement: .promise(VisitsV1.PromiseTerms(amount: TypeV1.Money(amountMinor: 10_000 + Int64(index), currencyCode: "CNY"),
                                                            promisedDate: ServiceProcessTests.localDate(daysFromToday: 7)))),
                metadata: lead)
            visitIDs.append(visit.id)
            if index == 29 || index == 89 {
                let killed = await accountsProcess.stop(signal: SIGKILL)
                #expect(killed.reason == .uncaughtSignal && killed.status == SIGKILL)
            }
            if index == 69 {
                accountsProcess = try await start("accounts", listen: accountsAddress)
            }
        }
        #expect(visitIDs.count == count)
        // Accounts is down: what visits holds for it is still pending in its outbox.
        var pending = 0
        for id in visitIDs[90...] {
            let visit = try await visits.unary(VisitsV1.VisitsService.getVisit, VisitsV1.GetVisitRequest(visitId: id), metadata: platform)
            pending += visit.effects.contains { $0.delivery?.status != .delivered } ? 1 : 0
        }
        #expect(pending == 10, "the last ten outcomes wait for accounts: \(pending) visits with an undelivered effect")
        // kill -9 visits with those effects pending; restart accounts, then visits, on their
        // addresses: the restarted outbox delivers them.
        let visitsAddress = visitsProcess.address
        let killedVisits = await visitsProcess.stop(signal: SIGKILL)
        #expect(killedVisits.reason == .uncaughtSignal && killedVisits.status == SIGKILL)
        accountsProcess = try await start("accounts", listen: accountsAddress)
        visitsProcess = try await start("visits", listen: visitsAddress,
                                        ["--accounts-addr", accountsAddress, "--scheduling-addr", schedulingProcess.address])
        try await WorkflowTests.eventually("every consequence delivered", timeout: .seconds(90)) {
            var delivered = 0
            for id in visitIDs {
                let visit = try await visits.unary(VisitsV1.VisitsService.getVisit, VisitsV1.GetVisitRequest(visitId: id), metadata: platform)
                delivered += visit.effects.allSatisfy { $0.delivery?.status == .delivered } ? 1 : 0
            }
            return delivered == count
        }
        var retried = 0
        for id in visitIDs {
            let visit = try await visits.unary(VisitsV1.VisitsService.getVisit, VisitsV1.GetVisitRequest(visitId: id), metadata: platform)
            retried += visit.effects.contains { ($0.delivery?.attempts ?? 0) > 1 } ? 1 : 0
        }
        #expect(retried >= 1, "the outage was felt: \(retried) visits needed retries")
        var promises = 0
        for (index, accountID) in accountIDs.enumerated() {
            let account = try await accounts.unary(AccountsV1.AccountsService.getAccount, AccountsV1.GetAccountRequest(accountId: accountID),
                                                   metadata: platform)
            let arrived = account.promises.filter { $0.sourceVisitId == visitOfAccount[index] }
            #expect(arrived.count == 1, "account \(index): \(arrived.count) promises")
            promises += arrived.count
        }
        #expect(promises == count, "every promise exactly once")

        await accounts.close()
        await scheduling.close()
        await visits.close()
        for process in [visitsProcess, schedulingProcess, accountsProcess] { _ = await process.stop() }
    }
}
