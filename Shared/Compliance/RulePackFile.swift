import Foundation
import Models

/// Rule packs as versioned data files (docs/DOMAIN.md ("Regulation as code")): a JSON
/// document with every number and every rule text of a pack, loaded and checked at start.
/// The built-in packs ship as such files (`Shared/Compliance/Packs/*.json`, embedded in the
/// binary); an operator may pass another file with `--rule-pack PATH`.
///
/// Format (keys in snake_case; `null` = the pack sets no such limit):
///
///     { "format": "doorstep.rule-pack/1", "id": "cn-2026", "version": "2026.1", "name": "…",
///       "language": "zh-Hans", "contact_hours_start_minutes": 480, …, "rules": [ {"id", "text", "source"} ] }
extension RulePack: Codable {
    /// The format tag every pack file carries; a file of another format is refused.
    public static let fileFormat = "doorstep.rule-pack/1"

    enum CodingKeys: String, CodingKey {
        case format, id, version, name, language
        case contactHoursStartMinutes = "contact_hours_start_minutes"
        case contactHoursEndMinutes = "contact_hours_end_minutes"
        case debtorAgreedTimeOverridesContactHours = "debtor_agreed_time_overrides_contact_hours"
        case debtorRequestTrustedRoles = "debtor_request_trusted_roles"
        case dailyConnectedCallsPerDebtor = "daily_connected_calls_per_debtor"
        case dailyCallAttemptsPerNumber = "daily_call_attempts_per_number"
        case weeklyCallAttempts = "weekly_call_attempts"
        case quietDaysAfterConversation = "quiet_days_after_conversation"
        case thirdPartyAfterConsecutiveFailures = "third_party_after_consecutive_failures"
        case crewSize = "crew_size"
        case advanceNoticeHours = "advance_notice_hours"
        case visitDailyCap = "visit_daily_cap"
        case visitWeeklyCap = "visit_weekly_cap"
        case visitCoolDownDays = "visit_cool_down_days"
        case inspectionValidityMonths = "inspection_validity_months"
        case retention, rules
        case complaintSLA = "complaint_sla"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let format = try c.decode(String.self, forKey: .format)
        guard format == Self.fileFormat else {
            throw DecodingError.dataCorruptedError(forKey: .format, in: c, debugDescription: "format '\(format)' is not \(Self.fileFormat)")
        }
        self.init(
            id: try c.decode(String.self, forKey: .id),
            version: try c.decode(String.self, forKey: .version),
            name: try c.decode(String.self, forKey: .name),
            language: try c.decode(String.self, forKey: .language),
            contactHoursStartMinutes: try c.decode(Int.self, forKey: .contactHoursStartMinutes),
            contactHoursEndMinutes: try c.decode(Int.self, forKey: .contactHoursEndMinutes),
            debtorAgreedTimeOverridesContactHours: try c.decode(Bool.self, forKey: .debtorAgreedTimeOverridesContactHours),
            debtorRequestTrustedRoles: try Self.decodeRoles(c),
            dailyConnectedCallsPerDebtor: try c.decodeIfPresent(Int.self, forKey: .dailyConnectedCallsPerDebtor),
            dailyCallAttemptsPerNumber: try c.decodeIfPresent(Int.self, forKey: .dailyCallAttemptsPerNumber),
            weeklyCallAttempts: try c.decodeIfPresent(Int.self, forKey: .weeklyCallAttempts),
            quietDaysAfterConversation: try c.decodeIfPresent(Int.self, forKey: .quietDaysAfterConversation),
            thirdPartyAfterConsecutiveFailures: try c.decode(Int.self, forKey: .thirdPartyAfterConsecutiveFailures),
            crewSize: try c.decode(Int.self, forKey: .crewSize),
            advanceNoticeHours: try c.decode(Int.self, forKey: .advanceNoticeHours),
            visitDailyCap: try c.decode(Int.self, forKey: .visitDailyCap),
            visitWeeklyCap: try c.decode(Int.self, forKey: .visitWeeklyCap),
            visitCoolDownDays: try c.decodeIfPresent(Int.self, forKey: .visitCoolDownDays) ?? 7,
            inspectionValidityMonths: try c.decodeIfPresent(Int.self, forKey: .inspectionValidityMonths),
            retention: try c.decodeIfPresent(RecordRetention.self, forKey: .retention),
            complaintSLA: try c.decodeIfPresent(ComplaintSLA.self, forKey: .complaintSLA),
            rules: try c.decode([Rule].self, forKey: .rules))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.fileFormat, forKey: .format)
        try c.encode(id, forKey: .id)
        try c.encode(version, forKey: .version)
        try c.encode(name, forKey: .name)
        try c.encode(language, forKey: .language)
        try c.encode(contactHoursStartMinutes, forKey: .contactHoursStartMinutes)
        try c.encode(contactHoursEndMinutes, forKey: .contactHoursEndMinutes)
        try c.encode(debtorAgreedTimeOverridesContactHours, forKey: .debtorAgreedTimeOverridesContactHours)
        try c.encode(debtorRequestTrustedRoles.map { Self.roleName($0) }, forKey: .debtorRequestTrustedRoles)
        try c.encode(dailyConnectedCallsPerDebtor, forKey: .dailyConnectedCallsPerDebtor)
        try c.encode(dailyCallAttemptsPerNumber, forKey: .dailyCallAttemptsPerNumber)
        try c.encode(weeklyCallAttempts, forKey: .weeklyCallAttempts)
        try c.encode(quietDaysAfterConversation, forKey: .quietDaysAfterConversation)
        try c.encode(thirdPartyAfterConsecutiveFailures, forKey: .thirdPartyAfterConsecutiveFailures)
        try c.encode(crewSize, forKey: .crewSize)
        try c.encode(advanceNoticeHours, forKey: .advanceNoticeHours)
        try c.encode(visitDailyCap, forKey: .visitDailyCap)
        try c.encode(visitWeeklyCap, forKey: .visitWeeklyCap)
        try c.encode(visitCoolDownDays, forKey: .visitCoolDownDays)
        try c.encode(inspectionValidityMonths, forKey: .inspectionValidityMonths)
        try c.encode(retention, forKey: .retention)
        try c.encode(complaintSLA, forKey: .complaintSLA)
        try c.encode(rules, forKey: .rules)
    }

    /// The pack in a JSON document, checked (see `problems`). Throws `RulePackFileError`
    /// naming the first problem.
    public static func decode(json: Data, source: String) throws(RulePackFileError) -> RulePack {
        let pack: RulePack
        do {
            pack = try JSONDecoder().decode(RulePack.self, from: json)
        } catch let error as DecodingError {
            throw RulePackFileError(source: source, problem: Self.describe(error))
        } catch {
            throw RulePackFileError(source: source, problem: "\(error)")
        }
        if let problem = pack.problems.first { throw RulePackFileError(source: source, problem: problem) }
        return pack
    }

    /// The pack in the file at `path` (see `decode(json:source:)`).
    public static func load(path: String) throws(RulePackFileError) -> RulePack {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RulePackFileError(source: path, problem: "cannot be read")
        }
        return try decode(json: data, source: path)
    }

    /// The pack as a JSON document (pretty-printed, keys sorted), the format `load` reads.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Everything wrong with the pack's values, in field order; empty = usable.
    public var problems: [String] {
        var found: [String] = []
        if id.isEmpty || id.count > 64 { found.append("id: must be 1-64 characters") }
        if version.isEmpty || version.count > 64 { found.append("version: must be 1-64 characters") }
        if !(0..<1440).contains(contactHoursStartMinutes) { found.append("contact_hours_start_minutes: must be 0-1439") }
        if !(1...1440).contains(contactHoursEndMinutes) || contactHoursEndMinutes <= contactHoursStartMinutes {
            found.append("contact_hours_end_minutes: must be after the start and at most 1440")
        }
        for (name, value) in [("daily_connected_calls_per_debtor", dailyConnectedCallsPerDebtor),
                              ("daily_call_attempts_per_number", dailyCallAttemptsPerNumber),
                              ("weekly_call_attempts", weeklyCallAttempts),
                              ("quiet_days_after_conversation", quietDaysAfterConversation),
                              ("inspection_validity_months", inspectionValidityMonths)] {
            if let value, value < 1 { found.append("\(name): must be at least 1, or null for no limit") }
        }
        if thirdPartyAfterConsecutiveFailures < 1 { found.append("third_party_after_consecutive_failures: must be at least 1") }
        if !(1...10).contains(crewSize) { found.append("crew_size: must be 1-10") }
        if !(0...720).contains(advanceNoticeHours) { found.append("advance_notice_hours: must be 0-720") }
        if visitDailyCap < 1 { found.append("visit_daily_cap: must be at least 1") }
        if visitWeeklyCap < visitDailyCap { found.append("visit_weekly_cap: must be at least visit_daily_cap") }
        if !(0...365).contains(visitCoolDownDays) { found.append("visit_cool_down_days: must be 0-365 (0 = no cool-down)") }
        var seen: Set<String> = []
        for (index, rule) in rules.enumerated() {
            if !RuleID.packRules.contains(where: { $0.rawValue == rule.id }) {
                found.append("rules[\(index)].id: unknown rule id '\(rule.id)'")
            }
            if !seen.insert(rule.id).inserted { found.append("rules[\(index)].id: '\(rule.id)' listed twice") }
            if rule.text.isEmpty { found.append("rules[\(index)].text: required") }
        }
        // Every limit the pack sets needs its rule text, so refusals can quote it.
        let limited: [(RuleID, Bool)] = [
            (.contactHours, true), (.dailyConnectedCalls, dailyConnectedCallsPerDebtor != nil),
            (.dailyCallAttempts, dailyCallAttemptsPerNumber != nil), (.weeklyCallAttempts, weeklyCallAttempts != nil),
            (.callAfterConversation, quietDaysAfterConversation != nil), (.crewSize, true), (.advanceNotice, true),
            (.visitDailyCap, true), (.visitWeeklyCap, true), (.visitCoolDown, visitCoolDownDays > 0),
            (.agencyInspection, inspectionValidityMonths != nil),
        ]
        for (rule, needed) in limited where needed && !seen.contains(rule.rawValue) {
            found.append("rules: no text for '\(rule.rawValue)', which the pack's numbers turn on")
        }
        return found
    }

    /// The roles a pack file may name in `debtor_request_trusted_roles`: the role names of
    /// bearer tokens.
    static let roleNames: [(name: String, role: TypeV1.Role)] = [
        ("platform", .platform), ("compliance", .compliance), ("agency_manager", .agencyManager),
        ("collector", .collector), ("service", .service),
    ]

    /// The bearer-token name of `role` ("platform", "agency_manager", ...), as pack files
    /// name roles.
    public static func roleName(_ role: TypeV1.Role) -> String {
        roleNames.first { $0.role == role }?.name ?? "\(role)"
    }

    /// `debtor_request_trusted_roles`: role names; absent = `["platform"]`.
    static func decodeRoles(_ c: KeyedDecodingContainer<CodingKeys>) throws -> [TypeV1.Role] {
        guard let names = try c.decodeIfPresent([String].self, forKey: .debtorRequestTrustedRoles) else { return [.platform] }
        return try names.map { name in
            guard let role = roleNames.first(where: { $0.name == name })?.role else {
                throw DecodingError.dataCorruptedError(
                    forKey: .debtorRequestTrustedRoles, in: c,
                    debugDescription: "unknown role '\(name)' (one of \(roleNames.map(\.name).joined(separator: ", ")))")
            }
            return role
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().drop(while: { $0 == "." }).description
        }
        switch error {
        case .keyNotFound(let key, let context):
            let prefix = path(context)
            return "\(prefix.isEmpty ? "" : prefix + ".")\(key.stringValue): required"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            let prefix = path(context)
            return prefix.isEmpty ? context.debugDescription : "\(prefix): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}

/// A rule pack file that cannot be used, in one line.
public struct RulePackFileError: Error, Sendable, CustomStringConvertible {
    public let source: String
    public let problem: String
    public var description: String { "rule pack \(source): \(problem)" }
}
