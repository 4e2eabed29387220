import Synchronization

/// A flag set inside a transaction closure and read after the transaction returns (the
/// closure is `@Sendable`, so it cannot set a local variable): e.g. "this change queued an
/// outbox message", to wake the dispatcher only once the message is committed.
public final class TransactionFlag: Sendable {
    private let value = Mutex(false)

    public init() {}

    /// Raises the flag (it stays raised).
    public func set() { value.withLock { $0 = true } }

    /// Whether ``set()`` was called.
    public var isSet: Bool { value.withLock { $0 } }
}
