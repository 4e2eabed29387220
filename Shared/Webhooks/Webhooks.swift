import Events
import Foundation
import Logging
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

/// The six webhook RPCs of one service (each service's proto declares them with the same
/// request and response types, doorstep.type.v1).
public struct WebhookMethods: Sendable {
    public var create: MethodDescriptor<TypeV1.CreateSubscriptionRequest, TypeV1.CreateSubscriptionResponse>
    public var get: MethodDescriptor<TypeV1.GetSubscriptionRequest, TypeV1.WebhookSubscription>
    public var list: MethodDescriptor<TypeV1.ListSubscriptionsRequest, TypeV1.ListSubscriptionsResponse>
    public var delete: MethodDescriptor<TypeV1.DeleteSubscriptionRequest, TypeV1.WebhookSubscription>
    public var pause: MethodDescriptor<TypeV1.PauseSubscriptionRequest, TypeV1.WebhookSubscription>
    public var resume: MethodDescriptor<TypeV1.ResumeSubscriptionRequest, TypeV1.WebhookSubscription>

    public static let accounts = WebhookMethods(
        create: AccountsV1.AccountsService.createSubscription, get: AccountsV1.AccountsService.getSubscription,
        list: AccountsV1.AccountsService.listSubscriptions, delete: AccountsV1.AccountsService.deleteSubscription,
        pause: AccountsV1.AccountsService.pauseSubscription, resume: AccountsV1.AccountsService.resumeSubscription)
    public static let scheduling = WebhookMethods(
        create: SchedulingV1.SchedulingService.createSubscription, get: SchedulingV1.SchedulingService.getSubscription,
        list: SchedulingV1.SchedulingService.listSubscriptions, delete: SchedulingV1.SchedulingService.deleteSubscription,
        pause: SchedulingV1.SchedulingService.pauseSubscription, resume: SchedulingV1.SchedulingService.resumeSubscription)
    public static let visits = WebhookMethods(
        create: VisitsV1.VisitsService.createSubscription, get: VisitsV1.VisitsService.getSubscription,
        list: VisitsV1.VisitsService.listSubscriptions, delete: VisitsV1.VisitsService.deleteSubscription,
        pause: VisitsV1.VisitsService.pauseSubscription, resume: VisitsV1.VisitsService.resumeSubscription)
}

/// Webhook subscriptions to one service's domain events (docs/EVENTS.md ("Webhooks")): the
/// RPCs that manage them (``definition(_:)``) and the delivery that POSTs the events
/// (``delivery(logger:pollInterval:)``). Each service hosts one over its own database and
/// event log; the subscriptions' secrets are sealed with the webhook key.
public struct Webhooks: Sendable {
    let database: SQLDatabase
    let log: EventLog
    let cipher: DataCipher
    let settings: WebhookSettings
    let clock: ServiceClock
    let policy: WebhookAddressPolicy
    let retries = RetrySchedule()

    public init(database: SQLDatabase, events: EventLog, cipher: DataCipher, settings: WebhookSettings = .defaults,
                clock: ServiceClock = .system) {
        self.database = database
        self.log = events
        self.cipher = cipher
        self.settings = settings
        self.clock = clock
        self.policy = WebhookAddressPolicy(allowHTTP: settings.allowHTTP, allowPrivateAddresses: settings.allowPrivateAddresses)
    }

    /// Adds the `webhook-subscriptions-v1` migration (at the end of a service's list; the
    /// name never changes).
    public static func addMigrations(to migrations: inout SQLDatabase.Migrations) {
        WebhookSubscriptionStore.addMigrations(to: &migrations)
    }

    /// The key sealing the secrets: `settings.keyFile`, or `<dataDirectory>/webhook.key`,
    /// created (mode 0600) when absent.
    public static func loadKey(settings: WebhookSettings, dataDirectory: String, logger: Logger) throws(ConfigurationError) -> DataCipher {
        let path = settings.keyFile ?? dataDirectory + "/webhook.key"
        do {
            let loaded = try DataCipher.loadKey(path: path, create: settings.keyFile == nil)
            if loaded.created { logger.notice("generated the webhook key", metadata: ["key-file": "\(path)"]) }
            return DataCipher(key: loaded.key)
        } catch {
            throw ConfigurationError("webhook key: \(error.description)")
        }
    }

