import Foundation
import Models
import Validation

/// One recorded contact attempt of a debtor: on any of the debtor's accounts, by any lender
/// or agency, to the debtor or to one of the debtor's emergency contacts. The history that
/// `ContactPolicy` counts is the list of these for one debtor (the per-debtor limits of the
/// rule pack apply to all of the debtor's accounts combined, accounts.proto ContactSummary).
public struct PastContact: Sendable, Hashable {
    /// When the attempt was made, milliseconds since the Unix epoch (UTC).
    public var attemptedMs: Int64
    /// SMS, PHONE or VISIT.
    public var channel: TypeV1.ContactChannel
    /// The recorded outcome; `ContactPolicy` classifies it (connected, unanswered, failed…).
    public var outcome: AccountsV1.ContactOutcome
    /// The emergency contact reached for; "" = the debtor (own number or address).
    public var emergencyContactID: String
    /// The phone number dialled or texted (E.164), or any stable stand-in for it such as a
    /// keyed digest: numbers are only compared for equality. "" for visits or when unknown.
    public var number: String

    public init(
        attemptedMs: Int64,
        channel: TypeV1.ContactChannel,
        outcome: AccountsV1.ContactOutcome,
        emergencyContactID: String = "",
        number: String = ""
    ) {
        self.attemptedMs = attemptedMs
        self.channel = channel
        self.outcome = outcome
        self.emergencyContactID = emergencyContactID
        self.number = number
    }

    /// A recorded contact attempt, with the number it used (the contract message does not
    /// carry it; the accounts store knows it).
    public init(_ attempt: AccountsV1.ContactAttempt, number: String) {
        self.init(
            attemptedMs: attempt.attemptedMs,
            channel: attempt.channel,
            outcome: attempt.outcome,
            emergencyContactID: attempt.emergencyContactId,
            number: number
        )
    }
}

/// A remote contact attempt (SMS or PHONE) about to be recorded, with its outcome: attempts
/// are reported after they are made (accounts.proto RecordContactAttempt), and the policy
/// judges them as of `attemptedMs`.
public struct ProposedContact: Sendable, Hashable {
    /// When the attempt was made, milliseconds since the Unix epoch (UTC). Contact hours are
    /// judged at this instant in the debtor's time zone.
    public var attemptedMs: Int64
    /// SMS or PHONE; other channels are not judged by `ContactPolicy`.
    public var channel: TypeV1.ContactChannel
    /// The outcome the attempt had.
    public var outcome: AccountsV1.ContactOutcome
    /// The emergency contact reached for; "" = the debtor.
    public var emergencyContactID: String
    /// The number dialled or texted (see `PastContact.number`).
    public var number: String
    /// The debtor explicitly asked to be contacted at this time
    /// (`ContactAttempt.debtor_agreed_time`); lifts `contact-hours` where the pack allows it.
    public var debtorAgreedTime: Bool

    public init(
        attemptedMs: Int64,
        channel: TypeV1.ContactChannel,
        outcome: AccountsV1.ContactOutcome,
        emergencyContactID: String = "",
        number: String = "",
        debtorAgreedTime: Bool = false
    ) {
        self.attemptedMs = attemptedMs
        self.channel = channel
        self.outcome = outcome
        self.emergencyContactID = emergencyContactID
        self.number = number
        self.debtorAgreedTime = debtorAgreedTime
    }

    /// The attempt a RecordContactAttempt request reports, with the number it used (the
    /// debtor's phone, or the emergency contact's).
    public init(_ request: AccountsV1.RecordContactAttemptRequest, number: String) {
        self.init(
            attemptedMs: request.attemptedMs,
            channel: request.channel,
            outcome: request.outcome,
            emergencyContactID: request.emergencyContactId,
            number: number,
            debtorAgreedTime: request.debtorAgreedTime
        )
    }
}

