import Models

extension OutboxDelivery {
    /// The contract form (types.proto `Delivery`), as resources show their notices' and
    /// effects' delivery progress.
    public var proto: TypeV1.Delivery {
        TypeV1.Delivery(
            status: TypeV1.DeliveryStatus(rawValue: Int32(status.rawValue)),
            attempts: Int32(clamping: attempts), lastError: lastError, lastAttemptMs: lastAttemptMs,
            nextAttemptMs: nextAttemptMs, deliveredMs: deliveredMs)
    }
}
