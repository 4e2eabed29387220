import ServiceKit

public enum SchedulingDefaults: ServiceDefaults {
    public static let name = "scheduling"
    public static let defaultPort = 50052
    public static let defaultMetricsPort = 9102
}

/// Runs the scheduling service process.
public enum SchedulingServer {
    public static func run(common: ServiceOptions<SchedulingDefaults>) async throws {
        let configuration = try common.resolve()
        try await ServiceRuntime.run(configuration: configuration) { environment in
            let database = try environment.openDatabase("scheduling.sqlite", migrations: SchedulingService.migrations)
            let service = SchedulingService(database: database, clock: environment.clock)
            return .serving(service.definition, serviceName: SchedulingService.serviceName, database: database, environment: environment)
        }
    }
}