    /// Whether `cipher` holds the webhook key this database's secrets are sealed with: the
    /// first process to ask records a value sealed with its key; false for another key.
    public static func verifyKey(_ cipher: DataCipher, database: SQLDatabase) async throws -> Bool {
        let probe = Array("doorstep webhook key check".utf8)
        return try await database.write { db in
            if let sealed = try db.fetchValue(Data.self, sql: "SELECT sealed FROM webhook_key_check WHERE id = 'webhook-key'") {
                return (try? cipher.open(sealed, context: "webhook-key-check")) == probe
            }
            try db.execute(sql: "INSERT INTO webhook_key_check (id, sealed) VALUES ('webhook-key', ?)",
                           arguments: [try cipher.seal(probe, context: "webhook-key-check")])
            return true
        }
    }

    /// The delivery worker, to run beside the server (`ServiceSetup.background`).
    public func delivery(logger: Logger, pollInterval: Duration = .seconds(1)) -> WebhookDelivery {
        WebhookDelivery(webhooks: self, logger: logger, pollInterval: pollInterval)
    }

    /// The six RPCs: platform manages subscriptions, compliance reads them.
    public func definition(_ methods: WebhookMethods) -> ServiceDefinition {
        var definition = ServiceDefinition()
        definition.unary(methods.create, roles: [.platform]) { request, context in try await create(request, context) }
        definition.unary(methods.get, roles: [.platform, .compliance]) { request, _ in try await get(request) }
        definition.unary(methods.list, roles: [.platform, .compliance]) { request, _ in try await list(request) }
        definition.unary(methods.delete, roles: [.platform]) { request, context in
            try await change(request.subscriptionId, requestID: request.requestId, request: request, context) { db, id in
                try WebhookSubscriptionStore.delete(db, id: id)
            }
        }
        definition.unary(methods.pause, roles: [.platform]) { request, context in
            let reason = try Validate.text(request.reason, field: "reason", min: 1, max: 500)
            return try await change(request.subscriptionId, requestID: request.requestId, request: request, context) { db, id in
                try WebhookSubscriptionStore.pause(db, id: id, reason: reason)
            }
        }
        definition.unary(methods.resume, roles: [.platform]) { request, context in
            let log = self.log
            let subscription = try await change(request.subscriptionId, requestID: request.requestId, request: request, context) { db, id in
                try WebhookSubscriptionStore.resume(db, id: id, purgedThrough: try log.purgedThrough(db))
            }
            retries.clear(subscription.id)
            return subscription
        }
        return definition
    }

    // MARK: Handlers

