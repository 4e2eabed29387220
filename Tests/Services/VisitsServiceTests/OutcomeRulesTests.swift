import Foundation
import Models
import Testing
import Validation
import VisitsService

/// A RecordOutcome request with the given outcome fields (the ids are never looked at by
/// `OutcomeRules.validate`).
private func outcome(_ code: VisitsV1.VisitOutcomeCode, _ willingness: VisitsV1.Willingness = .unspecified,
                     _ ability: VisitsV1.Ability = .unspecified, notes: String = "", reportedPayment: TypeV1.Money? = nil,
                     arrangement: VisitsV1.RecordOutcomeRequest.Arrangement? = nil) -> VisitsV1.RecordOutcomeRequest {
    VisitsV1.RecordOutcomeRequest(requestId: "outcome-1", visitId: "vis_01JP2Q8Y3V9Q6X1M8N2B4C7D5E", collectorId: "col_01JP2Q8Y3V9Q6X1M8N2B4C7D5F",
                                  code: code, willingness: willingness, ability: ability, notes: notes, reportedPayment: reportedPayment,
                                  arrangement: arrangement)
}

private func cny(_ minor: Int64) -> TypeV1.Money { TypeV1.Money(amountMinor: minor, currencyCode: "CNY") }

private func date(_ year: Int32, _ month: Int32, _ day: Int32) -> TypeV1.Date { TypeV1.Date(year: year, month: month, day: day) }

private let promise = VisitsV1.RecordOutcomeRequest.Arrangement.promise(VisitsV1.PromiseTerms(amount: cny(50_000), promisedDate: date(2026, 3, 20)))

private let plan = VisitsV1.RecordOutcomeRequest.Arrangement.plan(VisitsV1.PlanTerms(instalments: [
    VisitsV1.PlanInstalmentTerms(dueDate: date(2026, 4, 1), amount: cny(100_000)),
    VisitsV1.PlanInstalmentTerms(dueDate: date(2026, 5, 1), amount: cny(100_000)),
    VisitsV1.PlanInstalmentTerms(dueDate: date(2026, 6, 1), amount: cny(100_000)),
], reduction: cny(20_000)))

/// The "field: problem" `request` is refused with (INVALID_ARGUMENT at the edge; "" and an
/// issue when it passes or is refused otherwise).
private func invalid(_ request: VisitsV1.RecordOutcomeRequest, sourceLocation: SourceLocation = #_sourceLocation) -> String {
    let error = #expect(throws: DomainError.self, sourceLocation: sourceLocation) { try OutcomeRules.validate(request) }
    guard case .invalid? = error, let error else {
        if let error { Issue.record("refused as \(error), not as an invalid field", sourceLocation: sourceLocation) }
        return ""
    }
    return error.description
}

/// Records an issue when `request` is refused.
private func accepted(_ request: VisitsV1.RecordOutcomeRequest, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(throws: Never.self, sourceLocation: sourceLocation) { try OutcomeRules.validate(request) }
}

@Suite("OutcomeRules.validate: what each outcome code requires")
struct OutcomeRulesTests {
    @Test("the code is required and must be known; unknown assessments are refused")
    func code() {
        #expect(invalid(outcome(.unspecified)) == "code: required")
        #expect(invalid(outcome(.unrecognized(42))) == "code: unknown value 42")
        #expect(invalid(outcome(.metDebtor, .unrecognized(9), .full)) == "willingness: unknown value 9")
        #expect(invalid(outcome(.metDebtor, .willing, .unrecognized(7))) == "ability: unknown value 7")
        // Unknown values are refused even where the assessment must be unset.
        #expect(invalid(outcome(.notHome, .unrecognized(9))).hasPrefix("willingness: unknown value"))
    }

    @Test("where the debtor was met, willingness and ability are required",
          arguments: [VisitsV1.VisitOutcomeCode.metDebtor, .promiseToPay, .repaymentPlanAgreed, .paid, .refused, .hardship, .dispute])
    func debtorMet(_ code: VisitsV1.VisitOutcomeCode) {
        let arrangement: VisitsV1.RecordOutcomeRequest.Arrangement? = switch code {
        case .promiseToPay: promise
        case .repaymentPlanAgreed: plan
        default: nil
        }
        let name = code.protoName ?? ""
        #expect(invalid(outcome(code, .unspecified, .partial, arrangement: arrangement)) == "willingness: required for outcome \(name)")
        #expect(invalid(outcome(code, .reluctant, .unspecified, arrangement: arrangement)) == "ability: required for outcome \(name)")
        accepted(outcome(code, .willing, .partial, arrangement: arrangement))
        accepted(outcome(code, .unwilling, .unable, arrangement: arrangement))
    }

