import Foundation
import Logging
import Models
import Outbox
import RPC
import RPCWire
import SchedulingService
import ServiceAuth
import ServiceKit
import Storage
import ServiceTestSupport
import Synchronization
import TestSupport
import Testing
import Validation

/// Where the first debtor lives, and points about 10 km north of it (0.09° of latitude is
/// 10.0 km; 13 km by road at the default road factor, 31 min at 25 km/h).
enum Places {
    static let home = TypeV1.GeoPoint(latitude: 31.2304, longitude: 121.4737)
    static let north10km = TypeV1.GeoPoint(latitude: 31.3204, longitude: 121.4737)
    static let north10kmEast1km = TypeV1.GeoPoint(latitude: 31.3204, longitude: 121.4837)
    static let nearby = TypeV1.GeoPoint(latitude: 31.2404, longitude: 121.4837)
}

/// The scheduling service behind a real gRPC server on 127.0.0.1 (port 0), on a real database
/// (a SQLite file, or a PostgreSQL schema: ``TestDatabase``), with a clock the test sets and a fake accounts service the test fills.
final class SchedulingHarness: Sendable {
    let served: ServedService
    let client: GRPCClient
    let issuer: TokenIssuer
    let database: SQLDatabase
    let service: SchedulingService
    let logger: Logger
    let clock = SettableClock(nowMs: testEpochMs)
    let accounts = FakeAccounts()
    /// A platform token's metadata.
    let platform: Metadata

    init(configuration: SchedulingConfiguration = .defaults) async throws {
        let directory = try makeTemporaryDirectory()
        var logger = Logger(label: "doorstep.test.scheduling")
        logger.logLevel = .critical
        self.logger = logger
        database = try await TestDatabase.open(file: "scheduling.sqlite", in: directory, migrations: SchedulingService.migrations, logger: logger)
        let signing = try SigningKey.generate()
        let issuer = TokenIssuer(key: signing)
        self.issuer = issuer
        let clock = self.clock
        service = SchedulingService(database: database, clock: ServiceClock { clock.now }, configuration: configuration,
                                    accounts: accounts, noticeWritten: {})
        served = try await ServedService.start(service.definition, authenticator: try await TokenVerifier(key: signing), logger: logger)
        client = served.client
        let token = try await issuer.token(for: Caller(role: .platform, subject: "test-platform"))
        platform = ["authorization": "Bearer \(token)"]
    }

    func close() async {
        await served.close()
        await database.close()
    }

    func metadata(_ role: Caller.Role, agency: String? = nil, collector: String? = nil) async throws -> Metadata {
        let token = try await issuer.token(for: Caller(role: role, subject: "test-\(role.rawValue)", agencyID: agency,
                                                       collectorID: collector))
        return ["authorization": "Bearer \(token)"]
    }

    // MARK: Registry

    /// An ACTIVE agency: licence valid to 2027-12-31, inspected 2026-01-15, serving 310115.
    func registerAgency(name: String = "上海示例资产管理有限公司", licence: String = "SH-COLL-2024-0001") async throws -> SchedulingV1.Agency {
        try await client.unary(SchedulingV1.SchedulingService.registerAgency, SchedulingV1.RegisterAgencyRequest(
            requestId: "agency-\(licence)", agency: SchedulingV1.Agency(
                displayName: name, licenceNumber: licence, licenceExpiryDate: TypeV1.Date(year: 2027, month: 12, day: 31),
                regionsServed: ["310115"], lastInspectionDate: TypeV1.Date(year: 2026, month: 1, day: 15))),
            metadata: platform)
    }

    /// An ACTIVE collector of `agency` in 310115: shift 08:00-20:00 Asia/Shanghai, capacity 6.
    func registerCollector(agency: String, name: String, certification: String, home: TypeV1.GeoPoint) async throws -> SchedulingV1.Collector {
        try await client.unary(SchedulingV1.SchedulingService.registerCollector, SchedulingV1.RegisterCollectorRequest(
            requestId: "collector-\(certification)", collector: SchedulingV1.Collector(
                agencyId: agency, fullName: name, certificationNumber: certification,
                certificationExpiryDate: TypeV1.Date(year: 2027, month: 6, day: 30), regionCode: "310115", homeLocation: home,
                timeZone: "Asia/Shanghai", shiftStart: TypeV1.TimeOfDay(hours: 8, minutes: 0),
                shiftEnd: TypeV1.TimeOfDay(hours: 20, minutes: 0), dailyCapacity: 6)),
            metadata: platform)
    }

