import Events
import Foundation
import Logging
import Models
import RPC
import RPCWire
import ServiceAuth
import ServiceKit
import ServiceTestSupport
import Storage
import TestSupport
import Testing
import Webhooks
@testable import AccountsService

private typealias A = AccountsV1.AccountsService

/// The accounts service with its webhook subscriptions (the RPCs merged into its definition,
/// the delivery running beside it) on a real server and database, the settings the test gives.
final class WebhookHarness: Sendable {
    let accounts: AccountsHarness
    let webhooks: Webhooks
    let delivery: Task<Void, Never>
    let served: ServedService
    let issuer: TokenIssuer
    var client: GRPCClient { served.client }

    init(settings: WebhookSettings) async throws {
        accounts = try await AccountsHarness()
        let key = DataCipher(key: try DataCipher.loadKey(path: accounts.directory.appendingPathComponent("webhook.key").path, create: true).key)
        let clock = accounts.clock
        let service = AccountsService(database: accounts.database, cipher: key, clock: ServiceClock { clock.now })
        webhooks = Webhooks(database: accounts.database, events: service.store.events, cipher: key, settings: settings,
                            clock: ServiceClock { clock.now })
        var definition = service.definition
        definition.merge(webhooks.definition(.accounts))
        var logger = Logger(label: "doorstep.test.webhooks")
        logger.logLevel = ProcessInfo.processInfo.environment["DOORSTEP_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        let signing = try SigningKey.generate()
        issuer = TokenIssuer(key: signing)
        served = try await ServedService.start(definition, authenticator: try await TokenVerifier(key: signing), logger: logger)
        let worker = webhooks.delivery(logger: logger, pollInterval: .milliseconds(50))
        delivery = Task { try? await worker.run() }
    }

    /// Settings for a receiver on 127.0.0.1 over http, `maxAttempts` failures before pausing, 1 s between attempts.
    static func local(maxAttempts: Int = 20) -> WebhookSettings {
        var settings = WebhookSettings()
        settings.allowHTTP = true
        settings.allowPrivateAddresses = true
        settings.maxAttempts = maxAttempts
        settings.maxBackoff = .seconds(1)
        settings.requestTimeout = .seconds(2)
        return settings
    }

    func close() async {
        delivery.cancel()
        _ = await delivery.value
        await served.close()
        await accounts.close()
    }

    func metadata(_ role: Caller.Role = .platform) async throws -> Metadata {
        ["authorization": "Bearer \(try await issuer.token(for: Caller(role: role, subject: "test-\(role.rawValue)")))"]
    }

    func create(_ url: String, types: [String] = [], secret: String = "", afterCursor: String = "", requestID: String = "sub-1",
                role: Caller.Role = .platform) async throws -> TypeV1.CreateSubscriptionResponse {
        try await client.unary(A.createSubscription, .init(requestId: requestID, url: url, types: types, secret: secret,
                                                           afterCursor: afterCursor), metadata: try await metadata(role))
    }

    func get(_ id: String) async throws -> TypeV1.WebhookSubscription {
        try await client.unary(A.getSubscription, .init(subscriptionId: id), metadata: try await metadata())
    }

    /// Every event of the accounts log, oldest first.
    func log() async throws -> [TypeV1.Event] {
        let events = EventLog(source: "/doorstep/accounts")
        return try await accounts.database.read { db in try events.events(db, after: 0, types: .all, limit: 10_000) }
    }

    /// Waits (up to `seconds`) until `condition` holds; false if it never did (a throw counts as not yet).
    func eventually(seconds: Double = 20, _ condition: () async throws -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return (try? await condition()) == true
    }
}

/// What a receiver got, as the tests check it.
extension TestHTTPServer.Request {
    var webhookID: String { headers["webhook-id"] ?? "" }
    var acknowledged: Bool { (200..<300).contains(status) }

