import Models
import Outbox
import RPCWire
import Synchronization
import Testing

// What the service test suites (accounts, scheduling, visits) share: the day every test
// starts on, a clock the test sets, an outbox sink that records, and the check of a refusal.

/// 2026-03-10T00:00:00Z: 08:00 on 2026-03-10 in Asia/Shanghai (UTC+8), where every test
/// starts.
public let testEpochMs: Int64 = 1_773_100_800_000

/// The instant of 2026-03-`day` `hour`:`minute` in Asia/Shanghai (no DST there).
public func march(_ day: Int, _ hour: Int, _ minute: Int = 0) -> Int64 {
    testEpochMs + Int64(day - 10) * 86_400_000 + Int64(hour - 8) * 3_600_000 + Int64(minute) * 60_000
}

/// A service clock the test sets.
public final class SettableClock: Sendable {
    private let value: Mutex<Int64>
    public init(nowMs: Int64) { value = Mutex(nowMs) }
    public var now: Int64 { value.withLock { $0 } }
    public func set(_ ms: Int64) { value.withLock { $0 = ms } }
    public func advance(_ ms: Int64) { value.withLock { $0 += ms } }
}

/// An outbox sink that records what it is handed; the first `failures` deliveries fail
/// as retryable (a receiver answering 503).
public final class RecordingSink: OutboxSink {
    private struct State: Sendable {
        var calls = 0
        var failuresLeft: Int
        var delivered: [OutboxMessage] = []
    }

    private let state: Mutex<State>

    public init(failures: Int = 0) { state = Mutex(State(failuresLeft: failures)) }

    /// Deliveries attempted, failed ones included.
    public var calls: Int { state.withLock { $0.calls } }
    /// Messages accepted, in order.
    public var delivered: [OutboxMessage] { state.withLock { $0.delivered } }

    public func deliver(_ message: OutboxMessage) async throws(OutboxSinkError) {
        let fail: Bool = state.withLock {
            $0.calls += 1
            if $0.failuresLeft > 0 {
                $0.failuresLeft -= 1
                return true
            }
            $0.delivered.append(message)
            return false
        }
        if fail { throw OutboxSinkError.retryable("receiver answered HTTP 503") }
    }
}

/// The Refusal carried by a FAILED_PRECONDITION (its `grpc-status-details-bin`), after
/// checking that the message names every violated rule id.
public func refusal(of error: RPCError?) throws -> TypeV1.Refusal {
    let error = try #require(error)
    #expect(error.code == .failedPrecondition, "\(error)")
    let status = try TypeV1.RpcStatus(decoding: try #require(error.details, "no status details on \(error)"))
    let detail = try #require(status.details.first)
    #expect(detail.typeUrl == "type.googleapis.com/doorstep.type.v1.Refusal")
    let refusal = try TypeV1.Refusal(decoding: detail.value)
    #expect(!refusal.violations.isEmpty)
    for violation in refusal.violations {
        #expect(error.message.contains(violation.ruleId + ":"), "\(violation.ruleId) not named in '\(error.message)'")
    }
    return refusal
}

/// The rule ids of a refusal, in order.
public func refusedRules(_ error: RPCError?) throws -> [String] {
    try refusal(of: error).violations.map(\.ruleId)
}
