import TestSupport
import Testing

@Suite("Committed generated code")
struct GeneratedCodeSyncTests {
    @Test("protoc-c output and generated Swift are in sync with proto/",
          .enabled(if: toolExists("protoc-c") && toolExists("protoc"),
                   "protoc-c or protoc is not installed (apt-get install protobuf-c-compiler protobuf-compiler)"))
    func inSync() throws {
        let result = try runProcess("bash", ["Scripts/generate-contracts.sh", "--check"])
        #expect(result.status == 0, "\(result.output)")
    }
}
