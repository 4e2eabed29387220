#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// Field readers and writers of the proto3 JSON mapping, used by the generated code.
// Readers accept what the mapping allows a parser to accept: integers as numbers or
// strings, floating point as numbers or "NaN"/"Infinity"/"-Infinity", enums by name or
// number, bytes as standard or URL-safe base64 with or without padding.

extension JSONValue {
    func mappingError(_ path: String, _ problem: String) -> JSONMappingError {
        JSONMappingError(path: path, problem: problem)
    }

    /// The members of a JSON object.
    func objectMembers(_ path: String) throws(JSONMappingError) -> [(String, JSONValue)] {
        guard case .object(let members) = self else { throw mappingError(path, "must be a JSON object") }
        return members
    }

    /// The elements of a JSON array (null reads as empty).
    func arrayElements(_ path: String) throws(JSONMappingError) -> [JSONValue] {
        switch self {
        case .array(let elements): return elements
        case .null: return []
        default: throw mappingError(path, "must be a JSON array")
        }
    }

    private func integer<T: FixedWidthInteger>(_: T.Type, _ path: String) throws(JSONMappingError) -> T {
        let value: T?
        switch self {
        case .integer(let v): value = T(exactly: v)
        case .unsignedInteger(let v): value = T(exactly: v)
        case .number(let v): value = v.rounded() == v ? T(exactly: v) : nil
        case .string(let s): value = T(s) ?? Double(s).flatMap { $0.rounded() == $0 ? T(exactly: $0) : nil }
        default: throw mappingError(path, "must be an integer")
        }
        guard let value else { throw mappingError(path, "must be an integer in the range of \(T.self)") }
        return value
    }

    func int32(_ path: String) throws(JSONMappingError) -> Int32 { try integer(Int32.self, path) }
    func int64(_ path: String) throws(JSONMappingError) -> Int64 { try integer(Int64.self, path) }
    func uint32(_ path: String) throws(JSONMappingError) -> UInt32 { try integer(UInt32.self, path) }
    func uint64(_ path: String) throws(JSONMappingError) -> UInt64 { try integer(UInt64.self, path) }

    func double(_ path: String) throws(JSONMappingError) -> Double {
        switch self {
        case .number(let v): return v
        case .integer(let v): return Double(v)
        case .unsignedInteger(let v): return Double(v)
        case .string("NaN"): return .nan
        case .string("Infinity"): return .infinity
        case .string("-Infinity"): return -.infinity
        case .string(let s):
            guard let v = Double(s) else { throw mappingError(path, "must be a number") }
            return v
        default: throw mappingError(path, "must be a number")
        }
    }

    func float(_ path: String) throws(JSONMappingError) -> Float {
        let value = try double(path)
        // A finite number is accepted when it rounds to a finite float (Python writes
        // FLT_MAX as 3.4028235e+38, a hair above it as a double).
        let rounded = Float(value)
        guard rounded.isFinite || !value.isFinite else {
            throw mappingError(path, "is out of the range of a float")
        }
        return rounded
    }

    func bool(_ path: String) throws(JSONMappingError) -> Bool {
        guard case .bool(let v) = self else { throw mappingError(path, "must be true or false") }
        return v
    }

    func string(_ path: String) throws(JSONMappingError) -> String {
        guard case .string(let v) = self else { throw mappingError(path, "must be a string") }
        return v
    }

    func bytes(_ path: String) throws(JSONMappingError) -> [UInt8] {
        guard case .string(let text) = self else { throw mappingError(path, "must be a base64 string") }
        var normalized = String(text.map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 })
        normalized += String(repeating: "=", count: (4 - normalized.utf8.count % 4) % 4)
        guard let data = Data(base64Encoded: normalized) else { throw mappingError(path, "must be a base64 string") }
        return [UInt8](data)
    }

    func enumValue<E: ProtoEnum>(_: E.Type, _ path: String) throws(JSONMappingError) -> E {
        switch self {
        case .string(let name):
            guard let value = E(protoName: name) else { throw mappingError(path, "has no enum value named '\(name)'") }
            return value
        case .integer, .unsignedInteger, .number:
            return E(rawValue: try int32(path))
        default:
            throw mappingError(path, "must be an enum name or number")
        }
    }

    // Writers.

    static func int64(_ value: Int64) -> JSONValue { .string(String(value)) }
    static func uint64(_ value: UInt64) -> JSONValue { .string(String(value)) }
    static func bytes(_ value: [UInt8]) -> JSONValue { .string(Data(value).base64EncodedString()) }
    static func enumValue<E: ProtoEnum>(_ value: E) -> JSONValue {
        value.protoName.map(JSONValue.string) ?? .integer(Int64(value.rawValue))
    }
}
