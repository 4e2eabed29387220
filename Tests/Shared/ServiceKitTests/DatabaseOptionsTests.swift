import ServiceKit
import Storage
import Testing

private enum TestDefaults: ServiceDefaults {
    static let name = "accounts"
    static let defaultPort = 50051
    static let defaultMetricsPort = 9101
}

/// The database flags: a URL and its limits from flags or the environment, checked before
/// anything starts, one line naming where a bad value came from.
@Suite("Database options")
struct DatabaseOptionsTests {
    static func resolve(_ arguments: [String], _ environment: [String: String] = [:]) throws -> ServiceConfiguration {
        try ServiceOptions<TestDefaults>.parse(arguments).resolve(environment: environment)
    }

    @Test("no URL: SQLite in the data directory; a URL: PostgreSQL with the pool and timeouts given or their defaults")
    func urlAndLimits() throws {
        #expect(try Self.resolve([]).database == nil)
        let defaults = try #require(try Self.resolve([], ["DOORSTEP_DATABASE_URL": "postgres://doorstep@db:5432/doorstep_accounts"]).database)
        #expect(defaults.host == "db" && defaults.database == "doorstep_accounts")
        #expect(defaults.poolSize == 10 && defaults.connectTimeout == .seconds(5) && defaults.statementTimeout == .seconds(30)
                && defaults.startupTimeout == .seconds(60))
        let given = try #require(try Self.resolve(
            ["--database-url", "postgres://u@h/d?schema=svc", "--database-pool-size", "3", "--database-statement-timeout-seconds", "7"],
            ["DOORSTEP_DATABASE_URL": "postgres://ignored@x/y", "DOORSTEP_DATABASE_STARTUP_TIMEOUT_SECONDS": "0"]).database)
        #expect(given.host == "h" && given.schema == "svc" && given.poolSize == 3 && given.statementTimeout == .seconds(7)
                && given.startupTimeout == .zero, "the flag wins over the environment; the environment over the default")
        #expect(try Self.resolve(["--outbox-claim-seconds", "5"]).outboxClaimSeconds == 5)
    }

    @Test("a bad URL or limit stops the start with one line naming its source, never the password")
    func refusals() {
        let url = #expect(throws: ConfigurationError.self) {
            _ = try Self.resolve([], ["DOORSTEP_DATABASE_URL": "mysql://u:secret@h/d"])
        }
        #expect(url?.description == "DOORSTEP_DATABASE_URL: not a postgres:// URL (postgres://user[:password]@host[:port]/database)")
        let pool = #expect(throws: ConfigurationError.self) {
            _ = try Self.resolve(["--database-url", "postgres://u@h/d", "--database-pool-size", "0"])
        }
        #expect(pool?.description == "--database-pool-size: 0 is outside 1...500")
        let claim = #expect(throws: ConfigurationError.self) {
            _ = try Self.resolve([], ["DOORSTEP_OUTBOX_CLAIM_SECONDS": "0"])
        }
        #expect(claim?.description == "DOORSTEP_OUTBOX_CLAIM_SECONDS: 0 is outside 1...3600")
    }
}
