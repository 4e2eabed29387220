import Foundation

// Helpers every test target shares: where the repository and the built products are, and
// how to run a child process without blocking Swift's cooperative pool.

/// The repository root, found from this file's path (Tests/Support/TestSupport/…).
public let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The directory of the running test binary: the build's products (e.g. `rpc-test-server`,
/// `doorstep`), whichever build (debug, ASan) is running.
public let productsDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()

/// Output of a finished child process.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var output: String
}

/// Runs a program (looked up on the PATH, or a path) to completion, collecting stdout and
/// stderr together. Blocks the calling thread: from async tests use `runProcessDetached`.
public func runProcess(_ executable: String, _ arguments: [String], in directory: URL = repositoryRoot) throws -> ProcessResult {
    let child = try ChildProcess(executable, arguments, directory: directory.path)
    let data = child.standardOutput!.readDataToEndOfFile()
    return ProcessResult(status: child.wait().status, output: String(decoding: data, as: UTF8.self))
}

/// `runProcess` on a thread of its own: waiting for a child must not block the cooperative
/// pool, where (on a 2-core machine) a server under test runs its handlers.
public func runProcessDetached(_ executable: String, _ arguments: [String]) async throws -> ProcessResult {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            do {
                continuation.resume(returning: try runProcess(executable, arguments))
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}

/// Runs a product of this package (e.g. `doorstep`) built beside the test binary.
public func runProduct(_ name: String, _ arguments: [String]) async throws -> ProcessResult {
    try await runProcessDetached(productsDirectory.appendingPathComponent(name).path, arguments)
}

/// Reads the first line a child writes (its "listening on …"), on a thread of its own.
public func firstLineDetached(from handle: FileHandle) async -> String? {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread {
            var bytes: [UInt8] = []
            while true {
                let chunk = handle.readData(ofLength: 1)
                guard let byte = chunk.first, byte != 0x0A else { break }
                bytes.append(byte)
            }
            continuation.resume(returning: bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self))
        }
    }
}

/// True when `tool` is on the PATH.
public func toolExists(_ tool: String) -> Bool {
    (try? runProcess("sh", ["-c", "command -v \(tool)"]).status) == 0
}

/// A fresh temporary directory.
public func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("doorstep-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A path in the temporary directory that does not exist yet.
public func temporaryPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("doorstep-\(UUID().uuidString)-\(name)").path
}

/// The contents of a file. (Not `Data(contentsOf:)`: swift-foundation's file reader leaks
/// its buffer under LeakSanitizer on Linux.)
public func readFile(_ url: URL) throws -> [UInt8] {
    guard let handle = FileHandle(forReadingAtPath: url.path) else {
        throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: url.path])
    }
    defer { try? handle.close() }
    return [UInt8](try handle.readToEnd() ?? Data())
}

/// Whether any file a service's database keeps on disk holds `needle` (UTF-8): the SQLite
/// files of `sqliteFiles` (a missing one is skipped), or, on PostgreSQL runs of the suites,
/// every relation and WAL file of the test cluster (`DOORSTEP_TEST_PG_DATA`: tables,
/// indexes and TOAST of every schema, and the log of what was written).
public func databaseFilesContain(_ needle: String, sqliteFiles: [URL]) throws -> Bool {
    let pattern = Data(needle.utf8)
    var files = sqliteFiles
    let environment = ProcessInfo.processInfo.environment
    if environment["DOORSTEP_TEST_DATABASE"] == "postgres", let data = environment["DOORSTEP_TEST_PG_DATA"] {
        files = []
        for area in ["base", "pg_wal"] {
            let root = URL(fileURLWithPath: data).appendingPathComponent(area)
            let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey])
            while let url = enumerator?.nextObject() as? URL {
                if (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true { files.append(url) }
            }
        }
    }
    for file in files where FileManager.default.fileExists(atPath: file.path) {
        if Data(try readFile(file)).range(of: pattern) != nil { return true }
    }
    return false
}
