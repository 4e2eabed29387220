import Storage

extension EventLog {
    /// How many events of `types` the log holds after cursor `after` (a consumer's backlog).
    public func count(_ db: SQLSession, after: Int64, types: TypeFilter) throws -> Int {
        var sql = "SELECT COUNT(*) FROM events WHERE seq > ?"
        var arguments: SQLArguments = [after]
        if let (clause, values) = types.sql {
            sql += " AND (\(clause))"
            arguments += values
        }
        return try db.fetchValue(Int.self, sql: sql, arguments: arguments) ?? 0
    }
}
