import Foundation
import Logging
import Storage

/// The database engine the suites run against. By default each test gets a new SQLite file
/// in a temporary directory; with `DOORSTEP_TEST_DATABASE=postgres` and
/// `DOORSTEP_TEST_POSTGRES_URL` (a server where the URL's user may create schemas, e.g. the
/// throwaway cluster of `Scripts/with-postgres.sh`), a new schema on that server instead —
/// the same tests, the same assertions, on PostgreSQL.
public enum TestDatabase {
    /// The engine of this run.
    public static var dialect: SQLDialect {
        ProcessInfo.processInfo.environment["DOORSTEP_TEST_DATABASE"] == "postgres" ? .postgres : .sqlite
    }

    /// The test server's URL (PostgreSQL runs only); fails loudly when it is missing, so a
    /// PostgreSQL run never falls back to SQLite unnoticed.
    public static var postgresURL: String {
        guard let url = ProcessInfo.processInfo.environment["DOORSTEP_TEST_POSTGRES_URL"], !url.isEmpty else {
            fatalError("DOORSTEP_TEST_DATABASE=postgres needs DOORSTEP_TEST_POSTGRES_URL (Scripts/with-postgres.sh sets it)")
        }
        return url
    }

    /// A fresh, empty place for one database: `<directory>/<file>` on SQLite, a new schema
    /// (`t_<random>_<name>`) on PostgreSQL.
    public static func location(file: String, in directory: URL) throws -> SQLDatabase.Location {
        guard dialect == .postgres else { return .sqlite(path: directory.appendingPathComponent(file).path) }
        return .postgres(try PostgresSettings(url: urlWithNewSchema(for: file)))
    }

    /// The URL a service process is given for a fresh schema (`--database-url`), or nil on
    /// SQLite runs (the process then uses its data directory).
    public static func processURL(for name: String) -> String? {
        dialect == .postgres ? urlWithNewSchema(for: name) : nil
    }

    /// Opens a fresh database with `migrations`.
    public static func open(file: String, in directory: URL, migrations: SQLDatabase.Migrations,
                            logger: Logger) async throws -> SQLDatabase {
        try await SQLDatabase.open(try location(file: file, in: directory), migrations: migrations, logger: logger)
    }

    /// The same database opened again (a restarted process): the same file or schema.
    public static func reopen(_ location: SQLDatabase.Location, migrations: SQLDatabase.Migrations,
                              logger: Logger) async throws -> SQLDatabase {
        try await SQLDatabase.open(location, migrations: migrations, logger: logger)
    }

    private static func urlWithNewSchema(for name: String) -> String {
        let label = name.lowercased().filter { $0.isLetter || $0.isNumber }.prefix(20)
        let schema = "t_\(UInt64.random(in: 0...UInt64.max) % 1_000_000_000_000)_\(label)"
        let base = postgresURL
        return base + (base.contains("?") ? "&" : "?") + "schema=" + schema
    }
}
