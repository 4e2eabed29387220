import Foundation

/// Where one setting of an executable comes from: its flag, else its `DOORSTEP_*`
/// environment variable (an empty variable counts as unset), else the caller's default.
/// Errors name the source the bad value came from ("--max-window-minutes: 800 is outside
/// 5...720", "DOORSTEP_SPEED_KMH: 'fast' is not a number"), so an operator knows what to fix.
public struct OptionSource: Sendable {
    public let environment: [String: String]

    public init(environment: [String: String]) {
        self.environment = environment
    }

    /// DOORSTEP_MAX_CONCURRENT_STREAMS → max-concurrent-streams.
    public static func flagName(of variable: String) -> String {
        String(variable.dropFirst("DOORSTEP_".count)).lowercased().replacingOccurrences(of: "_", with: "-")
    }

    /// The value and its source ("--flag" or the variable), or nil when neither is set.
    public func text(_ flag: String?, _ variable: String) -> (value: String, source: String)? {
        if let flag { return (flag, "--" + Self.flagName(of: variable)) }
        if let value = environment[variable], !value.isEmpty { return (value, variable) }
        return nil
    }

    /// A number within `range`, or nil when neither the flag nor the variable is set.
    public func number<T: LosslessStringConvertible & Comparable>(
        _ flag: T?, _ variable: String, in range: ClosedRange<T>
    ) throws(ConfigurationError) -> T? {
        let value: T
        let source: String
        if let flag {
            (value, source) = (flag, "--" + Self.flagName(of: variable))
        } else if let raw = environment[variable], !raw.isEmpty {
            guard let parsed = T(raw) else { throw ConfigurationError("\(variable): '\(raw)' is not a number") }
            (value, source) = (parsed, variable)
        } else {
            return nil
        }
        guard range.contains(value) else { throw ConfigurationError("\(source): \(value) is outside \(range.lowerBound)...\(range.upperBound)") }
        return value
    }

    /// An IANA time zone identifier, or nil when unset.
    public func timeZone(_ flag: String?, _ variable: String) throws(ConfigurationError) -> String? {
        guard let (zone, source) = text(flag, variable) else { return nil }
        guard TimeZone(identifier: zone) != nil else { throw ConfigurationError("\(source): unknown IANA zone '\(zone)'") }
        return zone
    }
}