/// The rule pack's remote-contact rules (docs/DOMAIN.md ("Regulation as code")), applied to
/// one SMS or phone attempt against the debtor's contact history, and the outcome classes
/// the rules count (accounts.proto `ContactOutcome`).
///
/// Rules, in the order they are reported (ids as in types.proto):
/// - `contact-hours`: the attempt's debtor-local time of day lies in
///   [`contactHoursStartMinutes`, `contactHoursEndMinutes`), unless the debtor agreed to the
///   time and the pack accepts that. SMS and calls alike. (cn-2026: NIFA 2024, GB/T
///   45251-2025, CBA 2026; us-regf: 12 CFR §1006.6(b)(1)(i); uk-conc: CONC 7.9.4R.)
/// - `daily-connected-calls`: a connected call (any CONNECTED_* outcome, as accounts.proto
///   counts "connected") is refused when it would make the debtor's connected calls on that
///   debtor-local day exceed the limit. The whole day counts, to the debtor and to their
///   emergency contacts. (cn-2026: 3, NIFA 2024.)
/// - `daily-call-attempts`: an unanswered call (NO_ANSWER, BUSY, DECLINED, VOICEMAIL) is
///   refused when it would make the unanswered calls to that number on that debtor-local day
///   exceed the limit. (cn-2026: 6, CBA 2026.)
/// - `weekly-call-attempts`: a call is refused when some 7 × 24 h window containing it would
///   hold more calls to the same person (the debtor, or one emergency contact) than the
///   limit, every outcome counted. Without later calls in the history this is "the calls in
///   the 7 × 24 h ending with this one". (us-regf: 7, 12 CFR §1006.14(b)(2)(i)(A).)
/// - `call-after-conversation`: a call to the debtor is refused on the debtor-local day of
///   the debtor's last conversation (CONNECTED_DEBTOR_*, at or before the call) and the
///   following `quietDaysAfterConversation` − 1 days: the day of the conversation is day 1
///   (12 CFR §1006.14(b)(2)(i)(B)). Every call outcome counts.
/// - `third-party-contact`: an attempt to an emergency contact is refused unless the debtor
///   is unreachable as of the attempt: the debtor's current number was reported
///   NUMBER_INVALID, or the latest `thirdPartyAfterConsecutiveFailures` attempts on it all
///   failed (see `isFailed`). (cn-2026: CBA 2026; credit-card measures Art. 68.)
///
/// History entries after the attempt count where a day or window they share with it is
/// counted (attempts may be recorded up to 7 days late); the reachability test and the last
/// conversation look only at entries at or before it.
public enum ContactPolicy {
    /// Seven days of 24 hours, in milliseconds: the window of `weekly-call-attempts`.
    public static let sevenDaysMs: Int64 = 7 * 86_400_000

