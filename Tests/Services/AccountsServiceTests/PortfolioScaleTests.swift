import Compliance
import Foundation
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Testing
import Validation
@testable import AccountsService

/// The structures that make a portfolio's day cheap must not change what it answers: the
/// maintained visit-candidate ranking gives what recomputing every FIELD account gives, and
/// the stage engine run that reads only the accounts due (`EvaluationSchedule`) does what a
/// pass over every account does — both after random sequences of mutations and days.
@Suite("Portfolio scale: the maintained ranking and the streamed stage run equal full recomputation", .serialized)
struct PortfolioScaleTests {
    static let day: Int64 = 86_400_000
    static let shanghai = TimeZone(identifier: "Asia/Shanghai")!
    static let region = "310115"

    /// Deterministic randomness (SplitMix64), so a failing sequence can be replayed by seed.
    struct Random: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func cny(_ minor: Int64) -> TypeV1.Money { TypeV1.Money(amountMinor: minor, currencyCode: "CNY") }

    static func today(_ harness: AccountsHarness) -> CivilDate { CivilDate.today(in: shanghai, nowMs: harness.clock.now) }

    /// `count` accounts with random schedules (first due 150 days ago to 20 days ahead, 3-8
    /// monthly instalments), some with unsuccessful remote contacts, then one stage run.
    static func portfolio(_ harness: AccountsHarness, count: Int, random: inout Random) async throws -> [String] {
        let platform = try await harness.metadata(.platform)
        let service = try await harness.metadata(.service)
        let today = today(harness)
        var ids: [String] = []
        for n in 0..<count {
            let debtor = try await harness.client.unary(AccountsV1.AccountsService.createDebtor, AccountsV1.CreateDebtorRequest(
                requestId: "pd-\(n)", debtor: AccountsV1.Debtor(
                    externalId: "pcust-\(n)", fullName: "债务人\(n)", nationalId: "11010519491231002X", phone: "13812345678",
                    address: TypeV1.Address(text: "上海市浦东新区\(n)号", regionCode: region,
                                            location: TypeV1.GeoPoint(latitude: 31.2 + Double(n) / 1000, longitude: 121.5)),
                    timeZone: "Asia/Shanghai")),
                metadata: platform)
            let first = today.adding(days: Int.random(in: -150...20, using: &random))
            let instalments = Int.random(in: 3...8, using: &random)
            let amount = Int64.random(in: 50...200, using: &random) * 1_000
            let account = try await harness.client.unary(AccountsV1.AccountsService.openAccount, AccountsV1.OpenAccountRequest(
                requestId: "pa-\(n)", debtorId: debtor.id, externalId: "ploan-\(n)", lenderId: "lender-1", product: .instalmentLoan,
                principal: cny(amount * Int64(instalments)), openedDate: first.adding(days: -30).proto,
                instalments: (0..<instalments).map {
                    AccountsV1.OpeningInstalment(dueDate: first.adding(days: 30 * $0).proto, amountDue: cny(amount))
                }), metadata: platform)
            ids.append(account.id)
            for attempt in 0..<Int.random(in: 0...4, using: &random) {
                _ = try? await harness.client.unary(AccountsV1.AccountsService.recordContactAttempt, AccountsV1.RecordContactAttemptRequest(
                    requestId: "psms-\(n)-\(attempt)", accountId: account.id, channel: .sms, outcome: .smsUndelivered,
                    attemptedMs: harness.clock.now - Int64(10 - attempt) * 60_000), metadata: service)
            }
        }
        try await evaluate(harness, label: "portfolio")
        return ids
    }

