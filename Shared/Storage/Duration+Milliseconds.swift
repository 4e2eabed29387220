extension Duration {
    /// Whole milliseconds (rounded toward zero): leases, claims and timeouts stored or sent
    /// as milliseconds.
    public var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
