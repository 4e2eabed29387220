import Foundation
import Reflection

/// The services, methods and messages of a `google.protobuf.FileDescriptorSet` — by default
/// the published one (`proto/descriptors/doorstep.binpb`, compiled in as `PublishedDescriptors`
/// of the Reflection module, the bytes the services' reflection serves) — as `doorstep
/// describe` shows them.
///
/// Read with a small protobuf reader of its own: only the fields of descriptor.proto that
/// `describe` shows are kept, everything else is skipped.
struct ContractCatalog {
    struct Service {
        /// Full name, e.g. `doorstep.accounts.v1.Accounts`.
        var fullName: String
        /// The .proto file that declares it, e.g. `doorstep/accounts/v1/accounts.proto`.
        var file: String
        var comment: String
        var methods: [Method]

        /// The name without its package, e.g. `Accounts`.
        var simpleName: String { String(fullName.split(separator: ".").last ?? "") }
    }

    struct Method {
        var name: String
        /// Full message names, without the leading dot.
        var requestType: String
        var responseType: String
        var clientStreaming: Bool
        var serverStreaming: Bool
        var comment: String

        /// The streaming kind as gRPC metrics label it (`grpc_type`).
        var kind: String {
            switch (clientStreaming, serverStreaming) {
            case (false, false): return "unary"
            case (true, false): return "client_stream"
            case (false, true): return "server_stream"
            case (true, true): return "bidi_stream"
            }
        }
    }

    struct Message {
        var fullName: String
        var fields: [Field]
        var oneofs: [String]
        /// The synthetic entry message of a `map<K, V>` field.
        var isMapEntry: Bool
    }

    struct Field {
        var name: String
        var jsonName: String
        var number: Int
        /// descriptor.proto `FieldDescriptorProto.Label`: 1 optional, 2 required, 3 repeated.
        var label: Int
        /// descriptor.proto `FieldDescriptorProto.Type` (1 double … 18 sint64).
        var type: Int
        /// For messages and enums: the full type name, without the leading dot.
        var typeName: String
        var oneofIndex: Int?
        var proto3Optional: Bool
        var deprecated: Bool
        var comment: String
    }

    private(set) var services: [Service] = []
    private(set) var messages: [String: Message] = [:]

    /// Reads a serialized `FileDescriptorSet`.
    init(descriptorSet bytes: [UInt8]) throws(DescriptorSetError) {
        var set = WireReader(bytes[...])
        while let (number, value) = try set.next() {
            guard number == 1, case .bytes(let file) = value else { continue }
            try readFile(file)
        }
    }

    /// The descriptor set compiled into this build (`PublishedDescriptors`).
    static func published() throws(DescriptorSetError) -> ContractCatalog {
        try ContractCatalog(descriptorSet: PublishedDescriptors.bytes)
    }

    /// The services `name` names: the full name (`doorstep.accounts.v1.Accounts`), or the
    /// service's name without its package in any case (`accounts`, `Health`).
    func services(named name: String) -> [Service] {
        if let exact = services.first(where: { $0.fullName == name }) { return [exact] }
        let lowered = name.lowercased()
        return services.filter { $0.simpleName.lowercased() == lowered || $0.fullName.lowercased() == lowered }
    }

    // MARK: Types and labels as .proto spells them

    private static let scalarNames = [
        1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64", 7: "fixed32", 8: "bool",
        9: "string", 10: "group", 12: "bytes", 13: "uint32", 15: "sfixed32", 16: "sfixed64", 17: "sint32", 18: "sint64",
    ]

    /// The field's type as the .proto file writes it: a scalar (`int64`), a full message or
    /// enum name (`doorstep.type.v1.Money`), or `map<K, V>`.
    func typeDescription(_ field: Field) -> String {
        if let entry = mapEntry(field), entry.fields.count == 2 {
            return "map<\(typeDescription(entry.fields[0])), \(typeDescription(entry.fields[1]))>"
        }
        return field.typeName.isEmpty ? (Self.scalarNames[field.type] ?? "type \(field.type)") : field.typeName
    }