    @Test("where the debtor was not met, willingness and ability must be unset",
          arguments: [VisitsV1.VisitOutcomeCode.notHome, .wrongAddress, .thirdPartyOnly])
    func debtorNotMet(_ code: VisitsV1.VisitOutcomeCode) {
        let name = code.protoName ?? ""
        accepted(outcome(code))
        accepted(outcome(code, notes: "门口无人应答，已留下联系卡片"))
        #expect(invalid(outcome(code, .willing)) == "willingness: must be unset for outcome \(name)")
        #expect(invalid(outcome(code, .unspecified, .full)) == "ability: must be unset for outcome \(name)")
        #expect(invalid(outcome(code, arrangement: promise)) == "promise: must be empty for outcome \(name)")
        #expect(invalid(outcome(code, arrangement: plan)) == "plan: must be empty for outcome \(name)")
        #expect(invalid(outcome(code, reportedPayment: cny(10_000))).hasPrefix("reported_payment:"))
    }

    @Test("PROMISE_TO_PAY requires a valid promise")
    func promiseToPay() {
        #expect(invalid(outcome(.promiseToPay, .willing, .partial)) == "promise: required for outcome VISIT_OUTCOME_CODE_PROMISE_TO_PAY")
        #expect(invalid(outcome(.promiseToPay, .willing, .partial, arrangement: plan)).hasPrefix("promise: required"))
        func terms(_ amount: TypeV1.Money?, _ promisedDate: TypeV1.Date?) -> VisitsV1.RecordOutcomeRequest {
            outcome(.promiseToPay, .willing, .partial, arrangement: .promise(VisitsV1.PromiseTerms(amount: amount, promisedDate: promisedDate)))
        }
        #expect(invalid(terms(nil, date(2026, 3, 20))) == "promise.amount: required")
        #expect(invalid(terms(cny(0), date(2026, 3, 20))).hasPrefix("promise.amount.amount_minor:"))
        #expect(invalid(terms(cny(-1), date(2026, 3, 20))).hasPrefix("promise.amount.amount_minor:"))
        #expect(invalid(terms(TypeV1.Money(amountMinor: 50_000, currencyCode: "cny"), date(2026, 3, 20))).hasPrefix("promise.amount.currency_code:"))
        #expect(invalid(terms(cny(50_000), nil)) == "promise.promised_date: required")
        #expect(invalid(terms(cny(50_000), date(2026, 2, 30))).hasPrefix("promise.promised_date: not a valid date"))
        accepted(terms(cny(1), date(2026, 3, 11)))
    }

