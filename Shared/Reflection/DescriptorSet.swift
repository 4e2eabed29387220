/// A `google.protobuf.FileDescriptorSet` indexed for server reflection: each file's
/// serialized `FileDescriptorProto` and imports, and the file that declares each
/// fully-qualified symbol (service, method, message, nested message, field, oneof, enum,
/// enum value, extension), as protobuf's own descriptor pools resolve them.
///
/// Read at the wire level with the few fields of descriptor.proto that matter here
/// (FileDescriptorSet.file = 1; FileDescriptorProto name = 1, package = 2, dependency = 3,
/// message_type = 4, enum_type = 5, service = 6, extension = 7; DescriptorProto name = 1,
/// field = 2, nested_type = 3, enum_type = 4, extension = 6, oneof_decl = 8;
/// EnumDescriptorProto name = 1, value = 2; ServiceDescriptorProto name = 1, method = 2;
/// FieldDescriptorProto name = 1, extendee = 2, number = 3), everything else skipped.
/// The files' bytes are kept as they are in the set, source info (the comments) included.
public struct DescriptorSet: Sendable {
    /// One .proto file of the set.
    public struct File: Sendable {
        /// Its path, e.g. `doorstep/accounts/v1/accounts.proto`.
        public let name: String
        public let package: String
        /// The files it imports, by path.
        public let dependencies: [String]
        /// Its serialized `FileDescriptorProto`.
        public let bytes: [UInt8]
    }

    /// Every file, by path.
    public private(set) var files: [String: File] = [:]
    /// The file declaring each symbol, by fully-qualified name (no leading dot).
    private(set) var symbols: [String: String] = [:]
    /// Fully-qualified names of the services.
    public private(set) var serviceNames: Set<String> = []
    /// Fully-qualified names of the messages (nested ones included).
    private var messageNames: Set<String> = []
    /// The file declaring each extension: extended message → field number → file.
    private var extensions: [String: [Int32: String]] = [:]

    /// Reads a serialized `FileDescriptorSet`.
    public init(serialized bytes: [UInt8]) throws(DescriptorSetError) {
        var set = WireReader(bytes[...])
        while let (number, value) = try set.next() {
            guard number == 1, case .bytes(let file) = value else { continue }
            try index(file: file)
        }
    }

    /// The published descriptor set compiled into this build (``PublishedDescriptors``).
    public static let published: DescriptorSet = {
        do {
            return try DescriptorSet(serialized: PublishedDescriptors.bytes)
        } catch {
            preconditionFailure("the compiled-in descriptor set does not read: \(error) (run Scripts/generate-descriptors.sh)")
        }
    }()

    /// The file at `path`.
    public func file(named path: String) -> File? { files[path] }

    /// The file that declares `symbol` (e.g. `doorstep.accounts.v1.Accounts`,
    /// `doorstep.accounts.v1.Accounts.GetAccount`, `doorstep.accounts.v1.Account.Instalment`).
    public func file(declaring symbol: String) -> File? {
        symbols[symbol].flatMap { files[$0] }
    }

    /// The file declaring the extension of message `type` with field `number`.
    public func file(extending type: String, number: Int32) -> File? {
        extensions[type]?[number].flatMap { files[$0] }
    }

    /// The field numbers of every extension of message `type` (empty when it has none); nil
    /// when the set has no such message.
    public func extensionNumbers(of type: String) -> [Int32]? {
        guard messageNames.contains(type) else { return nil }
        return (extensions[type].map { Array($0.keys) } ?? []).sorted()
    }

    /// `file` first, then every file it imports, directly or not, each once (what a
    /// reflection client needs to build it).
    public func withDependencies(_ file: File) -> [File] {
        var result = [file]
        var seen: Set<String> = [file.name]
        var index = 0
        while index < result.count {
            for dependency in result[index].dependencies where !seen.contains(dependency) {
                seen.insert(dependency)
                if let imported = files[dependency] { result.append(imported) }
            }
            index += 1
        }
        return result
    }

    // MARK: Reading descriptor.proto

    private mutating func index(file bytes: ArraySlice<UInt8>) throws(DescriptorSetError) {
        var name = "", package = ""
        var dependencies: [String] = []
        var messages: [ArraySlice<UInt8>] = [], enums: [ArraySlice<UInt8>] = []
        var services: [ArraySlice<UInt8>] = [], fileExtensions: [ArraySlice<UInt8>] = []
        var reader = WireReader(bytes)
        while let (number, value) = try reader.next() {
            guard case .bytes(let body) = value else { continue }
            switch number {
            case 1: name = Self.string(body)
            case 2: package = Self.string(body)
            case 3: dependencies.append(Self.string(body))
            case 4: messages.append(body)
            case 5: enums.append(body)
            case 6: services.append(body)
            case 7: fileExtensions.append(body)
            default: break
            }
        }
        guard !name.isEmpty else { throw DescriptorSetError(problem: "a file without a name") }
        guard files[name] == nil else { throw DescriptorSetError(problem: "\(name) appears twice") }
        files[name] = File(name: name, package: package, dependencies: dependencies, bytes: Array(bytes))
        let prefix = package.isEmpty ? "" : package + "."
        for message in messages { try indexMessage(message, prefix: prefix, file: name) }
        for body in enums { try indexEnum(body, prefix: prefix, file: name) }
        for body in fileExtensions { try indexExtension(body, prefix: prefix, file: name) }
        for body in services {
            var service = "", methods: [String] = []
            var reader = WireReader(body)
            while let (number, value) = try reader.next() {
                guard case .bytes(let field) = value else { continue }
                if number == 1 { service = Self.string(field) }
                if number == 2 { methods.append(try Self.name(of: field)) }
            }
            let full = prefix + service
            serviceNames.insert(full)
            symbols[full] = name
            for method in methods { symbols[full + "." + method] = name }
        }
    }

