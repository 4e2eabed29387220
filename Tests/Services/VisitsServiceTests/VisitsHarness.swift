import Crypto
import Foundation
import Logging
import Models
import Outbox
import RPC
import RPCWire
import ServiceAuth
import ServiceKit
import ServiceTestSupport
import Storage
import Synchronization
import TestSupport
import Testing
import Validation
import VisitsService

private typealias V = VisitsV1.VisitsService

/// The debtor's address, and points due north of it (0.00045° of latitude is 50.04 m,
/// 0.0045° is 500.4 m, by the haversine formula with the mean Earth radius).
enum Places {
    static let home = TypeV1.GeoPoint(latitude: 31.2304, longitude: 121.4737)
    static let fiftyMetresNorth = TypeV1.GeoPoint(latitude: 31.23085, longitude: 121.4737)
    static let fiveHundredMetresNorth = TypeV1.GeoPoint(latitude: 31.2349, longitude: 121.4737)
}

/// A collector: its id and the metadata of its token (role collector, its agency, its id).
struct Member: Sendable {
    let id: String
    let metadata: Metadata
}

/// An agency, its manager's token and four of its collectors.
struct World: Sendable {
    let agency: String
    let manager: Metadata
    let members: [Member]

    var a: Member { members[0] }
    var b: Member { members[1] }
    var c: Member { members[2] }
    var d: Member { members[3] }
}

/// The visits service behind a real gRPC server on 127.0.0.1 (port 0), on a real database
/// (a SQLite file, or a PostgreSQL schema: ``TestDatabase``), with a clock the test sets and fake scheduling/accounts peers the test fills.
final class VisitsHarness: Sendable {
    let served: ServedService
    let client: GRPCClient
    let issuer: TokenIssuer
    let database: SQLDatabase
    let service: VisitsService
    let logger: Logger
    let clock = SettableClock(nowMs: testEpochMs)
    let peers = FakePeers()
    /// How often the service called `effectsWritten` (it wakes the dispatcher).
    let wakes = CallCounter()
    /// A platform token's metadata.
    let platform: Metadata