    @Test("REPAYMENT_PLAN_AGREED requires a plan of 1-24 instalments, dated in order, in one currency")
    func repaymentPlan() {
        #expect(invalid(outcome(.repaymentPlanAgreed, .willing, .partial)).hasPrefix("plan: required"))
        #expect(invalid(outcome(.repaymentPlanAgreed, .willing, .partial, arrangement: promise)).hasPrefix("plan: required"))
        func planned(_ instalments: [VisitsV1.PlanInstalmentTerms], reduction: TypeV1.Money? = nil) -> VisitsV1.RecordOutcomeRequest {
            outcome(.repaymentPlanAgreed, .willing, .partial, arrangement: .plan(VisitsV1.PlanTerms(instalments: instalments, reduction: reduction)))
        }
        func monthly(_ count: Int, currency: String = "CNY") -> [VisitsV1.PlanInstalmentTerms] {
            (0..<count).map { (index: Int) -> VisitsV1.PlanInstalmentTerms in
                let monthIndex: Int = 3 + index
                let year: Int32 = 2026 + Int32(monthIndex / 12)
                let month: Int32 = Int32(monthIndex % 12 + 1)
                let amount = TypeV1.Money(amountMinor: 10_000, currencyCode: currency)
                return VisitsV1.PlanInstalmentTerms(dueDate: date(year, month, 1), amount: amount)
            }
        }
        accepted(planned(monthly(1)))
        accepted(planned(monthly(24), reduction: cny(0)))
        accepted(planned(monthly(3), reduction: cny(5_000)))
        #expect(invalid(planned([])) == "plan.instalments: 1-24 instalments required")
        #expect(invalid(planned(monthly(25))) == "plan.instalments: 1-24 instalments required")
        let sameDay = [VisitsV1.PlanInstalmentTerms(dueDate: date(2026, 4, 1), amount: cny(10_000)),
                       VisitsV1.PlanInstalmentTerms(dueDate: date(2026, 4, 1), amount: cny(10_000))]
        #expect(invalid(planned(sameDay)).hasPrefix("plan.instalments[1].due_date: must be after"))
        let backwards = [VisitsV1.PlanInstalmentTerms(dueDate: date(2026, 5, 1), amount: cny(10_000)),
                         VisitsV1.PlanInstalmentTerms(dueDate: date(2026, 4, 1), amount: cny(10_000))]
        #expect(invalid(planned(backwards)).hasPrefix("plan.instalments[1].due_date:"))
        let undated = [VisitsV1.PlanInstalmentTerms(dueDate: nil, amount: cny(10_000))]
        #expect(invalid(planned(undated)) == "plan.instalments[0].due_date: required")
        let mixed = [VisitsV1.PlanInstalmentTerms(dueDate: date(2026, 4, 1), amount: cny(10_000)),
                     VisitsV1.PlanInstalmentTerms(dueDate: date(2026, 5, 1), amount: TypeV1.Money(amountMinor: 10_000, currencyCode: "USD"))]
        #expect(invalid(planned(mixed)).hasPrefix("plan.instalments[1].amount.currency_code:"))
        let free = [VisitsV1.PlanInstalmentTerms(dueDate: date(2026, 4, 1), amount: cny(0))]
        #expect(invalid(planned(free)).hasPrefix("plan.instalments[0].amount.amount_minor:"))
        #expect(invalid(planned(monthly(2), reduction: TypeV1.Money(amountMinor: 100, currencyCode: "USD"))).hasPrefix("plan.reduction.currency_code:"))
        #expect(invalid(planned(monthly(2), reduction: cny(-1))).hasPrefix("plan.reduction.amount_minor:"))
    }

    @Test("an arrangement is forbidden for other codes; reported_payment only for PAID")
    func arrangementAndPayment() {
        #expect(invalid(outcome(.metDebtor, .willing, .full, arrangement: promise)) == "promise: must be empty for outcome VISIT_OUTCOME_CODE_MET_DEBTOR")
        #expect(invalid(outcome(.hardship, .willing, .unable, arrangement: plan)) == "plan: must be empty for outcome VISIT_OUTCOME_CODE_HARDSHIP")
        #expect(invalid(outcome(.paid, .willing, .full, arrangement: promise)).hasPrefix("promise: must be empty"))
        accepted(outcome(.paid, .willing, .full, reportedPayment: cny(120_000)))
        accepted(outcome(.paid, .willing, .full))
        #expect(invalid(outcome(.metDebtor, .willing, .full, reportedPayment: cny(120_000))).hasPrefix("reported_payment: only for outcome"))
        #expect(invalid(outcome(.promiseToPay, .willing, .partial, reportedPayment: cny(1), arrangement: promise)).hasPrefix("reported_payment:"))
        #expect(invalid(outcome(.paid, .willing, .full, reportedPayment: cny(0))).hasPrefix("reported_payment.amount_minor:"))
        #expect(invalid(outcome(.paid, .willing, .full, reportedPayment: TypeV1.Money(amountMinor: 100, currencyCode: ""))).hasPrefix("reported_payment.currency_code:"))
    }

