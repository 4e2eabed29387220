import Foundation
import TestSupport
import Testing
import TransportSecurity

/// TLS and mutual TLS on the real executables, with certificates from `doorstep tls-dev`.
@Suite("TLS and mutual TLS between real processes", .serialized)
struct TransportSecurityProcessTests {
    /// The flags that put service `name` on mutual TLS with its own certificate, both as a
    /// listener and towards its peers.
    static func mutualTLS(_ tls: String) -> (String) -> [String] {
        { name in
            ["--tls-cert-file", "\(tls)/\(name).pem", "--tls-key-file", "\(tls)/\(name).key",
             "--tls-client-ca-file", "\(tls)/ca.pem", "--tls-ca-file", "\(tls)/ca.pem"]
        }
    }

    /// True when a check script reported a failed check ("FAIL name: why" lines; grpcio's
    /// own logging says CERTIFICATE_VERIFY_FAILED for the refusals it is meant to see).
    static func failed(_ output: String) -> Bool {
        output.split(separator: "\n").contains { $0.hasPrefix("FAIL ") }
    }

    static func tlsDev(_ directory: String, _ extra: [String] = []) async throws {
        let result = try await runProduct("doorstep", ["tls-dev", directory] + extra)
        try #require(result.status == 0, "\(result.output)")
    }

    @Test("a stock grpcio client over mutual TLS: every interop check of the three services (peers on mutual TLS too); the listener refuses what it should at the handshake", .timeLimit(.minutes(4)))
    func grpcioOverMutualTLS() async throws {
        let directory = try makeTemporaryDirectory()
        let tls = directory.appendingPathComponent("tls").path, other = directory.appendingPathComponent("other").path
        try await Self.tlsDev(tls)
        try await Self.tlsDev(other, ["--name", "operator"])
        let cluster = try await ServiceCluster(directory: directory, extra: Self.mutualTLS(tls))

        // The client presents the scheduling service's certificate, so the `service` token
        // (subject scheduling) of the service checks is accepted.
        var tokens: [String: String] = [:]
        for role in ["platform", "compliance"] { tokens[role] = try await cluster.token(role) }
        tokens["service"] = try await cluster.token("service", subject: "scheduling")
        tokens["agency_manager"] = try await cluster.token("agency_manager", agency: "agy_01J00000000000000000000000")
        tokens["collector"] = try await cluster.token("collector", agency: "agy_01J00000000000000000000000",
                                                      collector: "col_01J00000000000000000000000")
        let tokenFile = directory.appendingPathComponent("tokens.json")
        try JSONSerialization.data(withJSONObject: tokens).write(to: tokenFile)
        let interop = try await runProcessDetached("python3", [
            repositoryRoot.appendingPathComponent("Tests/Integration/ServicesTests/Interop/services_interop.py").path,
            "--accounts", cluster.accounts.address, "--scheduling", cluster.scheduling!.address, "--visits", cluster.visits!.address,
            "--tokens", tokenFile.path, "--tls-ca", "\(tls)/ca.pem", "--tls-cert", "\(tls)/scheduling.pem",
            "--tls-key", "\(tls)/scheduling.key",
        ])
        #expect(interop.status == 0 && !Self.failed(interop.output), "\(interop.output)")
        for check in ["accounts.create_open_get", "scheduling.register_agency_collector", "visits.not_found"] {
            #expect(interop.output.contains("ok \(check)"), "\(check) did not run over TLS")
        }

        let refusals = try await runProcessDetached("python3", [
            repositoryRoot.appendingPathComponent("Tests/Integration/ServicesTests/Interop/tls_refusals.py").path,
            "--address", cluster.accounts.address, "--ca", "\(tls)/ca.pem",
            "--operator-cert", "\(tls)/operator.pem", "--operator-key", "\(tls)/operator.key",
            "--service-cert", "\(tls)/scheduling.pem", "--service-key", "\(tls)/scheduling.key",
            "--other-ca", "\(other)/ca.pem", "--other-cert", "\(other)/operator.pem", "--other-key", "\(other)/operator.key",
            "--service-token", tokens["service"]!,
        ])
        print(refusals.output)
        #expect(refusals.status == 0 && !Self.failed(refusals.output), "\(refusals.output)")
        for check in ["mtls_ok", "no_client_certificate", "other_ca_certificate", "untrusted_server", "plaintext_to_tls",
                      "raw_plaintext_preface", "no_h2_alpn", "service_token_needs_its_certificate", "still_serving"] {
            #expect(refusals.output.contains("ok \(check)"), "\(check) did not pass")
        }

        // The metrics listener serves HTTPS with the same certificate, without asking for a
        // client certificate (probes and scrapers).
        let metrics = try await runProcessDetached("python3", ["-c", """
            import ssl, sys, urllib.request
            context = ssl.create_default_context(cafile=sys.argv[1])
            print(urllib.request.urlopen("https://" + sys.argv[2] + "/readyz", context=context, timeout=10).read().decode())
            """, "\(tls)/ca.pem", cluster.accounts.metricsAddress!])
        #expect(metrics.status == 0, "\(metrics.output)")

        // The doorstep tool speaks mutual TLS with the same flags; without its certificate the
        // handshake fails and says so.
        let health = try await runProduct("doorstep", [
            "health", cluster.accounts.address, "--tls-ca-file", "\(tls)/ca.pem",
            "--tls-client-cert-file", "\(tls)/operator.pem", "--tls-client-key-file", "\(tls)/operator.key",
        ])
        #expect(health.status == 0 && health.output.contains("SERVING"), "\(health.output)")
        let refused = try await runProduct("doorstep", ["health", cluster.accounts.address, "--tls-ca-file", "\(tls)/ca.pem"])
        #expect(refused.status == 1, "\(refused.output)")
        #expect(refused.output.contains("Error: cannot connect to \(cluster.accounts.address) (TLS handshake failed: the server requires a client certificate"),
                "\(refused.output)")
        let untrusted = try await runProduct("doorstep", ["health", cluster.accounts.address, "--tls-ca-file", "\(other)/ca.pem"])
        #expect(untrusted.output.contains("TLS handshake failed: the server's certificate is not trusted (--tls-ca-file)"), "\(untrusted.output)")
        let plaintext = try await runProduct("doorstep", ["health", cluster.accounts.address])
        #expect(plaintext.status == 1, "\(plaintext.output)")
        #expect(plaintext.output.contains("does it require TLS? (--tls-ca-file)"), "\(plaintext.output)")

