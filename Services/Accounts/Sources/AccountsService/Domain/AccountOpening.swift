import Models
import Validation

/// An OpenAccount request that passed validation: the account's fixed terms and its
/// instalment schedule in the stored form.
public struct ValidOpening: Sendable, Hashable {
    /// The idempotency key.
    public var requestID: String
    /// The debtor ("dbt_…"); its existence is checked by the caller (NOT_FOUND).
    public var debtorID: String
    /// The lender's contract number, unique per `lenderID` (checked by the caller).
    public var externalID: String
    public var lenderID: String
    public var product: AccountsV1.ProductType
    /// Empty when not given.
    public var productName: String
    public var principalMinor: Int64
    /// The account's currency: the principal's (ISO 4217).
    public var currency: String
    public var openedDate: CivilDate
    /// Sequence 1...n in due-date order; `amount_paid` always set (0 when nothing was paid);
    /// status UNPAID, PARTIALLY_PAID or PAID from the amount paid; `paid_date` only when PAID.
    public var instalments: [AccountsV1.Instalment]
    /// The agency the account is assigned to ("agy_…"), or nil.
    public var assignedAgencyID: String?
}

/// Checks an OpenAccount request (accounts.proto `OpenAccountRequest`, `OpeningInstalment`)
/// field by field in proto field order; the first invalid field is reported.
public enum AccountOpening {
    /// Most instalments a schedule may have (accounts.proto `OpenAccountRequest.instalments`).
    public static let maxInstalments = 360
    /// Longest product name (accounts.proto `OpenAccountRequest.product_name`).
    public static let maxProductNameLength = 100

    /// The request's content in stored form, or INVALID_ARGUMENT naming the field path,
    /// e.g. "instalments[3].due_date: must be after instalments[2].due_date". `asOf` is the
    /// debtor-local date today on the service clock: neither the opening date nor a paid
    /// date may be after it.
    public static func validate(_ request: AccountsV1.OpenAccountRequest, asOf: CivilDate) throws(DomainError) -> ValidOpening {
        try Validate.requestID(request.requestId)
        try Validate.resourceID(request.debtorId, field: "debtor_id", prefix: "dbt")
        try Validate.externalID(request.externalId, field: "external_id")
        try lenderID(request.lenderId, field: "lender_id")
        try product(request.product, field: "product")
        try Validate.text(request.productName, field: "product_name", min: 0, max: maxProductNameLength)
        let principal = try Validate.money(request.principal, field: "principal", currency: nil, allowZero: false)
        let currency = request.principal?.currencyCode ?? ""
        let openedDate = try Validate.date(request.openedDate, field: "opened_date")
        guard openedDate <= asOf else {
            throw .invalidArgument("opened_date", "must not be after today (\(asOf))")
        }
        let instalments = try schedule(request.instalments, openedDate: openedDate, currency: currency, asOf: asOf)
        let totalDue = instalments.reduce(Int64(0)) { $0 + ($1.amountDue?.amountMinor ?? 0) }  // no overflow: checked by schedule
        guard totalDue >= principal else {
            throw .invalidArgument(
                "instalments",
                "amounts due sum to \(totalDue), less than the principal \(principal) (\(currency) minor units)"
            )
        }
        var assignedAgencyID: String?
        if !request.assignedAgencyId.isEmpty {
            try Validate.resourceID(request.assignedAgencyId, field: "assigned_agency_id", prefix: "agy")
            assignedAgencyID = request.assignedAgencyId
        }
        return ValidOpening(
            requestID: request.requestId,
            debtorID: request.debtorId,
            externalID: request.externalId,
            lenderID: request.lenderId,
            product: request.product,
            productName: request.productName,
            principalMinor: principal,
            currency: currency,
            openedDate: openedDate,
            instalments: instalments,
            assignedAgencyID: assignedAgencyID
        )
    }

