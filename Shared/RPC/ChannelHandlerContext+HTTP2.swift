import HTTP2
import NIOCore

extension ChannelHandlerContext {
    /// Writes what `session` has to send while the channel is writable (never more: the
    /// internal-buffering DoS class, CVE-2019-9517), then flushes if anything was written.
    /// Throws the session's error; the caller closes the connection.
    func writePendingOutput(of session: some HTTP2OutputSource) throws {
        var wrote = false
        _ = try session.withPendingOutput(more: { channel.isWritable }) { bytes in
            var buffer = channel.allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            write(NIOAny(buffer), promise: nil)
            wrote = true
        }
        if wrote { flush() }
    }
}
