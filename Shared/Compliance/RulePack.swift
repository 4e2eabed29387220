import Foundation
import Models
import Validation

/// A named, versioned set of collection rules for one market: the numbers every compliance
/// check reads, and the text and source of every rule so that a refusal can quote them
/// (docs/DOMAIN.md ("Regulation as code")).
///
/// Every number is configuration: the built-in packs are in `RulePacks`, and a service may
/// load another pack with the same shape. A limit that is `nil` means the pack sets no such
/// limit (the check is skipped), never "zero allowed".
///
/// Times of day are minutes after local midnight in the debtor's time zone; days are the
/// debtor's local calendar days.
public struct RulePack: Sendable, Hashable {
    /// One rule of a pack as a refusal quotes it: `Violation.rule_id`, `rule_text` and
    /// `rule_source` (proto `doorstep.type.v1.Violation`).
    public struct Rule: Sendable, Hashable, Codable {
        /// The stable rule id, one of `RuleID.packRules` (e.g. "contact-hours"); a file's
        /// other ids are refused when it loads (`problems`).
        public var id: String
        /// The rule as the pack states it, in the pack's language, with the pack's numbers.
        public var text: String
        /// The regulation or document the rule comes from, as the pack cites it. For a rule
        /// whose number no regulation sets, it says that the number is a Doorstep default.
        public var source: String

        public init(id: String, text: String, source: String) {
            self.id = id
            self.text = text
            self.source = source
        }
    }

    /// How long collection records must be kept. Source for cn-2026:
    /// 《消费金融公司管理办法》(2024) (consumer finance, 5 years); 《商业银行信用卡业务监督管理办法》
    /// Art. 68 (credit cards, 2 years); PIPL Art. 56 (personal-information impact assessments
    /// and processing records, 3 years).
    public struct RecordRetention: Sendable, Hashable, Codable {
        enum CodingKeys: String, CodingKey {
            case consumerFinanceYears = "consumer_finance_years"
            case creditCardYears = "credit_card_years"
            case impactAssessmentYears = "impact_assessment_years"
        }

        /// Collection records and recordings of consumer-finance loans, in years (cn-2026: 5).
        public var consumerFinanceYears: Int
        /// Collection records and recordings of credit-card debts, in years (cn-2026: 2).
        public var creditCardYears: Int
        /// Personal-information impact assessments and processing records, in years
        /// (cn-2026: 3, PIPL Art. 56).
        public var impactAssessmentYears: Int

        public init(consumerFinanceYears: Int, creditCardYears: Int, impactAssessmentYears: Int) {
            self.consumerFinanceYears = consumerFinanceYears
            self.creditCardYears = creditCardYears
            self.impactAssessmentYears = impactAssessmentYears
        }
    }

    /// Deadlines for resolving a customer complaint, counted in days from its acceptance.
    /// Source for cn-2026: 《银行业保险业消费投诉处理管理办法》(2020): 15 days; complex cases
    /// 30 days; one approved extension of 30 days.
    public struct ComplaintSLA: Sendable, Hashable, Codable {
        enum CodingKeys: String, CodingKey {
            case standardDays = "standard_days"
            case complexDays = "complex_days"
            case extensionDays = "extension_days"
            case maxExtensions = "max_extensions"
        }

        /// Days to resolve a standard complaint (cn-2026: 15).
        public var standardDays: Int
        /// Days to resolve a complex complaint (cn-2026: 30).
        public var complexDays: Int
        /// Days one approved extension adds (cn-2026: 30).
        public var extensionDays: Int
        /// How many extensions may be approved (cn-2026: 1).
        public var maxExtensions: Int

        public init(standardDays: Int, complexDays: Int, extensionDays: Int, maxExtensions: Int) {
            self.standardDays = standardDays
            self.complexDays = complexDays
            self.extensionDays = extensionDays
            self.maxExtensions = maxExtensions
        }
    }

