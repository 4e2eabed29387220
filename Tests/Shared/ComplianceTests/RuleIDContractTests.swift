import Compliance
import Foundation
import Testing
import TestSupport

/// The rule ids the services emit (`RuleID`) against the rule ids the contract documents:
/// clients match on these strings, so an id emitted but undocumented, or documented but never
/// emitted, is a silent contract break. And no rule id is typed as a string in the services.
@Suite("Rule ids: every emitted id is documented in the contract, and only RuleID spells them")
struct RuleIDContractTests {
    /// The contract's published proto files.
    static var protoFiles: [URL] {
        let root = repositoryRoot.appendingPathComponent("proto/doorstep")
        let files = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)?.compactMap { $0 as? URL } ?? []
        return files.filter { $0.pathExtension == "proto" && !$0.path.contains("/testing/") }
            .sorted { $0.path < $1.path }
    }

    /// Every rule id the proto comments document, with where: a kebab-case word in backticks
    /// (`` `appointment-state` ``, as each RPC's errors name them), or the first word of an
    /// entry of a rule list (types.proto "Rule ids", the Scheduling service's "Rules
    /// evaluated": `//   contact-hours      whole window ...`). Names starting with `grpc-`
    /// are gRPC's metadata (gRPC reserves the prefix), not rule ids.
    static func documentedRuleIDs() throws -> [String: String] {
        let backticked = try NSRegularExpression(pattern: "`([a-z0-9]+(?:-[a-z0-9]+)+)`")
        let listEntry = try NSRegularExpression(pattern: "^//\\s{2,}([a-z0-9]+(?:-[a-z0-9]+)+)\\s{2,}\\S")
        var found: [String: String] = [:]
        for file in protoFiles {
            let text = try String(contentsOf: file, encoding: .utf8)
            for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = rawLine.trimmingCharacters(in: .whitespaces)
                guard line.hasPrefix("//") else { continue }
                let range = NSRange(line.startIndex..., in: line)
                var ids = backticked.matches(in: line, range: range).map { String(line[Range($0.range(at: 1), in: line)!]) }
                if let entry = listEntry.firstMatch(in: line, range: range) {
                    ids.append(String(line[Range(entry.range(at: 1), in: line)!]))
                }
                for id in ids where !id.hasPrefix("grpc-") && found[id] == nil {
                    found[id] = "\(file.lastPathComponent):\(number + 1)"
                }
            }
        }
        return found
    }

    @Test("the proto files document every rule id in RuleID, and no other")
    func documentedIsEmitted() throws {
        #expect(!Self.protoFiles.isEmpty, "no proto files under \(repositoryRoot.path)/proto/doorstep")
        let documented = try Self.documentedRuleIDs()
        let emitted = Set(RuleID.allCases.map(\.rawValue))
        let undocumented = emitted.subtracting(documented.keys).sorted()
        let neverEmitted = documented.filter { !emitted.contains($0.key) }.map { "\($0.key) (\($0.value))" }.sorted()
        #expect(undocumented == [], "emitted (in RuleID) but not documented in proto/doorstep: document each where it is returned")
        #expect(neverEmitted == [], "documented in proto/doorstep but not emitted (not in RuleID)")
        // The pack rules are the ones the types.proto list names.
        #expect(RuleID.allCases.allSatisfy { !$0.rawValue.hasPrefix("grpc-") }, "grpc- is gRPC's metadata prefix")
    }

    @Test("every rule has a statement, and pack rules are the ids a pack file may carry")
    func statements() {
        for rule in RuleID.allCases {
            #expect(!rule.statement.isEmpty, "\(rule.rawValue)")
        }
        #expect(RuleID.packRules.count == 19)
        for pack in RulePacks.all {
            for rule in pack.rules {
                #expect(RuleID(rawValue: rule.id)?.source == .pack, "\(pack.id): \(rule.id)")
            }
        }
    }

    /// Swift sources of the services and shared modules, generated code left out.
    static var swiftSources: [URL] {
        ["Shared", "Services"].flatMap { folder -> [URL] in
            let root = repositoryRoot.appendingPathComponent(folder)
            let files = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)?.compactMap { $0 as? URL } ?? []
            return files.filter { $0.pathExtension == "swift" && !$0.path.contains("/Generated/") && !$0.path.contains("/.build/") }
        }
    }

    @Test("no rule id is typed as a string outside RuleID: a violation is made from a RuleID only")
    func noStringRuleIDs() throws {
        let ids = Set(RuleID.allCases.map { "\"\($0.rawValue)\"" })
        // `ruleId:` with anything but a RuleID's raw value (a literal, a String variable).
        let stringArgument = try NSRegularExpression(pattern: "ruleId:(?!\\s*[\\w.]*rawValue\\b)")
        var offences: [String] = []
        let sources = Self.swiftSources
        #expect(sources.count > 50, "found only \(sources.count) sources under \(repositoryRoot.path)")
        for file in sources where file.lastPathComponent != "RuleID.swift" {
            let text = try String(contentsOf: file, encoding: .utf8)
            for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = rawLine.trimmingCharacters(in: .whitespaces)
                if line.hasPrefix("//") { continue }
                let place = "\(file.lastPathComponent):\(number + 1): \(line)"
                if ids.contains(where: { line.contains($0) }) { offences.append(place) }
                if stringArgument.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)) != nil { offences.append(place) }
                if line.contains(".ruleId =") { offences.append(place) }
            }
        }
        #expect(offences == [], "rule ids typed as strings: use RuleID")
    }
}
