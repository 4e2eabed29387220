import Models
import RPCWire

/// The machine-readable side of refusals (types.proto "Refusal"): FAILED_PRECONDITION and
/// INVALID_ARGUMENT carry a `google.rpc.Status` in `grpc-status-details-bin` whose first
/// detail is a `doorstep.type.v1.Refusal` listing the violated rules or invalid fields,
/// followed by the standard `google.rpc.PreconditionFailure` / `google.rpc.BadRequest`.
extension RPCError {
    static let refusalTypeURL = "type.googleapis.com/doorstep.type.v1.Refusal"
    static let preconditionFailureTypeURL = "type.googleapis.com/google.rpc.PreconditionFailure"
    static let badRequestTypeURL = "type.googleapis.com/google.rpc.BadRequest"

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

    /// The Refusal in a `grpc-status-details-bin` value, if it holds one.
    public static func refusal(inDetails details: [UInt8]) -> TypeV1.Refusal? {
        guard let status = try? TypeV1.RpcStatus(decoding: details),
              let detail = status.details.first(where: { $0.typeUrl == refusalTypeURL }) else { return nil }
        return try? TypeV1.Refusal(decoding: detail.value)
    }

    /// The `google.rpc.Status` of a refusal: the Refusal, then the same violations as the
    /// standard detail stock tools display (`google.rpc.PreconditionFailure` for rules,
    /// `google.rpc.BadRequest` for request fields). A violation that names a field goes to
    /// BadRequest, one that names a rule to PreconditionFailure.
    private static func statusDetails(code: StatusCode, message: String, refusal: TypeV1.Refusal) -> [UInt8]? {
        guard let value = try? refusal.encode() else { return nil }
        var details = [TypeV1.AnyDetail(typeUrl: refusalTypeURL, value: value)]
        let rules = refusal.violations.filter { !$0.ruleId.isEmpty }
        let fields = refusal.violations.filter { $0.ruleId.isEmpty && !$0.field.isEmpty }
        if !rules.isEmpty, let failure = try? TypeV1.RpcPreconditionFailure(violations: rules.map {
            TypeV1.RpcPreconditionFailure.Violation(type: $0.ruleId, subject: $0.subjectId, detail: $0.detail)
        }).encode() {
            details.append(TypeV1.AnyDetail(typeUrl: preconditionFailureTypeURL, value: failure))
        }
        if !fields.isEmpty, let badRequest = try? TypeV1.RpcBadRequest(fieldViolations: fields.map {
            TypeV1.RpcBadRequest.FieldViolation(field: $0.field, detail: $0.detail)
        }).encode() {
            details.append(TypeV1.AnyDetail(typeUrl: badRequestTypeURL, value: badRequest))
        }
        return try? TypeV1.RpcStatus(code: Int32(code.rawValue), message: message, details: details).encode()
    }
}
