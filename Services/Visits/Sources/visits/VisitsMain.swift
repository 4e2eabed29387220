import ArgumentParser
import ServiceKit
import VisitsService

/// The visits service (docs/OPERATIONS.md).
@main
struct VisitsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "visits",
        abstract: "Doorstep visits service: check-in, outcomes, evidence chain, consequences, complaints (gRPC doorstep.visits.v1.Visits).")

    @OptionGroup var common: ServiceOptions<VisitsDefaults>
    @OptionGroup var options: VisitsOptions

    func run() async throws {
        try await VisitsServer.run(common: common, options: options)
    }
}