    /// `singular`, `optional` (proto3 `optional`), `repeated`, `map`, `required` (proto2) or
    /// `oneof NAME`.
    func label(_ field: Field, in message: Message) -> String {
        if mapEntry(field) != nil { return "map" }
        switch field.label {
        case 3: return "repeated"
        case 2: return "required"
        default:
            if field.proto3Optional { return "optional" }
            if let index = field.oneofIndex, index < message.oneofs.count { return "oneof \(message.oneofs[index])" }
            return "singular"
        }
    }

    private func mapEntry(_ field: Field) -> Message? {
        guard field.label == 3, field.type == 11, let entry = messages[field.typeName], entry.isMapEntry else { return nil }
        return entry
    }

    // MARK: Reading descriptor.proto

    private mutating func readFile(_ bytes: ArraySlice<UInt8>) throws(DescriptorSetError) {
        var name = "", package = ""
        var messageBodies: [ArraySlice<UInt8>] = []
        var serviceBodies: [ArraySlice<UInt8>] = []
        var comments: [[Int]: String] = [:]
        var reader = WireReader(bytes)
        while let (number, value) = try reader.next() {
            switch (number, value) {
            case (1, .bytes(let text)): name = Self.string(text)
            case (2, .bytes(let text)): package = Self.string(text)
            case (4, .bytes(let body)): messageBodies.append(body)
            case (6, .bytes(let body)): serviceBodies.append(body)
            case (9, .bytes(let info)): comments = try Self.readComments(info)
            default: break
            }
        }
        let prefix = package.isEmpty ? "" : package + "."
        for (index, body) in messageBodies.enumerated() {
            try readMessage(body, prefix: prefix, path: [4, index], comments: comments)
        }
        for (index, body) in serviceBodies.enumerated() {
            services.append(try Self.readService(body, prefix: prefix, file: name, path: [6, index], comments: comments))
        }
    }

    private mutating func readMessage(_ bytes: ArraySlice<UInt8>, prefix: String, path: [Int], comments: [[Int]: String]) throws(DescriptorSetError) {
        var name = ""
        var fields: [Field] = []
        var nested: [ArraySlice<UInt8>] = []
        var oneofs: [String] = []
        var isMapEntry = false
        var reader = WireReader(bytes)
        while let (number, value) = try reader.next() {
            switch (number, value) {
            case (1, .bytes(let text)): name = Self.string(text)
            case (2, .bytes(let body)):
                fields.append(try Self.readField(body, path: path + [2, fields.count], comments: comments))
            case (3, .bytes(let body)): nested.append(body)
            case (7, .bytes(let options)):
                var optionsReader = WireReader(options)
                while let (option, optionValue) = try optionsReader.next() {
                    if option == 7, case .varint(let flag) = optionValue { isMapEntry = flag != 0 }
                }
            case (8, .bytes(let body)):
                var oneofReader = WireReader(body)
                var oneofName = ""
                while let (field, fieldValue) = try oneofReader.next() {
                    if field == 1, case .bytes(let text) = fieldValue { oneofName = Self.string(text) }
                }
                oneofs.append(oneofName)
            default: break
            }
        }
        let fullName = prefix + name
        messages[fullName] = Message(fullName: fullName, fields: fields, oneofs: oneofs, isMapEntry: isMapEntry)
        for (index, body) in nested.enumerated() {
            try readMessage(body, prefix: fullName + ".", path: path + [3, index], comments: comments)
        }
    }

