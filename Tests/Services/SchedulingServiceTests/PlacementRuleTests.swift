import AccountsService
import Foundation
import Logging
import Models
import Outbox
import RPC
import RPCWire
import SchedulingService
import ServiceAuth
import ServiceKit
import ServiceTestSupport
import Storage
import Synchronization
import TestSupport
import Testing
import Validation

private typealias S = SchedulingV1.SchedulingService
private typealias A = AccountsV1.AccountsService

/// The visits service's scorecards as the test sets them (visits computes them from its
/// complaints and visit outcomes; its own suites test that). An agency without one has an
/// empty scorecard, as `GRPCAgencyScorecards` answers for an agency visits does not know.
private final class SetScorecards: AgencyScorecards {
    private let cards = Mutex<[String: VisitsV1.AgencyScorecard]>([:])

    func set(_ card: VisitsV1.AgencyScorecard) { cards.withLock { $0[card.agencyId] = card } }

    func scorecard(agencyID: String, startDate: TypeV1.Date) async throws(RPCError) -> VisitsV1.AgencyScorecard {
        cards.withLock { $0[agencyID] } ?? VisitsV1.AgencyScorecard(agencyId: agencyID)
    }
}

/// Scheduling and a real accounts service, each on its own database, scheduling calling
/// accounts over HTTP/2 on 127.0.0.1 with a service token (`GRPCAccountsDirectory`), as
/// deployed. Tokens of both are signed with one key.
private final class PlacementWorld: Sendable {
    let clock = SettableClock(nowMs: march(10, 10))
    let issuer: TokenIssuer
    let scorecards = SetScorecards()
    private let accountsServer: Mutex<GRPCServer>
    private let accountsDefinition: ServiceDefinition
    private let verifier: TokenVerifier
    private let accountsPort: Int
    let accountsDatabase: SQLDatabase
    let accounts: GRPCClient
    let directory: GRPCAccountsDirectory
    let schedulingDatabase: SQLDatabase
    let scheduling: ServedService
    let logger: Logger

    init() async throws {
        let folder = try makeTemporaryDirectory()
        var logger = Logger(label: "doorstep.test.placements")
        logger.logLevel = .critical
        self.logger = logger
        let signing = try SigningKey.generate()
        issuer = TokenIssuer(key: signing)
        let clock = self.clock
        accountsDatabase = try await TestDatabase.open(file: "accounts.sqlite", in: folder, migrations: AccountsService.migrations, logger: logger)
        let cipher = DataCipher(key: try DataCipher.loadKey(path: folder.appendingPathComponent("data.key").path, create: true).key)
        let accountsService = AccountsService(database: accountsDatabase, cipher: cipher, clock: ServiceClock { clock.now })
        verifier = try await TokenVerifier(key: signing)
        accountsDefinition = accountsService.definition
        let server = GRPCServer(services: accountsDefinition, authenticator: verifier, logger: logger)
        let address = try await server.start()
        accountsServer = Mutex(server)
        accountsPort = address.port!
        let target = GRPCClient.Target(host: "127.0.0.1", port: accountsPort)
        accounts = GRPCClient(targets: [target])
        directory = GRPCAccountsDirectory(targets: [target], signingKey: SigningKeyStore(key: signing), subject: "scheduling")
        schedulingDatabase = try await TestDatabase.open(file: "scheduling.sqlite", in: folder, migrations: SchedulingService.migrations,
                                                         logger: logger)
        let service = SchedulingService(database: schedulingDatabase, clock: ServiceClock { clock.now }, accounts: directory,
                                        scorecards: scorecards)
        scheduling = try await ServedService.start(service.definition, authenticator: try await TokenVerifier(key: signing), logger: logger)
    }

    func close() async {
        await scheduling.close()
        await directory.close()
        await accounts.close()
        await stopAccounts()
        await schedulingDatabase.close()
        await accountsDatabase.close()
    }

