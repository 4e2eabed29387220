import Foundation
import Models

/// An import file's format (docs/OPERATIONS.md "Bulk loading"): JSON Lines (one record per
/// line in proto3 JSON) or CSV with a header naming the columns.
enum ImportFormat: String {
    case jsonl
    case csv
}

/// A problem with the file as a whole, found before any record is sent.
struct ImportFileRefused: Error, CustomStringConvertible {
    let description: String
}

/// The lines of a file read in chunks, split on LF bytes (a CR before it dropped), so that
/// CRLF files read as LF files and a multi-byte character is never split.
struct LineReader {
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private var start = 0
    private var atEnd = false

    init(path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw ImportFileRefused(description: "\(path): cannot be read") }
        self.handle = handle
    }

    /// The next line without its line ending; nil at the end of the file.
    mutating func next() -> ArraySlice<UInt8>? {
        while true {
            if let newline = buffer[start...].firstIndex(of: 0x0A) {
                var line = buffer[start..<newline]
                start = newline + 1
                if line.last == 0x0D { line = line.dropLast() }
                return line
            }
            if atEnd {
                guard start < buffer.count else { return nil }
                var line = buffer[start...]
                start = buffer.count
                if line.last == 0x0D { line = line.dropLast() }
                return line
            }
            buffer.removeFirst(start)
            start = 0
            let chunk = handle.readData(ofLength: 1 << 20)
            if chunk.isEmpty { atEnd = true } else { buffer += chunk }
        }
    }
}

/// Reads the records of an import file: checks the whole file first (encoding, format,
/// header), then yields each non-empty line's record with its line number, or why it
/// cannot be read.
struct ImportFile {
    let path: String
    let format: ImportFormat
    /// CSV: the header's column names, in order.
    let columns: [String]
    /// Non-empty lines that are records (the CSV header not counted).
    let recordCount: Int

    /// The columns a CSV file must have (others optional), per kind.
    static func requiredColumns(payments: Bool) -> [String] {
        payments ? ["lender_id", "account_external_id", "external_id", "amount_minor", "currency", "received_ms"]
            : ["debtor_external_id", "full_name", "national_id", "phone", "address_text", "region_code", "time_zone",
               "account_external_id", "lender_id", "product", "principal_minor", "currency", "opened_date", "instalments"]
    }

    /// Every column a CSV file may have, per kind (the two of the rejects file included).
    static func knownColumns(payments: Bool) -> Set<String> {
        Set(requiredColumns(payments: payments) + rejectColumns
            + (payments ? ["note"] : ["postal_code", "latitude", "longitude", "emergency_contacts", "product_name", "assigned_agency_id"]))
    }

    /// Added to each line of a rejects file: what to fix.
    static let rejectColumns = ["reject_field", "reject_reason"]
    /// The JSON key a rejects file adds to each record (ignored when importing).
    static let rejectKey = "_reject"