    /// The pack's stable id, e.g. "cn-2026"; carried in `Refusal.rule_pack_id`.
    public var id: String
    /// The pack's version, e.g. "2026.1"; carried in `Refusal.rule_pack_version`.
    public var version: String
    /// A human-readable name, in the pack's language.
    public var name: String
    /// BCP 47 language tag of the rule texts, e.g. "zh-Hans" or "en".
    public var language: String

    // MARK: Remote contact (calls and SMS)

    /// Start of the local contact window, in minutes after midnight, inclusive
    /// (`contact-hours`). cn-2026: 480 (08:00).
    public var contactHoursStartMinutes: Int
    /// End of the local contact window, in minutes after midnight, exclusive: a contact at
    /// exactly this minute is outside the window (`contact-hours`). cn-2026: 1320 (22:00).
    /// Must be greater than `contactHoursStartMinutes` (windows do not cross midnight).
    public var contactHoursEndMinutes: Int
    /// Whether a contact outside the window is allowed when the debtor explicitly asked to
    /// be contacted at that time (`ContactAttempt.debtor_agreed_time`). cn-2026: true
    /// ("unless the debtor agreed", docs/DOMAIN.md ("Regulation as code")).
    public var debtorAgreedTimeOverridesContactHours: Bool
    /// The caller roles whose record of a debtor's request for a visit window the pack
    /// accepts (`DebtorRequestedWindow`, which lets `contact-hours` pass where
    /// `debtorAgreedTimeOverridesContactHours` allows it). The exception must carry the
    /// debtor's own request on record, so by default only the lender's platform, which holds
    /// the recordings and messages, may state it: `[.platform]` (pack file
    /// `debtor_request_trusted_roles`, token role names, e.g. `["platform"]`).
    public var debtorRequestTrustedRoles: [TypeV1.Role]
    /// Connected calls per debtor per debtor-local day, all accounts, lenders and agencies
    /// combined (`daily-connected-calls`); nil = no limit. cn-2026: 3 (NIFA 2024).
    public var dailyConnectedCallsPerDebtor: Int?
    /// Unanswered call attempts per phone number per debtor-local day
    /// (`daily-call-attempts`); nil = no limit. cn-2026: 6 (CBA 2026).
    public var dailyCallAttemptsPerNumber: Int?
    /// Call attempts to one person in any 7 × 24 h (`weekly-call-attempts`); nil = no
    /// limit. us-regf: 7 (Regulation F, 12 CFR §1006.14(b)(2)(i)(A)).
    public var weeklyCallAttempts: Int?
    /// Debtor-local calendar days, starting with the day of a conversation with the debtor,
    /// during which no call may be placed to the debtor (`call-after-conversation`); nil =
    /// no such rule. us-regf: 7 (12 CFR §1006.14(b)(2)(i)(B): the day of the conversation is
    /// the first day of the seven-consecutive-day period).
    public var quietDaysAfterConversation: Int?
    /// Consecutive failed attempts on the debtor's own number after which the debtor counts
    /// as unreachable, so emergency contacts may be contacted (`third-party-contact`; an
    /// invalid own number makes the debtor unreachable at once). cn-2026: 3 (CBA 2026).
    public var thirdPartyAfterConsecutiveFailures: Int

    // MARK: Visits

    /// Minimum number of distinct collectors on a visit (`crew-size`). cn-2026: 2 (CBA 2026).
    public var crewSize: Int
    /// Minimum hours between the customer notice and the start of the visit window
    /// (`advance-notice`). 24 in every built-in pack: the source documents' "contact the
    /// customer in advance and tell them the time and purpose" (docs/DOMAIN.md
    /// ("Regulation as code")).
    public var advanceNoticeHours: Int
    /// Visits per account per debtor-local day (`visit-daily-cap`). Doorstep default 1.
    public var visitDailyCap: Int
    /// Visits per account per 7 days (`visit-weekly-cap`). Doorstep default 2.
    public var visitWeeklyCap: Int
    /// Debtor-local calendar days after the day of an account's last visit during which the
    /// account is not a visit candidate (`visit-cool-down`): visited on day D, it is a
    /// candidate again from day D + this number. 0 = no cool-down. Doorstep default 7 (pack
    /// file `visit_cool_down_days`; a file without it gets 7).
    public var visitCoolDownDays: Int
    /// An agency must have been inspected within this many months before the visit date
    /// (`agency-inspection`); nil = the pack requires no inspection. cn-2026: 12 (CBA 2026).
    public var inspectionValidityMonths: Int?