    /// One random recorded change of one random account (refusals by the rules are part of
    /// the game and ignored).
    static func mutate(_ harness: AccountsHarness, ids: [String], step: Int, random: inout Random) async throws {
        let service = try await harness.metadata(.service)
        let platform = try await harness.metadata(.platform)
        let id = ids.randomElement(using: &random)!
        let today = today(harness)
        switch Int.random(in: 0..<100, using: &random) {
        case 0..<25:
            _ = try? await harness.client.unary(AccountsV1.AccountsService.recordPayment, AccountsV1.RecordPaymentRequest(
                requestId: "pay-\(step)", accountId: id, amount: cny(Int64.random(in: 10...120, using: &random) * 1_000),
                receivedMs: harness.clock.now - 3_600_000, externalId: "txn-\(step)"), metadata: platform)
        case 25..<45:
            _ = try? await harness.client.unary(AccountsV1.AccountsService.recordPromiseToPay, AccountsV1.RecordPromiseToPayRequest(
                requestId: "ptp-\(step)", accountId: id, amount: cny(Int64.random(in: 10...60, using: &random) * 1_000),
                promisedDate: today.adding(days: Int.random(in: 0...10, using: &random)).proto), metadata: service)
        case 45..<57:
            guard let account = try? await harness.client.unary(AccountsV1.AccountsService.getAccount,
                                                                AccountsV1.GetAccountRequest(accountId: id), metadata: service),
                  let overdue = account.overdueAmount?.amountMinor, overdue >= 2 else { return }
            guard let proposed = try? await harness.client.unary(AccountsV1.AccountsService.proposeRepaymentPlan, AccountsV1.ProposeRepaymentPlanRequest(
                requestId: "plan-\(step)", accountId: id, instalments: [
                    AccountsV1.PlanInstalmentTerm(dueDate: today.adding(days: Int.random(in: 1...6, using: &random)).proto, amount: cny(overdue / 2)),
                    AccountsV1.PlanInstalmentTerm(dueDate: today.adding(days: Int.random(in: 10...30, using: &random)).proto,
                                                  amount: cny(overdue - overdue / 2)),
                ]), metadata: service), let plan = proposed.repaymentPlans.last else { return }
            _ = try? await harness.client.unary(AccountsV1.AccountsService.acceptRepaymentPlan, AccountsV1.AcceptRepaymentPlanRequest(
                requestId: "accept-\(step)", accountId: id, planId: plan.id), metadata: service)
        case 57..<75:
            let visitID = IDGenerator.make(prefix: "vis", nowMs: harness.clock.now)
            _ = try? await harness.client.unary(AccountsV1.AccountsService.recordContactAttempt, AccountsV1.RecordContactAttemptRequest(
                requestId: "\(visitID).contact", accountId: id, channel: .visit,
                outcome: Bool.random(using: &random) ? .visitMetDebtor : .visitNotHome,
                attemptedMs: harness.clock.now - 30 * 60_000, visitId: visitID), metadata: service)
        case 75..<85:
            _ = try? await harness.client.unary(AccountsV1.AccountsService.recordContactAttempt, AccountsV1.RecordContactAttemptRequest(
                requestId: "call-\(step)", accountId: id, channel: .phone,
                outcome: Bool.random(using: &random) ? .connectedDebtorNoCommitment : .noAnswer,
                attemptedMs: harness.clock.now - 20 * 60_000), metadata: service)
        case 85..<92:
            _ = try? await harness.client.unary(AccountsV1.AccountsService.placeHold, AccountsV1.PlaceHoldRequest(
                requestId: "hold-\(step)", accountId: id, reason: .dispute, note: "disputed"), metadata: platform)
        default:
            guard let account = try? await harness.client.unary(AccountsV1.AccountsService.getAccount,
                                                                AccountsV1.GetAccountRequest(accountId: id), metadata: service),
                  let hold = account.holds.first(where: \.active) else { return }
            _ = try? await harness.client.unary(AccountsV1.AccountsService.releaseHold, AccountsV1.ReleaseHoldRequest(
                requestId: "release-\(step)", accountId: id, note: "resolved", hold: .holdId(hold.id)), metadata: platform)
        }
    }

    /// A whole stage run (paged, small pages), as the nightly job calls it.
    @discardableResult
    static func evaluate(_ harness: AccountsHarness, label: String) async throws -> Int {
        let service = try await harness.metadata(.service)
        var token = ""
        var evaluated = 0
        var page = 0
        repeat {
            let response = try await harness.client.unary(AccountsV1.AccountsService.evaluateStages, AccountsV1.EvaluateStagesRequest(
                requestId: "eval-\(label)-\(page)", pageSize: 5, pageToken: token), metadata: service)
            evaluated += Int(response.accountsEvaluated)
            token = response.nextPageToken
            page += 1
        } while !token.isEmpty
        return evaluated
    }

    // MARK: The ranking

    struct Listed: Equatable, CustomStringConvertible {
        var accountID: String
        var rank: Int32
        var expectedRecovery: Int64
        var daysPastDue: Int32
        var bucket: AccountsV1.Bucket
        var riskScore: Int32
        var riskTier: AccountsV1.RiskTier
        var probabilityBp: Int32
        var overdue: Int64
        var lastVisitMs: Int64
        var version: Int64
        var description: String { "\(rank). \(accountID) er=\(expectedRecovery) dpd=\(daysPastDue) score=\(riskScore) v\(version)" }
    }