    init(configuration: VisitsConfiguration = .defaults) async throws {
        let directory = try makeTemporaryDirectory()
        var logger = Logger(label: "doorstep.test.visits")
        logger.logLevel = .critical
        self.logger = logger
        database = try await TestDatabase.open(file: "visits.sqlite", in: directory, migrations: VisitsService.migrations, logger: logger)
        let signing = try SigningKey.generate()
        let issuer = TokenIssuer(key: signing)
        self.issuer = issuer
        let clock = self.clock
        let wakes = self.wakes
        service = VisitsService(database: database, clock: ServiceClock { clock.now }, configuration: configuration,
                                peers: peers, effectsWritten: { wakes.increment() })
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

    /// A new agency with its manager and `collectors` collectors, each with a collector token.
    func setUpWorld(collectors: Int = 4) async throws -> World {
        let agency = IDGenerator.make(prefix: "agy", nowMs: clock.now)
        var members: [Member] = []
        for _ in 0..<collectors {
            let id = IDGenerator.make(prefix: "col", nowMs: clock.now)
            members.append(Member(id: id, metadata: try await metadata(.collector, agency: agency, collector: id)))
        }
        return World(agency: agency, manager: try await metadata(.agencyManager, agency: agency), members: members)
    }

    // MARK: Peers (the fake)

    /// An account in the FIELD stage (debtor in Asia/Shanghai) known to the fake accounts.
    @discardableResult
    func addAccount(product: AccountsV1.ProductType = .instalmentLoan) -> AccountsV1.Account {
        let account = AccountsV1.Account(
            id: IDGenerator.make(prefix: "acc", nowMs: clock.now), debtorId: IDGenerator.make(prefix: "dbt", nowMs: clock.now),
            product: product, stage: .field, regionCode: "310115", debtorTimeZone: "Asia/Shanghai")
        peers.put(account: account)
        return account
    }

    /// An appointment known to the fake scheduling: by default NOTIFIED, 2026-03-12
    /// 10:00-12:00 Asia/Shanghai, at `Places.home`, on a new instalment-loan account.
    @discardableResult
    func addAppointment(crew: [String], agency: String, account: AccountsV1.Account? = nil,
                        state: SchedulingV1.AppointmentState = .notified, start: Int64 = march(12, 10), end: Int64 = march(12, 12),
                        location: TypeV1.GeoPoint? = Places.home) -> SchedulingV1.Appointment {
        let account = account ?? addAccount()
        let appointment = SchedulingV1.Appointment(
            id: IDGenerator.make(prefix: "apt", nowMs: clock.now), accountId: account.id, debtorId: account.debtorId,
            agencyId: agency, crewCollectorIds: crew, state: state, windowStartMs: start, windowEndMs: end,
            debtorTimeZone: "Asia/Shanghai", purpose: .discussRepayment, regionCode: "310115",
            address: TypeV1.Address(text: "上海市浦东新区世纪大道 100 号", regionCode: "310115", location: location),
            rulePackId: "cn-2026", version: 2, createdMs: clock.now)
        peers.put(appointment: appointment)
        return appointment
    }

    // MARK: Calls

    func checkIn(_ appointmentID: String, as member: Member, collectorID: String? = nil, requestID: String,
                 at location: TypeV1.GeoPoint = Places.fiftyMetresNorth, idShown: Bool = true, deviceTimeMs: Int64 = 0,
                 metadata: Metadata? = nil) async throws(RPCError) -> VisitsV1.Visit {
        try await client.unary(V.checkIn, VisitsV1.CheckInRequest(
            requestId: requestID, appointmentId: appointmentID, collectorId: collectorID ?? member.id, location: location,
            locationAccuracyMeters: 8, idShown: idShown, consentToEnter: false, deviceTimeMs: deviceTimeMs),
            metadata: metadata ?? member.metadata)
    }

    func recordOutcome(_ visitID: String, by member: Member, requestID: String, code: VisitsV1.VisitOutcomeCode,
                       willingness: VisitsV1.Willingness = .unspecified, ability: VisitsV1.Ability = .unspecified,
                       notes: String = "", arrangement: VisitsV1.RecordOutcomeRequest.Arrangement? = nil,
                       expectedVersion: Int64 = 0, metadata: Metadata? = nil) async throws(RPCError) -> VisitsV1.Visit {
        try await client.unary(V.recordOutcome, VisitsV1.RecordOutcomeRequest(
            requestId: requestID, visitId: visitID, expectedVersion: expectedVersion, collectorId: member.id, code: code,
            willingness: willingness, ability: ability, notes: notes, arrangement: arrangement),
            metadata: metadata ?? member.metadata)
    }

    /// A MET_DEBTOR outcome (reluctant, unable to pay): the simplest valid one.
    func recordMetDebtor(_ visitID: String, by member: Member, requestID: String) async throws(RPCError) -> VisitsV1.Visit {
        try await recordOutcome(visitID, by: member, requestID: requestID, code: .metDebtor, willingness: .reluctant, ability: .unable,
                                notes: "债务人表示下月发工资后联系")
    }

    /// A valid evidence reference (32-byte digest).
    static func evidence(sha256: [UInt8] = [UInt8](repeating: 0xAB, count: 32)) -> VisitsV1.Evidence {
        VisitsV1.Evidence(recordingId: "rec-2026-0312-0001", evidenceSha256: sha256, recordingStartedMs: march(12, 10, 1),
                          durationSeconds: 1_380, sizeBytes: 4_200_000, mediaType: "audio/aac")
    }

    func checkOut(_ visitID: String, by member: Member, requestID: String, evidence: VisitsV1.Evidence? = VisitsHarness.evidence(),
                  metadata: Metadata? = nil) async throws(RPCError) -> VisitsV1.Visit {
        try await client.unary(V.checkOut, VisitsV1.CheckOutRequest(
            requestId: requestID, visitId: visitID, collectorId: member.id, evidence: evidence, location: Places.home),
            metadata: metadata ?? member.metadata)
    }

    func getVisit(_ visitID: String, metadata: Metadata? = nil) async throws(RPCError) -> VisitsV1.Visit {
        try await client.unary(V.getVisit, VisitsV1.GetVisitRequest(visitId: visitID), metadata: metadata ?? platform)
    }

    /// Every visit the caller may see (all pages).
    func listVisits(_ request: VisitsV1.ListVisitsRequest = .init(), metadata: Metadata? = nil) async throws(RPCError) -> [VisitsV1.Visit] {
        var request = request
        var result: [VisitsV1.Visit] = []
        repeat {
            let page = try await client.unary(V.listVisits, request, metadata: metadata ?? platform)
            result += page.visits
            request.pageToken = page.nextPageToken
        } while !request.pageToken.isEmpty
        return result
    }

    func verifyChain(_ accountID: String, metadata: Metadata? = nil) async throws(RPCError) -> VisitsV1.VerifyEvidenceChainResponse {
        try await client.unary(V.verifyEvidenceChain, VisitsV1.VerifyEvidenceChainRequest(accountId: accountID),
                               metadata: metadata ?? platform)
    }

    // MARK: Effects

    /// An outbox dispatcher over the harness's database and clock that hands visit effects to
    /// `sink` (with the service's `onDelivered`, as the server wires it).
    func dispatcher(sink: any OutboxSink) -> OutboxDispatcher {
        let service = self.service
        let clock = self.clock
        return OutboxDispatcher(
            database: database, topics: [VisitsService.effectTopic], sink: sink, nowMs: { clock.now }, logger: logger,
            onDelivered: { db, message, deliveredMs in
                try service.effectDelivered(db, message: message, deliveredMs: deliveredMs)
            },
            onFailed: { db, message, error, failedMs in
                try service.effectFailed(db, message: message, error: error, failedMs: failedMs)
            })
    }
}

/// A thread-safe counter.
final class CallCounter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

/// Scheduling and accounts as the visits service sees them: appointments, the check-in
/// compliance verdict per appointment and accounts, held in memory. Unknown ids are
/// NOT_FOUND; `setUnavailable(true)` makes every call fail with UNAVAILABLE, as
/// `GRPCVisitsPeers` does when a peer cannot be reached.
final class FakePeers: VisitsPeers {
    struct State: Sendable {
        var appointments: [String: SchedulingV1.Appointment] = [:]
        /// Violations CheckCompliance (check point CHECK_IN) reports, by appointment id.
        var violations: [String: [TypeV1.Violation]] = [:]
        var accounts: [String: AccountsV1.Account] = [:]
        var unavailable = false
        var calls = 0
    }

