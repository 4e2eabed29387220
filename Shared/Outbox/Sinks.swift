import AsyncHTTPClient
import Foundation
import NIOCore

/// Appends each message as one line to a file, for development and for operators who ship
/// the file elsewhere: the line is `render(message)` (by default the payload as UTF-8, which
/// callers make a one-line JSON document) and a newline, flushed to disk (fsync) before the
/// delivery counts. Several dispatchers must not share one file.
public struct LogFileSink: OutboxSink {
    public let path: String
    private let render: @Sendable (OutboxMessage) -> String

    public init(path: String, render: @escaping @Sendable (OutboxMessage) -> String = { String(decoding: $0.payload, as: UTF8.self) }) {
        self.path = path
        self.render = render
    }

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

/// POSTs each message's payload to a URL with async-http-client. Headers:
/// `content-type` (default application/json), `idempotency-key: <message id>` (the same on
/// every attempt; receivers de-duplicate by it) and `x-doorstep-topic`. A 2xx response
/// acknowledges; 408, 425, 429, 5xx, connection failures and timeouts are retried; any other
/// status rejects the message for good.
public final class WebhookSink: OutboxSink {
    public let url: String
    private let timeout: TimeAmount
    private let contentType: String
    private let client: HTTPClient

    /// Throws `WebhookURLError` unless `url` is an http or https URL with a host.
    public init(url: String, timeout: Duration = .seconds(10), contentType: String = "application/json") throws {
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = parsed.host, !host.isEmpty else {
            throw WebhookURLError(url: url)
        }
        self.url = url
        self.timeout = .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
        self.contentType = contentType
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .seconds(5), read: self.timeout)
        self.client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    public func deliver(_ message: OutboxMessage) async throws(OutboxSinkError) {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "content-type", value: contentType)
        request.headers.add(name: "idempotency-key", value: message.id)
        request.headers.add(name: "x-doorstep-topic", value: message.topic)
        request.body = .bytes(ByteBuffer(bytes: message.payload))
        let status: UInt
        do {
            let response = try await client.execute(request, timeout: timeout)
            status = response.status.code
            _ = try? await response.body.collect(upTo: 64 * 1024)
        } catch {
            throw .retryable("\(error)")
        }
        switch status {
        case 200..<300: return
        case 408, 425, 429, 500..<600: throw .retryable("HTTP \(status)")
        default: throw .permanent("HTTP \(status)")
        }
    }

    /// Closes the HTTP client's connections; call once, at shutdown.
    public func shutdown() async throws {
        try await client.shutdown()
    }
}

/// A webhook address that is not an http(s) URL with a host.
public struct WebhookURLError: Error, Sendable, CustomStringConvertible {
    public let url: String
    public var description: String { "'\(url)' is not an http:// or https:// URL with a host" }
}