    struct DeferredListed: Equatable {
        var accountID: String
        var rules: [String]
        var candidateFrom: TypeV1.Date?
    }

    /// What ListVisitCandidates answers, every page (4 a page), as the caller `metadata`.
    static func listed(_ harness: AccountsHarness, metadata: Metadata, minimum: Int64? = nil) async throws -> ([Listed], [DeferredListed]) {
        var token = ""
        var candidates: [Listed] = []
        var deferred: [DeferredListed] = []
        repeat {
            let response = try await harness.client.unary(AccountsV1.AccountsService.listVisitCandidates, AccountsV1.ListVisitCandidatesRequest(
                regionCode: region, pageSize: 4, pageToken: token, minExpectedRecovery: minimum.map(cny), includeDeferred: true),
                metadata: metadata)
            candidates += response.candidates.map {
                Listed(accountID: $0.accountId, rank: $0.rank, expectedRecovery: $0.expectedRecovery?.amountMinor ?? 0,
                       daysPastDue: $0.daysPastDue, bucket: $0.bucket, riskScore: $0.riskScore, riskTier: $0.riskTier,
                       probabilityBp: $0.paymentProbability30dBp, overdue: $0.overdueAmount?.amountMinor ?? 0,
                       lastVisitMs: $0.lastVisitMs, version: $0.accountVersion)
            }
            deferred += response.deferred.map { DeferredListed(accountID: $0.accountId, rules: $0.reasons.map(\.ruleId), candidateFrom: $0.candidateFromDate) }
            token = response.nextPageToken
        } while !token.isEmpty
        return (candidates, deferred)
    }

    /// The reference: every FIELD account of the region read, its contacts counted from the
    /// attempts themselves, risk recomputed as of the debtor's today, deferrals applied, sorted.
    static func recomputed(_ harness: AccountsHarness, configuration: AccountsService.Configuration, agency: String = "",
                           minimum: Int64 = 0) async throws -> ([Listed], [DeferredListed]) {
        let now = harness.clock.now
        let rows = try await harness.database.read { db in
            try db.fetchAll(sql: "SELECT id, body FROM accounts WHERE stage = ? AND region_code = ?",
                            arguments: [AccountsV1.Stage.field.rawValue, region]).map { row -> (AccountsV1.Account, ContactStats) in
                let body: Data = row["body"]
                let id: String = row["id"]
                let stats = try db.fetchOne(sql: """
                    SELECT COALESCE(SUM(remote), 0) AS remote, COALESCE(SUM(remote * connected), 0) AS connected,
                           COALESCE(MAX(CASE WHEN remote = 0 THEN attempted_ms END), 0) AS last_visit_ms
                    FROM contact_attempts WHERE account_id = ?
                    """, arguments: [id])
                return (try AccountsV1.Account(decoding: [UInt8](body)),
                        ContactStats(remote: stats?["remote"] ?? 0, connected: stats?["connected"] ?? 0,
                                     lastVisitMs: stats?["last_visit_ms"] ?? 0))
            }
        }
        var ranked: [AccountsV1.Account] = []
        var lastVisit: [String: Int64] = [:]
        var deferred: [DeferredListed] = []
        for (stored, contacts) in rows where !stored.onHold && (agency.isEmpty || stored.assignedAgencyId == agency) {
            var account = stored
            let today = CivilDate.today(in: shanghai, nowMs: now)
            if let deferral = VisitDeferral.of(account, today: today, zone: shanghai, nowMs: now, lastVisitMs: contacts.lastVisitMs,
                                               pack: configuration.rulePack) {
                deferred.append(DeferredListed(accountID: account.id, rules: deferral.reasons.map(\.ruleId),
                                               candidateFrom: deferral.candidateFrom?.proto))
                continue
            }
            AccountsService.refresh(&account, asOf: today, nowMs: now, configuration: configuration, contacts: contacts)
            guard (account.risk?.expectedRecovery?.amountMinor ?? 0) >= minimum else { continue }
            ranked.append(account)
            lastVisit[account.id] = contacts.lastVisitMs
        }
        ranked.sort {
            let (a, b) = ($0.risk?.expectedRecovery?.amountMinor ?? 0, $1.risk?.expectedRecovery?.amountMinor ?? 0)
            if a != b { return a > b }
            if $0.daysPastDue != $1.daysPastDue { return $0.daysPastDue > $1.daysPastDue }
            return $0.id < $1.id
        }
        let listed = ranked.enumerated().map { index, account in
            Listed(accountID: account.id, rank: Int32(index + 1), expectedRecovery: account.risk?.expectedRecovery?.amountMinor ?? 0,
                   daysPastDue: account.daysPastDue, bucket: account.bucket, riskScore: account.risk?.score ?? 0,
                   riskTier: account.risk?.tier ?? .unspecified, probabilityBp: account.risk?.paymentProbability30dBp ?? 0,
                   overdue: account.overdueAmount?.amountMinor ?? 0, lastVisitMs: lastVisit[account.id] ?? 0, version: account.version)
        }
        return (listed, deferred.sorted { $0.accountID < $1.accountID })
    }

