/// One multi-row statement shape — an INSERT of many `VALUES` tuples — in the sizes 1, 2, 4, …
/// `maxRows` rows: n rows are written in few statements (128 rows in one, 130 in two), and the
/// engines' statement caches see at most eight texts per shape, however the counts vary.
///
///     let inserts = RowBatchStatements(prefix: "INSERT INTO t (a, b) VALUES ", tuple: "(?, ?)")
///     try inserts.execute(db, rows) { row in [row.a, row.b] }
public struct RowBatchStatements: Sendable {
    /// The texts of 1, 2, 4, … `maxRows` rows.
    private let statements: [String]
    /// The most rows one statement writes (a power of two, 1…128).
    public let maxRows: Int

    /// `prefix`, then `tuple` (one row's placeholders) once per row separated by ", ", then
    /// `suffix` (e.g. an `ON CONFLICT` clause). `maxRows` is rounded down to a power of two
    /// and kept within 1…128 (PostgreSQL takes at most 65,535 parameters in one statement).
    public init(prefix: String, tuple: String, suffix: String = "", maxRows: Int = 128) {
        var limit = 1
        while limit * 2 <= min(128, maxRows) { limit *= 2 }
        self.maxRows = limit
        self.statements = (0...limit.trailingZeroBitCount).map { power in
            prefix + Array(repeating: tuple, count: 1 << power).joined(separator: ", ") + suffix
        }
    }

    /// Writes `rows` in order, each as the values `arguments` gives for it (as many as `tuple`
    /// has placeholders), in statements of the largest size left that fits. Returns the rows
    /// the statements changed.
    @discardableResult
    public func execute<Row>(_ db: SQLSession, _ rows: some RandomAccessCollection<Row>,
                             arguments: (Row) -> [any SQLValueConvertible]) throws -> Int {
        var changed = 0
        var start = rows.startIndex
        for count in Self.sizes(rows.count, maxRows: maxRows) {
            let end = rows.index(start, offsetBy: count)
            var values = SQLArguments()
            for row in rows[start..<end] { values.append(contentsOf: arguments(row)) }
            changed += try db.execute(sql: statements[count.trailingZeroBitCount], arguments: values)
            start = end
        }
        return changed
    }

    /// The rows of each statement for `count` rows: the largest size left that fits, each time.
    static func sizes(_ count: Int, maxRows: Int) -> [Int] {
        var sizes: [Int] = []
        var left = count
        while left > 0 {
            var size = maxRows
            while size > left { size /= 2 }
            sizes.append(size)
            left -= size
        }
        return sizes
    }
}
