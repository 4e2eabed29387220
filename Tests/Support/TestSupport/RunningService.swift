import Foundation

/// A service executable (`accounts`, `scheduling`, `visits`) running as a real process for an
/// integration test: started on port 0, its bound ports read from its "ready" line, stopped
/// with a signal, its exit status and output kept.
public final class RunningService: @unchecked Sendable {
    public let name: String
    /// gRPC address, e.g. "127.0.0.1:41234".
    public let address: String
    /// Metrics address, or nil when started with `--metrics-listen off`.
    public let metricsAddress: String?
    private let process: ChildProcess
    private let output: FileHandle
    /// stderr goes to a file, not a pipe: a chatty service must never block on a full pipe.
    public let logPath: String

    /// Starts product `name` with `arguments` (add `--listen 127.0.0.1:0` etc. yourself) and
    /// waits for its ready line; throws with its output when it exits first.
    public init(_ name: String, _ arguments: [String], environment: [String: String] = [:]) async throws {
        self.name = name
        var merged = ProcessInfo.processInfo.environment
        for key in merged.keys where key.hasPrefix("DOORSTEP_") { merged[key] = nil }
        merged.merge(environment) { _, new in new }
        if let url = Self.postgresURL(arguments: arguments, environment: merged) { merged["DOORSTEP_DATABASE_URL"] = url }
        let logPath = temporaryPath("\(name).log")
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let process = try ChildProcess(productsDirectory.appendingPathComponent(name).path, arguments, environment: merged,
                                       standardOutput: .pipe, standardError: .file(logPath))
        self.process = process
        self.output = process.standardOutput!
        self.logPath = logPath
        guard let line = await firstLineDetached(from: output), line.contains(" ready ") else {
            let status = await process.waitDetached().status
            let stderr = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            throw ServiceStartFailed(name: name, status: status, output: stderr)
        }
        func field(_ key: String) -> String? {
            line.split(separator: " ").first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
        }
        self.address = field("grpc") ?? ""
        let metrics = field("metrics")
        self.metricsAddress = metrics == "off" ? nil : metrics
    }

    /// On PostgreSQL runs of the suites (`DOORSTEP_TEST_DATABASE=postgres`, the server in
    /// `DOORSTEP_TEST_POSTGRES_URL`): the database URL of a service started without one — a
    /// schema named after its `--data-dir`, so a restarted service (same data directory)
    /// finds its data again and every other service gets its own.
    static func postgresURL(arguments: [String], environment: [String: String]) -> String? {
        let test = ProcessInfo.processInfo.environment
        guard test["DOORSTEP_TEST_DATABASE"] == "postgres", let base = test["DOORSTEP_TEST_POSTGRES_URL"],
              environment["DOORSTEP_DATABASE_URL"] == nil, !arguments.contains("--database-url"),
              let flag = arguments.firstIndex(of: "--data-dir"), flag + 1 < arguments.count
        else { return nil }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for byte in URL(fileURLWithPath: arguments[flag + 1]).standardizedFileURL.path.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return base + (base.contains("?") ? "&" : "?") + "schema=d_" + String(hash, radix: 16)
    }

    public var processID: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// Sends `signal` and waits (on a thread of its own) for the exit; returns the exit status
    /// (or the signal's number), how the process ended and everything it wrote to stderr.
    public func stop(signal: Int32 = SIGTERM) async -> (status: Int32, reason: Process.TerminationReason, stderr: String) {
        process.signal(signal)
        let termination = await process.waitDetached()
        let stderr = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        switch termination {
        case .exit(let code): return (code, .exit, stderr)
        case .signal(let number): return (number, .uncaughtSignal, stderr)
        }
    }
}

public struct ServiceStartFailed: Error, CustomStringConvertible {
    public let name: String
    public let status: Int32
    public let output: String
    public var description: String { "\(name) exited with \(status) before it was ready:\n\(output)" }
}
