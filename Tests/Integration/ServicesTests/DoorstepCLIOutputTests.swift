import Foundation
import Models
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The `doorstep` CLI as people and scripts see it, run as the real binary: `describe`, the
/// output formats, one-line errors without usage text (exit 1), usage errors (exit 64), and
/// a server that cannot be reached. The formats are checked against `rpc-test-server`
/// (its Echo covers every field kind, Count streams, Fail returns any status).
@Suite("doorstep CLI: describe, output formats, errors", .serialized)
struct DoorstepCLIOutputTests {
    /// A CLI run with its standard output and standard error kept apart.
    struct CLIResult {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `doorstep` with pipes for stdout and stderr (so stdout is not a terminal), with
    /// `environment` added to this process's (a nil value removes the variable).
    static func doorstep(_ arguments: [String], environment: [String: String?] = [:]) async throws -> CLIResult {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                do {
                    var merged = ProcessInfo.processInfo.environment
                    for (key, value) in environment { merged[key] = value }
                    let process = try ChildProcess(productsDirectory.appendingPathComponent("doorstep").path, arguments,
                                                   environment: merged, standardOutput: .pipe, standardError: .pipe)
                    // Read stderr on another thread: a full pipe must not block the child.
                    let errorData = DataBox()
                    let reader = Thread { errorData.set(process.standardError!.readDataToEndOfFile()) }
                    reader.start()
                    let outData = process.standardOutput!.readDataToEndOfFile()
                    let status = process.wait().status
                    let stderr = errorData.wait()
                    continuation.resume(returning: CLIResult(
                        status: status, stdout: String(decoding: outData, as: UTF8.self),
                        stderr: String(decoding: stderr, as: UTF8.self)))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// Data another thread delivers once.
    final class DataBox: @unchecked Sendable {
        private let condition = NSCondition()
        private var data: Data?
        func set(_ value: Data) {
            condition.lock()
            data = value
            condition.signal()
            condition.unlock()
        }
        func wait() -> Data {
            condition.lock()
            defer { condition.unlock() }
            while data == nil { condition.wait() }
            return data!
        }
    }

    /// `rpc-test-server` on a free loopback port, stopped with `stop()`.
    final class TestServer: @unchecked Sendable {
        let process: ChildProcess
        let address: String

        init() async throws {
            process = try ChildProcess(productsDirectory.appendingPathComponent("rpc-test-server").path, ["--port", "0"],
                                       standardOutput: .pipe, standardError: .null)
            let line = await firstLineDetached(from: process.standardOutput!) ?? ""
            guard line.hasPrefix("listening on ") else {
                process.signal(SIGTERM)
                throw CLITestError(description: "rpc-test-server did not start: \(line)")
            }
            address = String(line.dropFirst("listening on ".count))
        }

        func stop() {
            process.signal(SIGTERM)
            process.wait()
        }
    }

    struct CLITestError: Error, CustomStringConvertible {
        let description: String
    }

    /// Whitespace runs collapsed to one space, for comparing aligned columns.
    static func collapsed(_ text: String) -> String {
        text.split(separator: "\n").map { $0.split(whereSeparator: \.isWhitespace).joined(separator: " ") }.joined(separator: "\n")
    }

    // MARK: describe

    @Test("describe lists a service's methods, kinds, types and request fields from the compiled-in descriptors")
    func describeTable() async throws {
        let scheduling = try await Self.doorstep(["describe", "scheduling"])
        #expect(scheduling.status == 0, "\(scheduling.stderr)")
        let text = Self.collapsed(scheduling.stdout)
        #expect(text.hasPrefix("service doorstep.scheduling.v1.Scheduling\nfile doorstep/scheduling/v1/scheduling.proto\nmethods "), "\(text)")
        #expect(text.contains("\nMETHOD KIND REQUEST RESPONSE\n"), "\(text)")
        #expect(text.contains("\nBookAppointment unary doorstep.scheduling.v1.BookAppointmentRequest doorstep.scheduling.v1.Appointment\n"))
        #expect(text.contains("\nBookAppointment(doorstep.scheduling.v1.BookAppointmentRequest) → doorstep.scheduling.v1.Appointment\n"))
        #expect(text.contains("\ncrew_collector_ids string repeated\n"), "\(text)")
        #expect(text.contains("\nwindow_start_ms int64 singular\n"))
        #expect(text.contains("\ndebtor_request doorstep.scheduling.v1.DebtorRequestedWindow singular\n"))
        #expect(text.contains("\nsuspension_id string oneof suspension\n"), "a oneof member is labelled with its oneof")
        #expect(scheduling.stderr.isEmpty)

        // The short name in any case, or the full name; the health service's streaming method.
        let health = try await Self.doorstep(["describe", "grpc.health.v1.Health"])
        #expect(health.status == 0)
        #expect(Self.collapsed(health.stdout).contains("\nWatch server_stream grpc.health.v1.HealthCheckRequest grpc.health.v1.HealthCheckResponse\n"))
        let upper = try await Self.doorstep(["describe", "HEALTH"])
        #expect(upper.stdout == health.stdout)

        // Without a service: the services of the set.
        let list = try await Self.doorstep(["describe"])
        #expect(list.status == 0)
        let listed = Self.collapsed(list.stdout).split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) ?? "" }
        #expect(listed == ["SERVICE", "doorstep.accounts.v1.Accounts", "doorstep.scheduling.v1.Scheduling",
                           "doorstep.visits.v1.Visits", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                           "grpc.reflection.v1alpha.ServerReflection"], "\(list.stdout)")
    }

    @Test("describe agrees with the generated code: every method, kind and message type", arguments: ["accounts", "scheduling", "visits", "health", "grpc.reflection.v1.ServerReflection"])
    func describeMatchesRegistry(_ service: String) async throws {
        let result = try await Self.doorstep(["describe", service, "--output", "json"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        try #require(lines.count == 1, "json is one line: \(result.stdout)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        let fullName = try #require(object["service"] as? String)
        let methods = try #require(object["methods"] as? [[String: Any]])
        let generated = ContractRegistry.methods.filter { $0.key.hasPrefix("/\(fullName)/") }
        #expect(methods.count == generated.count && !methods.isEmpty, "\(fullName): described \(methods.count), generated \(generated.count)")
        for method in methods {
            let path = try #require(method["path"] as? String)
            let expected = try #require(generated[path], "\(path) is not in the generated code")
            #expect(method["requestType"] as? String == expected.request.protoMessageName, "\(path)")
            #expect(method["responseType"] as? String == expected.response.protoMessageName, "\(path)")
            let kind = switch (expected.isClientStreaming, expected.isServerStreaming) {
            case (false, false): "unary"
            case (false, true): "server_stream"
            case (true, false): "client_stream"
            case (true, true): "bidi_stream"
            }
            #expect(method["kind"] as? String == kind, "\(path)")
            let fields = try #require(method["requestFields"] as? [[String: Any]])
            // Every listed field is a field of the generated request type: named with a value no
            // field kind accepts, it is refused for its value, not as an unknown field.
            for field in fields {
                let name = try #require(field["name"] as? String)
                #expect(["singular", "optional", "repeated", "map"].contains(field["label"] as? String ?? "")
                        || (field["label"] as? String ?? "").hasPrefix("oneof "), "\(path) \(name)")
                #expect(!(field["type"] as? String ?? "").isEmpty)
                do {
                    _ = try expected.request.init(jsonText: #"{"\#(name)": [[true]]}"#)
                    Issue.record("\(path): \(name) took [[true]]")
                } catch {
                    #expect(!"\(error)".contains("not a field"), "\(path): \(name) is not a field of the generated type: \(error)")
                }
            }
        }
        // The pretty form is the same document, indented.
        let pretty = try await Self.doorstep(["describe", service, "-o", "pretty"])
        let reparsed = try JSONSerialization.jsonObject(with: Data(pretty.stdout.utf8)) as? [String: Any]
        #expect((reparsed?["methods"] as? [Any])?.count == methods.count)
        #expect(pretty.stdout.hasPrefix("{\n  \"service\": "), "\(pretty.stdout.prefix(80))")
    }

    @Test("an unknown service is a usage error (exit 64)")
    func describeUnknown() async throws {
        let result = try await Self.doorstep(["describe", "billing"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("no service billing in the descriptor set; known: doorstep.accounts.v1.Accounts"), "\(result.stderr)")
        #expect(result.stderr.contains("Usage:"))
        #expect(result.stdout.isEmpty)

        // --descriptor-set reads another set: the published file reads as the compiled-in
        // copy does; a file that is not one is refused.
        let published = repositoryRoot.appendingPathComponent("proto/descriptors/doorstep.binpb").path
        let fromFile = try await Self.doorstep(["describe", "visits", "--descriptor-set", published])
        let compiledIn = try await Self.doorstep(["describe", "visits"])
        #expect(fromFile.status == 0 && fromFile.stdout == compiledIn.stdout)
        let notASet = try await Self.doorstep(["describe", "visits", "--descriptor-set", repositoryRoot.appendingPathComponent("README.md").path])
        #expect(notASet.status == 64)
        #expect(notASet.stderr.contains("descriptor set: "), "\(notASet.stderr)")
    }

    @Test("the descriptor set compiled into doorstep is proto/descriptors/doorstep.binpb")
    func embeddedDescriptorsInSync() throws {
        let source = String(decoding: try readFile(repositoryRoot.appendingPathComponent("Shared/Reflection/PublishedDescriptors.swift")), as: UTF8.self)
        let parts = source.components(separatedBy: "\"\"\"")
        try #require(parts.count == 3, "one multi-line string literal")
        let embedded = try #require(Data(base64Encoded: parts[1], options: .ignoreUnknownCharacters))
        let published = try readFile(repositoryRoot.appendingPathComponent("proto/descriptors/doorstep.binpb"))
        #expect([UInt8](embedded) == published, "Shared/Reflection/PublishedDescriptors.swift is stale: run Scripts/generate-descriptors.sh")
    }

    // MARK: output formats

    static let echoRequest = #"{"fInt32":5,"fString":"上海 x","fBool":true,"rString":["a","b"],"fLeaf":{"label":"n","amount":"7"},"rLeaf":[{"label":"r1","amount":"1"},{"label":"长标签","amount":"22"}]}"#
    static let echoJSON = #"{"fInt32":5,"fBool":true,"fString":"上海 x","fLeaf":{"label":"n","amount":"7"},"rString":["a","b"],"rLeaf":[{"label":"r1","amount":"1"},{"label":"长标签","amount":"22"}]}"#

    @Test("json (one line per message) is the default when stdout is not a terminal; pretty and table on request", .timeLimit(.minutes(2)))
    func outputFormats() async throws {
        let server = try await TestServer()
        defer { server.stop() }
        let echo = "doorstep.testing.v1.TestService/Echo"
        let count = "doorstep.testing.v1.TestService/Count"

        let json = try await Self.doorstep(["call", server.address, echo, Self.echoRequest])
        #expect(json.status == 0, "\(json.stderr)")
        #expect(json.stdout == Self.echoJSON + "\n")
        #expect(json.stderr.isEmpty)
        let stream = try await Self.doorstep(["call", server.address, count, #"{"count":3}"#])
        #expect(stream.stdout == #"{"label":"leaf 0"}"# + "\n" + #"{"label":"leaf 1","amount":"1"}"# + "\n" + #"{"label":"leaf 2","amount":"2"}"# + "\n")
        // NO_COLOR or not, json stays json.
        let noColour = try await Self.doorstep(["call", server.address, count, #"{"count":1}"#], environment: ["NO_COLOR": "1"])
        #expect(noColour.stdout == #"{"label":"leaf 0"}"# + "\n")

        let pretty = try await Self.doorstep(["call", server.address, echo, Self.echoRequest, "--output", "pretty"])
        #expect(pretty.status == 0)
        #expect(pretty.stdout == """
            {
              "fInt32": 5,
              "fBool": true,
              "fString": "上海 x",
              "fLeaf": {
                "label": "n",
                "amount": "7"
              },
              "rString": [
                "a",
                "b"
              ],
              "rLeaf": [
                {
                  "label": "r1",
                  "amount": "1"
                },
                {
                  "label": "长标签",
                  "amount": "22"
                }
              ]
            }

            """, "no colour when stdout is not a terminal")

        // One message: scalars and sub-message fields as key/value lines, a repeated message
        // as columns (the CJK label takes two columns a character).
        let table = try await Self.doorstep(["call", server.address, echo, Self.echoRequest, "-o", "table"])
        #expect(table.status == 0)
        #expect(table.stdout == """
            fInt32        5
            fBool         true
            fString       上海 x
            fLeaf.label   n
            fLeaf.amount  7
            rString       a, b

            rLeaf (2):
            label   amount
            r1      1
            长标签  22

            """, "\(table.stdout)")
        // Several messages (a stream): the rows of one table; an unset field an empty cell.
        let rows = try await Self.doorstep(["call", server.address, count, #"{"count":3}"#, "-o", "table"])
        #expect(rows.stdout == "label   amount\nleaf 0\nleaf 1  1\nleaf 2  2\n", "\(rows.stdout)")

        // health: the bare status by default (the compose health check), the response in a format on request.
        let health = try await Self.doorstep(["health", server.address])
        #expect(health.status == 0 && health.stdout == "SERVING\n")
        let healthJSON = try await Self.doorstep(["health", server.address, "--output", "json"])
        #expect(healthJSON.stdout == #"{"status":"SERVING"}"# + "\n")
        let healthTable = try await Self.doorstep(["health", server.address, "-o", "table"])
        #expect(healthTable.stdout == "status  SERVING\n")

        let badFormat = try await Self.doorstep(["call", server.address, echo, "{}", "--output", "yaml"])
        #expect(badFormat.status == 64)
        #expect(badFormat.stderr.contains("Usage:"), "\(badFormat.stderr)")
    }

    @Test("on a terminal: pretty by default, keys coloured unless NO_COLOR is set", .timeLimit(.minutes(2)))
    func terminalOutput() async throws {
        try #require(toolExists("script"), "script(1) (util-linux) runs the CLI on a pseudo-terminal")
        let server = try await TestServer()
        defer { server.stop() }
        let binary = productsDirectory.appendingPathComponent("doorstep").path
        let command = "\(binary) call \(server.address) doorstep.testing.v1.TestService/Count '{\"count\":1}'"
        func onTerminal(_ environment: [String]) async throws -> String {
            let result = try await runProcessDetached("env", environment + ["script", "-qec", command, "/dev/null"])
            #expect(result.status == 0, "\(result.output)")
            return result.output.replacingOccurrences(of: "\r\n", with: "\n")
        }
        let coloured = try await onTerminal(["-u", "NO_COLOR", "TERM=xterm"])
        #expect(coloured == "{\n  \u{1B}[1;34m\"label\"\u{1B}[0m: \"leaf 0\"\n}\n", "\(coloured.debugDescription)")
        let plain = try await onTerminal(["NO_COLOR=1", "TERM=xterm"])
        #expect(plain == "{\n  \"label\": \"leaf 0\"\n}\n", "\(plain.debugDescription)")
        let dumb = try await onTerminal(["-u", "NO_COLOR", "TERM=dumb"])
        #expect(!dumb.contains("\u{1B}["), "\(dumb.debugDescription)")
    }

    // MARK: errors

    @Test("a server error is one line on stderr, exit 1, no usage text", .timeLimit(.minutes(2)))
    func serverError() async throws {
        let server = try await TestServer()
        defer { server.stop() }
        let failed = try await Self.doorstep(["call", server.address, "doorstep.testing.v1.TestService/Fail",
                                              #"{"code":9,"message":"the account is on hold"}"#, "-o", "table"])
        #expect(failed.status == 1)
        #expect(failed.stderr == "Error: FAILED_PRECONDITION: the account is on hold\n", "\(failed.stderr)")
        #expect(failed.stdout.isEmpty)

        // A real service: accounts answers NOT_FOUND.
        let cluster = try await ServiceCluster(only: ["accounts"])
        let token = try await cluster.token("platform")
        let missing = try await Self.doorstep([
            "call", cluster.accounts.address, "doorstep.accounts.v1.Accounts/GetAccount",
            #"{"accountId":"acc_01J00000000000000000000000"}"#, "--token", token,
        ])
        let unauthenticated = try await Self.doorstep([
            "call", cluster.accounts.address, "doorstep.accounts.v1.Accounts/GetAccount", #"{"accountId":"acc_01J00000000000000000000000"}"#,
        ], environment: ["DOORSTEP_TOKEN": nil])
        _ = await cluster.stopAll()
        #expect(missing.status == 1)
        #expect(missing.stderr.hasPrefix("Error: NOT_FOUND: "), "\(missing.stderr)")
        #expect(missing.stderr.split(separator: "\n").count == 1, "\(missing.stderr)")
        #expect(!missing.stderr.contains("Usage"))
        #expect(unauthenticated.status == 1)
        #expect(unauthenticated.stderr.hasPrefix("Error: UNAUTHENTICATED: "), "\(unauthenticated.stderr)")
        #expect(!unauthenticated.stderr.contains("Usage"))

        // Wrong arguments are what prints the usage (exit 64).
        let badAddress = try await Self.doorstep(["call", "localhost", "doorstep.accounts.v1.Accounts/GetAccount", "{}"])
        #expect(badAddress.status == 64)
        #expect(badAddress.stderr.contains("'localhost' is not HOST:PORT") && badAddress.stderr.contains("Usage:"), "\(badAddress.stderr)")
        let badJSON = try await Self.doorstep(["call", "127.0.0.1:1", "doorstep.accounts.v1.Accounts/GetAccount", #"{"nope":1}"#])
        #expect(badJSON.status == 64)
        #expect(badJSON.stderr.contains("request: "), "\(badJSON.stderr)")
    }

    @Test("a port nobody listens on: cannot connect (connection refused), for call and health", .timeLimit(.minutes(1)))
    func connectionRefused() async throws {
        // A bound socket that does not listen: connecting to it is refused, and no other
        // process can take the port while the test runs.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(bound == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let target = "127.0.0.1:\(UInt16(bigEndian: address.sin_port))"
        let expected = "Error: cannot connect to \(target) (connection refused) — is the service running?\n"

        // Repeated: the message must not depend on the client's backoff timing.
        for _ in 0..<3 {
            let call = try await Self.doorstep(["call", target, "doorstep.accounts.v1.Accounts/GetAccount", "{}"])
            #expect(call.status == 1)
            #expect(call.stderr == expected, "\(call.stderr)")
            #expect(call.stdout.isEmpty)
        }
        let health = try await Self.doorstep(["health", target, "--timeout", "2"])
        #expect(health.status == 1)
        #expect(health.stderr == expected, "\(health.stderr)")
        for leaked in ["SingleConnectionFailure", "errno", "IPv4", "Usage"] {
            #expect(!health.stderr.contains(leaked))
        }
    }
}
