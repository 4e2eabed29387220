import ArgumentParser
import Foundation
import Models
import RPC
import RPCWire
import ServiceAuth
import TransportSecurity

/// Throughput of the field workflow across the three running services (issue #6):
/// book → (notice delivered) → confirm, then check in (both crew members) → outcome (a promise)
/// → check out, with N crews working concurrently. The services run in dev mode with
/// `--test-clock-offset-file`; this tool moves that clock into each visit slot.
/// See Scripts/bench-workflow.sh.
@main
struct WorkflowBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "workflow-bench",
                                                    abstract: "Measure book→check-in→outcome→check-out throughput.")

    @Option(help: "accounts HOST:PORT") var accounts: String
    @Option(help: "scheduling HOST:PORT") var scheduling: String
    @Option(help: "visits HOST:PORT") var visits: String
    @Option(help: "The services' signing key (dev mode).") var keyFile: String
    @Option(help: "The services' --test-clock-offset-file.") var clockFile: String
    @Option(help: "Concurrent crews (two collectors each).") var crews: Int = 8
    @Option(help: "Visits per crew (one-hour slots from 08:00; at most 6, the daily capacity).") var visitsPerCrew: Int = 6
    @OptionGroup(title: "TLS") var tls: ClientTLSOptions

    static let day: Int64 = 86_400_000
    static let hour: Int64 = 3_600_000

    func validate() throws {
        guard (1...200).contains(crews) else { throw ValidationError("--crews must be 1-200") }
        guard (1...6).contains(visitsPerCrew) else { throw ValidationError("--visits-per-crew must be 1-6") }
    }

    func run() async throws {
        let key = try SigningKey.load(path: keyFile)
        let issuer = TokenIssuer(key: key)
        func bearer(_ caller: Caller) async throws -> Metadata { ["authorization": "Bearer \(try await issuer.token(for: caller))"] }
        let platform = try await bearer(Caller(role: .platform, subject: "bench"))
        var configuration = GRPCClient.Configuration()
        configuration.tls = try tls.clientTLS()
        let accountsClient = GRPCClient(targets: [GRPCClient.Target(accounts)!], configuration: configuration)
        let schedulingClient = GRPCClient(targets: [GRPCClient.Target(scheduling)!], configuration: configuration)
        let visitsClient = GRPCClient(targets: [GRPCClient.Target(visits)!], configuration: configuration)
        let wall = Int64(Date().timeIntervalSince1970 * 1000)
        let base = (wall / Self.day + 1) * Self.day + 2 * Self.hour  // next 10:00 Asia/Shanghai
        var offset = base - wall
        try String(offset).write(toFile: clockFile, atomically: true, encoding: .utf8)
        try await Task.sleep(for: .milliseconds(120))
        let run = UUID().uuidString.prefix(8).lowercased()
        let count = crews * visitsPerCrew

        // Setup (not timed): accounts in FIELD, an agency, the crews.
        let calendar: Calendar = {
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
            return calendar
        }()
        func localDate(_ ms: Int64, plusDays days: Int) -> TypeV1.Date {
            let date = calendar.date(byAdding: .day, value: days, to: Date(timeIntervalSince1970: Double(ms) / 1000))!
            let parts = calendar.dateComponents([.year, .month, .day], from: date)
            return TypeV1.Date(year: Int32(parts.year!), month: Int32(parts.month!), day: Int32(parts.day!))
        }
        let location = TypeV1.GeoPoint(latitude: 31.2304, longitude: 121.4737)
        let debtor = try await accountsClient.unary(AccountsV1.AccountsService.createDebtor, AccountsV1.CreateDebtorRequest(
            requestId: "bench-debtor-\(run)", debtor: AccountsV1.Debtor(
                externalId: "bench-\(run)", fullName: "压测", nationalId: "11010519491231002X", phone: "13812345678",
                address: TypeV1.Address(text: "上海市浦东新区", regionCode: "310115", location: location), timeZone: "Asia/Shanghai")),
            metadata: platform)
        var accountIDs: [String] = []
        for index in 0..<count {
            let account = try await accountsClient.unary(AccountsV1.AccountsService.openAccount, AccountsV1.OpenAccountRequest(
                requestId: "bench-open-\(run)-\(index)", debtorId: debtor.id, externalId: "bench-\(run)-\(index)", lenderId: "bench",
                product: .instalmentLoan, principal: TypeV1.Money(amountMinor: 300_000, currencyCode: "CNY"),
                openedDate: localDate(base, plusDays: -80),
                instalments: (0..<3).map { AccountsV1.OpeningInstalment(dueDate: localDate(base, plusDays: -45 + 30 * $0),
                                                                         amountDue: TypeV1.Money(amountMinor: 100_000, currencyCode: "CNY")) }),
                metadata: platform)
            for attempt in 0..<3 {
                _ = try await accountsClient.unary(AccountsV1.AccountsService.recordContactAttempt, AccountsV1.RecordContactAttemptRequest(
                    requestId: "bench-sms-\(run)-\(index)-\(attempt)", accountId: account.id, channel: .sms, outcome: .smsUndelivered,
                    attemptedMs: base - Int64(10 - attempt) * 60_000), metadata: platform)
            }
            accountIDs.append(account.id)
        }
        _ = try await accountsClient.unary(AccountsV1.AccountsService.evaluateStages,
                                           AccountsV1.EvaluateStagesRequest(requestId: "bench-eval-\(run)", accountIds: accountIDs),
                                           metadata: platform)
        let agency = try await schedulingClient.unary(SchedulingV1.SchedulingService.registerAgency, SchedulingV1.RegisterAgencyRequest(
            requestId: "bench-agency-\(run)", agency: SchedulingV1.Agency(
                displayName: "Bench agency", licenceNumber: "BENCH-\(run)", licenceExpiryDate: TypeV1.Date(year: 2099, month: 1, day: 1),
                regionsServed: ["310115"], lastInspectionDate: localDate(wall, plusDays: -30))), metadata: platform)
        var crewIDs: [[String]] = []
        for crew in 0..<crews {
            var members: [String] = []
            for member in 0..<2 {
                let collector = try await schedulingClient.unary(SchedulingV1.SchedulingService.registerCollector, SchedulingV1.RegisterCollectorRequest(
                    requestId: "bench-col-\(run)-\(crew)-\(member)", collector: SchedulingV1.Collector(
                        agencyId: agency.id, fullName: "C\(crew)-\(member)", certificationNumber: "BC-\(run)-\(crew)-\(member)",
                        certificationExpiryDate: TypeV1.Date(year: 2099, month: 1, day: 1), regionCode: "310115",
                        homeLocation: location, timeZone: "Asia/Shanghai", shiftStart: TypeV1.TimeOfDay(hours: 8),
                        shiftEnd: TypeV1.TimeOfDay(hours: 20), dailyCapacity: 6)), metadata: platform)
                members.append(collector.id)
            }
            crewIDs.append(members)
        }
        let dayStart = base + 2 * Self.day - 2 * Self.hour  // 08:00 two days ahead
        let accountList = accountIDs
        let crewList = crewIDs
        let crews = self.crews
        let visitsPerCrew = self.visitsPerCrew
        print("setup: \(count) accounts in FIELD, \(crews) crews")

        // Phase 1: book and confirm, crews concurrently.
        let bookStart = ContinuousClock.now
        let appointments = try await withThrowingTaskGroup(of: [(Int, String)].self) { group in
            for crew in 0..<crews {
                group.addTask {
                    var booked: [(Int, String)] = []
                    for slot in 0..<visitsPerCrew {
                        let index = crew * visitsPerCrew + slot
                        let start = dayStart + Int64(slot) * Self.hour
                        let appointment = try await schedulingClient.unary(SchedulingV1.SchedulingService.bookAppointment,
                            SchedulingV1.BookAppointmentRequest(requestId: "bench-book-\(run)-\(index)", accountId: accountList[index],
                                                                crewCollectorIds: crewList[crew], windowStartMs: start,
                                                                windowEndMs: start + Self.hour, purpose: .discussRepayment), metadata: platform)
                        booked.append((index, appointment.id))
                    }
                    return booked
                }
            }
            var all: [Int: String] = [:]
            for try await booked in group { for (index, id) in booked { all[index] = id } }
            return all
        }
        let bookElapsed = ContinuousClock.now - bookStart
        print("booked")
        // Notices are delivered by scheduling's outbox; confirm each once NOTIFIED.
        let confirmStart = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for crew in 0..<crews {
                group.addTask {
                    for slot in 0..<visitsPerCrew {
                        let id = appointments[crew * visitsPerCrew + slot]!
                        while try await schedulingClient.unary(SchedulingV1.SchedulingService.getAppointment,
                                                               SchedulingV1.GetAppointmentRequest(appointmentId: id), metadata: platform).state != .notified {
                            try await Task.sleep(for: .milliseconds(20))
                        }
                        _ = try await schedulingClient.unary(SchedulingV1.SchedulingService.confirmAppointment,
                            SchedulingV1.ConfirmAppointmentRequest(requestId: "bench-confirm-\(run)-\(id)", appointmentId: id), metadata: platform)
                    }
                }
            }
            try await group.waitForAll()
        }
        let confirmElapsed = ContinuousClock.now - confirmStart
        print("confirmed")

        // Phase 2: each slot, the clock moves into the window and every crew visits concurrently.
        var visitElapsed = Duration.zero
        var visitIDs: [String] = []
        for slot in 0..<visitsPerCrew {
            offset += dayStart + Int64(slot) * Self.hour + 5 * 60_000 - (Int64(Date().timeIntervalSince1970 * 1000) + offset)
            try String(offset).write(toFile: clockFile, atomically: true, encoding: .utf8)
            try await Task.sleep(for: .milliseconds(120))
            let slotStart = ContinuousClock.now
            let done = try await withThrowingTaskGroup(of: String.self) { group in
                for crew in 0..<crews {
                    group.addTask {
                        let index = crew * visitsPerCrew + slot
                        let members = crewList[crew]
                        var visit = VisitsV1.Visit()
                        for member in members {
                            let token = try await bearer(Caller(role: .collector, subject: member, agencyID: agency.id, collectorID: member))
                            visit = try await visitsClient.unary(VisitsV1.VisitsService.checkIn, VisitsV1.CheckInRequest(
                                requestId: "bench-in-\(run)-\(index)-\(member)", appointmentId: appointments[index]!, collectorId: member,
                                location: location, idShown: true), metadata: token)
                        }
                        let lead = try await bearer(Caller(role: .collector, subject: members[0], agencyID: agency.id, collectorID: members[0]))
                        visit = try await visitsClient.unary(VisitsV1.VisitsService.recordOutcome, VisitsV1.RecordOutcomeRequest(
                            requestId: "bench-outcome-\(run)-\(index)", visitId: visit.id, collectorId: members[0], code: .promiseToPay,
                            willingness: .willing, ability: .partial,
                            arrangement: .promise(VisitsV1.PromiseTerms(amount: TypeV1.Money(amountMinor: 50_000, currencyCode: "CNY"),
                                                                        promisedDate: localDate(base, plusDays: 7)))), metadata: lead)
                        _ = try await visitsClient.unary(VisitsV1.VisitsService.checkOut, VisitsV1.CheckOutRequest(
                            requestId: "bench-out-\(run)-\(index)", visitId: visit.id, collectorId: members[0],
                            evidence: VisitsV1.Evidence(recordingId: "rec-\(index)", evidenceSha256: [UInt8](repeating: 1, count: 32))),
                            metadata: lead)
                        return visit.id
                    }
                }
                var ids: [String] = []
                for try await id in group { ids.append(id) }
                return ids
            }
            visitElapsed += ContinuousClock.now - slotStart
            visitIDs += done
        }
        // Drain: every consequence delivered (promise, contact attempt, completion).
        let drainStart = ContinuousClock.now
        for id in visitIDs {
            while true {
                let visit = try await visitsClient.unary(VisitsV1.VisitsService.getVisit, VisitsV1.GetVisitRequest(visitId: id), metadata: platform)
                if visit.effects.allSatisfy({ $0.delivery?.status == .delivered }) { break }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let drainElapsed = ContinuousClock.now - drainStart
        func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
        print(String(format: "crews=%d visits=%d", crews, count))
        print(String(format: "book: %.1f bookings/s (%.2f s, with compliance and the notice outbox)", Double(count) / seconds(bookElapsed), seconds(bookElapsed)))
        print(String(format: "notice+confirm: %.1f/s (%.2f s)", Double(count) / seconds(confirmElapsed), seconds(confirmElapsed)))
        print(String(format: "visit (2 check-ins + outcome + check-out): %.1f visits/s (%.2f s, %.1f RPC/s)",
                     Double(count) / seconds(visitElapsed), seconds(visitElapsed), Double(count * 4) / seconds(visitElapsed)))
        print(String(format: "consequences drained %.2f s after the last check-out", seconds(drainElapsed)))
        print(String(format: "workflow: %.1f complete visits/s (book → check out)",
                     Double(count) / (seconds(bookElapsed) + seconds(confirmElapsed) + seconds(visitElapsed))))
        await accountsClient.close()
        await schedulingClient.close()
        await visitsClient.close()
    }
}
