import ArgumentParser
import Compliance
import Events
import Foundation
import Outbox
import ServiceKit
import Webhooks

public enum VisitsDefaults: ServiceDefaults {
    public static let name = "visits"
    public static let defaultPort = 50053
    public static let defaultMetricsPort = 9103
}

/// Flags of the `visits` executable beyond the common ones; each has a DOORSTEP_*
/// environment equivalent (flag > environment > default).
public struct VisitsOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Rule pack: cn-2026, us-regf, uk-conc, or the path of a pack file. Env DOORSTEP_RULE_PACK. Default cn-2026.", valueName: "id|path"))
    public var rulePack: String?

    @Option(help: ArgumentHelp("Check-in allowed this long before and after the window. Env DOORSTEP_CHECK_IN_GRACE_MINUTES. Default 15.",
                               valueName: "minutes"))
    public var checkInGraceMinutes: Int?

    @Option(help: ArgumentHelp("Check-in allowed within this distance of the debtor's address. Env DOORSTEP_GEOFENCE_METERS. Default 200.",
                               valueName: "metres"))
    public var geofenceMeters: Int?

    @Option(help: ArgumentHelp("Zone of the scorecard's days, and of a complaint's retention when the debtor's zone is unknown. Env DOORSTEP_DEFAULT_TIME_ZONE. Default Asia/Shanghai.",
                               valueName: "zone"))
    public var defaultTimeZone: String?

    @Option(help: ArgumentHelp(
        "How often the service erases visits and complaints past their retention (1-86400), or 'off' (0 = off). Env DOORSTEP_RETENTION_INTERVAL_SECONDS. Default 3600.",
        valueName: "seconds|off"))
    public var retentionIntervalSeconds: String?

    public init() {}

    /// How often the retention job runs (`RetentionSweep`); nil when it is off.
    public func retentionInterval(environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigurationError) -> Duration? {
        try OptionSource(environment: environment).retentionInterval(retentionIntervalSeconds)
    }

    public func resolve(environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigurationError) -> VisitsConfiguration {
        let options = OptionSource(environment: environment)
        var configuration = VisitsConfiguration()
        let pack = options.text(rulePack, "DOORSTEP_RULE_PACK")?.value ?? "cn-2026"
        do { configuration.rulePack = try RulePacks.resolve(pack) } catch { throw ConfigurationError(error.description) }
        configuration.checkInGraceMinutes = try options.number(checkInGraceMinutes, "DOORSTEP_CHECK_IN_GRACE_MINUTES", in: 0...240) ?? 15
        configuration.geofenceMeters = try options.number(geofenceMeters, "DOORSTEP_GEOFENCE_METERS", in: 10...5_000) ?? 200
        if let zone = try options.timeZone(defaultTimeZone, "DOORSTEP_DEFAULT_TIME_ZONE") { configuration.defaultTimeZone = zone }
        return configuration
    }
}

/// Runs the visits service process: the gRPC service and the dispatcher of visit
/// consequences (accounts, scheduling) beside it.
public enum VisitsServer {
    public static func run(common: ServiceOptions<VisitsDefaults>, options: VisitsOptions) async throws {
        let configuration = try common.resolve()
        let visits = try options.resolve()
        let retention = try options.retentionInterval()
        try await ServiceRuntime.run(configuration: configuration) { environment in
            let database = try await environment.openDatabase("visits.sqlite", migrations: VisitsService.migrations)
            let peers = GRPCVisitsPeers(accounts: configuration.peers.accounts, scheduling: configuration.peers.scheduling,
                                        signingKey: environment.signingKey, tls: environment.peerTLS)
            let wake = DispatcherWake()
            let service = VisitsService(database: database, clock: environment.clock, configuration: visits, peers: peers,
                                        logger: environment.logger, effectsWritten: { wake.fire() })
            let dispatcher = OutboxDispatcher(database: database, topics: [VisitsService.effectTopic], sink: peers.effectSink,
                                              claimLease: .seconds(environment.configuration.outboxClaimSeconds),
                                              nowMs: environment.clock.nowMs, logger: environment.logger,
                                              onDelivered: { db, message, deliveredMs in
                                                  try service.effectDelivered(db, message: message, deliveredMs: deliveredMs)
                                              },
                                              onFailed: { db, message, error, failedMs in
                                                  try service.effectFailed(db, message: message, error: error, failedMs: failedMs)
                                              })
            wake.attach(dispatcher)
            var setup = ServiceSetup.serving(service.definition, serviceName: VisitsService.serviceName, database: database,
                                             environment: environment)
            try await setup.hostWebhooks(.visits, database: database, events: service.store.events, environment: environment)
            setup.hostEventLogRetention(service.store.events, database: database, environment: environment)
            setup.background += [dispatcher, ComplaintSLASweep(database: database, clock: environment.clock, logger: environment.logger)]
            if let retention {
                setup.background.append(RetentionSweep(service: service, database: database, clock: environment.clock,
                                                       logger: environment.logger, interval: retention))
            }
            let closeDatabase = setup.onShutdown
            setup.onShutdown = {
                await peers.close()
                await closeDatabase()
            }
            return setup
        }
    }
}