    /// One agency and four of its collectors (two crews of two), all homed near the first
    /// debtor.
    func setUpWorld() async throws -> World {
        let agency = try await registerAgency()
        var collectors: [SchedulingV1.Collector] = []
        for (index, name) in ["张伟", "王芳", "刘洋", "陈静"].enumerated() {
            collectors.append(try await registerCollector(
                agency: agency.id, name: name, certification: "SH-CERT-000\(index + 1)",
                home: TypeV1.GeoPoint(latitude: 31.23 + Double(index) * 0.001, longitude: 121.47 + Double(index) * 0.001)))
        }
        return World(agency: agency, collectors: collectors)
    }

    // MARK: Accounts (the fake)

    /// A FIELD account in 310115 (debtor in Asia/Shanghai) known to the fake accounts service,
    /// with its debtor and its record for the contact budget.
    @discardableResult
    func addAccount(location: TypeV1.GeoPoint? = Places.home, onHold: Bool = false, assignedAgency: String = "") -> AccountFacts {
        let debtorID = IDGenerator.make(prefix: "dbt", nowMs: clock.now)
        let accountID = IDGenerator.make(prefix: "acc", nowMs: clock.now)
        let address = TypeV1.Address(text: "上海市浦东新区世纪大道 100 号", regionCode: "310115", location: location)
        let facts = AccountFacts(accountID: accountID, debtorID: debtorID, stage: .field, onHold: onHold, regionCode: "310115",
                                 timeZoneID: "Asia/Shanghai", address: address, assignedAgencyID: assignedAgency)
        accounts.put(facts)
        accounts.put(debtor: AccountsV1.Debtor(id: debtorID, fullName: "李四", address: address, timeZone: "Asia/Shanghai"))
        accounts.put(account: AccountsV1.Account(id: accountID, debtorId: debtorID, stage: .field, onHold: onHold,
                                                 regionCode: "310115", debtorTimeZone: "Asia/Shanghai"))
        return facts
    }

    // MARK: Calls

    func book(_ accountID: String, crew: [String], _ startMs: Int64, _ endMs: Int64, requestID: String,
              metadata: Metadata? = nil) async throws(RPCError) -> SchedulingV1.Appointment {
        try await client.unary(SchedulingV1.SchedulingService.bookAppointment, SchedulingV1.BookAppointmentRequest(
            requestId: requestID, accountId: accountID, crewCollectorIds: crew, windowStartMs: startMs, windowEndMs: endMs,
            purpose: .discussRepayment), metadata: metadata ?? platform)
    }

    func get(_ appointmentID: String, metadata: Metadata? = nil) async throws(RPCError) -> SchedulingV1.Appointment {
        try await client.unary(SchedulingV1.SchedulingService.getAppointment,
                               SchedulingV1.GetAppointmentRequest(appointmentId: appointmentID), metadata: metadata ?? platform)
    }

    /// Every appointment the caller may see (all pages).
    func list(_ request: SchedulingV1.ListAppointmentsRequest = .init(), metadata: Metadata? = nil) async throws(RPCError) -> [SchedulingV1.Appointment] {
        var request = request
        var result: [SchedulingV1.Appointment] = []
        repeat {
            let page = try await client.unary(SchedulingV1.SchedulingService.listAppointments, request, metadata: metadata ?? platform)
            result += page.appointments
            request.pageToken = page.nextPageToken
        } while !request.pageToken.isEmpty
        return result
    }

    func confirm(_ appointmentID: String, requestID: String, expectedVersion: Int64 = 0) async throws(RPCError) -> SchedulingV1.Appointment {
        try await client.unary(SchedulingV1.SchedulingService.confirmAppointment, SchedulingV1.ConfirmAppointmentRequest(
            requestId: requestID, appointmentId: appointmentID, expectedVersion: expectedVersion, confirmationChannel: .sms),
            metadata: platform)
    }

    func cancel(_ appointmentID: String, requestID: String, expectedVersion: Int64 = 0) async throws(RPCError) -> SchedulingV1.Appointment {
        try await client.unary(SchedulingV1.SchedulingService.cancelAppointment, SchedulingV1.CancelAppointmentRequest(
            requestId: requestID, appointmentId: appointmentID, expectedVersion: expectedVersion, reason: .debtorRequest,
            note: "the debtor asked to cancel"), metadata: platform)
    }

    // MARK: Notices

    /// An outbox dispatcher over the harness's database and clock that hands customer notices
    /// to `sink` and moves delivered appointments on (as the server wires it).
    func dispatcher(sink: any OutboxSink) -> OutboxDispatcher {
        let service = self.service
        let clock = self.clock
        return OutboxDispatcher(
            database: database, topics: [SchedulingService.noticeTopic], sink: sink, nowMs: { clock.now }, logger: logger,
            onDelivered: { db, message, deliveredMs in
                try service.noticeDelivered(db, message: message, deliveredMs: deliveredMs)
            })
    }

