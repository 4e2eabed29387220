import CSpawn
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process whose only descriptors are its stdin, stdout and stderr.
///
/// Foundation's `Process` on Linux imitates close-on-exec by listing the descriptors open just
/// before it spawns and closing those in the child. A socket that an in-process server accepts
/// in between (SwiftNIO accepts without SOCK_CLOEXEC) is inherited by the child, and a long-lived
/// child (a service under test) then keeps the connection open after the server closed it: the
/// peer never sees the close. The hostile-peer checks caught it as a connection that "stayed
/// open after the GOAWAY" while another suite started a service. Here the child closes every
/// descriptor from 3 up as it spawns (`posix_spawn_file_actions_addclosefrom_np`), so nothing
/// opened meanwhile survives into it.
public final class ChildProcess: @unchecked Sendable {
    /// Where a standard stream of the child goes.
    public enum Stream {
        /// A pipe; the parent reads its other end (`standardOutput`, `standardError`).
        case pipe
        /// /dev/null.
        case null
        /// The file at this path, opened for appending.
        case file(String)
        /// The same pipe as stdout (stderr only).
        case standardOutput
        /// This process's own.
        case inherit
    }

    /// How the child ended.
    public enum Termination: Sendable, Equatable {
        case exit(Int32)
        case signal(Int32)

        /// The exit status, or the signal number for a child a signal ended.
        public var status: Int32 {
            switch self {
            case .exit(let code), .signal(let code): code
            }
        }
    }

    public let processIdentifier: pid_t
    /// The read end of stdout's pipe (nil unless stdout is `.pipe`).
    public let standardOutput: FileHandle?
    /// The read end of stderr's pipe (nil unless stderr is `.pipe`).
    public let standardError: FileHandle?

    private let state = NSCondition()
    private var termination: Termination?
    private var reaping = false

    /// Spawns `executable` (a path, or a name looked up on this process's PATH) with
    /// `arguments`; `environment` replaces this process's when given; the child starts in
    /// `directory` when given, in a process group of its own (a Ctrl-C of the test run reaches
    /// the test process, which stops its children itself).
    public init(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
        directory: String? = nil, standardOutput stdout: Stream = .pipe, standardError stderr: Stream = .standardOutput
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // Descriptors this process must close once the child has its copies.
        var parentCloses: [Int32] = []
        defer { for fd in parentCloses { close(fd) } }
        var readEnds: (out: Int32?, err: Int32?) = (nil, nil)
        var failure: Int32 = 0
        func check(_ result: Int32) { if result != 0, failure == 0 { failure = result } }

        func pipeEnds() throws -> (read: Int32, write: Int32) {
            var fds: [Int32] = [0, 0]
            guard cspawn_pipe_cloexec(&fds) == 0 else { throw ChildProcessError(executable: executable, errno: errno) }
            return (fds[0], fds[1])
        }
        func route(_ stream: Stream, to target: Int32) throws {
            switch stream {
            case .pipe:
                let ends = try pipeEnds()
                parentCloses.append(ends.write)
                check(posix_spawn_file_actions_adddup2(&actions, ends.write, target))
                if target == STDOUT_FILENO { readEnds.out = ends.read } else { readEnds.err = ends.read }
            case .null:
                check(posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_RDWR, 0))
            case .file(let path):
                check(posix_spawn_file_actions_addopen(&actions, target, path, O_WRONLY | O_CREAT | O_APPEND, 0o644))
            case .standardOutput:
                check(posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, target))
            case .inherit:
                break
            }
        }
        do {
            check(posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0))
            try route(stdout, to: STDOUT_FILENO)
            try route(stderr, to: STDERR_FILENO)
            if let directory { check(cspawn_addchdir(&actions, directory)) }
            check(cspawn_addclosefrom(&actions, 3))
        } catch {
            for fd in [readEnds.out, readEnds.err].compactMap({ $0 }) { close(fd) }
            throw error
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        check(posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP)))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let envp = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer { for pointer in envp ?? [] { free(pointer) } }

        var pid: pid_t = 0
        if failure == 0 {
            failure = argv.withUnsafeBufferPointer { argvBuffer in
                if let envp {
                    return envp.withUnsafeBufferPointer { posix_spawnp(&pid, executable, &actions, &attributes, argvBuffer.baseAddress!, $0.baseAddress!) }
                }
                return posix_spawnp(&pid, executable, &actions, &attributes, argvBuffer.baseAddress!, environ)
            }
        }
        guard failure == 0 else {
            for fd in [readEnds.out, readEnds.err].compactMap({ $0 }) { close(fd) }
            throw ChildProcessError(executable: executable, errno: failure)
        }
        processIdentifier = pid
        standardOutput = readEnds.out.map { FileHandle(fileDescriptor: $0, closeOnDealloc: true) }
        standardError = readEnds.err.map { FileHandle(fileDescriptor: $0, closeOnDealloc: true) }
    }

    /// True until the child has ended (checked without reaping it).
    public var isRunning: Bool {
        state.lock()
        defer { state.unlock() }
        guard termination == nil else { return false }
        var info = siginfo_t()
        guard waitid(P_PID, id_t(processIdentifier), &info, WEXITED | WNOHANG | WNOWAIT) == 0 else { return false }
        return info._sifields._sigchld.si_pid == 0
    }

    /// Sends `signal` unless the child has already been reaped.
    public func signal(_ signal: Int32) {
        state.lock()
        defer { state.unlock() }
        if termination == nil { kill(processIdentifier, signal) }
    }

    /// Blocks until the child ends and returns how. Call it from a thread of its own in async
    /// code (`waitDetached`).
    @discardableResult
    public func wait() -> Termination {
        state.lock()
        while reaping, termination == nil { state.wait() }
        if let termination {
            state.unlock()
            return termination
        }
        reaping = true
        state.unlock()
        var status: Int32 = 0
        var result: pid_t
        repeat { result = waitpid(processIdentifier, &status, 0) } while result == -1 && errno == EINTR
        // The low seven bits are the signal that ended the child, zero for an exit.
        let ended: Termination = status & 0x7F == 0 ? .exit((status >> 8) & 0xFF) : .signal(status & 0x7F)
        state.lock()
        termination = ended
        reaping = false
        state.broadcast()
        state.unlock()
        return ended
    }

    /// `wait()` on a thread of its own.
    public func waitDetached() async -> Termination {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: self.wait()) }
        }
    }

    deinit {
        // A child nobody waited for is killed and reaped, never left running or a zombie.
        guard termination == nil else { return }
        let pid = processIdentifier
        kill(pid, SIGKILL)
        Thread.detachNewThread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        }
    }
}

public struct ChildProcessError: Error, CustomStringConvertible {
    public let executable: String
    public let errno: Int32
    public var description: String { "cannot start \(executable): \(String(cString: strerror(errno)))" }
}
