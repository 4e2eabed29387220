import ArgumentParser
import Compliance
import Foundation
import ServiceKit
import Storage

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

    public init() {}

    public static var rulePacks: [String] { RulePacks.all.map(\.id) }

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
            return .serving(service.definition, serviceName: AccountsService.serviceName, database: database, environment: environment)
        }
    }
}
