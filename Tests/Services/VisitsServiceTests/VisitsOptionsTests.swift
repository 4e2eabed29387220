import ArgumentParser
import Compliance
import ServiceKit
import Testing
import VisitsService

/// `visits` flags and their DOORSTEP_* variables (flag > environment > default), through
/// ServiceKit's `OptionSource`.
@Suite("visits options")
struct VisitsOptionsTests {
    static func resolve(_ arguments: [String], _ environment: [String: String] = [:]) throws -> VisitsConfiguration {
        try VisitsOptions.parse(arguments).resolve(environment: environment)
    }

    static func failure(_ arguments: [String], _ environment: [String: String] = [:]) -> String {
        do {
            _ = try resolve(arguments, environment)
            return "resolved"
        } catch {
            return "\(error)"
        }
    }

    @Test("defaults; environment; a flag beats the environment; an empty variable is unset")
    func precedence() throws {
        let defaults = try Self.resolve([])
        #expect(defaults.checkInGraceMinutes == 15 && defaults.geofenceMeters == 200)
        #expect(defaults.defaultTimeZone == "Asia/Shanghai" && defaults.rulePack.id == "cn-2026")
        let fromEnvironment = try Self.resolve([], ["DOORSTEP_GEOFENCE_METERS": "350", "DOORSTEP_DEFAULT_TIME_ZONE": "Europe/London",
                                                    "DOORSTEP_RULE_PACK": "uk-conc", "DOORSTEP_CHECK_IN_GRACE_MINUTES": ""])
        #expect(fromEnvironment.geofenceMeters == 350 && fromEnvironment.defaultTimeZone == "Europe/London")
        #expect(fromEnvironment.rulePack.id == "uk-conc" && fromEnvironment.checkInGraceMinutes == 15)
        let flagged = try Self.resolve(["--geofence-meters", "120"], ["DOORSTEP_GEOFENCE_METERS": "350"])
        #expect(flagged.geofenceMeters == 120)
    }

    @Test("a bad value names where it came from")
    func errors() {
        #expect(Self.failure(["--geofence-meters", "5"]) == "--geofence-meters: 5 is outside 10...5000")
        #expect(Self.failure([], ["DOORSTEP_CHECK_IN_GRACE_MINUTES": "soon"]) == "DOORSTEP_CHECK_IN_GRACE_MINUTES: 'soon' is not a number")
        #expect(Self.failure([], ["DOORSTEP_CHECK_IN_GRACE_MINUTES": "241"]) == "DOORSTEP_CHECK_IN_GRACE_MINUTES: 241 is outside 0...240")
        #expect(Self.failure(["--default-time-zone", "Mars/Olympus"]) == "--default-time-zone: unknown IANA zone 'Mars/Olympus'")
        #expect(Self.failure([], ["DOORSTEP_RULE_PACK": "/nonexistent/pack.json"]) != "resolved")
    }

    @Test("OptionSource: flag names, text sources, numbers of any type")
    func optionSource() throws {
        #expect(OptionSource.flagName(of: "DOORSTEP_MAX_CONCURRENT_STREAMS") == "max-concurrent-streams")
        let source = OptionSource(environment: ["DOORSTEP_SPEED_KMH": "22.5", "DOORSTEP_EMPTY": ""])
        #expect(source.text("x", "DOORSTEP_SPEED_KMH")?.source == "--speed-kmh")
        #expect(source.text(nil, "DOORSTEP_SPEED_KMH")?.source == "DOORSTEP_SPEED_KMH")
        #expect(source.text(nil, "DOORSTEP_EMPTY") == nil)
        #expect(try source.number(Double?.none, "DOORSTEP_SPEED_KMH", in: 1.0...200.0) == 22.5)
        #expect(try source.number(Int?.none, "DOORSTEP_UNSET", in: 1...2) == nil)
    }
}
