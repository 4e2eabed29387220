/// `--retention-interval-seconds` / `DOORSTEP_RETENTION_INTERVAL_SECONDS`, shared by the
/// services that run a retention job (visits, accounts).
extension OptionSource {
    /// How often a retention job runs: 1-86400 seconds, `0` or `off` for never; nil when it
    /// is off. Default (neither flag nor variable set) 3600 seconds.
    public func retentionInterval(_ flag: String?) throws(ConfigurationError) -> Duration? {
        guard let (value, source) = text(flag, "DOORSTEP_RETENTION_INTERVAL_SECONDS") else { return .seconds(3600) }
        if value == "off" || value == "0" { return nil }
        guard let seconds = Int(value), (1...86_400).contains(seconds) else {
            throw ConfigurationError("\(source): '\(value)' is not a number of seconds in 1...86400, 0 or off")
        }
        return .seconds(seconds)
    }
}