    // MARK: Records and complaints

    /// Retention periods of collection records (`record-retention`); nil = the pack sets none.
    public var retention: RecordRetention?
    /// Complaint resolution deadlines (`complaint-sla`); nil = the pack sets none.
    public var complaintSLA: ComplaintSLA?

    /// The pack's rules, at most one per id, each with its text and source.
    public var rules: [Rule]

    public init(
        id: String,
        version: String,
        name: String,
        language: String,
        contactHoursStartMinutes: Int,
        contactHoursEndMinutes: Int,
        debtorAgreedTimeOverridesContactHours: Bool,
        debtorRequestTrustedRoles: [TypeV1.Role] = [.platform],
        dailyConnectedCallsPerDebtor: Int?,
        dailyCallAttemptsPerNumber: Int?,
        weeklyCallAttempts: Int?,
        quietDaysAfterConversation: Int?,
        thirdPartyAfterConsecutiveFailures: Int,
        crewSize: Int,
        advanceNoticeHours: Int,
        visitDailyCap: Int,
        visitWeeklyCap: Int,
        visitCoolDownDays: Int = 7,
        inspectionValidityMonths: Int?,
        retention: RecordRetention?,
        complaintSLA: ComplaintSLA?,
        rules: [Rule]
    ) {
        self.id = id
        self.version = version
        self.name = name
        self.language = language
        self.contactHoursStartMinutes = contactHoursStartMinutes
        self.contactHoursEndMinutes = contactHoursEndMinutes
        self.debtorAgreedTimeOverridesContactHours = debtorAgreedTimeOverridesContactHours
        self.debtorRequestTrustedRoles = debtorRequestTrustedRoles
        self.dailyConnectedCallsPerDebtor = dailyConnectedCallsPerDebtor
        self.dailyCallAttemptsPerNumber = dailyCallAttemptsPerNumber
        self.weeklyCallAttempts = weeklyCallAttempts
        self.quietDaysAfterConversation = quietDaysAfterConversation
        self.thirdPartyAfterConsecutiveFailures = thirdPartyAfterConsecutiveFailures
        self.crewSize = crewSize
        self.advanceNoticeHours = advanceNoticeHours
        self.visitDailyCap = visitDailyCap
        self.visitWeeklyCap = visitWeeklyCap
        self.visitCoolDownDays = visitCoolDownDays
        self.inspectionValidityMonths = inspectionValidityMonths
        self.retention = retention
        self.complaintSLA = complaintSLA
        self.rules = rules
    }

    /// The pack's rule with this id, or nil when the pack has no such rule.
    public func rule(_ id: RuleID) -> Rule? {
        rules.first { $0.id == id.rawValue }
    }

    /// Whether the pack accepts a debtor's request for a visit window recorded by a caller
    /// of `role` (`debtorRequestTrustedRoles`).
    public func trustsDebtorRequest(from role: TypeV1.Role) -> Bool {
        debtorRequestTrustedRoles.contains(role)
    }

    /// "HH:MM" for a number of minutes after midnight (0...1440; 1440 is "24:00").
    public static func clockText(minutes: Int) -> String {
        let hours = minutes / 60
        let rest = minutes % 60
        return (hours < 10 ? "0" : "") + String(hours) + ":" + (rest < 10 ? "0" : "") + String(rest)
    }

    /// The contact window as "HH:MM-HH:MM", e.g. "08:00-22:00".
    public var contactWindowText: String {
        Self.clockText(minutes: contactHoursStartMinutes) + "-" + Self.clockText(minutes: contactHoursEndMinutes)
    }
}
