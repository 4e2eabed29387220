import Foundation
import TestSupport
import Testing

/// Scripts/run.sh's choice of database. (Starting the system itself binds the fixed ports
/// 50051-50053, so that is left to a person; this checks what can be checked side by side
/// with other suites.)
@Suite("Scripts/run.sh")
struct RunScriptTests {
    @Test("an unknown DOORSTEP_DATABASE is refused with one line and exit status 2, before anything is installed, built or created")
    func unknownDatabase() async throws {
        let data = temporaryPath("run-data")
        // `timeout`: should the check ever come after the start, the test still ends.
        let result = try await runProcessDetached("timeout", [
            "60", "env", "DOORSTEP_DATABASE=mysql", "DOORSTEP_DATA_ROOT=\(data)", "SKIP_INSTALL=1", "SKIP_BUILD=1",
            "bash", repositoryRoot.appendingPathComponent("Scripts/run.sh").path,
        ])
        #expect(result.status == 2, "\(result.output)")
        let lines = result.output.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains("DOORSTEP_DATABASE") && lines[0].contains("mysql"), "\(result.output)")
        #expect(!FileManager.default.fileExists(atPath: data), "run.sh created \(data) before refusing")
    }
}
