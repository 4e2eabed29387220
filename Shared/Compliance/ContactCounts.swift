import Foundation
import Models
import Validation

/// A debtor's contact counters on one debtor-local day, counted the way the rules of
/// `ContactPolicy` count them: the numbers `AccountsV1.ContactSummary` carries (see its field
/// comments in accounts.proto) and scheduling's contact budget reads.
///
/// The `…Today` counters cover the whole debtor-local day of `countsDate`, all of the
/// debtor's accounts, lenders and agencies combined, calls to emergency contacts included.
public struct ContactCounts: Sendable, Hashable {
    /// Unanswered calls on one number during the day (`daily-call-attempts`).
    public struct NumberCount: Sendable, Hashable {
        /// The emergency contact whose number it is; "" for the debtor's own number.
        public var emergencyContactID: String
        /// The number, as `PastContact.number` holds it (personal data: not for responses).
        public var number: String
        /// Unanswered calls (NO_ANSWER, BUSY, DECLINED, VOICEMAIL) on it that day.
        public var unansweredCalls: Int

        public init(emergencyContactID: String, number: String, unansweredCalls: Int) {
            self.emergencyContactID = emergencyContactID
            self.number = number
            self.unansweredCalls = unansweredCalls
        }
    }

    /// The debtor-local date the `…Today` counters refer to.
    public var countsDate: CivilDate
    /// PHONE attempts with a connected outcome (CONNECTED_*) that day (`daily-connected-calls`).
    public var connectedCallsToday: Int
    /// All PHONE attempts that day, answered or not.
    public var callAttemptsToday: Int
    /// Unanswered calls that day per number called, ordered by emergency contact id (the
    /// debtor's own numbers first), then number.
    public var unansweredCallsToday: [NumberCount]
    /// SMS attempts that day, whatever their outcome.
    public var smsToday: Int
    /// VISIT attempts that day.
    public var visitsToday: Int
    /// PHONE attempts to the debtor (not to emergency contacts) in the 7 × 24 h ending at
    /// the instant counted for (`weekly-call-attempts` counts per person).
    public var callAttemptsLast7Days: Int
    /// When the debtor was last spoken to (a CONNECTED_DEBTOR_* call); nil = never.
    public var lastConversationMs: Int64?
    /// Failed attempts at the end of the attempts on the debtor's current own number (a
    /// conversation, a third party answering or a delivered SMS ends the run).
    public var consecutiveFailedAttempts: Int
    /// The debtor's current own number was reported NUMBER_INVALID.
    public var debtorNumberInvalid: Bool
    /// The debtor counts as unreachable, so emergency contacts may be contacted
    /// (`third-party-contact`): number invalid, or at least the pack's number of
    /// consecutive failed attempts.
    public var debtorUnreachable: Bool
    /// All attempts in the history.
    public var totalAttempts: Int

    public init(
        countsDate: CivilDate,
        connectedCallsToday: Int = 0,
        callAttemptsToday: Int = 0,
        unansweredCallsToday: [NumberCount] = [],
        smsToday: Int = 0,
        visitsToday: Int = 0,
        callAttemptsLast7Days: Int = 0,
        lastConversationMs: Int64? = nil,
        consecutiveFailedAttempts: Int = 0,
        debtorNumberInvalid: Bool = false,
        debtorUnreachable: Bool = false,
        totalAttempts: Int = 0
    ) {
        self.countsDate = countsDate
        self.connectedCallsToday = connectedCallsToday
        self.callAttemptsToday = callAttemptsToday
        self.unansweredCallsToday = unansweredCallsToday
        self.smsToday = smsToday
        self.visitsToday = visitsToday
        self.callAttemptsLast7Days = callAttemptsLast7Days
        self.lastConversationMs = lastConversationMs
        self.consecutiveFailedAttempts = consecutiveFailedAttempts
        self.debtorNumberInvalid = debtorNumberInvalid
        self.debtorUnreachable = debtorUnreachable
        self.totalAttempts = totalAttempts
    }

