import Foundation
import TestSupport
import Testing

@Suite("docker-compose.yml")
struct ComposeFileTests {
    static let expected = [("accounts", 50051), ("scheduling", 50052), ("visits", 50053)]

    @Test("the three services listen and publish on the documented ports, each with its own data volume")
    func services() throws {
        let compose = try loadCompose()
        #expect(Set(compose.services.keys) == ["accounts", "scheduling", "visits"])
        for (name, port) in Self.expected {
            let service = try #require(compose.services[name])
            #expect(service.command == [name])
            #expect(service.environment["DOORSTEP_LISTEN"] == "0.0.0.0:\(port)")
            #expect(service.ports.contains("\(port):\(port)"))
            #expect(service.environment["DOORSTEP_DATA_DIR"] == "/data")
            #expect(service.volumes.contains("\(name)-data:/data"))
            #expect(compose.volumes.keys.contains("\(name)-data"))
            #expect(service.healthcheck.test.contains("127.0.0.1:\(port)"), "health probe of \(name) targets its own port")
            #expect(service.read_only == true)
            let metricsPort = try #require(service.environment["DOORSTEP_METRICS_LISTEN"]?.split(separator: ":").last)
            #expect(service.ports.contains("\(metricsPort):\(metricsPort)"))
        }
    }

    @Test("peers are addressed by service name and waited for until healthy")
    func dependencies() throws {
        let compose = try loadCompose()
        for (name, service) in compose.services {
            for (variable, value) in service.environment where variable.hasSuffix("_ADDR") {
                let peer = String(value.split(separator: ":")[0])
                #expect(compose.services[peer] != nil, "\(name).\(variable) names unknown service \(peer)")
                #expect(service.depends_on?[peer]?.condition == "service_healthy", "\(name) must wait for \(peer)")
                let port = Self.expected.first { $0.0 == peer }!.1
                #expect(value == "\(peer):\(port)")
            }
        }
    }

    @Test("every variable compose sets is documented by the service it configures; the image builds what compose runs")
    func crossCheckWithBinaries() async throws {
        let compose = try loadCompose()
        let dockerfile = String(decoding: try readFile(repositoryRoot.appendingPathComponent("Dockerfile")), as: UTF8.self)
        for (name, service) in compose.services {
            let help = try await runProduct(name, ["--help"])
            #expect(help.status == 0, "\(name) --help: \(help.output)")
            let text = help.output.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            for variable in service.environment.keys {
                #expect(text.contains("Env \(variable)."), "\(name) does not read \(variable)")
            }
            #expect(dockerfile.contains(".build/release/\(name)"), "the image lacks \(name)")
            // The health probe is a real `doorstep` subcommand taking HOST:PORT.
            #expect(Array(service.healthcheck.test.prefix(3)) == ["CMD", "doorstep", "health"])
        }
        #expect(dockerfile.contains(".build/release/doorstep"))
        let probe = try await runProduct("doorstep", ["health", "--help"])
        #expect(probe.status == 0)
    }

    @Test("the image is built with the Swift release and Debian release the tests run on")
    func buildImageMatchesToolchain() async throws {
        let dockerfile = String(decoding: try readFile(repositoryRoot.appendingPathComponent("Dockerfile")), as: UTF8.self)
        let from = try #require(dockerfile.split(separator: "\n").first { $0.hasPrefix("FROM swift:") }, "no swift build stage")
        let tag = String(from.dropFirst("FROM swift:".count).prefix { $0 != " " })
        let swift = try await runProcessDetached("swift", ["--version"])
        let version = try #require(swift.output.firstMatch(of: /Swift version ([0-9.]+)/)?.1, "\(swift.output)")
        let release = String(decoding: try readFile(URL(fileURLWithPath: "/etc/os-release")), as: UTF8.self)
        let codename = try #require(release.firstMatch(of: /VERSION_CODENAME=([a-z]+)/)?.1)
        #expect(tag == "\(version)-\(codename)", "Dockerfile builds with swift:\(tag); the tests run Swift \(version) on \(codename)")
        #expect(dockerfile.contains("FROM debian:\(codename)-slim"), "the runtime stage runs the same Debian release")
    }
}
