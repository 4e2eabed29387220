import Compliance
import Logging
import Models
import RPC
import RPCWire
import ServiceKit
import Testing
import Validation

/// Domain code throws `DomainError`; the edge (`ServiceDefinition`'s wrapper, through
/// `RPCErrorConvertible`) turns it into the status handlers threw themselves before: same
/// code, message and Refusal detail, as a client receives it.
@Suite("Domain errors reach a client as the status handlers used to throw")
struct DomainErrorTests {
    /// Each case, the `RPCError` a handler threw for it before, and the one violation of the
    /// Refusal a client finds in its details (nil: no details).
    static let cases: [(DomainError, RPCError, TypeV1.Violation?)] = [
        (.invalidArgument("debtor.emergency_contacts[2].phone", "required"),
         .invalidArgument("debtor.emergency_contacts[2].phone", "required"),
         TypeV1.Violation(field: "debtor.emergency_contacts[2].phone", detail: "required")),
        (.refused(rule: RuleID.accountStage, "account acc_1 is STAGE_CURRENT", subjectID: "acc_1"),
         .refused(rule: RuleID.accountStage, "account acc_1 is STAGE_CURRENT", subjectID: "acc_1"),
         TypeV1.Violation(ruleId: RuleID.accountStage.rawValue, detail: "account acc_1 is STAGE_CURRENT", subjectId: "acc_1")),
        (.refused(rule: RuleID.paymentExceedsOutstanding, "payment of 271 exceeds the outstanding amount 270 CNY"),
         .refused(rule: RuleID.paymentExceedsOutstanding, "payment of 271 exceeds the outstanding amount 270 CNY"),
         TypeV1.Violation(ruleId: RuleID.paymentExceedsOutstanding.rawValue, detail: "payment of 271 exceeds the outstanding amount 270 CNY")),
        (.notFound("plan rpl_1 not found on account acc_1"), .notFound("plan rpl_1 not found on account acc_1"), nil),
    ]

    @Test("each case converts to the RPCError handlers threw, its description the status message", arguments: cases)
    func conversion(domain: DomainError, expected: RPCError, violation: TypeV1.Violation?) {
        #expect(domain.rpcError == expected)
        #expect(RPCError(from: domain) == expected)
        #expect(domain.description == expected.message)
    }

    @Test("a client gets the same status, details included, as from a handler throwing the RPCError", arguments: cases)
    func overTheEdge(domain: DomainError, expected: RPCError, violation: TypeV1.Violation?) async throws {
        let received = try #require(await Self.statusReceived(whenHandlerThrows: domain))
        let before = try #require(await Self.statusReceived(whenHandlerThrows: expected))
        #expect(received == before)
        #expect(received.code == expected.code && received.message == expected.message)
        guard let violation else {
            #expect(received.details == nil)
            return
        }
        let status = try TypeV1.RpcStatus(decoding: try #require(received.details, "no status details on \(received)"))
        #expect(status.code == Int32(expected.code.rawValue) && status.message == expected.message)
        let detail = try #require(status.details.first)
        #expect(status.details.count == 2)
        #expect(detail.typeUrl == "type.googleapis.com/doorstep.type.v1.Refusal")
        #expect(try TypeV1.Refusal(decoding: detail.value).violations == [violation])
        // The standard detail beside it: the rule as a precondition failure, a field as a bad request.
        let standard = try #require(status.details.last)
        if violation.ruleId.isEmpty {
            #expect(standard.typeUrl == "type.googleapis.com/google.rpc.BadRequest")
            #expect(try TypeV1.RpcBadRequest(decoding: standard.value).fieldViolations
                == [.init(field: violation.field, detail: violation.detail)])
        } else {
            #expect(standard.typeUrl == "type.googleapis.com/google.rpc.PreconditionFailure")
            #expect(try TypeV1.RpcPreconditionFailure(decoding: standard.value).violations
                == [.init(type: violation.ruleId, subject: violation.subjectId, detail: violation.detail)])
        }
    }

    /// The error a client receives from a unary method whose handler throws `error`, over the
    /// in-process transport (nil if the call succeeds).
    static func statusReceived(whenHandlerThrows error: some Error & Sendable) async -> RPCError? {
        var definition = ServiceDefinition()
        definition.unary(TestingV1.TestService.fail) { _, _ in throw error }
        let client = GRPCClient(inProcess: InProcessServer(services: definition, logger: Logger(label: "domain-error-test")))
        var received: RPCError?
        do {
            _ = try await client.unary(TestingV1.TestService.fail, TestingV1.FailRequest())
        } catch {
            received = error
        }
        await client.close()
        return received
    }
}
