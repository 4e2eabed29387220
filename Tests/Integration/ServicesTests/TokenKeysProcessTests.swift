import Crypto
import Foundation
import Models
import RPC
import RPCWire
import Synchronization
import TestSupport
import Testing

/// A value shared by the callers of a test and its driver.
private final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func with<Result: Sendable>(_ body: (inout Value) -> Result) -> Result { mutex.withLock { body(&$0) } }
    var value: Value { with { $0 } }
}

/// Bearer-token keys in real service processes: a rotation of Doorstep's keys by SIGHUP, the
/// identity provider's tokens and its key change picked up by polling, and start-up refusals.
@Suite("Bearer-token keys in service processes", .serialized)
struct TokenKeysProcessTests {
    static func start(_ name: String, _ directory: URL, _ extra: [String]) async throws -> RunningService {
        try await RunningService(name, [
            "--listen", "127.0.0.1:0", "--metrics-listen", "off", "--data-dir", directory.appendingPathComponent(name).path,
            "--log-format", "json", "--log-level", "info",
        ] + extra)
    }

    /// Runs the doorstep tool; its standard output.
    static func doorstep(_ arguments: [String]) async throws -> String {
        let result = try await runProduct("doorstep", arguments)
        try #require(result.status == 0, "\(arguments): \(result.output)")
        return result.output
    }

    /// Writes the JWKS of `keyFiles` (by `doorstep jwks`) over `path` in one rename.
    static func publish(_ keyFiles: [String], to path: String) async throws {
        let jwks = try await doorstep(["jwks"] + keyFiles)
        try replace(path, with: jwks)
    }

    /// Replaces a file's content in one rename, as an operator should.
    static func replace(_ path: String, with text: String) throws {
        let temporary = path + ".new"
        try text.write(toFile: temporary, atomically: false, encoding: .utf8)
        guard rename(temporary, path) == 0 else { throw CocoaError(.fileWriteUnknown) }
    }