    @Test("notes: at most 2000 characters, no control characters, no phone or resident-ID numbers")
    func notes() {
        func met(_ notes: String) -> VisitsV1.RecordOutcomeRequest { outcome(.metDebtor, .reluctant, .partial, notes: notes) }
        accepted(met(""))
        accepted(met(String(repeating: "好", count: 2000)))
        accepted(met("约定 3 月 20 日再访，金额 500 元"))
        accepted(met("尾号 5678，分机 1234567890"))  // 10 digits: not a mobile number
        #expect(invalid(met(String(repeating: "好", count: 2001))) == "notes: must be at most 2000 characters")
        #expect(invalid(met("响铃\u{07}两次")).hasPrefix("notes: must not contain control characters"))
        #expect(invalid(met("债务人手机 13812345678")) == "notes: must not contain phone or national ID numbers")
        #expect(invalid(met("13812345678")).hasPrefix("notes:"))
        #expect(invalid(met("身份证 11010519491231002X 已核对")).hasPrefix("notes:"))
        #expect(invalid(met("身份证 110105194912310021")).hasPrefix("notes:"))
        // Written with separators or full-width digits, still found.
        #expect(invalid(met("手机 138 1234 5678")).hasPrefix("notes:"))
        #expect(invalid(met("手机138-1234-5678")).hasPrefix("notes:"))
        #expect(invalid(met("手机 +86 138 1234 5678")).hasPrefix("notes:"))
        #expect(invalid(met("手机１３８１２３４５６７８")).hasPrefix("notes:"))
        #expect(invalid(met("电话 138\u{3000}1234\u{3000}5678")).hasPrefix("notes:"))
        #expect(invalid(met("身份证 110105 19491231 002X")).hasPrefix("notes:"))
        // Dates, times, amounts and short numbers side by side are not numbers of 11 digits.
        accepted(met("约定 2026-03-20 10:00 再访，还款 1,500 元"))
        accepted(met("分 12 期 每期 500 元 共 6000 元"))
        accepted(met("门牌 12-3 号 3 楼"))
        // Notes are checked for every code, the debtor met or not.
        #expect(invalid(outcome(.notHome, notes: "邻居电话 13912345678")).hasPrefix("notes:"))
    }
}

@Suite("EvidenceChain.verify on hand-built records")
struct EvidenceChainTests {
    static let account = "acc_01JP2Q8Y3V9Q6X1M8N2B4C7D5G"
    static let visit = "vis_01JP2Q8Y3V9Q6X1M8N2B4C7D5H"
    static let genesis = [UInt8](repeating: 0, count: 32)

    /// Record `sequence` of `accountID`'s chain after `previous`, hashed as the contract says
    /// (SHA-256 of previous ‖ payload, computed with swift-crypto), with an entry whose own
    /// sequence is `entrySequence`.
    static func record(_ sequence: Int64, after previous: [UInt8], accountID: String = EvidenceChainTests.account,
                       entrySequence: Int64? = nil) throws -> VisitsV1.ChainRecord {
        let appended = 1_773_280_800_000 + sequence * 60_000
        let entry = VisitsV1.ChainEntry(
            accountId: accountID, visitId: visit, sequence: entrySequence ?? sequence, appendedMs: appended,
            content: .checkIn(VisitsV1.CheckInRecord(collectorId: "col_01JP2Q8Y3V9Q6X1M8N2B4C7D5J", checkedInMs: appended,
                                                     location: TypeV1.GeoPoint(latitude: 31.2304, longitude: 121.4737),
                                                     distanceMeters: 12, idShown: true)))
        let payload = try entry.encode()
        return VisitsV1.ChainRecord(sequence: sequence, kind: .checkIn, appendedMs: appended, previousSha256: previous,
                                    payload: payload, recordSha256: sha256(previous + payload))
    }

    /// A well-formed chain of `count` records.
    static func chain(_ count: Int, accountID: String = EvidenceChainTests.account) throws -> [VisitsV1.ChainRecord] {
        var records: [VisitsV1.ChainRecord] = []
        var previous = genesis
        for sequence in 1...Int64(count) {
            let next = try record(sequence, after: previous, accountID: accountID)
            records.append(next)
            previous = next.recordSha256
        }
        return records
    }

    @Test("the hash is SHA-256(previous ‖ payload); genesis is 32 zero bytes")
    func hashing() {
        #expect(EvidenceChain.genesis == Self.genesis)
        let payload: [UInt8] = Array("payload".utf8)
        let previous = [UInt8](repeating: 0x5A, count: 32)
        #expect(EvidenceChain.hash(previous: previous, payload: payload) == sha256(previous + payload))
        #expect(EvidenceChain.hash(previous: Self.genesis, payload: payload) != EvidenceChain.hash(previous: previous, payload: payload))
    }