    /// Whether the signature is the HMAC of this request's timestamp and body under `secret`.
    func signed(with secret: String) -> Bool {
        guard let timestamp = headers["webhook-timestamp"].flatMap(Int64.init) else { return false }
        return headers["webhook-signature"] == WebhookSignature.header(secret: secret, timestamp: timestamp, body: Array(body.utf8))
    }
}

@Suite("Accounts webhooks: signed, ordered, at-least-once delivery; retries, pause, resume; refusals", .serialized)
struct AccountWebhooksTests {
    @Test("a subscription gets every event after it, in log order, each once, signed; its state says how far it is",
          .timeLimit(.minutes(1)))
    func deliversInOrder() async throws {
        let receiver = try await TestHTTPServer.start(statuses: [])
        let harness = try await WebhookHarness(settings: WebhookHarness.local())
        let created = try await harness.create("http://127.0.0.1:\(receiver.port)/hooks/doorstep")
        let subscription = try #require(created.subscription)
        #expect(created.secret.hasPrefix("whsec_") && created.secret.count > 40)
        #expect(subscription.state == .active && subscription.cursor == "0")
        let account = try await harness.accounts.openAccount()
        _ = try await harness.accounts.pay(account, 150_000, requestID: "pay-1")
        _ = try await harness.accounts.pay(account, 50_000, requestID: "pay-2")
        let log = try await harness.log()
        #expect(log.count >= 3)
        #expect(await harness.eventually { receiver.requests.count >= log.count })
        let requests = receiver.requests
        // The log, event for event, in its order, each once.
        #expect(requests.map(\.webhookID) == log.map(\.id))
        // The body is the CloudEvent (JSON objects compared as objects: member order is free).
        func object(_ text: String) -> NSDictionary? {
            (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? NSDictionary
        }
        #expect(requests.map { object($0.body) } == log.map { object($0.cloudEventJSON) })
        #expect(requests.allSatisfy { object($0.body)?["cursor"] != nil && object($0.body)?["data"] is NSDictionary })
        #expect(requests.allSatisfy { $0.method == "POST" && $0.uri == "/hooks/doorstep" && $0.contentType == "application/cloudevents+json" })
        #expect(requests.allSatisfy { $0.signed(with: created.secret) })
        #expect(!requests.contains { $0.signed(with: created.secret + "x") })
        #expect(requests.allSatisfy { $0.headers["webhook-timestamp"] == String(harness.accounts.clock.now / 1000) })
        // Delivery state: at the log's end, nothing pending, never failed.
        #expect(await harness.eventually { try await harness.get(subscription.id).cursor == log.last?.cursor })
        let state = try await harness.get(subscription.id)
        #expect(state.pendingEvents == 0 && state.failedAttempts == 0 && state.lastError.isEmpty)
        #expect(state.lastDeliveredMs == harness.accounts.clock.now)
        // A retry of the create: the same subscription and secret, no second one.
        let again = try await harness.create("http://127.0.0.1:\(receiver.port)/hooks/doorstep")
        #expect(again.subscription?.id == subscription.id && again.secret == created.secret)
        let listed = try await harness.client.unary(A.listSubscriptions, .init(), metadata: try await harness.metadata(.compliance))
        #expect(listed.subscriptions.map(\.id) == [subscription.id])
        // The secret is never returned after the create: not in Get, not in List.
        let getBytes = try state.encode()
        let listBytes = try listed.encode()
        #expect(!getBytes.containsSequence(Array(created.secret.utf8)) && !listBytes.containsSequence(Array(created.secret.utf8)))
        await harness.close()
        try await receiver.stop()
    }

    @Test("a receiver that refuses connections, then answers 503, is retried and paused; resumed, it gets the rest, nothing twice",
          .timeLimit(.minutes(2)))
    func downPausedResumed() async throws {
        var receiver = try await TestHTTPServer.start(statuses: [])
        let port = receiver.port
        try await receiver.stop()  // down: connections refused
        let harness = try await WebhookHarness(settings: WebhookHarness.local(maxAttempts: 4))
        let secret = "a-caller-chosen-secret-1234"
        let created = try await harness.create("http://127.0.0.1:\(port)/in", secret: secret)
        #expect(created.secret == secret)
        let id = try #require(created.subscription).id
        let account = try await harness.accounts.openAccount()
        #expect(await harness.eventually { try await harness.get(id).failedAttempts >= 1 })
        let refused = try await harness.get(id)
        #expect(refused.state == .active && !refused.lastError.isEmpty && refused.lastAttemptMs > 0 && refused.pendingEvents > 0)
        #expect(refused.cursor == "0")
        // Up again but failing with 503: retried with backoff until the limit, then PAUSED.
        receiver = try await TestHTTPServer.start(statuses: [], port: port)
        receiver.answer(503)
        #expect(await harness.eventually(seconds: 30) { try await harness.get(id).state == .paused })
        let paused = try await harness.get(id)
        #expect(paused.failedAttempts == 4)
        #expect(paused.lastError == "HTTP 503")
        #expect(paused.pausedReason == "receiver failed 4 times in a row: HTTP 503")
        #expect(paused.cursor == "0")
        let firstID = try await harness.log().first?.id
        #expect(!receiver.requests.isEmpty && receiver.requests.allSatisfy { $0.webhookID == firstID && !$0.acknowledged })
        // Paused: more happens, nothing is sent.
        receiver.answer(200)
        _ = try await harness.accounts.pay(account, 100_000, requestID: "pay-1")
        let attemptsWhilePaused = receiver.requests.count
        try await Task.sleep(for: .milliseconds(700))
        #expect(receiver.requests.count == attemptsWhilePaused)
        // Resumed: from the cursor, every event in order, each acknowledged exactly once.
        let resumed = try await harness.client.unary(A.resumeSubscription, .init(requestId: "resume-1", subscriptionId: id),
                                                     metadata: try await harness.metadata())
        #expect(resumed.state == .active && resumed.failedAttempts == 0 && resumed.pausedReason.isEmpty)
        let log = try await harness.log()
        #expect(await harness.eventually { receiver.requests.filter(\.acknowledged).count >= log.count })
        let acknowledged = receiver.requests.filter(\.acknowledged)
        #expect(acknowledged.map(\.webhookID) == log.map(\.id))
        #expect(acknowledged.allSatisfy { $0.signed(with: secret) })
        #expect(await harness.eventually { try await harness.get(id).cursor == log.last?.cursor })
        #expect(try await harness.get(id).lastError == "HTTP 503")  // kept as history
        try await Task.sleep(for: .milliseconds(300))
        #expect(receiver.requests.filter(\.acknowledged).count == log.count)  // no duplicate after a clean resume
        await harness.close()
        try await receiver.stop()
    }

    @Test("a type filter delivers only its types; a paused or deleted subscription gets nothing more", .timeLimit(.minutes(1)))
    func filterPauseDelete() async throws {
        let receiver = try await TestHTTPServer.start(statuses: [])
        let harness = try await WebhookHarness(settings: WebhookHarness.local())
        let created = try await harness.create("http://127.0.0.1:\(receiver.port)/", types: ["doorstep.accounts.account.payment_recorded"])
        let subscription = try #require(created.subscription)
        let account = try await harness.accounts.openAccount()
        _ = try await harness.accounts.pay(account, 10_000, requestID: "pay-1")
        _ = try await harness.accounts.pay(account, 20_000, requestID: "pay-2")
        #expect(await harness.eventually { receiver.requests.count >= 2 })
        let payments = try await harness.log().filter { $0.type == "doorstep.accounts.account.payment_recorded" }
        #expect(payments.count == 2)
        #expect(receiver.requests.map(\.webhookID) == payments.map(\.id))
        let id = subscription.id
        let paused = try await harness.client.unary(A.pauseSubscription, .init(requestId: "pause-1", subscriptionId: id, reason: "maintenance"),
                                                    metadata: try await harness.metadata())
        #expect(paused.state == .paused && paused.pausedReason == "maintenance")
        _ = try await harness.accounts.pay(account, 30_000, requestID: "pay-3")
        try await Task.sleep(for: .milliseconds(500))
        #expect(receiver.requests.count == 2)
        #expect(try await harness.get(id).pendingEvents == 1)
        let deleted = try await harness.client.unary(A.deleteSubscription, .init(requestId: "delete-1", subscriptionId: id),
                                                     metadata: try await harness.metadata())
        #expect(deleted.id == id)
        let gone = await #expect(throws: RPCError.self) { _ = try await harness.get(id) }
        #expect(gone?.code == .notFound)
        let resumeGone = await #expect(throws: RPCError.self) {
            _ = try await harness.client.unary(A.resumeSubscription, .init(requestId: "resume-1", subscriptionId: id),
                                               metadata: try await harness.metadata())
        }
        #expect(resumeGone?.code == .notFound)
        _ = try await harness.accounts.pay(account, 40_000, requestID: "pay-4")
        try await Task.sleep(for: .milliseconds(500))
        #expect(receiver.requests.count == 2)
        await harness.close()
        try await receiver.stop()
    }

