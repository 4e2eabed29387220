import Foundation

/// How a service reaches its PostgreSQL database: the parts of a
/// `postgres://user[:password]@host[:port]/database[?options]` URL, and the pool's limits.
///
/// URL options: `sslmode=disable|require` (default disable; `require` verifies the server's
/// certificate against the system's trust store) and `schema=NAME` (the service's tables in
/// that schema, created when missing, instead of `public`: several services may then share
/// one database). Anything else is refused, so a misspelt option never goes unnoticed.
public struct PostgresSettings: Sendable, Hashable {
    public enum TLSMode: String, Sendable, Hashable {
        case disable
        case require
    }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var schema: String?
    public var tls: TLSMode = .disable

    /// Most connections the pool opens (and transactions in flight). Default 10.
    public var poolSize = 10
    /// How long one connection attempt may take. Default 5 s.
    public var connectTimeout: Duration = .seconds(5)
    /// Longest statement, enforced by the server (`statement_timeout`) and, a little
    /// later, by the client (which then drops the connection). Default 30 s.
    public var statementTimeout: Duration = .seconds(30)
    /// How long a transaction may wait for a free connection before UNAVAILABLE. Default 5 s.
    public var acquireTimeout: Duration = .seconds(5)
    /// At start, how long to keep trying to reach the database before giving up. Default 60 s.
    public var startupTimeout: Duration = .seconds(60)

    public init(host: String, port: Int = 5432, username: String, password: String? = nil, database: String) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    /// Parses a `postgres://` (or `postgresql://`) URL; throws one line naming what is wrong.
    public init(url text: String) throws(StorageOpenError) {
        func fail(_ problem: String) -> StorageOpenError {
            StorageOpenError(location: Self.redact(text), problem: problem)
        }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
              scheme == "postgres" || scheme == "postgresql"
        else { throw fail("not a postgres:// URL (postgres://user[:password]@host[:port]/database)") }
        guard let host = components.host, !host.isEmpty else { throw fail("the URL names no host") }
        guard let user = components.user, !user.isEmpty else { throw fail("the URL names no user (postgres://user@host/database)") }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else { throw fail("the URL names no database (…/database)") }
        let port = components.port ?? 5432
        guard (1...65_535).contains(port) else { throw fail("port \(port) is out of range") }
        self.init(host: host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host, port: port,
                  username: components.user?.removingPercentEncoding ?? user,
                  password: components.password?.removingPercentEncoding,
                  database: database.removingPercentEncoding ?? database)
        for item in components.queryItems ?? [] {
            let value = item.value ?? ""
            switch item.name {
            case "sslmode":
                guard let mode = TLSMode(rawValue: value) else { throw fail("sslmode '\(value)' is not disable or require") }
                tls = mode
            case "schema":
                guard value.range(of: #"^[a-z_][a-z0-9_]{0,62}$"#, options: .regularExpression) != nil else {
                    throw fail("schema '\(value)' is not a lower-case identifier")
                }
                schema = value
            default:
                throw fail("unknown option '\(item.name)' (sslmode, schema)")
            }
        }
    }

    /// The URL without its password, for logs and errors.
    public var redactedURL: String {
        var url = "postgres://\(username)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)"
        var options: [String] = []
        if tls != .disable { options.append("sslmode=\(tls.rawValue)") }
        if let schema { options.append("schema=\(schema)") }
        if !options.isEmpty { url += "?" + options.joined(separator: "&") }
        return url
    }

    /// `text` with any password replaced by `***`.
    static func redact(_ text: String) -> String {
        guard var components = URLComponents(string: text), components.password != nil else { return text }
        components.password = "***"
        return components.string ?? "postgres://***"
    }
}