    @Test("an intact chain verifies, and its head is the last record's hash")
    func intact() throws {
        let records = try Self.chain(3)
        let result = EvidenceChain.verify(records, accountID: Self.account)
        #expect(result.intact)
        #expect(result.recordsChecked == 3)
        #expect(result.headSequence == 3)
        #expect(result.headSHA256 == records[2].recordSha256)
        #expect(result.firstBrokenSequence == 0)
        #expect(result.problem.isEmpty)

        let empty = EvidenceChain.verify([], accountID: Self.account)
        #expect(empty.intact)
        #expect(empty.recordsChecked == 0)
        #expect(empty.headSequence == 0)
    }

    @Test("the first record must follow the genesis hash")
    func genesisRecord() throws {
        let first = try Self.record(1, after: [UInt8](repeating: 0x01, count: 32))
        let second = try Self.record(2, after: first.recordSha256)
        let result = EvidenceChain.verify([first, second], accountID: Self.account)
        #expect(!result.intact)
        #expect(result.firstBrokenSequence == 1)
        #expect(result.recordsChecked == 0)
        #expect(result.problem.hasPrefix("record 1:"), "\(result.problem)")
        #expect(result.problem.contains("previous_sha256"), "\(result.problem)")
    }

    @Test("a gap in the sequence breaks the chain where it occurs")
    func gap() throws {
        let records = try Self.chain(2)
        let fourth = try Self.record(4, after: records[1].recordSha256)
        let result = EvidenceChain.verify(records + [fourth], accountID: Self.account)
        #expect(!result.intact)
        #expect(result.firstBrokenSequence == 3)
        #expect(result.recordsChecked == 2)
        #expect(result.headSequence == 4)
        #expect(result.problem.hasPrefix("record 3:"), "\(result.problem)")
        #expect(result.problem.contains("gap"), "\(result.problem)")

        // A repeated sequence number is a gap too.
        let repeated = try Self.record(1, after: records[0].recordSha256)
        let twice = EvidenceChain.verify([records[0], repeated], accountID: Self.account)
        #expect(twice.firstBrokenSequence == 2)
        #expect(twice.problem.hasPrefix("record 2:"), "\(twice.problem)")
    }

    @Test("a record that does not name its predecessor's hash breaks the chain, even when its own hash is right")
    func wrongPrevious() throws {
        let records = try Self.chain(3)
        var forgedPrevious = records[0].recordSha256
        forgedPrevious[0] ^= 0xFF
        let forged = try Self.record(2, after: forgedPrevious)
        let third = try Self.record(3, after: forged.recordSha256)
        let result = EvidenceChain.verify([records[0], forged, third], accountID: Self.account)
        #expect(!result.intact)
        #expect(result.firstBrokenSequence == 2)
        #expect(result.recordsChecked == 1)
        #expect(result.problem == "record 2: previous_sha256 does not match record 1")
    }

    @Test("a changed payload or hash byte is found")
    func tampered() throws {
        var records = try Self.chain(3)
        let middle = records[1].payload.count / 2
        records[1].payload[middle] ^= 0x01
        let payloadChanged = EvidenceChain.verify(records, accountID: Self.account)
        #expect(payloadChanged.firstBrokenSequence == 2)
        #expect(payloadChanged.problem.contains("record_sha256 does not match"), "\(payloadChanged.problem)")

        var rehashed = try Self.chain(3)
        rehashed[2].recordSha256[31] ^= 0x01
        let hashChanged = EvidenceChain.verify(rehashed, accountID: Self.account)
        #expect(hashChanged.firstBrokenSequence == 3)
        #expect(hashChanged.recordsChecked == 2)
    }

    @Test("each payload must be an entry of this account with the record's sequence")
    func foreignEntries() throws {
        let other = try Self.chain(2, accountID: "acc_01JP2Q8Y3V9Q6X1M8N2B4C7D5K")
        let result = EvidenceChain.verify(other, accountID: Self.account)
        #expect(result.firstBrokenSequence == 1)
        #expect(result.problem.hasPrefix("record 1: payload is not this account's entry"), "\(result.problem)")

        let first = try Self.record(1, after: Self.genesis)
        let misnumbered = try Self.record(2, after: first.recordSha256, entrySequence: 7)
        let misnumberedResult = EvidenceChain.verify([first, misnumbered], accountID: Self.account)
        #expect(misnumberedResult.firstBrokenSequence == 2)
        #expect(misnumberedResult.problem.contains("payload is not this account's entry"))

        // A payload that is not a ChainEntry at all, hashed correctly.
        let junk: [UInt8] = [0xFF, 0xFF, 0xFF]
        let garbage = VisitsV1.ChainRecord(sequence: 1, kind: .checkIn, appendedMs: 1, previousSha256: Self.genesis, payload: junk,
                                           recordSha256: sha256(Self.genesis + junk))
        #expect(EvidenceChain.verify([garbage], accountID: Self.account).firstBrokenSequence == 1)
    }
}