    func stopAccounts() async {
        await accountsServer.withLock { $0 }.shutdownGracefully()
    }

    /// Serves accounts again on the same port (after ``stopAccounts()``).
    func restartAccounts() async throws {
        var configuration = GRPCServer.Configuration()
        configuration.port = accountsPort
        let server = GRPCServer(configuration: configuration, services: accountsDefinition, authenticator: verifier, logger: logger)
        _ = try await server.start()
        accountsServer.withLock { $0 = server }
    }

    func metadata(_ role: Caller.Role, agency: String? = nil) async throws -> Metadata {
        ["authorization": "Bearer \(try await issuer.token(for: Caller(role: role, subject: "test-\(role.rawValue)", agencyID: agency)))"]
    }

    /// An ACTIVE agency serving `regions` that takes `capacity` placed accounts.
    func agency(_ licence: String, capacity: Int32, regions: [String] = ["310115"]) async throws -> SchedulingV1.Agency {
        try await scheduling.client.unary(S.registerAgency, SchedulingV1.RegisterAgencyRequest(
            requestId: "agency-\(licence)", agency: SchedulingV1.Agency(
                displayName: "上海\(licence)资产管理有限公司", licenceNumber: licence,
                licenceExpiryDate: TypeV1.Date(year: 2027, month: 12, day: 31), regionsServed: regions,
                lastInspectionDate: TypeV1.Date(year: 2026, month: 1, day: 15), placementCapacity: capacity)),
            metadata: try await metadata(.platform))
    }

    func collector(agency: String, certification: String, index: Int) async throws -> SchedulingV1.Collector {
        try await scheduling.client.unary(S.registerCollector, SchedulingV1.RegisterCollectorRequest(
            requestId: "collector-\(certification)", collector: SchedulingV1.Collector(
                agencyId: agency, fullName: "催收员\(index)", certificationNumber: certification,
                certificationExpiryDate: TypeV1.Date(year: 2027, month: 6, day: 30), regionCode: "310115",
                homeLocation: TypeV1.GeoPoint(latitude: 31.23 + Double(index) * 0.001, longitude: 121.47),
                timeZone: "Asia/Shanghai", shiftStart: TypeV1.TimeOfDay(hours: 8, minutes: 0),
                shiftEnd: TypeV1.TimeOfDay(hours: 20, minutes: 0), dailyCapacity: 6)),
            metadata: try await metadata(.platform))
    }

    /// A seeded city: `count` debtors of `region`, each with one account brought to FIELD (38
    /// days past due, three undelivered texts), their homes spread over a few kilometres, and
    /// different overdue amounts (so expected recoveries differ).
    func seed(region: String, count: Int, prefix: String) async throws -> [String] {
        let platform = try await metadata(.platform)
        let service = try await metadata(.service)
        let cny = { (amount: Int64) in TypeV1.Money(amountMinor: amount, currencyCode: "CNY") }
        var ids: [String] = []
        for index in 0..<count {
            let debtor = try await accounts.unary(A.createDebtor, AccountsV1.CreateDebtorRequest(
                requestId: "debtor-\(prefix)-\(index)", debtor: AccountsV1.Debtor(
                    externalId: "cust-\(prefix)-\(index)", fullName: "李四", nationalId: "11010519491231002X", phone: "13812345678",
                    address: TypeV1.Address(text: "上海市第\(index)号", regionCode: region,
                                            location: TypeV1.GeoPoint(latitude: 31.2304 + Double(index % 6) * 0.004,
                                                                      longitude: 121.4737 + Double(index / 6) * 0.004)),
                    timeZone: "Asia/Shanghai")),
                metadata: platform)
            let amount = Int64(50_000 + index * 10_000)
            let account = try await accounts.unary(A.openAccount, AccountsV1.OpenAccountRequest(
                requestId: "account-\(prefix)-\(index)", debtorId: debtor.id, externalId: "loan-\(prefix)-\(index)", lenderId: "lender-1",
                product: .instalmentLoan, principal: cny(3 * amount), openedDate: TypeV1.Date(year: 2025, month: 12, day: 20),
                instalments: [(1, 31), (2, 28), (3, 31)].map {
                    AccountsV1.OpeningInstalment(dueDate: TypeV1.Date(year: 2026, month: Int32($0.0), day: Int32($0.1)), amountDue: cny(amount))
                }), metadata: platform)
            for attempt in 1...3 {
                _ = try await accounts.unary(A.recordContactAttempt, AccountsV1.RecordContactAttemptRequest(
                    requestId: "sms-\(prefix)-\(index)-\(attempt)", accountId: account.id, channel: .sms, outcome: .smsUndelivered,
                    attemptedMs: clock.now + Int64(attempt) * 60_000 - 10 * 60_000), metadata: service)
            }
            ids.append(account.id)
        }
        _ = try await accounts.unary(A.evaluateStages, AccountsV1.EvaluateStagesRequest(requestId: "eval-\(prefix)"), metadata: service)
        return ids
    }

