import Compliance
import Foundation
import TestSupport
import Testing

/// Rule packs as versioned data files: the built-in files load, round-trip, state their own
/// numbers, and a bad file is refused with the field at fault.
@Suite("Rule pack files")
struct RulePackFileTests {
    @Test("every built-in pack loads from its embedded file and round-trips through JSON", arguments: RulePacks.all.map(\.id))
    func roundTrip(id: String) throws {
        let pack = try #require(RulePacks.named(id))
        #expect(pack.problems == [])
        let again = try RulePack.decode(json: try pack.jsonData(), source: "memory")
        #expect(again == pack)
    }

    @Test("each rule text states the pack's own numbers", arguments: RulePacks.all.map(\.id))
    func textsMatchNumbers(id: String) throws {
        let pack = try #require(RulePacks.named(id))
        let hours = try #require(pack.rule(.contactHours))
        #expect(hours.text.contains(RulePack.clockText(minutes: pack.contactHoursStartMinutes)))
        #expect(hours.text.contains(RulePack.clockText(minutes: pack.contactHoursEndMinutes)))
        #expect(try #require(pack.rule(.crewSize)).text.contains(String(pack.crewSize)))
        #expect(try #require(pack.rule(.advanceNotice)).text.contains(String(pack.advanceNoticeHours)))
        #expect(try #require(pack.rule(.visitDailyCap)).text.contains(String(pack.visitDailyCap)))
        #expect(try #require(pack.rule(.visitWeeklyCap)).text.contains(String(pack.visitWeeklyCap)))
        #expect(pack.visitCoolDownDays == 7)
        #expect(try #require(pack.rule(.visitCoolDown)).text.contains(String(pack.visitCoolDownDays)))
        if let limit = pack.dailyConnectedCallsPerDebtor {
            #expect(try #require(pack.rule(.dailyConnectedCalls)).text.contains(String(limit)))
        }
        if let months = pack.inspectionValidityMonths {
            #expect(try #require(pack.rule(.agencyInspection)).text.contains(String(months)))
        }
    }

    @Test("the repository's pack files are the ones embedded")
    func filesOnDisk() throws {
        let directory = repositoryRoot.appendingPathComponent("Shared/Compliance/Packs")
        for pack in RulePacks.all {
            let loaded = try RulePack.load(path: directory.appendingPathComponent("\(pack.id).json").path)
            #expect(loaded == pack)
        }
    }

    @Test("resolve takes a built-in id or a file path; unknown ids and bad files are refused in one line")
    func resolve() throws {
        #expect(try RulePacks.resolve("us-regf").id == "us-regf")
        #expect(throws: RulePackFileError.self) { try RulePacks.resolve("xx-1999") }

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rulepack-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var custom = RulePacks.cn2026
        custom.id = "cn-2026-pilot"
        custom.version = "2026.2"
        custom.visitWeeklyCap = 3
        custom.visitCoolDownDays = 10
        let path = directory.appendingPathComponent("pilot.json").path
        try custom.jsonData().write(to: URL(fileURLWithPath: path))
        let loaded = try RulePacks.resolve(path)
        #expect(loaded.id == "cn-2026-pilot")
        #expect(loaded.visitWeeklyCap == 3)
        #expect(loaded.visitCoolDownDays == 10)

        func problem(_ edit: (inout [String: Any]) -> Void) throws -> String {
            var object = try #require(JSONSerialization.jsonObject(with: try RulePacks.cn2026.jsonData()) as? [String: Any])
            edit(&object)
            let data = try JSONSerialization.data(withJSONObject: object)
            do {
                _ = try RulePack.decode(json: data, source: "edited.json")
                return ""
            } catch {
                return error.description
            }
        }
        #expect(try problem { $0["contact_hours_end_minutes"] = 400 }.contains("contact_hours_end_minutes: must be after the start"))
        #expect(try problem { $0["crew_size"] = 0 }.contains("crew_size: must be 1-10"))
        #expect(try problem { $0["format"] = "other/9" }.contains("format"))
        #expect(try problem { $0.removeValue(forKey: "visit_daily_cap") }.contains("visit_daily_cap: required"))
        #expect(try problem { $0["rules"] = [["id": "no-such-rule", "text": "x", "source": ""]] }.contains("unknown rule id 'no-such-rule'"))
        #expect(try problem { $0["rules"] = [] as [Any] }.contains("no text for 'contact-hours'"))
        #expect(try problem { _ in }.isEmpty)
        // The visit cool-down: a file without it gets 7 days; 0 turns it off (no rule text
        // needed then); out of range or turned on without its text is refused.
        let withoutCoolDown = try #require(JSONSerialization.jsonObject(with: try RulePacks.cn2026.jsonData()) as? [String: Any])
            .filter { $0.key != "visit_cool_down_days" }
        #expect(try RulePack.decode(json: try JSONSerialization.data(withJSONObject: withoutCoolDown), source: "older.json").visitCoolDownDays == 7)
        #expect(try problem { $0["visit_cool_down_days"] = -1 }.contains("visit_cool_down_days: must be 0-365"))
        #expect(try problem { $0["visit_cool_down_days"] = 366 }.contains("visit_cool_down_days: must be 0-365"))
        #expect(try problem {
            $0["visit_cool_down_days"] = 0
            $0["rules"] = ($0["rules"] as? [[String: Any]] ?? []).filter { $0["id"] as? String != "visit-cool-down" }
        }.isEmpty)
        #expect(try problem {
            $0["rules"] = ($0["rules"] as? [[String: Any]] ?? []).filter { $0["id"] as? String != "visit-cool-down" }
        }.contains("no text for 'visit-cool-down'"))
        #expect(throws: RulePackFileError.self) { try RulePack.load(path: directory.appendingPathComponent("missing.json").path) }
    }
}
