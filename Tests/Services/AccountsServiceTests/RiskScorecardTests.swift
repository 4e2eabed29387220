import Models
import Testing
import Validation
@testable import AccountsService

@Suite("Risk scorecard")
struct RiskScorecardTests {
    static let card = RiskScorecard.defaults

    static func inputs(dpd: Int = 20, overdue: Int64 = 100_000, outstanding: Int64 = 400_000, past: Int = 4, onTime: Int = 2,
                       broken: Int = 1, remote: Int = 10, connected: Int = 5) -> RiskScorecard.Inputs {
        RiskScorecard.Inputs(daysPastDue: dpd, overdueMinor: overdue, outstandingMinor: outstanding, pastInstalments: past,
                             paidOnTime: onTime, brokenPromises: broken, remoteAttempts: remote, connectedAttempts: connected,
                             currency: "CNY")
    }

    static func score(_ inputs: RiskScorecard.Inputs) -> Int32 { card.assess(inputs, assessedMs: 0).score }

    @Test("monotonic in every factor: worse never raises the score, better never lowers it")
    func monotonic() {
        for dpd in 0..<400 { #expect(Self.score(Self.inputs(dpd: dpd + 1)) <= Self.score(Self.inputs(dpd: dpd))) }
        for overdue in stride(from: Int64(0), to: 400_000, by: 997) {
            #expect(Self.score(Self.inputs(overdue: overdue + 997)) <= Self.score(Self.inputs(overdue: overdue)))
        }
        for onTime in 0..<4 { #expect(Self.score(Self.inputs(onTime: onTime + 1)) >= Self.score(Self.inputs(onTime: onTime))) }
        for broken in 0..<10 { #expect(Self.score(Self.inputs(broken: broken + 1)) <= Self.score(Self.inputs(broken: broken))) }
        for connected in 0..<10 { #expect(Self.score(Self.inputs(connected: connected + 1)) >= Self.score(Self.inputs(connected: connected))) }
        // The probability, and so the expected recovery per unit overdue, follow the score.
        let better = Self.card.assess(Self.inputs(dpd: 5), assessedMs: 0)
        let worse = Self.card.assess(Self.inputs(dpd: 90), assessedMs: 0)
        #expect(better.paymentProbability30dBp > worse.paymentProbability30dBp)
    }

    @Test("score(_:) is the assessment's score without the explanations, everywhere on a grid of inputs")
    func scoreAlone() {
        var compared = 0
        for dpd in stride(from: 0, through: 400, by: 7) {
            for overdue in [Int64(0), 1, 9_999, 10_000, 150_000, 2_000_000] {
                for (past, onTime) in [(0, 0), (3, 0), (3, 3), (12, 5)] {
                    for (remote, connected) in [(0, 0), (5, 0), (5, 5), (9, 2)] {
                        for broken in [0, 2, 9] {
                            let inputs = Self.inputs(dpd: dpd, overdue: overdue, outstanding: 300_000, past: past, onTime: onTime,
                                                     broken: broken, remote: remote, connected: connected)
                            #expect(Self.card.score(inputs) == Int(Self.score(inputs)))
                            compared += 1
                        }
                    }
                }
            }
        }
        #expect(compared > 10_000)
    }

    @Test("the documented defaults, worked through one account")
    func workedExample() {
        // 20 DPD: -80; 25 % overdue: -50; 2 of 4 on time: 0; 1 broken: -60; 5 of 10 reached: 0; 1000.00 CNY: -10.
        let assessment = Self.card.assess(Self.inputs(), assessedMs: 42)
        #expect(assessment.score == 700 - 80 - 50 - 60 - 10)
        #expect(assessment.tier == .c)  // 500 is the lower bound of C
        #expect(assessment.factors.count == 5)
        #expect(assessment.factors.first?.code == .daysPastDue)
        #expect(assessment.factors.first?.explanation == "20 days past due: -80 points")
        #expect(assessment.factors.map(\.code).contains(.brokenPromises))
        // P = 1 / (1 + e^-(500-500)/100) = 0.5 → 5000 bp; expected recovery 50 % of 1000.00.
        #expect(assessment.paymentProbability30dBp == 5_000)
        #expect(assessment.expectedRecovery == TypeV1.Money(amountMinor: 50_000, currencyCode: "CNY"))
        #expect(assessment.scorecardVersion == "default-1")
        #expect(assessment.assessedMs == 42)
    }

    @Test("tier bands at their exact boundaries", arguments: [
        (1000, AccountsV1.RiskTier.a), (800, .a), (799, .b), (650, .b), (649, .c), (500, .c), (499, .d), (350, .d), (349, .e), (0, .e),
    ])
    func tiers(score: Int, tier: AccountsV1.RiskTier) {
        #expect(RiskScorecard.tier(score: score) == tier)
    }

    @Test("the score is clamped to 0...1000 and caps hold")
    func clamped() {
        let worst = Self.card.assess(Self.inputs(dpd: 10_000, overdue: 10_000_000_000, outstanding: 10_000_000_000, past: 10, onTime: 0,
                                                 broken: 50, remote: 10, connected: 0), assessedMs: 0)
        #expect(worst.score == 0)
        #expect(worst.tier == .e)
        let best = Self.card.assess(Self.inputs(dpd: 0, overdue: 0, outstanding: 100, past: 10, onTime: 10, broken: 0, remote: 10, connected: 10),
                                    assessedMs: 0)
        #expect(best.score == 700 + 100 + 50)
        #expect(best.expectedRecovery?.amountMinor == 0)
    }
}