    @Test("a subscription behind what the retention purged is paused with the reason, not skipped ahead; resumed, it continues with the oldest kept event",
          .timeLimit(.minutes(1)))
    func purgedBehind() async throws {
        let receiver = try await TestHTTPServer.start(statuses: [])
        let harness = try await WebhookHarness(settings: WebhookHarness.local())
        let created = try await harness.create("http://127.0.0.1:\(receiver.port)/", afterCursor: "0")
        let id = try #require(created.subscription).id
        _ = try await harness.client.unary(A.pauseSubscription, .init(requestId: "pause-1", subscriptionId: id, reason: "receiver moving"),
                                           metadata: try await harness.metadata())
        _ = try await harness.accounts.openAccount("1")
        harness.accounts.clock.advance(91 * 86_400_000)
        let kept = try await harness.accounts.openAccount("2")
        let purged = try await harness.accounts.database.write { db in
            try AccountsStore.eventLog.purge(db, olderThanMs: harness.accounts.clock.now - 90 * 86_400_000, batch: 1000)
        }
        #expect(purged > 0)
        // Active again with its cursor behind the purge: the delivery pauses it and says why.
        try await harness.accounts.database.write { db in
            try db.execute(sql: "UPDATE webhook_subscriptions SET state = 1 WHERE id = ?", arguments: [id])
        }
        #expect(await harness.eventually { try await harness.get(id).state == .paused })
        #expect(try await harness.get(id).pausedReason.contains("purged"))
        #expect(receiver.requests.isEmpty)
        // Resumed: from the oldest kept event, the second account's.
        _ = try await harness.client.unary(A.resumeSubscription, .init(requestId: "resume-1", subscriptionId: id),
                                           metadata: try await harness.metadata())
        let log = try await harness.log()
        #expect(await harness.eventually { receiver.requests.count >= log.count })
        #expect(receiver.requests.map(\.webhookID) == log.map(\.id))
        #expect(log.allSatisfy { $0.subject == "accounts/\(kept.id)" })
        await harness.close()
        try await receiver.stop()
    }

