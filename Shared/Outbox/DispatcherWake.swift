import Synchronization

/// Lets a service wake the ``OutboxDispatcher`` that is created after it: the service needs
/// the wake-up when it commits a message, the dispatcher needs the service for its
/// `onDelivered` hook, so the service gets this first and the dispatcher is attached to it
/// once made. ``fire()`` before ``attach(_:)`` does nothing (the dispatcher's first pass
/// finds the message anyway).
public final class DispatcherWake: Sendable {
    private let target = Mutex<OutboxDispatcher?>(nil)

    public init() {}

    /// The dispatcher to wake from now on.
    public func attach(_ dispatcher: OutboxDispatcher) { target.withLock { $0 = dispatcher } }

    /// Wakes the attached dispatcher (``OutboxDispatcher/wake()``).
    public func fire() { target.withLock { $0 }?.wake() }
}