    /// Every rule the attempt breaks, in the order of the rule id list (empty = allowed). Each
    /// violation carries the rule's id, text and source from `pack`, a `detail` with the
    /// numbers (e.g. "4th connected call on 2026-03-02 (Asia/Shanghai); cn-2026 allows 3 per
    /// day"; never a phone number), `field` "attempted_ms" for `contact-hours` and
    /// "emergency_contact_id" for `third-party-contact` (else ""), and `subject_id` "".
    ///
    /// Only SMS and PHONE attempts are judged; any other channel gives no violations (visit
    /// attempts pass scheduling's and visits' checks before they are recorded).
    ///
    /// - Parameters:
    ///   - attempt: the attempt to judge; not part of `history`.
    ///   - history: every recorded attempt of the debtor (all accounts, lenders, agencies).
    ///   - pack: the rule pack to apply.
    ///   - debtorTimeZone: the debtor's zone; days and times of day are local to it.
    ///   - debtorNumber: the debtor's current own number, in the same form as
    ///     `PastContact.number`. Only attempts on it count toward the unreachable test, so a
    ///     new number resets it. nil = the number of the debtor's latest own remote attempt.
    public static func violations(
        of attempt: ProposedContact,
        history: [PastContact],
        pack: RulePack,
        debtorTimeZone: TimeZone,
        debtorNumber: String? = nil
    ) -> [TypeV1.Violation] {
        guard isRemote(attempt.channel) else { return [] }
        let zone = debtorTimeZone
        let local = DebtorLocalTime(ms: attempt.attemptedMs, zone: zone)
        let day = "\(local.date) (\(zone.identifier))"
        var found: [TypeV1.Violation] = []

        func report(_ rule: RuleID, field: String = "", _ detail: String) {
            found.append(rule.violation(quoting: pack, field: field, detail))
        }

        // contact-hours
        let agreed = attempt.debtorAgreedTime && pack.debtorAgreedTimeOverridesContactHours
        if !agreed && !pack.contactWindow(on: local.date, in: zone).contains(attempt.attemptedMs) {
            let exception = pack.debtorAgreedTimeOverridesContactHours
                ? " unless the debtor agreed to the time"
                : (attempt.debtorAgreedTime ? "; the debtor's agreement does not extend it in \(pack.id)" : "")
            report(.contactHours, field: "attempted_ms",
                   "attempt at \(local.clockText) \(zone.identifier) on \(local.date); \(pack.id) allows \(pack.contactWindowText)\(exception)")
        }

        let isCall = attempt.channel == .phone
        let sameDayCalls = isCall
            ? history.filter { $0.channel == .phone && DebtorLocalTime(ms: $0.attemptedMs, zone: zone).date == local.date }
            : []

        // daily-connected-calls
        if isCall, let limit = pack.dailyConnectedCallsPerDebtor, isConnected(attempt.outcome) {
            let count = sameDayCalls.count(where: { isConnected($0.outcome) }) + 1
            if count > limit {
                report(.dailyConnectedCalls,
                       "\(ordinal(count)) connected call on \(day); \(pack.id) allows \(limit) per day")
            }
        }

        // daily-call-attempts
        if isCall, let limit = pack.dailyCallAttemptsPerNumber, isUnanswered(attempt.outcome) {
            let line = lineKey(number: attempt.number, emergencyContactID: attempt.emergencyContactID)
            let count = sameDayCalls.count(where: {
                isUnanswered($0.outcome) && lineKey(number: $0.number, emergencyContactID: $0.emergencyContactID) == line
            }) + 1
            if count > limit {
                report(.dailyCallAttempts,
                       "\(ordinal(count)) unanswered call to \(numberOwner(attempt.emergencyContactID)) on \(day); \(pack.id) allows \(limit) per number per day")
            }
        }

        // weekly-call-attempts
        if isCall, let limit = pack.weeklyCallAttempts {
            let times = history
                .filter { $0.channel == .phone && $0.emergencyContactID == attempt.emergencyContactID }
                .map(\.attemptedMs) + [attempt.attemptedMs]
            let busiest = mostInWindow(containing: attempt.attemptedMs, times: times, length: sevenDaysMs)
            if busiest > limit {
                report(.weeklyCallAttempts,
                       "\(busiest) calls to \(person(attempt.emergencyContactID)) within 7 days (7 x 24 h) including this one; \(pack.id) allows \(limit)")
            }
        }

        // call-after-conversation
        if isCall, attempt.emergencyContactID.isEmpty, let days = pack.quietDaysAfterConversation,
           let conversationMs = lastConversationMs(in: history, atOrBefore: attempt.attemptedMs) {
            let conversationDate = DebtorLocalTime(ms: conversationMs, zone: zone).date
            let dayOfPeriod = local.date.days(since: conversationDate) + 1
            if dayOfPeriod <= days {
                report(.callAfterConversation,
                       "call on day \(dayOfPeriod) of the \(days) days that begin with the conversation on \(conversationDate) (\(zone.identifier)); \(pack.id) allows calls again from \(conversationDate.adding(days: days))")
            }
        }

        // third-party-contact
        if !attempt.emergencyContactID.isEmpty {
            let state = reachability(history: history, asOfMs: attempt.attemptedMs, debtorNumber: debtorNumber)
            if !state.isUnreachable(pack: pack) {
                let failures = state.consecutiveFailedAttempts
                report(.thirdPartyContact, field: "emergency_contact_id",
                       "the debtor is reachable: own number not reported invalid, \(failures) consecutive failed attempt\(failures == 1 ? "" : "s") on it (\(pack.thirdPartyAfterConsecutiveFailures) needed); \(pack.id) allows contacting emergency contact \(attempt.emergencyContactID) only once the debtor is unreachable")
            }
        }

        return found
    }

