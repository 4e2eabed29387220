import ServiceKit

public enum VisitsDefaults: ServiceDefaults {
    public static let name = "visits"
    public static let defaultPort = 50053
    public static let defaultMetricsPort = 9103
}

/// Runs the visits service process.
public enum VisitsServer {
    public static func run(common: ServiceOptions<VisitsDefaults>) async throws {
        let configuration = try common.resolve()
        try await ServiceRuntime.run(configuration: configuration) { environment in
            let database = try environment.openDatabase("visits.sqlite", migrations: VisitsService.migrations)
            let service = VisitsService(database: database, clock: environment.clock)
            return .serving(service.definition, serviceName: VisitsService.serviceName, database: database, environment: environment)
        }
    }
}