    /// The accounts placed with `agency` as an agency manager of it lists them (all pages).
    func listed(by agency: String) async throws -> Set<String> {
        var ids: Set<String> = []
        var token = ""
        repeat {
            let page = try await accounts.unary(A.listAccounts, AccountsV1.ListAccountsRequest(pageSize: 7, pageToken: token),
                                                metadata: try await metadata(.agencyManager, agency: agency))
            ids.formUnion(page.accounts.map(\.id))
            token = page.nextPageToken
        } while !token.isEmpty
        return ids
    }

    /// The region's visit candidates an agency manager of `agency` sees (all pages).
    func candidates(of agency: String) async throws -> Set<String> {
        var ids: Set<String> = []
        var token = ""
        repeat {
            let page = try await accounts.unary(A.listVisitCandidates, AccountsV1.ListVisitCandidatesRequest(
                regionCode: "310115", pageSize: 4, pageToken: token), metadata: try await metadata(.agencyManager, agency: agency))
            ids.formUnion(page.candidates.map(\.accountId))
            token = page.nextPageToken
        } while !token.isEmpty
        return ids
    }

    /// Delivers the queued recalls to accounts, as the server's recall dispatcher does.
    @discardableResult
    func deliverRecalls() async -> Int {
        let clock = self.clock
        return await OutboxDispatcher(database: schedulingDatabase, topics: [SchedulingService.recallTopic],
                                      sink: PlacementRecallSink(accounts: directory), nowMs: { clock.now }, logger: logger).dispatchDue()
    }
}

@Suite("Placement by rule and agency-scoped work: PlaceRegion over a seeded city, PlanDay per agency, recalls on suspension and exit",
       .serialized)