    private static func readField(_ bytes: ArraySlice<UInt8>, path: [Int], comments: [[Int]: String]) throws(DescriptorSetError) -> Field {
        var field = Field(name: "", jsonName: "", number: 0, label: 1, type: 0, typeName: "", oneofIndex: nil,
                          proto3Optional: false, deprecated: false, comment: comments[path] ?? "")
        var reader = WireReader(bytes)
        while let (number, value) = try reader.next() {
            switch (number, value) {
            case (1, .bytes(let text)): field.name = string(text)
            case (3, .varint(let n)): field.number = Int(truncatingIfNeeded: n)
            case (4, .varint(let n)): field.label = Int(truncatingIfNeeded: n)
            case (5, .varint(let n)): field.type = Int(truncatingIfNeeded: n)
            case (6, .bytes(let text)): field.typeName = String(string(text).drop(while: { $0 == "." }))
            case (8, .bytes(let options)):
                var optionsReader = WireReader(options)
                while let (option, optionValue) = try optionsReader.next() {
                    if option == 3, case .varint(let flag) = optionValue { field.deprecated = flag != 0 }
                }
            case (9, .varint(let n)): field.oneofIndex = Int(truncatingIfNeeded: n)
            case (10, .bytes(let text)): field.jsonName = string(text)
            case (17, .varint(let n)): field.proto3Optional = n != 0
            default: break
            }
        }
        if field.jsonName.isEmpty { field.jsonName = field.name }
        return field
    }

    private static func readService(_ bytes: ArraySlice<UInt8>, prefix: String, file: String, path: [Int],
                                    comments: [[Int]: String]) throws(DescriptorSetError) -> Service {
        var service = Service(fullName: "", file: file, comment: comments[path] ?? "", methods: [])
        var reader = WireReader(bytes)
        while let (number, value) = try reader.next() {
            switch (number, value) {
            case (1, .bytes(let text)): service.fullName = prefix + string(text)
            case (2, .bytes(let body)):
                var method = Method(name: "", requestType: "", responseType: "", clientStreaming: false, serverStreaming: false,
                                    comment: comments[path + [2, service.methods.count]] ?? "")
                var methodReader = WireReader(body)
                while let (field, fieldValue) = try methodReader.next() {
                    switch (field, fieldValue) {
                    case (1, .bytes(let text)): method.name = string(text)
                    case (2, .bytes(let text)): method.requestType = String(string(text).drop(while: { $0 == "." }))
                    case (3, .bytes(let text)): method.responseType = String(string(text).drop(while: { $0 == "." }))
                    case (5, .varint(let flag)): method.clientStreaming = flag != 0
                    case (6, .varint(let flag)): method.serverStreaming = flag != 0
                    default: break
                    }
                }
                service.methods.append(method)
            default: break
            }
        }
        return service
    }

    /// `SourceCodeInfo`: each location's leading comment (or, without one, its trailing
    /// comment) by its path, with the comment markers' leading space and the final newline removed.
    private static func readComments(_ bytes: ArraySlice<UInt8>) throws(DescriptorSetError) -> [[Int]: String] {
        var comments: [[Int]: String] = [:]
        var reader = WireReader(bytes)
        while let (number, value) = try reader.next() {
            guard number == 1, case .bytes(let location) = value else { continue }
            var path: [Int] = []
            var leading = "", trailing = ""
            var locationReader = WireReader(location)
            while let (field, fieldValue) = try locationReader.next() {
                switch (field, fieldValue) {
                case (1, .bytes(let packed)):
                    var packedReader = WireReader(packed)
                    while !packedReader.isAtEnd { path.append(Int(truncatingIfNeeded: try packedReader.varint())) }
                case (1, .varint(let element)): path.append(Int(truncatingIfNeeded: element))
                case (3, .bytes(let text)): leading = string(text)
                case (4, .bytes(let text)): trailing = string(text)
                default: break
                }
            }
            let text = leading.isEmpty ? trailing : leading
            guard !text.isEmpty else { continue }
            comments[path] = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
                .map { $0.hasPrefix(" ") ? String($0.dropFirst()) : String($0) }
                .joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return comments
    }

    private static func string(_ bytes: ArraySlice<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }
}

