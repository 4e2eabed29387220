/// Why a delivery attempt failed, as the sink judges it; the dispatcher retries the first
/// kind with backoff and gives up on the second at once.
public enum OutboxSinkError: Error, Sendable, Hashable {
    /// Worth trying again later: the receiver is down, slow or overloaded (connection
    /// failure, timeout, HTTP 408/425/429/5xx, a full disk).
    case retryable(String)
    /// The receiver rejected the message for good (e.g. HTTP 400): the message is marked
    /// FAILED and never sent again.
    case permanent(String)

    /// The sink's one-line explanation, kept as the message's `last_error`.
    var text: String {
        switch self {
        case .retryable(let text), .permanent(let text): text
        }
    }
}

/// Where an outbox delivers: a webhook, a log file, another service.
///
/// `deliver` returns only once the receiver has acknowledged the message (durably, as far
/// as the receiver can say). It must be safe to call again with the same message, and it
/// will be: delivery is at least once, so receivers de-duplicate by `OutboxMessage.id`,
/// which is the same on every attempt. A sink may be called from several tasks at once
/// (one per dispatcher using it), hence `Sendable`.
public protocol OutboxSink: Sendable {
    /// Delivers `message`; throws `.retryable` or `.permanent` when it was not acknowledged.
    func deliver(_ message: OutboxMessage) async throws(OutboxSinkError)

    /// Delivers `message` like `deliver` and returns what the receiver answered that is kept
    /// with the delivery (`OutboxDelivery.result`, e.g. the id of what the receiver created),
    /// or "". The dispatcher calls this; the default calls `deliver` and keeps nothing.
    func deliverForResult(_ message: OutboxMessage) async throws(OutboxSinkError) -> String
}

extension OutboxSink {
    public func deliverForResult(_ message: OutboxMessage) async throws(OutboxSinkError) -> String {
        try await deliver(message)
        return ""
    }
}