    /// Opens and checks the file: refused (one line) when it is not UTF-8 (UTF-16 with or
    /// without a byte-order mark, other bytes), empty, or a CSV without the required columns.
    init(path: String, format explicit: ImportFormat?, payments: Bool) throws {
        self.path = path
        var reader = try LineReader(path: path)
        var lineNumber = 0
        var count = 0
        var first: ArraySlice<UInt8>?
        while let line = reader.next() {
            lineNumber += 1
            if lineNumber == 1 {
                if line.starts(with: [0xFF, 0xFE]) || line.starts(with: [0xFE, 0xFF]) {
                    throw ImportFileRefused(description: "\(path): UTF-16 (byte-order mark); convert it to UTF-8")
                }
                if line.contains(0) {
                    throw ImportFileRefused(description: "\(path): not UTF-8 (NUL bytes: UTF-16 without a byte-order mark?); convert it to UTF-8")
                }
            }
            guard String(validating: line, as: UTF8.self) != nil else {
                throw ImportFileRefused(description: "\(path): line \(lineNumber) is not valid UTF-8; convert the file to UTF-8")
            }
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            if first == nil { first = line } else { count += 1 }
        }
        guard var first else { throw ImportFileRefused(description: "\(path): no records") }
        if first.starts(with: [0xEF, 0xBB, 0xBF]) { first = first.dropFirst(3) }
        let firstText = String(decoding: first, as: UTF8.self)
        let detected: ImportFormat
        if let explicit {
            detected = explicit
        } else if path.lowercased().hasSuffix(".csv") {
            detected = .csv
        } else if path.lowercased().hasSuffix(".jsonl") || path.lowercased().hasSuffix(".ndjson") || firstText.hasPrefix("{") {
            detected = .jsonl
        } else {
            throw ImportFileRefused(description: "\(path): neither JSON Lines (a '{' first) nor CSV (.csv); name the format with --format")
        }
        self.format = detected
        switch detected {
        case .jsonl:
            guard firstText.hasPrefix("{") else {
                throw ImportFileRefused(description: "\(path): line 1 is not a JSON object; JSON Lines has one record object per line")
            }
            self.columns = []
            self.recordCount = count + 1
        case .csv:
            let header = CSV.fields(firstText).map { $0.trimmingCharacters(in: .whitespaces) }
            let missing = Self.requiredColumns(payments: payments).filter { !header.contains($0) }
            guard missing.isEmpty else {
                throw ImportFileRefused(description: "\(path): the CSV header lacks the column(s) \(missing.joined(separator: ", "))")
            }
            let unknown = header.filter { !Self.knownColumns(payments: payments).contains($0) }
            guard unknown.isEmpty else {
                throw ImportFileRefused(description: "\(path): unknown CSV column(s) \(unknown.joined(separator: ", "))")
            }
            self.columns = header
            self.recordCount = count
        }
    }
}

/// RFC 4180 fields of one line (quoted fields with "" for a quote; no line breaks inside).
enum CSV {
    static func fields(_ line: String) -> [String] {
        var fields: [String] = []
        var field = ""
        var quoted = false
        var iterator = line.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar? = iterator.next()
        while let scalar = pending {
            pending = iterator.next()
            if quoted {
                if scalar == "\"" {
                    if pending == "\"" { field.unicodeScalars.append("\""); pending = iterator.next() } else { quoted = false }
                } else {
                    field.unicodeScalars.append(scalar)
                }
            } else if scalar == "\"" {
                quoted = true
            } else if scalar == "," {
                fields.append(field)
                field = ""
            } else {
                field.unicodeScalars.append(scalar)
            }
        }
        fields.append(field)
        return fields
    }