@Suite("PeerEffectSink.resultID: the id of what the peer created, from its answer")
struct EffectResultTests {
    static func bytes<M: ProtoMessage>(_ message: M) throws -> [UInt8] { try message.encode() }

    @Test("each effect kind finds its record by request id (or complaint); an answer without it gives \"\"")
    func resultIDs() throws {
        let attempt = AccountsV1.ContactAttempt(id: "cta_1", requestId: "vis_1.contact")
        let promise = AccountsV1.PromiseToPay(id: "ptp_2", requestId: "vis_1.promise")
        let older = AccountsV1.PromiseToPay(id: "ptp_1", requestId: "other")
        let hold = AccountsV1.Hold(id: "hld_3", requestId: "cmp_1.hold", reason: .complaint, complaintId: "cmp_1", active: true)
        var account = AccountsV1.Account(id: "acc_1", holds: [hold], promises: [older, promise])
        account.contactSummary = AccountsV1.ContactSummary(lastAttempt: attempt)
        let answer = try Self.bytes(account)

        #expect(PeerEffectSink.resultID(.contactAttempt, request: try Self.bytes(AccountsV1.RecordContactAttemptRequest(
            requestId: "vis_1.contact")), response: answer) == "cta_1")
        #expect(PeerEffectSink.resultID(.contactAttempt, request: try Self.bytes(AccountsV1.RecordContactAttemptRequest(
            requestId: "vis_9.contact")), response: answer) == "", "another attempt is the latest: not ours")
        #expect(PeerEffectSink.resultID(.promiseToPay, request: try Self.bytes(AccountsV1.RecordPromiseToPayRequest(
            requestId: "vis_1.promise")), response: answer) == "ptp_2")
        #expect(PeerEffectSink.resultID(.placeHold, request: try Self.bytes(AccountsV1.PlaceHoldRequest(
            requestId: "cmp_1.hold", complaintId: "cmp_1")), response: answer) == "hld_3")
        #expect(PeerEffectSink.resultID(.placeHold, request: try Self.bytes(AccountsV1.PlaceHoldRequest(
            requestId: "cmp_1.hold-again", complaintId: "cmp_1")), response: answer) == "hld_3",
                "a repeated hold for the complaint is the one already placed")
        var release = AccountsV1.ReleaseHoldRequest(requestId: "cmp_1.release")
        release.hold = .complaintId("cmp_1")
        #expect(PeerEffectSink.resultID(.releaseHold, request: try Self.bytes(release), response: answer) == "hld_3")

        let suspension = SchedulingV1.Suspension(id: "sus_4", reason: .complaint, complaintId: "cmp_1", active: true)
        let collector = try Self.bytes(SchedulingV1.Collector(id: "col_1", suspensions: [suspension]))
        #expect(PeerEffectSink.resultID(.suspendCollector, request: try Self.bytes(SchedulingV1.SuspendCollectorRequest(
            requestId: "cmp_1.suspend", collectorId: "col_1", complaintId: "cmp_1")), response: collector) == "sus_4")
        var reinstate = SchedulingV1.ReinstateCollectorRequest(requestId: "cmp_1.reinstate", collectorId: "col_1")
        reinstate.suspension = .complaintId("cmp_1")
        #expect(PeerEffectSink.resultID(.reinstateCollector, request: try Self.bytes(reinstate), response: collector) == "sus_4")
        #expect(PeerEffectSink.resultID(.completeAppointment, request: [],
                                        response: try Self.bytes(SchedulingV1.Appointment(id: "apt_5"))) == "apt_5")
        #expect(PeerEffectSink.resultID(.promiseToPay, request: [0xFF], response: answer) == "", "an undecodable request")
    }
}