    /// A lender id: required, 1-64 characters of [a-z0-9_-] (accounts.proto
    /// `OpenAccountRequest.lender_id`).
    static func lenderID(_ value: String, field: String) throws(DomainError) {
        guard !value.isEmpty else { throw .invalidArgument(field, "required") }
        guard value.utf8.allSatisfy(isLenderIDByte) else {
            throw .invalidArgument(field, "must contain only [a-z0-9_-]")
        }
        guard value.utf8.count <= Validate.maxIdentifierLength else {
            throw .invalidArgument(field, "must be at most \(Validate.maxIdentifierLength) characters")
        }
    }

    /// A product type: required and known to this build.
    static func product(_ value: AccountsV1.ProductType, field: String) throws(DomainError) {
        switch value {
        case .unspecified: throw .invalidArgument(field, "required")
        case .unrecognized(let number): throw .invalidArgument(field, "unknown value \(number)")
        case .instalmentLoan, .creditLine, .cashLoan, .creditCard: return
        }
    }

    /// The schedule in stored form. Rules (accounts.proto `OpeningInstalment`): 1-360
    /// entries; due dates strictly increasing and none before the opening date; amount due
    /// > 0 in the account's currency; amount paid (absent = 0) at most the amount due; a
    /// paid date exactly when fully paid, and not after `asOf`; the amounts due must not
    /// overflow when summed.
    static func schedule(
        _ entries: [AccountsV1.OpeningInstalment], openedDate: CivilDate, currency: String, asOf: CivilDate
    ) throws(DomainError) -> [AccountsV1.Instalment] {
        guard !entries.isEmpty else { throw .invalidArgument("instalments", "required") }
        guard entries.count <= maxInstalments else {
            throw .invalidArgument("instalments", "at most \(maxInstalments) entries")
        }
        var instalments: [AccountsV1.Instalment] = []
        instalments.reserveCapacity(entries.count)
        var previousDue: CivilDate?
        var totalDue: Int64 = 0
        for (index, entry) in entries.enumerated() {
            let field = "instalments[\(index)]"
            let dueDate = try Validate.date(entry.dueDate, field: "\(field).due_date")
            if let previousDue, dueDate <= previousDue {
                throw .invalidArgument("\(field).due_date", "must be after instalments[\(index - 1)].due_date")
            }
            if dueDate < openedDate {
                throw .invalidArgument("\(field).due_date", "must not be before opened_date")
            }
            previousDue = dueDate

            let amountDue = try Validate.money(entry.amountDue, field: "\(field).amount_due", currency: currency, allowZero: false)
            let (sum, overflow) = totalDue.addingReportingOverflow(amountDue)
            if overflow {
                throw .invalidArgument("\(field).amount_due", "the amounts due are too large to add up")
            }
            totalDue = sum

            var amountPaid: Int64 = 0
            if entry.amountPaid != nil {
                amountPaid = try Validate.money(entry.amountPaid, field: "\(field).amount_paid", currency: currency, allowZero: true)
                if amountPaid > amountDue {
                    throw .invalidArgument("\(field).amount_paid", "must not exceed amount_due")
                }
            }

            let fullyPaid = amountPaid == amountDue
            let paidDate = try Validate.optionalDate(entry.paidDate, field: "\(field).paid_date")
            switch (fullyPaid, paidDate) {
            case (true, nil):
                throw .invalidArgument("\(field).paid_date", "required when amount_paid equals amount_due")
            case (false, .some):
                throw .invalidArgument("\(field).paid_date", "must be unset unless amount_paid equals amount_due")
            case (true, .some(let date)) where date > asOf:
                throw .invalidArgument("\(field).paid_date", "must not be after today (\(asOf))")
            default:
                break
            }

            instalments.append(AccountsV1.Instalment(
                sequence: Int32(index + 1),
                dueDate: dueDate.proto,
                amountDue: TypeV1.Money(amountMinor: amountDue, currencyCode: currency),
                amountPaid: TypeV1.Money(amountMinor: amountPaid, currencyCode: currency),
                status: fullyPaid ? .paid : (amountPaid > 0 ? .partiallyPaid : .unpaid),
                paidDate: paidDate?.proto
            ))
        }
        return instalments
    }

    private static func isLenderIDByte(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
            || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }
}
