import Foundation

/// One value bound to a `?` placeholder or read from a result column, in the storage
/// classes both engines share: integers (booleans are stored as 0/1), reals, text, bytes,
/// and NULL. Times are integers (milliseconds since 1970), never engine time types, so a
/// row means the same on SQLite and PostgreSQL.
public enum SQLValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob(Data)
}

/// A Swift type stored in one column: how it is bound, and how it is read back. Reading a
/// value of another storage class (or NULL into a non-optional) is a programming error in
/// the schema or the query and stops the process, as GRDB does; every column the stores
/// read is declared `NOT NULL` or read as an optional.
public protocol SQLValueConvertible: Sendable {
    var sqlValue: SQLValue { get }
    static func fromSQL(_ value: SQLValue) -> Self?
}

extension Int64: SQLValueConvertible {
    public var sqlValue: SQLValue { .integer(self) }
    public static func fromSQL(_ value: SQLValue) -> Int64? {
        switch value {
        case .integer(let v): v
        case .real(let v): Int64(exactly: v)
        case .text(let v): Int64(v)
        default: nil
        }
    }
}

extension Int: SQLValueConvertible {
    public var sqlValue: SQLValue { .integer(Int64(self)) }
    public static func fromSQL(_ value: SQLValue) -> Int? { Int64.fromSQL(value).flatMap { Int(exactly: $0) } }
}

extension Int32: SQLValueConvertible {
    public var sqlValue: SQLValue { .integer(Int64(self)) }
    public static func fromSQL(_ value: SQLValue) -> Int32? { Int64.fromSQL(value).flatMap { Int32(exactly: $0) } }
}

extension Double: SQLValueConvertible {
    public var sqlValue: SQLValue { .real(self) }
    public static func fromSQL(_ value: SQLValue) -> Double? {
        switch value {
        case .real(let v): v
        case .integer(let v): Double(v)
        case .text(let v): Double(v)
        default: nil
        }
    }
}

extension Bool: SQLValueConvertible {
    public var sqlValue: SQLValue { .integer(self ? 1 : 0) }
    public static func fromSQL(_ value: SQLValue) -> Bool? { Int64.fromSQL(value).map { $0 != 0 } }
}

extension String: SQLValueConvertible {
    public var sqlValue: SQLValue { .text(self) }
    public static func fromSQL(_ value: SQLValue) -> String? {
        if case .text(let v) = value { return v }
        return nil
    }
}

extension Data: SQLValueConvertible {
    public var sqlValue: SQLValue { .blob(self) }
    public static func fromSQL(_ value: SQLValue) -> Data? {
        if case .blob(let v) = value { return v }
        return nil
    }
}

extension Optional: SQLValueConvertible where Wrapped: SQLValueConvertible {
    public var sqlValue: SQLValue { self?.sqlValue ?? .null }
    /// NULL reads as `.some(nil)`; any other value as the wrapped type reads it.
    public static func fromSQL(_ value: SQLValue) -> Wrapped?? {
        if case .null = value { return .some(nil) }
        return Wrapped.fromSQL(value).map { .some($0) }
    }
}

/// The values of a statement's `?` placeholders, in order.
public struct SQLArguments: Sendable, ExpressibleByArrayLiteral {
    public var values: [SQLValue]

    public init() { values = [] }
    public init(_ values: [any SQLValueConvertible]) { self.values = values.map(\.sqlValue) }
    public init(arrayLiteral elements: (any SQLValueConvertible)...) { self.values = elements.map(\.sqlValue) }

    public mutating func append(_ value: any SQLValueConvertible) { values.append(value.sqlValue) }
    public mutating func append(contentsOf more: [any SQLValueConvertible]) { values += more.map(\.sqlValue) }

    public static func += (lhs: inout SQLArguments, rhs: SQLArguments) { lhs.values += rhs.values }
}

/// The columns of a result, shared by its rows.
final class SQLColumns: Sendable {
    let names: [String]
    private let index: [String: Int]

    init(_ names: [String]) {
        self.names = names
        var index: [String: Int] = [:]
        for (i, name) in names.enumerated() where index[name.lowercased()] == nil { index[name.lowercased()] = i }
        self.index = index
    }

    func position(_ name: String) -> Int? { index[name] ?? index[name.lowercased()] }
}

/// One result row; columns are read by name (case-insensitive) or position.
public struct SQLRow: Sendable {
    let columns: SQLColumns
    public let values: [SQLValue]

    init(columns: SQLColumns, values: [SQLValue]) {
        self.columns = columns
        self.values = values
    }

    /// The value of column `name` as `T` (see ``SQLValueConvertible`` for a mismatch).
    public subscript<T: SQLValueConvertible>(_ name: String) -> T {
        guard let position = columns.position(name) else {
            preconditionFailure("no column '\(name)' in the result (\(columns.names.joined(separator: ", ")))")
        }
        return self[position]
    }

    /// The value at `position` (0-based) as `T`.
    public subscript<T: SQLValueConvertible>(_ position: Int) -> T {
        guard let value = T.fromSQL(values[position]) else {
            preconditionFailure("column \(columns.names[position]) holds \(values[position]), not \(T.self)")
        }
        return value
    }
}