    // MARK: Outcome classes (accounts.proto ContactOutcome)

    /// SMS and PHONE: the channels this policy judges.
    public static func isRemote(_ channel: TypeV1.ContactChannel) -> Bool {
        channel == .sms || channel == .phone
    }

    /// CONNECTED_DEBTOR_COMMITTED, CONNECTED_DEBTOR_NO_COMMITMENT, CONNECTED_THIRD_PARTY: the
    /// "connected" outcomes that count toward `daily-connected-calls`.
    public static func isConnected(_ outcome: AccountsV1.ContactOutcome) -> Bool {
        switch outcome {
        case .connectedDebtorCommitted, .connectedDebtorNoCommitment, .connectedThirdParty: return true
        default: return false
        }
    }

    /// CONNECTED_DEBTOR_*: the debtor was spoken to. Such a call is a conversation for
    /// `call-after-conversation`, sets the last conversation, and ends a run of failures.
    public static func isConversation(_ outcome: AccountsV1.ContactOutcome) -> Bool {
        switch outcome {
        case .connectedDebtorCommitted, .connectedDebtorNoCommitment: return true
        default: return false
        }
    }

    /// NO_ANSWER, BUSY, DECLINED, VOICEMAIL: the "unanswered" outcomes that count toward
    /// `daily-call-attempts` for the number called.
    public static func isUnanswered(_ outcome: AccountsV1.ContactOutcome) -> Bool {
        switch outcome {
        case .noAnswer, .busy, .declined, .voicemail: return true
        default: return false
        }
    }

    /// The "failed" outcomes that count toward the debtor-unreachable test of
    /// `third-party-contact`: the unanswered ones, NUMBER_INVALID and SMS_UNDELIVERED.
    public static func isFailed(_ outcome: AccountsV1.ContactOutcome) -> Bool {
        switch outcome {
        case .noAnswer, .busy, .declined, .voicemail, .numberInvalid, .smsUndelivered: return true
        default: return false
        }
    }

    /// The outcomes of remote attempts (SMS and PHONE): CONNECTED_* to SMS_UNDELIVERED.
    public static func isRemoteOutcome(_ outcome: AccountsV1.ContactOutcome) -> Bool {
        switch outcome {
        case .connectedDebtorCommitted, .connectedDebtorNoCommitment, .connectedThirdParty,
             .noAnswer, .busy, .declined, .voicemail, .numberInvalid, .smsDelivered, .smsUndelivered:
            return true
        default:
            return false
        }
    }

    /// An unsuccessful remote contact, counted toward the FIELD threshold: every remote
    /// outcome except CONNECTED_DEBTOR_COMMITTED (accounts.proto: a conversation without a
    /// commitment, or a delivered SMS, is still unsuccessful).
    public static func isUnsuccessful(_ outcome: AccountsV1.ContactOutcome) -> Bool {
        isRemoteOutcome(outcome) && outcome != .connectedDebtorCommitted
    }

    // MARK: Counting helpers (shared with `summary`)

    /// Whether the debtor can be reached on their own number, as of an instant.
    struct Reachability: Sendable, Hashable {
        /// Failed attempts at the end of the attempts on the debtor's current number.
        var consecutiveFailedAttempts: Int
        /// The debtor's current number was reported NUMBER_INVALID.
        var numberInvalid: Bool

