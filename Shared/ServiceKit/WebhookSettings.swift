import Foundation

/// How a service delivers its webhook subscriptions (docs/EVENTS.md ("Webhooks"),
/// docs/OPERATIONS.md ("Flags and environment")); every default is spelled out.
public struct WebhookSettings: Sendable, Equatable {
    /// The AES-256 key file sealing subscriptions' signing secrets; nil = `<data-dir>/webhook.key`,
    /// created (mode 0600) on first start.
    public var keyFile: String?
    /// Whether http:// receivers are accepted. Default false: https only.
    public var allowHTTP = false
    /// Whether receivers may resolve to loopback, private, link-local and other non-public
    /// addresses. Default false (no server-side request forgery through webhooks).
    public var allowPrivateAddresses = false
    /// Failed attempts in a row after which a subscription is paused. Default 20.
    public var maxAttempts = 20
    /// Longest wait between two attempts (the wait doubles from 1 s up to it). Default 300 s.
    public var maxBackoff: Duration = .seconds(300)
    /// How long one POST may take. Default 10 s.
    public var requestTimeout: Duration = .seconds(10)

    public init() {}
    public static let defaults = WebhookSettings()

    /// Reads a switch given as a flag (present = on) or as its environment variable (1, true,
    /// yes, on / 0, false, no, off).
    public static func isOn(_ flag: Bool, _ variable: String, environment: [String: String]) throws(ConfigurationError) -> Bool {
        if flag { return true }
        guard let raw = environment[variable], !raw.isEmpty else { return false }
        switch raw.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ConfigurationError("\(variable): '\(raw)' is not true or false")
        }
    }
}
