import Events
import ServiceKit
import Storage

extension ServiceSetup {
    /// Serves webhook subscriptions to `events` (the six RPCs in `methods`) and runs their
    /// delivery beside the server, configured by `--webhook-*` (`environment.configuration.webhooks`);
    /// the secrets' key is loaded (or created) here, so a bad key file — or another key than the
    /// one the database's secrets are sealed with — fails the start.
    public mutating func hostWebhooks(_ methods: WebhookMethods, database: SQLDatabase, events: EventLog,
                                      environment: ServiceEnvironment) async throws(ConfigurationError) {
        let settings = environment.configuration.webhooks
        let cipher = try Webhooks.loadKey(settings: settings, dataDirectory: environment.dataDirectory, logger: environment.logger)
        let matches: Bool
        do {
            matches = try await Webhooks.verifyKey(cipher, database: database)
        } catch {
            throw ConfigurationError("database \(database.location): cannot check the webhook key: \(error)")
        }
        guard matches else {
            throw ConfigurationError("webhook key \(settings.keyFile ?? environment.dataDirectory + "/webhook.key") is not the key "
                                     + "database \(database.location) sealed its webhook secrets with; give every replica the same --webhook-key-file")
        }
        let webhooks = Webhooks(database: database, events: events, cipher: cipher, settings: settings, clock: environment.clock)
        definition.merge(webhooks.definition(methods))
        background.append(webhooks.delivery(logger: environment.logger))
    }
}