    /// A field as written to a CSV line: quoted when it holds a comma, quote or line break.
    static func escape(_ field: String) -> String {
        guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// A problem with one record found while reading it (not sent; written to the rejects file).
struct RecordProblem: Error {
    let field: String
    let reason: String
}

/// The CSV columns of each record kind mapped to the record messages.
enum ImportCSV {
    static func accountRecord(_ row: [String: String]) throws(RecordProblem) -> AccountsV1.ImportAccountsRequest {
        func value(_ name: String) -> String { row[name]?.trimmingCharacters(in: .whitespaces) ?? "" }
        var debtor = AccountsV1.Debtor()
        debtor.externalId = value("debtor_external_id")
        debtor.fullName = value("full_name")
        debtor.nationalId = value("national_id")
        debtor.phone = value("phone")
        var address = TypeV1.Address()
        address.text = value("address_text")
        address.regionCode = value("region_code")
        address.postalCode = value("postal_code")
        if !value("latitude").isEmpty || !value("longitude").isEmpty {
            guard let latitude = Double(value("latitude")) else { throw RecordProblem(field: "latitude", reason: "not a number") }
            guard let longitude = Double(value("longitude")) else { throw RecordProblem(field: "longitude", reason: "not a number") }
            address.location = TypeV1.GeoPoint(latitude: latitude, longitude: longitude)
        }
        debtor.address = address
        debtor.timeZone = value("time_zone")
        for (index, entry) in value("emergency_contacts").split(separator: ";", omittingEmptySubsequences: true).enumerated() {
            let parts = entry.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3, let relationship = AccountsV1.Relationship(protoName: "RELATIONSHIP_" + parts[1].uppercased()) else {
                throw RecordProblem(field: "emergency_contacts[\(index)]", reason: "must be NAME|RELATIONSHIP|PHONE (e.g. Li Na|SPOUSE|13800000000)")
            }
            var contact = AccountsV1.EmergencyContact()
            contact.fullName = parts[0]
            contact.relationship = relationship
            contact.phone = parts[2]
            debtor.emergencyContacts.append(contact)
        }
        var account = AccountsV1.ImportedAccount()
        account.externalId = value("account_external_id")
        account.lenderId = value("lender_id")
        guard let product = AccountsV1.ProductType(protoName: "PRODUCT_TYPE_" + value("product").uppercased()) else {
            throw RecordProblem(field: "product", reason: "unknown product '\(value("product"))'")
        }
        account.product = product
        account.productName = value("product_name")
        let currency = value("currency")
        guard let principal = Int64(value("principal_minor")) else { throw RecordProblem(field: "principal_minor", reason: "not an integer") }
        account.principal = TypeV1.Money(amountMinor: principal, currencyCode: currency)
        account.openedDate = try date(value("opened_date"), field: "opened_date")
        for (index, entry) in value("instalments").split(separator: ";", omittingEmptySubsequences: true).enumerated() {
            let field = "instalments[\(index)]"
            let parts = entry.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2 || parts.count == 4, let due = Int64(parts[1]) else {
                throw RecordProblem(field: field, reason: "must be DUE_DATE:AMOUNT_MINOR or DUE_DATE:AMOUNT_MINOR:PAID_MINOR:PAID_DATE")
            }
            var instalment = AccountsV1.OpeningInstalment()
            instalment.dueDate = try date(parts[0], field: field)
            instalment.amountDue = TypeV1.Money(amountMinor: due, currencyCode: currency)
            if parts.count == 4 {
                guard let paid = Int64(parts[2]) else { throw RecordProblem(field: field, reason: "amount paid is not an integer") }
                instalment.amountPaid = TypeV1.Money(amountMinor: paid, currencyCode: currency)
                if !parts[3].isEmpty { instalment.paidDate = try date(parts[3], field: field) }
            }
            account.instalments.append(instalment)
        }
        account.assignedAgencyId = value("assigned_agency_id")
        var record = AccountsV1.ImportAccountsRequest()
        record.debtor = debtor
        record.account = account
        return record
    }

    static func paymentRecord(_ row: [String: String]) throws(RecordProblem) -> AccountsV1.ImportPaymentsRequest {
        func value(_ name: String) -> String { row[name]?.trimmingCharacters(in: .whitespaces) ?? "" }
        var record = AccountsV1.ImportPaymentsRequest()
        record.lenderId = value("lender_id")
        record.accountExternalId = value("account_external_id")
        record.externalId = value("external_id")
        guard let amount = Int64(value("amount_minor")) else { throw RecordProblem(field: "amount_minor", reason: "not an integer") }
        record.amount = TypeV1.Money(amountMinor: amount, currencyCode: value("currency"))
        guard let received = Int64(value("received_ms")) else { throw RecordProblem(field: "received_ms", reason: "not an integer") }
        record.receivedMs = received
        record.note = value("note")
        return record
    }

    /// YYYY-MM-DD.
    static func date(_ text: String, field: String) throws(RecordProblem) -> TypeV1.Date {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let year = Int32(parts[0]), let month = Int32(parts[1]), let day = Int32(parts[2]) else {
            throw RecordProblem(field: field, reason: "'\(text)' is not a date YYYY-MM-DD")
        }
        return TypeV1.Date(year: year, month: month, day: day)
    }
}
