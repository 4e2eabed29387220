import ArgumentParser
import SchedulingService
import ServiceKit

/// The scheduling service (docs/OPERATIONS.md).
@main
struct SchedulingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduling",
        abstract: "Doorstep scheduling service: agencies, collectors, compliant appointments, customer notices, day plans (gRPC doorstep.scheduling.v1.Scheduling).")

    @OptionGroup var common: ServiceOptions<SchedulingDefaults>
    @OptionGroup var options: SchedulingOptions

    func run() async throws {
        try await SchedulingServer.run(common: common, options: options)
    }
}