    private let state = Mutex(State())

    func put(appointment: SchedulingV1.Appointment) { state.withLock { $0.appointments[appointment.id] = appointment } }
    func put(account: AccountsV1.Account) { state.withLock { $0.accounts[account.id] = account } }
    /// Changes a known account (its holds, stage) as accounts would.
    func update(account id: String, _ change: (inout AccountsV1.Account) -> Void) {
        state.withLock { if var account = $0.accounts[id] { change(&account); $0.accounts[id] = account } }
    }
    /// Forgets an account: accounts answers NOT_FOUND for it from now on.
    func remove(account id: String) { state.withLock { $0.accounts[id] = nil } }
    func setState(_ appointmentID: String, _ appointmentState: SchedulingV1.AppointmentState) {
        state.withLock { $0.appointments[appointmentID]?.state = appointmentState }
    }
    func setViolations(_ violations: [TypeV1.Violation], for appointmentID: String) {
        state.withLock { $0.violations[appointmentID] = violations }
    }
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
            throw RPCError(code: .unavailable, message: "scheduling service: UNAVAILABLE connection refused (fake)")
        }
        return current
    }

    func appointment(_ id: String) async throws(RPCError) -> SchedulingV1.Appointment {
        let current = try snapshot()
        guard let appointment = current.appointments[id] else { throw RPCError.notFound("appointment \(id) not found") }
        return appointment
    }

    func checkInCompliance(appointmentID: String) async throws(RPCError) -> SchedulingV1.CheckComplianceResponse {
        let current = try snapshot()
        guard current.appointments[appointmentID] != nil else { throw RPCError.notFound("appointment \(appointmentID) not found") }
        let violations = current.violations[appointmentID] ?? []
        return SchedulingV1.CheckComplianceResponse(compliant: violations.isEmpty, violations: violations, rulePackId: "cn-2026",
                                                    debtorTimeZone: "Asia/Shanghai")
    }

    func account(_ id: String) async throws(RPCError) -> AccountsV1.Account {
        let current = try snapshot()
        guard let account = current.accounts[id] else { throw RPCError.notFound("account \(id) not found") }
        return account
    }
}

/// A delivered effect as the outbox carries it (the service's `EffectEnvelope`, JSON with
/// sorted keys: the peer, the method's path, the encoded request in base64 and the effect
/// kind's number).
struct DeliveredEffect: Decodable, Sendable {
    let service: String
    let method: String
    let request: Data
    let kind: Int32

    /// Decodes `message`'s payload, after checking it has exactly the envelope's four keys.
    init(_ message: OutboxMessage) throws {
        let object = try JSONSerialization.jsonObject(with: Data(message.payload)) as? [String: Any]
        let keys = Set(object.map { Array($0.keys) } ?? [])
        #expect(keys == ["service", "method", "request", "kind"], "\(keys.sorted())")
        self = try JSONDecoder().decode(DeliveredEffect.self, from: Data(message.payload))
    }
}

/// SHA-256 of `bytes` (swift-crypto), to check the chain's hashes independently.
func sha256(_ bytes: [UInt8]) -> [UInt8] {
    Array(SHA256.hash(data: bytes))
}
