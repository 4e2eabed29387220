import Models
import RPC
import RPCWire
import Storage

extension EventLog {
    /// Serves `WatchEvents` from `database`: validates the request, then sends the events after
    /// the cursor, oldest first, `batch` at a time, and waits for more — woken when this process
    /// commits events, and every `pollInterval` otherwise (events other replicas commit). Each
    /// send waits while the consumer's stream is full (HTTP/2 flow control and the server's
    /// per-stream backlog), so a slow consumer holds its stream back and costs one batch of
    /// memory at most. Returns when the call is cancelled (the consumer went away or its deadline
    /// passed); ends with UNAVAILABLE when the server begins a graceful shutdown.
    public func watch(_ request: TypeV1.WatchEventsRequest, context: ServerContext, database: SQLDatabase,
                      responses: ResponseStream<TypeV1.Event>, pollInterval: Duration = .milliseconds(250),
                      batch: Int = 256) async throws {
        let filter: TypeFilter
        do {
            filter = try TypeFilter(parsing: request.types)
        } catch {
            throw RPCError.invalidArgument("types", error.message)
        }
        var cursor: Int64 = 0
        if request.fromNow {
            guard request.afterCursor.isEmpty else {
                throw RPCError.invalidArgument("after_cursor", "must be empty when from_now is set")
            }
            cursor = try await database.read { db in try self.lastCursor(db) }
        } else if !request.afterCursor.isEmpty {
            guard let value = Int64(request.afterCursor), value >= 0, String(value) == request.afterCursor else {
                throw RPCError.invalidArgument("after_cursor", "\"\(request.afterCursor.prefix(40))\" is not a cursor of this event log "
                                               + "(use an Event.cursor this service sent)")
            }
            let last = try await database.read { db in try self.lastCursor(db) }
            guard value <= last else {
                throw RPCError(code: .outOfRange, message: "after_cursor: \(value) is beyond the end of this event log (\(last)): "
                               + "the log was restored from an older backup or the cursor is another service's")
            }
            cursor = value
        }
        while !Task.isCancelled {
            // A graceful shutdown ends the stream at once (within one poll interval), not at the
            // end of the drain: the consumer reconnects with its last cursor.
            guard !context.isServerShuttingDown else {
                throw RPCError.unavailable("the service is shutting down; reconnect after the last cursor received")
            }
            let after = cursor
            let (horizon, last, events) = try await database.read { db in
                (try self.purgedThrough(db), try self.lastCursor(db), try self.events(db, after: after, types: filter, limit: batch))
            }
            // Events after the cursor were purged (older than the log keeps): the consumer would
            // miss them; it must know, and start again from the oldest kept (empty cursor).
            guard after >= horizon || request.afterCursor.isEmpty && after == 0 && !request.fromNow else {
                throw RPCError(code: .outOfRange, message: "after_cursor: the events up to \(horizon) were purged (the log keeps "
                               + "--events-retention-days); start again with an empty after_cursor and reconcile what was missed")
            }
            for event in events {
                try await responses.send(event)
                cursor = Int64(event.cursor) ?? cursor
            }
            if events.count < batch {
                // Everything up to the log's end as of that read was looked at (cursors follow
                // commit order, so nothing can appear below it later): a filtered stream moves
                // past the events it skipped, and its purge check stays true while it keeps up.
                cursor = max(cursor, last)
                await signal.wait(timeout: pollInterval)
            }
        }
    }
}
