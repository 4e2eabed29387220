import RPC
import Storage

extension ServiceEnvironment {
    /// Opens (creating and migrating) `<data-dir>/<file>`, or fails the start with a one-line reason.
    public func openDatabase(_ file: String, migrations: SQLiteDatabase.Migrations) throws(ConfigurationError) -> SQLiteDatabase {
        do {
            return try SQLiteDatabase(path: dataDirectory + "/" + file, migrations: migrations, logger: logger)
        } catch {
            throw ConfigurationError(error.description)
        }
    }
}

extension ServiceSetup {
    /// A service backed by one database: remembered responses purged in the background, the
    /// database checkpointed and closed after the server stopped.
    public static func serving(
        _ definition: ServiceDefinition, serviceName: String, database: SQLiteDatabase, environment: ServiceEnvironment
    ) -> ServiceSetup {
        ServiceSetup(
            definition: definition, serviceNames: [serviceName],
            background: [IdempotencyPurge(database: database, configuration: environment.configuration,
                                          clock: environment.clock, logger: environment.logger)],
            onShutdown: { database.close() })
    }
}