    @Test("after random payments, promises, plans, visits, calls, holds and days, the maintained ranking equals recomputing it",
          .timeLimit(.minutes(3)), arguments: [UInt64(1), 2, 3])
    func rankingEqualsRecomputation(seed: UInt64) async throws {
        var configuration = AccountsService.Configuration()
        configuration.rulePack.visitCoolDownDays = 3
        let harness = try await AccountsHarness(configuration: configuration)
        // 10:00 in Shanghai: inside the contact hours.
        harness.clock.set(harness.clock.now + 2 * 3_600_000)
        var random = Random(state: seed)
        let ids = try await Self.portfolio(harness, count: 40, random: &random)
        let service = try await harness.metadata(.service)
        var compared = 0
        var candidatesSeen = 0
        for step in 0..<60 {
            switch Int.random(in: 0..<10, using: &random) {
            case 0:
                harness.clock.set(harness.clock.now + Int64.random(in: 1...3, using: &random) * Self.day)
            case 1:
                try await Self.evaluate(harness, label: "r\(step)")
            default:
                try await Self.mutate(harness, ids: ids, step: step, random: &random)
            }
            let (listed, deferred) = try await Self.listed(harness, metadata: service)
            let (expected, expectedDeferred) = try await Self.recomputed(harness, configuration: configuration)
            #expect(listed == expected, "seed \(seed) step \(step): \(listed) != \(expected)")
            #expect(deferred == expectedDeferred, "seed \(seed) step \(step)")
            // A floor on expected recovery filters the same way.
            if step % 10 == 0, let median = expected.dropFirst(expected.count / 2).first?.expectedRecovery {
                let (floored, _) = try await Self.listed(harness, metadata: service, minimum: median)
                let (expectedFloored, _) = try await Self.recomputed(harness, configuration: configuration, minimum: median)
                #expect(floored == expectedFloored, "seed \(seed) step \(step) with a floor")
            }
            compared += 1
            candidatesSeen += listed.count + deferred.count
        }
        #expect(compared == 60)
        #expect(candidatesSeen > 60, "the sequence must reach FIELD accounts to test anything")
        await harness.close()
    }

    @Test("a database from before the ranking is ranked once at start, then answers like recomputation", .timeLimit(.minutes(2)))
    func backfill() async throws {
        let configuration = AccountsService.Configuration()
        let harness = try await AccountsHarness(configuration: configuration)
        harness.clock.set(harness.clock.now + 2 * 3_600_000)
        var random = Random(state: 7)
        _ = try await Self.portfolio(harness, count: 30, random: &random)
        let (expected, expectedDeferred) = try await Self.recomputed(harness, configuration: configuration)
        try #require(!expected.isEmpty)
        // As a database migrated from before the ranking: no entries, the backfill pending.
        try await harness.database.write { db in
            try db.execute(sql: "DELETE FROM visit_candidates")
            try db.execute(sql: "INSERT INTO ranking_backfill (id) VALUES ('pending') ON CONFLICT (id) DO NOTHING")
        }
        let service = try await harness.metadata(.service)
        #expect(try await Self.listed(harness, metadata: service).0.isEmpty)
        let key = try DataCipher.loadKey(path: harness.directory.appendingPathComponent("data.key").path, create: false).key
        let clock = harness.clock
        let starting = AccountsService(database: harness.database, cipher: DataCipher(key: key), configuration: configuration,
                                       clock: ServiceClock { clock.now })
        let fieldAccounts = try await harness.database.read { db in
            try db.fetchValue(Int.self, sql: "SELECT COUNT(*) FROM accounts WHERE stage = ?", arguments: [AccountsV1.Stage.field.rawValue])
        }
        #expect(try await starting.backfillRanking() == fieldAccounts)
        #expect(try await starting.backfillRanking() == nil, "done once")
        let (listed, deferred) = try await Self.listed(harness, metadata: service)
        #expect(listed == expected)
        #expect(deferred == expectedDeferred)
        await harness.close()
    }

