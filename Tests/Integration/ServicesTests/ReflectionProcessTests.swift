import Foundation
import TestSupport
import Testing

@Suite("Server reflection of the three services", .serialized)
struct ReflectionProcessTests {
    @Test("the stock reflection client lists, describes and calls every service without proto files; --reflection off turns it off",
          .timeLimit(.minutes(3)))
    func stockReflectionClient() async throws {
        let cluster = try await ServiceCluster()
        let off = try await ServiceCluster.start("accounts", directory: cluster.directory.appendingPathComponent("off"),
                                                 keyFile: cluster.keyFile, extra: ["--reflection", "off"])
        let token = try await cluster.token("platform")
        // Run from an empty directory: the script has no .proto file at hand.
        let script = repositoryRoot.appendingPathComponent("Tests/Integration/ServicesTests/Interop/reflection_client.py").path
        let result = try await runProcessDetached("sh", [
            "-c", "cd \"$1\" && exec python3 \"$2\" --accounts \"$3\" --scheduling \"$4\" --visits \"$5\" --token \"$6\" --off \"$7\"",
            "sh", try makeTemporaryDirectory().path, script, cluster.accounts.address, cluster.scheduling!.address,
            cluster.visits!.address, token, off.address,
        ])
        let stopped = await off.stop()
        let stops = await cluster.stopAll()
        print(result.output)
        #expect(result.status == 0, "\(result.output)")
        #expect(!result.output.contains("FAIL"), "\(result.output)")
        for check in ["accounts.reflection", "scheduling.reflection", "visits.reflection", "accounts.reflection_v1_one_stream",
                      "reflection_off"] {
            #expect(result.output.contains("ok \(check)"), "\(check) did not pass")
        }
        for stop in stops + [stopped] {
            #expect(stop.status == 0 && stop.reason == .exit, "\(stop.stderr.suffix(2000))")
        }
    }
}