    /// Advances the clock in small steps, dispatching after each, until `done` holds (retries
    /// wait for their backoff); records an issue when a simulated day passes first.
    func dispatch(_ dispatcher: OutboxDispatcher, until done: () -> Bool, stepMs: Int64 = 15_000, maxSteps: Int = 5_760) async {
        for _ in 0..<maxSteps {
            if done() { return }
            clock.advance(stepMs)
            await dispatcher.dispatchDue()
        }
        if !done() { Issue.record("the dispatcher did not get there within \(maxSteps) steps of \(stepMs) ms") }
    }

    /// Delivers every due notice to a sink that accepts everything.
    func deliverNotices() async {
        await dispatcher(sink: RecordingSink()).dispatchDue()
    }
}

/// The agency and collectors of a test.
struct World {
    let agency: SchedulingV1.Agency
    let collectors: [SchedulingV1.Collector]

    /// Collector ids, c[0]...c[3].
    var c: [String] { collectors.map(\.id) }
}

/// The accounts service as scheduling sees it: account facts, debtors, a debtor's accounts
/// and visit candidates held in memory. Unknown ids are NOT_FOUND; `setUnavailable(true)`
/// makes every call fail with UNAVAILABLE, as `GRPCAccountsDirectory` does when accounts
/// cannot be reached.
final class FakeAccounts: AccountsDirectory {
    struct State: Sendable {
        var facts: [String: AccountFacts] = [:]
        var debtors: [String: AccountsV1.Debtor] = [:]
        /// Account records by debtor id.
        var accountsOfDebtor: [String: [AccountsV1.Account]] = [:]
        /// Candidates by region, best first.
        var candidates: [String: [AccountsV1.VisitCandidate]] = [:]
        /// Deferred accounts by region.
        var deferred: [String: [AccountsV1.DeferredVisitCandidate]] = [:]
        var unavailable = false
        var calls = 0
    }

    private let state = Mutex(State())

    func put(_ facts: AccountFacts) { state.withLock { $0.facts[facts.accountID] = facts } }
    func put(debtor: AccountsV1.Debtor) { state.withLock { $0.debtors[debtor.id] = debtor } }
    /// Adds or replaces (by id) an account record of its debtor.
    func put(account: AccountsV1.Account) {
        state.withLock { state in
            var list = state.accountsOfDebtor[account.debtorId] ?? []
            list.removeAll { existing in existing.id == account.id }
            list.append(account)
            state.accountsOfDebtor[account.debtorId] = list
        }
    }
    func setCandidates(_ candidates: [AccountsV1.VisitCandidate], region: String) {
        state.withLock { $0.candidates[region] = candidates }
    }
    func setDeferred(_ deferred: [AccountsV1.DeferredVisitCandidate], region: String) {
        state.withLock { $0.deferred[region] = deferred }
    }
    func setOnHold(_ accountID: String, _ onHold: Bool) { state.withLock { $0.facts[accountID]?.onHold = onHold } }
    func setUnavailable(_ unavailable: Bool) { state.withLock { $0.unavailable = unavailable } }
    /// Calls made so far (including failed ones).
    var calls: Int { state.withLock { $0.calls } }

    /// The state as of this call, or UNAVAILABLE.
    private func snapshot() throws(RPCError) -> State {
        let current = state.withLock {
            $0.calls += 1
            return $0
        }
        if current.unavailable {
            throw RPCError(code: .unavailable, message: "accounts service: UNAVAILABLE connection refused (fake)")
        }
        return current
    }

    func account(_ accountID: String) async throws(RPCError) -> AccountFacts {
        let current = try snapshot()
        guard let facts = current.facts[accountID] else { throw RPCError.notFound("account \(accountID) not found") }
        return facts
    }

    func debtor(_ debtorID: String) async throws(RPCError) -> AccountsV1.Debtor {
        let current = try snapshot()
        guard let debtor = current.debtors[debtorID] else { throw RPCError.notFound("debtor \(debtorID) not found") }
        return debtor
    }

    func accounts(ofDebtor debtorID: String) async throws(RPCError) -> [AccountsV1.Account] {
        let current = try snapshot()
        guard current.debtors[debtorID] != nil else { throw RPCError.notFound("debtor \(debtorID) not found") }
        return current.accountsOfDebtor[debtorID] ?? []
    }

    func candidates(region: String, limit: Int) async throws(RPCError) -> VisitCandidates {
        let current = try snapshot()
        return VisitCandidates(candidates: Array((current.candidates[region] ?? []).prefix(limit)),
                               deferred: current.deferred[region] ?? [])
    }
}
