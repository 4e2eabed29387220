import Foundation
import Logging
import Models
import RPC
import RPCWire
import ServiceKit
import ServiceTestSupport
import Storage
import Testing
@testable import AccountsService

private typealias A = AccountsV1.AccountsService

/// The stage engine run by the service itself: accounts move on at the configured local time
/// of their own debtors' zones, with no EvaluateStages call — a debtor in New York (UTC-4 in
/// March) before one in Shanghai (UTC+8).
@Suite("The nightly evaluation: local midnight (or the configured time) in each debtor's zone", .serialized)
struct NightlyEvaluationTests {
    /// A debtor in `zone` and an account whose only instalment fell due on `due`: 7 days past
    /// due on the debtor's 2026-03-09 or 2026-03-10, REMINDER until the 8th day makes it REMOTE.
    static func account(_ harness: AccountsHarness, zone: String, due: TypeV1.Date, suffix: String) async throws -> AccountsV1.Account {
        let platform = try await harness.metadata(.platform)
        let debtor = try await harness.client.unary(A.createDebtor, AccountsV1.CreateDebtorRequest(
            requestId: "debtor-\(suffix)", debtor: AccountsV1.Debtor(
                externalId: "cust-\(suffix)", fullName: "王五", nationalId: "11010519491231002X", phone: "13812345678",
                address: TypeV1.Address(text: "上海市浦东新区", regionCode: "310115"), timeZone: zone)),
            metadata: platform)
        let cny = TypeV1.Money(amountMinor: 100_000, currencyCode: "CNY")
        return try await harness.client.unary(A.openAccount, AccountsV1.OpenAccountRequest(
            requestId: "account-\(suffix)", debtorId: debtor.id, externalId: "loan-\(suffix)", lenderId: "lender-1",
            product: .cashLoan, principal: cny, openedDate: TypeV1.Date(year: 2026, month: 1, day: 2),
            instalments: [AccountsV1.OpeningInstalment(dueDate: due, amountDue: cny)]), metadata: platform)
    }

    static func stage(_ harness: AccountsHarness, _ id: String) async throws -> AccountsV1.Stage {
        try await harness.client.unary(A.getAccount, AccountsV1.GetAccountRequest(accountId: id),
                                       metadata: try await harness.metadata(.platform)).stage
    }

    /// 2026-03-10 at `hour`:`minute` UTC.
    static func utc(_ hour: Int, _ minute: Int) -> Int64 { testEpochMs + Int64(hour * 60 + minute) * 60_000 }

    @Test("each account moves at midnight, or at the configured time, of its own debtor's zone", arguments: [Int64(0), Int64(30 * 60_000)])
    func localDayStart(dayStartMs: Int64) async throws {
        let harness = try await AccountsHarness()
        // 2026-03-10T00:00Z: 08:00 on the 10th in Shanghai, 20:00 on the 9th in New York.
        let shanghai = try await Self.account(harness, zone: "Asia/Shanghai", due: TypeV1.Date(year: 2026, month: 3, day: 3), suffix: "sh")
        let newYork = try await Self.account(harness, zone: "America/New_York", due: TypeV1.Date(year: 2026, month: 3, day: 2), suffix: "ny")
        #expect(shanghai.stage == .reminder && shanghai.daysPastDue == 7)
        #expect(newYork.stage == .reminder && newYork.daysPastDue == 7)
        let key = try DataCipher.loadKey(path: harness.directory.appendingPathComponent("data.key").path, create: false).key
        let clock = harness.clock
        let service = AccountsService(database: harness.database, cipher: DataCipher(key: key), clock: ServiceClock { clock.now })
        let minutes = Int(dayStartMs / 60_000)

        // New York's 10th begins at 04:00Z (plus the configured time); Shanghai's 11th at 16:00Z.
        for (instant, expected) in [(Self.utc(3, 59 + minutes), (AccountsV1.Stage.reminder, AccountsV1.Stage.reminder)),
                                    (Self.utc(4, 1 + minutes), (.reminder, .remote)),
                                    (Self.utc(15, 59 + minutes), (.reminder, .remote)),
                                    (Self.utc(16, 1 + minutes), (.remote, .remote))] {
            clock.set(instant)
            _ = try await service.evaluateDue(nowMs: clock.now, dayStartMs: dayStartMs)
            #expect(try await Self.stage(harness, shanghai.id) == expected.0, "Shanghai at \(instant)")
            #expect(try await Self.stage(harness, newYork.id) == expected.1, "New York at \(instant)")
        }
        // Each moved once, with the engine as the actor; a second run the same day does nothing.
        #expect(try await service.evaluateDue(nowMs: clock.now, dayStartMs: dayStartMs) == 0)
        for id in [shanghai.id, newYork.id] {
            let events = try await harness.client.unary(A.getAccountTimeline, AccountsV1.GetAccountTimelineRequest(accountId: id),
                                                        metadata: try await harness.metadata(.platform)).events
            let moves = events.filter { $0.eventType == .stageChanged && $0.actor?.role == .system }
            #expect(moves.count == 1, "\(events.map(\.eventType))")
        }
        await harness.close()
    }

    @Test("the job runs by itself: no call moves the account, the clock does", .timeLimit(.minutes(1)))
    func runsByItself() async throws {
        let harness = try await AccountsHarness()
        let shanghai = try await Self.account(harness, zone: "Asia/Shanghai", due: TypeV1.Date(year: 2026, month: 3, day: 3), suffix: "sh")
        let key = try DataCipher.loadKey(path: harness.directory.appendingPathComponent("data.key").path, create: false).key
        let clock = harness.clock
        let service = AccountsService(database: harness.database, cipher: DataCipher(key: key), clock: ServiceClock { clock.now })
        var logger = Logger(label: "doorstep.test.nightly")
        logger.logLevel = .critical
        let job = NightlyEvaluation(service: service, database: harness.database, clock: ServiceClock { clock.now }, logger: logger,
                                    dayStartMs: 0, interval: .milliseconds(50))
        let running = Task { try await job.run() }
        clock.set(Self.utc(16, 1))  // Shanghai's 11th has begun
        var stage = AccountsV1.Stage.reminder
        for _ in 0..<200 where stage != .remote {
            try await Task.sleep(for: .milliseconds(50))
            stage = try await Self.stage(harness, shanghai.id)
        }
        running.cancel()
        _ = await running.result
        #expect(stage == .remote)
        await harness.close()
    }
}