    /// Writes these counters into a contract `ContactSummary`. `unsuccessful_remote_contacts`
    /// (counted since the account entered REMOTE, per account) and `last_attempt` are left to
    /// the caller. Each number gives one `NumberAttemptCount` entry, keyed by its emergency
    /// contact id (the contract does not carry numbers).
    public func apply(to summary: inout AccountsV1.ContactSummary) {
        summary.countsDate = countsDate.proto
        summary.connectedCallsToday = Int32(clamping: connectedCallsToday)
        summary.callAttemptsToday = Int32(clamping: callAttemptsToday)
        summary.unansweredCallsToday = unansweredCallsToday.map {
            AccountsV1.NumberAttemptCount(emergencyContactId: $0.emergencyContactID, unansweredCalls: Int32(clamping: $0.unansweredCalls))
        }
        summary.smsToday = Int32(clamping: smsToday)
        summary.visitsToday = Int32(clamping: visitsToday)
        summary.callAttemptsLast7Days = Int32(clamping: callAttemptsLast7Days)
        summary.lastConversationMs = lastConversationMs ?? 0
        summary.consecutiveFailedAttempts = Int32(clamping: consecutiveFailedAttempts)
        summary.debtorNumberInvalid = debtorNumberInvalid
        summary.debtorUnreachable = debtorUnreachable
        summary.totalAttempts = Int32(clamping: totalAttempts)
    }
}

extension ContactPolicy {
    /// The debtor's contact counters as of `asOfMs`: the `…Today` counters for the whole
    /// debtor-local day containing `asOfMs`, the 7-day count for the 7 × 24 h ending at it,
    /// and the last conversation and the unreachable test from the attempts at or before it.
    ///
    /// - Parameters:
    ///   - history: every recorded attempt of the debtor (all accounts, lenders, agencies).
    ///   - asOfMs: the instant counted for (usually now on the service clock).
    ///   - zone: the debtor's time zone.
    ///   - pack: the rule pack (its `thirdPartyAfterConsecutiveFailures` decides
    ///     `debtorUnreachable`).
    ///   - debtorNumber: the debtor's current own number (see `violations(of:…)`); nil = the
    ///     number of the latest own remote attempt.
    public static func summary(
        history: [PastContact],
        asOfMs: Int64,
        zone: TimeZone,
        pack: RulePack,
        debtorNumber: String? = nil
    ) -> ContactCounts {
        let today = DebtorLocalTime(ms: asOfMs, zone: zone).date
        var counts = ContactCounts(countsDate: today, totalAttempts: history.count)

        var unanswered: [String: ContactCounts.NumberCount] = [:]
        for contact in history where DebtorLocalTime(ms: contact.attemptedMs, zone: zone).date == today {
            switch contact.channel {
            case .phone:
                counts.callAttemptsToday += 1
                if isConnected(contact.outcome) { counts.connectedCallsToday += 1 }
                if isUnanswered(contact.outcome) {
                    let key = lineKey(number: contact.number, emergencyContactID: contact.emergencyContactID)
                    unanswered[key, default: ContactCounts.NumberCount(
                        emergencyContactID: contact.emergencyContactID, number: contact.number, unansweredCalls: 0)
                    ].unansweredCalls += 1
                }
            case .sms:
                counts.smsToday += 1
            case .visit:
                counts.visitsToday += 1
            default:
                break
            }
        }
        counts.unansweredCallsToday = unanswered.values.sorted {
            ($0.emergencyContactID, $0.number) < ($1.emergencyContactID, $1.number)
        }

        counts.callAttemptsLast7Days = history.count(where: {
            $0.channel == .phone && $0.emergencyContactID.isEmpty
                && $0.attemptedMs > asOfMs - sevenDaysMs && $0.attemptedMs <= asOfMs
        })
        counts.lastConversationMs = lastConversationMs(in: history, atOrBefore: asOfMs)

        let state = reachability(history: history, asOfMs: asOfMs, debtorNumber: debtorNumber)
        counts.consecutiveFailedAttempts = state.consecutiveFailedAttempts
        counts.debtorNumberInvalid = state.numberInvalid
        counts.debtorUnreachable = state.isUnreachable(pack: pack)
        return counts
    }
}
