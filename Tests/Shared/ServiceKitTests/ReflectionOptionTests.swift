import ServiceKit
import Testing

private enum TestDefaults: ServiceDefaults {
    static let name = "visits"
    static let defaultPort = 50053
    static let defaultMetricsPort = 9103
}

/// `--reflection on|off` (DOORSTEP_REFLECTION): server reflection is on unless turned off.
@Suite("Reflection option")
struct ReflectionOptionTests {
    static func resolve(_ arguments: [String], _ environment: [String: String] = [:]) throws -> ServiceConfiguration {
        try ServiceOptions<TestDefaults>.parse(arguments).resolve(environment: environment)
    }

    @Test("on by default; off by flag or environment; the flag wins over the environment")
    func values() throws {
        #expect(try Self.resolve([]).reflection)
        #expect(try Self.resolve(["--reflection=off"]).reflection == false)
        #expect(try Self.resolve(["--reflection", "OFF"]).reflection == false)
        #expect(try Self.resolve([], ["DOORSTEP_REFLECTION": "off"]).reflection == false)
        #expect(try Self.resolve(["--reflection", "on"], ["DOORSTEP_REFLECTION": "off"]).reflection)
        #expect(try Self.resolve([], ["DOORSTEP_REFLECTION": ""]).reflection, "an empty variable counts as unset")
    }

    @Test("anything but on or off stops the start with one line naming its source")
    func refusals() {
        let flag = #expect(throws: ConfigurationError.self) { _ = try Self.resolve(["--reflection", "yes"]) }
        #expect(flag?.description == "--reflection: 'yes' is not on or off")
        let variable = #expect(throws: ConfigurationError.self) { _ = try Self.resolve([], ["DOORSTEP_REFLECTION": "0"]) }
        #expect(variable?.description == "DOORSTEP_REFLECTION: '0' is not on or off")
    }
}
