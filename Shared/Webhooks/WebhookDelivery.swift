import AsyncHTTPClient
import Events
import Foundation
import Logging
import Metrics
import Models
import NIOCore
import ServiceKit
import ServiceLifecycle
import Storage
import Synchronization

/// When each failing subscription may be tried again (in this process; a replica that takes
/// delivery over tries at once). A subscription whose stored failure count is 0 (delivered,
/// or resumed) is never held back.
final class RetrySchedule: Sendable {
    private let notBefore = Mutex<[String: ContinuousClock.Instant]>([:])

    func hold(_ id: String, until instant: ContinuousClock.Instant) { notBefore.withLock { $0[id] = instant } }
    func clear(_ id: String) { _ = notBefore.withLock { $0.removeValue(forKey: id) } }
    func isDue(_ id: String, now: ContinuousClock.Instant) -> Bool { notBefore.withLock { $0[id].map { $0 <= now } ?? true } }
}

/// POSTs a service's events to its ACTIVE subscriptions (docs/EVENTS.md ("Webhooks")).
///
/// One replica delivers at a time: each round takes the job lease `webhook-delivery` (30 s).
/// A round reads the active subscriptions and serves each at once, side by side: the events of
/// its types after its cursor, oldest first, one POST per event, the cursor advanced after each
/// 2xx — so in the log's order, hence in order per subject. A failure (a status other than
/// 2xx, a connection error or timeout, a refused address) stops that subscription's round and
/// holds it back 1 s, doubling per failure up to `maxBackoff`; after `maxAttempts` failures in
/// a row it is PAUSED with the reason, and ResumeSubscription continues after its cursor.
/// Rounds start when this process commits events and every `pollInterval` otherwise.
///
/// Each POST first checks the URL again (the host must still resolve to allowed addresses)
/// and connects to the address it checked. Redirects are not followed (a 3xx is a failure).
///
/// Metrics: `doorstep_webhook_deliveries_total{result="ok"|"failed"}`,
/// `doorstep_webhook_subscriptions_paused` (subscriptions PAUSED, after each round).
public struct WebhookDelivery: Service {
    let webhooks: Webhooks
    let logger: Logger
    let pollInterval: Duration
    /// Events one subscription's round sends at most before the next round (others' turn
    /// comes in parallel anyway; this bounds how long the lease is relied on).
    let roundLimit = 200

