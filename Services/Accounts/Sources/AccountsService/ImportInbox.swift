import Synchronization

/// The records of an import stream between the task that reads them off the call and the
/// task that writes them in batches: the reader waits while `capacity` records are queued
/// (so the call's request stream, and behind it the client, slows down instead of the
/// server holding the file), the writer takes every record queued, up to a batch, at once.
/// Records that arrive while a batch commits form the next batch.
final class ImportInbox<Element: Sendable>: Sendable {
    private struct State {
        var queued: [Element] = []
        var finished: (any Error)?? = nil
        var reader: CheckedContinuation<Void, Never>?
        var writer: CheckedContinuation<Void, Never>?
    }

    private enum TakeStep {
        case batch([Element], CheckedContinuation<Void, Never>?)
        case end((any Error)?)
        case wait
    }

    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    /// Queues a record; waits while the inbox is full. Returns false (dropping it) once the
    /// inbox is finished.
    @discardableResult
    func put(_ element: Element) async -> Bool {
        while true {
            let wait: Bool? = state.withLock { state in
                if state.finished != nil { return nil }
                return state.queued.count >= capacity
            }
            guard let wait else { return false }
            if !wait { break }
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> Bool in
                    if state.queued.count < capacity || state.finished != nil { return true }
                    state.reader = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        }
        let writer = state.withLock { state in
            state.queued.append(element)
            let writer = state.writer
            state.writer = nil
            return writer
        }
        writer?.resume()
        return true
    }

    /// No more records: `error` nil when the stream ended normally.
    func finish(_ error: (any Error)?) {
        let (writer, reader) = state.withLock { state in
            if state.finished == nil { state.finished = .some(error) }
            defer { state.writer = nil; state.reader = nil }
            return (state.writer, state.reader)
        }
        writer?.resume()
        reader?.resume()
    }

    /// Up to `limit` queued records, waiting for the first; empty once finished and drained.
    /// Throws the error the stream finished with, once the records before it were taken.
    func take(upTo limit: Int) async throws -> [Element] {
        while true {
            let step: TakeStep = state.withLock { state in
                if !state.queued.isEmpty {
                    let count = min(limit, state.queued.count)
                    let batch = Array(state.queued.prefix(count))
                    state.queued.removeFirst(count)
                    let reader = state.reader
                    state.reader = nil
                    return .batch(batch, reader)
                }
                if let finished = state.finished { return .end(finished) }
                return .wait
            }
            switch step {
            case .batch(let batch, let reader):
                reader?.resume()
                return batch
            case .end(let error):
                if let error { throw error }
                return []
            case .wait:
                await withCheckedContinuation { continuation in
                    let ready = state.withLock { state -> Bool in
                        if !state.queued.isEmpty || state.finished != nil { return true }
                        state.writer = continuation
                        return false
                    }
                    if ready { continuation.resume() }
                }
            }
        }
    }
}
