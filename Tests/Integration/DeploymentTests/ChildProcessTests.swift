import Foundation
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The tests' child processes: what they inherit and how their end is reported. A child that
/// inherited a connection an in-process server accepted would keep it open after the server
/// closed it (the hostile-peer checks saw exactly that), so no descriptor beyond the three
/// standard ones may reach a child, even one opened without close-on-exec.
@Suite("Child processes of the tests")
struct ChildProcessTests {
    @Test("a descriptor opened without close-on-exec does not reach the child")
    func nothingInherited() async throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)  // plain pipe(2): inheritable
        let child = try ChildProcess("sh", ["-c", "sleep 30"], standardOutput: .null, standardError: .null)
        close(fds[1])
        // With the write end held by nobody the read end hangs up at once; had the child
        // inherited it, not before the child exits 30 s from now.
        var poller = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
        let ready = poll(&poller, 1, 5_000)
        close(fds[0])
        child.signal(SIGKILL)
        #expect(await child.waitDetached() == .signal(SIGKILL))
        #expect(ready == 1 && poller.revents & Int16(POLLHUP) != 0, "the child holds the pipe's write end")
    }

    @Test("stdout and stderr apart or together, the working directory, the exit status")
    func streamsAndStatus() async throws {
        let apart = try ChildProcess("sh", ["-c", "pwd; echo err >&2; exit 3"], directory: "/tmp",
                                     standardOutput: .pipe, standardError: .pipe)
        let out = String(decoding: apart.standardOutput!.readDataToEndOfFile(), as: UTF8.self)
        let err = String(decoding: apart.standardError!.readDataToEndOfFile(), as: UTF8.self)
        #expect(await apart.waitDetached() == .exit(3))
        #expect(out == "/tmp\n" && err == "err\n")
        #expect(!apart.isRunning)

        let result = try await runProcessDetached("sh", ["-c", "echo one; echo two >&2"])
        #expect(result.status == 0 && result.output == "one\ntwo\n")
        #expect(throws: ChildProcessError.self) { try ChildProcess("/nonexistent/program", []) }
    }
}
