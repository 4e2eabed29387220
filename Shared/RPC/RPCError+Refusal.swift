import Models
import RPCWire

/// The machine-readable side of refusals (types.proto "Refusal"): FAILED_PRECONDITION and
/// INVALID_ARGUMENT carry a `google.rpc.Status` in `grpc-status-details-bin` whose one
/// detail is a `doorstep.type.v1.Refusal` listing the violated rules or invalid fields.
extension RPCError {
    static let refusalTypeURL = "type.googleapis.com/doorstep.type.v1.Refusal"

    /// FAILED_PRECONDITION naming every violated rule: message "rule-id: detail; …", the
    /// Refusal in the details.
    public static func refused(_ violations: [TypeV1.Violation], rulePackID: String = "", rulePackVersion: String = "") -> RPCError {
        let message = violations.map { "\($0.ruleId): \($0.detail)" }.joined(separator: "; ")
        var error = RPCError(code: .failedPrecondition, message: message)
        error.details = Self.statusDetails(
            code: .failedPrecondition, message: message,
            refusal: TypeV1.Refusal(rulePackId: rulePackID, rulePackVersion: rulePackVersion, violations: violations))
        return error
    }

    /// FAILED_PRECONDITION for one precondition (no rule pack), e.g. `appointment-state`.
    /// `rule` is a `Compliance.RuleID` (this module does not depend on Compliance): never a
    /// string, so a misspelt rule id does not compile.
    public static func refused(rule: some RawRepresentable<String>, _ detail: String, subjectID: String = "") -> RPCError {
        refused([TypeV1.Violation(ruleId: rule.rawValue, detail: detail, subjectId: subjectID)])
    }

    /// An INVALID_ARGUMENT "field: problem" without details gets a Refusal naming the field.
    func withStandardDetails() -> RPCError {
        guard details == nil, code == .invalidArgument else { return self }
        // "field.path: problem": the field path holds no space.
        guard let colon = message.firstIndex(of: ":"), !message[..<colon].contains(" "), colon > message.startIndex
        else { return self }
        let detail = message[message.index(after: colon)...].drop { $0 == " " }
        let violation = TypeV1.Violation(field: String(message[..<colon]), detail: String(detail))
        var error = self
        error.details = Self.statusDetails(code: code, message: message, refusal: TypeV1.Refusal(violations: [violation]))
        return error
    }

    private static func statusDetails(code: StatusCode, message: String, refusal: TypeV1.Refusal) -> [UInt8]? {
        guard let value = try? refusal.encode() else { return nil }
        return try? TypeV1.RpcStatus(
            code: Int32(code.rawValue), message: message,
            details: [TypeV1.AnyDetail(typeUrl: refusalTypeURL, value: value)]).encode()
    }
}
