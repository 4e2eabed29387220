import ArgumentParser
import Foundation
import Reflection
import Models

/// `doorstep describe [SERVICE]`: the methods of a service from the descriptor set compiled
/// into the tool — each method's streaming kind, request and response types, and the
/// request's fields (name, type, label) — or, without SERVICE, the services in the set.
/// Table by default; `--output json|pretty` for scripts.
struct Describe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a service's methods and their request fields.",
        discussion: """
            SERVICE is `accounts`, `scheduling`, `visits`, `health` or a full service name \
            (doorstep.accounts.v1.Accounts). Without SERVICE, lists the services. Read from the \
            published descriptor set compiled into this build (proto/descriptors/doorstep.binpb), \
            or from --descriptor-set FILE.
            """)

    @Argument(help: "The service: accounts, scheduling, visits, health or a full name.") var service: String?
    @Option(name: [.customShort("o"), .long], help: "Output format (default table).") var output: OutputFormat?
    @Option(help: "Read this FileDescriptorSet (e.g. a release's doorstep-contracts-VERSION.binpb) instead of the compiled-in one.")
    var descriptorSet: String?

    func run() async throws {
        let catalog: ContractCatalog
        do {
            if let descriptorSet {
                guard let data = FileManager.default.contents(atPath: descriptorSet) else {
                    throw ValidationError("cannot read \(descriptorSet)")
                }
                catalog = try ContractCatalog(descriptorSet: [UInt8](data))
            } else {
                catalog = try ContractCatalog.published()
            }
        } catch let error as DescriptorSetError {
            throw ValidationError("\(descriptorSet ?? "the compiled-in descriptor set"): \(error)")
        }
        let format = output ?? .table
        guard let service else {
            let values = catalog.services.map { service -> JSONValue in
                .object([("service", .string(service.fullName)), ("file", .string(service.file)),
                         ("methods", .integer(Int64(service.methods.count)))])
            }
            if format == .table {
                print(Render.alignedColumns(header: ["SERVICE", "METHODS", "FILE"], rows: catalog.services.map {
                    [$0.fullName, String($0.methods.count), $0.file]
                }).joined(separator: "\n"))
            } else {
                for line in Render.messages(values, as: format) { print(line) }
            }
            return
        }
        let matches = catalog.services(named: service)
        guard let found = matches.first, matches.count == 1 else {
            let known = catalog.services.map(\.fullName).joined(separator: ", ")
            throw ValidationError(matches.isEmpty
                ? "no service \(service) in the descriptor set; known: \(known)"
                : "\(service) names several services (\(matches.map(\.fullName).joined(separator: ", "))): give the full name")
        }
        if format == .table {
            print(table(found, catalog: catalog))
        } else {
            for line in Render.messages([json(found, catalog: catalog)], as: format) { print(line) }
        }
    }

    /// The service as a JSON object: `service`, `file`, `comment`, and `methods`, each with
    /// `name`, `path`, `kind`, `requestType`, `responseType`, `comment` and `requestFields`
    /// (`name`, `jsonName`, `number`, `type`, `label`, `deprecated` when set, `comment`).
    func json(_ service: ContractCatalog.Service, catalog: ContractCatalog) -> JSONValue {
        .object([
            ("service", .string(service.fullName)),
            ("file", .string(service.file)),
            ("comment", .string(service.comment)),
            ("methods", .array(service.methods.map { method in
                var fields: [JSONValue] = []
                if let request = catalog.messages[method.requestType] {
                    fields = request.fields.map { field in
                        var members: [(String, JSONValue)] = [
                            ("name", .string(field.name)), ("jsonName", .string(field.jsonName)),
                            ("number", .integer(Int64(field.number))), ("type", .string(catalog.typeDescription(field))),
                            ("label", .string(catalog.label(field, in: request))),
                        ]
                        if field.deprecated { members.append(("deprecated", .bool(true))) }
                        members.append(("comment", .string(field.comment)))
                        return .object(members)
                    }
                }
                return .object([
                    ("name", .string(method.name)),
                    ("path", .string("/\(service.fullName)/\(method.name)")),
                    ("kind", .string(method.kind)),
                    ("requestType", .string(method.requestType)),
                    ("responseType", .string(method.responseType)),
                    ("comment", .string(method.comment)),
                    ("requestFields", .array(fields)),
                ])
            })),
        ])
    }

    /// The service for people: its name and file, a table of its methods, then each
    /// method's first comment sentence and a table of its request's fields.
    func table(_ service: ContractCatalog.Service, catalog: ContractCatalog) -> String {
        var blocks: [String] = []
        let head = [("service", service.fullName), ("file", service.file), ("methods", String(service.methods.count))]
        blocks.append(Render.keyValueLines(head).joined(separator: "\n"))
        blocks.append(Render.alignedColumns(
            header: ["METHOD", "KIND", "REQUEST", "RESPONSE"],
            rows: service.methods.map { [$0.name, $0.kind, $0.requestType, $0.responseType] }
        ).joined(separator: "\n"))
        for method in service.methods {
            var lines = ["\(method.name)(\(method.requestType)) → \(method.serverStreaming ? "stream " : "")\(method.responseType)"]
            if !method.comment.isEmpty { lines.append("  " + Self.firstSentence(method.comment)) }
            if let request = catalog.messages[method.requestType], !request.fields.isEmpty {
                lines += Render.alignedColumns(header: ["FIELD", "TYPE", "LABEL"], rows: request.fields.map { field in
                    [field.name, catalog.typeDescription(field),
                     catalog.label(field, in: request) + (field.deprecated ? " (deprecated)" : "")]
                }).map { "  " + $0 }
            } else {
                lines.append("  (no fields)")
            }
            blocks.append(lines.joined(separator: "\n"))
        }
        return blocks.joined(separator: "\n\n")
    }

    /// The first sentence of a comment (up to a ". " that does not end "e.g." or "i.e."),
    /// its lines joined.
    static func firstSentence(_ comment: String) -> String {
        let paragraph = comment.components(separatedBy: "\n\n").first ?? comment
        let joined = paragraph.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
        var searchStart = joined.startIndex
        while let end = joined.range(of: ". ", range: searchStart..<joined.endIndex) {
            let before = joined[..<end.lowerBound]
            if before.hasSuffix("e.g") || before.hasSuffix("i.e") {
                searchStart = end.upperBound
                continue
            }
            return String(before) + "."
        }
        return joined
    }
}
