import Foundation
import Testing

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Output of a finished child process.
struct ProcessResult {
    var status: Int32
    var output: String
}

/// Runs a program to completion, collecting stdout and stderr together.
func runProcess(_ executable: String, _ arguments: [String], in directory: URL = repositoryRoot) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [executable] + arguments
    process.currentDirectoryURL = directory
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
}

/// True when `tool` is on the PATH.
func toolExists(_ tool: String) -> Bool {
    (try? runProcess("sh", ["-c", "command -v \(tool)"]).status) == 0
}

/// A fresh temporary directory.
func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("doorstep-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// `runProcess` on a thread of its own: waiting for a child must not block the cooperative
/// pool, where (on a 2-core machine) the server under test runs its handlers.
func runProcessDetached(_ executable: String, _ arguments: [String]) async throws -> ProcessResult {
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

/// Reads the first line a child writes (its "listening on …"), on a thread of its own.
func firstLineDetached(from handle: FileHandle) async -> String? {
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

/// The directory of the running test binary: the build's products (e.g. `rpc-test-server`).
let productsDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