    /// Successful reloads of `what` the service has logged.
    static func reloads(_ service: RunningService, _ what: String) -> Int {
        let log = (try? String(contentsOfFile: service.logPath, encoding: .utf8)) ?? ""
        return log.split(separator: "\n").filter { $0.contains(#""msg":"reloaded""#) && $0.contains(#""what":"\#(what)""#) }.count
    }

    /// Sends SIGHUP to each service and waits until each logged one more reload of `what`.
    static func hangUp(_ services: [RunningService], reloading what: String) async throws {
        let before = services.map { reloads($0, what) }
        for service in services { kill(service.processID, SIGHUP) }
        let deadline = ContinuousClock.now + .seconds(15)
        while zip(services, before).contains(where: { reloads($0, what) <= $1 }) {
            guard ContinuousClock.now < deadline else {
                let logs = services.map { (try? String(contentsOfFile: $0.logPath, encoding: .utf8))?.suffix(1500) ?? "" }
                Issue.record("no reload of \(what) logged after SIGHUP: \(logs)")
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    @Test("SIGHUP rotation across accounts and scheduling: k2 published, signing moved to k2, k1 retired; no call fails",
          .timeLimit(.minutes(3)))
    func rotationBySIGHUP() async throws {
        let directory = try makeTemporaryDirectory()
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        let created = try await Self.doorstep(["keygen", "--key-file", path("k1.key"), "--kid", "k1", "--jwks-out", path("jwks.json")])
        #expect(created.contains("key id k1"))
        _ = try await Self.doorstep(["keygen", "--key-file", path("k2.key"), "--kid", "k2"])
        try FileManager.default.copyItem(atPath: path("k1.key"), toPath: path("signing.key"))
        let keys = ["--auth-key-file", path("signing.key"), "--auth-jwks-file", path("jwks.json"), "--reload-check-seconds", "0"]
        let accounts = try await Self.start("accounts", directory, keys)
        let scheduling = try await Self.start("scheduling", directory, keys + ["--accounts-addr", accounts.address])
        let t1 = try await Self.doorstep(["token", "--role", "platform", "--key-file", path("k1.key")])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let t2 = try await Self.doorstep(["token", "--role", "platform", "--key-file", path("k2.key")])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let accountsTarget = GRPCClient.Target(accounts.address)!
        let schedulingTarget = GRPCClient.Target(scheduling.address)!
        let setupClient = GRPCClient(targets: [accountsTarget])
        let debtor = try await setupClient.unary(AccountsV1.AccountsService.createDebtor, ServiceProcessTests.debtorRequest(),
                                                 metadata: ["authorization": "Bearer \(t1)"])
        await setupClient.close()

        // Callers: accounts directly, and scheduling, which asks accounts as role service with
        // a token of its signing key (GetContactBudget reads the debtor from accounts).
        let live = Shared([t1])
        let done = Shared([Int](repeating: 0, count: 4))
        let accepted = Shared([String: Int]())
        let failures = Shared([String]())
        let stop = Shared(false)
        func settle(calls: Int = 10) async throws {
            let start = done.value
            while zip(done.value, start).contains(where: { $0 - $1 < calls }) { try await Task.sleep(for: .milliseconds(10)) }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for caller in 0..<4 {
                group.addTask {
                    let viaScheduling = caller % 2 == 1
                    let client = GRPCClient(targets: [viaScheduling ? schedulingTarget : accountsTarget])
                    while !stop.value {
                        let token = live.with { $0.randomElement()! }
                        let name = (token == t1 ? "k1" : "k2") + (viaScheduling ? " via scheduling" : " to accounts")
                        let metadata: Metadata = ["authorization": "Bearer \(token)"]
                        do {
                            if viaScheduling {
                                _ = try await client.unary(SchedulingV1.SchedulingService.getContactBudget,
                                                           SchedulingV1.GetContactBudgetRequest(debtorId: debtor.id),
                                                           metadata: metadata, timeout: .seconds(10))
                            } else {
                                _ = try await client.unary(AccountsV1.AccountsService.getDebtor,
                                                           AccountsV1.GetDebtorRequest(debtorId: debtor.id),
                                                           metadata: metadata, timeout: .seconds(10))
                            }
                            accepted.with { $0[name, default: 0] += 1 }
                        } catch {
                            failures.with { $0.append("\(name): \(error)") }
                        }
                        done.with { $0[caller] += 1 }
                    }
                    await client.close()
                }
            }
            try await settle()
            // 1. Publish k2 beside k1 everywhere.
            try await Self.publish([path("k1.key"), path("k2.key")], to: path("jwks.json"))
            try await Self.hangUp([accounts, scheduling], reloading: "token-keys")
            live.with { $0 = [t1, t2] }
            try await settle()
            // 2. Sign with k2 everywhere (scheduling's own calls to accounts included).
            try Self.replace(path("signing.key"), with: try String(contentsOfFile: path("k2.key"), encoding: .utf8))
            try await Self.hangUp([accounts, scheduling], reloading: "signing-key")
            live.with { $0 = [t2] }
            try await settle()
            // 3. Retire k1 everywhere.
            try await Self.publish([path("k2.key")], to: path("jwks.json"))
            try await Self.hangUp([accounts, scheduling], reloading: "token-keys")
            // Calls go on past the time a connection may reuse an earlier verification (5 s),
            // so a token of k1 still in use anywhere (a peer client's included) would fail.
            try await Task.sleep(for: .seconds(6))
            try await settle(calls: 20)
            stop.with { $0 = true }
            try await group.waitForAll()
        }
        #expect(failures.value.isEmpty, "\(failures.value.prefix(10))")
        let counts = accepted.value
        for name in ["k1 to accounts", "k1 via scheduling", "k2 to accounts", "k2 via scheduling"] {
            #expect(counts[name, default: 0] >= 10, "\(counts)")
        }
        for target in [accountsTarget, schedulingTarget] {
            let client = GRPCClient(targets: [target])
            let metadata: Metadata = ["authorization": "Bearer \(t1)"]
            do {
                if target == accountsTarget {
                    _ = try await client.unary(AccountsV1.AccountsService.getDebtor, AccountsV1.GetDebtorRequest(debtorId: debtor.id),
                                               metadata: metadata, timeout: .seconds(5))
                } else {
                    _ = try await client.unary(SchedulingV1.SchedulingService.getContactBudget,
                                               SchedulingV1.GetContactBudgetRequest(debtorId: debtor.id), metadata: metadata, timeout: .seconds(5))
                }
                Issue.record("k1's token accepted after k1 was retired (\(target))")
            } catch {
                #expect(error.code == .unauthenticated && error.message == "bearer token key 'k1' is not a current key of issuer 'doorstep'",
                        "\(error)")
            }
            await client.close()
        }
        for service in [scheduling, accounts] {
            let stopped = await service.stop()
            #expect(stopped.status == 0, "\(stopped.stderr.suffix(2000))")
            #expect(!stopped.stderr.contains("reload refused"), "\(stopped.stderr.suffix(2000))")
        }
    }

    @Test("the identity provider's tokens are served beside Doorstep's; a new provider key is picked up when its file changes",
          .timeLimit(.minutes(2)))
    func identityProvider() async throws {
        let directory = try makeTemporaryDirectory()
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        _ = try await Self.doorstep(["keygen", "--key-file", path("auth.key")])
        let first = Curve25519.Signing.PrivateKey()
        try Self.replace(path("idp.json"), with: IdPToken.jwks(first, kid: "idp-1"))
        let accounts = try await Self.start("accounts", directory, [
            "--auth-key-file", path("auth.key"), "--idp-jwks-file", path("idp.json"), "--idp-issuer", IdPToken.issuer,
            "--idp-audience", "doorstep-api", "--idp-role-claim", "roles", "--reload-check-seconds", "1",
        ])
        let client = GRPCClient(targets: [GRPCClient.Target(accounts.address)!])
        let platform = IdPToken.make(first, kid: "idp-1", claims: ["roles": ["employee", "platform"]])
        let debtor = try await client.unary(AccountsV1.AccountsService.createDebtor, ServiceProcessTests.debtorRequest(),
                                            metadata: ["authorization": "Bearer \(platform)"], timeout: .seconds(5))
        /// Reads the debtor back with `token`.
        func read(_ token: String) async -> Result<AccountsV1.Debtor, RPCError> {
            do {
                return .success(try await client.unary(AccountsV1.AccountsService.getDebtor, AccountsV1.GetDebtorRequest(debtorId: debtor.id),
                                                       metadata: ["authorization": "Bearer \(token)"], timeout: .seconds(5)))
            } catch {
                return .failure(error)
            }
        }
        // Doorstep's own token is still served by the same process.
        let cli = try await Self.doorstep(["token", "--role", "platform", "--key-file", path("auth.key")])
        #expect(try await read(cli.trimmingCharacters(in: .whitespacesAndNewlines)).get().id == debtor.id)
        let refusals: [([String: Any], String)] = [
            (["roles": "service"], "role 'service' is not accepted from issuer 'https://login.lender.example/': service identity is Doorstep's own signing key"),
            (["roles": "platform", "aud": "billing"], "bearer token audience 'billing' does not include 'doorstep-api'"),
            (["roles": "platform", "exp": Int(Date().timeIntervalSince1970) - 120], "bearer token expired at "),
        ]
        for (claims, reason) in refusals {
            guard case .failure(let error) = await read(IdPToken.make(first, kid: "idp-1", claims: claims)) else {
                Issue.record("accepted: \(claims)")
                continue
            }
            #expect(error.code == .unauthenticated && error.message.hasPrefix(reason), "\(error)")
        }
        // The provider moves to a new key: the file changes, the service notices by itself.
        let second = Curve25519.Signing.PrivateKey()
        try Self.replace(path("idp.json"), with: IdPToken.jwks(second, kid: "idp-2"))
        let next = IdPToken.make(second, kid: "idp-2", claims: ["roles": "platform"])
        let deadline = ContinuousClock.now + .seconds(15)
        while case .failure = await read(next), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(try await read(next).get().id == debtor.id)
        guard case .failure(let old) = await read(IdPToken.make(first, kid: "idp-1", claims: ["roles": "platform"])) else {
            Issue.record("the retired provider key still verifies")
            return
        }
        #expect(old.message == "bearer token key 'idp-1' is not a current key of issuer 'https://login.lender.example/'")
        await client.close()
        let stopped = await accounts.stop()
        #expect(stopped.status == 0, "\(stopped.stderr.suffix(2000))")
    }

    @Test("a missing, malformed or mismatched key file stops the start with one Error: line naming it", .timeLimit(.minutes(2)))
    func startRefusals() async throws {
        let directory = try makeTemporaryDirectory()
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        _ = try await Self.doorstep(["keygen", "--key-file", path("k1.key"), "--kid", "k1"])
        _ = try await Self.doorstep(["keygen", "--key-file", path("k2.key"), "--kid", "k2", "--jwks-out", path("k2.json")])
        try "{\"keys\": 3}".write(toFile: path("bad.json"), atomically: true, encoding: .utf8)
        let idp = ["--idp-issuer", IdPToken.issuer, "--idp-audience", "doorstep-api"]
        let cases: [([String], String)] = [
            (["--idp-jwks-file", path("missing.json")] + idp, "Error: IdP JWKS file \(path("missing.json")) cannot be read"),
            (["--idp-jwks-file", path("bad.json")] + idp, "Error: IdP JWKS file \(path("bad.json")) is not a JWKS"),
            (["--auth-jwks-file", path("k2.json")],
             "Error: auth JWKS file \(path("k2.json")) has no key 'k1' (the key of auth key file \(path("k1.key"))): peers would refuse this service's calls"),
            (["--idp-jwks-file", path("k2.json"), "--idp-audience", "doorstep-api"],
             "Error: --idp-jwks-file: identity provider keys need the issuer of its tokens"),
        ]
        for (arguments, expected) in cases {
            let refused = await #expect(throws: ServiceStartFailed.self) {
                _ = try await Self.start("accounts", directory, ["--auth-key-file", path("k1.key")] + arguments)
            }
            #expect(refused?.status == 1)
            #expect(refused?.output.contains(expected) == true, "\(refused?.output ?? "")")
            #expect(refused?.output.split(separator: "\n").filter { $0.hasPrefix("Error:") }.count == 1, "\(refused?.output ?? "")")
        }
    }
}

/// Tokens of a test identity provider, signed EdDSA with swift-crypto.
private enum IdPToken {
    static let issuer = "https://login.lender.example/"

    static func base64URL(_ bytes: some DataProtocol) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func jwks(_ key: Curve25519.Signing.PrivateKey, kid: String) -> String {
        #"{"keys":[{"kty":"OKP","crv":"Ed25519","use":"sig","kid":"\#(kid)","x":"\#(base64URL(key.publicKey.rawRepresentation))"}]}"#
    }

    /// A token for subject "alice", valid for ten minutes, with `claims` over the defaults.
    static func make(_ key: Curve25519.Signing.PrivateKey, kid: String, claims: [String: Any]) -> String {
        let now = Int(Date().timeIntervalSince1970)
        var all: [String: Any] = ["iss": issuer, "aud": ["doorstep-api"], "sub": "alice", "iat": now, "exp": now + 600]
        all.merge(claims) { _, new in new }
        let header = base64URL(try! JSONSerialization.data(withJSONObject: ["alg": "EdDSA", "typ": "JWT", "kid": kid]))
        let payload = base64URL(try! JSONSerialization.data(withJSONObject: all))
        let input = header + "." + payload
        return input + "." + base64URL(try! key.signature(for: Data(input.utf8)))
    }
}