struct PlacementRuleTests {
    @Test("PlaceRegion places every FIELD account of the region at most once, within capacities, better scorecards first, each with its reason; agency managers' lists, candidates and PlanDay cover exactly their placements",
          .timeLimit(.minutes(3)))
    func placeRegion() async throws {
        let world = try await PlacementWorld()
        let platform = try await world.metadata(.platform)
        let a = try await world.agency("SH-A", capacity: 8)
        let b = try await world.agency("SH-B", capacity: 10)
        let c = try await world.agency("SH-C", capacity: 5)
        let none = try await world.agency("SH-D", capacity: 0)  // takes no placements by rule
        let suspended = try await world.agency("SH-E", capacity: 50)
        _ = try await world.scheduling.client.unary(S.suspendAgency, SchedulingV1.SuspendAgencyRequest(
            requestId: "suspend-e", agencyId: suspended.id, reason: "licence under review"), metadata: platform)
        let elsewhere = try await world.agency("SH-F", capacity: 50, regions: ["310104"])
        // Scorecards: B has no upheld complaint and the most promises kept, C none upheld and
        // fewer kept, A upheld complaints: the order is B, C, A.
        world.scorecards.set(VisitsV1.AgencyScorecard(agencyId: a.id, complaintsUpheld: 2, upheldComplaintsPer1000Visits: 20, promisesKept: 9))
        world.scorecards.set(VisitsV1.AgencyScorecard(agencyId: b.id, promisesKept: 5, promisesBroken: 1, brokenPromiseRateBp: 1666))
        world.scorecards.set(VisitsV1.AgencyScorecard(agencyId: c.id, promisesKept: 1))

        let city = try await world.seed(region: "310115", count: 25, prefix: "pd")
        let other = try await world.seed(region: "310104", count: 3, prefix: "xh")
        // One account already placed with A by hand: it counts against A's capacity.
        let handPlaced = try await world.accounts.unary(A.placeAccounts, AccountsV1.PlaceAccountsRequest(
            requestId: "hand-1", agencyId: a.id, accounts: [AccountsV1.PlacementTarget(accountId: city[0])],
            endDate: TypeV1.Date(year: 2026, month: 6, day: 30), reason: "pilot"), metadata: platform)
        #expect(handPlaced.placements.count == 1)

        let request = SchedulingV1.PlaceRegionRequest(requestId: "place-310115", regionCode: "310115",
                                                      endDate: TypeV1.Date(year: 2026, month: 6, day: 30), reason: "Q2 field placement")
        let placed = try await world.scheduling.client.unary(S.placeRegion, request, metadata: platform)
        #expect(placed.agencies.map(\.agencyId) == [b.id, c.id, a.id], "better scorecards first; D (capacity 0), E (suspended), F (elsewhere) left out")
        #expect(placed.agencies.map(\.rank) == [1, 2, 3])
        #expect(placed.agencies.map(\.accountsPlaced) == [10, 5, 7])
        // 24 unplaced FIELD accounts: B 10, C 5, A 8 - 1 already placed = 7; 2 left.
        #expect(placed.placements.count == 22)
        #expect(placed.accountsLeftUnplaced == 2)
        let placedIDs = placed.placements.map(\.accountId)
        #expect(Set(placedIDs).count == placedIDs.count, "every account placed at most once")
        #expect(Set(placedIDs).isSubset(of: Set(city.dropFirst())), "only the region's unplaced accounts")
        #expect(Set(placedIDs).isDisjoint(with: other))
        for item in placed.placements {
            let rank = try #require(placed.agencies.first { $0.agencyId == item.agencyId }?.rank)
            #expect(item.reason.hasPrefix("Q2 field placement; by rule in region 310115: agency \(item.agencyId) ranked \(rank) of 3"),
                    "\(item.reason)")
            #expect(item.reason.contains("account expected recovery"), "\(item.reason)")
        }
        // B took the best expected recoveries (accounts of larger amounts were seeded later).
        let bAccounts = Set(placed.placements.filter { $0.agencyId == b.id }.map(\.accountId))
        #expect(bAccounts == Set(city.suffix(10)), "the best accounts go to the best agency")