    public func run() async throws {
        let ok = Counter(label: "doorstep_webhook_deliveries_total", dimensions: [("result", "ok")])
        let failed = Counter(label: "doorstep_webhook_deliveries_total", dimensions: [("result", "failed")])
        let paused = Gauge(label: "doorstep_webhook_subscriptions_paused")
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let (database, now) = (webhooks.database, webhooks.clock.nowMs())
                let holder = ReplicaIdentity.current
                if try await database.write(isolation: .rowLocks, { db in
                    try JobLease.acquire(db, name: "webhook-delivery", holder: holder, nowMs: now, untilMs: now + 30_000)
                }) {
                    let subscriptions = try await database.read { db in try WebhookSubscriptionStore.active(db) }
                    let instant = ContinuousClock.now
                    await withTaskGroup(of: Void.self) { group in
                        for subscription in subscriptions
                        where subscription.failedAttempts == 0 || webhooks.retries.isDue(subscription.id, now: instant) {
                            group.addTask { await round(subscription, ok: ok, failed: failed) }
                        }
                    }
                    paused.record(try await database.read { db in try WebhookSubscriptionStore.pausedCount(db) })
                }
            } catch {
                logger.warning("webhook delivery round failed", metadata: ["error": "\(error)"])
            }
            await cancelWhenGracefulShutdown { await webhooks.log.waitForEvents(timeout: pollInterval) }
        }
    }

    /// One subscription's round: sends what is pending, up to ``roundLimit`` events, until
    /// the first failure.
    func round(_ subscription: StoredSubscription, ok: Counter, failed: Counter) async {
        let (database, log, id) = (webhooks.database, webhooks.log, subscription.id)
        let filter = subscription.filter
        let cursor = subscription.deliveredSeq
        let events: [TypeV1.Event]
        let horizon: Int64
        do {
            (horizon, events) = try await database.read { db in
                (try log.purgedThrough(db), try log.events(db, after: cursor, types: filter, limit: roundLimit))
            }
        } catch {
            logger.warning("webhook delivery: cannot read events", metadata: ["subscription-id": "\(id)", "error": "\(error)"])
            return
        }
        // Events after its cursor were purged before it got them (a receiver down for longer
        // than the log keeps them): never skip ahead silently; pause with the reason.
        guard cursor >= horizon else {
            let reason = "the events after its cursor \(cursor) up to \(horizon) were purged before delivery (--events-retention-days); "
                + "ResumeSubscription continues with the oldest kept event"
            do {
                try await database.write(isolation: .rowLocks) { db in try WebhookSubscriptionStore.pause(db, id: id, reason: reason) }
                logger.warning("webhook subscription paused: events it had not received were purged", metadata: [
                    "subscription-id": "\(id)", "cursor": "\(cursor)", "purged-through": "\(horizon)"])
            } catch {
                logger.warning("webhook delivery: cannot pause", metadata: ["subscription-id": "\(id)", "error": "\(error)"])
            }
            return
        }
        guard !events.isEmpty else { return }
        let secret: String
        do {
            secret = String(decoding: try webhooks.cipher.open(subscription.sealedSecret, context: Webhooks.secretContext(id)), as: UTF8.self)
        } catch {
            await fail(subscription, "the secret does not open with this service's webhook key", failed: failed)
            return
        }
        let target: WebhookTarget
        do {
            target = try await webhooks.policy.check(subscription.url)
        } catch {
            await fail(subscription, "url refused: \(error.message)", failed: failed)
            return
        }
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        let timeout = TimeAmount.milliseconds(webhooks.settings.requestTimeout.milliseconds)
        configuration.timeout = .init(connect: .seconds(5), read: timeout)
        if let pinned = target.pinnedAddress { configuration.dnsOverride = [target.host: pinned] }
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        defer { Task { try? await client.shutdown() } }
        for event in events {
            let body = Array(event.cloudEventJSON.utf8)
            let timestamp = webhooks.clock.nowMs() / 1000
            var request = HTTPClientRequest(url: subscription.url)
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/cloudevents+json")
            request.headers.add(name: "webhook-id", value: event.id)
            request.headers.add(name: "webhook-timestamp", value: String(timestamp))
            request.headers.add(name: "webhook-signature", value: WebhookSignature.header(secret: secret, timestamp: timestamp, body: body))
            request.body = .bytes(ByteBuffer(bytes: body))
            var problem: String?
            do {
                let response = try await client.execute(request, timeout: timeout)
                _ = try? await response.body.collect(upTo: 64 * 1024)
                if !(200..<300).contains(response.status.code) { problem = "HTTP \(response.status.code)" }
            } catch {
                problem = "\(error)"
            }
            if let problem {
                await fail(subscription, problem, failed: failed)
                return
            }
            ok.increment()
            guard let seq = Int64(event.cursor) else { return }
            let now = webhooks.clock.nowMs()
            do {
                let moved = try await database.write(isolation: .rowLocks) { db in
                    try WebhookSubscriptionStore.delivered(db, id: id, seq: seq, nowMs: now)
                }
                guard moved else { return }  // deleted or paused meanwhile
            } catch {
                logger.warning("webhook delivery: cannot record a delivery", metadata: ["subscription-id": "\(id)", "error": "\(error)"])
                return
            }
            webhooks.retries.clear(id)
        }
    }

    /// Records a failed attempt: holds the subscription back, or pauses it at the limit.
    func fail(_ subscription: StoredSubscription, _ problem: String, failed: Counter) async {
        failed.increment()
        let settings = webhooks.settings
        let now = webhooks.clock.nowMs()
        let id = subscription.id
        do {
            let outcome = try await webhooks.database.write(isolation: .rowLocks) { db in
                try WebhookSubscriptionStore.failed(db, id: id, error: problem, nowMs: now, maxAttempts: settings.maxAttempts) { attempts in
                    Self.backoff(attempts: attempts, max: settings.maxBackoff).milliseconds
                }
            }
            guard let outcome else { return }
            if outcome.paused {
                webhooks.retries.clear(id)
                logger.warning("webhook subscription paused: its receiver failed too often", metadata: [
                    "subscription-id": "\(id)", "attempts": "\(outcome.attempts)", "error": "\(problem)"])
            } else {
                let backoff = Self.backoff(attempts: outcome.attempts, max: settings.maxBackoff)
                webhooks.retries.hold(id, until: .now + backoff)
                logger.info("webhook delivery failed; will retry", metadata: [
                    "subscription-id": "\(id)", "attempts": "\(outcome.attempts)", "retry-in-ms": "\(backoff.milliseconds)",
                    "error": "\(problem)"])
            }
        } catch {
            logger.warning("webhook delivery: cannot record a failure", metadata: ["subscription-id": "\(id)", "error": "\(error)"])
        }
    }

    /// The wait after the `attempts`-th failure in a row: 1 s, doubling, at most `max`.
    static func backoff(attempts: Int, max: Duration) -> Duration {
        Swift.min(max, .seconds(1) * (1 << Swift.min(Swift.max(attempts - 1, 0), 20)))
    }
}