        func isUnreachable(pack: RulePack) -> Bool {
            numberInvalid || consecutiveFailedAttempts >= pack.thirdPartyAfterConsecutiveFailures
        }
    }

    /// The unreachable test of `third-party-contact` as of `asOfMs` (attempts at or before it).
    /// Only SMS/PHONE attempts to the debtor (no emergency contact) on the current number
    /// count: `debtorNumber`, or else the number of the latest such attempt. The failures are
    /// the run of failed outcomes at the end of those attempts: any other outcome
    /// (a conversation, a third party answering, a delivered SMS) ends the run. A
    /// NUMBER_INVALID report on the current number stands until the number changes.
    static func reachability(history: [PastContact], asOfMs: Int64, debtorNumber: String?) -> Reachability {
        let own = history.enumerated()
            .filter { isRemote($0.element.channel) && $0.element.emergencyContactID.isEmpty && $0.element.attemptedMs <= asOfMs }
            .sorted { ($0.element.attemptedMs, $0.offset) < ($1.element.attemptedMs, $1.offset) }
            .map { $0.element }
        guard let latest = own.last else { return Reachability(consecutiveFailedAttempts: 0, numberInvalid: false) }
        let current = debtorNumber ?? latest.number
        let onCurrent = own.filter { $0.number == current }
        var run = 0
        for contact in onCurrent.reversed() {
            guard isFailed(contact.outcome) else { break }
            run += 1
        }
        return Reachability(
            consecutiveFailedAttempts: run,
            numberInvalid: onCurrent.contains { $0.outcome == .numberInvalid }
        )
    }

    /// The latest conversation with the debtor (a PHONE attempt with a CONNECTED_DEBTOR_*
    /// outcome, whichever number reached them) at or before `ms`.
    static func lastConversationMs(in history: [PastContact], atOrBefore ms: Int64) -> Int64? {
        history
            .filter { $0.channel == .phone && isConversation($0.outcome) && $0.attemptedMs <= ms }
            .map(\.attemptedMs)
            .max()
    }

    /// The most `times` that one window [s, s + length) containing `instant` holds (`times`
    /// includes `instant` itself). The busiest such window starts at one of the times.
    static func mostInWindow(containing instant: Int64, times: [Int64], length: Int64) -> Int {
        let near = times.filter { $0 > instant - length && $0 < instant + length }
        var most = 0
        for start in near where start <= instant {
            most = max(most, near.count(where: { $0 >= start && $0 < start + length }))
        }
        return most
    }

    /// What identifies "a number" for per-number counts: the number itself, or the contact
    /// it belongs to when the number is unknown.
    static func lineKey(number: String, emergencyContactID: String) -> String {
        number.isEmpty ? "contact:" + emergencyContactID : "number:" + number
    }

    /// "the debtor's own number" or "the number of emergency contact emc_…" (never the
    /// number itself: details must not carry personal data).
    private static func numberOwner(_ emergencyContactID: String) -> String {
        emergencyContactID.isEmpty ? "the debtor's own number" : "the number of emergency contact \(emergencyContactID)"
    }

    /// "the debtor" or "emergency contact emc_…".
    private static func person(_ emergencyContactID: String) -> String {
        emergencyContactID.isEmpty ? "the debtor" : "emergency contact \(emergencyContactID)"
    }

    /// "1st", "2nd", "3rd", "4th", "11th", "21st", …
    static func ordinal(_ n: Int) -> String {
        let suffix: String
        switch (n % 10, n % 100) {
        case (_, 11...13): suffix = "th"
        case (1, _): suffix = "st"
        case (2, _): suffix = "nd"
        case (3, _): suffix = "rd"
        default: suffix = "th"
        }
        return "\(n)\(suffix)"
    }
}