    private mutating func indexMessage(_ bytes: ArraySlice<UInt8>, prefix: String, file: String) throws(DescriptorSetError) {
        var name = ""
        var members: [String] = []
        var nested: [ArraySlice<UInt8>] = [], enums: [ArraySlice<UInt8>] = [], messageExtensions: [ArraySlice<UInt8>] = []
        var reader = WireReader(bytes)
        while let (number, value) = try reader.next() {
            guard case .bytes(let body) = value else { continue }
            switch number {
            case 1: name = Self.string(body)
            case 2, 8: members.append(try Self.name(of: body))  // fields, oneofs
            case 3: nested.append(body)
            case 4: enums.append(body)
            case 6: messageExtensions.append(body)
            default: break
            }
        }
        let full = prefix + name
        symbols[full] = file
        messageNames.insert(full)
        for member in members { symbols[full + "." + member] = file }
        for body in nested { try indexMessage(body, prefix: full + ".", file: file) }
        for body in enums { try indexEnum(body, prefix: full + ".", file: file) }
        for body in messageExtensions { try indexExtension(body, prefix: full + ".", file: file) }
    }

    /// An enum; its values are scoped beside it (protobuf's C++ scoping rule).
    private mutating func indexEnum(_ bytes: ArraySlice<UInt8>, prefix: String, file: String) throws(DescriptorSetError) {
        var name = ""
        var values: [String] = []
        var reader = WireReader(bytes)
        while let (number, value) = try reader.next() {
            guard case .bytes(let body) = value else { continue }
            if number == 1 { name = Self.string(body) }
            if number == 2 { values.append(try Self.name(of: body)) }
        }
        symbols[prefix + name] = file
        for value in values where symbols[prefix + value] == nil { symbols[prefix + value] = file }
    }

    private mutating func indexExtension(_ bytes: ArraySlice<UInt8>, prefix: String, file: String) throws(DescriptorSetError) {
        var name = "", extendee = ""
        var fieldNumber: Int32 = 0
        var reader = WireReader(bytes)
        while let (number, value) = try reader.next() {
            switch (number, value) {
            case (1, .bytes(let body)): name = Self.string(body)
            case (2, .bytes(let body)): extendee = String(Self.string(body).drop(while: { $0 == "." }))
            case (3, .varint(let n)): fieldNumber = Int32(truncatingIfNeeded: n)
            default: break
            }
        }
        symbols[prefix + name] = file
        extensions[extendee, default: [:]][fieldNumber] = file
    }

    /// Field 1 (`name`) of a descriptor message.
    private static func name(of bytes: ArraySlice<UInt8>) throws(DescriptorSetError) -> String {
        var reader = WireReader(bytes)
        while let (number, value) = try reader.next() {
            if number == 1, case .bytes(let text) = value { return string(text) }
        }
        return ""
    }

    private static func string(_ bytes: ArraySlice<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }
}

/// A descriptor set that is not valid protobuf, or not a set of distinct named files.
public struct DescriptorSetError: Error, Sendable, CustomStringConvertible {
    public let problem: String
    public init(problem: String) { self.problem = problem }
    public var description: String { "descriptor set: \(problem)" }
}

/// The protobuf wire format as far as reading descriptors needs it: varints and
/// length-delimited fields are returned, fixed-width fields skipped, groups refused. Also
/// what `doorstep describe` reads the published set with.
public struct WireReader {
    public enum Value {
        case varint(UInt64)
        case bytes(ArraySlice<UInt8>)
        case fixed
    }

    private var bytes: ArraySlice<UInt8>

    public init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    public var isAtEnd: Bool { bytes.isEmpty }

    /// The next field's number and value, or nil at the end.
    public mutating func next() throws(DescriptorSetError) -> (Int, Value)? {
        guard !bytes.isEmpty else { return nil }
        let key = try varint()
        let number = Int(truncatingIfNeeded: key >> 3)
        switch key & 7 {
        case 0: return (number, .varint(try varint()))
        case 1: try skip(8); return (number, .fixed)
        case 2:
            let length = try varint()
            guard length <= UInt64(bytes.count) else { throw DescriptorSetError(problem: "field \(number) is truncated") }
            let value = bytes.prefix(Int(length))
            bytes = bytes.dropFirst(Int(length))
            return (number, .bytes(value))
        case 5: try skip(4); return (number, .fixed)
        default: throw DescriptorSetError(problem: "field \(number) has wire type \(key & 7)")
        }
    }

    /// A varint (e.g. the elements of a packed field).
    public mutating func varint() throws(DescriptorSetError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while let byte = bytes.first, shift < 64 {
            bytes = bytes.dropFirst()
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
        throw DescriptorSetError(problem: "truncated or overlong varint")
    }

    private mutating func skip(_ count: Int) throws(DescriptorSetError) {
        guard bytes.count >= count else { throw DescriptorSetError(problem: "truncated fixed-width field") }
        bytes = bytes.dropFirst(count)
    }
}
