import Dispatch
import Foundation
import NIOCore
import NIOPosix
@testable import Storage
import Synchronization
import TestSupport
import Testing

/// Runs tasks on one event loop, as the RPC server runs its handlers.
private final class LoopExecutor: TaskExecutor {
    let loop: any EventLoop
    init(_ loop: any EventLoop) { self.loop = loop }
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

@Suite("SQLite reads from event-loop tasks")
struct StorageExecutorTests {
    @Test("an async read by a task on an event loop returns its reader even while that loop blocks in readPoint", .timeLimit(.minutes(1)))
    func noReaderDeadlock() async throws {
        let directory = try makeTemporaryDirectory()
        var configuration = SQLiteEngine.Configuration()
        configuration.maximumReaderCount = 1
        let database = try StorageTests.open(directory.appendingPathComponent("d.sqlite").path, configuration: configuration)
        defer { Task { await database.close() } }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let executor = LoopExecutor(loop)
        // The only reader is held by an async read started on the loop: the read says when it
        // runs (it holds the reader then) and returns only once the loop is in its point read…
        let (readRunning, readRunningSignal) = AsyncStream<Void>.makeStream()
        let loopBusy = DispatchSemaphore(value: 0)
        let reading = Task(executorPreference: executor) {
            try await database.read { db in
                readRunningSignal.finish()
                _ = loopBusy.wait(timeout: .now() + .seconds(30))
                return try db.fetchValue(Int.self, sql: "SELECT 1") ?? 0
            }
        }
        for await _ in readRunning {}
        // …while the loop itself waits for that reader in a point read. From `loopBusy` on the
        // loop is occupied until the point read returns: if the read's task resumed on the loop
        // (where its reader goes back to the pool), neither could finish.
        let point = loop.submit {
            loopBusy.signal()
            return try (database.engine as! SQLiteEngine).readHere { db in try db.fetchValue(Int.self, sql: "SELECT 2") ?? 0 }
        }
        #expect(try await reading.value == 1)
        #expect(try await point.get() == 2)
        try await group.shutdownGracefully()
    }
}

@Suite("Storage warnings during an outage")
struct LogThrottleTests {
    @Test("one line, then none within the interval, then one with the count left out")
    func throttle() async throws {
        let throttle = LogThrottle(interval: .milliseconds(50))
        #expect(throttle.admit() == 0)
        #expect(throttle.admit() == nil)
        #expect(throttle.admit() == nil)
        try await Task.sleep(for: .milliseconds(80))
        #expect(throttle.admit() == 2)
        #expect(throttle.admit() == nil)
    }
}
