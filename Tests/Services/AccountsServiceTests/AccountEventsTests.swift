import Events
import Foundation
import Logging
import Models
import RPC
import RPCWire
import ServiceKit
import ServiceTestSupport
import Testing
@testable import AccountsService

private typealias A = AccountsV1.AccountsService

/// WatchEvents of the accounts service: every timeline event is also a domain event
/// (CloudEvents, the timeline event as data), streamed in commit order from a cursor; a
/// consumer that reconnects after its last cursor misses nothing and sees nothing twice.
@Suite("Accounts events: WatchEvents from a cursor", .serialized,
       .enabled(if: ServedService.Transport.current == .loopback,
                "the in-process transport serves no open-ended streams read as they arrive"))
struct AccountEventsTests {
    /// Reads events from an open watch, `count` at a time.
    static func watch(_ harness: AccountsHarness, _ request: TypeV1.WatchEventsRequest,
                      role: Caller.Role = .platform) async throws -> EventStream {
        let agency = role == .agencyManager ? "agy_01JA0000000000000000000000" : nil
        return try await EventStream(harness.client, A.watchEvents, request, metadata: try await harness.metadata(role, agency: agency))
    }

    static func timeline(_ harness: AccountsHarness, _ accountID: String) async throws -> [AccountsV1.TimelineEvent] {
        try await harness.client.unary(A.getAccountTimeline, AccountsV1.GetAccountTimelineRequest(accountId: accountID, pageSize: 1000),
                                       metadata: try await harness.metadata(.platform)).events
    }

