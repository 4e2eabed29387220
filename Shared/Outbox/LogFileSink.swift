import Foundation

/// Appends each message as one line to a file: a development sink, and one for operators
/// who ship the file elsewhere (a JSON-lines log).
///
/// The line is `render(message)` — by default the payload as UTF-8, which producers make a
/// one-line JSON document — with any newline in it replaced by a space (one message, one
/// line), then "\n". The file is opened for appending (created with mode 0600 if absent) on
/// every delivery and fsynced before `deliver` returns, so an acknowledged message is on
/// disk and several instances (or restarts) append to the same file. A file that cannot be
/// opened, written or synced is a retryable error: the message is tried again later.
///
/// The writes are blocking system calls on the calling task's thread, fine at the rate of
/// customer notices; two processes must not write the same file (lines could interleave).
/// A redelivered message (see ``OutboxDispatcher``) appears twice, with the same id.
public struct LogFileSink: OutboxSink {
    /// The file appended to.
    public let path: String
    private let render: @Sendable (OutboxMessage) -> String

    /// `render` turns a message into its line (without the newline); default: the payload
    /// decoded as UTF-8.
    public init(path: String, render: @escaping @Sendable (OutboxMessage) -> String = { String(decoding: $0.payload, as: UTF8.self) }) {
        self.path = path
        self.render = render
    }

    /// Appends the message's line and fsyncs the file.
    public func deliver(_ message: OutboxMessage) async throws(OutboxSinkError) {
        let line = render(message).replacingOccurrences(of: "\n", with: " ") + "\n"
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw .retryable("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var bytes = Array(line.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw .retryable("cannot write \(path): \(String(cString: strerror(errno)))")
            }
            bytes = bytes.dropFirst(written)
        }
        guard fsync(descriptor) == 0 else {
            throw .retryable("cannot sync \(path): \(String(cString: strerror(errno)))")
        }
    }
}
