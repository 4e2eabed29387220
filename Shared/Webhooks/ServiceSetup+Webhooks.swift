import Events
import ServiceKit
import Storage

extension ServiceSetup {
    /// Serves webhook subscriptions to `events` (the six RPCs in `methods`) and runs their
    /// delivery beside the server, configured by `--webhook-*` (`environment.configuration.webhooks`);
    /// the secrets' key is loaded (or created) here, so a bad key file fails the start.
    public mutating func hostWebhooks(_ methods: WebhookMethods, database: SQLDatabase, events: EventLog,
                                      environment: ServiceEnvironment) throws(ConfigurationError) {
        let settings = environment.configuration.webhooks
        let cipher = try Webhooks.loadKey(settings: settings, dataDirectory: environment.dataDirectory, logger: environment.logger)
        let webhooks = Webhooks(database: database, events: events, cipher: cipher, settings: settings, clock: environment.clock)
        definition.merge(webhooks.definition(methods))
        background.append(webhooks.delivery(logger: environment.logger))
    }
}
