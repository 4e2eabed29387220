import Foundation

/// An error in a Solomon-format text, naming the 1-based line it was found on.
public struct SolomonFormatError: Error, Sendable, Hashable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public init(line: Int, message: String) {
        self.line = line
        self.message = message
    }
    public var description: String { "line \(line): \(message)" }
}

/// Reader of the simplified Solomon VRPTW text format used by the issue:
///
///     N CAPACITY [VEHICLES]
///     0  x y demand ready due service      <- depot
///     1  x y demand ready due service
///     ...
///
/// Fields are separated by any whitespace; blank lines are ignored. `N` may count either
/// the customers (N + 1 rows follow, the usual Solomon "100 customers") or all nodes (N rows);
/// any other row count is an error. Rows must carry ids 0, 1, 2, … in order. Demands and
/// `CAPACITY` are integers (written as `10` or `10.0`); coordinates and times are decimals.
/// The optional third field `VEHICLES` is the fleet size; without it the fleet is unlimited
/// (one vehicle per customer). Vehicles are identical, based at node 0, with node 0's
/// [ready, due] as their shift. Distances are Euclidean in `Double`, not rounded or
/// truncated, and travel time = distance.
///
/// The classic Solomon files (name line, `VEHICLE` / `NUMBER CAPACITY` block, `CUSTOMER`
/// header) are NOT read directly: convert them first (see Scripts/solomon/README.md).
public enum SolomonFormat {
    public static func parse(_ text: String) throws -> VRPTWProblem {
        var rows: [(line: Int, fields: [Substring])] = []
        var lineNumber = 0
        // By Character.isNewline, not "\n": in a Swift String "\r\n" is one Character, so a
        // file with Windows line endings has no "\n" Character at all.
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            lineNumber += 1
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if !fields.isEmpty { rows.append((lineNumber, fields)) }
        }
        guard let header = rows.first else {
            throw SolomonFormatError(line: max(lineNumber, 1), message: "empty input: expected `N CAPACITY`")
        }
        guard header.fields.count == 2 || header.fields.count == 3 else {
            throw SolomonFormatError(
                line: header.line, message: "expected `N CAPACITY [VEHICLES]`, found \(header.fields.count) fields")
        }
        let n = try integer(header.fields[0], "N", header.line)
        let capacity = try integer(header.fields[1], "CAPACITY", header.line)
        var vehicleCount: Int? = nil
        if header.fields.count == 3 {
            let count = try integer(header.fields[2], "VEHICLES", header.line)
            guard count > 0 else { throw SolomonFormatError(line: header.line, message: "VEHICLES must be positive") }
            vehicleCount = count
        }
        guard n >= 0 else { throw SolomonFormatError(line: header.line, message: "N must not be negative") }
        guard capacity >= 0 else { throw SolomonFormatError(line: header.line, message: "CAPACITY must not be negative") }

        let body = rows.dropFirst()
        guard body.count == n + 1 || (body.count == n && n >= 1) else {
            let line = body.last?.line ?? header.line
            throw SolomonFormatError(
                line: line,
                message: "N = \(n) but \(body.count) node rows follow (expected \(n + 1), or \(n) if N counts the depot)")
        }
        var nodes: [VRPTWNode] = []
        nodes.reserveCapacity(body.count)
        for (index, row) in body.enumerated() {
            guard row.fields.count == 7 else {
                throw SolomonFormatError(
                    line: row.line, message: "expected 7 fields `id x y demand ready due service`, found \(row.fields.count)")
            }
            let id = try integer(row.fields[0], "id", row.line)
            guard id == index else {
                throw SolomonFormatError(line: row.line, message: "expected node id \(index), found \(id)")
            }
            let x = try decimal(row.fields[1], "x", row.line)
            let y = try decimal(row.fields[2], "y", row.line)
            let demand = try integer(row.fields[3], "demand", row.line)
            let ready = try decimal(row.fields[4], "ready", row.line)
            let due = try decimal(row.fields[5], "due", row.line)
            let service = try decimal(row.fields[6], "service", row.line)
            guard demand >= 0 else { throw SolomonFormatError(line: row.line, message: "demand must not be negative") }
            guard service >= 0 else { throw SolomonFormatError(line: row.line, message: "service must not be negative") }
            guard ready <= due else { throw SolomonFormatError(line: row.line, message: "ready \(ready) is after due \(due)") }
            nodes.append(VRPTWNode(x: x, y: y, demand: demand, ready: ready, due: due, serviceTime: service))
        }
        return VRPTWProblem(nodes: nodes, vehicleCount: vehicleCount, capacity: capacity)
    }

    private static func decimal(_ field: Substring, _ name: String, _ line: Int) throws -> Double {
        guard let value = Double(field), value.isFinite else {
            throw SolomonFormatError(line: line, message: "\(name) `\(field)` is not a number")
        }
        return value
    }

    private static func integer(_ field: Substring, _ name: String, _ line: Int) throws -> Int {
        if let value = Int(field) { return value }
        if let value = Double(field), value.isFinite, value == value.rounded(), abs(value) < 1e15 {
            return Int(value)
        }
        throw SolomonFormatError(line: line, message: "\(name) `\(field)` is not an integer")
    }
}
