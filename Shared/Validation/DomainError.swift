/// A domain rule's "no", in the domain's own terms: a malformed field, a rule that refuses the
/// request in the resource's current state, or something named that does not exist. Domain
/// code (validators, domain rules) throws it and never the transport's error; the service
/// edge converts it to a status (its `RPCErrorConvertible` conformance is in ServiceKit).
public enum DomainError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A request field is malformed: INVALID_ARGUMENT "field: problem" at the edge, with a
    /// Refusal naming the field. `field` is the field path ("debtor.emergency_contacts[2].phone").
    case invalid(field: String, problem: String)
    /// A rule refuses the request in the resource's current state: FAILED_PRECONDITION
    /// "rule: detail" at the edge, with a Refusal naming the rule. `rule` is a
    /// `Compliance.RuleID`'s raw value (made only by ``refused(rule:_:subjectID:)``).
    case refusal(rule: String, detail: String, subjectID: String)
    /// Something the request names does not exist: NOT_FOUND with this message.
    case missing(String)

    /// The field `field` is malformed: `problem` says how ("required", "must be …").
    public static func invalidArgument(_ field: String, _ problem: String) -> DomainError {
        .invalid(field: field, problem: problem)
    }

    /// The rule `rule` refuses the request. `rule` is a `Compliance.RuleID` (this module does
    /// not depend on Compliance): never a string, so a misspelt rule id does not compile.
    public static func refused(rule: some RawRepresentable<String>, _ detail: String, subjectID: String = "") -> DomainError {
        .refusal(rule: rule.rawValue, detail: detail, subjectID: subjectID)
    }

    /// What the request names does not exist; `message` says what ("plan … not found on …").
    public static func notFound(_ message: String) -> DomainError { .missing(message) }

    /// The text the status message carries: "field: problem", "rule: detail", or the message.
    public var description: String {
        switch self {
        case .invalid(let field, let problem): "\(field): \(problem)"
        case .refusal(let rule, let detail, _): "\(rule): \(detail)"
        case .missing(let message): message
        }
    }
}
