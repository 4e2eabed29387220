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

    /// A new directory with the key in place; the services' clock starts at `startMs` (nil:
    /// the wall clock).
    init(startingAt startMs: Int64? = nil) async throws {
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
    func start(_ name: String, listen: String = "127.0.0.1:0", _ extra: [String] = []) async throws -> RunningService {
        try await RunningService(name, [
            "--listen", listen, "--metrics-listen", "off", "--data-dir", directory.appendingPathComponent(name).path,
            "--test-clock-offset-file", clockFile.path,
        ] + extra)
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