    // MARK: The stage run

    @Test("day after day, the streamed stage run changes exactly what a pass over every account would, and reads fewer",
          .timeLimit(.minutes(3)), arguments: [UInt64(11), 12])
    func streamedRunEqualsFullPass(seed: UInt64) async throws {
        let configuration = AccountsService.Configuration()
        let harness = try await AccountsHarness(configuration: configuration)
        harness.clock.set(harness.clock.now + 2 * 3_600_000)
        var random = Random(state: seed)
        let ids = try await Self.portfolio(harness, count: 50, random: &random)
        for step in 0..<40 { try await Self.mutate(harness, ids: ids, step: step, random: &random) }
        var read = 0
        var nonTerminal = 0
        var changedDays = 0
        for dayIndex in 0..<45 {
            harness.clock.set(harness.clock.now + Self.day)
            // A few changes recorded during the day, as in life.
            for step in 0..<3 { try await Self.mutate(harness, ids: ids, step: 1_000 + dayIndex * 10 + step, random: &random) }
            let now = harness.clock.now
            let day = CivilDate.today(in: Self.shanghai, nowMs: now)
            let before = try await Self.snapshot(harness)
            // What the pass over every account does today: the engine on each, as the run does.
            var expected: [String: (account: AccountsV1.Account, events: [AccountsV1.TimelineEvent])] = [:]
            for (id, entry) in before where entry.account.stage != .settled && entry.account.stage != .writtenOff {
                nonTerminal += 1
                var evaluation = StageEngine.evaluate(
                    entry.account, asOf: day, nowMs: now, delinquency: configuration.delinquency, policy: configuration.collection,
                    unsuccessfulRemoteContacts: Int(entry.account.contactSummary?.unsuccessfulRemoteContacts ?? 0))
                if let tier = AccountsService.refresh(&evaluation.account, asOf: day, nowMs: now, configuration: configuration,
                                                      contacts: entry.contacts, actor: StageEngine.actor) {
                    evaluation.events.append(tier)
                }
                guard !evaluation.events.isEmpty || evaluation.account.promises != entry.account.promises
                    || evaluation.account.repaymentPlans != entry.account.repaymentPlans else { continue }
                evaluation.account.version += 1
                evaluation.account.updatedMs = now
                expected[id] = (evaluation.account, evaluation.events)
            }
            read += try await Self.evaluate(harness, label: "day-\(dayIndex)")
            let after = try await Self.snapshot(harness)
            for (id, old) in before {
                let new = try #require(after[id])
                if let (account, events) = expected[id] {
                    #expect(new.account == account, "seed \(seed) day \(dayIndex): \(id) differs from the full pass")
                    #expect(new.events.map(\.eventType) == old.events.map(\.eventType) + events.map(\.eventType),
                            "seed \(seed) day \(dayIndex): \(id) events")
                    #expect(new.events.suffix(events.count).map(\.reason) == events.map(\.reason))
                } else {
                    #expect(new.account == old.account, "seed \(seed) day \(dayIndex): \(id) changed; the full pass leaves it")
                    #expect(new.events.count == old.events.count)
                }
            }
            if !expected.isEmpty { changedDays += 1 }
        }
        #expect(changedDays > 10, "the days must move accounts for the comparison to mean anything")
        #expect(read < nonTerminal, "the streamed run reads only the accounts due (\(read) of \(nonTerminal))")
        await harness.close()
    }

    /// Every account with its contacts and timeline.
    static func snapshot(_ harness: AccountsHarness) async throws
        -> [String: (account: AccountsV1.Account, contacts: ContactStats, events: [AccountsV1.TimelineEvent])] {
        try await harness.database.read { db in
            var result: [String: (account: AccountsV1.Account, contacts: ContactStats, events: [AccountsV1.TimelineEvent])] = [:]
            for row in try db.fetchAll(sql: "SELECT id, body, remote_attempts, connected_attempts, last_visit_ms FROM accounts") {
                let id: String = row["id"]
                let body: Data = row["body"]
                let events = try db.fetchValues(Data.self, sql: "SELECT body FROM timeline WHERE account_id = ? ORDER BY sequence",
                                                arguments: [id]).map { try AccountsV1.TimelineEvent(decoding: [UInt8]($0)) }
                result[id] = (try AccountsV1.Account(decoding: [UInt8](body)), AccountsStore.contactStats(row), events)
            }
            return result
        }
    }
}