    func create(_ request: TypeV1.CreateSubscriptionRequest, _ context: ServerContext) async throws -> TypeV1.CreateSubscriptionResponse {
        try Validate.requestID(request.requestId)
        do {
            _ = try await policy.check(request.url)
        } catch {
            throw RPCError.invalidArgument("url", error.message)
        }
        do {
            _ = try TypeFilter(parsing: request.types)
        } catch {
            throw RPCError.invalidArgument("types", error.message)
        }
        if !request.secret.isEmpty {
            guard (16...256).contains(request.secret.utf8.count), request.secret.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
                throw RPCError.invalidArgument("secret", "must be 16-256 printable ASCII characters without spaces (or empty: one is generated)")
            }
        }
        var parsedAfter: Int64?
        if !request.afterCursor.isEmpty {
            guard let value = Int64(request.afterCursor), value >= 0, String(value) == request.afterCursor else {
                throw RPCError.invalidArgument("after_cursor", "\"\(request.afterCursor.prefix(40))\" is not a cursor of this event log")
            }
            parsedAfter = value
        }
        let after = parsedAfter
        let now = clock.nowMs()
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let (log, cipher, url, types) = (self.log, self.cipher, request.url, request.types)
        let secret = request.secret.isEmpty ? WebhookSignature.newSecret() : request.secret
        let limit = Self.maxSubscriptions
        let subscription = try await Idempotency.perform(in: database, key: key, nowMs: now) { db in
            // Each subscription is a delivery of its own every round: a bounded number of them.
            let existing = try db.fetchValue(Int.self, sql: "SELECT COUNT(*) FROM webhook_subscriptions") ?? 0
            guard existing < limit else {
                throw RPCError(code: .resourceExhausted,
                               message: "this service has \(existing) webhook subscriptions, the most it keeps; delete one first")
            }
            let last = try log.lastCursor(db)
            if let after, after > last {
                throw RPCError(code: .outOfRange, message: "after_cursor: \(after) is beyond the end of this event log (\(last))")
            }
            let id = IDGenerator.make(prefix: "sub", nowMs: now)
            try WebhookSubscriptionStore.insert(db, id: id, url: url, types: types,
                                                sealedSecret: try cipher.seal(Array(secret.utf8), context: Self.secretContext(id)),
                                                deliveredSeq: after ?? last, nowMs: now)
            guard let stored = try WebhookSubscriptionStore.get(db, id: id) else { throw RPCError.internal("internal error") }
            return stored.proto(pending: try log.count(db, after: stored.deliveredSeq, types: stored.filter))
        }
        // A retry of the same request gets the same secret: the one stored.
        let stored = try await database.read { db in try WebhookSubscriptionStore.get(db, id: subscription.id) }
        let returned = try stored.map { String(decoding: try cipher.open($0.sealedSecret, context: Self.secretContext($0.id)), as: UTF8.self) }
        context.logger.notice("webhook subscription created", metadata: ["subscription-id": "\(subscription.id)", "url": "\(url)"])
        return TypeV1.CreateSubscriptionResponse(subscription: subscription, secret: returned ?? "")
    }

    func get(_ request: TypeV1.GetSubscriptionRequest) async throws -> TypeV1.WebhookSubscription {
        try Validate.resourceID(request.subscriptionId, field: "subscription_id", prefix: "sub")
        let (log, id) = (self.log, request.subscriptionId)
        return try await database.read { db in
            guard let stored = try WebhookSubscriptionStore.get(db, id: id) else { throw RPCError.notFound("subscription \(id) not found") }
            return stored.proto(pending: try log.count(db, after: stored.deliveredSeq, types: stored.filter))
        }
    }

    func list(_ request: TypeV1.ListSubscriptionsRequest) async throws -> TypeV1.ListSubscriptionsResponse {
        let size = try Validate.pageSize(request.pageSize, defaultSize: 100, max: 1000)
        var pageStart = ""
        if !request.pageToken.isEmpty {
            guard let data = Data(base64Encoded: request.pageToken), case let text = String(decoding: data, as: UTF8.self),
                  text.hasPrefix("sub-after:") else {
                throw RPCError.invalidArgument("page_token", "not a token of ListSubscriptions")
            }
            pageStart = String(text.dropFirst("sub-after:".count))
        }
        let (log, afterID) = (self.log, pageStart)
        let (page, more) = try await database.read { db in
            let rows = try WebhookSubscriptionStore.list(db, afterID: afterID, limit: size + 1)
            return (try rows.prefix(size).map { $0.proto(pending: try log.count(db, after: $0.deliveredSeq, types: $0.filter)) },
                    rows.count > size)
        }
        let token = more ? Data("sub-after:\(page.last?.id ?? "")".utf8).base64EncodedString() : ""
        return TypeV1.ListSubscriptionsResponse(subscriptions: page, nextPageToken: token)
    }

    /// Delete, pause or resume: idempotent by request id; returns the subscription as it was
    /// before a delete, as it is after the others.
    func change<Request: ProtoMessage>(_ id: String, requestID: String, request: Request, _ context: ServerContext,
                                       _ apply: @escaping @Sendable (SQLSession, String) throws -> Void) async throws -> TypeV1.WebhookSubscription {
        try Validate.requestID(requestID)
        try Validate.resourceID(id, field: "subscription_id", prefix: "sub")
        let now = clock.nowMs()
        let key = try Idempotency.Key(method: context.path, requestID: requestID, request: request, caller: context.callerKey)
        let log = self.log
        let subscription = try await Idempotency.perform(in: database, key: key, nowMs: now) { db in
            guard try WebhookSubscriptionStore.get(db, id: id) != nil else { throw RPCError.notFound("subscription \(id) not found") }
            let before = try WebhookSubscriptionStore.get(db, id: id)
            try apply(db, id)
            guard let stored = try WebhookSubscriptionStore.get(db, id: id) ?? before else { throw RPCError.internal("internal error") }
            return stored.proto(pending: try log.count(db, after: stored.deliveredSeq, types: stored.filter))
        }
        context.logger.notice("webhook subscription changed", metadata: [
            "subscription-id": "\(id)", "method": "\(context.path)", "state": "\(subscription.state.protoName ?? "")"])
        return subscription
    }

    /// The most subscriptions one service keeps (each is delivered side by side every round).
    static let maxSubscriptions = 100

    /// The authenticated data a secret is sealed with: a sealed secret copied to another
    /// subscription does not open.
    static func secretContext(_ id: String) -> String { "webhook-secret:\(id)" }
}
