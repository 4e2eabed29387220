import Foundation
import Models
import Validation

/// The explainable risk scorecard (docs/DOMAIN.md ("Domain rules"); accounts.proto
/// `RiskAssessment`): an additive score from a base, one signed contribution per factor,
/// clamped to 0...1000 — HIGHER MEANS MORE LIKELY TO PAY. Every coefficient is configuration; the defaults are
/// below. Each contribution is monotonic in its input (more days past due, a higher overdue
/// ratio or amount, more broken promises never raise the score; a better on-time history or
/// contact success never lowers it), so the score is monotonic in every factor.
public struct RiskScorecard: Sendable, Hashable {
    /// Written into every assessment. Default "default-1".
    public var version = "default-1"
    /// Score before any factor. Default 700.
    public var base = 700
    /// Points per day past due (subtracted), capped. Defaults 4 per day, at most 480.
    public var pointsPerDayPastDue = 4
    public var maxDaysPastDuePoints = 480
    /// Points per 50 bp of overdue / outstanding (subtracted). Default 1 (−200 at 100 %).
    public var pointsPer50bpOverdueRatio = 1
    /// On-time history: (share in bp − 5000) / this (added; ±100 at the extremes). Default 50.
    public var onTimeHistoryDivisor = 50
    /// Points per broken promise (subtracted), capped. Defaults 60, at most 240.
    public var pointsPerBrokenPromise = 60
    public var maxBrokenPromisePoints = 240
    /// Contact success: (share in bp − 5000) / this (added; ±50). Default 100.
    public var contactSuccessDivisor = 100
    /// Points per this many minor units overdue (subtracted), capped. Defaults 1 per 10,000
    /// (100.00 CNY), at most 100.
    public var minorUnitsPerOverdueAmountPoint: Int64 = 10_000
    public var maxOverdueAmountPoints = 100
    /// P(payment within 30 days) = 1 / (1 + e^(−(score − midpoint) / spread)). Defaults 500, 100.
    public var probabilityMidpoint = 500.0
    public var probabilitySpread = 100.0

    public init() {}
    public static var defaults: RiskScorecard { RiskScorecard() }

    /// What the score is computed from.
    public struct Inputs: Sendable, Hashable {
        public var daysPastDue: Int
        public var overdueMinor: Int64
        public var outstandingMinor: Int64
        /// Instalments due before today, and how many of them were paid in full on or before
        /// their due date; no history = no contribution.
        public var pastInstalments: Int
        public var paidOnTime: Int
        public var brokenPromises: Int
        /// Remote contact attempts, and how many reached the debtor; none = no contribution.
        public var remoteAttempts: Int
        public var connectedAttempts: Int
        public var currency: String

        public init(daysPastDue: Int, overdueMinor: Int64, outstandingMinor: Int64, pastInstalments: Int, paidOnTime: Int,
                    brokenPromises: Int, remoteAttempts: Int, connectedAttempts: Int, currency: String) {
            self.daysPastDue = daysPastDue
            self.overdueMinor = overdueMinor
            self.outstandingMinor = outstandingMinor
            self.pastInstalments = pastInstalments
            self.paidOnTime = paidOnTime
            self.brokenPromises = brokenPromises
            self.remoteAttempts = remoteAttempts
            self.connectedAttempts = connectedAttempts
            self.currency = currency
        }
    }

    /// The score of `inputs` alone (what `assess` computes, without the explanations): for
    /// finding the day a tier will change.
    public func score(_ inputs: Inputs) -> Int {
        let dpd = max(0, inputs.daysPastDue)
        var total = base - min(dpd * pointsPerDayPastDue, maxDaysPastDuePoints)
        let ratio = inputs.outstandingMinor > 0 ? Int(min(inputs.overdueMinor, inputs.outstandingMinor) * 10_000 / inputs.outstandingMinor) : 0
        total -= (ratio / 50) * pointsPer50bpOverdueRatio
        if inputs.pastInstalments > 0 {
            total += (min(inputs.paidOnTime, inputs.pastInstalments) * 10_000 / inputs.pastInstalments - 5_000) / onTimeHistoryDivisor
        }
        total -= min(max(0, inputs.brokenPromises) * pointsPerBrokenPromise, maxBrokenPromisePoints)
        if inputs.remoteAttempts > 0 {
            total += (min(inputs.connectedAttempts, inputs.remoteAttempts) * 10_000 / inputs.remoteAttempts - 5_000) / contactSuccessDivisor
        }
        total -= Int(min(max(0, inputs.overdueMinor) / minorUnitsPerOverdueAmountPoint, Int64(maxOverdueAmountPoints)))
        return min(1000, max(0, total))
    }

