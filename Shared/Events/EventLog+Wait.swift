extension EventLog {
    /// Returns when a transaction of this process that wrote events commits, after `timeout`,
    /// or when the task is cancelled, whichever comes first: lets a consumer in the service
    /// (webhook delivery) act on new events at once and look again on its own otherwise
    /// (events other replicas commit).
    public func waitForEvents(timeout: Duration) async {
        await signal.wait(timeout: timeout)
    }
}
