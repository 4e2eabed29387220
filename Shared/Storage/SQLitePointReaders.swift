import GRDB
import Synchronization

/// The connections SQLite point reads (``SQLDatabase/readPoint(_:)``) run on: read-only
/// connections of their own beside GRDB's pool, each with its own statement cache, used on
/// the calling thread with no transaction around the statements. In WAL mode each statement
/// then reads the last commit as of its own start: two statements of one point read may see
/// different commits (as on PostgreSQL, where point reads run without a transaction too).
///
/// A point read takes the idle connection used last (its pages are the warmest), opens
/// another when none is idle, up to `capacity`; with all of them busy ``checkOut()`` answers
/// nil and the read takes one of the pool's readers instead. After ``close()`` it answers nil
/// too, and the pool (closed as well) refuses the read.
final class SQLitePointReaders: Sendable {
    private struct State {
        var idle: [DatabaseQueue] = []
        var opened = 0
        var closed = false
    }

    private enum Lease {
        case idle(DatabaseQueue)
        case openNew
        case none
    }

    private let path: String
    private let configuration: GRDB.Configuration
    let capacity: Int
    private let state = Mutex(State())

    /// `configuration`: the pool's; the connections are opened read-only with it.
    init(path: String, configuration: GRDB.Configuration, capacity: Int) {
        self.path = path
        var readOnly = configuration
        readOnly.readonly = true
        self.configuration = readOnly
        self.capacity = max(0, capacity)
    }

    /// An idle connection, a newly opened one, or nil when `capacity` are busy or the readers
    /// are closed. Give it back with ``checkIn(_:)``.
    func checkOut() throws -> DatabaseQueue? {
        let lease: Lease = state.withLock { state in
            if state.closed { return .none }
            if let reader = state.idle.popLast() { return .idle(reader) }
            guard state.opened < capacity else { return .none }
            state.opened += 1
            return .openNew
        }
        switch lease {
        case .idle(let reader):
            return reader
        case .none:
            return nil
        case .openNew:
            do {
                return try DatabaseQueue(path: path, configuration: configuration)
            } catch {
                state.withLock { $0.opened -= 1 }
                throw error
            }
        }
    }

    /// Returns a connection taken with ``checkOut()``; closes it when the readers were closed
    /// meanwhile.
    func checkIn(_ reader: DatabaseQueue) {
        let kept = state.withLock { state in
            if state.closed {
                state.opened -= 1
                return false
            }
            state.idle.append(reader)
            return true
        }
        if !kept { try? reader.close() }
    }

    /// Closes the idle connections now and each busy one when it is given back; from now on
    /// ``checkOut()`` answers nil.
    func close() {
        let idle = state.withLock { state in
            state.closed = true
            state.opened -= state.idle.count
            defer { state.idle = [] }
            return state.idle
        }
        for reader in idle { try? reader.close() }
    }

    /// How many connections are open (idle or in use).
    var openCount: Int { state.withLock { $0.opened } }
}
