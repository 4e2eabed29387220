import Models

/// Every rule id the services emit — in `Violation.rule_id`, in the message of a
/// FAILED_PRECONDITION, and in `BudgetLine.rule_id` — each with what the rule says and
/// where its text comes from. Clients match on these strings, so a raw value never changes.
///
/// The contract documents every id (the list at the top of `proto/doorstep/type/v1/types.proto`,
/// the rule list of the Scheduling service, and each RPC's errors); `RuleIDContractTests`
/// fails when an id here is undocumented or a documented id is not here.
///
/// A `Violation` is made only from a `RuleID` (`violation(quoting:field:subject:_:)`, or for a
/// single precondition `DomainError.refused(rule:_:subjectID:)` in domain code and
/// `RPCError.refused(rule:_:subjectID:)` in a handler), never from a string:
/// `RuleIDContractTests` also fails on a rule id typed anywhere else.
public enum RuleID: String, CaseIterable, Sendable, Hashable {
    /// Where a rule's text comes from.
    public enum Source: Sendable, Hashable {
        /// A rule of the rule pack: its numbers, text and regulation are the pack's
        /// (`RulePack.rules`); a pack file lists only these ids.
        case pack
        /// A rule of Doorstep's own (a booking rule, a state machine, a consistency check):
        /// its text is `statement`; `Violation.rule_source` stays empty.
        case engine
    }

    // MARK: Rule-pack rules, in the order of the types.proto list

    case contactHours = "contact-hours"
    case dailyConnectedCalls = "daily-connected-calls"
    case dailyCallAttempts = "daily-call-attempts"
    case weeklyCallAttempts = "weekly-call-attempts"
    case callAfterConversation = "call-after-conversation"
    case thirdPartyContact = "third-party-contact"
    case crewSize = "crew-size"
    case advanceNotice = "advance-notice"
    case visitDailyCap = "visit-daily-cap"
    case visitWeeklyCap = "visit-weekly-cap"
    case visitCoolDown = "visit-cool-down"
    case agencyLicence = "agency-licence"
    case agencyInspection = "agency-inspection"
    case agencyStatus = "agency-status"
    case collectorCertification = "collector-certification"
    case collectorStatus = "collector-status"
    case evidenceRequired = "evidence-required"
    case recordRetention = "record-retention"
    case complaintSLA = "complaint-sla"

    // MARK: Doorstep's visit-booking rules (scheduling.proto service comment)

    case visitWindowLength = "visit-window-length"
    case crewSameAgency = "crew-same-agency"
    case agencyRegion = "agency-region"
    case collectorShift = "collector-shift"
    case collectorCapacity = "collector-capacity"
    case collectorDoubleBooked = "collector-double-booked"
    case accountStage = "account-stage"
    case accountHold = "account-hold"
    case debtorLocation = "debtor-location"

    // MARK: Scheduling: state machines and the contact budget

    case appointmentState = "appointment-state"
    case agencyState = "agency-state"
    case suspensionLifted = "suspension-lifted"
    case dailySMS = "daily-sms"

    // MARK: Visits: check-in, outcome, check-out, complaints

    case checkInWindow = "check-in-window"
    case checkInGeofence = "check-in-geofence"
    case idShown = "id-shown"
    case visitState = "visit-state"
    case crewPresent = "crew-present"
    case outcomeRequired = "outcome-required"
    case complaintState = "complaint-state"
    case complaintExtensionOnce = "complaint-extension-once"

    // MARK: Accounts: promises, plans, payments, holds, closure

    case promiseAmount = "promise-amount"
    case promiseHorizon = "promise-horizon"
    case planSum = "plan-sum"
    case planReductionLimit = "plan-reduction-limit"
    case planMaxInstalments = "plan-max-instalments"
    case planHorizon = "plan-horizon"
    case planState = "plan-state"
    case planStale = "plan-stale"
    case paymentExceedsOutstanding = "payment-exceeds-outstanding"
    case holdReleased = "hold-released"
    case legalReferralDPD = "legal-referral-dpd"
    case writeOffDPD = "write-off-dpd"

    // MARK: Accounts: visit candidates deferred

    case promisePending = "promise-pending"
    case planKept = "plan-kept"

    // MARK: Accounts: placements with agencies

    case placementActive = "placement-active"
    case placementMissing = "placement-missing"

    /// Whether the rule's text is the pack's or Doorstep's own.
    public var source: Source {
        switch self {
        case .contactHours, .dailyConnectedCalls, .dailyCallAttempts, .weeklyCallAttempts, .callAfterConversation,
             .thirdPartyContact, .crewSize, .advanceNotice, .visitDailyCap, .visitWeeklyCap, .visitCoolDown, .agencyLicence,
             .agencyInspection, .agencyStatus, .collectorCertification, .collectorStatus, .evidenceRequired,
             .recordRetention, .complaintSLA:
            .pack
        default:
            .engine
        }
    }

