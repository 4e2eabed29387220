import Foundation
import GRDB
import GRDBSQLite
import NIOCore
import PostgresNIO

/// One result row read where the engine holds it, handed to the closure of
/// ``SQLSession/readFirstRow(sql:arguments:_:)`` and valid only during that call (never store
/// it, nor the buffers it lends). Columns are read by position (0-based, in the order of the
/// SELECT). On SQLite nothing is copied out of the statement until asked for: a blob column is
/// lent where SQLite holds it, so a stored record is decoded straight from those bytes.
public struct SQLRowInPlace {
    enum Source {
        /// The current row of a SQLite statement stepped by the driver itself (point reads).
        /// Ownership: the statement belongs to GRDB's statement cache of the connection and the
        /// driver holds it for the call; the values it returns (a blob's buffer included) are
        /// SQLite's until the statement is reset, right after the call.
        case statement(SQLiteStatement)
        /// The current row of a SQLite statement (GRDB's statement-backed row).
        case sqlite(GRDB.Row)
        /// A row of a PostgreSQL answer. Ownership: its cells are slices of the answer's
        /// buffers, which the driver keeps for the call.
        case postgres(PostgresRandomAccessRow)
        /// A row already copied out of the engine.
        case copied(SQLRow)
    }

    let source: Source

    init(_ source: Source) { self.source = source }

    /// The number of columns.
    public var count: Int {
        switch source {
        case .statement(let statement): Int(sqlite3_column_count(statement))
        case .sqlite(let row): row.count
        case .postgres(let row): row.count
        case .copied(let row): row.values.count
        }
    }

    /// The value at `position` as `T` (see ``SQLValueConvertible`` for a mismatch).
    public subscript<T: SQLValueConvertible>(_ position: Int) -> T {
        switch source {
        case .copied(let row):
            return row[position]
        case .postgres(let row):
            let cell = row[position]
            let value = (try? PostgresDriver.value(cell)) ?? .null
            guard let converted = T.fromSQL(value) else {
                preconditionFailure("column \(cell.columnName) holds \(value), not \(T.self)")
            }
            return converted
        case .statement(let statement):
            let value = Self.value(statement, position)
            guard let converted = T.fromSQL(value) else {
                preconditionFailure("column \(Self.name(statement, position)) holds \(value), not \(T.self)")
            }
            return converted
        case .sqlite(let row):
            let value = SQLiteDriver.value(row[position] as DatabaseValue)
            guard let converted = T.fromSQL(value) else {
                preconditionFailure("column \(Array(row.columnNames)[position]) holds \(value), not \(T.self)")
            }
            return converted
        }
    }

    /// Calls `body` with the bytes of the BLOB at `position`, lent for the duration of the call
    /// (on SQLite the statement's own buffer, not a copy). A NULL is a programming error in the
    /// schema or the query, as for the other reads.
    public func withBytes<R>(_ position: Int, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        switch source {
        case .copied(let row):
            let bytes: Data = row[position]
            return try bytes.withUnsafeBytes(body)
        case .postgres(let row):
            let cell = row[position]
            guard let bytes = cell.bytes else { preconditionFailure("column \(cell.columnName) is NULL, not a blob") }
            // A bytea in binary format is its bytes as they are; in text format, decoded.
            let raw = cell.format == .binary ? bytes : try cell.decode(ByteBuffer.self)
            return try raw.withUnsafeReadableBytes(body)
        case .statement(let statement):
            let column = CInt(position)
            guard sqlite3_column_type(statement, column) != SQLITE_NULL else {
                preconditionFailure("column \(Self.name(statement, position)) is NULL, not a blob")
            }
            // The blob first, then its size (SQLite's order); an empty blob has no address.
            let start = sqlite3_column_blob(statement, column)
            let count = Int(sqlite3_column_bytes(statement, column))
            return try body(UnsafeRawBufferPointer(start: start, count: start == nil ? 0 : count))
        case .sqlite(let row):
            return try row.withUnsafeData(atIndex: position) { data in
                guard let data else {
                    preconditionFailure("column \(Array(row.columnNames)[position]) is NULL, not a blob")
                }
                return try data.withUnsafeBytes(body)
            }
        }
    }

    /// The value at `position` of a stepped statement, copied.
    private static func value(_ statement: SQLiteStatement, _ position: Int) -> SQLValue {
        let column = CInt(position)
        switch sqlite3_column_type(statement, column) {
        case SQLITE_INTEGER:
            return .integer(sqlite3_column_int64(statement, column))
        case SQLITE_FLOAT:
            return .real(sqlite3_column_double(statement, column))
        case SQLITE_TEXT:
            let text = sqlite3_column_text(statement, column)
            let count = Int(sqlite3_column_bytes(statement, column))
            return .text(String(decoding: UnsafeBufferPointer(start: text, count: text == nil ? 0 : count), as: UTF8.self))
        case SQLITE_BLOB:
            let start = sqlite3_column_blob(statement, column)
            let count = Int(sqlite3_column_bytes(statement, column))
            return .blob(start.map { Data(bytes: $0, count: count) } ?? Data())
        default:
            return .null
        }
    }

    private static func name(_ statement: SQLiteStatement, _ position: Int) -> String {
        sqlite3_column_name(statement, CInt(position)).map { String(cString: $0) } ?? "#\(position)"
    }
}
