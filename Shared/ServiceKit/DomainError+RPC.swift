import RPC
import RPCWire
import Validation

/// The status a domain error reaches a client with, converted at the edge (`ServiceDefinition`
/// then adds the Refusal naming the field to INVALID_ARGUMENT).
extension DomainError: RPCErrorConvertible {
    public var rpcError: RPCError {
        switch self {
        case .invalid(let field, let problem): .invalidArgument(field, problem)
        case .refusal(let rule, let detail, let subjectID): .refused(rule: RefusedRule(rawValue: rule), detail, subjectID: subjectID)
        case .missing(let message): .notFound(message)
        }
    }
}

/// A rule id already checked by the domain (`DomainError.refused(rule:)` takes only a
/// `Compliance.RuleID`), passed on as `RPCError.refused(rule:)` wants it.
private struct RefusedRule: RawRepresentable {
    let rawValue: String
}
