import AccountsService
import ArgumentParser
import ServiceKit

/// The accounts service (docs/OPERATIONS.md).
@main
struct AccountsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accounts",
        abstract: "Doorstep accounts service: debtors, accounts, delinquency (gRPC doorstep.accounts.v1.Accounts).")

    @OptionGroup var common: ServiceOptions<AccountsDefaults>
    @OptionGroup var options: AccountsOptions

    func run() async throws {
        try await AccountsServer.run(common: common, options: options)
    }
}
