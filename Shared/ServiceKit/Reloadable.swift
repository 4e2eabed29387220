/// Something a running service can re-read from disk without restarting: the
/// bearer-token keys, the signing key, TLS certificates. A reload either
/// succeeds and swaps the new material in atomically, or throws one
/// `ConfigurationError` line and leaves the previous material in use (the
/// caller logs it and keeps serving).
public protocol Reloadable: Sendable { var reloadName: String { get }; var watchedFiles: [String] { get }; func reload() throws(ConfigurationError) }
