/// The stable ids of the rule-pack rules, as listed in the CONVENTIONS comment at the top of
/// `proto/doorstep/type/v1/types.proto`. Every refusal names one of them in
/// `Violation.rule_id`; clients match on these strings, so they never change.
public enum RuleID {
    /// Contact only inside the pack's local contact window (cn-2026: 08:00-22:00).
    public static let contactHours = "contact-hours"
    /// Connected reminder calls per debtor per day (cn-2026: at most 3).
    public static let dailyConnectedCalls = "daily-connected-calls"
    /// Unanswered call attempts per number per day (cn-2026: at most 6).
    public static let dailyCallAttempts = "daily-call-attempts"
    /// Call attempts in 7 days (us-regf: at most 7).
    public static let weeklyCallAttempts = "weekly-call-attempts"
    /// No call within 7 days of a conversation (us-regf).
    public static let callAfterConversation = "call-after-conversation"
    /// Third parties only after the debtor is unreachable; never told debt details.
    public static let thirdPartyContact = "third-party-contact"
    /// Visiting crew size (cn-2026: at least 2).
    public static let crewSize = "crew-size"
    /// Notice of a visit's time and purpose (cn-2026: at least 24 h before the window).
    public static let advanceNotice = "advance-notice"
    /// Visits per account per debtor-local day (default at most 1).
    public static let visitDailyCap = "visit-daily-cap"
    /// Visits per account per 7 days (default at most 2).
    public static let visitWeeklyCap = "visit-weekly-cap"
    /// Agency licence valid on the visit date.
    public static let agencyLicence = "agency-licence"
    /// Agency inspected within the pack's period (cn-2026: 12 months) before the visit date.
    public static let agencyInspection = "agency-inspection"
    /// Agency active on the whitelist.
    public static let agencyStatus = "agency-status"
    /// Collector certification valid on the visit date.
    public static let collectorCertification = "collector-certification"
    /// Collector active (not suspended).
    public static let collectorStatus = "collector-status"
    /// A visit closes only with evidence (recording id + SHA-256).
    public static let evidenceRequired = "evidence-required"
    /// Retention period of collection records.
    public static let recordRetention = "record-retention"
    /// Complaint resolution deadline.
    public static let complaintSLA = "complaint-sla"

    /// Every rule-pack rule id, in the order of the types.proto list (the order in which
    /// checks report their violations).
    public static let all: [String] = [
        contactHours, dailyConnectedCalls, dailyCallAttempts, weeklyCallAttempts,
        callAfterConversation, thirdPartyContact, crewSize, advanceNotice, visitDailyCap,
        visitWeeklyCap, agencyLicence, agencyInspection, agencyStatus, collectorCertification,
        collectorStatus, evidenceRequired, recordRetention, complaintSLA,
    ]
}
