import ArgumentParser
import Compliance
import Events
import Foundation
import ServiceKit
import Storage
import Webhooks

/// Flags of the `accounts` executable beyond the common ones.
public struct AccountsOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "AES-256 key (base64, 32 bytes) sealing debtors' personal data at rest. Env DOORSTEP_DATA_KEY_FILE. Default: dev mode, <data-dir>/data.key, generated when absent.",
        valueName: "path"))
    public var dataKeyFile: String?

    @Option(help: ArgumentHelp(
        "Rule pack: cn-2026, us-regf, uk-conc, or the path of a pack file (see `doorstep rule-pack show`): contact hours and frequency, national-ID rules. Env DOORSTEP_RULE_PACK. Default cn-2026.",
        valueName: "id|path"))
    public var rulePack: String?

    @Option(help: ArgumentHelp(
        "Decoded accounts GetAccount keeps, each checked against the stored bytes on every read; 0 turns the memo off. Env DOORSTEP_READ_CACHE_ENTRIES. Default 4096.",
        valueName: "n"))
    public var readCacheEntries: Int?

    @Option(help: ArgumentHelp(
        "Debtor-local time (HH:MM, 24 h) at which the service runs the stage engine for each account's new day by itself, or 'off'. Env DOORSTEP_NIGHTLY_EVALUATION_TIME. Default 00:30.",
        valueName: "HH:MM|off"))
    public var nightlyEvaluationTime: String?

    @Option(help: ArgumentHelp(
        "How often the nightly evaluation looks for accounts whose day has begun (1-3600). Env DOORSTEP_NIGHTLY_EVALUATION_INTERVAL_SECONDS. Default 300.",
        valueName: "seconds"))
    public var nightlyEvaluationIntervalSeconds: Int?

    @Option(help: ArgumentHelp(
        "How often the service anonymises debtors past their retention (1-86400), or 'off' (0 = off). Env DOORSTEP_RETENTION_INTERVAL_SECONDS. Default 3600.",
        valueName: "seconds|off"))
    public var retentionIntervalSeconds: String?

    public init() {}

    /// How often the retention job runs (`RetentionSweep`); nil when it is off.
    public func retentionInterval(environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigurationError) -> Duration? {
        try OptionSource(environment: environment).retentionInterval(retentionIntervalSeconds)
    }

    public static var rulePacks: [String] { RulePacks.all.map(\.id) }

    /// The nightly evaluation these flags ask for: when a debtor-local day starts for it (ms
    /// after midnight) and how often it looks; nil when it is off.
    public func nightlyEvaluation(environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigurationError)
        -> (dayStartMs: Int64, interval: Duration)? {
        let options = OptionSource(environment: environment)
        let time = options.text(nightlyEvaluationTime, "DOORSTEP_NIGHTLY_EVALUATION_TIME")
        let seconds = try options.number(nightlyEvaluationIntervalSeconds, "DOORSTEP_NIGHTLY_EVALUATION_INTERVAL_SECONDS", in: 1...3600) ?? 300
        guard let (value, source) = time else { return (30 * 60_000, .seconds(seconds)) }
        if value == "off" { return nil }
        let parts = value.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ $0.count == 2 }), let hour = Int(parts[0]), let minute = Int(parts[1]),
              (0...23).contains(hour), (0...59).contains(minute)
        else { throw ConfigurationError("\(source): '\(value)' is not HH:MM (00:00-23:59) or off") }
        return (Int64(hour * 60 + minute) * 60_000, .seconds(seconds))
    }

    /// The accounts service configuration these flags (or their environment) ask for.
    public func resolve(environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigurationError) -> (configuration: AccountsService.Configuration, dataKeyFile: String?) {
        let options = OptionSource(environment: environment)
        let name = options.text(rulePack, "DOORSTEP_RULE_PACK")?.value ?? "cn-2026"
        let pack: RulePack
        do { pack = try RulePacks.resolve(name) } catch { throw ConfigurationError(error.description) }
        var configuration = AccountsService.Configuration()
        configuration.debtorRules.requirePRCNationalID = pack.id.hasPrefix("cn-")
        configuration.rulePack = pack
        configuration.readCacheEntries = try options.number(readCacheEntries, "DOORSTEP_READ_CACHE_ENTRIES", in: 0...1_000_000) ?? 4096
        return (configuration, options.text(dataKeyFile, "DOORSTEP_DATA_KEY_FILE")?.value)
    }
}

public enum AccountsDefaults: ServiceDefaults {
    public static let name = "accounts"
    public static let defaultPort = 50051
    public static let defaultMetricsPort = 9101
}

/// Runs the accounts service process.
public enum AccountsServer {
    public static func run(common: ServiceOptions<AccountsDefaults>, options: AccountsOptions) async throws {
        let configuration = try common.resolve()
        let (accounts, dataKeyFile) = try options.resolve()
        let nightly = try options.nightlyEvaluation()
        let retention = try options.retentionInterval()
        try await ServiceRuntime.run(configuration: configuration) { environment in
            let keyPath = dataKeyFile ?? environment.dataDirectory + "/data.key"
            let key: DataCipher
            do {
                let loaded = try DataCipher.loadKey(path: keyPath, create: dataKeyFile == nil)
                if loaded.created {
                    environment.logger.warning("dev mode: generated a data key in the data directory; set --data-key-file in production",
                                               metadata: ["key-file": "\(keyPath)"])
                }
                key = DataCipher(key: loaded.key)
            } catch let problem as KeyFileProblem {
                throw ConfigurationError(problem.description)
            }
            let database = try await environment.openDatabase("accounts.sqlite", migrations: AccountsService.migrations)
            let keyMatches: Bool
            do {
                keyMatches = try await AccountsStore(database: database, cipher: key).verifyDataKey()
            } catch {
                await database.close()
                throw ConfigurationError("database \(database.location): cannot check the data key: \(error)")
            }
            guard keyMatches else {
                await database.close()
                throw ConfigurationError(
                    "data key \(keyPath) is not the key database \(database.location) is sealed with; give every replica the same --data-key-file")
            }
            let service = AccountsService(database: database, cipher: key, configuration: accounts, clock: environment.clock)
            let started = ContinuousClock.now
            if let ranked = try await service.backfillRanking() {
                environment.logger.notice("visit-candidate ranking filled", metadata: [
                    "accounts": "\(ranked)", "duration": "\(ContinuousClock.now - started)"])
            }
            var setup = ServiceSetup.serving(service.definition, serviceName: AccountsService.serviceName, database: database,
                                             environment: environment)
            try await setup.hostWebhooks(.accounts, database: database, events: service.store.events, environment: environment)
            setup.hostEventLogRetention(service.store.events, database: database, environment: environment)
            if let nightly {
                setup.background.append(NightlyEvaluation(service: service, database: database, clock: environment.clock,
                                                          logger: environment.logger, dayStartMs: nightly.dayStartMs,
                                                          interval: nightly.interval))
            }
            if let retention {
                setup.background.append(RetentionSweep(service: service, database: database, clock: environment.clock,
                                                       logger: environment.logger, interval: retention))
            }
            return setup
        }
    }
}