    @Test("the story's events arrive in commit order, each once; a reconnect after the last cursor resumes exactly there",
          .timeLimit(.minutes(1)))
    func watchAndResume() async throws {
        let harness = try await AccountsHarness()
        let watch = try await Self.watch(harness, .init())
        let account = try await harness.openAccount()
        _ = try await harness.pay(account, 150_000, requestID: "pay-1")
        let before = try await Self.timeline(harness, account.id)
        let received = try await watch.take(before.count)
        // The timeline, event for event: type, subject, id, both encodings.
        #expect(received.map(\.id) == before.map(\.id))
        #expect(try received.map { try AccountsV1.TimelineEvent(decoding: $0.data) } == before)
        #expect(try received.map { try AccountsV1.TimelineEvent(jsonText: $0.dataJson) } == before)
        #expect(received.map(\.type) == before.map { AccountsStore.eventType($0.eventType) })
        #expect(received.contains { $0.type == "doorstep.accounts.account.payment_recorded" })
        #expect(received.allSatisfy { $0.subject == "accounts/\(account.id)" && $0.source == "/doorstep/accounts"
                                      && $0.specVersion == "1.0" && $0.dataSchema == "doorstep.accounts.v1.TimelineEvent" })
        let cursors = received.map { Int64($0.cursor)! }
        #expect(cursors == cursors.sorted() && Set(cursors).count == cursors.count)
        watch.call.cancel()

        // Disconnected; more happens; a new watch after the last cursor gets exactly that.
        _ = try await harness.pay(account, 50_000, requestID: "pay-2")
        let after = try await Self.timeline(harness, account.id).dropFirst(before.count)
        let resumed = try await Self.watch(harness, .init(afterCursor: received.last!.cursor))
        #expect(try await resumed.take(after.count).map(\.id) == after.map(\.id))
        // Still open: the next commit arrives as it happens, and nothing came in between.
        _ = try await harness.pay(account, 10_000, requestID: "pay-3")
        let next = try await resumed.take(1)
        #expect(next.first?.type == "doorstep.accounts.account.payment_recorded")
        #expect(try next.first.map { try AccountsV1.TimelineEvent(decoding: $0.data).requestId } == "pay-3")
        resumed.call.cancel()

        // A type filter, and from_now.
        let payments = try await Self.watch(harness, .init(types: ["doorstep.accounts.account.payment_recorded"]))
        #expect(try await payments.take(3).compactMap { try AccountsV1.TimelineEvent(decoding: $0.data).requestId }
                == ["pay-1", "pay-2", "pay-3"])
        payments.call.cancel()
        let live = try await Self.watch(harness, .init(types: ["doorstep.accounts.account.*"], fromNow: true))
        let second = try await harness.openAccount("2")
        #expect(try await live.take(1).first?.subject == "accounts/\(second.id)")
        live.call.cancel()
        await harness.close()
    }

    @Test("a graceful shutdown ends an open watch at once with UNAVAILABLE, so the consumer reconnects; the drain does not wait for it",
          .timeLimit(.minutes(1)))
    func shutdownEndsWatch() async throws {
        let harness = try await AccountsHarness()
        _ = try await harness.openAccount()
        let watch = try await Self.watch(harness, .init())
        _ = try await watch.take(1)
        let shutdown = Task { await harness.served.shutdownServer() }
        var ending: RPCError?
        do {
            while try await watch.iterator.next() != nil {}
        } catch {
            ending = error as? RPCError
        }
        // Ended by the handler (its message), not cut off by the drain's timeout (30 s).
        #expect(ending?.code == .unavailable && ending?.message.contains("shutting down") == true, "\(String(describing: ending))")
        await shutdown.value
        await harness.close()
    }

    @Test("a consumer whose cursor is behind what the retention purged is told (OUT_OF_RANGE), never skipped ahead; an empty cursor starts at the oldest kept event",
          .timeLimit(.minutes(1)))
    func purgedCursor() async throws {
        let harness = try await AccountsHarness()
        let first = try await harness.openAccount("1")
        let early = try await Self.watch(harness, .init()).take(1)
        harness.clock.advance(91 * 86_400_000)
        let second = try await harness.openAccount("2")
        // The retention job's pass, as it runs hourly with --events-retention-days 90.
        let purged = try await EventLogRetention(log: AccountsStore.eventLog, database: harness.database,
                                                 clock: ServiceClock { harness.clock.now }, logger: Logger(label: "test"), days: 90).purgeOnce()
        #expect(purged == (try await Self.timeline(harness, first.id)).count)
        let refused = await #expect(throws: RPCError.self) {
            _ = try await Self.watch(harness, .init(afterCursor: early[0].cursor)).take(1)
        }
        #expect(refused?.code == .outOfRange && refused?.message.contains("purged") == true, "\(String(describing: refused))")
        let fresh = try await Self.watch(harness, .init()).take(1)
        #expect(fresh.first?.subject == "accounts/\(second.id)")
        await harness.close()
    }

    @Test("a filtered stream that keeps up is not cut off when the purge passes its last event: it moved past the events it filtered out",
          .timeLimit(.minutes(1)))
    func filteredStreamSurvivesPurge() async throws {
        let harness = try await AccountsHarness()
        let payments = try await Self.watch(harness, .init(types: ["doorstep.accounts.account.payment_recorded"]))
        let first = try await harness.openAccount("1")
        _ = try await harness.pay(first, 10_000, requestID: "pay-1")
        #expect(try await payments.take(1).count == 1)
        // Old events after the stream's last payment, which it filters out: the purge passes
        // that payment's cursor.
        _ = try await harness.openAccount("3")
        harness.clock.advance(91 * 86_400_000)
        let second = try await harness.openAccount("2")
        // The stream looks at the new account's events (filtered out) as they commit (it is woken
        // at once; 2 s is eight of its polls).
        try await Task.sleep(for: .seconds(2))
        let purged = try await EventLogRetention(log: AccountsStore.eventLog, database: harness.database,
                                                 clock: ServiceClock { harness.clock.now }, logger: Logger(label: "test"), days: 90).purgeOnce()
        #expect(purged > 0)
        _ = try await harness.pay(second, 20_000, requestID: "pay-2")
        let next = try await payments.take(1)
        #expect(try next.first.map { try AccountsV1.TimelineEvent(decoding: $0.data).requestId } == "pay-2")
        payments.call.cancel()
        await harness.close()
    }

    @Test("refusals: a malformed cursor or type, a cursor beyond the log, from_now with a cursor, a role that may not watch",
          .timeLimit(.minutes(1)))
    func refusals() async throws {
        let harness = try await AccountsHarness()
        _ = try await harness.openAccount()
        func refusal(_ request: TypeV1.WatchEventsRequest, role: Caller.Role = .platform) async -> RPCError? {
            do {
                let watch = try await Self.watch(harness, request, role: role)
                _ = try await watch.take(1)
                watch.call.cancel()
                return nil
            } catch {
                return error as? RPCError
            }
        }
        #expect(await refusal(.init(afterCursor: "abc"))?.code == .invalidArgument)
        #expect(await refusal(.init(afterCursor: "-1"))?.code == .invalidArgument)
        #expect(await refusal(.init(afterCursor: "999999"))?.code == .outOfRange)
        #expect(await refusal(.init(afterCursor: "1", fromNow: true))?.code == .invalidArgument)
        #expect(await refusal(.init(types: ["Payment Recorded"]))?.message.hasPrefix("types: types[0]") == true)
        let manager = await refusal(.init(), role: .agencyManager)
        #expect(manager?.code == .permissionDenied, "\(String(describing: manager))")
        #expect(await refusal(.init(), role: .compliance) == nil)
        #expect(await refusal(.init(), role: .service) == nil)
        await harness.close()
    }
}
