import ArgumentParser
import ServiceKit
import VisitsService

/// The visits service (DESIGN.md §6).
@main
struct VisitsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "visits",
        abstract: "Doorstep visits service: visits, outcomes, evidence, complaints (gRPC doorstep.visits.v1.Visits).")

    @OptionGroup var common: ServiceOptions<VisitsDefaults>

    func run() async throws {
        try await VisitsServer.run(common: common)
    }
}