    @Test("a service keeps at most 100 subscriptions: the 101st is RESOURCE_EXHAUSTED until one is deleted", .timeLimit(.minutes(1)))
    func subscriptionLimit() async throws {
        let harness = try await WebhookHarness(settings: WebhookHarness.local())
        var ids: [String] = []
        for n in 0..<100 {
            ids.append(try #require(try await harness.create("http://127.0.0.1:9/\(n)", requestID: "sub-\(n)").subscription).id)
        }
        let refused = await #expect(throws: RPCError.self) { _ = try await harness.create("http://127.0.0.1:9/x", requestID: "sub-x") }
        #expect(refused?.code == .resourceExhausted, "\(String(describing: refused))")
        _ = try await harness.client.unary(A.deleteSubscription, .init(requestId: "delete-0", subscriptionId: ids[0]),
                                           metadata: try await harness.metadata())
        #expect(try await harness.create("http://127.0.0.1:9/x", requestID: "sub-x").subscription != nil)
        await harness.close()
    }

    @Test("refused without the operator's flags: http, loopback, private, link-local, shared and unresolvable hosts; bad fields; roles",
          .timeLimit(.minutes(1)))
    func refusals() async throws {
        let harness = try await WebhookHarness(settings: .defaults)
        func refusal(_ url: String, types: [String] = [], secret: String = "", afterCursor: String = "",
                     role: Caller.Role = .platform) async -> RPCError? {
            do {
                _ = try await harness.create(url, types: types, secret: secret, afterCursor: afterCursor,
                                             requestID: "r-\(UInt32.random(in: 0...UInt32.max))", role: role)
                return nil
            } catch {
                return error as? RPCError
            }
        }
        let cases: [(String, String)] = [
            ("http://example.com/hook", "url: must be https:// (this service does not allow http:// receivers)"),
            ("ftp://example.com/hook", "url: must be https://, not ftp://"),
            ("https://127.0.0.1/hook", "url: 127.0.0.1 is a loopback address; webhooks go to public addresses only"),
            ("https://10.1.2.3/hook", "url: 10.1.2.3 is a private address; webhooks go to public addresses only"),
            ("https://192.168.0.10:8443/hook", "url: 192.168.0.10 is a private address; webhooks go to public addresses only"),
            ("https://[::1]/hook", "url: ::1 is a loopback address; webhooks go to public addresses only"),
            ("https://[fe80::1]/hook", "url: fe80::1 is a link-local address; webhooks go to public addresses only"),
            ("https://169.254.169.254/latest/meta-data", "url: 169.254.169.254 is a link-local address; webhooks go to public addresses only"),
            ("https://100.64.0.1/", "url: 100.64.0.1 is a shared (carrier-grade NAT) address; webhooks go to public addresses only"),
            ("https://[::ffff:127.0.0.1]/", "url: ::ffff:127.0.0.1 is a loopback address; webhooks go to public addresses only"),
            ("https://localhost/hook", "url: host localhost resolves to"),
            ("https://user:pw@example.com/", "url: must not carry user information (authenticate the sender by the signature)"),
            ("not a url", "url: 'not a url' is not an absolute URL with a host"),
            ("", "url: required"),
        ]
        for (url, message) in cases {
            let error = await refusal(url)
            #expect(error?.code == .invalidArgument, "\(url)")
            #expect(error?.message.hasPrefix(message) == true, "\(url): \(error?.message ?? "accepted")")
        }
        // A public address literal passes the address check (the secret is what is refused here).
        #expect(await refusal("https://93.184.215.14/hook", secret: "short")?.message
                == "secret: must be 16-256 printable ASCII characters without spaces (or empty: one is generated)")
        #expect(await refusal("https://93.184.215.14/hook", types: ["Not A Type"])?.message.hasPrefix("types: types[0]") == true)
        #expect(await refusal("https://93.184.215.14/hook", afterCursor: "x")?.code == .invalidArgument)
        #expect(await refusal("https://93.184.215.14/hook", afterCursor: "99")?.code == .outOfRange)
        #expect(await refusal("https://93.184.215.14/hook", role: .compliance)?.code == .permissionDenied)
        #expect(await refusal("https://93.184.215.14/hook", role: .service)?.code == .permissionDenied)
        #expect(await refusal("https://93.184.215.14/hook") == nil)
        await harness.close()
    }
}

/// The address policy and the signature, without a service.
@Suite("Webhook address classification and signature")
struct WebhookPolicyTests {
    @Test("non-public addresses are classified by range, IPv4 and IPv6 (mapped, NAT64 and 6to4 by the IPv4 inside)",
          arguments: [
              ("0.0.0.0", "unspecified"), ("0.1.2.3", "reserved or documentation"), ("127.0.0.1", "loopback"), ("127.255.255.254", "loopback"),
              ("10.0.0.1", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"), ("192.168.1.1", "private"),
              ("100.64.0.1", "shared (carrier-grade NAT)"), ("100.127.255.255", "shared (carrier-grade NAT)"),
              ("169.254.169.254", "link-local"), ("224.0.0.1", "multicast"), ("255.255.255.255", "reserved or documentation"),
              ("192.0.2.1", "reserved or documentation"), ("198.18.0.1", "reserved or documentation"),
              ("::", "unspecified"), ("::1", "loopback"), ("fe80::1", "link-local"), ("febf::1", "link-local"), ("fc00::1", "private"),
              ("fdff::1", "private"), ("ff02::1", "multicast"), ("::ffff:10.0.0.1", "private"), ("::ffff:8.8.8.8", "-"),
              ("64:ff9b::127.0.0.1", "loopback"), ("2002:7f00:1::", "loopback"), ("2001:db8::1", "reserved or documentation"),
              // Just outside the ranges: public.
              ("172.15.255.255", "-"), ("172.32.0.0", "-"), ("100.63.255.255", "-"), ("100.128.0.0", "-"), ("169.253.255.255", "-"),
              ("11.0.0.0", "-"), ("8.8.8.8", "-"), ("2606:4700::1111", "-"), ("fec0::1", "private"), ("fbff::1", "-"),
          ])
    func classification(address: String, expected: String) throws {
        let parsed = try #require(IPAddress(address))
        #expect((parsed.nonPublicKind?.rawValue ?? "-") == expected)
    }

    @Test("an address round-trips through its text form; a non-address is not one")
    func literals() {
        #expect(IPAddress("2001:db8::1")?.description == "2001:db8::1")
        #expect(IPAddress("10.20.30.40")?.description == "10.20.30.40")
        #expect(IPAddress("example.com") == nil && IPAddress("256.1.1.1") == nil)
    }

    @Test("the signature is the hex HMAC-SHA256 of \"<timestamp>.<body>\" (a vector computed with Python's hmac)")
    func signatureVector() {
        let header = WebhookSignature.header(secret: "whsec_test-secret-0123456789", timestamp: 1_767_225_600, body: Array(#"{"id":"evt_1"}"#.utf8))
        #expect(header == "v1=afaf43bb85f7d5f9a056c302e5ed2701d8c5a9601a707105b98a9c7b4a5574e2")
    }

    @Test("the first webhook key a database sees is its key: the same key again passes, another is refused")
    func keyCheck() async throws {
        var migrations = SQLDatabase.Migrations()
        Webhooks.addMigrations(to: &migrations)
        let directory = try makeTemporaryDirectory()
        let database = try await TestDatabase.open(file: "webhooks.sqlite", in: directory, migrations: migrations,
                                                   logger: Logger(label: "doorstep.test.webhooks"))
        let first = DataCipher(key: try DataCipher.loadKey(path: directory.appendingPathComponent("a.key").path, create: true).key)
        let other = DataCipher(key: try DataCipher.loadKey(path: directory.appendingPathComponent("b.key").path, create: true).key)
        #expect(try await Webhooks.verifyKey(first, database: database))
        #expect(try await Webhooks.verifyKey(first, database: database))
        #expect(try await Webhooks.verifyKey(other, database: database) == false)
        await database.close()
    }
}

extension [UInt8] {
    func containsSequence(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return needle.isEmpty }
        return (0...(count - needle.count)).contains { Array(self[$0..<($0 + needle.count)]) == needle }
    }
}
