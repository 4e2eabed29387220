import ArgumentParser
import Compliance
import Events
import Foundation
import Outbox
import ServiceKit
import Storage
import Webhooks

public enum SchedulingDefaults: ServiceDefaults {
    public static let name = "scheduling"
    public static let defaultPort = 50052
    public static let defaultMetricsPort = 9102
}

/// Flags of the `scheduling` executable beyond the common ones; each has a DOORSTEP_*
/// environment equivalent (flag > environment > default).
public struct SchedulingOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Rule pack: cn-2026, us-regf, uk-conc, or the path of a pack file (see `doorstep rule-pack show`). Env DOORSTEP_RULE_PACK. Default cn-2026.",
        valueName: "id|path"))
    public var rulePack: String?

    @Option(help: ArgumentHelp(
        "Where customer notices go: an http:// or https:// webhook URL (POST, proto3 JSON, Idempotency-Key header), or log:PATH for a JSON-lines file. Env DOORSTEP_NOTICE_SINK. Default log:<data-dir>/notices.jsonl.",
        valueName: "sink"))
    public var noticeSink: String?

    @Option(help: ArgumentHelp("How to complain, printed in every notice (1-500 characters). Env DOORSTEP_COMPLAINT_INSTRUCTIONS. Default: hotline text.",
                               valueName: "text"))
    public var complaintInstructions: String?

    @Option(help: ArgumentHelp("Visits per account per day (overrides the pack). Env DOORSTEP_VISIT_DAILY_CAP. Default: the pack's (1).", valueName: "n"))
    public var visitDailyCap: Int?

    @Option(help: ArgumentHelp("Visits per account per 7 days (overrides the pack). Env DOORSTEP_VISIT_WEEKLY_CAP. Default: the pack's (2).", valueName: "n"))
    public var visitWeeklyCap: Int?

    @Option(help: ArgumentHelp("Shortest visit window. Env DOORSTEP_MIN_WINDOW_MINUTES. Default 30.", valueName: "minutes"))
    public var minWindowMinutes: Int?

    @Option(help: ArgumentHelp("Longest visit window. Env DOORSTEP_MAX_WINDOW_MINUTES. Default 240.", valueName: "minutes"))
    public var maxWindowMinutes: Int?

    @Option(help: ArgumentHelp("Road distance = great-circle distance x this. Env DOORSTEP_ROAD_FACTOR. Default 1.3.", valueName: "factor"))
    public var roadFactor: Double?

    @Option(help: ArgumentHelp("Average travel speed. Env DOORSTEP_SPEED_KMH. Default 25.", valueName: "km/h"))
    public var speedKmh: Double?

    @Option(help: ArgumentHelp("Travel cost per km in minor units of CNY, weighed against expected recovery. Env DOORSTEP_TRAVEL_COST_PER_KM. Default 200.",
                               valueName: "minor"))
    public var travelCostPerKm: Int?

    @Option(help: ArgumentHelp("A notified or confirmed appointment is MISSED this long after its window without a completion. Env DOORSTEP_MISSED_GRACE_MINUTES. Default 120.",
                               valueName: "minutes"))
    public var missedGraceMinutes: Int?

    @Option(help: ArgumentHelp("Zone PlanDay uses when the request names none. Env DOORSTEP_DEFAULT_TIME_ZONE. Default Asia/Shanghai.", valueName: "zone"))
    public var defaultTimeZone: String?

    @Option(help: ArgumentHelp(
        "How often the service looks for licences, inspections and certifications reaching an expiry warning (1-86400), or 'off' (0 = off). Env DOORSTEP_EXPIRY_WARNINGS_INTERVAL_SECONDS. Default 3600.",
        valueName: "seconds|off"))
    public var expiryWarningsIntervalSeconds: String?

    public init() {}

    /// How often the expiry-warnings job runs (`ExpiryWarnings`); nil when it is off.
    public func expiryWarningsInterval(environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(ConfigurationError) -> Duration? {
        guard let (value, source) = OptionSource(environment: environment)
            .text(expiryWarningsIntervalSeconds, "DOORSTEP_EXPIRY_WARNINGS_INTERVAL_SECONDS") else {
            return .seconds(3600)
        }
        if value == "off" || value == "0" { return nil }
        guard let seconds = Int(value), (1...86_400).contains(seconds) else {
            throw ConfigurationError("\(source): '\(value)' is not a number of seconds in 1...86400, 0 or off")
        }
        return .seconds(seconds)
    }

    /// Where notices are delivered.
    public enum NoticeSink: Sendable, Equatable {
        case logFile(String)
        case webhook(String)
    }

    /// The configuration these flags (or their environment) ask for; `dataDirectory` places
    /// the default notice log.
    public func resolve(dataDirectory: String, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(ConfigurationError) -> (configuration: SchedulingConfiguration, sink: NoticeSink) {
        let options = OptionSource(environment: environment)
        func text(_ flag: String?, _ variable: String) -> (String, String)? { options.text(flag, variable) }
        func number<T: LosslessStringConvertible & Comparable>(_ flag: T?, _ variable: String, _ range: ClosedRange<T>) throws(ConfigurationError) -> T? {
            try options.number(flag, variable, in: range)
        }

        var configuration = SchedulingConfiguration()
        let packName = text(rulePack, "DOORSTEP_RULE_PACK")?.0 ?? "cn-2026"
        do { configuration.rulePack = try RulePacks.resolve(packName) } catch { throw ConfigurationError(error.description) }
        if let (instructions, source) = text(complaintInstructions, "DOORSTEP_COMPLAINT_INSTRUCTIONS") {
            guard (1...500).contains(instructions.count) else { throw ConfigurationError("\(source): must be 1-500 characters") }
            configuration.complaintInstructions = instructions
        }
        configuration.visitRules.visitDailyCap = try number(visitDailyCap, "DOORSTEP_VISIT_DAILY_CAP", 1...10)
        configuration.visitRules.visitWeeklyCap = try number(visitWeeklyCap, "DOORSTEP_VISIT_WEEKLY_CAP", 1...30)
        configuration.visitRules.minWindowMinutes = try number(minWindowMinutes, "DOORSTEP_MIN_WINDOW_MINUTES", 5...720) ?? 30
        configuration.visitRules.maxWindowMinutes = try number(maxWindowMinutes, "DOORSTEP_MAX_WINDOW_MINUTES", 5...720) ?? 240
        guard configuration.visitRules.maxWindowMinutes >= configuration.visitRules.minWindowMinutes else {
            throw ConfigurationError("max window minutes (\(configuration.visitRules.maxWindowMinutes)) is below min window minutes (\(configuration.visitRules.minWindowMinutes))")
        }
        configuration.roadFactor = try number(roadFactor, "DOORSTEP_ROAD_FACTOR", 1.0...5.0) ?? 1.3
        configuration.speedKmh = try number(speedKmh, "DOORSTEP_SPEED_KMH", 1.0...200.0) ?? 25
        configuration.travelCostPerKmMinor = Int64(try number(travelCostPerKm, "DOORSTEP_TRAVEL_COST_PER_KM", 0...1_000_000) ?? 200)
        configuration.missedGraceMinutes = try number(missedGraceMinutes, "DOORSTEP_MISSED_GRACE_MINUTES", 0...10_080) ?? 120
        if let zone = try options.timeZone(defaultTimeZone, "DOORSTEP_DEFAULT_TIME_ZONE") { configuration.defaultTimeZone = zone }

        let sinkText = text(noticeSink, "DOORSTEP_NOTICE_SINK")
        let sink: NoticeSink
        switch sinkText {
        case nil:
            sink = .logFile(dataDirectory + "/notices.jsonl")
        case let (value, source)?:
            if value.hasPrefix("log:") {
                let path = String(value.dropFirst(4))
                guard !path.isEmpty else { throw ConfigurationError("\(source): log: needs a file path") }
                sink = .logFile(path)
            } else if let url = URL(string: value), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host?.isEmpty == false {
                sink = .webhook(value)
            } else {
                throw ConfigurationError("\(source): '\(value)' is neither an http(s) URL nor log:PATH")
            }
        }
        return (configuration, sink)
    }
}

/// Runs the scheduling service process: the gRPC service, the customer-notice dispatcher, the
/// dispatcher of placement recalls to accounts,
/// the missed-appointment sweep, the expiry warnings and the idempotency purge.
public enum SchedulingServer {
    public static func run(common: ServiceOptions<SchedulingDefaults>, options: SchedulingOptions) async throws {
        let configuration = try common.resolve()
        let expiryWarnings = try options.expiryWarningsInterval()
        try await ServiceRuntime.run(configuration: configuration) { environment in
            let (scheduling, sinkChoice) = try options.resolve(dataDirectory: environment.dataDirectory)
            let sink: any OutboxSink
            let webhook: WebhookSink?
            switch sinkChoice {
            case .logFile(let path):
                sink = LogFileSink(path: path)
                webhook = nil
                environment.logger.info("customer notices are written to a log file (dev sink)", metadata: ["path": "\(path)"])
            case .webhook(let url):
                do { webhook = try WebhookSink(url: url) } catch { throw ConfigurationError("notice sink: \(error)") }
                sink = webhook!
            }
            let database = try await environment.openDatabase("scheduling.sqlite", migrations: SchedulingService.migrations)
            let directory = GRPCAccountsDirectory(targets: configuration.peers.accounts, signingKey: environment.signingKey,
                                                  subject: "scheduling", tls: environment.peerTLS)
            let scorecards = GRPCAgencyScorecards(targets: configuration.peers.visits, signingKey: environment.signingKey,
                                                  subject: "scheduling", tls: environment.peerTLS)
            let wake = DispatcherWake()
            let service = SchedulingService(database: database, clock: environment.clock, configuration: scheduling,
                                            accounts: directory, noticeWritten: { wake.fire() }, scorecards: scorecards)
            let dispatcher = OutboxDispatcher(
                database: database, topics: [SchedulingService.noticeTopic], sink: sink,
                claimLease: .seconds(environment.configuration.outboxClaimSeconds), nowMs: environment.clock.nowMs,
                logger: environment.logger, onDelivered: { db, message, deliveredMs in
                    try service.noticeDelivered(db, message: message, deliveredMs: deliveredMs)
                })
            wake.attach(dispatcher)
            var setup = ServiceSetup.serving(service.definition, serviceName: SchedulingService.serviceName, database: database,
                                             environment: environment)
            try await setup.hostWebhooks(.scheduling, database: database, events: service.store.events, environment: environment)
            setup.hostEventLogRetention(service.store.events, database: database, environment: environment)
            // Recalls of a suspended or exited agency's placed accounts, to accounts.
            let recalls = OutboxDispatcher(
                database: database, topics: [SchedulingService.recallTopic], sink: PlacementRecallSink(accounts: directory),
                claimLease: .seconds(environment.configuration.outboxClaimSeconds), nowMs: environment.clock.nowMs,
                logger: environment.logger)
            setup.background += [
                dispatcher,
                recalls,
                MissedAppointmentSweep(database: database, graceMinutes: scheduling.missedGraceMinutes, clock: environment.clock,
                                       logger: environment.logger),
            ]
            if let expiryWarnings {
                setup.background.append(ExpiryWarnings(service: service, logger: environment.logger, interval: expiryWarnings))
            }
            let closeDatabase = setup.onShutdown
            setup.onShutdown = {
                await directory.close()
                await scorecards.close()
                try? await webhook?.shutdown()
                await closeDatabase()
            }
            return setup
        }
    }
}