    /// Scores `inputs`; `factors` lists the five largest contributions (by magnitude).
    public func assess(_ inputs: Inputs, assessedMs: Int64) -> AccountsV1.RiskAssessment {
        var factors: [AccountsV1.RiskFactor] = []
        func add(_ code: AccountsV1.RiskFactorCode, _ input: Int64, _ points: Int, _ explanation: String) {
            factors.append(AccountsV1.RiskFactor(code: code, inputValue: input, points: Int32(points),
                                                 explanation: "\(explanation): \(points >= 0 ? "+" : "")\(points) points"))
        }
        let dpd = max(0, inputs.daysPastDue)
        add(.daysPastDue, Int64(dpd), -min(dpd * pointsPerDayPastDue, maxDaysPastDuePoints),
            "\(dpd) \(dpd == 1 ? "day" : "days") past due")
        let ratio = inputs.outstandingMinor > 0 ? Int(min(inputs.overdueMinor, inputs.outstandingMinor) * 10_000 / inputs.outstandingMinor) : 0
        add(.overdueRatio, Int64(ratio), -(ratio / 50) * pointsPer50bpOverdueRatio, "\(ratio / 100) % of the outstanding amount overdue")
        if inputs.pastInstalments > 0 {
            let share = min(inputs.paidOnTime, inputs.pastInstalments) * 10_000 / inputs.pastInstalments
            add(.onTimeHistory, Int64(share), (share - 5_000) / onTimeHistoryDivisor,
                "\(min(inputs.paidOnTime, inputs.pastInstalments)) of \(inputs.pastInstalments) instalments paid on time")
        }
        let broken = max(0, inputs.brokenPromises)
        add(.brokenPromises, Int64(broken), -min(broken * pointsPerBrokenPromise, maxBrokenPromisePoints),
            "\(broken) broken \(broken == 1 ? "promise" : "promises")")
        if inputs.remoteAttempts > 0 {
            let share = min(inputs.connectedAttempts, inputs.remoteAttempts) * 10_000 / inputs.remoteAttempts
            add(.contactSuccess, Int64(share), (share - 5_000) / contactSuccessDivisor,
                "\(min(inputs.connectedAttempts, inputs.remoteAttempts)) of \(inputs.remoteAttempts) remote contacts reached the debtor")
        }
        let overdue = max(0, inputs.overdueMinor)
        add(.overdueAmount, overdue, -Int(min(overdue / minorUnitsPerOverdueAmountPoint, Int64(maxOverdueAmountPoints))),
            "\(Self.format(overdue)) \(inputs.currency) overdue")

        let score = min(1000, max(0, base + factors.reduce(0) { $0 + Int($1.points) }))
        let probability = 1 / (1 + exp(-(Double(score) - probabilityMidpoint) / probabilitySpread))
        let probabilityBp = Int32(min(10_000, max(0, (probability * 10_000).rounded(.down))))
        var assessment = AccountsV1.RiskAssessment()
        assessment.score = Int32(score)
        assessment.tier = Self.tier(score: score)
        assessment.factors = Array(factors.sorted { abs($0.points) > abs($1.points) }.prefix(5))
        assessment.paymentProbability30dBp = probabilityBp
        assessment.expectedRecovery = TypeV1.Money(amountMinor: overdue * Int64(probabilityBp) / 10_000, currencyCode: inputs.currency)
        assessment.scorecardVersion = version
        assessment.assessedMs = assessedMs
        return assessment
    }

    /// RiskTier bands (accounts.proto): A 800-1000, B 650-799, C 500-649, D 350-499, E 0-349.
    public static func tier(score: Int) -> AccountsV1.RiskTier {
        switch score {
        case 800...: return .a
        case 650..<800: return .b
        case 500..<650: return .c
        case 350..<500: return .d
        default: return .e
        }
    }

    /// Minor units as "1234.56".
    static func format(_ minor: Int64) -> String {
        let cents = minor % 100
        return "\(minor / 100).\(cents < 10 ? "0" : "")\(cents)"
    }

    /// The inputs of an account as of `today`; the contact counts come from its recorded
    /// remote contact attempts.
    public static func inputs(of account: AccountsV1.Account, delinquency: Delinquency, today: CivilDate,
                              remoteAttempts: Int, connectedAttempts: Int) -> Inputs {
        var past = 0, onTime = 0
        for instalment in account.instalments {
            guard let due = instalment.dueDate.flatMap(CivilDate.init), due < today else { continue }
            past += 1
            if instalment.status == .paid, let paid = instalment.paidDate.flatMap(CivilDate.init), paid <= due { onTime += 1 }
        }
        return Inputs(
            daysPastDue: delinquency.daysPastDue, overdueMinor: delinquency.overdueMinor,
            outstandingMinor: delinquency.outstandingMinor, pastInstalments: past, paidOnTime: onTime,
            brokenPromises: account.promises.filter { $0.status == .broken }.count,
            remoteAttempts: remoteAttempts, connectedAttempts: connectedAttempts,
            currency: account.principal?.currencyCode ?? "")
    }
}
