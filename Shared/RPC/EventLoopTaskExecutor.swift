import NIOCore

/// Runs tasks on one SwiftNIO event loop: a handler task started with this executor
/// preference runs on its connection's loop, so a call costs no hand-off to the global
/// concurrency pool and back. Handlers must not block (they are `async`; code that awaits
/// something else, e.g. database I/O on its own queue, suspends and comes back here).
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