    /// What the rule says. For an engine rule this is the text a violation quotes; for a pack
    /// rule it is the gist, and a violation quotes the pack's own text with its numbers.
    public var statement: String {
        switch self {
        case .contactHours: "Contact only inside the pack's local contact window"
        case .dailyConnectedCalls: "At most the pack's number of connected calls per debtor per day"
        case .dailyCallAttempts: "At most the pack's number of unanswered call attempts per number per day"
        case .weeklyCallAttempts: "At most the pack's number of call attempts to a person in 7 days"
        case .callAfterConversation: "No call within the pack's number of days after a conversation with the debtor"
        case .thirdPartyContact: "Third parties only once the debtor is unreachable, and never told about the debt"
        case .crewSize: "A visit is made by at least the pack's crew size"
        case .advanceNotice: "The debtor is told a visit's time and purpose at least the pack's notice period before it"
        case .visitDailyCap: "At most the cap's number of visits per account per debtor-local day"
        case .visitWeeklyCap: "At most the cap's number of visits per account within 7 days"
        case .visitCoolDown: "An account is not a visit candidate within the pack's cool-down after its last visit"
        case .agencyLicence: "The agency's licence is valid on the visit date"
        case .agencyInspection: "The agency was inspected within the pack's period before the visit date"
        case .agencyStatus: "The agency is active on the whitelist"
        case .collectorCertification: "Every collector's certification is valid on the visit date"
        case .collectorStatus: "No collector on the visit is suspended"
        case .evidenceRequired: "A visit is closed only with its evidence (recording id and SHA-256 digest)"
        case .recordRetention: "Collection records are kept for the pack's retention period"
        case .complaintSLA: "A complaint is resolved within the pack's deadline"
        case .visitWindowLength: "A visit window lasts between the configured minimum and maximum length"
        case .crewSameAgency: "Every member of a visiting crew belongs to the same agency"
        case .agencyRegion: "The crew's agency serves the debtor's region"
        case .collectorShift: "The visit window lies inside every crew member's shift"
        case .collectorCapacity: "No crew member has more visits that day than their daily capacity"
        case .collectorDoubleBooked:
            "No crew member's other visits overlap the window or leave too little time to travel between them"
        case .accountStage: "Only accounts in the FIELD stage are visited"
        case .accountHold: "An account on hold is not contacted"
        case .debtorLocation: "The debtor's address has coordinates and was not found wrong at a visit since its last correction"
        case .appointmentState: "An appointment changes only as its state machine allows"
        case .agencyState: "An agency's whitelist status changes only as its lifecycle allows: ACTIVE to SUSPENDED and back, either to EXITED, and never from EXITED"
        case .suspensionLifted: "A suspension is lifted once"
        case .dailySMS: "Text messages per debtor per day (no built-in pack limits them)"
        case .checkInWindow: "A collector checks in only around the booked window"
        case .checkInGeofence: "A collector checks in only near the debtor's address"
        case .idShown: "The collector shows identification at check-in"
        case .visitState: "A visit changes only as its state machine allows"
        case .crewPresent: "The whole crew has checked in before the outcome is recorded"
        case .outcomeRequired: "A visit's outcome is recorded before check-out"
        case .complaintState: "A complaint changes only as its state machine allows"
        case .complaintExtensionOnce: "A complaint's deadline is extended at most once"
        case .promiseAmount: "A promise is at most the outstanding amount"
        case .promiseHorizon: "A promised date lies between today and the configured horizon"
        case .planSum: "A repayment plan's instalments add up to the amount it settles"
        case .planReductionLimit: "A repayment plan reduces the amount owed by at most the configured share"
        case .planMaxInstalments: "A repayment plan has at most the configured number of instalments"
        case .planHorizon: "A repayment plan ends within the configured horizon"
        case .planState: "A repayment plan changes only as its state machine allows"
        case .planStale: "A repayment plan is accepted only while the account is as it was proposed on"
        case .paymentExceedsOutstanding: "A payment is at most the outstanding amount"
        case .holdReleased: "A hold is released once"
        case .legalReferralDPD: "An account is referred to legal only after the configured days past due"
        case .writeOffDPD: "An account is written off only after the configured days past due (or from LEGAL)"
        case .promisePending: "An account whose debtor promised to pay is not a visit candidate until the promised date has passed"
        case .planKept: "An account whose accepted repayment plan is being kept is not a visit candidate"
        case .placementActive: "An account is placed with at most one agency at a time"
        case .placementMissing: "Only an account placed (with the agency named) is recalled"
        }
    }

    /// The rules a rule pack may state, in the order of the types.proto list.
    public static let packRules: [RuleID] = allCases.filter { $0.source == .pack }

    /// A violation of this rule.
    ///
    /// - Parameters:
    ///   - pack: the rule pack in force, for a refusal that names it (`Refusal.rule_pack_id`):
    ///     a pack rule quotes the pack's text and source (empty when the pack lacks the rule),
    ///     an engine rule its `statement` with an empty source. nil for a refusal of a state
    ///     precondition that names no pack: then only the id is sent, with the detail.
    ///   - field: the offending request field, if one is at fault.
    ///   - subject: the id of the entity at fault, when it is not the request.
    ///   - detail: what was found, for people.
    public func violation(quoting pack: RulePack?, field: String = "", subject: String = "", _ detail: String) -> TypeV1.Violation {
        var text = ""
        var citation = ""
        if let pack {
            switch source {
            case .pack:
                if let rule = pack.rule(self) {
                    text = rule.text
                    citation = rule.source
                }
            case .engine:
                text = statement
            }
        }
        return TypeV1.Violation(ruleId: rawValue, ruleText: text, ruleSource: citation, field: field, detail: detail, subjectId: subject)
    }
}