        for stop in await cluster.stopAll() {
            #expect(stop.status == 0 && stop.reason == .exit, "\(stop.stderr)")
        }
    }

    @Test("a missing, expired or mismatched certificate or key fails the start with one Error line naming the file", .timeLimit(.minutes(2)))
    func badFilesFailTheStart() async throws {
        let directory = try makeTemporaryDirectory()
        let tls = directory.appendingPathComponent("tls").path, expired = directory.appendingPathComponent("expired").path
        try await Self.tlsDev(tls)
        _ = try DevCertificates.write(directory: expired, names: ["accounts"], validDays: 1,
                                      now: Date().addingTimeInterval(-10 * 86_400))
        let garbage = directory.appendingPathComponent("garbage.pem").path
        try "not a certificate\n".write(toFile: garbage, atomically: true, encoding: .utf8)
        let dataDir = directory.appendingPathComponent("data").path
        let cases: [([String], String)] = [
            (["--tls-cert-file", "\(tls)/missing.pem", "--tls-key-file", "\(tls)/accounts.key"], "\(tls)/missing.pem does not exist"),
            (["--tls-cert-file", garbage, "--tls-key-file", "\(tls)/accounts.key"], "\(garbage) is not a PEM certificate file"),
            (["--tls-cert-file", "\(expired)/accounts.pem", "--tls-key-file", "\(expired)/accounts.key"],
             "\(expired)/accounts.pem holds a certificate that expired"),
            (["--tls-cert-file", "\(tls)/accounts.pem", "--tls-key-file", "\(tls)/visits.key"],
             "\(tls)/visits.key does not match the certificate in \(tls)/accounts.pem"),
            (["--tls-cert-file", "\(tls)/accounts.pem", "--tls-key-file", "\(tls)/accounts.key", "--tls-client-ca-file", garbage],
             "\(garbage) is not a PEM certificate file"),
            (["--tls-cert-file", "\(tls)/accounts.pem", "--tls-key-file", "\(tls)/accounts.key", "--tls-ca-file", "\(expired)/ca.pem"],
             "\(expired)/ca.pem holds a CA certificate that expired"),
            (["--tls-cert-file", "\(tls)/accounts.pem"], "--tls-cert-file: a TLS certificate needs its key"),
            (["--tls-client-ca-file", "\(tls)/ca.pem"], "--tls-client-ca-file: client certificates need TLS on the listener"),
            (["--tls-client-cert-file", "\(tls)/accounts.pem", "--tls-client-key-file", "\(tls)/accounts.key"],
             "which needs --tls-ca-file"),
        ]
        for (arguments, expected) in cases {
            let result = try await runProduct("accounts", ["--listen", "127.0.0.1:0", "--metrics-listen", "off", "--data-dir", dataDir] + arguments)
            #expect(result.status != 0, "\(arguments): \(result.output)")
            #expect(result.output.contains(expected), "\(arguments): \(result.output)")
            #expect(!result.output.contains(" ready "), "\(arguments) served before failing")
            #expect(result.output.split(separator: "\n").filter { $0.hasPrefix("Error:") }.count == 1, "\(arguments): \(result.output)")
        }
    }

    @Test("certificate and key rotation under h2load over TLS: no failed call while the files change and SIGHUP arrives; a bad file is refused and the previous certificate stays", .timeLimit(.minutes(3)))
    func rotationUnderLoad() async throws {
        try #require(toolExists("h2load"), "h2load (nghttp2-client) is installed by Scripts/install-deps.sh")
        let directory = try makeTemporaryDirectory()
        let first = directory.appendingPathComponent("first").path, second = directory.appendingPathComponent("second").path
        let live = directory.appendingPathComponent("live").path
        try await Self.tlsDev(first)
        try await Self.tlsDev(second)
        try FileManager.default.createDirectory(atPath: live, withIntermediateDirectories: true)
        func install(_ source: String) throws {
            // As a certificate manager does: each file replaced whole by a rename.
            for (from, to) in [("accounts.pem", "cert.pem"), ("accounts.key", "key.pem")] {
                let temporary = "\(live)/.\(to).new"
                try? FileManager.default.removeItem(atPath: temporary)
                try FileManager.default.copyItem(atPath: "\(source)/\(from)", toPath: temporary)
                #expect(rename(temporary, "\(live)/\(to)") == 0)
            }
        }
        try install(first)
        let accounts = try await RunningService("accounts", [
            "--listen", "127.0.0.1:0", "--metrics-listen", "off", "--data-dir", directory.appendingPathComponent("data").path,
            "--tls-cert-file", "\(live)/cert.pem", "--tls-key-file", "\(live)/key.pem", "--reload-check-seconds", "1",
        ])
        let servedBy = { (ca: String) async throws -> Bool in
            let probe = try await runProcessDetached("python3", ["-c", """
                import socket, ssl, sys
                context = ssl.create_default_context(cafile=sys.argv[1])
                context.set_alpn_protocols(["h2"])
                host, port = sys.argv[2].rsplit(":", 1)
                with socket.create_connection((host, int(port)), timeout=10) as raw:
                    with context.wrap_socket(raw, server_hostname="localhost") as tls:
                        print(tls.selected_alpn_protocol())
                """, "\(ca)/ca.pem", accounts.address])
            return probe.status == 0 && probe.output.contains("h2")
        }
        #expect(try await servedBy(first))
        // A listener with TLS but no client CA: a stock grpcio client without a certificate
        // is served.
        let grpcio = try await runProcessDetached("python3", ["-c", """
            import sys, grpc
            credentials = grpc.ssl_channel_credentials(root_certificates=open(sys.argv[1], "rb").read())
            with grpc.secure_channel(sys.argv[2], credentials) as channel:
                check = channel.unary_unary("/grpc.health.v1.Health/Check")
                print("answered", len(check(b"", timeout=10)))
            """, "\(first)/ca.pem", accounts.address])
        #expect(grpcio.status == 0 && grpcio.output.contains("answered 2"), "\(grpcio.output)")

        // A gRPC-framed empty HealthCheckRequest, as h2load's request body.
        let body = directory.appendingPathComponent("health.bin").path
        #expect(FileManager.default.createFile(atPath: body, contents: Data([0, 0, 0, 0, 0])))
        let load = Task {
            try await runProcessDetached("h2load", [
                "-D", "8", "-c", "8", "-m", "8", "-t", "1", "-d", body,
                "-H", "content-type: application/grpc", "-H", "te: trailers",
                "https://\(accounts.address)/grpc.health.v1.Health/Check",
            ])
        }
        try await Task.sleep(for: .seconds(2))
        // Rotation 1: new files, then SIGHUP.
        try install(second)
        kill(accounts.processID, SIGHUP)
        try await Task.sleep(for: .seconds(2))
        #expect(try await servedBy(second), "the new certificate is not served after SIGHUP")
        // Rotation 2: back to the first set, no signal: the change is noticed by itself.
        try install(first)
        try await Task.sleep(for: .seconds(3))
        #expect(try await servedBy(first), "the changed files were not picked up")
        // A bad file: refused, the certificate in use stays.
        try "garbage\n".write(toFile: "\(live)/cert.pem", atomically: true, encoding: .utf8)
        kill(accounts.processID, SIGHUP)
        let result = try await load.value
        #expect(try await servedBy(first), "a bad file replaced the certificate in use")

        print(result.output)
        let requests = result.output.split(separator: "\n").first { $0.hasPrefix("requests:") }.map(String.init) ?? ""
        #expect(requests.contains(" 0 failed, 0 errored, 0 timeout"), "\(result.output)")
        #expect(!requests.contains(" 0 succeeded"), "\(result.output)")
        let stop = await accounts.stop()
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(stop.stderr.contains("reload refused; the previous one stays in use"), "\(stop.stderr)")
        #expect(stop.stderr.contains("trigger=SIGHUP") || stop.stderr.contains("SIGHUP"), "\(stop.stderr)")
    }
}
