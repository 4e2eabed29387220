import Foundation
import Models
import RPC
import RPCWire
import TestSupport
import Testing

/// Clients of the replicas of one service: a call goes to one replica and, when that one
/// answers UNAVAILABLE (it is down, or its database is restarting), to the next, with the
/// same request — the same request id, so it acts at most once — for up to a minute.
struct Replicas: Sendable {
    let clients: [GRPCClient]

    init(_ addresses: [String]) {
        clients = addresses.map { GRPCClient(targets: [GRPCClient.Target($0)!]) }
    }

    func unary<Request, Response>(_ method: MethodDescriptor<Request, Response>, _ request: Request, metadata: Metadata,
                                  startingAt first: Int = 0) async throws -> Response {
        let deadline = ContinuousClock.now + .seconds(60)
        var index = first
        while true {
            let failure: RPCError
            do {
                return try await clients[index % clients.count].unary(method, request, metadata: metadata, timeout: .seconds(10))
            } catch {
                failure = error
            }
            guard failure.code == .unavailable || failure.code == .deadlineExceeded, ContinuousClock.now < deadline else { throw failure }
            index += 1
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    func close() async {
        for client in clients { await client.close() }
    }
}

/// A day of field work set up through the API: `count` FIELD accounts of one debtor, an
/// agency with `count / 4` crews of two, each crew booked for four back-to-back one-hour
/// windows two days ahead, every notice delivered, and every crew checked in (the clock
/// moves into each window). What the outcome tests then record against.
struct FieldDay {
    static let day: Int64 = 86_400_000
    static let hour: Int64 = 3_600_000

    var accountIDs: [String] = []
    var appointments: [(id: String, crew: [String], start: Int64)] = []
    var visitOfAccount: [Int: String] = [:]
    var agencyID = ""

    /// Calls spread over the replicas by request index.
    static func prepare(cluster: DevCluster, base: Int64, count: Int, accounts: Replicas, scheduling: Replicas,
                        visits: Replicas) async throws -> FieldDay {
        var day = FieldDay()
        let platform = try await cluster.token(["--role", "platform"])
        let debtor = try await accounts.unary(AccountsV1.AccountsService.createDebtor, ServiceProcessTests.debtorRequest(),
                                              metadata: platform)
        for index in 0..<count {
            day.accountIDs.append(try await openFieldAccount(accounts: accounts, debtorID: debtor.id, index: index, base: base,
                                                             platform: platform))
        }
        _ = try await accounts.unary(AccountsV1.AccountsService.evaluateStages, AccountsV1.EvaluateStagesRequest(requestId: "eval"),
                                     metadata: platform)

        day.agencyID = try await registerAgency(scheduling: scheduling, platform: platform)
        var crews: [[String]] = []
        for crewIndex in 0..<(count / 4) {
            crews.append(try await registerCrew(scheduling: scheduling, agencyID: day.agencyID, name: "\(crewIndex)", platform: platform))
        }
        let dayStart = base + 2 * Self.day  // 10:00 two days ahead
        for (index, accountID) in day.accountIDs.enumerated() {
            let crew = crews[index / 4]
            let start = dayStart + Int64(index % 4) * Self.hour
            let booked = try await scheduling.unary(SchedulingV1.SchedulingService.bookAppointment, SchedulingV1.BookAppointmentRequest(
                requestId: "book-\(index)", accountId: accountID, crewCollectorIds: crew, windowStartMs: start,
                windowEndMs: start + Self.hour, purpose: .discussRepayment), metadata: platform, startingAt: index)
            day.appointments.append((booked.id, crew, start))
        }
        try await WorkflowTests.eventually("every notice delivered", timeout: .seconds(60)) {
            let page = try await scheduling.unary(SchedulingV1.SchedulingService.listAppointments, SchedulingV1.ListAppointmentsRequest(
                pageSize: 500, states: [.notified]), metadata: platform)
            return page.appointments.count == count
        }

        let place = TypeV1.GeoPoint(latitude: 31.2305, longitude: 121.4738)
        for slot in 0..<4 {
            try await cluster.travel(to: dayStart + Int64(slot) * Self.hour + 10 * 60_000)
            for (index, appointment) in day.appointments.enumerated() where index % 4 == slot {
                for member in appointment.crew {
                    let collector = try await cluster.token(["--role", "collector", "--agency", day.agencyID, "--collector", member])
                    let visit = try await visits.unary(VisitsV1.VisitsService.checkIn, VisitsV1.CheckInRequest(
                        requestId: "in-\(index)-\(member)", appointmentId: appointment.id, collectorId: member, location: place,
                        idShown: true), metadata: collector, startingAt: index)
                    day.visitOfAccount[index] = visit.id
                }
            }
        }
        return day
    }

    /// Account `index` of `debtorID` (45 days past due) with three undelivered SMS reminders
    /// before `base`: FIELD once the stages are evaluated. Returns its id.
    static func openFieldAccount(accounts: Replicas, debtorID: String, index: Int, base: Int64, platform: Metadata) async throws -> String {
        var request = ServiceProcessTests.accountRequest(debtorID: debtorID)
        request.requestId = "open-\(index)"
        request.externalId = "loan-fault-\(index)"
        let account = try await accounts.unary(AccountsV1.AccountsService.openAccount, request, metadata: platform, startingAt: index)
        for attempt in 1...3 {
            _ = try await accounts.unary(AccountsV1.AccountsService.recordContactAttempt, AccountsV1.RecordContactAttemptRequest(
                requestId: "sms-\(index)-\(attempt)", accountId: account.id, channel: .sms, outcome: .smsUndelivered,
                attemptedMs: base - Int64(10 - attempt) * 60_000), metadata: platform, startingAt: index + attempt)
        }
        return account.id
    }

    /// An ACTIVE agency serving 310115 (licence and inspection valid); returns its id.
    static func registerAgency(scheduling: Replicas, platform: Metadata) async throws -> String {
        try await scheduling.unary(SchedulingV1.SchedulingService.registerAgency, SchedulingV1.RegisterAgencyRequest(
            requestId: "agency", agency: SchedulingV1.Agency(
                displayName: "Agency", licenceNumber: "LIC-F", licenceExpiryDate: TypeV1.Date(year: 2099, month: 1, day: 1),
                regionsServed: ["310115"], lastInspectionDate: ServiceProcessTests.localDate(daysFromToday: -30))), metadata: platform).id
    }

    /// Two collectors of `agencyID` (shifts 08:00-20:00 Shanghai, six visits a day); their ids.
    static func registerCrew(scheduling: Replicas, agencyID: String, name: String, platform: Metadata) async throws -> [String] {
        var crew: [String] = []
        for member in 0..<2 {
            let collector = try await scheduling.unary(SchedulingV1.SchedulingService.registerCollector, SchedulingV1.RegisterCollectorRequest(
                requestId: "col-\(name)-\(member)", collector: SchedulingV1.Collector(
                    agencyId: agencyID, fullName: "C\(name)-\(member)", certificationNumber: "CF-\(name)-\(member)",
                    certificationExpiryDate: TypeV1.Date(year: 2099, month: 1, day: 1), regionCode: "310115",
                    homeLocation: TypeV1.GeoPoint(latitude: 31.23, longitude: 121.47), timeZone: "Asia/Shanghai",
                    shiftStart: TypeV1.TimeOfDay(hours: 8), shiftEnd: TypeV1.TimeOfDay(hours: 20), dailyCapacity: 6)),
                metadata: platform, startingAt: member)
            crew.append(collector.id)
        }
        return crew
    }

    /// The promise the lead collector records for account `index`.
    func outcome(_ index: Int) -> VisitsV1.RecordOutcomeRequest {
        VisitsV1.RecordOutcomeRequest(
            requestId: "outcome-\(index)", visitId: visitOfAccount[index]!, collectorId: appointments[index].crew[0], code: .promiseToPay,
            willingness: .willing, ability: .partial,
            arrangement: .promise(VisitsV1.PromiseTerms(amount: TypeV1.Money(amountMinor: 10_000 + Int64(index), currencyCode: "CNY"),
                                                        promisedDate: ServiceProcessTests.localDate(daysFromToday: 7))))
    }

    /// Waits until every visit's effects are delivered, then checks that each account holds
    /// exactly one promise from its visit.
    func expectEveryPromiseOnce(accounts: Replicas, visits: Replicas, visitIDs: [String], platform: Metadata) async throws {
        try await WorkflowTests.eventually("every consequence delivered", timeout: .seconds(120)) {
            var delivered = 0
            for id in visitIDs {
                let visit = try await visits.unary(VisitsV1.VisitsService.getVisit, VisitsV1.GetVisitRequest(visitId: id), metadata: platform)
                delivered += visit.effects.allSatisfy { $0.delivery?.status == .delivered } ? 1 : 0
            }
            return delivered == visitIDs.count
        }
        var promises = 0
        for (index, accountID) in accountIDs.enumerated() {
            let account = try await accounts.unary(AccountsV1.AccountsService.getAccount, AccountsV1.GetAccountRequest(accountId: accountID),
                                                   metadata: platform)
            let arrived = account.promises.filter { $0.sourceVisitId == visitOfAccount[index] }
            #expect(arrived.count == 1, "account \(index): \(arrived.count) promises")
            promises += arrived.count
        }
        #expect(promises == accountIDs.count, "every promise exactly once")
    }
}
