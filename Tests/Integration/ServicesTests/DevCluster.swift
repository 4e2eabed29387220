import Foundation
import RPC
import RPCWire
import TestSupport

/// The three executables as process tests run them in dev mode: one generated key copied
/// into each data directory (dev mode means no `--auth-key-file`, so one token works
/// everywhere and the test-only clock is allowed) and one clock-offset file that every
/// service reads (`--test-clock-offset-file`), so a test can move time for all of them.
final class DevCluster: @unchecked Sendable {
    static let day: Int64 = 86_400_000
    static let hour: Int64 = 3_600_000

    let directory: URL
    /// The shared signing key (`doorstep token --key-file`).
    let keyFile: String
    let clockFile: URL
    private var offsetMs: Int64

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// The next 10:00 in Asia/Shanghai (02:00 UTC) after now.
    static func nextShanghaiTenOClock() -> Int64 { (nowMs() / day + 1) * day + 2 * hour }

    /// With replicas: the PostgreSQL server every service keeps its data on (a schema each,
    /// shared by its replicas).
    let postgres: PostgresCluster?

    /// A new directory with the key in place; the services' clock starts at `startMs` (nil:
    /// the wall clock). With `postgres`, every service runs on that server.
    init(startingAt startMs: Int64? = nil, postgres: PostgresCluster? = nil) async throws {
        self.postgres = postgres
        directory = try makeTemporaryDirectory()
        keyFile = directory.appendingPathComponent("auth.key").path
        let keygen = try await runProduct("doorstep", ["keygen", "--key-file", keyFile])
        guard keygen.status == 0 else { throw CommandFailed(description: "doorstep keygen: \(keygen.output)") }
        for name in ["accounts", "scheduling", "visits"] {
            let dataDirectory = directory.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: keyFile, toPath: dataDirectory.appendingPathComponent("auth.key").path)
        }
        clockFile = directory.appendingPathComponent("clock-offset")
        offsetMs = startMs.map { $0 - Self.nowMs() } ?? 0
        try String(offsetMs).write(to: clockFile, atomically: true, encoding: .utf8)
    }

    /// Starts `name` with its data directory, the shared clock, metrics off, on `listen`.
    /// Replica 2, 3, … of a service gets a data directory of its own (the key copied in) and
    /// shares the first replica's database (so `postgres` is required) and data key.
    func start(_ name: String, listen: String = "127.0.0.1:0", replica: Int = 1, _ extra: [String] = []) async throws -> RunningService {
        let dataDirectory = directory.appendingPathComponent(replica == 1 ? name : "\(name)-\(replica)")
        if !FileManager.default.fileExists(atPath: dataDirectory.path) {
            try FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: keyFile, toPath: dataDirectory.appendingPathComponent("auth.key").path)
        }
        var arguments = ["--listen", listen, "--metrics-listen", "off", "--data-dir", dataDirectory.path,
                         "--test-clock-offset-file", clockFile.path]
        if let postgres { arguments += ["--database-url", postgres.url(schema: name)] }
        if replica > 1 {
            precondition(postgres != nil, "replicas share a PostgreSQL database")
            if name == "accounts" {
                arguments += ["--data-key-file", directory.appendingPathComponent("accounts/data.key").path]
            }
            // The first replica's webhook key (generated in its data directory): replicas share it.
            arguments += ["--webhook-key-file", directory.appendingPathComponent("\(name)/webhook.key").path]
        }
        return try await RunningService(name, arguments + extra)
    }

    /// Moves every service's clock to `instant` (they re-read the file within 50 ms).
    func travel(to instant: Int64) async throws {
        offsetMs = instant - Self.nowMs()
        try String(offsetMs).write(to: clockFile, atomically: true, encoding: .utf8)
        try await Task.sleep(for: .milliseconds(150))
    }

    /// A token made by `doorstep token` with `arguments` (e.g. `--role platform`).
    func tokenText(_ arguments: [String]) async throws -> String {
        let result = try await runProduct("doorstep", ["token", "--key-file", keyFile] + arguments)
        guard result.status == 0 else { throw CommandFailed(description: "doorstep token: \(result.output)") }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The same as call metadata.
    func token(_ arguments: [String]) async throws -> Metadata {
        ["authorization": "Bearer \(try await tokenText(arguments))"]
    }
}

/// A helper command that failed, with what it printed.
struct CommandFailed: Error, CustomStringConvertible {
    let description: String
}
