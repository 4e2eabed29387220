import RPC
import Storage

extension ServiceEnvironment {
    /// Opens (creating and migrating) the service's database: the PostgreSQL database of
    /// `--database-url` when given, else `<data-dir>/<file>` (SQLite). Fails the start with a
    /// one-line reason (for PostgreSQL after retrying for the startup timeout).
    public func openDatabase(_ file: String, migrations: SQLDatabase.Migrations) async throws(ConfigurationError) -> SQLDatabase {
        let location: SQLDatabase.Location = configuration.database.map { .postgres($0) } ?? .sqlite(path: dataDirectory + "/" + file)
        do {
            let database = try await SQLDatabase.open(location, migrations: migrations, logger: logger)
            logger.info("database open", metadata: ["database": "\(database.location)", "engine": "\(database.dialect)"])
            return database
        } catch {
            throw ConfigurationError(error.description)
        }
    }
}

extension ServiceSetup {
    /// A service backed by one database: remembered responses purged in the background (by
    /// one replica at a time), health following the database, the database closed after
    /// the server stopped.
    public static func serving(
        _ definition: ServiceDefinition, serviceName: String, database: SQLDatabase, environment: ServiceEnvironment
    ) -> ServiceSetup {
        ServiceSetup(
            definition: definition, serviceNames: [serviceName],
            background: [IdempotencyPurge(database: database, configuration: environment.configuration,
                                          clock: environment.clock, logger: environment.logger)],
            healthCheck: { await database.isAvailable() },
            onShutdown: { await database.close() })
    }
}
