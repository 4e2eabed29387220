import Foundation

/// A private PostgreSQL server for one test that needs to stop or restart its database
/// (fault tests must not disturb the shared server other suites use): a new cluster
/// (`initdb`) in a temporary directory, on a free loopback port, run as the `postgres` user
/// when the tests run as root. ``stop()`` removes it; a test that forgets is cleaned up when
/// the object goes away.
public final class PostgresCluster: @unchecked Sendable {
    /// The server binaries (Debian's postgresql-15 package), or nil when not installed.
    public static let binaries: URL? = {
        let root = URL(fileURLWithPath: "/usr/lib/postgresql")
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return versions.sorted { $0.compare($1, options: .numeric) == .orderedAscending }.reversed()
            .map { root.appendingPathComponent($0).appendingPathComponent("bin") }
            .first { FileManager.default.isExecutableFile(atPath: $0.appendingPathComponent("initdb").path) }
    }()

    /// Whether a server can be started here.
    public static var isAvailable: Bool { binaries != nil }

    public let port: Int
    public let directory: URL
    private let bin: URL
    private var data: URL { directory.appendingPathComponent("data") }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`, plus `?schema=` when given.
    public func url(schema: String? = nil) -> String {
        "postgres://postgres@127.0.0.1:\(port)/postgres" + (schema.map { "?schema=\($0)" } ?? "")
    }

    /// initdb and start; throws with the server's output when either fails.
    public init() throws {
        guard let bin = Self.binaries else { throw PostgresClusterError(description: "PostgreSQL is not installed") }
        self.bin = bin
        directory = URL(fileURLWithPath: "/tmp").appendingPathComponent("doorstep-pgtest-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("socket"), withIntermediateDirectories: true)
        port = try freeLoopbackPort()
        if getuid() == 0 {
            try run("/bin/chown", ["-R", "postgres:postgres", directory.path])
        }
        try asOwner(bin.appendingPathComponent("initdb").path,
                    ["-D", data.path, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"])
        try start()
    }

    /// Starts the server (after ``stop(mode:)``).
    public func start() throws {
        try asOwner(bin.appendingPathComponent("pg_ctl").path, [
            "-D", data.path, "-l", directory.appendingPathComponent("server.log").path, "-w", "-t", "60", "-o",
            "-p \(port) -k \(directory.appendingPathComponent("socket").path) -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            "start",
        ])
    }

    /// Stops the server: `immediate` is a crash (no checkpoint; recovery replays the WAL).
    public func stop(mode: String = "fast") throws {
        try asOwner(bin.appendingPathComponent("pg_ctl").path, ["-D", data.path, "-m", mode, "-w", "stop"])
    }

    /// `pg_ctl restart -m <mode>`.
    public func restart(mode: String = "immediate") throws {
        try asOwner(bin.appendingPathComponent("pg_ctl").path, [
            "-D", data.path, "-m", mode, "-w", "-t", "60", "-l", directory.appendingPathComponent("server.log").path, "-o",
            "-p \(port) -k \(directory.appendingPathComponent("socket").path) -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            "restart",
        ])
    }

    /// Stops the server and removes its directory.
    public func remove() {
        try? stop(mode: "immediate")
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { remove() }

    private func asOwner(_ tool: String, _ arguments: [String]) throws {
        if getuid() == 0 {
            let command = ([tool] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
            try run("/bin/su", ["postgres", "-s", "/bin/sh", "-c", command])
        } else {
            try run(tool, arguments)
        }
    }

    /// Runs `tool` and waits for it, its output appended to `commands.log`: a ``ChildProcess``,
    /// so the server `pg_ctl start` leaves running inherits no descriptor of this process (it
    /// once kept the listening socket of an in-process test server, which then accepted
    /// connections nobody answered, and Foundation's `Process` waited for a descriptor it held).
    private func run(_ tool: String, _ arguments: [String]) throws {
        let log = directory.appendingPathComponent("commands.log").path
        let child = try ChildProcess(tool, arguments, standardOutput: .file(log), standardError: .standardOutput)
        let termination = child.wait()
        let exited: Int32
        switch termination {
        case .exit(let code): exited = code
        case .signal(let number): exited = 128 + number
        }
        guard exited == 0 else {
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            let server = (try? String(contentsOf: directory.appendingPathComponent("server.log"), encoding: .utf8)) ?? ""
            throw PostgresClusterError(description: "\(tool) \(arguments.joined(separator: " ")) exited \(exited):\n\(output.suffix(2000))\n\(server.suffix(2000))")
        }
    }
}

public struct PostgresClusterError: Error, CustomStringConvertible {
    public let description: String
}

/// A loopback TCP port nothing listens on right now (bound on port 0 and read back).
public func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw PostgresClusterError(description: "socket() failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw PostgresClusterError(description: "bind() failed") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}