        // Capacities respected, counting the hand placement; each agency's manager sees
        // exactly its placements in lists and candidates.
        var byAgency: [String: Set<String>] = [:]
        for item in placed.placements { byAgency[item.agencyId, default: []].insert(item.accountId) }
        byAgency[a.id, default: []].insert(city[0])
        for (agency, capacity) in [(a, 8), (b, 10), (c, 5)] {
            let listed = try await world.listed(by: agency.id)
            #expect(listed == byAgency[agency.id] ?? [], "\(agency.licenceNumber)")
            #expect(listed.count <= capacity)
            #expect(try await world.candidates(of: agency.id) == byAgency[agency.id] ?? [], "\(agency.licenceNumber)")
        }
        #expect(try await world.listed(by: none.id).isEmpty)
        #expect(try await world.listed(by: elsewhere.id).isEmpty)
        let foreign = try #require(bAccounts.first)
        await #expect(throws: RPCError(code: .notFound, message: "account \(foreign) not found")) {
            _ = try await world.accounts.unary(A.getAccount, AccountsV1.GetAccountRequest(accountId: foreign),
                                               metadata: try await world.metadata(.agencyManager, agency: c.id))
        }

        // The same request again: the first answer, nothing placed twice.
        #expect(try await world.scheduling.client.unary(S.placeRegion, request, metadata: platform) == placed)
        #expect(try await world.listed(by: b.id).count == 10)
        // A retry after scheduling lost its answer (a crash between accounts' answer and its own
        // record) and the scorecards moved meanwhile: the request kept for accounts goes again,
        // accounts answers it from its record, and nothing is placed twice.
        _ = try await world.schedulingDatabase.write { db in
            try db.execute(sql: "DELETE FROM doorstep_idempotency WHERE method = ?", arguments: [S.placeRegion.path])
        }
        world.scorecards.set(VisitsV1.AgencyScorecard(agencyId: c.id, promisesKept: 50))
        let retried = try await world.scheduling.client.unary(S.placeRegion, request, metadata: platform)
        #expect(retried.placements == placed.placements)
        #expect(try await world.listed(by: c.id) == byAgency[c.id] ?? [])

        // PlanDay for C, by its manager and by the platform naming C: C's crews only, and its
        // candidates are exactly the accounts placed with C (each routed or left out once).
        for index in 0..<2 { _ = try await world.collector(agency: c.id, certification: "SH-C-CERT-\(index)", index: index) }
        for index in 0..<2 { _ = try await world.collector(agency: b.id, certification: "SH-B-CERT-\(index)", index: index + 2) }
        let day = TypeV1.Date(year: 2026, month: 3, day: 12)
        let options = SchedulingV1.PlanDayOptions(fillWithCandidates: true, timeLimitSeconds: 1)
        for (metadata, asked) in [(try await world.metadata(.agencyManager, agency: c.id), ""), (platform, c.id)] {
            let plan = try await world.scheduling.client.unary(S.planDay, SchedulingV1.PlanDayRequest(
                regionCode: "310115", date: day, agencyId: asked, options: options), metadata: metadata)
            #expect(plan.routes.allSatisfy { $0.agencyId == c.id }, "\(plan.routes.map(\.agencyId))")
            let routed = plan.routes.flatMap(\.stops).compactMap { stop -> String? in
                if case .accountId(let id)? = stop.target { return id }
                return nil
            }
            let left = plan.unassigned.compactMap { item -> String? in
                if case .accountId(let id)? = item.target { return id }
                return nil
            }
            #expect(routed.count + left.count == 5 && Set(routed + left) == byAgency[c.id], "\(routed) \(left)")
        }
        await world.close()
    }

    @Test("suspending or exiting an agency recalls its placed accounts through the outbox (at least once, acted on once); a failed inspection too",
          .timeLimit(.minutes(2)))
    func suspensionRecalls() async throws {
        let world = try await PlacementWorld()
        let platform = try await world.metadata(.platform)
        let a = try await world.agency("SH-A", capacity: 4)
        let b = try await world.agency("SH-B", capacity: 4)
        let c = try await world.agency("SH-C", capacity: 4)
        let city = try await world.seed(region: "310115", count: 6, prefix: "s")
        let until = TypeV1.Date(year: 2026, month: 6, day: 30)
        for (agency, accounts) in [(a, city[0..<2]), (b, city[2..<4]), (c, city[4..<6])] {
            _ = try await world.accounts.unary(A.placeAccounts, AccountsV1.PlaceAccountsRequest(
                requestId: "place-\(agency.id)", agencyId: agency.id, accounts: accounts.map { AccountsV1.PlacementTarget(accountId: $0) },
                endDate: until, reason: "Q2 contract"), metadata: platform)
        }
        #expect(try await world.listed(by: a.id) == Set(city[0..<2]))

        _ = try await world.scheduling.client.unary(S.suspendAgency, SchedulingV1.SuspendAgencyRequest(
            requestId: "suspend-a", agencyId: a.id, reason: "licence lapsed"), metadata: platform)
        // Not recalled until the outbox delivers (accounts is another service).
        #expect(try await world.listed(by: a.id) == Set(city[0..<2]))
        #expect(await world.deliverRecalls() == 1)
        #expect(try await world.listed(by: a.id).isEmpty)
        #expect(try await world.listed(by: b.id) == Set(city[2..<4]), "other agencies keep theirs")
        let events = try await world.accounts.unary(A.getAccountTimeline, AccountsV1.GetAccountTimelineRequest(
            accountId: city[0], eventTypes: [.accountRecalled]), metadata: platform).events
        #expect(events.count == 1)
        #expect(events.first?.reason == "recalled from agency \(a.id): agency \(a.id) suspended: licence lapsed", "\(events)")
        #expect(events.first?.actor?.role == .service && events.first?.actor?.subject == "scheduling")
        // Delivered again (a replica died before recording it): accounts acts once.
        let queued = try await world.schedulingDatabase.read { db in
            try db.fetchAll(sql: "SELECT id, payload FROM outbox WHERE topic = ?", arguments: [SchedulingService.recallTopic])
        }
        let row = try #require(queued.first)
        let payload: Data = row["payload"]
        try await PlacementRecallSink(accounts: world.directory).deliver(
            OutboxMessage(id: row["id"], topic: SchedulingService.recallTopic, payload: [UInt8](payload), createdMs: world.clock.now))
        #expect(try await world.accounts.unary(A.getAccountTimeline, AccountsV1.GetAccountTimelineRequest(
            accountId: city[0], eventTypes: [.accountRecalled]), metadata: platform).events.count == 1)

        // Accounts unreachable: the recall waits in the outbox and is delivered later.
        _ = try await world.scheduling.client.unary(S.exitAgency, SchedulingV1.ExitAgencyRequest(
            requestId: "exit-b", agencyId: b.id, reason: "contract ended"), metadata: platform)
        await world.stopAccounts()
        #expect(await world.deliverRecalls() == 0)
        let pending = try await world.schedulingDatabase.read { db in
            try Outbox.backlog(db, topics: [SchedulingService.recallTopic]).pending
        }
        #expect(pending == 1)
        let errors = try await world.schedulingDatabase.read { db in
            try db.fetchValues(String.self, sql: "SELECT last_error FROM outbox WHERE topic = ? AND last_error <> ''",
                               arguments: [SchedulingService.recallTopic])
        }
        #expect(errors.count == 1 && errors[0].hasPrefix("accounts: UNAVAILABLE"), "\(errors)")
        try await world.restartAccounts()
        // The outbox retries after its backoff (the client may wait a moment before it dials
        // the address that failed again).
        var delivered = 0
        for _ in 0..<50 where delivered == 0 {
            world.clock.advance(10 * 60_000)
            delivered = await world.deliverRecalls()
            if delivered == 0 { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(delivered == 1)
        #expect(try await world.listed(by: b.id).isEmpty)

        // A failed inspection suspends, and so recalls.
        _ = try await world.scheduling.client.unary(S.recordInspection, SchedulingV1.RecordInspectionRequest(
            requestId: "inspect-c", agencyId: c.id, inspectionDate: TypeV1.Date(year: 2026, month: 3, day: 9), result: .failed,
            inspector: "上海市地方金融监督管理局", findings: "no call recordings kept"), metadata: platform)
        #expect(await world.deliverRecalls() == 1)
        #expect(try await world.listed(by: c.id).isEmpty)
        await world.close()
    }
}
